//! The audit log: one JSON object per line, each sealed with an HMAC-SHA256 over the
//! previous line's MAC and its own body, so that editing, deleting, inserting or reordering
//! lines is detected by `cordon audit verify`. A head file (the last sequence number and
//! MAC, itself sealed with the key) catches lines cut from the end; copies forwarded to
//! syslog or an append-only file ([`sinks`]) catch a log replaced or cut by someone who
//! holds the key too. The log rotates into segments (`audit-<first seq>.log`) whose chain
//! runs on across files; retention removes the oldest and says so in the chain. The key
//! lives in the data directory and is not the recording key.

pub mod catalogue;
pub mod chain;
pub mod read;
pub mod sinks;

pub use catalogue::Kind;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use chain::Broken;

type HmacSha256 = Hmac<Sha256>;

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const MAC_FIELD: &str = ",\"mac\":\"";

/// Why the audit log could not be opened or written, or a forwarding target was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The system refused to `action` a file of the log (its disk, its permissions).
    #[error("{action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The log does not go on from its sealed head (cut, added to, or broken): appending to
    /// it would hide that.
    #[error("{}: {why} (run `cordon audit verify`)", .log.display())]
    Refused { log: PathBuf, why: String },
    /// The head file is not a head sealed with the key.
    #[error("{0}")]
    Head(&'static str),
    /// A thread panicked while appending; the tail it left is not trusted.
    #[error(
        "the audit log lock is poisoned (a thread panicked while writing it); restart the host"
    )]
    Poisoned,
    /// The event could not be put as JSON.
    #[error("encoding an audit event: {0}")]
    Encode(#[from] serde_json::Error),
    /// Retention removed every segment that begins the chain.
    #[error("after retention the log has no first event")]
    NoFirstEvent,
    /// `[audit] forward` names no place to forward to.
    #[error("\"{0}\" is not a place to forward to (\"syslog\", or \"file:/absolute/path\")")]
    Target(String),
}

impl AuditError {
    /// For `map_err`: `action` on `path` failed.
    fn io<'a>(
        action: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(std::io::Error) -> AuditError + 'a {
        move |source| AuditError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How the log is kept: when it rotates, and where copies go.
#[derive(Debug, Clone)]
pub struct Options {
    /// The current log becomes a segment once it holds this many bytes.
    pub segment_size: u64,
    /// Copies of every event.
    pub forward: Vec<sinks::Target>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            segment_size: 64 << 20,
            forward: Vec::new(),
        }
    }
}

/// An event to record: what happened, who did it, and its details.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub event: Kind,
    pub actor: String,
    pub fields: Map<String, Value>,
}

impl AuditEvent {
    pub fn new(event: Kind, actor: impl Into<String>) -> AuditEvent {
        AuditEvent {
            event,
            actor: actor.into(),
            fields: Map::new(),
        }
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
    options: Options,
    sinks: Vec<sinks::Sink>,
    tail: Mutex<(File, Tail)>,
    /// The name of the host writing (`[cluster] name`), put in each event as `node`.
    node: Option<String>,
}

/// The head file's seal: it binds the last sequence number and MAC to the key.
fn seal_head(key: &[u8], seq: u64, mac: &str) -> String {
    seal(key, "cordon audit head", &format!("{seq} {mac}"))
}

/// What the head file says: Ok(None) when there is none, Err when it is not sealed by the
/// key (written by hand, or by a cordon from before heads were sealed).
fn read_head(path: &Path, key: &[u8]) -> Result<Option<(u64, String)>, AuditError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AuditError::io("reading", path)(e)),
    };
    let parts: Vec<&str> = text.split_whitespace().collect();
    let not_a_head = AuditError::Head("the head file is not a head");
    let (seq, mac) = match parts.as_slice() {
        [s, m, _] | [s, m] => (s.parse::<u64>().map_err(|_| not_a_head)?, m.to_string()),
        _ => return Err(not_a_head),
    };
    match parts.get(2) {
        Some(sealed) if *sealed == seal_head(key, seq, &mac) => Ok(Some((seq, mac))),
        Some(_) => Err(AuditError::Head(
            "the head file's seal does not match: it was written without the key",
        )),
        None => Err(AuditError::Head(
            "the head file is not sealed (written by hand, or by an older cordon)",
        )),
    }
}

fn write_head(head: &Path, key: &[u8], seq: u64, mac: &str) -> Result<(), AuditError> {
    let tmp = head.with_extension("head.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(AuditError::io("writing", &tmp))?;
    f.write_all(format!("{seq} {mac} {}\n", seal_head(key, seq, mac)).as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(AuditError::io("writing", &tmp))?;
    std::fs::rename(&tmp, head).map_err(AuditError::io("writing", head))
}

/// The last event of the log (across its files): its sequence number and MAC.
fn last_event(log: &Path) -> Result<Option<(u64, String)>, AuditError> {
    let refuse = |path: &Path, what: &str| AuditError::Refused {
        log: log.to_path_buf(),
        why: format!("{}: {what}", path.display()),
    };
    for (_, path) in chain::files(log).into_iter().rev() {
        match chain::last_line(&path) {
            Ok(Some(line)) => {
                let (body, mac) = chain::split_line(&line)
                    .ok_or_else(|| refuse(&path, "its last line has no MAC"))?;
                let seq = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("seq").and_then(Value::as_u64))
                    .ok_or_else(|| refuse(&path, "its last line has no sequence number"))?;
                return Ok(Some((seq, mac.to_string())));
            }
            Ok(None) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(AuditError::io("reading", &path)(e)),
        }
    }
    Ok(None)
}

impl AuditLog {
    /// Opens (creating) the log at `path`, continuing its chain from the sealed head, which
    /// must match the log's last line: appending to a cut or broken log would hide it.
    /// `unsealed_ok` lets a log from before sealed heads be opened once (its whole chain is
    /// then verified instead, and the head sealed).
    pub fn open(
        path: &Path,
        key: Vec<u8>,
        options: Options,
        unsealed_ok: bool,
    ) -> Result<AuditLog, AuditError> {
        let head = path.with_extension("head");
        let refuse = |why: String| AuditError::Refused {
            log: path.to_path_buf(),
            why,
        };
        // Read under the lock appenders take (see `record`): another process (the host, or
        // `cordon token issue` beside it) may be between writing a line and sealing the head.
        let mut file;
        let lock = loop {
            file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(AuditError::io("opening", path))?;
            let lock = FileLock::exclusive(&file).map_err(AuditError::io("locking", path))?;
            if same_file(&file, path) {
                break lock;
            }
        };
        let last = last_event(path)?;
        let tail = match read_head(&head, &key) {
            Ok(Some((seq, mac))) => match &last {
                Some((s, m)) if *s == seq && *m == mac => Tail { seq, mac },
                // A crash (or a kill) between writing a line and sealing the head leaves the
                // log one event ahead of it. That event carries a MAC only the key makes, so
                // once the whole chain verifies it is the host's own, not an addition: the
                // head is sealed forward rather than the host refusing to start.
                Some((s, _)) if *s == seq + 1 => {
                    let p = chain::verify(path, &key, None).map_err(|b| refuse(b.to_string()))?;
                    write_head(&head, &key, p.seq, &p.mac)?;
                    Tail {
                        seq: p.seq,
                        mac: p.mac,
                    }
                }
                Some((s, _)) => {
                    return Err(refuse(format!(
                    "the log ends at event {s} but its head says {seq}: events were cut or added"
                )))
                }
                None => {
                    return Err(refuse(format!(
                        "the log is missing but its head says it held {seq} events"
                    )))
                }
            },
            Ok(None) if last.is_none() => Tail {
                seq: 0,
                mac: GENESIS.to_string(),
            },
            Ok(None) | Err(_) if unsealed_ok => {
                let p = chain::verify(path, &key, None).map_err(|b| refuse(b.to_string()))?;
                write_head(&head, &key, p.seq, &p.mac)?;
                Tail {
                    seq: p.seq,
                    mac: p.mac,
                }
            }
            Ok(None) => return Err(refuse("the log has events but no head file".into())),
            Err(e @ AuditError::Io { .. }) => return Err(e),
            Err(e) => return Err(refuse(e.to_string())),
        };
        drop(lock);
        let sinks = options
            .forward
            .iter()
            .cloned()
            .map(sinks::Sink::new)
            .collect();
        Ok(AuditLog {
            path: path.to_path_buf(),
            head,
            key,
            options,
            sinks,
            tail: Mutex::new((file, tail)),
            node: None,
        })
    }

    /// Names the host in every event written from now on (field `node`): hosts sharing a
    /// store each keep their own chain, and the events say whose.
    pub fn naming(mut self, node: &str) -> AuditLog {
        self.node = Some(node.to_string());
        self
    }

    /// The log's path.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last event written: its sequence number and MAC.
    pub fn last(&self) -> (u64, String) {
        let g = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        (g.1.seq, g.1.mac.clone())
    }

    /// Appends `event`, sealed, flushes it to disk, seals the head, rotates a full log into
    /// a segment, and sends the line to the forwarding sinks. Several processes may append
    /// (the host and `cordon user ...`): an exclusive file lock orders them, and the chain's
    /// tail is re-read from the head under that lock.
    pub fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let mut guard = self.tail.lock().map_err(|_| AuditError::Poisoned)?;
        let (file, tail) = &mut *guard;
        // The lock is taken on the log as it is named now: another process may have rotated
        // the file this one holds into a segment.
        let mut lock;
        loop {
            lock = FileLock::exclusive(file).map_err(AuditError::io("locking", &self.path))?;
            if same_file(file, &self.path) {
                break;
            }
            drop(lock);
            *file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)
                .map_err(AuditError::io("opening", &self.path))?;
        }
        if let Ok(Some((seq, mac))) = read_head(&self.head, &self.key) {
            if seq >= tail.seq {
                *tail = Tail { seq, mac };
            }
        }
        let mut obj = Map::new();
        obj.insert("seq".into(), Value::from(tail.seq + 1));
        obj.insert("time".into(), Value::from(now_rfc3339()));
        obj.insert("event".into(), Value::from(event.event.name()));
        obj.insert(
            "actor".into(),
            Value::from(crate::masking::mask_text(&event.actor)),
        );
        for (k, v) in event.fields {
            if !matches!(
                k.as_str(),
                "seq" | "time" | "event" | "actor" | "prev" | "mac" | "node"
            ) {
                obj.insert(k, v);
            }
        }
        if let Some(node) = &self.node {
            obj.insert("node".into(), Value::from(node.clone()));
        }
        obj.insert("prev".into(), Value::from(tail.mac.clone()));
        let body = serde_json::to_string(&Value::Object(obj))?;
        let mac = seal(&self.key, &tail.mac, &body);
        let line = format!("{}{MAC_FIELD}{mac}\"}}\n", &body[..body.len() - 1]);
        file.write_all(line.as_bytes())
            .and_then(|_| file.sync_data())
            .map_err(AuditError::io("writing", &self.path))?;
        tail.seq += 1;
        tail.mac = mac;
        write_head(&self.head, &self.key, tail.seq, &tail.mac)?;
        if file.metadata().map(|m| m.len()).unwrap_or(0) >= self.options.segment_size {
            self.rotate(file)?;
        }
        drop(lock);
        for s in &self.sinks {
            s.send(&line);
        }
        Ok(())
    }

    /// Renames the full current log into a segment named by its first event (under the lock
    /// `record` holds) and starts an empty one; the chain runs on across the files.
    fn rotate(&self, file: &mut File) -> Result<(), AuditError> {
        let first = chain::files(&self.path).last().and_then(|(_, p)| {
            let line = std::io::BufRead::lines(std::io::BufReader::new(File::open(p).ok()?))
                .next()?
                .ok()?;
            let (body, _) = chain::split_line(&line)?;
            serde_json::from_str::<Value>(&body)
                .ok()?
                .get("seq")?
                .as_u64()
        });
        let Some(first) = first else { return Ok(()) };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let segment = dir.join(chain::segment_name(first));
        std::fs::rename(&self.path, &segment).map_err(AuditError::io("rotating", &self.path))?;
        *file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(AuditError::io("opening", &self.path))?;
        Ok(())
    }

    /// Removes the oldest segments whose every event is older than `max_age`, and records
    /// where the chain now begins (`audit.retention`, with the first kept event and the MAC
    /// before it), so that verification knows the start is not a cut. Returns the files
    /// removed.
    pub fn apply_retention(&self, max_age: std::time::Duration) -> Result<Vec<String>, AuditError> {
        let cutoff = rfc3339(std::time::SystemTime::now() - max_age);
        let mut removed = Vec::new();
        let files = chain::files(&self.path);
        // Never the newest file: something must remain to begin the chain.
        for (first, path) in files.iter().take(files.len().saturating_sub(1)) {
            if first.is_none() {
                break;
            }
            let newest = chain::last_line(path)
                .ok()
                .flatten()
                .and_then(|l| {
                    chain::split_line(&l).and_then(|(b, _)| serde_json::from_str::<Value>(&b).ok())
                })
                .and_then(|v| v.get("time").and_then(Value::as_str).map(str::to_string));
            match newest {
                Some(t) if t < cutoff => {
                    std::fs::remove_file(path).map_err(AuditError::io("removing", path))?;
                    removed.push(
                        path.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                    );
                }
                _ => break,
            }
        }
        if removed.is_empty() {
            return Ok(removed);
        }
        let (seq, prev) = chain::files(&self.path)
            .into_iter()
            .find_map(|(_, p)| {
                let line = std::io::BufRead::lines(std::io::BufReader::new(File::open(p).ok()?))
                    .next()?
                    .ok()?;
                let (body, _) = chain::split_line(&line)?;
                let v = serde_json::from_str::<Value>(&body).ok()?;
                Some((
                    v.get("seq")?.as_u64()?,
                    v.get("prev")?.as_str()?.to_string(),
                ))
            })
            .ok_or(AuditError::NoFirstEvent)?;
        self.record(
            AuditEvent::new(Kind::AuditRetention, "cordon")
                .with("removed", removed.clone())
                .with("resumes_at", seq)
                .with("prev_of_first", prev)
                .with("older_than", cutoff),
        )?;
        Ok(removed)
    }
}

/// Whether `file` is still the file named `path` (not rotated away).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Events that could not be written since the host started (for /metrics).
pub static ERRORS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl AuditLog {
    /// Records an event whose action has happened already (docs/audit-events.md, "When an
    /// event cannot be written"): a failure cannot undo it, so it is said on standard error,
    /// with the event's name, and counted.
    pub fn report(&self, event: AuditEvent) {
        let name = event.event.name();
        if let Err(e) = self.record(event) {
            ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            eprintln!("cordon: audit log: {name} not written: {e}");
        }
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

fn seal(key: &[u8], prev: &str, body: &str) -> String {
    // HMAC accepts keys of any length; 32 bytes come from the key file.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(prev.as_bytes());
    m.update(b"\n");
    m.update(body.as_bytes());
    crate::secrets::hex(&m.finalize().into_bytes())
}

/// The whole log verified: every line of every segment, the chain's start (event 1, or
/// where a retention event says it resumes), the sealed head, and, when the host has
/// checkpointed it, that the log still holds the event the database saw last. Returns the
/// events verified and the last one, or what is wrong.
pub fn verify_log(
    log: &Path,
    key: &[u8],
    checkpoint: Option<(u64, String)>,
) -> Result<chain::Position, Broken> {
    verify_log_from(log, key, checkpoint, None)
}

/// [`verify_log`], reading only what was appended after `from` (a position an earlier
/// verification returned); the head and the checkpoint are checked in full either way.
pub fn verify_log_from(
    log: &Path,
    key: &[u8],
    checkpoint: Option<(u64, String)>,
    from: Option<&chain::Position>,
) -> Result<chain::Position, Broken> {
    let name = log
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let broken = |seq: u64, reason: String| Broken {
        file: name.clone(),
        line: 0,
        seq,
        reason,
    };
    let pos = chain::verify(log, key, from)?;
    let head = log.with_extension("head");
    match read_head(&head, key) {
        Ok(Some((seq, mac))) if seq == pos.seq && mac == pos.mac => {}
        Ok(Some((seq, _))) if seq > pos.seq => {
            return Err(broken(
                pos.seq + 1,
                format!(
                "the log ends at event {} but its head says {seq}: events were cut from the end",
                pos.seq
            ),
            ))
        }
        Ok(Some((seq, _))) => {
            return Err(broken(
                seq,
                format!(
                    "the head says event {seq} is the last, but the log goes on to {}",
                    pos.seq
                ),
            ))
        }
        Ok(None) if pos.seq == 0 => {}
        Ok(None) => {
            return Err(broken(
                pos.seq,
                "the log has events but its head file is missing".into(),
            ))
        }
        Err(e) => return Err(broken(pos.seq, e.to_string())),
    }
    if let Some((seq, mac)) = checkpoint {
        if pos.seq < seq || (pos.seq == seq && pos.mac != mac) {
            return Err(broken(
                pos.seq.min(seq),
                format!("the log ends at event {} but the host's database saw event {seq}: the log was cut or replaced", pos.seq),
            ));
        }
    }
    Ok(pos)
}

/// The lines of the log, parsed, oldest first (tests and small logs; the views read from
/// the end with [`read::latest`]).
#[cfg(test)]
pub fn read_events(path: &Path) -> Vec<Value> {
    let mut v = read::latest(path, usize::MAX, None, u64::MAX);
    v.reverse();
    v
}

/// The current time in whole seconds since 1970 (0 for a clock set before it): token times,
/// recording headers, the names of retired places.
pub fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// A time as RFC 3339 UTC with milliseconds, `2026-12-01T12:00:00.000Z` (sorts as text in
/// time order; the audit log's and the database's timestamps). The one place cordon writes
/// dates: the audit chain's MACs cover them, so their shape must never change.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    // humantime panics before 1970 and fails after 9999; a cutoff like "now - 100 years"
    // reaches the first.
    let last = std::time::UNIX_EPOCH + std::time::Duration::from_millis(253_402_300_799_999);
    humantime::format_rfc3339_millis(t.clamp(std::time::UNIX_EPOCH, last)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7u8; 32];

    fn log(dir: &Path) -> AuditLog {
        log_with(dir, Options::default())
    }

    fn log_with(dir: &Path, options: Options) -> AuditLog {
        AuditLog::open(&dir.join("audit.log"), KEY.to_vec(), options, false).unwrap()
    }

    fn verify(l: &AuditLog) -> Result<u64, Broken> {
        verify_log(l.path(), &KEY, None).map(|p| p.events)
    }

    fn lines(l: &AuditLog) -> Vec<String> {
        std::fs::read_to_string(l.path())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write(l: &AuditLog, ls: &[String]) {
        std::fs::write(
            l.path(),
            ls.iter().map(|x| format!("{x}\n")).collect::<String>(),
        )
        .unwrap();
    }

    #[test]
    fn a_chain_of_events_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let l = log(dir.path());
        for i in 0..5 {
            l.record(AuditEvent::new(Kind::Login, "alice").with("n", i))
                .unwrap();
        }
        assert_eq!(verify(&l), Ok(5));
        drop(l);
        let l = log(dir.path());
        l.record(AuditEvent::new(Kind::Logout, "alice")).unwrap();
        assert_eq!(verify(&l), Ok(6));
    }

    #[test]
    fn one_changed_byte_is_found_on_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let l = log(dir.path());
        for i in 0..4 {
            l.record(AuditEvent::new(Kind::Login, "alice").with("n", i))
                .unwrap();
        }
        let mut ls = lines(&l);
        ls[2] = ls[2].replacen("alice", "alicf", 1);
        write(&l, &ls);
        let e = verify(&l).unwrap_err();
        assert_eq!((e.line, e.seq), (3, 3), "{e:?}");
    }

    #[test]
    fn deleted_reordered_and_truncated_lines_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let l = log(dir.path());
        for i in 0..4 {
            l.record(AuditEvent::new(Kind::Run, "a").with("n", i))
                .unwrap();
        }
        let ls = lines(&l);
        write(&l, &[ls[0].clone(), ls[2].clone(), ls[3].clone()]);
        assert_eq!(verify(&l).unwrap_err().line, 2);
        write(
            &l,
            &[ls[1].clone(), ls[0].clone(), ls[2].clone(), ls[3].clone()],
        );
        let e = verify(&l).unwrap_err();
        assert!(e.line <= 2 && e.reason.contains("sequence number 1"), "{e}");
        write(&l, &ls[..3]);
        assert!(verify(&l).unwrap_err().reason.contains("cut from the end"));
        write(&l, &ls);
        assert!(
            verify_log(l.path(), &[8u8; 32], None).is_err(),
            "a wrong key fails"
        );
    }

    #[test]
    fn a_cut_tail_with_a_rewritten_head_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let l = log(dir.path());
        for i in 0..6 {
            l.record(AuditEvent::new(Kind::Run, "a").with("n", i))
                .unwrap();
        }
        let ls = lines(&l);
        write(&l, &ls[..4]);
        // The attacker's head: the new last line's sequence number and MAC, as it was
        // written before heads were sealed.
        let (body, mac) = chain::split_line(&ls[3]).unwrap();
        assert!(body.contains("\"seq\":4"));
        std::fs::write(l.path().with_extension("head"), format!("4 {mac}\n")).unwrap();
        assert!(verify(&l).unwrap_err().reason.contains("not sealed"));
        std::fs::write(
            l.path().with_extension("head"),
            format!("4 {mac} {}\n", "0".repeat(64)),
        )
        .unwrap();
        assert!(verify(&l).unwrap_err().reason.contains("without the key"));
        assert!(
            AuditLog::open(l.path(), KEY.to_vec(), Options::default(), false).is_err(),
            "nor may it be appended to"
        );
    }

    #[test]
    fn a_removed_log_and_head_are_caught_by_the_database_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let l = log(dir.path());
        for i in 0..3 {
            l.record(AuditEvent::new(Kind::Run, "a").with("n", i))
                .unwrap();
        }
        let checkpoint = Some(l.last());
        std::fs::remove_file(l.path()).unwrap();
        std::fs::remove_file(l.path().with_extension("head")).unwrap();
        let e = verify_log(l.path(), &KEY, checkpoint).unwrap_err();
        assert!(e.reason.contains("database saw event 3"), "{e}");
    }

    #[test]
    fn the_chain_runs_on_across_rotated_segments_and_retention_says_where_it_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let l = log_with(
            dir.path(),
            Options {
                segment_size: 1500,
                ..Options::default()
            },
        );
        for i in 0..40 {
            l.record(AuditEvent::new(Kind::Run, "a").with("n", i))
                .unwrap();
        }
        let files = chain::files(l.path());
        assert!(files.len() > 3, "rotated: {files:?}");
        assert_eq!(verify(&l), Ok(40));
        // Removing the oldest segment by hand is a cut at the start.
        std::fs::remove_file(&files[0].1).unwrap();
        assert!(verify(&l)
            .unwrap_err()
            .reason
            .contains("earlier events were removed"));
        // Retention removing it (the segments are all "old" with a zero age) is not.
        let dir2 = tempfile::tempdir().unwrap();
        let l = log_with(
            dir2.path(),
            Options {
                segment_size: 1500,
                ..Options::default()
            },
        );
        for i in 0..40 {
            l.record(AuditEvent::new(Kind::Run, "a").with("n", i))
                .unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        let removed = l.apply_retention(std::time::Duration::ZERO).unwrap();
        assert!(!removed.is_empty());
        let p = verify_log(l.path(), &KEY, Some((41, l.last().1))).unwrap();
        assert_eq!(p.seq, 41, "the retention event is the 41st");
        l.record(AuditEvent::new(Kind::Run, "a")).unwrap();
        assert_eq!(verify_log(l.path(), &KEY, None).unwrap().seq, 42);
    }

    #[test]
    fn a_host_killed_between_a_line_and_its_head_opens_again_but_a_longer_or_forged_tail_does_not()
    {
        let dir = tempfile::tempdir().unwrap();
        let l = log(dir.path());
        for i in 0..5 {
            l.record(AuditEvent::new(Kind::Run, "a").with("n", i))
                .unwrap();
        }
        let ls = lines(&l);
        let head = l.path().with_extension("head");
        let head_at = |n: usize| {
            let (_, mac) = chain::split_line(&ls[n - 1]).unwrap();
            write_head(&head, &KEY, n as u64, mac).unwrap();
        };
        let open = || AuditLog::open(l.path(), KEY.to_vec(), Options::default(), false);
        // The kill: event 5 written, the head still at 4. The host starts, and the head is
        // sealed forward to 5.
        head_at(4);
        let again = open().expect("one event past the head, chained with the key, opens");
        again
            .record(AuditEvent::new(Kind::Run, "a").with("n", 5))
            .unwrap();
        assert_eq!(verify(&again).unwrap(), 6);
        // Two events past the head is no crash of one append: refused.
        head_at(4);
        let Err(e) = open() else {
            panic!("a log two events past its head was opened")
        };
        assert!(e.to_string().contains("events were cut or added"), "{e}");
        // One event past the head but not made with the key: refused.
        head_at(5);
        let mut forged = lines(&l)[..5].to_vec();
        forged.push(
            ls[4]
                .replacen("\"n\":4", "\"n\":9", 1)
                .replacen("\"seq\":5", "\"seq\":6", 1),
        );
        write(&l, &forged);
        assert!(open().is_err(), "a forged event past the head is refused");
    }

    #[test]
    fn a_forwarded_copy_names_the_first_event_missing_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("copy.jsonl");
        let l = log_with(
            dir.path(),
            Options {
                forward: vec![sinks::Target::File(copy.clone())],
                ..Options::default()
            },
        );
        for i in 0..6 {
            l.record(AuditEvent::new(Kind::Run, "a").with("n", i))
                .unwrap();
        }
        assert_eq!(chain::verify_against(l.path(), &copy), Ok(6));
        // The log cut after event 4 and its head rewritten by someone holding the key.
        let ls = lines(&l);
        write(&l, &ls[..4]);
        let (_, mac) = chain::split_line(&ls[3]).unwrap();
        write_head(&l.path().with_extension("head"), &KEY, 4, mac).unwrap();
        assert!(
            verify(&l).is_ok(),
            "the key holder's cut passes the log's own checks"
        );
        let e = chain::verify_against(l.path(), &copy).unwrap_err();
        assert_eq!(e.seq, 5, "{e}");
        assert!(e.reason.contains("missing from the log"), "{e}");
    }

    #[test]
    fn an_incremental_verification_reads_only_what_was_added() {
        let dir = tempfile::tempdir().unwrap();
        let l = log_with(
            dir.path(),
            Options {
                segment_size: 2000,
                ..Options::default()
            },
        );
        for i in 0..10 {
            l.record(AuditEvent::new(Kind::Run, "a").with("n", i))
                .unwrap();
        }
        let p = chain::verify(l.path(), &KEY, None).unwrap();
        for i in 0..30 {
            l.record(AuditEvent::new(Kind::Run, "a").with("n", i))
                .unwrap();
        }
        let q = chain::verify(l.path(), &KEY, Some(&p)).unwrap();
        assert_eq!((q.seq, q.events), (40, 40));
        // A change before the position is not seen incrementally, but is by a full run.
        assert_eq!(chain::verify(l.path(), &KEY, None).unwrap().seq, 40);
    }

    #[test]
    fn secrets_are_masked() {
        let e = AuditEvent::new(Kind::Run, "alice")
            .with("argv", "curl -H Authorization: Bearer abc123 x")
            .with("env", "API_TOKEN=xyz make");
        assert_eq!(e.fields["argv"], "curl -H Authorization: Bearer *** x");
        assert_eq!(e.fields["env"], "API_TOKEN=*** make");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }

    #[test]
    fn times_are_written_in_utc_with_milliseconds_and_out_of_range_ones_are_clamped() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |ms: u64| rfc3339(UNIX_EPOCH + Duration::from_millis(ms));
        // Checked against `date -u -d @SECONDS +%FT%T` and the hand-written arithmetic this replaced.
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_825_599_999), "2000-02-29T11:59:59.999Z");
        assert_eq!(at(1_709_251_199_000), "2024-02-29T23:59:59.000Z");
        assert_eq!(at(1_796_126_400_042), "2026-12-01T12:00:00.042Z");
        assert_eq!(at(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
        // Truncated, not rounded, as before.
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_nanos(1_999_999)),
            "1970-01-01T00:00:00.001Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(86_400)),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(at(300_000_000_000_000), "9999-12-31T23:59:59.999Z");
    }
}
