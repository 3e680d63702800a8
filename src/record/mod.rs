//! Recordings: every session recorded from its first byte, encrypted and tamper-evident
//! (the container is in `format`), listed in the store's catalog, verified and exported
//! (asciicast v2 and v3 for asciinema's tools, or the raw output bytes).

pub mod cli;
pub mod format;

use format::{Ending, Event, Header, Writer, EXIT, OUTPUT, RESIZE};
use std::path::{Path, PathBuf};

/// What happens when a recording cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The session ends, with a message to its users and an audit event.
    Strict,
    /// The session goes on; the gap is audited and marked in the recording.
    BestEffort,
}

/// Where recordings go and the key they are sealed with.
pub struct Recorder {
    pub dir: PathBuf,
    master: Vec<u8>,
    pub policy: FailurePolicy,
}

impl Recorder {
    pub fn new(dir: PathBuf, master: Vec<u8>, policy: FailurePolicy) -> Result<Recorder, String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        Ok(Recorder { dir, master, policy })
    }

    pub fn key_id(&self) -> String {
        format::key_id(&self.master)
    }

    /// Starts a recording for a session.
    pub fn start(&self, session: u64, spec: &crate::sessions::Spec) -> Result<(Header, PathBuf, Writer), String> {
        let id = crate::secrets::hex(&crate::secrets::random_bytes(8).map_err(|e| e.to_string())?);
        let salt = crate::secrets::hex(&crate::secrets::random_bytes(16).map_err(|e| e.to_string())?);
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let header = Header {
            id: id.clone(),
            session,
            user: spec.owner.clone(),
            profile: spec.profile.clone(),
            command: spec.command.clone(),
            cols: spec.cols,
            rows: spec.rows,
            term: spec.term.clone(),
            started,
            key_id: self.key_id(),
            salt,
        };
        let path = self.dir.join(format!("{id}.rec"));
        let w = Writer::create(&path, &header, &self.master)?;
        Ok((header, path, w))
    }
}

/// The recording key: `keys/recording.key` (32 bytes, 0600), made on first use. Not the
/// audit key.
pub fn master_key(data: &crate::paths::DataDir) -> Result<Vec<u8>, String> {
    crate::secrets::load_or_create_key(&data.root.join("keys/recording.key"))
}

/// What `verify` concludes.
pub fn verdict(path: &Path, master: &[u8], ended_cleanly: bool) -> Result<String, String> {
    match format::read(path, master) {
        Ok(r) => Ok(match (r.ending, ended_cleanly) {
            (Ending::Complete, _) => format!("ok: complete, {} events, {:.1} s", r.events.len(), duration(&r.events)),
            (Ending::NoFinalChunk { chunks }, false) => {
                format!("interrupted: the host stopped while recording; readable up to {:.1} s ({chunks} chunks)", duration(&r.events))
            }
            (Ending::NoFinalChunk { chunks }, true) => {
                return Err(format!("TRUNCATED: the session ended cleanly but the recording stops after chunk {chunks}"))
            }
        }),
        Err(d) => Err(format!("DAMAGED: {d}")),
    }
}

fn duration(events: &[Event]) -> f64 {
    events.last().map(|e| e.at_us as f64 / 1e6).unwrap_or(0.0)
}

/// Output bytes decoded as UTF-8 across event boundaries: an incomplete sequence at the end
/// of one event waits for the next; invalid bytes become U+FFFD.
struct Utf8Carry(Vec<u8>);

impl Utf8Carry {
    fn feed(&mut self, data: &[u8]) -> String {
        self.0.extend_from_slice(data);
        let mut out = String::new();
        let mut rest: &[u8] = &self.0;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{fffd}');
                            rest = &bad[n..];
                        }
                        None => {
                            rest = bad;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.to_vec();
        self.0 = keep;
        out
    }
}

/// Exports to asciicast v2 (absolute times) or v3 (intervals, rounded to milliseconds with
/// the rounding error carried forward, and the exit status last).
pub fn asciicast(rec: &format::Recording, version: u8) -> String {
    let h = &rec.header;
    let mut out = String::new();
    let title = format!("cordon session {} ({}, {})", h.session, h.user, h.profile);
    let header = if version == 2 {
        serde_json::json!({"version": 2, "width": h.cols, "height": h.rows, "timestamp": h.started, "title": title, "env": {"TERM": h.term, "SHELL": "/bin/sh"}})
    } else {
        serde_json::json!({"version": 3, "term": {"cols": h.cols, "rows": h.rows, "type": h.term}, "timestamp": h.started, "title": title, "command": h.command.join(" ")})
    };
    out.push_str(&header.to_string());
    out.push('\n');
    let mut utf8 = Utf8Carry(Vec::new());
    let mut emitted_ms: u64 = 0;
    for e in &rec.events {
        let code = match e.kind {
            OUTPUT => "o",
            RESIZE => "r",
            format::INPUT => "i",
            format::MARKER | format::GAP => "m",
            EXIT if version == 3 => "x",
            _ => continue,
        };
        let text = if e.kind == OUTPUT { utf8.feed(&e.data) } else { String::from_utf8_lossy(&e.data).into_owned() };
        if e.kind == OUTPUT && text.is_empty() {
            continue;
        }
        let line = if version == 2 {
            serde_json::json!([e.at_us as f64 / 1e6, code, text])
        } else {
            let now_ms = (e.at_us + 500) / 1000;
            let interval = now_ms.saturating_sub(emitted_ms);
            emitted_ms += interval;
            serde_json::json!([interval as f64 / 1000.0, code, text])
        };
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// The output bytes exactly as the session wrote them.
pub fn raw(rec: &format::Recording) -> Vec<u8> {
    rec.events.iter().filter(|e| e.kind == OUTPUT).flat_map(|e| e.data.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_across_events_is_kept_whole() {
        let mut c = Utf8Carry(Vec::new());
        let snow = "☃".as_bytes();
        assert_eq!(c.feed(&[b'a', snow[0]]), "a");
        assert_eq!(c.feed(&snow[1..]), "☃");
        assert_eq!(c.feed(&[0xff, b'b']), "\u{fffd}b");
    }

    #[test]
    fn v3_intervals_do_not_drift() {
        let key = [1u8; 32];
        let header = format::tests::header(&key);
        let events: Vec<Event> = (1..=1000).map(|i| Event { at_us: i * 1_400, kind: OUTPUT, data: b"x".to_vec() }).collect();
        let rec = format::Recording { header, events, ending: Ending::Complete };
        let cast = asciicast(&rec, 3);
        let total: f64 = cast.lines().skip(1).map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()[0].as_f64().unwrap()).sum();
        assert!((total - 1.4).abs() < 0.0015, "intervals sum to {total}, not 1.4 s");
        let v2 = asciicast(&rec, 2);
        assert!(v2.lines().next().unwrap().contains("\"version\":2"));
    }
}
