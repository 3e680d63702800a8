//! A session's recording, written on a thread of its own: the PTY reader hands events over
//! and never waits for compression, encryption or the disk. A slow disk slows the session
//! only once `BACKLOG` bytes wait (nothing is dropped to keep up: the recording is the
//! point), so a once-a-second fdatasync does not stall output. The failure policy is
//! applied here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::Session;
use crate::audit::{AuditEvent, AuditLog, Kind};
use crate::record::format::{self as recfmt, Writer};
use crate::record::{FailurePolicy, RecordError};
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

enum Msg {
    Event(u64, u8, Vec<u8>),
    Keyframe(u64, Vec<u8>),
    /// The exit status; the answer is the recording's final state and size.
    Finish(i32, mpsc::Sender<(RecordingState, i64)>),
}

/// The session's end of its recording.
pub(super) struct Lane {
    pub id: String,
    /// None when recordings are off.
    tx: Option<Sender<Msg>>,
    backlog: Arc<Backlog>,
    clock: Instant,
    /// Strict policy and a write failed: the session must end.
    failed: Arc<AtomicBool>,
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
            backlog: Arc::default(),
            clock: Instant::now(),
            failed: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn new(id: String, writer: Writer, policy: FailurePolicy) -> (Lane, Pending) {
        let (tx, rx) = mpsc::channel();
        let failed = Arc::new(AtomicBool::new(false));
        let backlog = Arc::new(Backlog::default());
        let lane = Lane {
            id,
            tx: Some(tx),
            backlog: backlog.clone(),
            clock: writer.clock(),
            failed: failed.clone(),
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

    fn now(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    /// Records an event stamped now. False when the session must end (strict policy and the
    /// recording cannot be written).
    pub fn record(&self, kind: u8, data: &[u8]) -> bool {
        if let Some(tx) = &self.tx {
            self.backlog.add(data.len());
            let _ = tx.send(Msg::Event(self.now(), kind, data.to_vec()));
        }
        !self.failed.load(Ordering::SeqCst)
    }

    /// Starts a new chunk with the whole screen (where seeking begins).
    pub fn keyframe(&self, screen: Vec<u8>) -> bool {
        if let Some(tx) = &self.tx {
            self.backlog.add(screen.len());
            let _ = tx.send(Msg::Keyframe(self.now(), screen));
        }
        !self.failed.load(Ordering::SeqCst)
    }

    /// Records the exit status and seals the last chunk, once everything before it is
    /// written. Returns the recording's state and its size on disk (None: recordings are off).
    pub fn finish(&self, code: i32) -> Option<(RecordingState, i64)> {
        let Some(tx) = &self.tx else { return None };
        let (done, answer) = mpsc::channel();
        if tx.send(Msg::Finish(code, done)).is_err() {
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
                Ok(Msg::Event(at, kind, data)) => {
                    self.write(|w| w.event_at(at, kind, &data));
                    backlog.take(data.len());
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
                        v.push(msg.as_bytes(), &Vec::new);
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
        let session = self.session.upgrade().map(|s| s.id).unwrap_or_default();
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
