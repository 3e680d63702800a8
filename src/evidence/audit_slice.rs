//! The audit slice of a bundle: the log's lines, as written (MACs and links kept), from the
//! first event that names the selection to the last, every event between included so that a
//! missing one shows, up to the event the host verified the chain through.

use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

/// The slice, and which of its events name the selection.
#[derive(Debug, Default)]
pub struct Slice {
    pub lines: Vec<u8>,
    pub first_seq: u64,
    pub last_seq: u64,
    pub events: u64,
    pub selected: Vec<u64>,
}

/// Each line of the log (every segment, oldest first) up to event `through`, parsed, with
/// its text; `f` returns false to stop.
fn each_line(
    log: &Path,
    through: u64,
    mut f: impl FnMut(u64, &Value, &str) -> Result<bool, String>,
) -> Result<(), String> {
    for (_, path) in crate::audit::chain::files(log) {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|e| format!("reading {}: {e}", path.display()))?;
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let Some(seq) = v["seq"].as_u64() else {
                continue;
            };
            if seq > through {
                return Ok(());
            }
            if !f(seq, &v, &line)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reads the slice of events `selects` picks from the log at `log`, up to event `through`,
/// at most `max_bytes` of lines (a wider slice is refused: narrow the selection).
pub fn read(
    log: &Path,
    through: u64,
    selects: &dyn Fn(&Value) -> bool,
    max_bytes: u64,
) -> Result<Slice, String> {
    let mut selected = Vec::new();
    each_line(log, through, |seq, v, _| {
        if selects(v) {
            selected.push(seq);
        }
        Ok(true)
    })?;
    let (Some(&first), Some(&last)) = (selected.first(), selected.last()) else {
        return Ok(Slice::default());
    };
    let mut lines = Vec::new();
    let mut events = 0;
    each_line(log, last, |seq, _, text| {
        if seq < first {
            return Ok(true);
        }
        lines.extend_from_slice(text.as_bytes());
        lines.push(b'\n');
        events += 1;
        if lines.len() as u64 > max_bytes {
            return Err(format!(
                "the audit events from {first} to {last} are more than {} MiB: narrow the selection",
                max_bytes >> 20
            ));
        }
        Ok(true)
    })?;
    Ok(Slice {
        lines,
        first_seq: first,
        last_seq: last,
        events,
        selected,
    })
}
