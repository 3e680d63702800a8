//! The audit log: one JSON object per line, each sealed with an HMAC-SHA256 over the
//! previous line's MAC and its own body, so that editing, deleting, inserting or reordering
//! lines is detected by `cordon audit verify`. A head file (last sequence number and MAC)
//! catches lines cut from the end. The key lives in the data directory and is not the
//! recording key.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

type HmacSha256 = Hmac<Sha256>;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const MAC_FIELD: &str = ",\"mac\":\"";

/// An event to record: what happened, who did it, and its details.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub event: &'static str,
    pub actor: String,
    pub fields: Map<String, Value>,
}

impl AuditEvent {
    pub fn new(event: &'static str, actor: impl Into<String>) -> AuditEvent {
        AuditEvent { event, actor: actor.into(), fields: Map::new() }
    }

    /// Adds a field; string values pass through the one masker ([`crate::masking`]) first.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> AuditEvent {
        let v = match value.into() {
            Value::String(s) => Value::String(crate::masking::mask_text(&s)),
            other => other,
        };
        self.fields.insert(key.to_string(), v);
        self
    }
}

struct Tail {
    seq: u64,
    mac: String,
}

/// An open audit log, appended to under a lock.
pub struct AuditLog {
    path: PathBuf,
    head: PathBuf,
    key: Vec<u8>,
    tail: Mutex<(File, Tail)>,
}

/// Why verification failed: the first bad line and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub struct Broken {
    pub line: u64,
    pub reason: String,
}

impl AuditLog {
    /// Opens (creating) the log at `path`, continuing its chain. A log whose last line does
    /// not verify is refused: appending to a broken chain would hide the break.
    pub fn open(path: &Path, key: Vec<u8>) -> Result<AuditLog, String> {
        let head = path.with_extension("head");
        let tail = match verify_file(path, &key, Some(&head)) {
            Ok((seq, mac)) => Tail { seq, mac },
            Err(b) => return Err(format!("{}: line {}: {} (run `cordon audit verify`)", path.display(), b.line, b.reason)),
        };
        let file =
            OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        Ok(AuditLog { path: path.to_path_buf(), head, key, tail: Mutex::new((file, tail)) })
    }

    /// The log's path.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event`, sealed, and flushes it to disk. Several processes may append (the
    /// host and `cordon user ...`): an exclusive file lock orders them, and the chain's tail
    /// is re-read from the head file under that lock.
    pub fn record(&self, event: AuditEvent) -> Result<(), String> {
        let mut guard = self.tail.lock().map_err(|_| "the audit log lock is poisoned".to_string())?;
        let (file, tail) = &mut *guard;
        let _lock = FileLock::exclusive(file).map_err(|e| format!("locking {}: {e}", self.path.display()))?;
        if let Some((seq, mac)) = read_head(&self.head) {
            if seq >= tail.seq {
                *tail = Tail { seq, mac };
            }
        }
        let mut obj = Map::new();
        obj.insert("seq".into(), Value::from(tail.seq + 1));
        obj.insert("time".into(), Value::from(now_rfc3339()));
        obj.insert("event".into(), Value::from(event.event));
        obj.insert("actor".into(), Value::from(crate::masking::mask_text(&event.actor)));
        for (k, v) in event.fields {
            if !matches!(k.as_str(), "seq" | "time" | "event" | "actor" | "prev" | "mac") {
                obj.insert(k, v);
            }
        }
        obj.insert("prev".into(), Value::from(tail.mac.clone()));
        let body = serde_json::to_string(&Value::Object(obj)).map_err(|e| e.to_string())?;
        let mac = seal(&self.key, &tail.mac, &body);
        let line = format!("{}{MAC_FIELD}{mac}\"}}\n", &body[..body.len() - 1]);
        file.write_all(line.as_bytes()).and_then(|_| file.sync_data()).map_err(|e| format!("writing {}: {e}", self.path.display()))?;
        tail.seq += 1;
        tail.mac = mac;
        write_head(&self.head, tail.seq, &tail.mac)
    }
}

/// flock(2) held for a scope.
struct FileLock(i32);

impl FileLock {
    fn exclusive(f: &File) -> std::io::Result<FileLock> {
        use std::os::fd::AsRawFd;
        let fd = f.as_raw_fd();
        // SAFETY: flock on an fd we hold open for the lock's lifetime.
        while unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(FileLock(fd))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking the fd locked above.
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }
}

fn read_head(head: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(head).ok()?;
    let mut parts = text.split_whitespace();
    Some((parts.next()?.parse().ok()?, parts.next()?.to_string()))
}

fn seal(key: &[u8], prev: &str, body: &str) -> String {
    // HMAC accepts keys of any length; 32 bytes come from the key file.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(prev.as_bytes());
    m.update(b"\n");
    m.update(body.as_bytes());
    crate::secrets::hex(&m.finalize().into_bytes())
}

fn write_head(head: &Path, seq: u64, mac: &str) -> Result<(), String> {
    let tmp = head.with_extension("head.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    f.write_all(format!("{seq} {mac}\n").as_bytes()).and_then(|_| f.sync_data()).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, head).map_err(|e| format!("writing {}: {e}", head.display()))
}

/// Checks every line of the log; returns the last sequence number and MAC, or the first
/// bad line. With `head`, also checks that nothing was cut from the end.
pub fn verify_file(path: &Path, key: &[u8], head: Option<&Path>) -> Result<(u64, String), Broken> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match head.and_then(|h| std::fs::read_to_string(h).ok()) {
                Some(h) if !h.trim().is_empty() => {
                    Err(Broken { line: 1, reason: "the log is missing but its head file says it had lines".into() })
                }
                _ => Ok((0, GENESIS.to_string())),
            };
        }
        Err(e) => return Err(Broken { line: 0, reason: format!("cannot read: {e}") }),
    };
    let mut prev = GENESIS.to_string();
    let mut seq = 0u64;
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let n = i as u64 + 1;
        let line = line.map_err(|e| Broken { line: n, reason: format!("cannot read: {e}") })?;
        let text = String::from_utf8(line).map_err(|_| Broken { line: n, reason: "not UTF-8".into() })?;
        let idx = text.rfind(MAC_FIELD).ok_or_else(|| Broken { line: n, reason: "no MAC".into() })?;
        let mac =
            text[idx + MAC_FIELD.len()..].strip_suffix("\"}").ok_or_else(|| Broken { line: n, reason: "malformed MAC field".into() })?;
        let body = format!("{}}}", &text[..idx]);
        if seal(key, &prev, &body) != mac {
            return Err(Broken {
                line: n,
                reason: "MAC mismatch: the line was changed, inserted, removed or reordered, or the key is wrong".into(),
            });
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| Broken { line: n, reason: format!("not JSON: {e}") })?;
        if v.get("seq").and_then(Value::as_u64) != Some(seq + 1) {
            return Err(Broken { line: n, reason: format!("sequence number is not {}", seq + 1) });
        }
        seq += 1;
        prev = mac.to_string();
    }
    if let Some(h) = head.and_then(|h| std::fs::read_to_string(h).ok()) {
        let mut parts = h.split_whitespace();
        let (hs, hm) = (parts.next().and_then(|s| s.parse::<u64>().ok()), parts.next());
        if hs != Some(seq) || hm != Some(prev.as_str()) {
            return Err(Broken {
                line: seq + 1,
                reason: format!("the log ends at line {seq} but its head file says {}: lines were cut from the end", hs.unwrap_or(0)),
            });
        }
    }
    Ok((seq, prev))
}

/// The lines of the log, parsed (for `audit tail`).
pub fn read_events(path: &Path) -> Vec<Value> {
    let Ok(f) = File::open(path) else { return Vec::new() };
    BufReader::new(f).lines().map_while(Result::ok).filter_map(|l| serde_json::from_str(&l).ok()).collect()
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// A time as RFC 3339 UTC with milliseconds (sorts as text in time order).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(dir: &Path) -> AuditLog {
        AuditLog::open(&dir.join("audit.log"), vec![7u8; 32]).unwrap()
    }

    #[test]
    fn a_chain_of_events_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let l = log(dir.path());
        for i in 0..5 {
            l.record(AuditEvent::new("login", "alice").with("n", i)).unwrap();
        }
        assert_eq!(verify_file(l.path(), &[7u8; 32], Some(&l.head)).map(|(s, _)| s), Ok(5));
        drop(l);
        let l = log(dir.path());
        l.record(AuditEvent::new("logout", "alice")).unwrap();
        assert_eq!(verify_file(l.path(), &[7u8; 32], Some(&l.head)).map(|(s, _)| s), Ok(6));
    }

    #[test]
    fn one_changed_byte_is_found_on_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let l = log(dir.path());
        for i in 0..4 {
            l.record(AuditEvent::new("login", "alice").with("n", i)).unwrap();
        }
        let text = std::fs::read_to_string(l.path()).unwrap();
        let third = text.lines().take(2).map(|x| x.len() + 1).sum::<usize>();
        let mut bytes = text.into_bytes();
        let pos = third + bytes[third..].iter().position(|&b| b == b'a').unwrap();
        bytes[pos] = b'b';
        std::fs::write(l.path(), bytes).unwrap();
        let e = verify_file(l.path(), &[7u8; 32], Some(&l.head)).unwrap_err();
        assert_eq!(e.line, 3, "{e:?}");
    }

    #[test]
    fn deleted_reordered_and_truncated_lines_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let l = log(dir.path());
        for i in 0..4 {
            l.record(AuditEvent::new("x", "a").with("n", i)).unwrap();
        }
        let text = std::fs::read_to_string(l.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let write = |ls: &[&str]| std::fs::write(l.path(), ls.iter().map(|x| format!("{x}\n")).collect::<String>()).unwrap();
        write(&[lines[0], lines[2], lines[3]]);
        assert_eq!(verify_file(l.path(), &[7u8; 32], Some(&l.head)).unwrap_err().line, 2);
        write(&[lines[1], lines[0], lines[2], lines[3]]);
        assert_eq!(verify_file(l.path(), &[7u8; 32], Some(&l.head)).unwrap_err().line, 1);
        write(&lines[..3]);
        assert!(verify_file(l.path(), &[7u8; 32], Some(&l.head)).unwrap_err().reason.contains("cut from the end"));
        write(&lines);
        assert!(verify_file(l.path(), &[8u8; 32], None).is_err(), "a wrong key fails");
    }

    #[test]
    fn secrets_are_masked() {
        let e = AuditEvent::new("run", "alice").with("argv", "curl -H Authorization: Bearer abc123 x").with("env", "API_TOKEN=xyz make");
        assert_eq!(e.fields["argv"], "curl -H Authorization: Bearer *** x");
        assert_eq!(e.fields["env"], "API_TOKEN=*** make");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
