//! Verifying the chain: every line's MAC over the previous line's MAC and its own body, in
//! order across the log's segments (`audit-<first seq>.log`, oldest first, then
//! `audit.log`), against the sealed head, and against a forwarded copy.
//!
//! The chain starts at event 1 (previous MAC all zeros), or, once retention has removed old
//! segments, at the event an `audit.retention` event names (its `resumes_at` and `prev`):
//! that event is itself in the chain, so nobody without the key can move the start.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{seal, GENESIS, MAC_FIELD};

/// Why verification failed: where (the file and its line), which event, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    /// The file the problem is in (the log's name for problems with no line).
    pub file: String,
    /// The line in that file (1-based; 0 when no line is to blame).
    pub line: u64,
    /// The sequence number the chain expected there.
    pub seq: u64,
    pub reason: String,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{} line {} (event {}): {}",
                self.file, self.line, self.seq, self.reason
            )
        } else {
            write!(f, "{}: {}", self.file, self.reason)
        }
    }
}

impl std::error::Error for Broken {}

/// How far a chain was verified: enough to go on from there later without reading it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The first sequence number of the file the position is in (its segment name once
    /// rotated), and the byte offset after the last verified line.
    pub file_first: u64,
    pub offset: u64,
    /// The last verified event, and its MAC.
    pub seq: u64,
    pub mac: String,
    /// Events verified (since the chain's start).
    pub events: u64,
    /// A start after event 1 that no retention event has accounted for yet.
    pending_start: Option<(u64, String)>,
    /// The line number in the file at `offset`.
    line: u64,
}

/// One line: its body (the JSON without the MAC) and its MAC.
pub fn split_line(text: &str) -> Option<(String, &str)> {
    let idx = text.rfind(MAC_FIELD)?;
    let mac = text[idx + MAC_FIELD.len()..].strip_suffix("\"}")?;
    Some((format!("{}}}", &text[..idx]), mac))
}

/// The log's files, oldest first: the segments by first sequence number, then the current
/// log (which may be missing). Each with its first sequence number, where known.
pub fn files(log: &Path) -> Vec<(Option<u64>, PathBuf)> {
    let dir = log.parent().unwrap_or(Path::new("."));
    let mut segs: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let first = name
                .strip_prefix("audit-")?
                .strip_suffix(".log")?
                .parse::<u64>()
                .ok()?;
            Some((first, e.path()))
        })
        .collect();
    segs.sort();
    let mut out: Vec<(Option<u64>, PathBuf)> =
        segs.into_iter().map(|(f, p)| (Some(f), p)).collect();
    out.push((None, log.to_path_buf()));
    out
}

/// The name of the segment whose first event is `first`.
pub fn segment_name(first: u64) -> String {
    format!("audit-{first:012}.log")
}

fn name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Verifies the whole chain, or, from `from`, only what was appended since.
pub fn verify(log: &Path, key: &[u8], from: Option<&Position>) -> Result<Position, Broken> {
    let all = files(log);
    let mut pos = from.cloned();
    // Where to begin: the file holding `from` (the current log then, maybe a segment now).
    let start = match &pos {
        None => 0,
        Some(p) => match all.iter().position(|(first, path)| {
            first == &Some(p.file_first)
                || (first.is_none() && file_first(path) == Some(p.file_first))
        }) {
            Some(i) => i,
            None => return verify(log, key, None),
        },
    };
    for (first, path) in &all[start..] {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && first.is_none() => break,
            Err(e) => {
                return Err(Broken {
                    file: name(path),
                    line: 0,
                    seq: 0,
                    reason: format!("cannot read: {e}"),
                })
            }
        };
        let this_first = first.or_else(|| file_first(path));
        let (mut offset, mut line_no) = match &pos {
            Some(p) if Some(p.file_first) == this_first => (p.offset, p.line),
            _ => (0, 0),
        };
        let mut reader = BufReader::new(file);
        reader.seek(SeekFrom::Start(offset)).map_err(|e| Broken {
            file: name(path),
            line: 0,
            seq: 0,
            reason: format!("cannot read: {e}"),
        })?;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).map_err(|e| Broken {
                file: name(path),
                line: line_no + 1,
                seq: 0,
                reason: format!("cannot read: {e}"),
            })?;
            if n == 0 {
                break;
            }
            if buf.last() != Some(&b'\n') {
                // A line still being written by another process: verified next time.
                break;
            }
            line_no += 1;
            let at = |reason: String, seq: u64| Broken {
                file: name(path),
                line: line_no,
                seq,
                reason,
            };
            let text = std::str::from_utf8(&buf[..buf.len() - 1])
                .map_err(|_| at("not UTF-8".into(), 0))?;
            let (body, mac) = split_line(text).ok_or_else(|| at("no MAC".into(), 0))?;
            let v: Value =
                serde_json::from_str(&body).map_err(|e| at(format!("not JSON: {e}"), 0))?;
            let seq = v
                .get("seq")
                .and_then(Value::as_u64)
                .ok_or_else(|| at("no sequence number".into(), 0))?;
            let p = match pos.as_mut() {
                Some(p) => p,
                None => {
                    // The chain's first line: event 1, or where retention says it resumes.
                    let prev = v
                        .get("prev")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let pending = (seq != 1 || prev != GENESIS).then(|| (seq, prev.clone()));
                    pos.insert(Position {
                        file_first: this_first.unwrap_or(seq),
                        offset: 0,
                        seq: seq.saturating_sub(1),
                        mac: if seq == 1 { GENESIS.to_string() } else { prev },
                        events: 0,
                        pending_start: pending,
                        line: 0,
                    })
                }
            };
            if seq != p.seq + 1 {
                return Err(at(
                    format!("sequence number {seq} where {} was due: events were removed, inserted or reordered", p.seq + 1),
                    p.seq + 1,
                ));
            }
            if seal(key, &p.mac, &body) != mac {
                return Err(at("MAC mismatch: the line was changed, inserted, removed or reordered, or the key is wrong".into(), seq));
            }
            if v.get("event").and_then(Value::as_str) == Some("audit.retention") {
                let resumes = v.get("resumes_at").and_then(Value::as_u64);
                let prev = v.get("prev_of_first").and_then(Value::as_str);
                if let Some((s, m)) = &p.pending_start {
                    if resumes == Some(*s) && prev == Some(m.as_str()) {
                        p.pending_start = None;
                    }
                }
            }
            offset += n as u64;
            p.file_first = this_first.unwrap_or(p.file_first);
            p.offset = offset;
            p.line = line_no;
            p.seq = seq;
            p.mac = mac.to_string();
            p.events += 1;
        }
    }
    let p = pos.unwrap_or(Position {
        file_first: 1,
        offset: 0,
        seq: 0,
        mac: GENESIS.to_string(),
        events: 0,
        pending_start: None,
        line: 0,
    });
    if let Some((s, _)) = &p.pending_start {
        return Err(Broken {
            file: name(log),
            line: 0,
            seq: *s,
            reason: format!("the log starts at event {s}, not 1, and no retention event in it says why: earlier events were removed"),
        });
    }
    Ok(p)
}

/// The first sequence number of the current log (from its first line), if it has one.
fn file_first(path: &Path) -> Option<u64> {
    let f = File::open(path).ok()?;
    let mut line = String::new();
    BufReader::new(f).read_line(&mut line).ok()?;
    let (body, _) = split_line(line.trim_end())?;
    serde_json::from_str::<Value>(&body)
        .ok()?
        .get("seq")?
        .as_u64()
}

/// Checks a forwarded copy of the log (a file sink, or a syslog or journal export: each
/// line holding one event's JSON somewhere) against the log: every event in the copy must be
/// in the log with the same MAC. Returns how many were checked, or the first one missing.
pub fn verify_against(log: &Path, copy: &Path) -> Result<u64, Broken> {
    let copy_file = File::open(copy).map_err(|e| Broken {
        file: name(copy),
        line: 0,
        seq: 0,
        reason: format!("cannot read: {e}"),
    })?;
    let mut local = Lines::new(log);
    let mut checked = 0;
    for (i, line) in BufReader::new(copy_file).lines().enumerate() {
        let Ok(line) = line else { continue };
        let Some(start) = line.find('{') else {
            continue;
        };
        let Some((body, mac)) = split_line(line[start..].trim_end()) else {
            continue;
        };
        let Some(seq) = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("seq").and_then(Value::as_u64))
        else {
            continue;
        };
        let time = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("time").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        match local.find(seq) {
            Some(m) if m == mac => checked += 1,
            Some(_) => {
                return Err(Broken {
                    file: name(copy),
                    line: i as u64 + 1,
                    seq,
                    reason: format!("event {seq} ({time}) differs between the copy and the log: the log's was changed"),
                })
            }
            None => {
                return Err(Broken {
                    file: name(copy),
                    line: i as u64 + 1,
                    seq,
                    reason: format!("event {seq} ({time}) is in the forwarded copy but missing from the log"),
                })
            }
        }
    }
    Ok(checked)
}

/// The log's lines in order, across its files, looked up by increasing sequence number.
struct Lines {
    files: Vec<PathBuf>,
    current: Option<std::io::Lines<BufReader<File>>>,
}

impl Lines {
    fn new(log: &Path) -> Lines {
        Lines {
            files: files(log).into_iter().map(|(_, p)| p).rev().collect(),
            current: None,
        }
    }

    /// The MAC of event `seq`, reading forward (sequence numbers asked for only grow).
    fn find(&mut self, seq: u64) -> Option<String> {
        loop {
            if self.current.is_none() {
                let next = self.files.pop()?;
                self.current = File::open(next).ok().map(|f| BufReader::new(f).lines());
                continue;
            }
            match self.current.as_mut().and_then(|l| l.next()) {
                Some(Ok(line)) => {
                    let Some((body, mac)) = split_line(&line) else {
                        continue;
                    };
                    let s = serde_json::from_str::<Value>(&body)
                        .ok()
                        .and_then(|v| v.get("seq").and_then(Value::as_u64));
                    match s {
                        Some(s) if s == seq => return Some(mac.to_string()),
                        // Past it: the log does not have it.
                        Some(s) if s > seq => return None,
                        _ => {}
                    }
                }
                Some(Err(_)) | None => self.current = None,
            }
        }
    }
}

/// The last line of a file, read from its end.
pub fn last_line(path: &Path) -> std::io::Result<Option<String>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut end = len;
    let mut tail: Vec<u8> = Vec::new();
    while end > 0 {
        let start = end.saturating_sub(4096);
        let mut block = vec![0u8; (end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
        // The last complete line: between the newline before it and the final newline.
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(String::from_utf8_lossy(&body[i + 1..]).into_owned()));
        }
        end = start;
    }
    let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
    Ok((!body.is_empty()).then(|| String::from_utf8_lossy(body).into_owned()))
}
