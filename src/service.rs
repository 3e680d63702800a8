//! The service layer: every operation the faces offer (SSH commands, the TUI, the HTTP API),
//! each taking the caller's principal. The permission check and the audit event live
//! here, once; a face parses, calls, and shows the answer. No face touches the store.

use std::path::Path;
use std::sync::Arc;

use crate::audit::{AuditEvent, AuditLog};
use crate::auth::{allowed, Action, Role};
use crate::config::Config;
use crate::paths::DataDir;
use crate::record::format;
use crate::sessions::{Hub, Session, Spec, Viewer};
use crate::store::{RecordingEntry, Store, User};

/// Who is asking, from where, and in which request (the API's request id).
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    pub address: String,
    pub request: Option<String>,
}

impl Principal {
    /// Adds where the call came from to an audit event.
    pub fn stamp(&self, e: AuditEvent) -> AuditEvent {
        let e = e.with("address", self.address.clone());
        match &self.request {
            Some(r) => e.with("request", r.clone()),
            None => e,
        }
    }
}

/// Why a call did not happen. `Forbidden` refusals are audited before they are returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    Forbidden(String),
    NotFound(String),
    Invalid(String),
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Forbidden(m) | Error::NotFound(m) | Error::Invalid(m) | Error::Failed(m) => f.write_str(m),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A request for a new session; what is left out takes the configured default.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    pub profile: Option<String>,
    pub workspace: Option<String>,
    pub name: String,
    pub command: Vec<String>,
    pub cols: u16,
    pub rows: u16,
    pub term: String,
}

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

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub exit_status: i32,
    /// "timeout", "output cap", "client gone", or None.
    pub ended_by: Option<&'static str>,
}

/// A line of a recording that matched a search.
#[derive(Debug, Clone)]
pub struct Hit {
    pub recording: String,
    pub user: String,
    pub at: f64,
    pub line: String,
}

/// A user as the admin view shows it.
#[derive(Debug, Clone)]
pub struct UserInfo {
    pub user: User,
    pub keys: usize,
    pub password: bool,
}

/// The host's parts, shared by every face.
pub struct Service {
    pub store: Arc<Store>,
    pub audit: Arc<AuditLog>,
    pub hub: Arc<Hub>,
    pub config: Config,
    pub dir: DataDir,
    /// API token signing and checking.
    pub tokens: Arc<crate::api::tokens::Tokens>,
}

impl Service {
    /// Opens the data directory and builds the host (store, audit log, recorder, hub).
    pub fn open(dir: DataDir, config: Config) -> std::result::Result<Arc<Service>, String> {
        let admin = crate::admin::Admin::open(dir.clone())?;
        let exe = std::env::current_exe().map_err(|e| format!("finding cordon's own binary: {e}"))?;
        std::fs::create_dir_all(&config.workspace_root).map_err(|e| format!("creating {}: {e}", config.workspace_root.display()))?;
        let audit = Arc::new(admin.audit);
        let store = Arc::new(admin.store);
        let recorder = Arc::new(crate::record::Recorder::new(
            config.recordings_dir.clone().unwrap_or_else(|| dir.root.join("recordings")),
            crate::record::Keyring::new(&dir),
            config.recording_policy,
            config.record_input,
            config.recording_enabled,
        )?);
        let hub = Hub::new(exe, vec![dir.root.clone(), recorder.dir.clone()], audit.clone(), recorder, store.clone());
        let tokens = Arc::new(crate::api::tokens::Tokens::open(&dir, &config.api_signing)?);
        Ok(Arc::new(Service { store, audit, hub, config, dir, tokens }))
    }

    fn record(&self, event: AuditEvent) {
        if let Err(e) = self.audit.record(event) {
            eprintln!("cordon: audit log: {e}");
        }
    }

    /// A refusal, audited.
    fn refuse(&self, p: &Principal, what: &str, why: String) -> Error {
        self.record(p.stamp(AuditEvent::new("refused", p.user.clone())).with("what", what.to_string()).with("why", why.clone()));
        Error::Forbidden(why)
    }

    /// The permission check: a refusal is audited and returned.
    fn check(&self, p: &Principal, action: Action, what: &str, why: impl FnOnce() -> String) -> Result<()> {
        if allowed(p.role, action) {
            return Ok(());
        }
        let why = why();
        self.record(p.stamp(AuditEvent::new("refused", p.user.clone())).with("what", what.to_string()).with("why", why.clone()));
        Err(Error::Forbidden(why))
    }

    /// The principal of a user in the store (locked users have none).
    pub fn principal(&self, user: &str, address: &str) -> Result<Principal> {
        match self.store.user(user) {
            Ok(Some(u)) if !u.locked => Ok(Principal { user: u.name, role: u.role, address: address.to_string(), request: None }),
            Ok(Some(_)) => Err(Error::Forbidden(format!("{user} is locked"))),
            Ok(None) => Err(Error::NotFound(format!("no user {user}"))),
            Err(e) => Err(Error::Failed(e.to_string())),
        }
    }

    /// Sessions the principal may see, oldest first.
    pub fn sessions(&self, p: &Principal) -> Result<Vec<Arc<Session>>> {
        self.check(p, Action::ListSessions, "ls", || format!("a {} may not list sessions", p.role))?;
        let mut list: Vec<_> =
            self.hub.list().into_iter().filter(|s| allowed(p.role, Action::ObserveSession { own: s.owner == p.user })).collect();
        list.sort_by_key(|s| s.id);
        Ok(list)
    }

    fn session(&self, id: u64) -> Result<Arc<Session>> {
        self.hub.get(id).ok_or_else(|| Error::NotFound(format!("no session {id}")))
    }

    /// Starts a session for the principal.
    pub fn create_session(&self, p: &Principal, req: NewSession) -> Result<Arc<Session>> {
        self.check(p, Action::CreateSession, "new", || format!("a {} may not start sessions", p.role))?;
        let limit = self.config.max_sessions.get(p.role.name()).copied().unwrap_or(0);
        if self.hub.count_for(&p.user) >= limit {
            return Err(Error::Forbidden(format!("{} already has {limit} sessions, the most a {} may run", p.user, p.role)));
        }
        let name: String = req.name.chars().filter(|c| !c.is_control()).take(64).collect();
        let profile = req.profile.unwrap_or_else(|| self.config.default_profile.clone());
        self.config.profile_allowed(p.role, &profile).map_err(|e| self.refuse(p, "new", e))?;
        if !self.profiles(p).contains(&profile) {
            return Err(Error::Invalid(format!("no profile \"{profile}\" (see `cordon profile list`)")));
        }
        let workspace = self.config.workspace(&p.user, req.workspace.as_deref()).map_err(|e| self.refuse(p, "new", e))?;
        let spec = Spec {
            owner: p.user.clone(),
            name,
            profile: profile.clone(),
            command: req.command,
            workspace,
            cols: req.cols.max(1),
            rows: req.rows.max(1),
            term: if req.term.is_empty() { "xterm-256color".into() } else { req.term },
        };
        let s = self.hub.create(spec).map_err(Error::Failed)?;
        self.record(
            p.stamp(AuditEvent::new("session.create", p.user.clone()))
                .with("session", s.id)
                .with("profile", profile)
                .with("command", s.command.join(" ")),
        );
        Ok(s)
    }

    /// Attaches (`writer`: may type) or observes; audited.
    pub fn attach(&self, p: &Principal, id: u64, writer: bool) -> Result<(Arc<Session>, Arc<Viewer>)> {
        let s = self.session(id)?;
        let own = s.owner == p.user;
        let (action, verb) = if writer { (Action::AttachSession { own }, "attach") } else { (Action::ObserveSession { own }, "observe") };
        self.check(p, action, verb, || format!("a {} may not {verb} session {id} of {}", p.role, s.owner))?;
        let viewer = s.attach(writer);
        self.record(
            p.stamp(AuditEvent::new(if writer { "session.attach" } else { "session.observe" }, p.user.clone())).with("session", s.id),
        );
        Ok((s, viewer))
    }

    pub fn detach(&self, p: &Principal, s: &Session, viewer: &Arc<Viewer>) {
        s.detach(viewer);
        self.record(p.stamp(AuditEvent::new("session.detach", p.user.clone())).with("session", s.id));
    }

    /// The screen of a session, as rows of text (the TUI's preview). Seeing a screen is
    /// observing it: the same permission.
    pub fn preview(&self, p: &Principal, id: u64) -> Result<Vec<String>> {
        let s = self.session(id)?;
        if !allowed(p.role, Action::ObserveSession { own: s.owner == p.user }) {
            return Err(Error::Forbidden(format!("a {} may not see session {id}", p.role)));
        }
        Ok(s.screen_rows())
    }

    pub fn end_session(&self, p: &Principal, id: u64) -> Result<()> {
        let s = self.session(id)?;
        self.check(p, Action::EndSession { own: s.owner == p.user }, "kill", || {
            format!("a {} may not end session {id} of {}", p.role, s.owner)
        })?;
        s.kill();
        self.record(p.stamp(AuditEvent::new("session.kill", p.user.clone())).with("session", id));
        Ok(())
    }

    /// One session, if the principal may see it.
    pub fn session_info(&self, p: &Principal, id: u64) -> Result<Arc<Session>> {
        let s = self.session(id)?;
        if !allowed(p.role, Action::ObserveSession { own: s.owner == p.user }) {
            return Err(Error::NotFound(format!("no session {id}")));
        }
        Ok(s)
    }

    /// Types into a session (the API's input call): the right to attach.
    pub fn input(&self, p: &Principal, id: u64, bytes: &[u8]) -> Result<()> {
        let s = self.session(id)?;
        self.check(p, Action::AttachSession { own: s.owner == p.user }, "input", || {
            format!("a {} may not type into session {id} of {}", p.role, s.owner)
        })?;
        s.input(bytes).map_err(|e| Error::Failed(format!("writing to the session: {e}")))?;
        self.record(p.stamp(AuditEvent::new("session.input", p.user.clone())).with("session", id).with("bytes", bytes.len()));
        Ok(())
    }

    pub fn resize(&self, p: &Principal, id: u64, cols: u16, rows: u16) -> Result<()> {
        let s = self.session(id)?;
        self.check(p, Action::AttachSession { own: s.owner == p.user }, "resize", || {
            format!("a {} may not resize session {id} of {}", p.role, s.owner)
        })?;
        if !(1..=1000).contains(&cols) || !(1..=1000).contains(&rows) {
            return Err(Error::Invalid("cols and rows must be between 1 and 1000".into()));
        }
        s.resize(cols, rows);
        self.record(p.stamp(AuditEvent::new("session.resize", p.user.clone())).with("session", id).with("size", format!("{cols}x{rows}")));
        Ok(())
    }

    /// Locks or unlocks a user (admins). Locking ends their sessions and voids their tokens.
    pub fn set_locked(&self, p: &Principal, user: &str, locked: bool) -> Result<usize> {
        self.check(p, Action::ManageUsers, "lock", || format!("a {} may not lock users", p.role))?;
        self.store.existing(user).map_err(|e| Error::NotFound(e.to_string()))?;
        if locked && user == p.user {
            return Err(Error::Invalid("you cannot lock yourself out".into()));
        }
        self.store.set_locked(user, locked).map_err(|e| Error::Failed(e.to_string()))?;
        let mut ended = 0;
        if locked {
            self.store.revoke_user_tokens(user, crate::api::tokens::now()).map_err(|e| Error::Failed(e.to_string()))?;
            for s in self.hub.list().into_iter().filter(|s| s.owner == user) {
                s.kill();
                ended += 1;
            }
        }
        let event = if locked { "user.lock" } else { "user.unlock" };
        self.record(p.stamp(AuditEvent::new(event, p.user.clone())).with("user", user.to_string()).with("sessions_ended", ended));
        Ok(ended)
    }

    /// A new API token pair for the principal (`ssh HOST token`); audited.
    pub fn issue_token(&self, p: &Principal, via: &str) -> Result<crate::api::tokens::TokenPair> {
        let pair = self.tokens.pair(&self.store, &p.user, None).map_err(Error::Failed)?;
        self.record(p.stamp(AuditEvent::new("token.issue", p.user.clone())).with("via", via.to_string()));
        Ok(pair)
    }

    /// Adds a user (admins).
    pub fn add_user(&self, p: &Principal, name: &str, role: Role) -> Result<User> {
        self.check(p, Action::ManageUsers, "user add", || format!("a {} may not manage users", p.role))?;
        if self.store.user(name).map_err(|e| Error::Failed(e.to_string()))?.is_some() {
            return Err(Error::Invalid(format!("there is already a user {name}")));
        }
        let u = self.store.add_user(name, role).map_err(|e| Error::Invalid(e.to_string()))?;
        self.record(p.stamp(AuditEvent::new("user.add", p.user.clone())).with("user", name.to_string()).with("role", role.name()));
        Ok(u)
    }

    /// Whether changing `name` away from an active admin would leave none.
    fn last_admin(&self, u: &User) -> bool {
        u.role == Role::Admin && !u.locked && self.store.count_admins().unwrap_or(0) <= 1
    }

    /// Removes a user, their keys, tokens and sessions (admins; never the last admin).
    pub fn remove_user(&self, p: &Principal, name: &str) -> Result<()> {
        self.check(p, Action::ManageUsers, "user remove", || format!("a {} may not manage users", p.role))?;
        let u = self.store.existing(name).map_err(|e| Error::NotFound(e.to_string()))?;
        if self.last_admin(&u) {
            return Err(Error::Invalid(format!("{name} is the last active admin; add another admin first")));
        }
        self.store.revoke_user_tokens(name, crate::api::tokens::now()).map_err(|e| Error::Failed(e.to_string()))?;
        self.store.remove_user(name).map_err(|e| Error::Failed(e.to_string()))?;
        for s in self.hub.list().into_iter().filter(|s| s.owner == name) {
            s.kill();
        }
        self.record(p.stamp(AuditEvent::new("user.remove", p.user.clone())).with("user", name.to_string()));
        Ok(())
    }

    /// Changes a user's role (admins; never the last admin away from admin). Takes effect on
    /// their next request.
    pub fn set_role(&self, p: &Principal, name: &str, role: Role) -> Result<()> {
        self.check(p, Action::ManageUsers, "user role", || format!("a {} may not manage users", p.role))?;
        let u = self.store.existing(name).map_err(|e| Error::NotFound(e.to_string()))?;
        if role != Role::Admin && self.last_admin(&u) {
            return Err(Error::Invalid(format!("{name} is the last active admin; add another admin first")));
        }
        self.store.set_role(name, role).map_err(|e| Error::Failed(e.to_string()))?;
        self.record(
            p.stamp(AuditEvent::new("user.role", p.user.clone()))
                .with("user", name.to_string())
                .with("from", u.role.name())
                .with("to", role.name()),
        );
        Ok(())
    }

    /// A user's SSH keys (admins, or the user themselves).
    pub fn keys(&self, p: &Principal, name: &str) -> Result<Vec<crate::store::Key>> {
        if name != p.user {
            self.check(p, Action::ManageUsers, "keys", || format!("a {} may not see another user's keys", p.role))?;
        }
        self.store.existing(name).map_err(|e| Error::NotFound(e.to_string()))?;
        self.store.keys(name).map_err(|e| Error::Failed(e.to_string()))
    }

    /// Adds an SSH key (an authorized_keys line) to a user (admins).
    pub fn add_key(&self, p: &Principal, name: &str, line: &str) -> Result<crate::store::Key> {
        self.check(p, Action::ManageUsers, "key add", || format!("a {} may not manage keys", p.role))?;
        self.store.existing(name).map_err(|e| Error::NotFound(e.to_string()))?;
        let (k, _) = self.store.add_key(name, line).map_err(|e| Error::Invalid(e.to_string()))?;
        self.record(
            p.stamp(AuditEvent::new("key.add", p.user.clone())).with("user", name.to_string()).with("fingerprint", k.fingerprint.clone()),
        );
        Ok(k)
    }

    /// Removes a user's SSH key by fingerprint (admins).
    pub fn remove_key(&self, p: &Principal, name: &str, fingerprint: &str) -> Result<()> {
        self.check(p, Action::ManageUsers, "key remove", || format!("a {} may not manage keys", p.role))?;
        let k = self.store.remove_key(name, fingerprint).map_err(|e| Error::NotFound(e.to_string()))?;
        self.record(
            p.stamp(AuditEvent::new("key.remove", p.user.clone())).with("user", name.to_string()).with("fingerprint", k.fingerprint),
        );
        Ok(())
    }

    /// Voids every token of `user` issued until now (admins; or anyone for themselves).
    pub fn revoke_tokens(&self, p: &Principal, user: &str) -> Result<()> {
        if user != p.user {
            self.check(p, Action::ManageUsers, "revoke tokens", || format!("a {} may not revoke another user's tokens", p.role))?;
        }
        self.store.revoke_user_tokens(user, crate::api::tokens::now()).map_err(|e| Error::Failed(e.to_string()))?;
        self.record(p.stamp(AuditEvent::new("token.revoke", p.user.clone())).with("user", user.to_string()));
        Ok(())
    }

    /// Checks a run request and resolves its profile and workspace (the cheap part, before
    /// a face commits to running it).
    pub fn prepare_run(&self, p: &Principal, req: &RunRequest) -> Result<(String, std::path::PathBuf)> {
        self.check(p, Action::RunCommand, "run", || format!("a {} may not run commands", p.role))?;
        if req.argv.is_empty() {
            return Err(Error::Invalid("run needs a command".into()));
        }
        let profile = req.profile.clone().unwrap_or_else(|| self.config.default_profile.clone());
        self.config.profile_allowed(p.role, &profile).map_err(|e| self.refuse(p, "run", e))?;
        let workspace = self.config.workspace(&p.user, req.workspace.as_deref()).map_err(|e| self.refuse(p, "run", e))?;
        Ok((profile, workspace))
    }

    /// Runs a command confined, without a terminal (blocking: call it off the async
    /// workers). `sink(stream, bytes)` gets stdout (0) and stderr (1) as they come and says
    /// whether the caller still listens. The time limit and output cap end the command.
    pub fn run(&self, p: &Principal, req: RunRequest, sink: &mut dyn FnMut(u32, Vec<u8>) -> bool) -> Result<RunOutcome> {
        use std::io::Read;
        let (profile, workspace) = self.prepare_run(p, &req)?;
        let started = std::time::Instant::now();
        let limit = req.timeout.unwrap_or(self.config.run_timeout).min(self.config.run_timeout);
        let outcome = (|| -> std::result::Result<RunOutcome, String> {
            std::fs::create_dir_all(&workspace).map_err(|e| format!("creating the workspace: {e}"))?;
            let mut cmd = self.hub.sandbox_command(&profile, &workspace, &req.argv, "dumb");
            cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid is async-signal-safe; it lets the whole tree be killed at once.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            let mut child = self.hub.spawn(cmd).map_err(|e| format!("starting the sandbox: {e}"))?;
            let pid = child.id() as i32;
            let (tx, rx) = std::sync::mpsc::channel::<(u32, Vec<u8>)>();
            for (stream, pipe) in [
                (0u32, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
                (1, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
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
            drop(tx);
            let deadline = started + limit;
            let mut total: u64 = 0;
            let mut stop: Option<&'static str> = None;
            loop {
                match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                    Ok((stream, bytes)) => {
                        total += bytes.len() as u64;
                        if total > self.config.run_output_cap {
                            stop = Some("output cap");
                            break;
                        }
                        if !sink(stream, bytes) {
                            stop = Some("client gone");
                            break;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        stop = Some("timeout");
                        break;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            if stop.is_some() {
                // SAFETY: the runner's own process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let status = child.wait().map_err(|e| e.to_string())?;
            let code = status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
            Ok(RunOutcome { exit_status: if stop == Some("timeout") { sandbox::EXIT_TIMEOUT } else { code }, ended_by: stop })
        })();
        let (code, ended_by) = match &outcome {
            Ok(o) => (o.exit_status, o.ended_by.unwrap_or("")),
            Err(_) => (sandbox::EXIT_REFUSED, "error"),
        };
        let mut ev = p
            .stamp(AuditEvent::new("run", p.user.clone()))
            .with("argv", req.argv.join(" "))
            .with("profile", profile)
            .with("exit_status", code)
            .with("seconds", started.elapsed().as_secs_f64());
        if !ended_by.is_empty() {
            ev = ev.with("ended_by", ended_by);
        }
        self.record(ev);
        outcome.map_err(Error::Failed)
    }

    /// Renames a session: as changing it, the right to attach.
    pub fn rename_session(&self, p: &Principal, id: u64, name: &str) -> Result<()> {
        let s = self.session(id)?;
        self.check(p, Action::AttachSession { own: s.owner == p.user }, "rename", || {
            format!("a {} may not rename session {id} of {}", p.role, s.owner)
        })?;
        let name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        if name.trim().is_empty() {
            return Err(Error::Invalid("a session's name cannot be empty".into()));
        }
        let old = s.name();
        s.rename(name.trim());
        self.record(p.stamp(AuditEvent::new("session.rename", p.user.clone())).with("session", id).with("from", old).with("to", s.name()));
        Ok(())
    }

    /// Adds a marker to a session's recording; returns the label used.
    pub fn mark(&self, p: &Principal, id: u64, label: &str) -> Result<String> {
        let s = self.session(id)?;
        self.check(p, Action::AttachSession { own: s.owner == p.user }, "mark", || {
            format!("a {} may not mark session {id} of {}", p.role, s.owner)
        })?;
        let label = if label.trim().is_empty() { format!("mark by {}", p.user) } else { label.to_string() };
        let label: String = label.chars().filter(|c| !c.is_control()).take(200).collect();
        s.mark(&label);
        self.record(p.stamp(AuditEvent::new("session.mark", p.user.clone())).with("session", id).with("label", label.clone()));
        Ok(label)
    }

    /// Recordings the principal may read, newest first: everyone's for auditors and admins,
    /// their own for others.
    pub fn recordings(&self, p: &Principal) -> Result<Vec<RecordingEntry>> {
        let mut list = self.store.recordings(None).map_err(|e| Error::Failed(e.to_string()))?;
        list.retain(|r| allowed(p.role, Action::ReadRecording { own: r.user == p.user }));
        list.sort_by(|a, b| b.started.cmp(&a.started));
        Ok(list)
    }

    fn readable(&self, p: &Principal, id: &str, what: &str) -> Result<RecordingEntry> {
        let r = self.store.recording(id).map_err(|_| Error::NotFound(format!("no recording {id}")))?;
        self.check(p, Action::ReadRecording { own: r.user == p.user }, what, || {
            format!("a {} may not read recording {id} of {}", p.role, r.user)
        })?;
        Ok(r)
    }

    /// A whole recording, read and verified, for playback from `at` seconds; audited before
    /// anything is returned.
    pub fn open_recording(&self, p: &Principal, id: &str, at: f64) -> Result<(RecordingEntry, format::Recording)> {
        let r = self.readable(p, id, "play")?;
        let key = crate::record::Keyring::new(&self.dir).for_file(Path::new(&r.path)).map_err(Error::Failed)?;
        let rec = format::read(Path::new(&r.path), &key).map_err(|d| Error::Failed(format!("recording {id} is damaged: {d}")))?;
        self.audit
            .record(p.stamp(AuditEvent::new("recording.play", p.user.clone())).with("recording", r.id.clone()).with("at", at))
            .map_err(|e| Error::Failed(format!("the access cannot be audited, so it is refused: {e}")))?;
        Ok((r, rec))
    }

    /// A recording in an export format (`asciicast-v2`, `asciicast-v3`, `raw`); audited
    /// (with where it goes) before it is returned.
    pub fn export(&self, p: &Principal, id: &str, fmt: &str, to: &str) -> Result<(RecordingEntry, Vec<u8>)> {
        let r = self.readable(p, id, "export")?;
        let key = crate::record::Keyring::new(&self.dir).for_file(Path::new(&r.path)).map_err(Error::Failed)?;
        let rec = format::read(Path::new(&r.path), &key).map_err(|d| Error::Failed(format!("recording {id} is damaged: {d}")))?;
        let bytes = crate::record::encode(&rec, fmt).map_err(Error::Invalid)?;
        self.audit
            .record(
                p.stamp(AuditEvent::new("recording.export", p.user.clone()))
                    .with("recording", r.id.clone())
                    .with("format", fmt.to_string())
                    .with("to", to.to_string()),
            )
            .map_err(|e| Error::Failed(format!("the export cannot be audited, so it is refused: {e}")))?;
        Ok((r, bytes))
    }

    /// A recording exported into the principal's `exports` workspace folder, where their
    /// sessions (and they) can take it. Returns the file's path.
    pub fn export_recording(&self, p: &Principal, id: &str, fmt: &str) -> Result<std::path::PathBuf> {
        let dir = self.config.workspace(&p.user, Some("exports")).map_err(Error::Failed)?;
        let ext = if fmt == "raw" { "raw" } else { "cast" };
        let path = dir.join(format!("{id}.{ext}"));
        if !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::NotFound(format!("no recording {id}")));
        }
        let (_, bytes) = self.export(p, id, fmt, &path.display().to_string())?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::Failed(format!("creating {}: {e}", dir.display())))?;
        std::fs::write(&path, bytes).map_err(|e| Error::Failed(format!("writing {}: {e}", path.display())))?;
        Ok(path)
    }

    /// A recording's catalog entry.
    pub fn recording(&self, p: &Principal, id: &str) -> Result<RecordingEntry> {
        self.readable(p, id, "info")
    }

    /// Whether a recording reads back whole: Ok(verdict) or Err(what is wrong and where).
    pub fn verify_recording(&self, p: &Principal, id: &str) -> Result<std::result::Result<String, String>> {
        let r = self.readable(p, id, "verify")?;
        let key = crate::record::Keyring::new(&self.dir).for_file(Path::new(&r.path)).map_err(Error::Failed)?;
        let verdict = crate::record::verdict(Path::new(&r.path), &key, r.state == "complete");
        self.record(
            p.stamp(AuditEvent::new("recording.verify", p.user.clone())).with("recording", r.id.clone()).with("ok", verdict.is_ok()),
        );
        Ok(verdict)
    }

    /// Lines that appeared on screen in the recordings the principal may read; audited
    /// (with the recordings shown) before the hits are returned.
    pub fn search(&self, p: &Principal, pattern: &str) -> Result<Vec<Hit>> {
        if pattern.is_empty() {
            return Err(Error::Invalid("an empty pattern matches everything".into()));
        }
        let list = self.recordings(p)?;
        let found = crate::record::search(&self.dir, &list, pattern);
        let matched: Vec<String> = found.hits.iter().map(|h| h.recording.clone()).fold(Vec::new(), |mut v, id| {
            if v.last() != Some(&id) {
                v.push(id);
            }
            v
        });
        self.audit
            .record(
                p.stamp(AuditEvent::new("recording.search", p.user.clone()))
                    .with("pattern", pattern.to_string())
                    .with("recordings", found.searched)
                    .with("hits", found.hits.len())
                    .with("matched", matched),
            )
            .map_err(|e| Error::Failed(format!("the search cannot be audited, so it is refused: {e}")))?;
        Ok(found.hits)
    }

    /// The last `limit` audit events.
    pub fn audit_events(&self, p: &Principal, limit: usize) -> Result<Vec<serde_json::Value>> {
        self.check(p, Action::ReadAudit, "audit", || format!("a {} may not read the audit log", p.role))?;
        let events = crate::audit::read_events(&self.dir.audit_log());
        Ok(events.into_iter().rev().take(limit).collect())
    }

    /// The audit chain's state: Ok(events) or Err(where it breaks).
    pub fn audit_verify(&self, p: &Principal) -> Result<std::result::Result<u64, String>> {
        self.check(p, Action::ReadAudit, "audit verify", || format!("a {} may not read the audit log", p.role))?;
        let key = std::fs::read(self.dir.audit_key()).map_err(|e| Error::Failed(format!("reading the audit key: {e}")))?;
        let log = self.dir.audit_log();
        Ok(match crate::audit::verify_file(&log, &key, Some(&log.with_extension("head"))) {
            Ok((n, _)) => Ok(n),
            Err(b) => Err(format!("line {}: {}", b.line, b.reason)),
        })
    }

    /// Users, their keys and whether they have a password (admins only).
    pub fn users(&self, p: &Principal) -> Result<Vec<UserInfo>> {
        self.check(p, Action::ManageUsers, "users", || format!("a {} may not manage users", p.role))?;
        let users = self.store.users().map_err(|e| Error::Failed(e.to_string()))?;
        Ok(users
            .into_iter()
            .map(|u| {
                let keys = self.store.keys(&u.name).map(|k| k.len()).unwrap_or(0);
                let password = self.store.password(&u.name).ok().flatten().is_some();
                UserInfo { user: u, keys, password }
            })
            .collect())
    }

    /// Profiles the principal may start sessions with.
    pub fn profiles(&self, p: &Principal) -> Vec<String> {
        sandbox::profile::Search::standard()
            .list()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| self.config.profile_allowed(p.role, name).is_ok())
            .collect()
    }
}
