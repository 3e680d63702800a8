//! The hub with real PTYs and real commands (started unconfined: see [`Launcher`]), driven
//! as the faces drive it: output reaches viewers, input reaches the command, a slow viewer
//! costs bounded memory, the viewer limit holds, and an ended session is gone with its tree.

use std::time::{Duration, Instant};

use super::*;
use crate::paths::DataDir;

struct Fixture {
    dir: tempfile::TempDir,
    hub: Arc<Hub>,
}

fn hub() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("data"));
    data.ensure().unwrap();
    let store = Arc::new(Store::open(&data.database()).unwrap());
    let audit =
        Arc::new(AuditLog::open(&data.audit_log(), vec![7; 32], Default::default(), true).unwrap());
    let recorder = Arc::new(
        Recorder::new(
            data.root.join("recordings"),
            crate::record::Keyring::new(crate::keys::Keys::for_tests(&data)),
            crate::record::FailurePolicy::Strict,
            false,
            false,
        )
        .unwrap(),
    );
    let hub = Hub::new(Launcher::Unconfined, Vec::new(), audit, recorder, store);
    Fixture { dir, hub }
}

impl Fixture {
    fn start(&self, command: &[&str]) -> Arc<Session> {
        self.start_with(command, |_| {})
    }

    /// A session of `command`, its spec changed by `edit` first.
    fn start_with(&self, command: &[&str], edit: impl FnOnce(&mut Spec)) -> Arc<Session> {
        let mut spec = Spec {
            owner: "alice".into(),
            owner_id: 1,
            name: String::new(),
            confinement: Confinement {
                profile: "default".into(),
                workspace: self.dir.path().to_path_buf(),
                home: self.dir.path().to_path_buf(),
                account: None,
                user: "alice".into(),
                secrets: Default::default(),
            },
            command: command.iter().map(|s| s.to_string()).collect(),
            cols: 80,
            rows: 24,
            term: "xterm".into(),
            files: Err("not walked in these tests".into()),
        };
        edit(&mut spec);
        self.hub.create(spec).unwrap()
    }
}

/// Waits (at most 20 s) until `done` holds.
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn what_is_typed_reaches_the_command_and_what_it_prints_reaches_a_viewer() {
    let f = hub();
    let s = f.start(&["cat"]);
    let v = s.attach(true, 1, 4, false).unwrap();
    s.input(b"hello there\r").unwrap();
    let mut seen = Vec::new();
    until("the echo", || {
        seen.extend(v.drain());
        String::from_utf8_lossy(&seen)
            .matches("hello there")
            .count()
            >= 2
    });
    assert!(
        s.screen_window(0, 24)
            .lines
            .iter()
            .any(|r| r.contains("hello there")),
        "the screen holds it too"
    );
    s.kill();
}

#[test]
fn a_viewer_that_reads_nothing_holds_at_most_its_budget_and_then_the_screen() {
    let f = hub();
    let s = f.start(&[
        "sh",
        "-c",
        "head -c 4000000 /dev/zero | tr '\\0' x; echo; echo finished",
    ]);
    let v = s.attach(false, 1, 4, false).unwrap();
    until("the command's end", || s.exit_status().is_some());
    let queued = v.drain();
    assert!(
        queued.len() <= VIEWER_BUDGET,
        "{} bytes queued for a viewer that read nothing",
        queued.len()
    );
    let mut screen = screen::Screen::new(24, 80);
    screen.push(&queued);
    assert!(
        screen.now().contents().contains("finished"),
        "what it is sent instead of the backlog draws the screen as it is"
    );
}

#[test]
fn a_session_refuses_a_viewer_past_its_limit_and_takes_one_after_a_detach() {
    let f = hub();
    let s = f.start(&["cat"]);
    let first = s.attach(false, 1, 2, false).unwrap();
    let _second = s.attach(true, 2, 2, false).unwrap();
    let Err(refused) = s.attach(false, 3, 2, false) else {
        panic!("a third viewer joined")
    };
    assert!(
        matches!(refused, SessionError::Full { max: 2, .. }),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("[sessions] max_viewers"),
        "the message names the setting: {refused}"
    );
    s.detach(&first);
    assert!(s.attach(false, 3, 2, false).is_ok());
    s.kill();
}

#[test]
fn an_ended_session_leaves_the_hub_and_no_process_behind() {
    let f = hub();
    let s = f.start(&["sh", "-c", "sleep 1000 & sleep 1000"]);
    let group = s.pid;
    until("the shell and its two sleeps", || {
        living_in_group(group) == 3
    });
    s.kill();
    until("the session's end", || {
        s.exit_status().is_some() && f.hub.get(s.id).is_none()
    });
    until("the group's end", || living_in_group(group) == 0);
}

#[test]
fn a_session_s_summary_names_the_files_it_wrote_with_its_secrets_redacted_from_their_names() {
    let f = hub();
    let ws = f.dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let ws = ws.canonicalize().unwrap();
    std::fs::write(ws.join("before.txt"), "old").unwrap();
    let watch = crate::changes::Watch::start(&ws, &[], crate::changes::Limits::DEFAULT).unwrap();
    let s = f.start_with(
        &[
            "sh",
            "-c",
            "printf 12345 > sk-files-0123456789.txt; rm before.txt; sleep 1000",
        ],
        |spec| {
            spec.confinement.workspace = ws.clone();
            spec.confinement.secrets.given = vec![(
                "API_KEY".into(),
                zeroize::Zeroizing::new(b"sk-files-0123456789".to_vec()),
            )];
            spec.files = Ok(Arc::new(watch));
        },
    );
    let mut summary = s.files(crate::changes::Taken::Now);
    until("the file and the removal", || {
        summary = s.files(crate::changes::Taken::Now);
        summary.counts.created == 1 && summary.counts.deleted == 1
    });
    s.kill();
    let created = &summary.created[0];
    assert_eq!(
        (created.path.as_str(), created.size),
        ("[redacted].txt", Some(5))
    );
    assert_eq!(summary.deleted[0].path, "before.txt");
    assert!(!serde_json::to_string(&summary)
        .unwrap()
        .contains("sk-files-0123456789"));
}

/// Processes of process group `pgid` that are not zombies (a zombie is only waiting for
/// its new parent to reap it).
fn living_in_group(pgid: i32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter(|stat| {
            // After the command's name in parentheses: state, ppid, pgrp.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, r)| r.split_whitespace().collect())
                .unwrap_or_default();
            fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
        })
        .count()
}
