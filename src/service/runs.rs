//! The runner: one confined command without a terminal (`ssh HOST run -- ...`, `POST
//! /v1/run`), its output streamed back, within a time limit and an output cap. Every run
//! is registered while it lives, so that it counts against its user's limit and ends when
//! its user is locked or removed.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Error, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::Action;

/// A command for the runner: confined, without a terminal, within a time limit and an
/// output cap.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    pub argv: Vec<String>,
    pub profile: Option<String>,
    pub workspace: Option<String>,
    /// At most the configured runner timeout.
    pub timeout: Option<std::time::Duration>,
}

/// What a run's command reads on its standard input, at most `[runner] stdin_limit` bytes.
#[derive(Debug, Default)]
pub enum RunInput {
    /// Nothing: end of input at once.
    #[default]
    Empty,
    /// These bytes, then end of input (the API).
    Bytes(Vec<u8>),
    /// Chunks as the client sends them; the sender dropped is the end of input (SSH).
    Stream(std::sync::mpsc::Receiver<Vec<u8>>),
}

/// Why the host ended a run before its command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The runner's time limit.
    Timeout,
    /// Its output passed the runner's cap.
    OutputCap,
    /// The client stopped listening.
    ClientGone,
    /// Its standard input passed the runner's limit.
    StdinLimit,
}

impl RunEnd {
    /// As the audit log and the API say it.
    pub fn name(self) -> &'static str {
        match self {
            RunEnd::Timeout => "timeout",
            RunEnd::OutputCap => "output cap",
            RunEnd::ClientGone => "client gone",
            RunEnd::StdinLimit => "stdin limit",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub exit_status: i32,
    /// Set when the host ended it.
    pub ended_by: Option<RunEnd>,
}

/// A run in progress.
pub struct Job {
    pub owner: String,
    pub owner_id: i64,
    /// Its process group (the runner starts it in a session of its own).
    pgid: Mutex<Option<i32>>,
}

impl Job {
    /// Ends the command and everything it started.
    pub fn kill(&self) {
        if let Some(pgid) = *self.pgid.lock().unwrap_or_else(|e| e.into_inner()) {
            // SAFETY: signalling the run's own process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

/// The runs in progress.
#[derive(Default)]
pub struct Runs {
    jobs: Mutex<BTreeMap<u64, Arc<Job>>>,
    next: AtomicU64,
}

/// Removes its job from the registry when the run ends, however it ends.
struct Registered<'a> {
    runs: &'a Runs,
    id: u64,
    job: Arc<Job>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.runs
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Runs {
    pub fn list(&self) -> Vec<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn count_for(&self, owner_id: i64) -> usize {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|j| j.owner_id == owner_id)
            .count()
    }

    fn register(&self, owner: &str, owner_id: i64) -> Registered<'_> {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let job = Arc::new(Job {
            owner: owner.to_string(),
            owner_id,
            pgid: Mutex::new(None),
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, job.clone());
        Registered {
            runs: self,
            id,
            job,
        }
    }
}

impl Service {
    /// Checks a run request (the cheap part, before a face commits to running it): the
    /// right to run, the command, the profile and workspace, the per-user limit.
    pub fn prepare_run(&self, p: &Principal, req: &RunRequest) -> Result<()> {
        let p = self.check(p, Action::RunCommand, "run", |p| {
            format!("{} may not run commands", p.role.with_article())
        })?;
        if req.argv.is_empty() {
            return Err(Error::Invalid("run needs a command".into()));
        }
        super::command_without_nul(&req.argv)?;
        self.within_limit(&p, "run")?;
        self.confinement(&p, req.profile.clone(), req.workspace.as_deref(), "run")
            .map(drop)
    }

    /// Runs a command confined, without a terminal (blocking: call it off the async
    /// workers), `input` on its standard input. `sink(stream, bytes)` gets stdout (0) and
    /// stderr (1) as they come and says whether the caller still listens. The time limit,
    /// the output cap and the input limit end the command.
    pub fn run(
        &self,
        p: &Principal,
        req: RunRequest,
        input: RunInput,
        sink: &mut dyn FnMut(u32, Vec<u8>) -> bool,
    ) -> Result<RunOutcome> {
        let p = self.check(p, Action::RunCommand, "run", |p| {
            format!("{} may not run commands", p.role.with_article())
        })?;
        if req.argv.is_empty() {
            return Err(Error::Invalid("run needs a command".into()));
        }
        super::command_without_nul(&req.argv)?;
        // The limit is checked and the run registered under one lock, so that concurrent
        // requests cannot all pass the check.
        let registered = {
            let _admission = self.admission.lock().unwrap_or_else(|e| e.into_inner());
            self.within_limit(&p, "run")?;
            self.runs.register(&p.user, p.user_id)
        };
        let confinement =
            self.confinement(&p, req.profile.clone(), req.workspace.as_deref(), "run")?;
        let profile = confinement.profile.clone();
        let started = std::time::Instant::now();
        let limit = req
            .timeout
            .unwrap_or(self.config.run_timeout)
            .min(self.config.run_timeout);
        let outcome = (|| -> Result<RunOutcome> {
            // Its egress attempts are audited like a session's (there is no one to ask:
            // no answers pipe, so ask mode refuses unlisted destinations).
            let ((events, _), pipes) = crate::sessions::EgressPipes::new(false)
                .map_err(|e| Error::caused("making the egress events pipe", e))?;
            let mut cmd = self
                .hub
                .sandbox_command(&confinement, &req.argv, "dumb", Some(pipes))
                .map_err(|e| Error::caused("handing the secrets to the sandbox", e))?;
            cmd.stdin(match input {
                RunInput::Empty => std::process::Stdio::null(),
                _ => std::process::Stdio::piped(),
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid is async-signal-safe; it lets the whole tree be killed at once.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            let mut child = self
                .hub
                .spawn(cmd)
                .map_err(|e| Error::caused("starting the sandbox", e))?;
            let pid = child.id() as i32;
            let subject = crate::sessions::events::Subject::Run {
                id: registered.id,
                secrets: confinement
                    .secrets
                    .given
                    .iter()
                    .map(|(_, v)| v.to_vec())
                    .collect(),
            };
            let (audit, owner) = (self.audit.clone(), p.user.clone());
            std::thread::Builder::new()
                .name(format!("run-{}-net", registered.id))
                .spawn(move || crate::sessions::events::follow(events, subject, &audit, &owner))
                .map_err(|e| Error::caused("starting the egress events reader", e))?;
            *registered
                .job
                .pgid
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(pid);
            let (tx, rx) = std::sync::mpsc::channel::<(u32, Vec<u8>)>();
            for (stream, pipe) in [
                (
                    0u32,
                    child
                        .stdout
                        .take()
                        .map(|p| Box::new(p) as Box<dyn Read + Send>),
                ),
                (
                    1,
                    child
                        .stderr
                        .take()
                        .map(|p| Box::new(p) as Box<dyn Read + Send>),
                ),
            ] {
                let Some(mut pipe) = pipe else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 32 << 10];
                    while let Ok(n) = pipe.read(&mut buf) {
                        if n == 0 || tx.send((stream, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                });
            }
            if let Some(pipe) = child.stdin.take() {
                let (limit, tx) = (self.config.run_stdin_limit, tx.clone());
                std::thread::spawn(move || {
                    if feed(input, pipe, limit) == Fed::OverLimit {
                        let _ = tx.send((OVER_LIMIT, Vec::new()));
                    }
                });
            }
            drop(tx);
            let deadline = started + limit;
            let mut total: u64 = 0;
            let mut stop: Option<RunEnd> = None;
            loop {
                match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                {
                    Ok((OVER_LIMIT, _)) => {
                        stop = Some(RunEnd::StdinLimit);
                        break;
                    }
                    Ok((stream, bytes)) => {
                        total += bytes.len() as u64;
                        if total > self.config.run_output_cap {
                            stop = Some(RunEnd::OutputCap);
                            break;
                        }
                        if !sink(stream, bytes) {
                            stop = Some(RunEnd::ClientGone);
                            break;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        stop = Some(RunEnd::Timeout);
                        break;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            if stop.is_some() {
                registered.job.kill();
            }
            let status = child
                .wait()
                .map_err(|e| Error::caused("waiting for the command", e))?;
            let code = status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
            });
            Ok(RunOutcome {
                exit_status: match stop {
                    Some(RunEnd::Timeout) => sandbox::EXIT_TIMEOUT,
                    // Never a success on input cut short, whatever the command made of it.
                    Some(RunEnd::StdinLimit) => sandbox::EXIT_REFUSED,
                    _ => code,
                },
                ended_by: stop,
            })
        })();
        drop(registered);
        let (code, ended_by) = match &outcome {
            Ok(o) => (o.exit_status, o.ended_by.map(RunEnd::name).unwrap_or("")),
            Err(_) => (sandbox::EXIT_REFUSED, "error"),
        };
        if code == sandbox::EXIT_REFUSED {
            self.alert_sandbox_refused(&p.user);
        }
        let mut ev = p
            .stamp(AuditEvent::new(Kind::Run, p.user.clone()))
            .with("argv", crate::masking::mask_argv(&req.argv).join(" "))
            .with("profile", profile)
            .with("exit_status", code)
            .with("seconds", started.elapsed().as_secs_f64());
        if !ended_by.is_empty() {
            ev = ev.with("ended_by", ended_by);
        }
        self.record(ev);
        outcome
    }
}

/// The output channel's mark for "standard input passed the limit" (0 and 1 are stdout and
/// stderr).
const OVER_LIMIT: u32 = 2;

/// How feeding a command's standard input ended.
#[derive(Debug, PartialEq, Eq)]
enum Fed {
    /// The input ended (or the command stopped reading): its stdin is closed.
    Done,
    /// More than `limit` bytes came: its stdin is closed, the rest not read.
    OverLimit,
}

/// Writes `input` into the command's stdin, at most `limit` bytes; returning closes it.
fn feed(input: RunInput, mut pipe: impl std::io::Write, limit: u64) -> Fed {
    let mut total: u64 = 0;
    let mut write = |chunk: &[u8]| -> Option<Fed> {
        total += chunk.len() as u64;
        if total > limit {
            return Some(Fed::OverLimit);
        }
        // A command that closed its stdin (EPIPE) has what it wanted.
        pipe.write_all(chunk).err().map(|_| Fed::Done)
    };
    match input {
        RunInput::Empty => Fed::Done,
        RunInput::Bytes(b) => write(&b).unwrap_or(Fed::Done),
        RunInput::Stream(rx) => {
            for chunk in rx {
                if let Some(end) = write(&chunk) {
                    return end;
                }
            }
            Fed::Done
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_passed_whole_up_to_the_limit_and_refused_past_it() {
        let mut out = Vec::new();
        assert_eq!(
            feed(RunInput::Bytes(b"abc".to_vec()), &mut out, 3),
            Fed::Done
        );
        assert_eq!(out, b"abc");
        let (tx, rx) = std::sync::mpsc::channel();
        for c in [&b"ab"[..], b"cd", b"e"] {
            tx.send(c.to_vec()).unwrap();
        }
        drop(tx);
        let mut out = Vec::new();
        assert_eq!(feed(RunInput::Stream(rx), &mut out, 4), Fed::OverLimit);
        assert_eq!(out, b"abcd", "nothing past the limit is written");
        assert_eq!(
            feed(RunInput::Bytes(vec![0; 5]), &mut Vec::new(), 4),
            Fed::OverLimit
        );
    }
}
