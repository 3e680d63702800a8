//! Snapshot tests of every view at 80x24 and 160x48 (ratatui's TestBackend), from fixed
//! state: a real service (temporary data directory) with the rows the views show set by hand.

use std::sync::Arc;

use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::app::{App, Dialog, Field, Prompt, SessionRow, Tab};
use super::player::Player;
use super::view;
use crate::auth::Role;
use crate::config::Config;
use crate::paths::DataDir;
use crate::record::format::{self, Event, Recording};
use crate::service::{Principal, Service, UserInfo};
use crate::store::{RecordingEntry, User};

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];
/// The first user's id.
const ALICE: i64 = 1;

fn app(role: Role) -> (tempfile::TempDir, App) {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("data"));
    let mut config = Config::load(None, &data.root).unwrap();
    config.master.file = Some(crate::keys::master::for_tests(dir.path()));
    let (svc, _) = Service::open(data, config).unwrap();
    svc.add_user(&Principal::local_admin(), "alice", role, &[])
        .unwrap();
    let me = svc.principal("alice", "test").unwrap();
    assert_eq!(me.user_id, ALICE);
    let mut app = App::new(svc, me, (80, 24));
    app.sessions = vec![
        row(
            1,
            1,
            [
                "refactor-auth",
                "alice",
                "claude",
                "attached",
                "2h05m",
                "3s",
            ],
        ),
        row(
            2,
            0,
            ["alice-2", "alice", "default", "running", "14m", "9m"],
        ),
        row(
            7,
            0,
            ["nightly-build", "bob", "strict", "running", "1m", "1m"],
        ),
    ];
    app.preview = vec![
        "╭───────────────────────────────────────╮".into(),
        "│ ✻ Welcome to Claude Code!              │".into(),
        "╰───────────────────────────────────────╯".into(),
        "> refactor the session token checks".into(),
        "● Reading src/auth/mod.rs".into(),
    ];
    (dir, app)
}

/// A list row from `id`, the viewer count, and name, owner, profile, state, age, idle.
/// A session id as random as a real one, the same in every run (snapshots).
fn fixture_id(n: u64) -> crate::sessions::SessionId {
    crate::sessions::SessionId::from_number(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(n) >> 4)
}

fn row(n: u64, viewers: usize, [name, owner, profile, state, age, idle]: [&str; 6]) -> SessionRow {
    SessionRow {
        id: fixture_id(n),
        name: name.into(),
        owner: owner.into(),
        owner_id: if owner == "alice" { ALICE } else { 99 },
        profile: profile.into(),
        state: state.into(),
        age: age.into(),
        idle: idle.into(),
        viewers,
    }
}

fn recordings() -> Vec<RecordingEntry> {
    let e =
        |id: &str, user: &str, state: &str, hold: bool, bytes: i64, started: &str, cmd: &str| {
            RecordingEntry {
                id: id.into(),
                session: 1,
                user: user.into(),
                user_id: if user == "alice" { ALICE } else { 99 },
                profile: "default".into(),
                command: cmd.into(),
                started: started.into(),
                ended: None,
                exit_status: Some(0),
                state: crate::store::RecordingState::parse(state),
                path: String::new(),
                bytes,
                key_id: "648aa5c5".into(),
                hold,
            }
        };
    vec![
        e(
            "2314c1a86c1fbc1e",
            "alice",
            "complete",
            false,
            586,
            "2026-11-23T02:15:11.000Z",
            "bash",
        ),
        e(
            "8bca590d48c6b62a",
            "bob",
            "recording",
            false,
            2_400_000,
            "2026-11-22T18:02:40.000Z",
            "claude",
        ),
        e(
            "0f3e11aa29b7c400",
            "alice",
            "complete",
            true,
            48_000,
            "2026-11-20T09:30:00.000Z",
            "make test",
        ),
    ]
}

fn player() -> Player {
    let header = format::tests::header(&[1u8; 32]);
    let mut events = Vec::new();
    for i in 0..30u64 {
        events.push(Event {
            at_us: i * 1_000_000,
            kind: format::OUTPUT,
            data: format!("$ step {i}\r\nbuilding part {i} ... ok\r\n").into_bytes(),
        });
    }
    events.insert(
        10,
        Event {
            at_us: 9_500_000,
            kind: format::MARKER,
            data: b"tests start".to_vec(),
        },
    );
    // Connections on the timeline (`^`): one made, one refused; the latest before the
    // point played is named under the bar.
    let net = |at_us: u64, event: &str, v: serde_json::Value| Event {
        at_us,
        kind: format::NET,
        data: crate::record::timeline::timeline_entry(event, v),
    };
    let exec = |at_us: u64, argv: &[&str], outcome: &str| {
        Event {
        at_us,
        kind: format::EXEC,
        data: serde_json::json!({"event": "exec", "pid": 3, "ppid": 2, "path": argv[0], "argv": argv, "argc": argv.len(), "cwd": "/work", "outcome": outcome})
            .to_string()
            .into_bytes(),
    }
    };
    events.insert(
        3,
        exec(2_100_000, &["cargo", "build", "--release"], "allowed"),
    );
    events.insert(
        9,
        exec(7_300_000, &["python3", "-c", "import os"], "refused"),
    );
    events.insert(6, net(5_200_000, "open", serde_json::json!({"host": "api.anthropic.com", "port": 443, "allowed": true, "verdict": "allow api.anthropic.com"})));
    events.insert(13, net(11_000_000, "connect", serde_json::json!({"host": "evil.example", "port": 443, "allowed": false, "verdict": "no rule names it"})));
    let mut p = Player::new(
        "2314c1a86c1fbc1e".into(),
        "alice".into(),
        Recording {
            header,
            events,
            ending: format::Ending::Complete,
        },
        2.0,
    );
    p.find("part 2");
    p.seek(12_000_000);
    p
}

fn render(app: &App, (w, h): (u16, u16)) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::draw(f, app)).unwrap();
    t.backend().to_string()
}

fn snapshots(name: &str, app: &mut App) {
    for size in SIZES {
        app.size = size;
        insta::assert_snapshot!(format!("{name}_{}x{}", size.0, size.1), render(app, size));
    }
}

#[test]
fn sessions_view() {
    let (_d, mut a) = app(Role::Developer);
    snapshots("sessions", &mut a);
    a.selected = 2;
    a.status = "detached from session refactor-auth (krvqkebz)".into();
    snapshots("sessions_other_owner_selected", &mut a);
}

#[test]
fn sessions_view_without_sessions_offers_only_what_the_role_may_do() {
    let (_d, mut a) = app(Role::Viewer);
    a.sessions.clear();
    a.preview.clear();
    snapshots("sessions_empty_viewer", &mut a);
}

#[test]
fn a_refused_new_session_keeps_what_was_typed_and_says_why_escaped() {
    let (_d, mut a) = app(Role::Developer);
    a.key(super::keys::Key::Char('n'));
    for c in "/etc\u{1b}[2J".chars() {
        a.key(super::keys::Key::Char(c));
    }
    // Focus is on the profile; the workspace is the next field.
    let Some(Dialog::New { fields, .. }) = &a.dialog else {
        panic!("no dialog")
    };
    assert_eq!(
        fields[0].text, "",
        "typing on the profile row edits nothing"
    );
    a.key(super::keys::Key::Tab);
    for c in "/etc\u{1b}[2J".chars() {
        a.key(super::keys::Key::Char(c));
    }
    a.key(super::keys::Key::Tab);
    for c in "mine".chars() {
        a.key(super::keys::Key::Char(c));
    }
    a.key(super::keys::Key::Enter);
    let Some(Dialog::New {
        fields,
        error: Some(error),
        places,
        ..
    }) = &a.dialog
    else {
        panic!("the dialog closed: {:?}", a.dialog)
    };
    assert_eq!(
        (fields[0].text.as_str(), fields[1].text.as_str()),
        ("/etc\u{1b}[2J", "mine")
    );
    assert!(error.contains("not beneath a workspace root"), "{error}");
    assert!(
        places.iter().any(|p| p.contains("-workspaces/alice")),
        "{places:?}"
    );
    let screen = render(&a, (80, 24));
    assert!(!screen.contains('\u{1b}'), "{screen}");
    assert!(screen.contains("/etc\\x1b[2J"), "{screen}");
}

#[test]
fn new_session_dialog() {
    let (_d, mut a) = app(Role::Developer);
    a.dialog = Some(Dialog::New {
        profiles: vec![
            "claude".into(),
            "default".into(),
            "readonly".into(),
            "strict".into(),
        ],
        profile: 1,
        fields: vec![
            Field {
                label: "workspace",
                text: "api".into(),
            },
            Field {
                label: "name",
                text: "fix-login".into(),
            },
            Field {
                label: "command",
                text: String::new(),
            },
        ],
        focus: 2,
        places: super::app::workspace_words(&crate::service::WorkspaceChoices {
            default: "/home/alice/src/app".into(),
            area: "/var/lib/cordon-workspaces/alice".into(),
            granted: vec!["/srv/projects/alice".into()],
        }),
        error: None,
    });
    snapshots("new_session_dialog", &mut a);
    a.dialog = Some(Dialog::ConfirmEnd {
        id: fixture_id(2),
        name: "alice-2".into(),
    });
    snapshots("end_session_dialog", &mut a);
}

#[test]
fn help_overlay() {
    let (_d, mut a) = app(Role::Developer);
    a.help = true;
    snapshots("help", &mut a);
}

#[test]
fn recordings_view_and_filter() {
    let (_d, mut a) = app(Role::Auditor);
    a.tab = Tab::Recordings;
    a.recordings = recordings();
    a.rec_selected = 1;
    snapshots("recordings", &mut a);
    a.filter = "alice".into();
    a.rec_selected = 0;
    snapshots("recordings_filtered", &mut a);
    a.dialog = Some(Dialog::Prompt {
        purpose: Prompt::Search,
        field: Field {
            label: "search recordings for",
            text: "panic".into(),
        },
        before: "alice".into(),
    });
    snapshots("recordings_search_prompt", &mut a);
}

#[test]
fn replay_player() {
    let (_d, mut a) = app(Role::Auditor);
    a.tab = Tab::Recordings;
    a.player = Some(player());
    a.status = "3 places where \"part 2\" appeared; n / N to go between them".into();
    snapshots("player", &mut a);
    a.help = true;
    snapshots("player_help", &mut a);
}

#[test]
fn a_network_question_waits_in_a_dialog_with_its_three_answers() {
    let (_d, mut a) = app(Role::Developer);
    a.dialog = Some(Dialog::Ask(crate::service::QuestionInfo {
        session: fixture_id(3),
        session_name: "alice-3".into(),
        ask: 1,
        protocol: "connect".into(),
        host: "pkg.example.org".into(),
        port: 443,
        asked: "2026-12-01T17:00:00.000Z".into(),
        seconds_left: 52,
    }));
    snapshots("network_question", &mut a);
}

#[test]
fn audit_view() {
    let (_d, mut a) = app(Role::Auditor);
    a.tab = Tab::Audit;
    a.audit = vec![
        serde_json::json!({"seq": 42, "time": "2026-11-23T02:15:20.120Z", "event": "recording.search", "actor": "carol", "pattern": "secret", "hits": 2}),
        serde_json::json!({"seq": 41, "time": "2026-11-23T02:15:11.002Z", "event": "session.observe", "actor": "carol", "session": 1, "address": "127.0.0.1:50122"}),
        serde_json::json!({"seq": 40, "time": "2026-11-23T02:14:58.700Z", "event": "session.create", "actor": "alice", "session": 1, "profile": "default", "command": "bash"}),
        serde_json::json!({"seq": 39, "time": "2026-11-23T02:14:51.330Z", "event": "login", "actor": "alice", "method": "publickey", "address": "127.0.0.1:50120"}),
    ];
    a.chain = Some(Ok(42));
    snapshots("audit", &mut a);
    a.chain = Some(Err("line 17: the MAC does not match".into()));
    a.audit_selected = 1;
    snapshots("audit_broken", &mut a);
}

#[test]
fn admin_view() {
    let (_d, mut a) = app(Role::Admin);
    a.tab = Tab::Admin;
    let user = |name: &str, role: Role, locked: bool| User {
        id: 1,
        name: name.into(),
        role,
        locked,
        created: "2026-11-20T10:00:00.000Z".into(),
    };
    a.users = vec![
        UserInfo {
            user: user("alice", Role::Admin, false),
            keys: 2,
            password: true,
        },
        UserInfo {
            user: user("bob", Role::Developer, false),
            keys: 1,
            password: false,
        },
        UserInfo {
            user: user("carol", Role::Auditor, true),
            keys: 1,
            password: false,
        },
    ];
    a.profiles = vec![
        ("base".into(), "admin".into()),
        ("claude".into(), "admin, developer".into()),
        ("default".into(), "admin, developer".into()),
        ("strict".into(), "admin, developer".into()),
    ];
    snapshots("admin", &mut a);
}

#[test]
fn every_view_fits_the_smallest_terminal_it_supports() {
    let (_d, mut a) = app(Role::Admin);
    for tab in [Tab::Sessions, Tab::Recordings, Tab::Audit, Tab::Admin] {
        a.tab = tab;
        // Tiny terminals must not panic (ratatui clips).
        render(&a, (20, 6));
        render(&a, (80, 24));
    }
    a.player = Some(player());
    a.help = true;
    a.dialog = Some(Dialog::Rename {
        id: fixture_id(1),
        field: Field {
            label: "name",
            text: "x".repeat(300),
        },
    });
    for size in [(20, 6), (1, 1), (300, 100)] {
        render(&a, size);
    }
    let _ = Arc::clone(&a.svc);
}

#[test]
fn the_secrets_dialog_sets_a_secret_from_a_masked_field_and_never_draws_its_value() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Developer);
    let value = "sk-tui-0123456789";
    a.key(Key::Char('S'));
    assert!(
        matches!(a.dialog, Some(Dialog::Secrets { .. })),
        "{}",
        a.status
    );
    a.key(Key::Char('a'));
    for c in "API_KEY".chars() {
        a.key(Key::Char(c));
    }
    a.key(Key::Tab);
    for c in value.chars() {
        a.key(Key::Char(c));
    }
    snapshots("secrets_dialog_form", &mut a);
    for size in SIZES {
        assert!(!render(&a, size).contains(value));
    }
    a.key(Key::Enter);
    assert_eq!(a.status, "secret API_KEY set (alice)");
    // Listed by name and date (the date changes: no snapshot), never by value.
    let drawn = render(&a, (80, 24));
    assert!(
        drawn.contains("API_KEY") && !drawn.contains(value),
        "{drawn}"
    );
    let list = a
        .svc
        .secrets(&a.me, &crate::service::Scope::User("alice".into()))
        .unwrap();
    assert_eq!(list.len(), 1);
    a.key(Key::Char('d'));
    assert_eq!(a.status, "secret API_KEY removed");
    a.key(Key::Esc);
    assert!(a.dialog.is_none());
}

/// A summary of files changed as a session's end would make it: every kind of entry, a
/// path with an escape sequence in it, a placeholder left out, a directory not entered.
fn files_summary() -> crate::changes::Summary {
    use crate::changes::snapshot::Kind;
    use crate::changes::summary::{Change, Entry};
    use crate::changes::{Summary, Taken};
    let entry = |path: &str, kind, old_size, size, change| Entry {
        path: path.into(),
        kind,
        old_kind: None,
        size,
        old_size,
        change,
    };
    let mut s = Summary::empty(
        Taken::Now,
        "/srv/cordon/workspaces/alice",
        "2026-11-23T02:15:11.000Z",
        "2026-11-23T02:31:40.000Z",
    );
    s.created = vec![
        entry("notes.txt", Kind::File, None, Some(17), None),
        entry("src/auth", Kind::Dir, None, None, None),
        entry("src/auth/token.rs", Kind::File, None, Some(4_812), None),
        entry(
            "evil\u{1b}]52;c;QQ==\u{7}.txt",
            Kind::File,
            None,
            Some(3),
            None,
        ),
    ];
    s.changed = vec![
        entry(
            "Cargo.toml",
            Kind::File,
            Some(412),
            Some(468),
            Some(Change::Content),
        ),
        entry("run.sh", Kind::File, Some(90), Some(90), Some(Change::Mode)),
        Entry {
            old_kind: Some(Kind::File),
            ..entry("build", Kind::Dir, Some(5), None, Some(Change::Type))
        },
    ];
    s.deleted = vec![entry("src/auth.rs", Kind::File, Some(2_300), None, None)];
    s.counts = crate::changes::summary::Counts {
        created: 4,
        changed: 3,
        deleted: 1,
    };
    s.bytes = crate::changes::summary::Bytes {
        created: 4_832,
        deleted: 2_300,
        changed: 51,
    };
    s.excluded = vec![".git".into()];
    s.unseen = vec![
        "target/: not entered (a mount point or another file system): nothing in it is compared"
            .into(),
    ];
    s.complete = false;
    s
}

#[test]
fn files_dialog() {
    let (_d, mut a) = app(Role::Developer);
    a.dialog = Some(Dialog::Files {
        title: " Files changed so far · refactor-auth · #1 ".into(),
        lines: files_summary().lines(),
        scroll: 0,
    });
    snapshots("files_dialog", &mut a);
}

const BOB_LAPTOP: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFwt4zGYPTIlugOAY9EeaGVJQcA2thKOj0P+gmGy41V0 bob@laptop";
const BOB_DESK: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDLwsL8aH3CBn4gx09HZTvqZnUG08iPEscPSC87pfrxl bob@desk";

/// The users' creation dates as in every run (the store's are today's): for snapshots.
fn same_dates(a: &mut App) {
    for u in &mut a.users {
        u.user.created = "2026-11-20T10:00:00.000Z".into();
    }
}

fn typed(a: &mut App, text: &str) {
    for c in text.chars() {
        a.key(super::keys::Key::Char(c));
    }
}

fn bob(a: &App) -> Option<UserInfo> {
    a.svc
        .users(&a.me)
        .unwrap()
        .into_iter()
        .find(|u| u.user.name == "bob")
}

#[test]
fn the_admin_view_adds_a_user_with_a_key_changes_their_role_and_manages_their_keys() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Admin);
    a.switch(Tab::Admin);
    // Add bob, a developer by default, with a key pasted into the dialog.
    a.key(Key::Char('a'));
    typed(&mut a, "bob");
    a.key(Key::Tab);
    a.key(Key::Tab);
    typed(&mut a, BOB_LAPTOP);
    same_dates(&mut a);
    snapshots("admin_add_user", &mut a);
    a.key(Key::Enter);
    assert!(a.dialog.is_none(), "{}", a.status);
    let b = bob(&a).expect("bob was added");
    assert_eq!((b.user.role, b.keys), (Role::Developer, 1));
    assert_eq!(a.status, "bob added as a developer with 1 key");

    // Adding him again is refused in the dialog, which keeps what was typed.
    a.key(Key::Char('a'));
    typed(&mut a, "bob");
    a.key(Key::Enter);
    assert!(
        matches!(&a.dialog, Some(Dialog::Admin(super::admin::AdminDialog::AddUser { error: Some(e), name, .. }))
            if e.contains("already") && name.text == "bob"),
        "{:?}",
        a.dialog
    );
    a.key(Key::Esc);
    assert!(a.dialog.is_none());

    // His role: auditor, two down from developer.
    a.user_selected = a.users.iter().position(|u| u.user.name == "bob").unwrap();
    a.key(Key::Char('r'));
    a.key(Key::Down);
    same_dates(&mut a);
    snapshots("admin_role", &mut a);
    a.key(Key::Enter);
    assert_eq!(bob(&a).unwrap().user.role, Role::Auditor);
    // Esc in the role dialog changes nothing.
    a.key(Key::Char('r'));
    a.key(Key::Up);
    a.key(Key::Esc);
    assert_eq!(bob(&a).unwrap().user.role, Role::Auditor);

    // His keys: add a second, refuse a bad one, remove the first after asking.
    a.key(Key::Char('K'));
    a.key(Key::Char('a'));
    typed(&mut a, "ssh-ed25519 not-a-key");
    a.key(Key::Enter);
    assert!(
        matches!(
            &a.dialog,
            Some(Dialog::Admin(super::admin::AdminDialog::Keys {
                error: Some(_),
                adding: Some(_),
                ..
            }))
        ),
        "{:?}",
        a.dialog
    );
    a.key(Key::Ctrl('u'));
    typed(&mut a, BOB_DESK);
    a.key(Key::Enter);
    assert_eq!(bob(&a).unwrap().keys, 2);
    a.key(Key::Up);
    a.key(Key::Char('d'));
    same_dates(&mut a);
    snapshots("admin_keys_remove", &mut a);
    // Any key but y keeps it.
    a.key(Key::Char('n'));
    assert_eq!(bob(&a).unwrap().keys, 2);
    a.key(Key::Char('d'));
    a.key(Key::Char('y'));
    let left = a.svc.keys(&a.me, "bob").unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].comment, "bob@desk");
    a.key(Key::Esc);
    assert!(a.dialog.is_none());
}

#[test]
fn the_admin_view_removes_a_user_only_after_y_and_never_the_last_admin() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Admin);
    a.svc
        .add_user(&a.me, "bob", Role::Developer, &[BOB_LAPTOP.to_string()])
        .unwrap();
    a.switch(Tab::Admin);
    a.user_selected = a.users.iter().position(|u| u.user.name == "bob").unwrap();
    a.key(Key::Char('D'));
    same_dates(&mut a);
    snapshots("admin_remove", &mut a);
    // Keys the footer does not name do nothing; n keeps him.
    a.key(Key::Enter);
    assert!(a.dialog.is_some());
    a.key(Key::Char('n'));
    assert!(a.dialog.is_none() && bob(&a).is_some());
    a.key(Key::Char('D'));
    a.key(Key::Char('y'));
    assert!(bob(&a).is_none(), "{}", a.status);
    // alice is the last admin: refused, said in the dialog.
    a.user_selected = a.users.iter().position(|u| u.user.name == "alice").unwrap();
    a.key(Key::Char('D'));
    a.key(Key::Char('y'));
    assert!(
        matches!(&a.dialog, Some(Dialog::Admin(super::admin::AdminDialog::Remove { error: Some(e), .. })) if e.contains("last active admin")),
        "{:?}",
        a.dialog
    );
}

/// A session of alice's running `command` (unconfined: see `sessions::Launcher`).
fn start(a: &App, command: &[&str]) -> Arc<crate::sessions::Session> {
    let req = crate::service::NewSession {
        command: command.iter().map(|w| w.to_string()).collect(),
        cols: 80,
        rows: 24,
        term: "xterm".into(),
        ..Default::default()
    };
    a.svc.create_session(&a.me, req).expect("a session")
}

/// Waits until `f` holds (a session's output, its end).
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(t.elapsed().as_secs() < 10, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The footer's text at 160 columns (wide enough for every dialog's keys).
fn footer(a: &App) -> String {
    render(a, (160, 48))
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn q_in_the_embedded_tui_asks_before_ending_running_sessions_and_does_what_its_footer_says() {
    use super::app::Effect;
    use super::keys::Key;
    let (_d, mut a) = app(Role::Developer);
    a.quitting = super::Quitting::EndsSessions;
    // No session running: q quits at once.
    assert!(matches!(a.key(Key::Char('q')), Effect::Quit));
    let s = start(&a, &["cat"]);
    assert!(matches!(a.key(Key::Char('q')), Effect::None));
    assert!(
        matches!(a.dialog, Some(Dialog::ConfirmQuit { running: 1 })),
        "{:?}",
        a.dialog
    );
    let f = footer(&a);
    assert!(
        f.contains("y Enter end them and quit") && f.contains("n Esc stay"),
        "{f}"
    );
    // n and Esc stay; a stray key neither quits nor closes the question.
    for stay in [Key::Char('n'), Key::Esc] {
        a.key(Key::Char('q'));
        assert!(matches!(a.key(stay), Effect::None));
        assert!(a.dialog.is_none(), "{stay:?} closes the dialog");
    }
    a.key(Key::Ctrl('c'));
    assert!(matches!(a.key(Key::Char('x')), Effect::None));
    assert!(matches!(a.dialog, Some(Dialog::ConfirmQuit { .. })));
    // y and Enter quit.
    assert!(matches!(a.key(Key::Enter), Effect::Quit));
    a.key(Key::Char('q'));
    assert!(matches!(a.key(Key::Char('y')), Effect::Quit));
    assert!(
        s.exit_status().is_none(),
        "the TUI's loop ends them, not the key"
    );
    // Over SSH or `cordon tui` the sessions live on: q quits at once.
    a.dialog = None;
    a.quitting = super::Quitting::LeavesSessions;
    assert!(matches!(a.key(Key::Char('q')), Effect::Quit));
    s.kill();
}

#[test]
fn quit_dialog() {
    let (_d, mut a) = app(Role::Developer);
    a.dialog = Some(Dialog::ConfirmQuit { running: 2 });
    snapshots("quit_dialog", &mut a);
}

#[test]
fn the_end_session_dialog_ends_on_y_or_enter_and_keeps_on_n_or_esc() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Developer);
    let s = start(&a, &["cat"]);
    a.refresh();
    a.selected = a.sessions.iter().position(|r| r.id == s.id).unwrap();
    for keep in [Key::Char('n'), Key::Esc] {
        a.key(Key::Char('x'));
        assert!(matches!(a.dialog, Some(Dialog::ConfirmEnd { .. })));
        let f = footer(&a);
        assert!(
            f.contains("y Enter end it") && f.contains("n Esc keep it"),
            "{f}"
        );
        a.key(Key::Char('a'));
        assert!(
            matches!(a.dialog, Some(Dialog::ConfirmEnd { .. })),
            "a stray key neither ends nor keeps"
        );
        a.key(keep);
        assert!(a.dialog.is_none());
        assert!(
            s.exit_status().is_none() && !s.ending(),
            "{keep:?} keeps it"
        );
    }
    a.key(Key::Char('x'));
    a.key(Key::Enter);
    assert_eq!(a.status, format!("session {} ended", s.id.short()));
    until("the session's end", || s.exit_status().is_some());
}

#[test]
fn the_rename_dialog_renames_on_enter_and_cancels_on_esc() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Developer);
    let s = start(&a, &["cat"]);
    a.refresh();
    a.selected = a.sessions.iter().position(|r| r.id == s.id).unwrap();
    let name = s.name();
    a.key(Key::Char('r'));
    let f = footer(&a);
    assert!(
        f.contains("Enter rename") && f.contains("Esc cancel"),
        "{f}"
    );
    a.key(Key::Char('x'));
    a.key(Key::Esc);
    assert!(a.dialog.is_none());
    assert_eq!(s.name(), name, "Esc renames nothing");
    a.key(Key::Char('r'));
    a.key(Key::Ctrl('u'));
    for c in "build".chars() {
        a.key(Key::Char(c));
    }
    a.key(Key::Enter);
    assert_eq!(s.name(), "build");
    s.kill();
}

#[test]
fn the_new_session_dialog_moves_between_fields_and_esc_starts_nothing() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Developer);
    a.key(Key::Char('n'));
    let f = footer(&a);
    assert!(
        f.contains("Tab ↑↓ field")
            && f.contains("←→ Space profile")
            && f.contains("Enter start")
            && f.contains("Esc cancel"),
        "{f}"
    );
    let profile = |a: &App| match &a.dialog {
        Some(Dialog::New { profile, focus, .. }) => (*profile, *focus),
        d => panic!("{d:?}"),
    };
    let (first, _) = profile(&a);
    a.key(Key::Right);
    assert_ne!(profile(&a).0, first, "→ changes the profile");
    a.key(Key::Tab);
    assert_eq!(profile(&a).1, 1, "Tab: the next field");
    assert!(!footer(&a).contains("profile"), "←→ only on the profile");
    a.key(Key::Up);
    assert_eq!(profile(&a).1, 0, "↑: the one before");
    a.key(Key::Esc);
    assert!(a.dialog.is_none());
    assert!(
        a.svc.sessions(&a.me).unwrap().is_empty(),
        "Esc starts nothing"
    );
}

#[test]
fn a_filter_prompt_keeps_the_filter_on_enter_and_puts_the_old_one_back_on_esc() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Auditor);
    a.tab = Tab::Recordings;
    a.recordings = recordings();
    a.key(Key::Char('/'));
    let f = footer(&a);
    assert!(
        f.contains("Enter filter") && f.contains("Esc cancel"),
        "{f}"
    );
    for c in "bob".chars() {
        a.key(Key::Char(c));
    }
    assert_eq!(
        a.visible_recordings().len(),
        1,
        "the list follows the typing"
    );
    a.key(Key::Enter);
    assert_eq!(a.filter, "bob");
    a.key(Key::Char('/'));
    a.key(Key::Backspace);
    a.key(Key::Esc);
    assert_eq!(a.filter, "bob", "Esc cancels the change");
    a.key(Key::Char('s'));
    let f = footer(&a);
    assert!(
        f.contains("Enter search") && f.contains("Esc cancel"),
        "{f}"
    );
    a.key(Key::Char('x'));
    a.key(Key::Esc);
    assert!(a.dialog.is_none() && a.player.is_none());
}

#[test]
fn the_files_dialog_scrolls_and_closes_on_each_key_its_footer_names() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Developer);
    for close in [Key::Char('q'), Key::Enter, Key::Esc] {
        a.dialog = Some(Dialog::Files {
            title: " Files ".into(),
            lines: files_summary().lines(),
            scroll: 0,
        });
        let f = footer(&a);
        assert!(
            f.contains("↑↓ PgUp PgDn g G scroll") && f.contains("q Enter Esc close"),
            "{f}"
        );
        a.key(Key::Down);
        a.key(Key::PageDown);
        a.key(Key::Char('G'));
        let Some(Dialog::Files { scroll, lines, .. }) = &a.dialog else {
            panic!()
        };
        assert_eq!(*scroll, lines.len() - 1);
        a.key(Key::Char('g'));
        assert!(matches!(a.dialog, Some(Dialog::Files { scroll: 0, .. })));
        a.key(close);
        assert!(a.dialog.is_none(), "{close:?} closes it");
    }
}

#[test]
fn a_network_question_is_answered_by_its_keys_and_put_aside_by_esc() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Developer);
    let q = crate::service::QuestionInfo {
        session: fixture_id(3),
        session_name: "alice-3".into(),
        ask: 1,
        protocol: "connect".into(),
        host: "pkg.example.org".into(),
        port: 443,
        asked: "2026-12-01T17:00:00.000Z".into(),
        seconds_left: 52,
    };
    a.dialog = Some(Dialog::Ask(q.clone()));
    let f = footer(&a);
    assert!(
        f.contains("o allow once")
            && f.contains("s allow for the session")
            && f.contains("d deny")
            && f.contains("Esc later"),
        "{f}"
    );
    a.key(Key::Char('x'));
    assert!(matches!(a.dialog, Some(Dialog::Ask(_))), "not an answer");
    a.key(Key::Esc);
    assert!(
        a.dialog.is_none() && a.status.contains("put aside"),
        "{}",
        a.status
    );
    a.dialog = Some(Dialog::Ask(q));
    a.key(Key::Char('d'));
    // Session 3 is not there to answer: the dialog closes and says why.
    assert!(a.dialog.is_none());
    assert!(!a.status.is_empty());
}

#[test]
fn the_secrets_dialog_offers_only_what_the_role_may_change() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Developer);
    a.key(Key::Char('S'));
    let f = footer(&a);
    assert!(
        f.contains("a add") && f.contains("d remove") && f.contains("Esc close"),
        "{f}"
    );
    a.key(Key::Char('a'));
    let f = footer(&a);
    assert!(
        f.contains("Enter next field") && f.contains("Esc cancel"),
        "{f}"
    );
    a.key(Key::Tab);
    assert!(footer(&a).contains("Enter save"));
    a.key(Key::Esc);
    assert!(
        matches!(a.dialog, Some(Dialog::Secrets { form: None, .. })),
        "Esc cancels the form, back to the list"
    );
    a.key(Key::Esc);
    assert!(a.dialog.is_none());
}

#[test]
fn scrolling_the_preview_back_shows_lines_that_scrolled_off_and_holds_still() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Developer);
    let s = start(
        &a,
        &[
            "sh",
            "-c",
            "i=1; while [ $i -le 100 ]; do echo line $i; i=$((i+1)); done; exec cat",
        ],
    );
    a.refresh();
    a.selected = a.sessions.iter().position(|r| r.id == s.id).unwrap();
    until("the last line", || {
        a.refresh();
        a.preview.iter().any(|l| l.trim_end() == "line 100")
    });
    assert!(!a.preview.iter().any(|l| l.trim_end() == "line 60"));
    let f = footer(&a);
    assert!(f.contains("PgUp PgDn scroll"), "{f}");
    a.key(Key::PageUp);
    a.key(Key::PageUp);
    a.key(Key::PageUp);
    assert!(
        a.preview_back > 0 && a.preview_most >= 76,
        "{} {}",
        a.preview_back,
        a.preview_most
    );
    assert!(
        !a.preview.iter().any(|l| l.trim_end() == "line 100"),
        "{:?}",
        a.preview
    );
    let shown = render(&a, (80, 24));
    assert!(shown.contains("lines back"), "{shown}");
    let first: usize = a.preview[0]
        .trim_start_matches("line ")
        .trim()
        .parse()
        .unwrap();
    assert!(first < 77, "a line that scrolled off the screen: {first}");
    // Held while scrolled back: the preview does not follow the session.
    s.input(b"more\n").unwrap();
    until("the echo", || {
        s.screen_window(0, 24)
            .lines
            .iter()
            .any(|l| l.trim_end() == "more")
    });
    let held = a.preview.clone();
    a.tick();
    assert_eq!(a.preview, held);
    // Back to the top of what is kept, and live again.
    for _ in 0..20 {
        a.key(Key::PageUp);
    }
    assert_eq!(a.preview[0].trim_end(), "line 1");
    a.key(Key::Esc);
    assert_eq!(a.preview_back, 0);
    assert!(a.preview.iter().any(|l| l.trim_end() == "more"));
    s.kill();
}

#[test]
fn preview_scrolled_back() {
    let (_d, mut a) = app(Role::Developer);
    a.preview = (40..52).map(|i| format!("test t{i} ... ok")).collect();
    a.preview_back = 31;
    a.preview_most = 88;
    snapshots("preview_scrolled_back", &mut a);
}

#[test]
fn the_player_scrolls_back_through_lines_that_scrolled_off_and_plays_on_from_live() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Auditor);
    a.tab = Tab::Recordings;
    a.player = Some(player());
    let live = a.player.as_ref().unwrap().rows();
    assert!(!live.iter().any(|l| l.contains("step 0")), "{live:?}");
    a.key(Key::PageUp);
    a.key(Key::PageUp);
    a.key(Key::PageUp);
    let p = a.player.as_ref().unwrap();
    assert!(!p.playing, "scrolling back pauses");
    let back = p.back.as_ref().expect("scrolled back");
    assert!(back.back > 0);
    assert!(
        p.rows().iter().any(|l| l.contains("step 0")),
        "{:?}",
        p.rows()
    );
    for size in SIZES {
        a.resize(size);
        insta::assert_snapshot!(
            format!("player_scrolled_back_{}x{}", size.0, size.1),
            render(&a, size)
        );
    }
    a.key(Key::Char(' '));
    let p = a.player.as_ref().unwrap();
    assert!(p.back.is_none() && p.playing, "Space plays on, from live");
}

#[test]
fn the_notice_on_attaching_names_the_session_goes_at_a_key_and_leaves_no_trace_behind() {
    use super::ask_line::AskLine;
    let (_d, a) = app(Role::Developer);
    let s = start(
        &a,
        &[
            "sh",
            "-c",
            "printf ready; read x; printf '\\033[?25l\\033[?1049hALT'; exec cat",
        ],
    );
    until("the program", || {
        s.screen_window(0, 24)
            .lines
            .iter()
            .any(|l| l.contains("ready"))
    });
    let (s, v) = a.svc.attach(&a.me, &s.id.to_string(), true).unwrap();
    let n = std::num::NonZeroU16::new;
    let mut client = vt100::Parser::new(n(24).unwrap(), n(80).unwrap(), 0);
    let last_row = |c: &vt100::Parser| c.screen().rows(0, 80).nth(23).unwrap_or_default();
    let mut line = AskLine::new(&s, &v, "ctrl-\\");
    client.process(&line.drain(&s, &v));
    let want = format!(
        "[cordon] attached to \"{}\" (id {}) \u{2014} ctrl-\\ detaches",
        s.name(),
        s.id.short()
    );
    assert!(
        last_row(&client).starts_with(&want),
        "{:?}",
        last_row(&client)
    );
    assert!(client.screen().contents().contains("ready"));
    assert!(line.due().is_some(), "it goes by itself too");
    // A key for the program ends it; the program then takes the alternate screen.
    assert_eq!(line.key(b"\n"), super::ask_line::KeyOutcome::Pass);
    assert!(line.due().is_some_and(|at| at <= std::time::Instant::now()));
    s.input(b"\n").unwrap();
    until("the alternate screen", || {
        s.screen_window(0, 24)
            .lines
            .iter()
            .any(|l| l.contains("ALT"))
    });
    client.process(&line.drain(&s, &v));
    assert!(client.screen().alternate_screen() && client.screen().hide_cursor());
    assert!(
        !last_row(&client).contains("[cordon]"),
        "gone from the screen in use"
    );
    // Leaving: the terminal given back, and the main screen without the notice drawn on it
    // before the program left it.
    client.process(&line.leave(&s, &v));
    a.svc.detach(&a.me, &s, &v);
    let screen = client.screen();
    assert!(!screen.alternate_screen() && !screen.hide_cursor());
    assert!(
        !last_row(&client).contains("[cordon]"),
        "{:?}",
        last_row(&client)
    );
    assert!(client.screen().contents().contains("ready"));
    s.kill();
}

#[test]
fn the_admin_views_lockdown_dialog_begins_and_ends_a_lockdown_and_a_banner_says_so() {
    use super::keys::Key;
    let (_d, mut a) = app(Role::Admin);
    a.tab = Tab::Admin;
    a.key(Key::Char('L'));
    assert!(
        matches!(
            a.dialog,
            Some(Dialog::Admin(super::admin::AdminDialog::Lockdown {
                on: false,
                ..
            }))
        ),
        "{}",
        a.status
    );
    for c in "drill".chars() {
        a.key(Key::Char(c));
    }
    a.key(Key::Tab);
    a.key(Key::Enter);
    assert!(a.dialog.is_none(), "{}", a.status);
    let l = a.svc.lockdown_status(&a.me).unwrap().expect("in lockdown");
    assert_eq!(l.reason, "drill");
    assert_eq!(l.sessions, crate::service::LockdownSessions::End);
    assert!(render(&a, (80, 24)).contains("LOCKDOWN"), "the banner");
    a.key(Key::Char('L'));
    assert!(matches!(
        a.dialog,
        Some(Dialog::Admin(super::admin::AdminDialog::Lockdown {
            on: true,
            ..
        }))
    ));
    a.key(Key::Char('y'));
    assert!(
        a.svc.lockdown_status(&a.me).unwrap().is_none(),
        "{}",
        a.status
    );
    assert!(!render(&a, (80, 24)).contains("LOCKDOWN"));
}
