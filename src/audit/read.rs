//! Reading the latest events without reading the whole log: blocks from the end of the
//! current log, then of older segments, only as far as needed. The Audit view and
//! `/v1/audit` refresh in the same time whether the log holds a thousand events or a GB.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde_json::Value;

/// Bytes read from the end at a time.
const BLOCK: usize = 64 << 10;

/// The latest `limit` events (newest first) whose line contains `filter` (when given),
/// reading backwards through the log's files. With a filter, at most `budget` bytes are
/// read (a search over a huge log stops there); without one, only what `limit` needs.
pub fn latest(log: &Path, limit: usize, filter: Option<&str>, budget: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut read = 0u64;
    for (_, path) in super::chain::files(log).into_iter().rev() {
        let Ok(mut f) = File::open(&path) else {
            continue;
        };
        let Ok(len) = f.metadata().map(|m| m.len()) else {
            continue;
        };
        let mut end = len;
        // The part of a line that began in the block before this one.
        let mut carry: Vec<u8> = Vec::new();
        let mut first_block = true;
        while end > 0 && out.len() < limit && read < budget {
            let start = end.saturating_sub(BLOCK as u64);
            let mut block = vec![0u8; (end - start) as usize];
            if f.seek(SeekFrom::Start(start))
                .and_then(|_| f.read_exact(&mut block))
                .is_err()
            {
                break;
            }
            read += block.len() as u64;
            block.extend_from_slice(&carry);
            // Lines are complete only after the first newline of the block (or at the
            // file's start); a last line without its newline is still being written.
            let mut lines: Vec<&[u8]> = block.split(|&b| b == b'\n').collect();
            if first_block {
                lines.pop(); // after the final newline: empty, or a partial line
                first_block = false;
            }
            carry = if start > 0 {
                lines.remove(0).to_vec()
            } else {
                Vec::new()
            };
            for line in lines.into_iter().rev() {
                if line.is_empty() {
                    continue;
                }
                if let Some(f) = filter {
                    if !contains(line, f.as_bytes()) {
                        continue;
                    }
                }
                if let Ok(v) = serde_json::from_slice::<Value>(line) {
                    out.push(v);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            end = start;
        }
        if out.len() >= limit || read >= budget {
            break;
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_events_come_from_the_end_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let line = |n: u64| {
            format!(
                "{{\"seq\":{n},\"event\":\"e{n}\",\"pad\":\"{}\"}}\n",
                "x".repeat((n % 7) as usize * 300)
            )
        };
        let seg: String = (1..=500).map(line).collect();
        std::fs::write(dir.path().join(super::super::chain::segment_name(1)), seg).unwrap();
        let cur: String = (501..=1000).map(line).collect();
        // A last line still being written is not an event yet.
        std::fs::write(
            dir.path().join("audit.log"),
            format!("{cur}{{\"seq\":1001,\"ev"),
        )
        .unwrap();
        let log = dir.path().join("audit.log");
        let got = latest(&log, 3, None, u64::MAX);
        assert_eq!(
            got.iter()
                .map(|v| v["seq"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [1000, 999, 998]
        );
        let got = latest(&log, 700, None, u64::MAX);
        assert_eq!(got.len(), 700);
        assert_eq!(got.last().unwrap()["seq"], 301, "into the older segment");
        let seqs: Vec<u64> = got.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] == w[1] + 1),
            "every event once, newest first"
        );
        let found = latest(&log, 10, Some("\"e42\""), u64::MAX);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["seq"], 42);
    }
}
