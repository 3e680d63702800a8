//! Every operation of the service, for every role: what the caller gets back and what the
//! audit log says they did. The table is docs/security.md's permission table written out
//! per operation; it is the oracle, so a change to `auth::allowed` or to any operation's
//! check shows up as a cell that no longer matches.
//!
//! Each cell is one caller acting once, on a host with real sessions (a PTY running `cat`,
//! unconfined: see `sessions::Launcher`) and real recordings, in a temporary data directory:
//! no root, no built binary. The caller is a fresh user made a developer, given a session
//! and a recording of their own, then moved to the role under test (a demoted developer keeps
//! what they own), so "own" and "another's" are both asked of every role. The events are
//! those written with the caller as actor between just before and just after the call.
//!
//! Not here, because no role takes them: the host's own steps (`host_started`,
//! `host_stopping`, `maintain`, `purge_recordings`, `start_uploads`, `has_users`) and the logins that make a
//! principal out of an OS account (`local_login`, `peer_login`), tested with the faces.

use std::sync::{Arc, Mutex};

use super::*;
use crate::record::{format, FailurePolicy, Keyring, Meta, Recorder};
use crate::store::{RecordingEntry, RecordingState};
use crate::tokens::TokenPair;
use Kind::*;

/// What a caller gets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Done,
    Forbidden,
    NotFound,
    Invalid,
}

type Expect = (Answer, &'static [Kind]);

/// Done, with these events.
const fn done(events: &'static [Kind]) -> Expect {
    (Answer::Done, events)
}
/// Refused as not allowed, the refusal audited.
const NO: Expect = (Answer::Forbidden, &[Refused]);
/// Answered like a thing that does not exist, the real reason audited.
const HIDDEN: Expect = (Answer::NotFound, &[Refused]);
/// Done, nothing audited (reading what one may see).
const QUIET: Expect = (Answer::Done, &[]);
/// Not in the answer (a list or search that leaves it out), nothing audited.
const LEFT_OUT: Expect = (Answer::NotFound, &[]);
/// Sent to another host sharing the store (a Conflict naming it), nothing audited.
const REDIRECTED: Expect = (Answer::Invalid, &[]);

const PASSWORD: &str = "correct horse battery staple 9";

struct Host {
    _dir: tempfile::TempDir,
    svc: Arc<Service>,
    admin: Principal,
    /// A developer who owns a session and a recording that are nobody else's.
    owner: Principal,
    their_session: String,
    their_recording: String,
    next: std::sync::atomic::AtomicU32,
    /// TOTP secrets enrolled by the rows, by user name.
    secrets: Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

/// One caller, about to act once.
struct Cell<'h> {
    h: &'h Host,
    me: Principal,
    my_session: String,
    my_recording: String,
    my_key: String,
    /// A developer for the user-management operations to act on.
    victim: String,
    victim_key: String,
    /// What a row prepared before the call (a token pair).
    tokens: Mutex<Option<TokenPair>>,
}

/// A public key line nobody else has (keys are registered to one user only).
fn key_line(seed: u32) -> String {
    let mut s = [0u8; 32];
    s[..4].copy_from_slice(&seed.to_be_bytes());
    s[4..8].copy_from_slice(&std::process::id().to_be_bytes());
    let pair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&s);
    russh::keys::PublicKey::from(pair.public)
        .to_openssh()
        .unwrap()
}

fn fingerprint(line: &str) -> String {
    russh::keys::PublicKey::from_openssh(line)
        .unwrap()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string()
}

impl Host {
    fn start() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path().join("data"));
        let mut config = Config::load(None, &data.root).unwrap();
        config.master.file = Some(crate::keys::master::for_tests(dir.path()));
        config.password_login = true;
        config.max_sessions.insert("developer".into(), 1000);
        let (svc, _) = Service::open(data, config).unwrap();
        let local = Principal::local_admin();
        svc.add_user(&local, "boss", Role::Admin, &[]).unwrap();
        let admin = svc.principal("boss", "test").unwrap();
        svc.add_user(&admin, "owner", Role::Developer, &[]).unwrap();
        let owner = svc.principal("owner", "test").unwrap();
        let their_session = session(&svc, &owner);
        let their_recording = recording(&svc, &owner);
        Host {
            _dir: dir,
            svc,
            admin,
            owner,
            their_session,
            their_recording,
            next: Default::default(),
            secrets: Default::default(),
        }
    }

    /// A caller in `role` with a session, a recording and a key of their own, and a victim.
    fn cell(&self, role: Role) -> Cell<'_> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (name, victim) = (format!("caller{n}"), format!("victim{n}"));
        let (my_key, victim_key) = (key_line(2 * n), key_line(2 * n + 1));
        let svc = &self.svc;
        svc.add_user(
            &self.admin,
            &name,
            Role::Developer,
            std::slice::from_ref(&my_key),
        )
        .unwrap();
        svc.add_user(
            &self.admin,
            &victim,
            Role::Developer,
            std::slice::from_ref(&victim_key),
        )
        .unwrap();
        let developer = svc.principal(&name, "test").unwrap();
        let my_session = session(svc, &developer);
        let my_recording = recording(svc, &developer);
        if role != Role::Developer {
            svc.set_role(&self.admin, &name, role).unwrap();
        }
        // Authority is read at each call: the principal's own role field is stale on purpose.
        Cell {
            h: self,
            me: developer,
            my_session,
            my_recording,
            my_key,
            victim,
            victim_key,
            tokens: Mutex::new(None),
        }
    }
}

/// A session of `p`'s running `cat`.
fn session(svc: &Service, p: &Principal) -> String {
    let req = NewSession {
        command: vec!["cat".into()],
        cols: 80,
        rows: 24,
        term: "xterm".into(),
        ..Default::default()
    };
    svc.create_session(p, req).unwrap().id.to_string()
}

/// A finished recording of `p`'s whose screen says `needle-USER`.
fn recording(svc: &Service, p: &Principal) -> String {
    let recorder = Recorder::new(
        svc.dir.root.join("recordings"),
        Keyring::new(svc.keys.clone()),
        FailurePolicy::Strict,
        false,
        true,
    )
    .unwrap();
    let meta = Meta {
        user: p.user.clone(),
        profile: "default".into(),
        command: vec!["cat".into()],
        cols: 80,
        rows: 24,
        term: "xterm".into(),
    };
    let (header, path, mut w) = recorder.start(1, &meta).unwrap();
    w.event(
        format::OUTPUT,
        format!("hello\r\nneedle-{}\r\n", p.user).as_bytes(),
    )
    .unwrap();
    let files = crate::changes::Summary::empty(crate::changes::Taken::End, "/w", "t0", "t1");
    w.event(format::FILES, &serde_json::to_vec(&files).unwrap())
        .unwrap();
    w.event(format::EXIT, b"0").unwrap();
    w.finish().unwrap();
    svc.store
        .add_recording(&RecordingEntry {
            id: header.id.clone(),
            session: 1,
            user: p.user.clone(),
            user_id: p.user_id,
            profile: "default".into(),
            command: "cat".into(),
            started: crate::audit::now_rfc3339(),
            ended: Some(crate::audit::now_rfc3339()),
            exit_status: Some(0),
            state: RecordingState::Complete,
            path: path.display().to_string(),
            bytes: std::fs::metadata(&path).unwrap().len() as i64,
            key_id: header.key_id,
            hold: false,
        })
        .unwrap();
    header.id
}

/// Ok when `found`, else the NotFound a list or search answers by leaving a thing out.
fn present(found: bool) -> Result<()> {
    if found {
        Ok(())
    } else {
        Err(Error::NotFound("left out".into()))
    }
}

type Act = Box<dyn Fn(&Cell) -> Result<()>>;

struct Row {
    what: &'static str,
    /// Done before the call, its events not counted (a token pair to use, a password).
    prepare: Option<Act>,
    act: Act,
    /// admin, developer, auditor, viewer (Role::ALL's order).
    expect: [Expect; 4],
}

fn row(
    what: &'static str,
    act: impl Fn(&Cell) -> Result<()> + 'static,
    expect: [Expect; 4],
) -> Row {
    Row {
        what,
        prepare: None,
        act: Box::new(act),
        expect,
    }
}

fn row_after(
    what: &'static str,
    prepare: impl Fn(&Cell) -> Result<()> + 'static,
    act: impl Fn(&Cell) -> Result<()> + 'static,
    expect: [Expect; 4],
) -> Row {
    Row {
        what,
        prepare: Some(Box::new(prepare)),
        act: Box::new(act),
        expect,
    }
}

/// A pair for the caller, kept for the call.
fn issue(c: &Cell) -> Result<()> {
    *c.tokens.lock().unwrap() = Some(c.h.svc.issue_token(&c.h.admin, &c.me.user, "test")?);
    Ok(())
}

fn pair(c: &Cell) -> TokenPair {
    c.tokens
        .lock()
        .unwrap()
        .clone()
        .expect("issued before the call")
}

/// Enrols and confirms `name`'s second factor as the caller; the secret is kept for
/// [`totp_code`].
fn enrol(c: &Cell, name: &str) -> Result<Vec<String>> {
    let e = c.h.svc.totp_enroll(&c.me, name)?;
    let secret = crate::auth::totp::from_base32(&e.secret).unwrap();
    c.h.secrets
        .lock()
        .unwrap()
        .insert(name.to_string(), secret.clone());
    let code = crate::auth::totp::code_at(&secret, crate::tokens::now());
    c.h.svc.totp_confirm(&c.me, name, &code)
}

/// A code for `name` `ahead` steps from now (the confirming step is used up).
fn totp_code(c: &Cell, name: &str, ahead: i64) -> String {
    let secret = c.h.secrets.lock().unwrap()[name].clone();
    let step = crate::auth::totp::step_at(crate::tokens::now()) + ahead;
    crate::auth::totp::code_at_step(&secret, step)
}

/// Attaches or observes, then detaches: both audited.
fn watch(c: &Cell, id: &str, writer: bool) -> Result<()> {
    let (s, v) = c.h.svc.attach(&c.me, id, writer)?;
    c.h.svc.detach(&c.me, &s, &v);
    Ok(())
}

/// A session of `owner` published by another host sharing the store (one host per caller,
/// so that cells do not replace each other's); its id.
fn published(c: &Cell, owner: &Principal) -> String {
    let host = format!("elsewhere-{}", c.me.user_id);
    let id = crate::sessions::SessionId::random().unwrap().to_string();
    let now = crate::tokens::now();
    let store = &c.h.svc.store;
    store
        .join_host(&host, &host, "elsewhere.example:2222", "0", now, 10)
        .unwrap();
    let s = crate::store::HostSession {
        id: id.clone(),
        host: host.clone(),
        advertise: String::new(),
        name: "far".into(),
        owner: owner.user.clone(),
        owner_id: owner.user_id,
        profile: "default".into(),
        command: vec!["cat".into()],
        started: crate::audit::now_rfc3339(),
        started_unix: now,
        state: "running".into(),
        viewers: 0,
        updated: now,
    };
    assert!(store.beat_host(&host, &host, now, &[s]).unwrap());
    id
}

/// Whether the caller's list of other hosts' sessions holds `id`.
fn listed_elsewhere(c: &Cell, id: &str) -> Result<()> {
    present(c.h.svc.cluster_sessions(&c.me)?.iter().any(|s| s.id == id))
}

fn rows() -> Vec<Row> {
    let cluster = vec![
        row(
            "see their own session on another host in the list",
            |c| listed_elsewhere(c, &published(c, &c.me)),
            [QUIET; 4],
        ),
        row(
            "see another's session on another host in the list",
            |c| listed_elsewhere(c, &published(c, &c.h.owner)),
            [QUIET, LEFT_OUT, QUIET, QUIET],
        ),
        row(
            "attach to their own session on another host",
            |c| watch(c, &published(c, &c.me), true),
            [REDIRECTED, REDIRECTED, NO, NO],
        ),
        row(
            "attach to another's session on another host",
            |c| watch(c, &published(c, &c.h.owner), true),
            [REDIRECTED, HIDDEN, NO, NO],
        ),
        row(
            "observe another's session on another host",
            |c| watch(c, &published(c, &c.h.owner), false),
            [REDIRECTED, HIDDEN, REDIRECTED, REDIRECTED],
        ),
    ];
    let sessions = vec![
        row(
            "see their own session in the list",
            |c| {
                present(
                    c.h.svc
                        .sessions(&c.me)?
                        .iter()
                        .any(|s| s.id.to_string() == c.my_session),
                )
            },
            [QUIET; 4],
        ),
        row(
            "see another's session in the list",
            |c| {
                present(
                    c.h.svc
                        .sessions(&c.me)?
                        .iter()
                        .any(|s| s.id.to_string() == c.h.their_session),
                )
            },
            [QUIET, LEFT_OUT, QUIET, QUIET],
        ),
        row(
            "start a session",
            |c| {
                let req = NewSession {
                    command: vec!["cat".into()],
                    cols: 80,
                    rows: 24,
                    term: "xterm".into(),
                    ..Default::default()
                };
                c.h.svc.create_session(&c.me, req).map(drop)
            },
            [done(&[SessionCreate]), done(&[SessionCreate]), NO, NO],
        ),
        row(
            "see their own session's screen",
            |c| c.h.svc.preview(&c.me, &c.my_session, 10, 5).map(drop),
            [QUIET; 4],
        ),
        row(
            "see another's session's screen",
            |c| c.h.svc.preview(&c.me, &c.h.their_session, 10, 5).map(drop),
            [QUIET, HIDDEN, QUIET, QUIET],
        ),
        row(
            "read their own session's screen as text",
            |c| c.h.svc.screen_text(&c.me, &c.my_session).map(drop),
            [QUIET; 4],
        ),
        row(
            "read another's session's screen as text",
            |c| c.h.svc.screen_text(&c.me, &c.h.their_session).map(drop),
            [QUIET, HIDDEN, QUIET, QUIET],
        ),
        row(
            "see what their own session changed in its workspace",
            |c| c.h.svc.session_files(&c.me, &c.my_session).map(drop),
            [done(&[SessionFiles]); 4],
        ),
        row(
            "see what another's session changed in its workspace",
            |c| c.h.svc.session_files(&c.me, &c.h.their_session).map(drop),
            [
                done(&[SessionFiles]),
                HIDDEN,
                done(&[SessionFiles]),
                done(&[SessionFiles]),
            ],
        ),
        row(
            "read their own session's details",
            |c| c.h.svc.session_info(&c.me, &c.my_session).map(drop),
            [QUIET; 4],
        ),
        row(
            "read another's session's details",
            |c| c.h.svc.session_info(&c.me, &c.h.their_session).map(drop),
            [QUIET, HIDDEN, QUIET, QUIET],
        ),
        row(
            "attach to their own session",
            |c| watch(c, &c.my_session, true),
            [
                done(&[SessionAttach, SessionDetach]),
                done(&[SessionAttach, SessionDetach]),
                NO,
                NO,
            ],
        ),
        row(
            "attach to another's session",
            |c| watch(c, &c.h.their_session, true),
            [done(&[SessionAttach, SessionDetach]), HIDDEN, NO, NO],
        ),
        row(
            "observe their own session",
            |c| watch(c, &c.my_session, false),
            [done(&[SessionObserve, SessionDetach]); 4],
        ),
        row(
            "observe another's session",
            |c| watch(c, &c.h.their_session, false),
            [
                done(&[SessionObserve, SessionDetach]),
                HIDDEN,
                done(&[SessionObserve, SessionDetach]),
                done(&[SessionObserve, SessionDetach]),
            ],
        ),
        row(
            "type into their own session",
            |c| c.h.svc.input(&c.me, &c.my_session, b"hi\r"),
            [done(&[SessionInput]), done(&[SessionInput]), NO, NO],
        ),
        row(
            "type into another's session",
            |c| c.h.svc.input(&c.me, &c.h.their_session, b"hi\r"),
            [done(&[SessionInput]), HIDDEN, NO, NO],
        ),
        row(
            "resize their own session",
            |c| c.h.svc.resize(&c.me, &c.my_session, 100, 30),
            [done(&[SessionResize]), done(&[SessionResize]), NO, NO],
        ),
        row(
            "resize another's session",
            |c| c.h.svc.resize(&c.me, &c.h.their_session, 100, 30),
            [done(&[SessionResize]), HIDDEN, NO, NO],
        ),
        row(
            "rename their own session",
            |c| {
                c.h.svc
                    .rename_session(&c.me, &c.my_session, "mine")
                    .map(drop)
            },
            [done(&[SessionRename]), done(&[SessionRename]), NO, NO],
        ),
        row(
            "rename another's session",
            |c| {
                c.h.svc
                    .rename_session(&c.me, &c.h.their_session, "theirs")
                    .map(drop)
            },
            [done(&[SessionRename]), HIDDEN, NO, NO],
        ),
        row(
            "mark their own session",
            |c| c.h.svc.mark(&c.me, &c.my_session, "here").map(drop),
            [done(&[SessionMark]), done(&[SessionMark]), NO, NO],
        ),
        row(
            "mark another's session",
            |c| c.h.svc.mark(&c.me, &c.h.their_session, "here").map(drop),
            [done(&[SessionMark]), HIDDEN, NO, NO],
        ),
        row(
            "see the network questions of their own sessions",
            |c| c.h.svc.questions(&c.me).map(drop),
            [QUIET; 4],
        ),
        row(
            "see the network questions of their own session",
            |c| c.h.svc.session_questions(&c.me, &c.my_session).map(drop),
            [QUIET; 4],
        ),
        row(
            // Only the owner is asked: an admin or an auditor who may watch the session
            // may not see or answer its questions.
            "see the network questions of another's session",
            |c| {
                c.h.svc
                    .session_questions(&c.me, &c.h.their_session)
                    .map(drop)
            },
            [NO, HIDDEN, NO, NO],
        ),
        row(
            // No question waits (the unit tests' sessions have no proxy): not found, after
            // the permission is checked.
            "answer a network question of their own session",
            |c| {
                c.h.svc
                    .answer_question(&c.me, &c.my_session, 1, sandbox::egress::Answer::Once)
                    .map(drop)
            },
            [LEFT_OUT, LEFT_OUT, NO, NO],
        ),
        row(
            "answer a network question of another's session",
            |c| {
                c.h.svc
                    .answer_question(&c.me, &c.h.their_session, 1, sandbox::egress::Answer::Once)
                    .map(drop)
            },
            [NO, HIDDEN, NO, NO],
        ),
        row(
            "end their own session",
            |c| {
                let ended = c.h.svc.end_session(&c.me, &c.my_session);
                if ended.is_ok() {
                    wait_for_end(c);
                }
                ended
            },
            [
                done(&[SessionKill, SessionEnd]),
                done(&[SessionKill, SessionEnd]),
                NO,
                NO,
            ],
        ),
        row(
            "end another's session",
            |c| c.h.svc.end_session(&c.me, &session(&c.h.svc, &c.h.owner)),
            [done(&[SessionKill]), HIDDEN, NO, NO],
        ),
        row(
            "check a command may run",
            |c| {
                c.h.svc.prepare_run(
                    &c.me,
                    &RunRequest {
                        argv: vec!["true".into()],
                        profile: None,
                        workspace: None,
                        timeout: None,
                    },
                )
            },
            [QUIET, QUIET, NO, NO],
        ),
        row(
            "run a command",
            |c| {
                let req = RunRequest {
                    argv: vec!["echo".into(), "ran".into()],
                    profile: None,
                    workspace: None,
                    timeout: None,
                };
                let mut out = Vec::new();
                let o = c.h.svc.run(&c.me, req, RunInput::Empty, &mut |_, b| {
                    out.extend(b);
                    true
                })?;
                assert_eq!((o.exit_status, out.as_slice()), (0, &b"ran\n"[..]));
                Ok(())
            },
            [done(&[Run]), done(&[Run]), NO, NO],
        ),
        row(
            "see where their sessions may work",
            |c| c.h.svc.workspace_choices(&c.me).map(drop),
            [QUIET, QUIET, NO, NO],
        ),
        row(
            "be offered the default profile",
            |c| present(c.h.svc.profiles(&c.me)?.contains(&"default".to_string())),
            [QUIET, QUIET, LEFT_OUT, LEFT_OUT],
        ),
    ];
    let recordings = vec![
        row(
            "see their own recording in the list",
            |c| {
                present(
                    c.h.svc
                        .recordings(&c.me, &Filter::default())?
                        .iter()
                        .any(|r| r.id == c.my_recording),
                )
            },
            [QUIET, QUIET, QUIET, LEFT_OUT],
        ),
        row(
            "see another's recording in the list",
            |c| {
                present(
                    c.h.svc
                        .recordings(&c.me, &Filter::default())?
                        .iter()
                        .any(|r| r.id == c.h.their_recording),
                )
            },
            [QUIET, LEFT_OUT, QUIET, LEFT_OUT],
        ),
        row(
            "read their own recording's details",
            |c| c.h.svc.recording(&c.me, &c.my_recording).map(drop),
            [QUIET, QUIET, QUIET, HIDDEN],
        ),
        row(
            "read another's recording's details",
            |c| c.h.svc.recording(&c.me, &c.h.their_recording).map(drop),
            [QUIET, HIDDEN, QUIET, HIDDEN],
        ),
        row(
            "play their own recording",
            |c| {
                c.h.svc
                    .open_recording(&c.me, &c.my_recording, 0.0)
                    .map(drop)
            },
            [
                done(&[RecordingPlay]),
                done(&[RecordingPlay]),
                done(&[RecordingPlay]),
                HIDDEN,
            ],
        ),
        row(
            "play another's recording",
            |c| {
                c.h.svc
                    .open_recording(&c.me, &c.h.their_recording, 0.0)
                    .map(drop)
            },
            [
                done(&[RecordingPlay]),
                HIDDEN,
                done(&[RecordingPlay]),
                HIDDEN,
            ],
        ),
        row(
            "read what their own recorded session changed in its workspace",
            |c| c.h.svc.recording_files(&c.me, &c.my_recording).map(drop),
            [
                done(&[RecordingPlay]),
                done(&[RecordingPlay]),
                done(&[RecordingPlay]),
                HIDDEN,
            ],
        ),
        row(
            "read what another's recorded session changed in its workspace",
            |c| {
                c.h.svc
                    .recording_files(&c.me, &c.h.their_recording)
                    .map(drop)
            },
            [
                done(&[RecordingPlay]),
                HIDDEN,
                done(&[RecordingPlay]),
                HIDDEN,
            ],
        ),
        row(
            "stream another's recording",
            |c| {
                c.h.svc
                    .open_reader(&c.me, &c.h.their_recording, 0.0)
                    .map(drop)
            },
            [
                done(&[RecordingPlay]),
                HIDDEN,
                done(&[RecordingPlay]),
                HIDDEN,
            ],
        ),
        row(
            "see another's recording's screen at a time",
            |c| {
                c.h.svc
                    .screen_at(&c.me, &c.h.their_recording, 0.0)
                    .map(drop)
            },
            [
                done(&[RecordingPlay]),
                HIDDEN,
                done(&[RecordingPlay]),
                HIDDEN,
            ],
        ),
        row(
            "export their own recording",
            |c| {
                c.h.svc
                    .export(&c.me, &c.my_recording, "asciicast-v2", "test")
                    .map(drop)
            },
            [
                done(&[RecordingExport]),
                done(&[RecordingExport]),
                done(&[RecordingExport]),
                HIDDEN,
            ],
        ),
        row(
            "export another's recording",
            |c| {
                c.h.svc
                    .export(&c.me, &c.h.their_recording, "raw", "test")
                    .map(drop)
            },
            [
                done(&[RecordingExport]),
                HIDDEN,
                done(&[RecordingExport]),
                HIDDEN,
            ],
        ),
        row(
            "export another's recording into their workspace",
            |c| {
                c.h.svc
                    .export_recording(&c.me, &c.h.their_recording, "asciicast-v2")
                    .map(drop)
            },
            [
                done(&[RecordingExport]),
                HIDDEN,
                done(&[RecordingExport]),
                HIDDEN,
            ],
        ),
        row(
            "verify their own recording",
            |c| {
                let (_, verdict) = c.h.svc.verify_recording(&c.me, &c.my_recording)?;
                assert!(verdict.is_whole(), "{verdict:?}");
                Ok(())
            },
            [
                done(&[RecordingVerify]),
                done(&[RecordingVerify]),
                done(&[RecordingVerify]),
                HIDDEN,
            ],
        ),
        row(
            "verify another's recording",
            |c| {
                c.h.svc
                    .verify_recording(&c.me, &c.h.their_recording)
                    .map(drop)
            },
            [
                done(&[RecordingVerify]),
                HIDDEN,
                done(&[RecordingVerify]),
                HIDDEN,
            ],
        ),
        row(
            "verify every recording they may read",
            |c| c.h.svc.verify_all(&c.me).map(drop),
            [done(&[RecordingVerify]); 4],
        ),
        row(
            "find their own recording's text",
            |c| {
                let (hits, _) =
                    c.h.svc
                        .search(&c.me, &format!("needle-{}", c.me.user), &Filter::default())?;
                present(hits.iter().any(|h| h.recording == c.my_recording))
            },
            [
                done(&[RecordingSearch]),
                done(&[RecordingSearch]),
                done(&[RecordingSearch]),
                (Answer::NotFound, &[RecordingSearch]),
            ],
        ),
        row(
            "find another's recording's text",
            |c| {
                let (hits, _) = c.h.svc.search(&c.me, "needle-owner", &Filter::default())?;
                present(hits.iter().any(|h| h.recording == c.h.their_recording))
            },
            [
                done(&[RecordingSearch]),
                (Answer::NotFound, &[RecordingSearch]),
                done(&[RecordingSearch]),
                (Answer::NotFound, &[RecordingSearch]),
            ],
        ),
        row(
            "read what their own recording's session did",
            |c| c.h.svc.recording_events(&c.me, &c.my_recording).map(drop),
            [
                done(&[RecordingPlay]),
                done(&[RecordingPlay]),
                done(&[RecordingPlay]),
                HIDDEN,
            ],
        ),
        row(
            "read what another's recording's session did",
            |c| {
                c.h.svc
                    .recording_events(&c.me, &c.h.their_recording)
                    .map(drop)
            },
            [
                done(&[RecordingPlay]),
                HIDDEN,
                done(&[RecordingPlay]),
                HIDDEN,
            ],
        ),
        row(
            // The unit tests' sessions run unconfined (no exec watch): the search finds
            // nothing, and is audited like any search.
            "find a command the sessions they may read ran",
            |c| {
                c.h.svc
                    .search_exec(&c.me, "make test", &Filter::default())
                    .map(drop)
            },
            [done(&[RecordingSearch]); 4],
        ),
        row(
            "hold their own recording",
            |c| c.h.svc.hold(&c.me, &c.my_recording, true).map(drop),
            [done(&[RecordingHold]), NO, done(&[RecordingHold]), HIDDEN],
        ),
        row(
            "hold another's recording",
            |c| c.h.svc.hold(&c.me, &c.h.their_recording, true).map(drop),
            [
                done(&[RecordingHold]),
                HIDDEN,
                done(&[RecordingHold]),
                HIDDEN,
            ],
        ),
        row(
            "release another's recording",
            |c| c.h.svc.hold(&c.me, &c.h.their_recording, false).map(drop),
            [
                done(&[RecordingRelease]),
                HIDDEN,
                done(&[RecordingRelease]),
                HIDDEN,
            ],
        ),
        row(
            "rotate the recording key",
            |c| c.h.svc.rotate_recording_key(&c.me).map(drop),
            [done(&[KeyRotate]), NO, NO, NO],
        ),
        row(
            "rotate the master key",
            |c| c.h.svc.rotate_master_key(&c.me, None).map(drop),
            [done(&[KeyRotate]), NO, NO, NO],
        ),
        row(
            "rotate the secrets key",
            |c| c.h.svc.rotate_secrets_key(&c.me).map(drop),
            [done(&[KeyRotate]), NO, NO, NO],
        ),
        row(
            "read the keys' ages",
            |c| c.h.svc.key_status(&c.me).map(drop),
            [QUIET, NO, NO, NO],
        ),
        row(
            "back the keys up",
            |c| c.h.svc.key_backup(&c.me, "correct horse battery").map(drop),
            [done(&[KeyBackup]), NO, NO, NO],
        ),
        row(
            "record a key restore",
            |c| c.h.svc.key_restored(&c.me, 1, 0),
            [done(&[KeyRestore]), NO, NO, NO],
        ),
    ];
    let audit = vec![
        row(
            "read the audit log",
            |c| c.h.svc.audit_events(&c.me, 10, None).map(drop),
            [QUIET, NO, QUIET, NO],
        ),
        row(
            "verify the audit log",
            |c| {
                let verdict = c.h.svc.audit_verify(&c.me, true)?;
                assert!(verdict.is_ok(), "the chain holds");
                Ok(())
            },
            [QUIET, NO, QUIET, NO],
        ),
        row(
            "read the host's figures",
            |c| c.h.svc.figures(&c.me).map(drop),
            [QUIET, NO, QUIET, NO],
        ),
    ];
    let users = vec![
        row(
            "list users",
            |c| c.h.svc.users(&c.me).map(drop),
            [QUIET, NO, NO, NO],
        ),
        row(
            "add a user",
            |c| {
                c.h.svc
                    .add_user(&c.me, &format!("new-{}", c.me.user), Role::Viewer, &[])
                    .map(drop)
            },
            [done(&[UserAdd]), NO, NO, NO],
        ),
        row(
            "remove a user",
            |c| c.h.svc.remove_user(&c.me, &c.victim),
            [done(&[UserRemove]), NO, NO, NO],
        ),
        row(
            "import Claude's settings into a user's home",
            |c| {
                let from = tempfile::tempdir().unwrap();
                std::fs::write(from.path().join(".claude.json"), r#"{"theme":"dark"}"#).unwrap();
                c.h.svc
                    .import_claude(&c.me, &c.victim, from.path())
                    .map(drop)
            },
            [done(&[ClaudeImport]), NO, NO, NO],
        ),
        row(
            "change a user's role",
            |c| c.h.svc.set_role(&c.me, &c.victim, Role::Auditor),
            [done(&[UserRole]), NO, NO, NO],
        ),
        row(
            "lock a user",
            |c| c.h.svc.set_locked(&c.me, &c.victim, true).map(drop),
            [done(&[UserLock]), NO, NO, NO],
        ),
        row(
            "unlock a user",
            |c| c.h.svc.set_locked(&c.me, &c.victim, false).map(drop),
            [done(&[UserUnlock]), NO, NO, NO],
        ),
        row(
            "set a user's password",
            |c| c.h.svc.set_password(&c.me, &c.victim, Some(PASSWORD)),
            [done(&[UserPasswordSet]), NO, NO, NO],
        ),
        row(
            "clear a user's password",
            |c| c.h.svc.set_password(&c.me, &c.victim, None),
            [done(&[UserPasswordClear]), NO, NO, NO],
        ),
        row(
            "list their own keys",
            |c| {
                present(
                    c.h.svc
                        .keys(&c.me, &c.me.user)?
                        .iter()
                        .any(|k| k.fingerprint == fingerprint(&c.my_key)),
                )
            },
            [QUIET; 4],
        ),
        row(
            "list another's keys",
            |c| c.h.svc.keys(&c.me, &c.victim).map(drop),
            [QUIET, NO, NO, NO],
        ),
        row(
            "add a key to their own account",
            |c| {
                c.h.svc
                    .add_key(&c.me, &c.me.user, &key_line(u32::MAX - c.me.user_id as u32))
                    .map(drop)
            },
            [done(&[KeyAdd]), NO, NO, NO],
        ),
        row(
            "add a key to another's account",
            |c| {
                c.h.svc
                    .add_key(
                        &c.me,
                        &c.victim,
                        &key_line(u32::MAX / 2 - c.me.user_id as u32),
                    )
                    .map(drop)
            },
            [done(&[KeyAdd]), NO, NO, NO],
        ),
        row(
            "remove another's key",
            |c| {
                c.h.svc
                    .remove_key(&c.me, &c.victim, &fingerprint(&c.victim_key))
                    .map(drop)
            },
            [done(&[KeyRemove]), NO, NO, NO],
        ),
        row(
            "enrol their own second factor",
            |c| enrol(c, &c.me.user).map(drop),
            [done(&[TotpEnroll, TotpConfirm]); 4],
        ),
        row(
            "enrol another's second factor",
            |c| enrol(c, &c.victim).map(drop),
            [done(&[TotpEnroll, TotpConfirm]), NO, NO, NO],
        ),
        row(
            "see their own second factor's state",
            |c| {
                let s = c.h.svc.totp_status(&c.me, &c.me.user)?;
                assert_eq!(s.state, "none");
                Ok(())
            },
            [QUIET; 4],
        ),
        row(
            "see another's second factor's state",
            |c| c.h.svc.totp_status(&c.me, &c.victim).map(drop),
            [QUIET, NO, NO, NO],
        ),
        row_after(
            "turn their own second factor off with a code",
            |c| enrol(c, &c.me.user).map(drop),
            |c| {
                let code = totp_code(c, &c.me.user, 1);
                c.h.svc.totp_disable(&c.me, &code)
            },
            [done(&[TotpDisable]); 4],
        ),
        row_after(
            "reset another's second factor",
            |c| {
                let admin = c.h.admin.clone();
                let secret = {
                    let e = c.h.svc.totp_enroll(&admin, &c.victim)?;
                    e.secret
                };
                let code = crate::auth::totp::code_at(
                    &crate::auth::totp::from_base32(&secret).unwrap(),
                    crate::tokens::now(),
                );
                c.h.svc.totp_confirm(&admin, &c.victim, &code).map(drop)
            },
            |c| c.h.svc.totp_reset(&c.me, &c.victim),
            [done(&[TotpReset]), NO, NO, NO],
        ),
        row(
            "revoke their own tokens",
            |c| c.h.svc.revoke_tokens(&c.me, &c.me.user),
            [done(&[TokenRevoke]); 4],
        ),
        row(
            "revoke another's tokens",
            |c| c.h.svc.revoke_tokens(&c.me, &c.victim),
            [done(&[TokenRevoke]), NO, NO, NO],
        ),
        row(
            "get a token for themselves",
            |c| c.h.svc.issue_token(&c.me, &c.me.user, "test").map(drop),
            [done(&[TokenIssue]); 4],
        ),
        row(
            "get a token for another",
            |c| c.h.svc.issue_token(&c.me, &c.victim, "test").map(drop),
            [done(&[TokenIssue]), NO, NO, NO],
        ),
        row(
            "rotate the token signing key",
            |c| c.h.svc.rotate_token_key(&c.me).map(drop),
            [done(&[TokenRotateKey]), NO, NO, NO],
        ),
    ];
    let own = |c: &Cell| Scope::User(c.me.user.clone());
    let theirs = |c: &Cell| Scope::User(c.victim.clone());
    let secrets = vec![
        row(
            "set their own secret",
            move |c| {
                c.h.svc
                    .set_secret(&c.me, &own(c), "API_KEY", b"value-0123")
                    .map(drop)
            },
            [done(&[SecretSet]), done(&[SecretSet]), NO, NO],
        ),
        row_after(
            "list their own secrets",
            move |c| {
                c.h.svc
                    .set_secret(&c.h.admin, &own(c), "API_KEY", b"value-0123")
                    .map(drop)
            },
            move |c| {
                let list = c.h.svc.secrets(&c.me, &own(c))?;
                present(list.iter().any(|s| s.name == "API_KEY"))
            },
            [QUIET, QUIET, NO, NO],
        ),
        row_after(
            "remove their own secret",
            move |c| {
                c.h.svc
                    .set_secret(&c.h.admin, &own(c), "API_KEY", b"value-0123")
                    .map(drop)
            },
            move |c| c.h.svc.remove_secret(&c.me, &own(c), "API_KEY"),
            [done(&[SecretRemove]), done(&[SecretRemove]), NO, NO],
        ),
        row(
            "set another's secret",
            move |c| {
                c.h.svc
                    .set_secret(&c.me, &theirs(c), "API_KEY", b"value-0123")
                    .map(drop)
            },
            [done(&[SecretSet]), NO, NO, NO],
        ),
        row_after(
            "list another's secrets",
            move |c| {
                c.h.svc
                    .set_secret(&c.h.admin, &theirs(c), "API_KEY", b"value-0123")
                    .map(drop)
            },
            move |c| c.h.svc.secrets(&c.me, &theirs(c)).map(drop),
            [QUIET, NO, NO, NO],
        ),
        row_after(
            "remove another's secret",
            move |c| {
                c.h.svc
                    .set_secret(&c.h.admin, &theirs(c), "API_KEY", b"value-0123")
                    .map(drop)
            },
            move |c| c.h.svc.remove_secret(&c.me, &theirs(c), "API_KEY"),
            [done(&[SecretRemove]), NO, NO, NO],
        ),
        row(
            "set a global secret",
            |c| {
                let name = format!("GLOBAL_{}", c.me.user_id);
                c.h.svc
                    .set_secret(&c.me, &Scope::Global, &name, b"value-0123")
                    .map(drop)
            },
            [done(&[SecretSet]), NO, NO, NO],
        ),
        row(
            "list the global secrets' names",
            |c| c.h.svc.secrets(&c.me, &Scope::Global).map(drop),
            [QUIET, QUIET, NO, NO],
        ),
        row_after(
            "remove a global secret",
            |c| {
                let name = format!("GLOBAL_{}", c.me.user_id);
                c.h.svc
                    .set_secret(&c.h.admin, &Scope::Global, &name, b"value-0123")
                    .map(drop)
            },
            |c| {
                let name = format!("GLOBAL_{}", c.me.user_id);
                c.h.svc.remove_secret(&c.me, &Scope::Global, &name)
            },
            [done(&[SecretRemove]), NO, NO, NO],
        ),
    ];
    let logins = vec![
        row(
            "log in with their key",
            |c| {
                c.h.svc
                    .key_login(&c.me.user, &fingerprint(&c.my_key), "192.0.2.1:5000")
                    .map(drop)
            },
            [done(&[Login]); 4],
        ),
        row_after(
            "log in with their password",
            |c| c.h.svc.set_password(&c.h.admin, &c.me.user, Some(PASSWORD)),
            |c| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let login =
                    rt.block_on(
                        c.h.svc
                            .password_login(&c.me.user, PASSWORD, "192.0.2.1", "test"),
                    )?;
                let super::Login::Done(p) = login else {
                    panic!("no second factor was enrolled")
                };
                c.h.svc.login_tokens(&p).map(drop)
            },
            [done(&[Login]); 4],
        ),
        row_after(
            "use an access token",
            issue,
            |c| {
                let (p, _) = c.h.svc.authenticate(&pair(c).access_token, "192.0.2.1")?;
                assert_eq!(
                    (p.user_id, p.role),
                    (c.me.user_id, c.h.svc.current(&c.me)?.role),
                    "the token's user, in their role now"
                );
                Ok(())
            },
            [QUIET; 4],
        ),
        row_after(
            "refresh their tokens",
            issue,
            |c| {
                c.h.svc
                    .refresh_tokens(&pair(c).refresh_token, "192.0.2.1", "r1")
                    .map(drop)
            },
            [done(&[TokenRefresh]); 4],
        ),
        row_after(
            "log out",
            issue,
            |c| {
                let pair = pair(c);
                let (p, claims) = c.h.svc.authenticate(&pair.access_token, "192.0.2.1")?;
                c.h.svc.logout(&p, &claims, Some(&pair.refresh_token))?;
                assert!(
                    c.h.svc
                        .authenticate(&pair.access_token, "192.0.2.1")
                        .is_err(),
                    "the access token is void"
                );
                Ok(())
            },
            [done(&[Logout]); 4],
        ),
        row(
            "copy files in and out of their own home and workspace",
            |c| {
                let files = c.h.svc.open_files(&c.me)?;
                files.mkdir("/workspace/in", None)?;
                let h = files.open(
                    "in/f",
                    crate::files::OpenMode {
                        write: true,
                        create: true,
                        ..Default::default()
                    },
                    None,
                )?;
                files.write(h, 0, b"bytes".to_vec())?;
                files.close(h)?;
                Ok(())
            },
            [
                done(&[FilesStart, FileMkdir, FileWrite, FilesEnd]),
                done(&[FilesStart, FileMkdir, FileWrite, FilesEnd]),
                NO,
                NO,
            ],
        ),
        row_after(
            "log in with their password and a TOTP code",
            |c| {
                c.h.svc
                    .set_password(&c.h.admin, &c.me.user, Some(PASSWORD))?;
                enrol(c, &c.me.user).map(drop)
            },
            |c| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let login =
                    rt.block_on(
                        c.h.svc
                            .password_login(&c.me.user, PASSWORD, "192.0.2.1", "test"),
                    )?;
                let super::Login::NeedsCode(pending) = login else {
                    panic!("a code is due")
                };
                let code = totp_code(c, &c.me.user, 1);
                c.h.svc.code_login(&pending, &code).map(drop)
            },
            [done(&[Login]); 4],
        ),
        row(
            "open and close the TUI",
            |c| {
                c.h.svc.tui_opened(&c.me);
                c.h.svc.tui_closed(&c.me);
                Ok(())
            },
            [done(&[TuiStart, TuiStop]); 4],
        ),
    ];
    let alerts = vec![
        row(
            "send a test alert",
            |c| c.h.svc.alert_test(&c.me).map(drop),
            [done(&[AlertTest]), NO, NO, NO],
        ),
        row(
            "see the blocked addresses",
            |c| c.h.svc.blocks(&c.me).map(drop),
            [QUIET, NO, QUIET, NO],
        ),
        row_after(
            "lift an address's block",
            |c| {
                let until = crate::tokens::now() + 3600;
                Ok(c.h
                    .svc
                    .store
                    .block_address("203.0.113.9", until, "test", 0)?)
            },
            |c| c.h.svc.unblock(&c.me, "203.0.113.9").map(drop),
            [done(&[AddressUnblock]), NO, NO, NO],
        ),
        row(
            "see the incidents",
            |c| c.h.svc.incidents(&c.me, 10).map(drop),
            [QUIET, NO, QUIET, NO],
        ),
        row(
            "see an incident's timeline",
            |c| {
                let id =
                    c.h.svc
                        .incident_record("matrix", "host", "note", "a note")?;
                c.h.svc.incident(&c.me, id).map(drop)
            },
            [QUIET, NO, QUIET, NO],
        ),
    ];
    // Last: a lockdown ends the sessions that run when it begins (theirs included).
    let host = vec![
        row(
            "export an evidence bundle of their own recordings",
            |c| {
                let selection = crate::evidence::Selection {
                    sessions: Vec::new(),
                    user: Some(c.me.user.clone()),
                    since: Some("2000".into()),
                };
                let e = c.h.svc.export_evidence(&c.me, selection)?;
                assert!(e.recordings >= 1, "their recordings are in the bundle");
                Ok(())
            },
            [done(&[EvidenceExport]), NO, done(&[EvidenceExport]), NO],
        ),
        row(
            "see whether the host is in lockdown",
            |c| c.h.svc.lockdown_status(&c.me).map(drop),
            [QUIET, NO, NO, NO],
        ),
        row(
            "put the host in lockdown and end it",
            |c| {
                c.h.svc
                    .lockdown_on(&c.me, crate::store::LockdownSessions::End, "a drill")?;
                // It ends the sessions running when it began, the caller's own too.
                wait_for_end(c);
                c.h.svc.lockdown_off(&c.me).map(drop)
            },
            [done(&[LockdownOn, SessionEnd, LockdownOff]), NO, NO, NO],
        ),
    ];
    [
        sessions, cluster, recordings, audit, users, secrets, logins, alerts, host,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Waits (up to 10 s) for the caller's session's end to be audited: its reader thread
/// writes it, in its owner's name, once the process is gone, so that it is always counted.
fn wait_for_end(c: &Cell) {
    let start = std::time::Instant::now();
    let audited = || {
        crate::audit::read::latest(&c.h.svc.dir.audit_log(), 50, None, u64::MAX)
            .iter()
            .any(|e| {
                e["event"] == "session.end" && e["session"].as_str() == Some(c.my_session.as_str())
            })
    };
    while !audited() && start.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The audit events after `seq` whose actor is `user`, by name.
fn events_by(svc: &Service, user: &str, seq: u64) -> Vec<String> {
    let mut v = crate::audit::read::latest(&svc.dir.audit_log(), 200, None, u64::MAX);
    v.reverse();
    v.into_iter()
        .filter(|e| e["seq"].as_u64().is_some_and(|s| s > seq) && e["actor"] == user)
        .map(|e| e["event"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn last_seq(svc: &Service) -> u64 {
    crate::audit::read::latest(&svc.dir.audit_log(), 1, None, u64::MAX)
        .first()
        .and_then(|e| e["seq"].as_u64())
        .unwrap_or(0)
}

#[test]
fn every_operation_answers_and_audits_every_role_as_the_permission_table_says() {
    let host = Host::start();
    let mut wrong = Vec::new();
    let rows = rows();
    for row in &rows {
        for (role, (answer, events)) in Role::ALL.into_iter().zip(row.expect) {
            let cell = host.cell(role);
            if let Some(prepare) = &row.prepare {
                prepare(&cell)
                    .unwrap_or_else(|e| panic!("{}: preparing for a {role}: {e}", row.what));
            }
            let before = last_seq(&host.svc);
            let got = match (row.act)(&cell) {
                Ok(()) => Answer::Done,
                Err(Error::Forbidden(_)) => Answer::Forbidden,
                Err(Error::NotFound(_)) => Answer::NotFound,
                Err(Error::Invalid(m) | Error::Conflict(m)) => {
                    eprintln!("{}: a {role} was answered invalid: {m}", row.what);
                    Answer::Invalid
                }
                Err(e @ Error::Failed(_)) => {
                    panic!("{}: the host failed for a {role}: {e}", row.what)
                }
            };
            let written = events_by(&host.svc, &cell.me.user, before);
            let expected: Vec<String> = events.iter().map(|k| k.name().to_string()).collect();
            if got != answer || written != expected {
                wrong.push(format!(
                    "a {role} may {:?}: expected {answer:?} {expected:?}, got {got:?} {written:?}",
                    row.what
                ));
            }
            for s in host
                .svc
                .hub
                .list()
                .into_iter()
                .filter(|s| s.owner_id == cell.me.user_id)
            {
                s.kill();
            }
        }
    }
    host.svc.hub.end_all();
    assert!(
        wrong.is_empty(),
        "{} of {} cells differ from the table:\n{}",
        wrong.len(),
        rows.len() * 4,
        wrong.join("\n")
    );
}

#[test]
fn the_matrix_asks_every_operation_the_service_offers_a_caller() {
    // The operations a principal can call, by name; a new one must get a row above.
    let source = [
        include_str!("mod.rs"),
        include_str!("sessions.rs"),
        include_str!("recordings.rs"),
        include_str!("runs.rs"),
        include_str!("users.rs"),
        include_str!("host.rs"),
        include_str!("files.rs"),
        include_str!("secrets.rs"),
        include_str!("claude.rs"),
        include_str!("egress.rs"),
        include_str!("alerts.rs"),
        include_str!("totp.rs"),
        include_str!("lockdown.rs"),
        include_str!("evidence.rs"),
        include_str!("cluster.rs"),
    ]
    .concat();
    let matrix = include_str!("matrix.rs");
    let host_steps = [
        "config",
        "has_users",
        "host_started",
        "host_stopping",
        "purge_recordings",
        "local_login",
        "peer_login",
        "maintain",
        "cluster_join",
    ];
    let plumbing = [
        "open",
        "record",
        "record_bounded",
        "principal",
        "principal_by_id",
        "current",
        "local_admin",
        "stamp",
        "owns",
        "failed",
        "caused",
    ];
    let mut missing = Vec::new();
    for line in source.lines() {
        let Some(rest) = line
            .trim_start()
            .strip_prefix("pub fn ")
            .or_else(|| line.trim_start().strip_prefix("pub async fn "))
        else {
            continue;
        };
        let name = rest.split(['(', '<']).next().unwrap_or_default();
        let is_operation = rest.contains("p: &Principal")
            || rest.contains("_login(")
            || ["authenticate", "refresh_tokens"].contains(&name);
        if !is_operation || host_steps.contains(&name) || plumbing.contains(&name) {
            continue;
        }
        if !matrix.contains(&format!(".{name}(")) {
            missing.push(name.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "operations without a row in the matrix: {missing:?}"
    );
}
