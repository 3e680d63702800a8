//! A session's recording, written on a thread of its own: the PTY reader hands events over
//! and never waits for compression, encryption or the disk. A slow disk slows the session
//! only once `BACKLOG` bytes wait (nothing is dropped to keep up: the recording is the
//! point), so a once-a-second fdatasync does not stall output. The failure policy is
//! applied here.
//!
//! A session's secret values are redacted here, before anything is handed to the writer:
//! output and input pass through a [`Redactor`] each, and keyframes are drawn from a screen
//! of the recording's own, fed with the redacted output, so that no event, keyframe or
//! search of the recording holds a value. Viewers get the session's real output; only what
//! is stored is redacted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::Session;
use crate::audit::{AuditEvent, AuditLog, Kind};
use crate::record::format::{self as recfmt, Writer};
use crate::record::{FailurePolicy, RecordError};
use crate::redact::Redactor;
use crate::store::RecordingState;

/// Bytes of events that may wait for the writer before the session waits for it.
const BACKLOG: usize = 8 << 20;
/// How often the writer seals what is pending (see `Writer::tick`).
const TICK: Duration = Duration::from_millis(250);

/// Bytes waiting for the writer, and a signal when it has taken some.
#[derive(Default)]
struct Backlog {
    bytes: Mutex<usize>,
    taken: Condvar,
}

impl Backlog {
    fn add(&self, n: usize) {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        while *b > BACKLOG {
            b = self.taken.wait(b).unwrap_or_else(|e| e.into_inner());
        }
        *b += n;
    }

    fn take(&self, n: usize) {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        *b = b.saturating_sub(n);
        self.taken.notify_all();
    }
}

/// Output held for the writer until the PTY has nothing more to read or this much waits:
/// a hand-off (and a wake-up of the writer's thread) per read cost bulk output more than
/// the compression.
const HELD_MAX: usize = 64 << 10;

/// Events not yet handed to the writer: their bytes end to end, and for each its time,
/// kind and where its bytes end.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    events: Vec<(u64, u8, usize)>,
}

enum Msg {
    Events(Batch),
    Keyframe(u64, Vec<u8>),
    /// The exit status; the answer is the recording's final state and size.
    Finish(i32, mpsc::Sender<(RecordingState, i64)>),
}

/// What removes a session's secrets from its recording: a redactor per stream, and the
/// screen as the recording shows it (for keyframes).
struct Redaction {
    output: Redactor,
    input: Redactor,
    screen: super::screen::Screen,
}

/// The session's end of its recording.
pub(super) struct Lane {
    pub id: String,
    /// None when recordings are off.
    tx: Option<Sender<Msg>>,
    /// None when the session has no secret to redact.
    redaction: Option<Mutex<Redaction>>,
    /// Secrets given that are not redacted (too short or too long), by index.
    skipped: Vec<usize>,
    backlog: Arc<Backlog>,
    clock: Instant,
    /// Strict policy and a write failed: the session must end.
    failed: Arc<AtomicBool>,
    /// Events recorded and not handed over yet. Handed over under this lock, so that batches
    /// keep their order whichever thread records.
    batch: Mutex<Batch>,
}

/// The writer's end, until the session exists and `start` gives it its thread.
pub(super) struct Pending {
    rx: Receiver<Msg>,
    writer: Writer,
    policy: FailurePolicy,
    failed: Arc<AtomicBool>,
    backlog: Arc<Backlog>,
}

impl Lane {
    /// No recording (`[recordings] enabled = false`).
    pub fn off() -> Lane {
        Lane {
            id: String::new(),
            tx: None,
            redaction: None,
            skipped: Vec::new(),
            backlog: Arc::default(),
            clock: Instant::now(),
            failed: Arc::new(AtomicBool::new(false)),
            batch: Mutex::default(),
        }
    }

    /// A lane to `writer`; `secrets` (the session's values) are redacted from what it
    /// records, on a screen of `cols`×`rows`.
    pub fn new(
        id: String,
        writer: Writer,
        policy: FailurePolicy,
        secrets: &[&[u8]],
        (cols, rows): (u16, u16),
    ) -> (Lane, Pending) {
        let output = Redactor::new(secrets);
        let skipped = output.skipped().to_vec();
        let redaction = (!output.is_empty()).then(|| {
            Mutex::new(Redaction {
                input: Redactor::new(secrets),
                output,
                screen: super::screen::Screen::new(rows, cols),
            })
        });
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let backlog = Arc::new(Backlog::default());
        let lane = Lane {
            id,
            tx: Some(tx),
            redaction,
            skipped,
            backlog: backlog.clone(),
            clock: writer.clock(),
            failed: failed.clone(),
            batch: Mutex::default(),
        };
        (
            lane,
            Pending {
                rx,
                writer,
                policy,
                failed,
                backlog,
            },
        )
    }

    /// The indices of the secrets given to [`Lane::new`] that are not redacted (see
    /// [`Redactor::skipped`]).
    pub fn skipped(&self) -> Vec<usize> {
        self.skipped.clone()
    }

    fn now(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    /// Records an event stamped now, its secrets redacted (output and input; bytes that may
    /// begin a secret wait for the next event of their stream). False when the session must
    /// end (strict policy and the recording cannot be written).
    pub fn record(&self, kind: u8, data: &[u8]) -> bool {
        self.add(kind, data, true)
    }

    /// Records output read from the PTY, handed to the writer with what follows it unless
    /// `last` (nothing more to read now) or enough waits (see [`HELD_MAX`]).
    pub fn record_output(&self, data: &[u8], last: bool) -> bool {
        self.add(recfmt::OUTPUT, data, last)
    }

    /// Hands what waits to the writer.
    pub fn flush(&self) {
        if let Some(tx) = &self.tx {
            let mut b = self.batch.lock().unwrap_or_else(|e| e.into_inner());
            self.hand_over(tx, &mut b);
        }
    }

    fn add(&self, kind: u8, data: &[u8], now: bool) -> bool {
        let Some(tx) = &self.tx else {
            return !self.failed.load(Ordering::SeqCst);
        };
        let Some(redaction) = &self.redaction else {
            self.send(tx, kind, data, now);
            return !self.failed.load(Ordering::SeqCst);
        };
        // Held while sending, so that events keep their order.
        let mut r = redaction.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        match kind {
            recfmt::OUTPUT => {
                r.output.push(data, &mut out);
                r.screen.push(&out);
            }
            recfmt::INPUT => r.input.push(data, &mut out),
            _ => {
                if kind == recfmt::RESIZE {
                    if let Some((c, rw)) = std::str::from_utf8(data)
                        .ok()
                        .and_then(|t| t.split_once('x'))
                        .and_then(|(c, rw)| Some((c.parse().ok()?, rw.parse().ok()?)))
                    {
                        r.screen.set_size(rw, c);
                    }
                }
                out.extend_from_slice(data);
            }
        }
        if !out.is_empty() || now {
            self.send(tx, kind, &out, now);
        }
        !self.failed.load(Ordering::SeqCst)
    }

    /// Adds an event to the batch (none if `data` is empty); hands the batch over if `now`
    /// or it is large.
    fn send(&self, tx: &Sender<Msg>, kind: u8, data: &[u8], now: bool) {
        let at = self.now();
        let mut b = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        if !data.is_empty() {
            b.data.extend_from_slice(data);
            let end = b.data.len();
            b.events.push((at, kind, end));
        }
        if now || b.data.len() >= HELD_MAX {
            self.hand_over(tx, &mut b);
        }
    }

    /// Sends the batch (under its lock: see `batch`).
    fn hand_over(&self, tx: &Sender<Msg>, b: &mut Batch) {
        if b.events.is_empty() {
            return;
        }
        let batch = std::mem::take(b);
        self.backlog.add(batch.data.len());
        let _ = tx.send(Msg::Events(batch));
    }

    /// Starts a new chunk with the whole screen (where seeking begins): `screen` as the
    /// session shows it, or, when secrets are redacted, the recording's own screen.
    pub fn keyframe(&self, screen: Vec<u8>) -> bool {
        if let Some(tx) = &self.tx {
            let mut guard = self
                .redaction
                .as_ref()
                .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()));
            let frame = match guard.as_deref_mut() {
                Some(r) => {
                    let (rows, cols) = r.screen.now().size();
                    let mut frame = format!("{cols}x{rows}\n").into_bytes();
                    frame.extend(super::snapshot(r.screen.parser(), super::Alternate::Unsaid));
                    frame
                }
                None => screen,
            };
            let mut b = self.batch.lock().unwrap_or_else(|e| e.into_inner());
            self.hand_over(tx, &mut b);
            self.backlog.add(frame.len());
            let _ = tx.send(Msg::Keyframe(self.now(), frame));
        }
        !self.failed.load(Ordering::SeqCst)
    }

    /// Records the exit status and seals the last chunk, once everything before it is
    /// written. Returns the recording's state and its size on disk (None: recordings are off).
    pub fn finish(&self, code: i32) -> Option<(RecordingState, i64)> {
        let Some(tx) = &self.tx else { return None };
        if let Some(redaction) = &self.redaction {
            // What was held back in case it began a secret: the stream has ended.
            let mut r = redaction.lock().unwrap_or_else(|e| e.into_inner());
            for kind in [recfmt::OUTPUT, recfmt::INPUT] {
                let mut out = Vec::new();
                if kind == recfmt::OUTPUT {
                    r.output.finish(&mut out);
                } else {
                    r.input.finish(&mut out);
                }
                if !out.is_empty() {
                    self.send(tx, kind, &out, false);
                }
            }
        }
        let (done, answer) = mpsc::channel();
        let mut b = self.batch.lock().unwrap_or_else(|e| e.into_inner());
        self.hand_over(tx, &mut b);
        let sent = tx.send(Msg::Finish(code, done));
        drop(b);
        if sent.is_err() {
            return Some((RecordingState::Failed, 0));
        }
        Some(answer.recv().unwrap_or((RecordingState::Failed, 0)))
    }
}

impl Pending {
    /// Runs the writer until the session finishes its recording.
    pub fn start(
        self,
        session: Weak<Session>,
        audit: Arc<AuditLog>,
        id: String,
    ) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("recording".into())
            .spawn(move || {
                let mut w = Worker {
                    writer: Some(self.writer),
                    policy: self.policy,
                    failing: None,
                    failed: self.failed,
                    session,
                    audit,
                    id,
                };
                w.run(self.rx, &self.backlog)
            })?;
        Ok(())
    }
}

struct Worker {
    writer: Option<Writer>,
    policy: FailurePolicy,
    /// Since when writes fail (best-effort: the gap is marked when writing works again).
    failing: Option<(Instant, String)>,
    failed: Arc<AtomicBool>,
    session: Weak<Session>,
    audit: Arc<AuditLog>,
    id: String,
}

impl Worker {
    fn run(&mut self, rx: Receiver<Msg>, backlog: &Backlog) {
        // Ticks come on time whether or not events keep arriving: a line every 100 ms never
        // lets a receive time out, and a trickle must be sealed as surely as silence.
        let mut next_tick = Instant::now() + TICK;
        loop {
            let now = Instant::now();
            if now >= next_tick {
                self.write(|w| w.tick());
                next_tick = now + TICK;
            }
            match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
                Ok(Msg::Events(batch)) => {
                    let mut start = 0;
                    for &(at, kind, end) in &batch.events {
                        self.write(|w| w.event_at(at, kind, &batch.data[start..end]));
                        start = end;
                    }
                    backlog.take(batch.data.len());
                }
                Ok(Msg::Keyframe(at, screen)) => {
                    self.write(|w| w.keyframe_at(at, &screen));
                    backlog.take(screen.len());
                }
                Ok(Msg::Finish(code, done)) => {
                    let answer = match self.writer.as_mut() {
                        Some(w) => {
                            let at = w.clock().elapsed().as_micros() as u64;
                            let ok = w
                                .event_at(at, recfmt::EXIT, code.to_string().as_bytes())
                                .and_then(|_| w.finish());
                            (
                                if ok.is_ok() {
                                    RecordingState::Complete
                                } else {
                                    RecordingState::Failed
                                },
                                w.bytes as i64,
                            )
                        }
                        None => (RecordingState::Failed, 0),
                    };
                    let _ = done.send(answer);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The session is gone without finishing: the recording stays interrupted.
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Applies `f` to the recording, then the failure policy if it fails.
    fn write(&mut self, f: impl FnOnce(&mut Writer) -> Result<(), RecordError>) {
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        let mut resumed = None;
        if let Some((since, why)) = &self.failing {
            let note = format!(
                "recording failed for {:.1} s: {why}",
                since.elapsed().as_secs_f64()
            );
            if w.event(recfmt::GAP, note.as_bytes()).is_ok() {
                resumed = Some(note);
            }
        }
        let result = f(w);
        if let Some(note) = resumed {
            self.failing = None;
            self.audit_event(Kind::RecordingResumed, "gap", note);
        }
        let Err(e) = result else { return };
        crate::record::ERRORS.fetch_add(1, Ordering::Relaxed);
        // Said to the session's users, in the audit log, and (best-effort) in the gap's note.
        let e = e.to_string();
        match self.policy {
            FailurePolicy::Strict => {
                self.writer = None;
                self.failed.store(true, Ordering::SeqCst);
                self.audit_event(Kind::RecordingFailed, "error", e.clone());
                if let Some(s) = self.session.upgrade() {
                    let msg = format!("\r\n[cordon: the recording cannot be written ({e}); policy \"strict\" ends the session]\r\n");
                    for v in s.viewers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                        v.push(msg.as_bytes(), &mut Vec::new);
                    }
                    s.kill();
                }
            }
            FailurePolicy::BestEffort => {
                if let Some(w) = self.writer.as_mut() {
                    w.discard_pending();
                }
                if self.failing.is_none() {
                    self.audit_event(Kind::RecordingGap, "error", e.clone());
                    self.failing = Some((Instant::now(), e));
                }
            }
        }
    }

    fn audit_event(&self, action: Kind, key: &'static str, value: String) {
        let session = self
            .session
            .upgrade()
            .map(|s| serde_json::Value::from(s.id));
        let policy = match self.policy {
            FailurePolicy::Strict => "strict",
            FailurePolicy::BestEffort => "best-effort",
        };
        self.audit.report(
            AuditEvent::new(action, "cordon")
                .with("session", session)
                .with("recording", self.id.clone())
                .with(key, value)
                .with("policy", policy),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Keyring, Meta, Recorder};

    const SECRET: &[u8] = b"sk-test-0123456789abcdef";

    /// A lane with SECRET to redact, the events `feed` records through it, and the recording
    /// as stored.
    fn recorded(feed: impl FnOnce(&Lane)) -> crate::record::format::Recording {
        let dir = tempfile::tempdir().unwrap();
        let data = crate::paths::DataDir::new(dir.path().join("data"));
        data.ensure().unwrap();
        let keys = crate::keys::Keys::for_tests(&data);
        let recorder = Recorder::new(
            data.root.join("recordings"),
            Keyring::new(keys.clone()),
            FailurePolicy::Strict,
            true,
            true,
        )
        .unwrap();
        let meta = Meta {
            user: "alice".into(),
            profile: "default".into(),
            command: vec!["sh".into()],
            cols: 40,
            rows: 5,
            term: "xterm".into(),
        };
        let (header, path, writer) = recorder.start(1, &meta).unwrap();
        let (lane, pending) = Lane::new(
            header.id.clone(),
            writer,
            FailurePolicy::Strict,
            &[SECRET],
            (40, 5),
        );
        let audit = Arc::new(
            AuditLog::open(&data.audit_log(), vec![7; 32], Default::default(), true).unwrap(),
        );
        pending.start(Weak::new(), audit, header.id).unwrap();
        feed(&lane);
        assert_eq!(
            lane.finish(0).map(|(s, _)| s),
            Some(RecordingState::Complete)
        );
        let key = Keyring::new(keys).for_file(&path).unwrap();
        crate::record::format::read(&path, &key).unwrap()
    }

    fn holds(bytes: &[u8], needle: &[u8]) -> bool {
        bytes.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_secret_split_across_outputs_and_typed_as_input_is_stored_as_a_marker_in_events_and_keyframes(
    ) {
        let rec = recorded(|lane| {
            lane.record(recfmt::OUTPUT, b"key: ");
            lane.record(recfmt::OUTPUT, &SECRET[..7]);
            lane.record(recfmt::OUTPUT, &SECRET[7..]);
            lane.record(recfmt::OUTPUT, b"\r\n");
            lane.record(recfmt::INPUT, SECRET);
            lane.record(recfmt::RESIZE, b"50x6");
            lane.keyframe(b"5x40\nthe live screen, secret and all".to_vec());
            // Held back at the end, in case it began the secret: written at finish.
            lane.record(recfmt::OUTPUT, &SECRET[..5]);
        });
        let raw = crate::record::raw(&rec);
        assert!(!holds(&raw, SECRET), "{}", String::from_utf8_lossy(&raw));
        assert!(
            holds(&raw, b"key: [redacted]\r\n"),
            "{}",
            String::from_utf8_lossy(&raw)
        );
        assert!(
            raw.ends_with(&SECRET[..5]),
            "a part is not the value, and is kept"
        );
        for e in &rec.events {
            assert!(
                !holds(&e.data, SECRET),
                "event {} holds the secret",
                e.kind as char
            );
        }
        let frame = rec
            .events
            .iter()
            .find(|e| e.kind == recfmt::KEYFRAME)
            .expect("a keyframe");
        let text = String::from_utf8_lossy(&frame.data);
        assert!(
            text.starts_with("50x6\n"),
            "the recording's own screen: {text}"
        );
        assert!(
            text.contains("key: [redacted]") && !text.contains("live screen"),
            "{text}"
        );
        assert!(rec
            .events
            .iter()
            .any(|e| e.kind == recfmt::INPUT && e.data == b"[redacted]"));
    }
}
