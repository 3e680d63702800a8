//! Sessions: a confined command in a PTY that outlives its clients. One blocking reader
//! thread per session feeds the terminal emulator (the current screen, for late attachers)
//! and every viewer's bounded queue; a viewer that falls behind is resynced from the screen
//! instead of slowing the session or growing memory.

pub mod egress;
pub mod events;
mod files;
pub mod freeze;
/// Session ids live below the core's modules (recordings carry them too).
pub(crate) use crate::session_id as id;
mod recording;
pub mod restore;
pub mod screen;
pub mod spawner;

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audit::{AuditEvent, AuditLog, Kind};
use crate::record::format as recfmt;
use crate::record::Recorder;
pub use crate::session_id::SessionId;
use crate::store::{RecordingEntry, Store};
use recording::Lane;

/// Sessions whose command ended with the sandbox's refusal status (125) since the host
/// started: the alerts' `sandbox_refusals` rule counts them.
pub static SANDBOX_REFUSALS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Why a session could not start, or a viewer could not join one. Each keeps its source;
/// `Full` is the caller's (too many viewers), the rest are the host's.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session {id} already has {max} viewers, the most allowed ([sessions] max_viewers)")]
    Full { id: SessionId, max: usize },
    #[error("the recording cannot start, so the session does not: {0}")]
    Recording(#[source] crate::record::RecordError),
    #[error("cataloguing the recording: {0}")]
    Catalogue(#[source] crate::store::StoreError),
    #[error("{what}: {source}")]
    Terminal {
        what: String,
        source: std::io::Error,
    },
    #[error("drawing a random session id: {0}")]
    Random(#[source] std::io::Error),
    #[error("starting the sandbox: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("starting the recording writer: {0}")]
    Writer(#[source] std::io::Error),
    #[error("starting the session reader: {0}")]
    Reader(#[source] std::io::Error),
    #[error("finding cordon's own binary: {0}")]
    #[cfg_attr(test, allow(dead_code))]
    OwnBinary(#[source] std::io::Error),
}

impl SessionError {
    fn terminal(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SessionError {
        let what = what.into();
        move |source| SessionError::Terminal { what, source }
    }
}

/// The descriptor `cordon sandbox` reads a session's secrets from.
const SECRETS_FD: i32 = 3;
/// The descriptor a session's sandbox writes its egress events to (`--events-fd`), one
/// JSON line each (network mode "proxy").
const EVENTS_FD: i32 = 4;
/// The descriptor a session's sandbox reads the owner's answers from (`--answers-fd`).
const ANSWERS_FD: i32 = 5;

/// The pipes between the host and a sandbox's egress proxy: the events it writes, and (for
/// sessions, which have an owner to ask) the answers it reads.
pub struct EgressPipes {
    pub events: OwnedFd,
    pub answers: Option<OwnedFd>,
    /// Whether refusals are also noted on the command's stderr: not for a terminal session
    /// (a line would draw over a full-screen program; the audit and the timeline have
    /// them), yes for a run (its caller reads stderr).
    pub notes: bool,
}

impl EgressPipes {
    /// New pipes; returns the host's ends (events to read, answers to write) and the
    /// sandbox's.
    pub fn new(with_answers: bool) -> std::io::Result<((File, Option<File>), EgressPipes)> {
        // A session has an owner to ask and a terminal; a run has neither.
        let notes = !with_answers;
        let (events_read, events_write) = pipe()?;
        let (ours, theirs) = if with_answers {
            let (r, w) = pipe()?;
            (Some(File::from(w)), Some(r))
        } else {
            (None, None)
        };
        Ok((
            (File::from(events_read), ours),
            EgressPipes {
                events: events_write,
                answers: theirs,
                notes,
            },
        ))
    }
}

/// Bytes a viewer may have queued before it is resynced from a screen snapshot.
const VIEWER_BUDGET: usize = 1 << 20;

/// Where and as whom a user's command runs: the profile, the workspace and home (prepared
/// by [`crate::places`], without links), and the account (None: the host's own).
#[derive(Debug, Clone)]
pub struct Confinement {
    pub profile: String,
    pub workspace: PathBuf,
    pub home: PathBuf,
    pub account: Option<crate::places::Account>,
    /// The cordon user's name (USER and LOGNAME inside).
    pub user: String,
    /// The secrets its profile asks for that the user (or the host) has: handed to the
    /// sandbox through a memfd, and redacted from the recording.
    pub secrets: crate::vault::SessionSecrets,
}

/// What a new session runs.
#[derive(Debug, Clone)]
pub struct Spec {
    pub owner: String,
    pub owner_id: i64,
    pub name: String,
    pub confinement: Confinement,
    pub command: Vec<String>,
    pub cols: u16,
    pub rows: u16,
    pub term: String,
    /// Its workspace as walked before its command starts, for its summary of files
    /// changed ([`crate::changes`]), or why there is none.
    pub files: Result<Arc<crate::changes::Watch>, String>,
}

impl Spec {
    /// What its recording's header says.
    fn recording(&self) -> crate::record::Meta {
        crate::record::Meta {
            user: self.owner.clone(),
            profile: self.confinement.profile.clone(),
            command: self.command.clone(),
            cols: self.cols,
            rows: self.rows,
            term: self.term.clone(),
        }
    }
}

/// A client watching (and maybe typing into) a session.
pub struct Viewer {
    pub writer: bool,
    /// The watching user's id (0: the host's own shell).
    pub user_id: i64,
    /// For anyone but the session's owner: what could act on their machine (clipboard,
    /// titles, queries the terminal would answer) is dropped ([`crate::filter`]). The owner's own
    /// view is byte-exact.
    filter: Option<Mutex<crate::filter::OutputFilter>>,
    queue: Mutex<(VecDeque<Vec<u8>>, usize)>,
    pub notify: tokio::sync::Notify,
    pub gone: AtomicBool,
    /// Why the host ended this viewer (the user lost the right to watch), if it did.
    revoked: Mutex<Option<String>>,
}

impl Viewer {
    /// Ends the viewer because its user may no longer watch; the face shows `why`.
    pub fn revoke(&self, why: &str) {
        *self.revoked.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_string());
        self.gone.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Why the host ended this viewer, if it did.
    pub fn revoked(&self) -> Option<String> {
        self.revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes everything queued.
    pub fn drain(&self) -> Vec<u8> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(q.1);
        for chunk in q.0.drain(..) {
            out.extend_from_slice(&chunk);
        }
        q.1 = 0;
        out
    }

    fn push(&self, bytes: &[u8], snapshot: &mut dyn FnMut() -> Vec<u8>) {
        self.queue(bytes, snapshot);
        self.notify.notify_one();
    }

    /// Queues `bytes` without waking the viewer's face (the reader wakes it once the PTY
    /// has nothing more to read: a wake-up per read cost bulk output dearly).
    fn queue(&self, bytes: &[u8], snapshot: &mut dyn FnMut() -> Vec<u8>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.1 + bytes.len() > VIEWER_BUDGET {
            // Too far behind: forget the backlog, show the current screen instead (through
            // a fresh filter: the snapshot starts from a clean terminal state).
            q.0.clear();
            let snap = match &self.filter {
                Some(f) => {
                    let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                    *f = crate::filter::OutputFilter::new();
                    f.filter(&snapshot())
                }
                None => snapshot(),
            };
            q.1 = snap.len();
            q.0.push_back(snap);
        } else {
            let bytes = match &self.filter {
                Some(f) => f.lock().unwrap_or_else(|e| e.into_inner()).filter(bytes),
                None => bytes.to_vec(),
            };
            q.1 += bytes.len();
            q.0.push_back(bytes);
        }
    }
}

/// One session.
pub struct Session {
    pub id: SessionId,
    name: Mutex<String>,
    pub owner: String,
    pub owner_id: i64,
    pub profile: String,
    /// The command, its secrets masked (for listings; the session runs the real one).
    pub command: Vec<String>,
    pub created: String,
    started: Instant,
    pid: i32,
    master: File,
    screen: Mutex<screen::Screen>,
    viewers: Mutex<Vec<Arc<Viewer>>>,
    exit: Mutex<Option<i32>>,
    last_activity: Mutex<Instant>,
    recording: Lane,
    record_input: bool,
    /// Its egress questions (ask mode), and where their answers go.
    pub egress: egress::Egress,
    /// Set once the host has ended it (it leaves the list when its reader sees the end).
    ending: AtomicBool,
    /// Its workspace as it was before the command started (see [`Spec::files`]).
    files: Result<Arc<crate::changes::Watch>, String>,
    /// Its cgroup while frozen (`freeze.rs`).
    frozen: Mutex<Option<freeze::Group>>,
}

impl Session {
    pub fn name(&self) -> String {
        self.name.lock().map(|n| n.clone()).unwrap_or_default()
    }

    pub fn rename(&self, name: &str) {
        *self.name.lock().unwrap_or_else(|e| e.into_inner()) = name.to_string();
    }

    /// `height` lines of the screen and its scrollback, ending `back` lines up from the
    /// last with content (the TUI's preview, scrolled back).
    pub fn screen_window(&self, back: usize, height: usize) -> screen::Window {
        self.screen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .window(back, height)
    }

    /// The screen's size (columns, rows) and its rows as text, read together.
    pub fn screen_text(&self) -> (u16, u16, Vec<String>) {
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        let screen = screen.now();
        let (rows, cols) = screen.size();
        (cols.get(), rows.get(), screen.rows(0, cols.get()).collect())
    }

    /// Whether the host has ended it (its processes are going).
    pub fn ending(&self) -> bool {
        self.ending.load(Ordering::SeqCst)
    }

    /// How it ended, once it has.
    pub fn exit_status(&self) -> Option<i32> {
        *self.exit.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn viewer_count(&self) -> usize {
        self.viewers.lock().map(|v| v.len()).unwrap_or(0)
    }

    pub fn idle(&self) -> Duration {
        self.last_activity
            .lock()
            .map(|t| t.elapsed())
            .unwrap_or_default()
    }

    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds a viewer for user `user_id`, at most `max` per session, its output `filtered`
    /// or byte-exact; it first receives the current screen. The screen lock is held until the viewer is registered, so no output
    /// falls between the snapshot and the stream.
    pub fn attach(
        &self,
        writer: bool,
        user_id: i64,
        max: usize,
        filtered: bool,
    ) -> Result<Arc<Viewer>, SessionError> {
        let v = Arc::new(Viewer {
            writer,
            user_id,
            filter: filtered.then(|| Mutex::new(crate::filter::OutputFilter::new())),
            queue: Mutex::new((VecDeque::new(), 0)),
            notify: tokio::sync::Notify::new(),
            gone: AtomicBool::new(false),
            revoked: Mutex::new(None),
        });
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        let mut viewers = self.viewers.lock().unwrap_or_else(|e| e.into_inner());
        if viewers.len() >= max {
            return Err(SessionError::Full { id: self.id, max });
        }
        v.push(&snapshot(screen.parser(), Alternate::Enter), &mut Vec::new);
        viewers.push(v.clone());
        drop(viewers);
        drop(screen);
        Ok(v)
    }

    /// Removes a viewer; its face's task is woken to notice.
    pub fn detach(&self, viewer: &Arc<Viewer>) {
        viewer.gone.store(true, Ordering::SeqCst);
        self.viewers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|v| !Arc::ptr_eq(v, viewer));
        viewer.notify.notify_one();
    }

    /// `viewer`'s pending output and, after it, what `then` makes of the screen that output
    /// leaves the client with (an overlay that must match it). Under the screen lock, so no
    /// output comes between the two.
    pub fn drain_with(
        &self,
        viewer: &Viewer,
        then: impl FnOnce(&vt100::Screen, &[u8]) -> Vec<u8>,
    ) -> Vec<u8> {
        self.drain_then(viewer, then, false)
    }

    /// What a client leaving needs last: `viewer`'s pending output, what `then` makes of the
    /// screen it leaves the client with (an overlay taken away), and the bytes that give the
    /// client's terminal back from the modes of that screen ([`restore`]). Under the screen
    /// lock, so the modes are those of the output sent.
    pub fn leave(
        &self,
        viewer: &Viewer,
        then: impl FnOnce(&vt100::Screen, &[u8]) -> Vec<u8>,
    ) -> Vec<u8> {
        self.drain_then(viewer, then, true)
    }

    /// [`Session::drain_with`], and with `give_back` what [`Session::leave`] adds.
    fn drain_then(
        &self,
        viewer: &Viewer,
        then: impl FnOnce(&vt100::Screen, &[u8]) -> Vec<u8>,
        give_back: bool,
    ) -> Vec<u8> {
        let mut screen = self.screen.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = viewer.drain();
        let more = then(screen.now(), &out);
        out.extend(more);
        if give_back {
            out.extend(restore::restore(&screen.modes()));
        }
        out
    }

    /// The viewers now.
    pub fn viewers(&self) -> Vec<Arc<Viewer>> {
        self.viewers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The recording's id (empty when recordings are off).
    pub fn recording_id(&self) -> String {
        self.recording.id.clone()
    }

    /// Records an event. False when the session must end (strict policy and the recording
    /// cannot be written).
    fn record(&self, kind: u8, data: &[u8]) -> bool {
        self.recording.record(kind, data)
    }

    /// Adds a marker to the recording (a named point to jump to on playback).
    pub fn mark(&self, label: &str) -> bool {
        self.record(recfmt::MARKER, label.as_bytes())
    }

    /// Input from a client allowed to type.
    pub fn input(&self, bytes: &[u8]) -> std::io::Result<()> {
        *self.last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        // Input is recorded only where configured, and never at a password prompt (asked
        // before the program can read it and change its modes). Recorded after it is
        // written: the keystroke's way to the program does not wait for the recording.
        let record = self.record_input && !self.at_password_prompt();
        let written = (&self.master).write_all(bytes);
        if record && !self.record(recfmt::INPUT, bytes) {
            self.kill();
        }
        written
    }

    /// Whether the terminal is at a password prompt: echo off in line mode, as getpass,
    /// sudo, ssh and `read -s` set it. (Readline and editors turn echo off too, but in raw
    /// mode, and echo what is typed themselves.) Unreadable modes count as a prompt.
    fn at_password_prompt(&self) -> bool {
        // SAFETY: tcgetattr into a zeroed struct on our master fd (it reads the terminal's modes).
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(self.master.as_raw_fd(), &mut t) != 0 {
                return true;
            }
            t.c_lflag & libc::ECHO == 0 && t.c_lflag & libc::ICANON != 0
        }
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        let ws = libc::winsize {
            ws_row: rows.max(1),
            ws_col: cols.max(1),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ with a valid winsize on our master fd.
        unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        self.screen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_size(rows, cols);
        if !self.record(recfmt::RESIZE, format!("{cols}x{rows}").as_bytes()) {
            self.kill();
        }
    }

    /// Ends the session: its whole process tree is killed (the sandbox's init takes every
    /// process of its pid namespace with it).
    pub fn kill(&self) {
        self.ending.store(true, Ordering::SeqCst);
        // Killing the sandbox's init (pid 1 of its namespace) ends every process in it and
        // lets `cordon sandbox` clean up after it (its cgroup); killing `cordon sandbox`
        // itself would leave that behind.
        let children =
            std::fs::read_to_string(format!("/proc/{}/task/{}/children", self.pid, self.pid))
                .unwrap_or_default();
        let mut killed = false;
        for child in children
            .split_whitespace()
            .filter_map(|c| c.parse::<i32>().ok())
        {
            // SAFETY: signalling a child of the session's own process.
            killed |= unsafe { libc::kill(child, libc::SIGKILL) } == 0;
        }
        if !killed {
            // SAFETY: signalling the session's own process group.
            unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        }
        // A frozen process takes its SIGKILL once thawed (cgroup v1), without running again.
        if self.frozen() {
            let _ = self.thaw("ended");
        }
    }
}

/// How a session's or a run's command is started.
pub enum Launcher {
    /// Confined by `cordon sandbox` (this binary, at this path): what every host does.
    #[cfg_attr(test, allow(dead_code))]
    Sandbox(PathBuf),
    /// The command itself, unconfined, as the host: only in unit tests, which check the
    /// service's authority and audit with real sessions and must run without root or a built
    /// `cordon` (a unit test's own binary cannot be `cordon sandbox`). Confinement is tested
    /// where it is built (the sandbox crate) and through the real binary (tests/).
    #[cfg(test)]
    Unconfined,
}

impl Launcher {
    /// The launcher of this build: this binary's sandbox (unit tests: unconfined).
    pub fn for_this_build() -> Result<Launcher, SessionError> {
        #[cfg(test)]
        return Ok(Launcher::Unconfined);
        #[cfg(not(test))]
        std::env::current_exe()
            .map(Launcher::Sandbox)
            .map_err(SessionError::OwnBinary)
    }
}

/// Every live session, and how to start one.
pub struct Hub {
    sessions: Mutex<BTreeMap<SessionId, Arc<Session>>>,
    spawner: spawner::Spawner,
    launcher: Launcher,
    /// Paths every session must not see (the data directory).
    hide: Vec<PathBuf>,
    audit: Arc<AuditLog>,
    recorder: Arc<Recorder>,
    store: Arc<Store>,
}

impl Hub {
    pub fn new(
        launcher: Launcher,
        hide: Vec<PathBuf>,
        audit: Arc<AuditLog>,
        recorder: Arc<Recorder>,
        store: Arc<Store>,
    ) -> Arc<Hub> {
        Arc::new(Hub {
            sessions: Mutex::new(BTreeMap::new()),
            spawner: spawner::Spawner::start(),
            launcher,
            hide,
            audit,
            recorder,
            store,
        })
    }

    /// Every live session, oldest first (ids are random: their order is not the start's).
    pub fn list(&self) -> Vec<Arc<Session>> {
        let mut list: Vec<Arc<Session>> = self
            .sessions
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        list.sort_by_key(|s| s.started);
        list
    }

    pub fn get(&self, id: SessionId) -> Option<Arc<Session>> {
        self.sessions.lock().ok().and_then(|s| s.get(&id).cloned())
    }

    /// An id no live session has (60 random bits: a repeat is for show, but costs nothing
    /// to rule out here).
    fn new_id(&self) -> Result<SessionId, SessionError> {
        loop {
            let id = SessionId::random().map_err(SessionError::Random)?;
            if self.get(id).is_none() {
                return Ok(id);
            }
        }
    }

    /// The live session of user `owner_id` named `name`, other than `except`.
    pub fn named(&self, owner_id: i64, name: &str, except: Option<SessionId>) -> Option<SessionId> {
        self.list()
            .iter()
            .find(|s| s.owner_id == owner_id && Some(s.id) != except && s.name() == name)
            .map(|s| s.id)
    }

    /// The name a session of `owner` gets when given none: `owner-N`, the smallest N no live
    /// session of theirs is named with (as tmux numbers its sessions).
    pub fn free_name(&self, owner: &str, owner_id: i64) -> String {
        (1..)
            .map(|n| format!("{owner}-{n}"))
            .find(|name| self.named(owner_id, name, None).is_none())
            .unwrap_or_else(|| owner.to_string())
    }

    /// Sessions of user `owner_id`.
    pub fn count_for(&self, owner_id: i64) -> usize {
        self.list()
            .iter()
            .filter(|s| s.owner_id == owner_id)
            .count()
    }

    /// Spawns a child from the long-lived spawner thread (killed if the host dies).
    pub fn spawn(&self, cmd: Command) -> std::io::Result<std::process::Child> {
        self.spawner.spawn(cmd)
    }

    /// The command line that runs `command` confined as `c` says: the user's account, home
    /// and workspace, no link followed beneath them (`--no-links`: sessions write there).
    ///
    /// The secrets go through a memfd the child inherits as descriptor 3 (`--secrets-fd 3`),
    /// never through its arguments or environment; the sandbox reads and closes it before
    /// anything else, and says which of the profile's secrets are missing. With `events`,
    /// the sandbox writes its egress events to `egress.events` (`--events-fd 4`) and reads
    /// the owner's answers from `egress.answers` (`--answers-fd 5`).
    pub fn sandbox_command(
        &self,
        c: &Confinement,
        command: &[String],
        term: &str,
        egress: Option<EgressPipes>,
    ) -> std::io::Result<Command> {
        #[allow(clippy::infallible_destructuring_match)] // one variant outside unit tests
        let exe = match &self.launcher {
            Launcher::Sandbox(exe) => exe,
            #[cfg(test)]
            Launcher::Unconfined => {
                let mut cmd = Command::new(command.first().map(String::as_str).unwrap_or("true"));
                cmd.args(command.iter().skip(1))
                    .env_clear()
                    .env("TERM", term)
                    .env("PATH", "/usr/bin:/bin")
                    .current_dir(&c.workspace);
                return Ok(cmd);
            }
        };
        let mut cmd = Command::new(exe);
        cmd.arg("sandbox")
            .arg("--profile")
            .arg(&c.profile)
            .arg("--workspace")
            .arg(&c.workspace);
        cmd.arg("--home")
            .arg(&c.home)
            .arg("--no-links")
            .arg("--user-name")
            .arg(&c.user);
        if let Some(a) = c.account {
            cmd.arg("--uid")
                .arg(a.uid.to_string())
                .arg("--gid")
                .arg(a.gid.to_string());
        }
        for h in &self.hide {
            cmd.arg("--hide").arg(h);
        }
        let secrets = c.secrets.memfd()?;
        cmd.arg("--secrets-fd").arg(SECRETS_FD.to_string());
        let (events, answers) = match egress {
            Some(p) => {
                if !p.notes {
                    cmd.arg("--no-egress-notes");
                }
                (Some(p.events), p.answers)
            }
            None => (None, None),
        };
        if events.is_some() {
            cmd.arg("--events-fd").arg(EVENTS_FD.to_string());
        }
        if answers.is_some() {
            cmd.arg("--answers-fd").arg(ANSWERS_FD.to_string());
        }
        cmd.arg("--").args(command);
        // The host's environment (and its secrets) never reaches a session. HOME stays the
        // host's here: the sandbox finds profiles through it (a session's own home must not
        // be able to supply profiles); the command's HOME is `--home`.
        cmd.env_clear();
        for (k, v) in [
            ("TERM", term),
            ("LANG", "C.UTF-8"),
            ("USER", &c.user),
            ("LOGNAME", &c.user),
        ] {
            cmd.env(k, v);
        }
        // CORDON_EGRESS_RESOLVE is the operator's resolver override for the egress proxy;
        // XDG_RUNTIME_DIR is where an unprivileged sandbox keeps the lock of its protected
        // paths' placeholders (without it the last session of a workspace cannot remove
        // them). Both are the supervisor's; the command's environment is the policy's.
        for k in [
            "HOME",
            "PATH",
            "XDG_CONFIG_HOME",
            "XDG_RUNTIME_DIR",
            "CORDON_PROFILE_PATH",
            "CORDON_EGRESS_RESOLVE",
        ] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        use std::os::unix::process::CommandExt;
        // SAFETY: umask is async-signal-safe. The host keeps its own files private (umask
        // 077); a user's session gets the usual 022, and the sandbox's mount points must be
        // traversable once it runs as the user.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o022);
                Ok(())
            });
        }
        // SAFETY: dup2 and fcntl are async-signal-safe; the memfd and the egress pipes live
        // in the closure until the command is dropped after the spawn. All are first copied
        // above 9 (close-on-exec), so that no dup2 can overwrite another's source; dup2 then
        // clears close-on-exec on descriptors 3, 4 and 5.
        unsafe {
            cmd.pre_exec(move || {
                let high = |fd: i32| {
                    let r = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                    if r < 0 {
                        Err(std::io::Error::last_os_error())
                    } else {
                        Ok(r)
                    }
                };
                let s = high(secrets.as_raw_fd())?;
                let e = match &events {
                    Some(e) => Some(high(e.as_raw_fd())?),
                    None => None,
                };
                let a = match &answers {
                    Some(a) => Some(high(a.as_raw_fd())?),
                    None => None,
                };
                for (from, to) in [(Some(s), SECRETS_FD), (e, EVENTS_FD), (a, ANSWERS_FD)] {
                    if let Some(from) = from {
                        if libc::dup2(from, to) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// Starts a session in a new PTY.
    pub fn create(self: &Arc<Hub>, spec: Spec) -> Result<Arc<Session>, SessionError> {
        let id = self.new_id()?;
        // The recording exists before the command does, so it holds the first byte. A
        // recording that cannot start stops the session from starting, whatever the policy.
        let (lane, pending) = if self.recorder.enabled {
            let (header, rec_path, writer) = self
                .recorder
                .start(id.number(), &spec.recording())
                .map_err(SessionError::Recording)?;
            self.store
                .add_recording(&RecordingEntry {
                    id: header.id.clone(),
                    session: id.number() as i64,
                    user: spec.owner.clone(),
                    user_id: spec.owner_id,
                    profile: spec.confinement.profile.clone(),
                    command: crate::masking::mask_argv(&spec.command).join(" "),
                    started: crate::audit::now_rfc3339(),
                    ended: None,
                    exit_status: None,
                    state: crate::store::RecordingState::Recording,
                    path: rec_path.display().to_string(),
                    bytes: writer.bytes as i64,
                    key_id: header.key_id.clone(),
                    hold: false,
                })
                .map_err(SessionError::Catalogue)?;
            let secrets: Vec<&[u8]> = spec
                .confinement
                .secrets
                .given
                .iter()
                .map(|(_, v)| v.as_slice())
                .collect();
            let (lane, pending) = Lane::new(
                header.id,
                writer,
                self.recorder.policy,
                &secrets,
                (spec.cols, spec.rows),
            );
            for i in lane.skipped() {
                let (name, value) = &spec.confinement.secrets.given[i];
                // Set before values under 8 bytes were refused, or longer than the redactor
                // takes: said on the host's log (the value is not).
                eprintln!(
                    "cordon: session {id}: the secret {name} ({} bytes) is not redacted from the recording (only values of {} to {} bytes are)",
                    value.len(),
                    crate::redact::MIN_SECRET,
                    crate::redact::MAX_SECRET
                );
            }
            (lane, Some(pending))
        } else {
            (Lane::off(), None)
        };
        let (master, slave) = open_pty(spec.cols, spec.rows)?;
        if let Some(a) = spec.confinement.account {
            // The terminal belongs to the session's user, as sshd gives a login its tty.
            // SAFETY: fchown and fchmod on the slave we just opened.
            unsafe {
                if libc::fchown(slave.as_raw_fd(), a.uid, a.gid) != 0
                    || libc::fchmod(slave.as_raw_fd(), 0o620) != 0
                {
                    return Err(SessionError::terminal(format!(
                        "giving the terminal to uid {}",
                        a.uid
                    ))(std::io::Error::last_os_error()));
                }
            }
        }
        let ((events, answers), pipes) = EgressPipes::new(true).map_err(SessionError::Spawn)?;
        let mut cmd = self
            .sandbox_command(&spec.confinement, &spec.command, &spec.term, Some(pipes))
            .map_err(SessionError::Spawn)?;
        let tty = |f: &File| {
            f.try_clone()
                .map(Stdio::from)
                .map_err(SessionError::terminal("duplicating the terminal"))
        };
        cmd.stdin(tty(&slave)?)
            .stdout(tty(&slave)?)
            .stderr(tty(&slave)?);
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid and TIOCSCTTY are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = self.spawner.spawn(cmd).map_err(SessionError::Spawn)?;
        drop(slave);
        let reader = master
            .try_clone()
            .map_err(SessionError::terminal("duplicating the terminal"))?;
        let session = Arc::new(Session {
            id,
            name: Mutex::new(if spec.name.is_empty() {
                self.free_name(&spec.owner, spec.owner_id)
            } else {
                spec.name.clone()
            }),
            owner: spec.owner.clone(),
            owner_id: spec.owner_id,
            profile: spec.confinement.profile.clone(),
            // What is shown and stored; the sandbox gets the real arguments.
            command: crate::masking::mask_argv(&spec.command),
            created: crate::audit::now_rfc3339(),
            started: Instant::now(),
            pid: child.id() as i32,
            master,
            screen: Mutex::new(screen::Screen::with(
                spec.rows,
                spec.cols,
                screen::SCROLLBACK,
                screen::CATCH_UP_AT,
            )),
            viewers: Mutex::new(Vec::new()),
            exit: Mutex::new(None),
            last_activity: Mutex::new(Instant::now()),
            recording: lane,
            record_input: self.recorder.input,
            egress: egress::Egress::new(
                answers,
                spec.confinement
                    .secrets
                    .given
                    .iter()
                    .map(|(_, v)| v.to_vec())
                    .collect(),
            ),
            ending: AtomicBool::new(false),
            files: spec.files.clone(),
            frozen: Mutex::new(None),
        });
        // The write end went with the command: end-of-file when the sandbox's proxy ends.
        let (audit, owner, weak) = (
            self.audit.clone(),
            spec.owner.clone(),
            Arc::downgrade(&session),
        );
        if let Err(e) = std::thread::Builder::new()
            .name(format!("session-{id}-net"))
            .spawn(move || {
                events::follow(events, events::Subject::Session(weak, id), &audit, &owner)
            })
        {
            session.kill();
            return Err(SessionError::Reader(e));
        }
        if let Some(p) = pending {
            if let Err(e) = p.start(
                Arc::downgrade(&session),
                self.audit.clone(),
                session.recording_id(),
            ) {
                session.kill();
                return Err(SessionError::Writer(e));
            }
        }
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, session.clone());
        let hub = self.clone();
        let s = session.clone();
        std::thread::Builder::new()
            .name(format!("session-{id}"))
            .spawn(move || {
                pump(&s, reader);
                // Whatever is left of the tree goes with the session.
                s.kill();
                let code = match child.wait() {
                    Ok(st) => st.code().unwrap_or_else(|| {
                        128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0)
                    }),
                    Err(_) => 255,
                };
                // Every process of it is gone (and its sandbox has taken its placeholders
                // away): what it did to its workspace goes on the recording before the exit
                // status, so that it is sealed with the rest.
                let files = s.final_files();
                if let Some((state, bytes)) = s.recording.finish(code) {
                    if let Err(e) = hub.store.end_recording(
                        &s.recording_id(),
                        Some(i64::from(code)),
                        state,
                        bytes,
                    ) {
                        // The recording is whole on disk; only its catalog entry lags.
                        eprintln!(
                            "cordon: recording {}: its catalog entry could not be completed: {e}",
                            s.recording_id()
                        );
                    }
                }
                *s.exit.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
                hub.sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&s.id);
                if code == sandbox::EXIT_REFUSED {
                    SANDBOX_REFUSALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let mut end = AuditEvent::new(Kind::SessionEnd, s.owner.clone())
                    .with("session", s.id)
                    .with("exit_status", code);
                if let Some(f) = files {
                    end = end
                        .with("files_created", f.counts.created)
                        .with("files_changed", f.counts.changed)
                        .with("files_deleted", f.counts.deleted);
                }
                hub.audit.report(end);
                for v in s.viewers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    v.notify.notify_one();
                }
            })
            .map_err(SessionError::Reader)?;
        Ok(session)
    }

    /// Kills sessions idle or alive for too long.
    pub fn enforce_limits(&self, idle: Duration, max: Duration) {
        // A frozen session waits for whoever froze it (the lockdown's end), idle or not.
        for s in self
            .list()
            .into_iter()
            .filter(|s| !s.ending() && !s.frozen())
        {
            let why = if s.idle() > idle && s.viewer_count() == 0 {
                Some("idle timeout")
            } else if s.age() > max {
                Some("maximum duration")
            } else {
                None
            };
            if let Some(why) = why {
                self.audit.report(
                    AuditEvent::new(Kind::SessionTimeout, "cordon")
                        .with("session", s.id)
                        .with("reason", why),
                );
                s.kill();
            }
        }
    }

    /// Ends every session (shutdown).
    pub fn end_all(&self) {
        for s in self.list() {
            s.kill();
        }
    }
}

/// What a snapshot says of the alternate screen (vt100's own leaves it out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alternate {
    /// Nothing: a keyframe, played into a fresh screen.
    Unsaid,
    /// Entered if the program is on it: a client attaching is on its main screen (its
    /// shell), which leaving the alternate one at the end gives back.
    Enter,
    /// Entered or left: a viewer resynchronized may be on either after the output dropped.
    Either,
}

/// Bytes that redraw `screen` on a fresh terminal.
fn snapshot(screen: &vt100::Parser, alternate: Alternate) -> Vec<u8> {
    let on = screen.screen().alternate_screen();
    let mut out = match (alternate, on) {
        (Alternate::Enter | Alternate::Either, true) => b"\x1b[?1049h".to_vec(),
        (Alternate::Either, false) => b"\x1b[?1049l".to_vec(),
        _ => Vec::new(),
    };
    out.extend_from_slice(b"\x1b[H\x1b[2J");
    out.extend(screen.screen().state_formatted().into_bytes());
    out
}

/// Reads the PTY until the command is gone, feeding the screen and the viewers.
/// Output between two keyframes: seeking decodes at most this much.
const KEYFRAME_EVERY: usize = 1 << 20;

fn pump(s: &Arc<Session>, mut reader: File) {
    let mut buf = vec![0u8; 64 << 10];
    let mut since_keyframe = 0usize;
    // Output queued for viewers and held for the recording since they were last woken.
    let mut held = 0usize;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO: every holder of the terminal's other end is gone.
            Err(_) => break,
        };
        let bytes = &buf[..n];
        held += n;
        // A PTY gives at most 4 KiB a read: while more waits, viewers and the recording get
        // this read with the next ones, in one wake-up. Once it has nothing more (or 64 KiB
        // wait), at once: a keystroke's echo is never held.
        let last = held >= HELD_FOR_VIEWERS || !readable_now(&reader);
        // Screen, then viewers, under the screen lock: the order `attach` relies on.
        let mut screen = s.screen.lock().unwrap_or_else(|e| e.into_inner());
        screen.push(bytes);
        let viewers = s.viewers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for v in &viewers {
            v.queue(bytes, &mut || snapshot(screen.parser(), Alternate::Either));
        }
        if last {
            held = 0;
            for v in &viewers {
                v.notify.notify_one();
            }
        }
        // After the viewers are woken: an echo's way to the client does not wait for the
        // hand-over to the recording's thread.
        if !s.recording.record_output(bytes, last) {
            s.kill();
        }
        since_keyframe += n;
        if since_keyframe >= KEYFRAME_EVERY {
            since_keyframe = 0;
            let (rows, cols) = screen.now().size();
            let mut frame = format!("{cols}x{rows}\n").into_bytes();
            frame.extend(snapshot(screen.parser(), Alternate::Unsaid));
            drop(screen);
            if !s.recording.keyframe(frame) {
                s.kill();
            }
        }
    }
    s.recording.flush();
    for v in s.viewers() {
        v.notify.notify_one();
    }
}

/// Output held back from viewers at most (bytes): see `pump`.
const HELD_FOR_VIEWERS: usize = 64 << 10;

/// Whether the PTY has output waiting now (poll without waiting).
fn readable_now(f: &File) -> bool {
    let mut p = libc::pollfd {
        fd: f.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one valid pollfd, with no wait.
    unsafe { libc::poll(&mut p, 1, 0) > 0 && p.revents & libc::POLLIN != 0 }
}

fn open_pty(cols: u16, rows: u16) -> Result<(File, File), SessionError> {
    let (mut m, mut sl) = (0, 0);
    let ws = libc::winsize {
        ws_row: rows.max(1),
        ws_col: cols.max(1),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty fills two fds; name and termios may be null.
    if unsafe { libc::openpty(&mut m, &mut sl, std::ptr::null_mut(), std::ptr::null(), &ws) } != 0 {
        return Err(SessionError::terminal("opening a terminal")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: fresh fds owned here; close-on-exec so no other child inherits them.
    unsafe {
        libc::fcntl(m, libc::F_SETFD, libc::FD_CLOEXEC);
        libc::fcntl(sl, libc::F_SETFD, libc::FD_CLOEXEC);
        Ok((File::from_raw_fd(m), File::from_raw_fd(sl)))
    }
}

#[cfg(test)]
mod tests;

/// A close-on-exec pipe (read end, write end).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: a two-int array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
