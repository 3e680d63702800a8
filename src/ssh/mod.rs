//! The SSH face: russh, logins, exec commands and interactive sessions. Thin: it parses
//! requests and calls the service layer, which decides who may do what.
//!
//! Before a login the host gives little: connections that have not logged in are capped (in
//! all and per address; the rest are closed at once), each has `[ssh] login_grace` to log
//! in, and an accept error (out of file descriptors) pauses accepting instead of ending the
//! host. After a login, authority is re-read at every command, and a connection whose user
//! is locked or removed is closed within a second ([`watch`]).

mod commands;
mod listen;
mod sftp;
mod totp;

pub use listen::serve;

use crate::audit::{AuditEvent, Kind};
use crate::config::Config;
use crate::service::{Login, Principal};
use crate::sessions::{Session, Viewer};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session as SshSession, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet, Pty};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What every connection shares.
pub struct Shared {
    pub config: Config,
    /// What every face calls: the permission checks and audit events live there.
    pub service: Arc<crate::service::Service>,
    /// Logged-in connections, by connection number: whose, and how to end them.
    live: Mutex<HashMap<u64, (Principal, Arc<listen::Gate>)>>,
    next: AtomicU64,
    /// Connections not logged in yet: in all, and per address.
    pending: Mutex<(usize, HashMap<std::net::IpAddr, usize>)>,
}

impl Shared {
    pub fn new(service: Arc<crate::service::Service>, config: Config) -> Arc<Shared> {
        Arc::new(Shared {
            config,
            service,
            live: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            pending: Mutex::default(),
        })
    }

    /// Logged-in connections of user `id`.
    fn connections_of(&self, id: i64) -> usize {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|(p, _)| p.user_id == id)
            .count()
    }
}

/// Closes, within a second, every connection whose user can no longer act (locked or
/// removed), with a word to the client. Runs for as long as the host does.
pub async fn watch(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let live: Vec<(u64, Principal, Arc<listen::Gate>)> = shared
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, (p, g))| (*k, p.clone(), g.clone()))
            .collect();
        for (id, p, gate) in live {
            if let Err(e) = shared.service.current(&p) {
                // The database out of reach: the connection goes on (checked at its login)
                // and is checked again once it is back.
                if e.is_database_unreachable() {
                    continue;
                }
                shared
                    .live
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                shared.service.record(
                    p.stamp(AuditEvent::new(Kind::SshDisconnect, p.user.clone()))
                        .with("why", e.to_string()),
                );
                gate.disconnect(&format!("cordon: {e}")).await;
            }
        }
    }
}

/// A terminal the client asked for on a channel.
#[derive(Clone)]
struct PtyInfo {
    term: String,
    cols: u16,
    rows: u16,
}

struct Attached {
    session: Arc<Session>,
    viewer: Arc<Viewer>,
    /// Shared by the output task and the input.
    line: Arc<std::sync::Mutex<Line>>,
}

/// The line over an attached session (the notice, the owner's network questions), and what
/// the output task sends last when the client detaches with the detach key. The output task
/// is the channel's only writer while attached: bytes it drained and has not sent yet must
/// reach the client before the terminal is given back.
struct Line {
    ask: crate::tui::ask_line::AskLine,
    farewell: Option<Vec<u8>>,
}

/// One SSH connection.
pub struct Conn {
    shared: Arc<Shared>,
    peer: String,
    /// The address the client reached (what it should type to come back).
    local: Option<std::net::SocketAddr>,
    /// This connection's number in [`Shared::live`].
    id: u64,
    gate: Arc<listen::Gate>,
    /// Who logged in (their authority is re-read at each use).
    user: Option<Principal>,
    channels: HashSet<ChannelId>,
    ptys: HashMap<ChannelId, PtyInfo>,
    attached: HashMap<ChannelId, Attached>,
    /// Channels opened but not given a request yet: kept so that an SFTP subsystem can read
    /// its channel as a stream; dropped at any other request (whose data comes to
    /// [`russh::server::Handler::data`]).
    opened: HashMap<ChannelId, Channel<Msg>>,
    /// Channels running the TUI: where their input goes.
    tuis: HashMap<ChannelId, tokio::sync::mpsc::UnboundedSender<crate::tui::Input>>,
    /// Channels of `secret set` reading their value until the end of input.
    secret_inputs: HashMap<ChannelId, commands::SecretInput>,
    /// Channels running `run`: where their data goes (the command's stdin), and how much
    /// has gone. Dropping the sender is the command's end of input.
    run_inputs: HashMap<ChannelId, RunStdin>,
    /// Channels of `totp enroll` reading the confirming code at a prompt.
    totp_inputs: HashMap<ChannelId, totp::CodeInput>,
    /// A password login whose code is still due, and what keyboard-interactive asked last.
    second: Option<crate::service::PendingLogin>,
    asked: Asked,
}

/// What keyboard-interactive asked the client last.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Asked {
    Nothing,
    Password,
    Code,
    /// A refusal told as instructions (no prompts): the answer ends the attempt.
    Told,
}

const CODE_PROMPT: &str = "Verification code (or a recovery code): ";

/// The standard input of a `run` on one channel.
struct RunStdin {
    to: std::sync::mpsc::Sender<Vec<u8>>,
    sent: u64,
}

/// The command that brings `user` back with `words` (a session to attach to again, with the
/// verb its role used: an observer is not told to attach): `ssh -t [-p PORT] USER@ADDRESS
/// WORDS`, with the address and port the client reached (it may have typed a name for them,
/// which the host cannot know; the address always works from where it stands).
fn ssh_command(user: &str, local: Option<std::net::SocketAddr>, words: &str) -> String {
    let words = if words.is_empty() {
        String::new()
    } else {
        format!(" {words}")
    };
    let user = crate::text::printable(user);
    match local {
        Some(a) => {
            let port = if a.port() == 22 {
                String::new()
            } else {
                format!("-p {} ", a.port())
            };
            // OpenSSH takes an IPv6 address bare after `user@` (brackets are for URIs).
            format!("ssh -t {port}{user}@{}{words}", a.ip())
        }
        None => format!("ssh -t {user}@HOST{words}"),
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Conn {
    fn new(
        shared: Arc<Shared>,
        peer: std::net::SocketAddr,
        local: Option<std::net::SocketAddr>,
        gate: Arc<listen::Gate>,
    ) -> Conn {
        let id = shared.next.fetch_add(1, Ordering::Relaxed);
        Conn {
            shared,
            peer: peer.to_string(),
            local,
            id,
            gate,
            user: None,
            channels: HashSet::new(),
            ptys: HashMap::new(),
            attached: HashMap::new(),
            opened: HashMap::new(),
            tuis: HashMap::new(),
            secret_inputs: HashMap::new(),
            run_inputs: HashMap::new(),
            totp_inputs: HashMap::new(),
            second: None,
            asked: Asked::Nothing,
        }
    }

    /// Whether the client asked for a terminal on this channel.
    fn has_pty(&self, channel: ChannelId) -> bool {
        self.ptys.contains_key(&channel)
    }

    /// Keeps what the channel sends as a secret's value until its end of input.
    fn await_secret(&mut self, channel: ChannelId, input: commands::SecretInput) {
        self.secret_inputs.insert(channel, input);
    }

    fn audit(&self, event: AuditEvent) {
        self.shared.service.record(event);
    }

    fn actor(&self) -> String {
        self.user
            .as_ref()
            .map(|u| u.user.clone())
            .unwrap_or_else(|| "anonymous".into())
    }

    /// A login the service accepted: the connection counts against the user's cap, leaves
    /// the not-logged-in pool, and is watched for locks and removals.
    fn logged_in(&mut self, p: Principal) -> Auth {
        let cap = self.shared.config.max_connections_per_user;
        if self.shared.connections_of(p.user_id) >= cap {
            self.shared.service.record_bounded(
                &format!("ssh.cap:{}", p.user_id),
                p.stamp(AuditEvent::new(Kind::LoginFailed, p.user.clone()))
                    .with("why", format!("already {cap} connections, the most a user may hold ([ssh] max_connections_per_user)")),
            );
            return Auth::reject();
        }
        self.gate.logged_in();
        self.shared
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(self.id, (p.clone(), self.gate.clone()));
        self.user = Some(p);
        Auth::Accept
    }

    /// Writes a line to the client, its exit status, and ends the channel. What it writes
    /// may hold strings users and sessions control (names, commands, echoed arguments):
    /// their control characters are shown escaped.
    fn finish(
        &self,
        channel: ChannelId,
        session: &mut SshSession,
        out: &str,
        err: &str,
        status: u32,
    ) -> Result<(), russh::Error> {
        let (out, err) = (
            crate::text::printable_lines(out),
            crate::text::printable_lines(err),
        );
        if !out.is_empty() {
            session.data(channel, out.as_bytes().to_vec())?;
        }
        if !err.is_empty() {
            session.extended_data(channel, 1, err.as_bytes().to_vec())?;
        }
        session.exit_status_request(channel, status)?;
        session.eof(channel)?;
        session.close(channel)?;
        Ok(())
    }

    /// A refusal: told to the client (stderr, status 126) and audited.
    fn refuse(
        &self,
        channel: ChannelId,
        session: &mut SshSession,
        what: &str,
        why: &str,
    ) -> Result<(), russh::Error> {
        self.audit(
            AuditEvent::new(Kind::Refused, self.actor())
                .with("what", what)
                .with("why", why)
                .with("address", self.peer.clone()),
        );
        self.finish(channel, session, "", &format!("cordon: {why}\n"), 126)
    }

    /// The logged-in user as the service layer sees them now (locked or removed: an error
    /// the service has audited).
    fn principal(&self) -> Result<Principal, crate::service::Error> {
        let p = self
            .user
            .as_ref()
            .ok_or_else(|| crate::service::Error::Forbidden("not logged in".into()))?;
        self.shared.service.current(p)
    }

    /// A refusal the service layer already audited: told to the client (stderr, 126).
    fn refused(
        &self,
        channel: ChannelId,
        session: &mut SshSession,
        e: &crate::service::Error,
    ) -> Result<(), russh::Error> {
        let status = match e {
            crate::service::Error::Invalid(_) | crate::service::Error::Conflict(_) => 2,
            _ => 126,
        };
        self.finish(channel, session, "", &format!("cordon: {e}\n"), status)
    }

    /// Attaches (or observes) through the service and streams the session on `channel`.
    fn attach(
        &mut self,
        channel: ChannelId,
        session: &mut SshSession,
        id: &str,
        writer: bool,
    ) -> Result<(), russh::Error> {
        let p = match self.principal() {
            Ok(p) => p,
            Err(e) => return self.refused(channel, session, &e),
        };
        if writer && !self.ptys.contains_key(&channel) {
            return self.refuse(
                channel,
                session,
                "attach",
                "attach needs a terminal: use ssh -t",
            );
        }
        let (s, viewer) = match self.shared.service.attach(&p, id, writer) {
            Ok(a) => a,
            Err(e) => return self.refused(channel, session, &e),
        };
        session.channel_success(channel)?;
        if let Some(pty) = self.ptys.get(&channel) {
            if writer {
                s.resize(pty.cols, pty.rows);
            }
        }
        self.stream(channel, session, s, viewer);
        Ok(())
    }

    /// Streams a session's output to the client on `channel` until it ends, the client
    /// detaches, or the host ends the viewer (its user may no longer watch).
    fn stream(
        &mut self,
        channel: ChannelId,
        session: &mut SshSession,
        s: Arc<Session>,
        viewer: Arc<Viewer>,
    ) {
        let handle = session.handle();
        let (v, sess) = (viewer.clone(), s.clone());
        let ask = if self.ptys.contains_key(&channel) {
            crate::tui::ask_line::AskLine::new(&s, &viewer, &self.shared.config.detach_key_name)
        } else {
            crate::tui::ask_line::AskLine::without_terminal(&s, &viewer)
        };
        let line = Arc::new(std::sync::Mutex::new(Line {
            ask,
            farewell: None,
        }));
        let shared = line.clone();
        tokio::spawn(async move {
            let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
            // Sends `bytes`, then ends the channel with `status`.
            let finish = |bytes: Vec<u8>, status: u32| {
                let handle = handle.clone();
                async move {
                    for chunk in bytes.chunks(32 << 10) {
                        if handle.data(channel, chunk.to_vec()).await.is_err() {
                            return;
                        }
                    }
                    let _ = handle.exit_status_request(channel, status).await;
                    let _ = handle.eof(channel).await;
                    let _ = handle.close(channel).await;
                }
            };
            loop {
                let (data, farewell) = {
                    let mut l = lock();
                    match l.farewell.take() {
                        Some(bytes) => (bytes, true),
                        None => (l.ask.drain(&sess, &v), false),
                    }
                };
                if farewell {
                    finish(data, 0).await;
                    return;
                }
                for chunk in data.chunks(32 << 10) {
                    if handle.data(channel, chunk.to_vec()).await.is_err() {
                        sess.detach(&v);
                        return;
                    }
                }
                if let Some(why) = v.revoked() {
                    let mut bye = lock().ask.leave(&sess, &v);
                    bye.extend(
                        format!("\r\n[cordon: {why}; the host ended this view]\r\n").into_bytes(),
                    );
                    finish(bye, 126).await;
                    return;
                }
                if v.gone.load(std::sync::atomic::Ordering::SeqCst) {
                    // Detached: by the detach key (the farewell is set before the viewer
                    // goes), or the channel closed.
                    let farewell = lock().farewell.take();
                    if let Some(bytes) = farewell {
                        finish(bytes, 0).await;
                    }
                    return;
                }
                if let Some(code) = sess.exit_status() {
                    let mut bye = lock().ask.leave(&sess, &v);
                    bye.extend(
                        format!(
                            "\r\n[cordon: session {} ended, exit status {code}]\r\n",
                            sess.id
                        )
                        .into_bytes(),
                    );
                    finish(bye, code as u32).await;
                    return;
                }
                let due = lock().ask.due();
                match due {
                    Some(at) => {
                        let at = at.max(std::time::Instant::now() + crate::tui::ask_line::AGAIN);
                        tokio::select! {
                            _ = v.notify.notified() => {}
                            _ = tokio::time::sleep_until(at.into()) => {}
                        }
                    }
                    None => v.notify.notified().await,
                }
            }
        });
        self.attached.insert(
            channel,
            Attached {
                session: s,
                viewer,
                line,
            },
        );
    }

    fn detach(&mut self, channel: ChannelId) -> Option<Arc<Session>> {
        let a = self.attached.remove(&channel)?;
        match &self.user {
            Some(p) => self.shared.service.detach(p, &a.session, &a.viewer),
            None => a.session.detach(&a.viewer),
        }
        Some(a.session)
    }

    /// The TUI on `channel` (a shell request with a terminal): input from the channel's data,
    /// output to it; the channel closes when the user quits.
    fn start_tui(
        &mut self,
        channel: ChannelId,
        session: &mut SshSession,
    ) -> Result<(), russh::Error> {
        let p = match self.principal() {
            Ok(p) => p,
            Err(e) => return self.refused(channel, session, &e),
        };
        let Some(pty) = self.ptys.get(&channel).cloned() else {
            return self.refuse(channel, session, "tui", "the TUI needs a terminal");
        };
        session.channel_success(channel)?;
        let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
        let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        self.tuis.insert(channel, in_tx);
        self.shared.service.tui_opened(&p);
        let handle = session.handle();
        let svc = self.shared.service.clone();
        tokio::spawn(async move {
            let forward = handle.clone();
            let writer = tokio::spawn(async move {
                while let Some(bytes) = out_rx.recv().await {
                    if !bytes.is_empty() && forward.data(channel, bytes).await.is_err() {
                        break;
                    }
                }
            });
            crate::tui::run(
                svc,
                p,
                (pty.cols, pty.rows),
                crate::tui::Quitting::LeavesSessions,
                in_rx,
                out_tx,
            )
            .await;
            let _ = writer.await;
            let _ = handle.exit_status_request(channel, 0).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
        Ok(())
    }

    /// A new session for the logged-in user, attached on `channel`.
    fn new_session(
        &mut self,
        channel: ChannelId,
        session: &mut SshSession,
        req: crate::service::NewSession,
    ) -> Result<(), russh::Error> {
        let p = match self.principal() {
            Ok(p) => p,
            Err(e) => return self.refused(channel, session, &e),
        };
        let Some(pty) = self.ptys.get(&channel).cloned() else {
            return self.refuse(
                channel,
                session,
                "new",
                "a session needs a terminal: use ssh -t",
            );
        };
        let req = crate::service::NewSession {
            cols: pty.cols,
            rows: pty.rows,
            term: pty.term,
            ..req
        };
        let s = match self.shared.service.create_session(&p, req) {
            Ok(s) => s,
            Err(e) => return self.refused(channel, session, &e),
        };
        session.channel_success(channel)?;
        match self.shared.service.attach(&p, &s.id.to_string(), true) {
            Ok((s, viewer)) => self.stream(channel, session, s, viewer),
            Err(e) => return self.refused(channel, session, &e),
        }
        Ok(())
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    /// While the host is in lockdown, every client is told so before it logs in: a
    /// non-admin's login is refused, and this is the only place SSH can say why.
    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        Ok(self.shared.service.lockdown_notice())
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fingerprint = key
            .public_key
            .fingerprint(russh::keys::HashAlg::Sha256)
            .to_string();
        match self
            .shared
            .service
            .key_login(user, &fingerprint, &self.peer)
        {
            Ok(p) => Ok(self.logged_in(p)),
            Err(_) => Ok(Auth::reject()),
        }
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if !self.shared.config.password_login {
            return Ok(Auth::reject());
        }
        let svc = self.shared.service.clone();
        match svc
            .password_login(user, password, &self.peer, "password")
            .await
        {
            Ok(Login::Done(p)) => Ok(self.logged_in(p)),
            // The password is right and a code is due: keyboard-interactive asks for it.
            Ok(Login::NeedsCode(pending)) => {
                self.second = Some(pending);
                Ok(Auth::Reject {
                    proceed_with_methods: Some(MethodSet::from(
                        &[MethodKind::KeyboardInteractive][..],
                    )),
                    partial_success: true,
                })
            }
            Err(_) => Ok(Auth::reject()),
        }
    }

    /// Passwords and second-factor codes by prompts: the password (unless the password
    /// method already took it), then the code when the user has a second factor. A refusal
    /// the user can act on (a second factor their role requires) is shown as instructions.
    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        if !self.shared.config.password_login {
            return Ok(Auth::reject());
        }
        let prompt = |text: &'static str, echo: bool| Auth::Partial {
            name: "".into(),
            instructions: "".into(),
            prompts: vec![(text.into(), echo)].into(),
        };
        let pending_for_user = self.second.as_ref().is_some_and(|p| p.user() == user);
        let Some(mut response) = response else {
            if pending_for_user {
                self.asked = Asked::Code;
                return Ok(prompt(CODE_PROMPT, true));
            }
            self.second = None;
            self.asked = Asked::Password;
            return Ok(prompt("Password: ", false));
        };
        let answer = response
            .next()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let answer = zeroize::Zeroizing::new(answer);
        let svc = self.shared.service.clone();
        match std::mem::replace(&mut self.asked, Asked::Nothing) {
            Asked::Password => {
                match svc
                    .password_login(user, &answer, &self.peer, "keyboard-interactive")
                    .await
                {
                    Ok(Login::Done(p)) => Ok(self.logged_in(p)),
                    Ok(Login::NeedsCode(pending)) => {
                        self.second = Some(pending);
                        self.asked = Asked::Code;
                        Ok(prompt(CODE_PROMPT, true))
                    }
                    Err(crate::service::Error::Forbidden(why)) if why.contains("second factor") => {
                        self.asked = Asked::Told;
                        Ok(Auth::Partial {
                            name: "".into(),
                            instructions: format!("cordon: {why}").into(),
                            prompts: Vec::new().into(),
                        })
                    }
                    Err(_) => Ok(Auth::reject()),
                }
            }
            Asked::Code => {
                let Some(pending) = self.second.clone().filter(|p| p.user() == user) else {
                    return Ok(Auth::reject());
                };
                match svc.code_login(&pending, &answer) {
                    Ok(p) => {
                        self.second = None;
                        Ok(self.logged_in(p))
                    }
                    Err(_) => Ok(Auth::reject()),
                }
            }
            Asked::Told | Asked::Nothing => Ok(Auth::reject()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        let cap = self.shared.config.max_channels;
        if self.channels.len() >= cap {
            self.shared.service.record_bounded(
                &format!("ssh.channels:{}", self.id),
                AuditEvent::new(Kind::Refused, self.actor())
                    .with("what", "channel")
                    .with(
                        "why",
                        format!("already {cap} channels on this connection ([ssh] max_channels)"),
                    )
                    .with("address", self.peer.clone()),
            );
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        self.channels.insert(channel.id());
        self.opened.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        cols: u32,
        rows: u32,
        _pw: u32,
        _ph: u32,
        _modes: &[(Pty, u32)],
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.ptys.insert(
            channel,
            PtyInfo {
                term: term
                    .chars()
                    .filter(|c| c.is_ascii_graphic())
                    .take(64)
                    .collect(),
                // A client without a terminal of its own (`ssh -tt` from a pipe) sends 0x0.
                cols: if cols == 0 { 80 } else { cols.min(1000) as u16 },
                rows: if rows == 0 { 24 } else { rows.min(1000) as u16 },
            },
        );
        session.channel_success(channel)?;
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        cols: u32,
        rows: u32,
        _pw: u32,
        _ph: u32,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        if cols == 0 || rows == 0 {
            return Ok(());
        }
        let (cols, rows) = (cols.min(1000) as u16, rows.min(1000) as u16);
        if let Some(p) = self.ptys.get_mut(&channel) {
            p.cols = cols;
            p.rows = rows;
        }
        if let Some(tui) = self.tuis.get(&channel) {
            let _ = tui.send(crate::tui::Input::Resize(cols, rows));
        }
        if let Some(a) = self.attached.get(&channel) {
            if a.viewer.writer {
                a.session.resize(cols, rows);
            }
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.opened.remove(&channel);
        if !self.ptys.contains_key(&channel) {
            return self.finish(
                channel,
                session,
                "",
                &format!(
                    "cordon: no terminal requested: `{}` opens the TUI; or give a command: {}\n",
                    ssh_command(
                        self.user.as_ref().map(|p| p.user.as_str()).unwrap_or(""),
                        self.local,
                        ""
                    ),
                    commands::USAGE
                ),
                2,
            );
        }
        self.start_tui(channel, session)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.opened.remove(&channel);
        let line = String::from_utf8_lossy(data).into_owned();
        commands::dispatch(self, channel, &line, session).await
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        if let Some(tui) = self.tuis.get(&channel) {
            let _ = tui.send(crate::tui::Input::Bytes(data.to_vec()));
            return Ok(());
        }
        if let Some(input) = self.secret_inputs.get_mut(&channel) {
            input.push(data);
            return Ok(());
        }
        if let Some(input) = self.totp_inputs.get_mut(&channel) {
            let (echo, done) = input.push(data);
            if !echo.is_empty() {
                session.data(channel, echo)?;
            }
            if let (Some(line), Some(input)) = (done, self.totp_inputs.remove(&channel)) {
                return totp::code_entered(self, channel, session, input, line);
            }
            return Ok(());
        }
        if let Some(input) = self.run_inputs.get_mut(&channel) {
            // Past the limit the runner ends the command; what comes after is not kept.
            if input.sent <= self.shared.config.run_stdin_limit {
                input.sent += data.len() as u64;
                let _ = input.to.send(data.to_vec());
            }
            return Ok(());
        }
        let Some(a) = self.attached.get(&channel) else {
            return Ok(());
        };
        let writer = a.viewer.writer;
        let detach_key = self.shared.config.detach_key;
        let (before, detach) = match data.iter().position(|&b| b == detach_key) {
            Some(i) => (&data[..i], true),
            None => (data, false),
        };
        use crate::tui::ask_line::KeyOutcome;
        let (key, due) = {
            let mut l = a.line.lock().unwrap_or_else(|e| e.into_inner());
            (l.ask.key(before), l.ask.due())
        };
        if due.is_some_and(|at| at <= std::time::Instant::now()) {
            // The notice is to go now: the output task waits for output or its old time.
            a.viewer.notify.notify_one();
        }
        match key {
            // A viewer the host ended (its user may no longer type) writes nothing more.
            KeyOutcome::Pass
                if a.viewer.writer
                    && !before.is_empty()
                    && !a.viewer.gone.load(std::sync::atomic::Ordering::SeqCst) =>
            {
                let _ = a.session.input(before);
            }
            KeyOutcome::Answer(ask, answer) => {
                // Through the service: the owner's authority is checked now, and audited.
                if let Ok(p) = self.principal() {
                    let _ = self.shared.service.answer_question(
                        &p,
                        &a.session.id.to_string(),
                        ask,
                        answer,
                    );
                }
            }
            _ => {}
        }
        if detach {
            let key = crate::text::printable(&self.shared.config.detach_key_name).into_owned();
            let verb = if writer { "attach" } else { "observe" };
            let user = self.user.as_ref().map(|p| p.user.as_str()).unwrap_or("");
            let again = ssh_command(
                user,
                self.local,
                &format!("{verb} {}", a.session.id.short()),
            );
            // Its parts escaped, not the note: its CR LF must reach the terminal as they are.
            let note = format!(
                "\r\n[cordon: detached from session {} ({}) with {key}; `{}` to return]\r\n",
                crate::text::printable(&a.session.name()),
                a.session.id.short(),
                crate::text::printable(&again),
            );
            {
                // The output task sends it after what it has drained, and ends the channel.
                let mut l = a.line.lock().unwrap_or_else(|e| e.into_inner());
                let mut bye = l.ask.leave(&a.session, &a.viewer);
                bye.extend_from_slice(note.as_bytes());
                l.farewell = Some(bye);
            }
            self.detach(channel);
        }
        Ok(())
    }

    /// End of input only: the client still watches (e.g. `ssh -tt host new -- make < /dev/null`);
    /// a `run`'s command gets its end of input.
    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.run_inputs.remove(&channel);
        if let Some(input) = self.secret_inputs.remove(&channel) {
            return commands::secret_input_done(self, channel, session, input);
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.channels.remove(&channel);
        self.opened.remove(&channel);
        self.detach(channel);
        self.ptys.remove(&channel);
        self.tuis.remove(&channel);
        self.secret_inputs.remove(&channel);
        self.totp_inputs.remove(&channel);
        self.run_inputs.remove(&channel);
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut SshSession,
    ) -> Result<bool, Self::Error> {
        self.audit(
            AuditEvent::new(Kind::Refused, self.actor())
                .with("what", "remote port forwarding")
                .with("target", format!("{address}:{port}"))
                .with("address", self.peer.clone()),
        );
        Ok(false)
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        host: &str,
        port: u32,
        _orig: &str,
        _orig_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.audit(
            AuditEvent::new(Kind::Refused, self.actor())
                .with("what", "local port forwarding")
                .with("target", format!("{host}:{port}"))
                .with("address", self.peer.clone()),
        );
        reply
            .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
            .await;
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut SshSession,
    ) -> Result<bool, Self::Error> {
        self.audit(
            AuditEvent::new(Kind::Refused, self.actor())
                .with("what", "agent forwarding")
                .with("address", self.peer.clone()),
        );
        Ok(false)
    }

    /// `sftp` (which `scp` uses too): the caller's home and workspace, acting as them,
    /// through the service's file session. Any other subsystem is refused.
    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        let stream = self.opened.remove(&channel);
        if name != "sftp" {
            self.audit(
                AuditEvent::new(Kind::Refused, self.actor())
                    .with("what", "subsystem")
                    .with("name", name.to_string())
                    .with("address", self.peer.clone()),
            );
            session.channel_failure(channel)?;
            return Ok(());
        }
        let (Some(stream), Ok(p)) = (stream, self.principal()) else {
            session.channel_failure(channel)?;
            return Ok(());
        };
        let svc = self.shared.service.clone();
        let files = match tokio::task::spawn_blocking(move || svc.open_files(&p)).await {
            Ok(Ok(files)) => files,
            // Refused (audited by the service) or failed: the client says the subsystem
            // request failed.
            _ => {
                session.channel_failure(channel)?;
                return Ok(());
            }
        };
        session.channel_success(channel)?;
        russh_sftp::server::run_with_config(
            sftp::Ending::new(stream.into_stream(), session.handle(), channel),
            sftp::Sftp::new(files),
            russh_sftp::server::Config {
                max_client_packet_len: sftp::MAX_PACKET,
            },
        )
        .await;
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _proto: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut SshSession,
    ) -> Result<(), Self::Error> {
        self.audit(
            AuditEvent::new(Kind::Refused, self.actor())
                .with("what", "X11 forwarding")
                .with("address", self.peer.clone()),
        );
        session.channel_failure(channel)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ssh_command;

    #[test]
    fn the_way_back_names_the_address_port_and_verb_the_client_used() {
        let local = "127.0.0.1:2222".parse().ok();
        assert_eq!(
            ssh_command("carol", local, "observe k3f9x2ab"),
            "ssh -t -p 2222 carol@127.0.0.1 observe k3f9x2ab"
        );
        let standard = "[::1]:22".parse().ok();
        assert_eq!(
            ssh_command("alice", standard, "attach k3f9x2ab"),
            "ssh -t alice@::1 attach k3f9x2ab"
        );
    }

    #[test]
    fn the_way_back_escapes_the_user_name() {
        let local = "127.0.0.1:22".parse().ok();
        assert!(!ssh_command("a\x1b[2Jb", local, "attach x").contains('\x1b'));
        assert_eq!(ssh_command("bob", local, ""), "ssh -t bob@127.0.0.1");
    }
}
