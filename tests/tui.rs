//! The TUI driven as a user drives it: over SSH (OpenSSH's `ssh` in tmux) and embedded
//! (`cordon` with no arguments in tmux), asserting on what the terminal shows.

mod hosting;

use hosting::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Waits until `win` no longer shows `text`.
fn wait_gone(h: &Host, win: &str, text: &str) -> String {
    let start = Instant::now();
    loop {
        let s = h.screen(win);
        if !s.contains(text) {
            return s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "window {win} still shows {text:?}:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_tui_over_ssh_creates_attaches_detaches_observes_and_replays() {
    let h = Host::start();
    let alice = h.user("alice", "developer");
    let carol = h.user("carol", "auditor");

    // Log in: a plain `ssh -t host` gets the TUI.
    h.tmux_ssh("alice", &alice, "alice", "");
    let s = h.wait_for("alice", "1 Sessions");
    assert!(s.contains("alice (developer)") && s.contains("n new") && !s.contains("3 Audit"), "{s}");

    // Create a session from the dialog; it opens attached.
    h.keys("alice", &["n"]);
    h.wait_for("alice", "New session");
    h.keys("alice", &["Tab", "Tab", "demo", "Tab", "bash", "Enter"]);
    h.wait_for("alice", "cordon:");
    h.keys("alice", &["echo typed-$((6*7))", "Enter"]);
    h.wait_for("alice", "typed-42");

    // Detach: back in the list, the preview shows what was typed.
    h.keys("alice", &["C-\\"]);
    let s = h.wait_for("alice", "detached from session 1 (demo)");
    assert!(s.contains("Sessions (1)") && s.contains("typed-42") && s.contains("demo"), "{s}");

    // Reattach and type again.
    h.keys("alice", &["Enter"]);
    wait_gone(&h, "alice", "Sessions (1)");
    h.keys("alice", &["echo again-$((1+1))", "Enter"]);
    h.wait_for("alice", "again-2");
    h.keys("alice", &["C-\\"]);
    h.wait_for("alice", "detached from session 1");

    // A second user observes: sees the screen, cannot type, is not offered what an auditor
    // may not do.
    h.tmux_ssh("carol", &carol, "carol", "");
    let s = h.wait_for("carol", "Sessions (1)");
    assert!(s.contains("carol (auditor)") && s.contains("o observe") && !s.contains("n new") && !s.contains("x end"), "{s}");
    h.keys("carol", &["o"]);
    let s = wait_gone(&h, "carol", "Sessions (1)");
    assert!(s.contains("again-2"), "{s}");
    h.keys("carol", &["echo carol-was-here", "Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    h.keys("carol", &["C-\\"]);
    h.wait_for("carol", "detached from session 1");
    let s = h.screen("alice");
    assert!(!s.contains("carol-was-here"), "an observer's keys reached the session:\n{s}");

    // The owner ends the session from inside it.
    h.keys("alice", &["Enter"]);
    wait_gone(&h, "alice", "Sessions (1)");
    h.keys("alice", &["exit", "Enter"]);
    h.wait_for("alice", "session 1 ended, exit status 0");

    // Replay the recording and find the typed word with search.
    h.keys("carol", &["2"]);
    h.wait_for("carol", "Recordings (1 of 1)");
    h.keys("carol", &["s"]);
    h.wait_for("carol", "search recordings for");
    h.keys("carol", &["typed-42", "Enter"]);
    let s = h.wait_for("carol", "replay ");
    assert!(s.contains("\"typed-42\": 1 matches") && s.contains("│typed-42"), "the typed word's output is found and shown: {s}");
    // Export for asciinema, into the auditor's own exports folder.
    h.keys("carol", &["q"]);
    h.wait_for("carol", "Recordings (1 of 1)");
    h.keys("carol", &["e"]);
    h.wait_for("carol", "exported for asciinema");
    let exports: Vec<_> = std::fs::read_dir(h.data.path().join("workspaces/carol/exports")).unwrap().flatten().collect();
    assert_eq!(exports.len(), 1);
    let cast = std::fs::read_to_string(exports[0].path()).unwrap();
    assert!(cast.lines().next().unwrap().contains("\"version\":2") && cast.contains("typed-42"), "{cast}");
    h.keys("carol", &["q"]);
    let s = wait_gone(&h, "carol", "Recordings");
    assert!(!s.contains("cordon │"), "quitting ends the TUI:\n{s}");

    let log = h.audit_log();
    for event in
        ["tui.start", "session.create", "session.attach", "session.detach", "session.observe", "recording.search", "recording.play"]
    {
        assert!(log.contains(&format!("\"{event}\"")), "{event} is audited:\n{log}");
    }
    let observe = log.lines().find(|l| l.contains("\"session.observe\"")).unwrap();
    assert!(observe.contains("\"actor\":\"carol\""), "{observe}");
}

#[test]
fn the_tui_follows_resizes_and_draws_at_80x24() {
    let h = Host::start();
    let alice = h.user("alice", "developer");
    h.tmux_ssh("alice", &alice, "alice", "");
    h.wait_for("alice", "1 Sessions");
    let resize = |w: &str, hgt: &str| {
        Command::new("tmux").args(["-L", &h.tmux, "resize-window", "-t", "alice", "-x", w, "-y", hgt]).status().unwrap();
    };
    resize("80", "24");
    // tmux cuts the old frame at 80 columns at once; the TUI's redraw closes the frame there.
    let start = Instant::now();
    loop {
        let s = h.screen("alice");
        let lines: Vec<&str> = s.lines().collect();
        let closed = |l: &&&str| l.starts_with('└') && l.ends_with('┘') && l.chars().count() == 80;
        if lines.len() == 24 && lines.iter().filter(closed).count() == 2 && s.contains("No sessions yet") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the frame is not redrawn at 80x24:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    h.keys("alice", &["?"]);
    h.wait_for("alice", "any key closes this help");
    h.keys("alice", &["x"]);
    wait_gone(&h, "alice", "any key closes this help");
}

#[test]
fn cordon_with_no_arguments_is_an_embedded_host_with_the_tui() {
    let data = tempfile::tempdir().unwrap();
    let tmux = format!("cordon-embedded-{}", std::process::id());
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux").args(["-L", &self.0, "kill-server"]).status();
        }
    }
    let _kill = Kill(tmux.clone());
    let cmd =
        format!("env -u CORDON_PROFILE_PATH {} --data-dir {}; sleep 30", env!("CARGO_BIN_EXE_cordon"), data.path().join("state").display());
    let ok = Command::new("tmux").args(["-L", &tmux, "new-session", "-d", "-s", "tui", "-x", "100", "-y", "30", &cmd]).status().unwrap();
    assert!(ok.success());
    let screen = || {
        let o = Command::new("tmux").args(["-L", &tmux, "capture-pane", "-p", "-t", "tui"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let keys = |k: &[&str]| {
        Command::new("tmux").args(["-L", &tmux, "send-keys", "-t", "tui"]).args(k).status().unwrap();
    };
    let wait = |text: &str| {
        let start = Instant::now();
        loop {
            let s = screen();
            if s.contains(text) {
                return s;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "never showed {text:?}:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The OS user running it administers the fresh data directory.
    let s = wait("4 Admin");
    assert!(s.contains("(admin)"), "{s}");
    keys(&["n"]);
    wait("New session");
    keys(&["Tab", "Tab", "Tab", "sh", "Enter"]);
    wait("cordon");
    keys(&["echo local-$((3*3))", "Enter"]);
    wait("local-9");
    keys(&["C-\\"]);
    let s = wait("detached from session 1");
    assert!(s.contains("local-9"), "{s}");
    keys(&["q"]);
    wait("ended 1 session(s) with the embedded host");
    // The session was confined and recorded like any other.
    let out = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .arg("--data-dir")
        .arg(data.path().join("state"))
        .args(["rec", "ls", "--json"])
        .output()
        .unwrap();
    let recs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(recs.as_array().map(|a| a.len()), Some(1), "{recs}");
    let audit = std::fs::read_to_string(data.path().join("state/audit.log")).unwrap();
    assert!(audit.contains("\"tui.start\"") && audit.contains("\"session.create\""), "{audit}");
}

#[test]
fn cordon_tui_reaches_a_running_serve_as_the_os_account() {
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("tui.sock");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(sockets.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let h = Host::start_with(&format!("[tui]\nsocket = \"{}\"", socket.display()));
    h.user("root", "developer");
    let client = |win: &str, prefix: &str| {
        let cmd = format!("{prefix}{} tui --socket {}; sleep 30", env!("CARGO_BIN_EXE_cordon"), socket.display());
        let ok =
            Command::new("tmux").args(["-L", &h.tmux, "new-session", "-d", "-s", win, "-x", "100", "-y", "30", &cmd]).status().unwrap();
        assert!(ok.success());
    };
    // This test runs as root, mapped to the cordon user "root".
    client("root", "");
    let s = h.wait_for("root", "1 Sessions");
    assert!(s.contains("root (developer)"), "{s}");
    h.keys("root", &["n"]);
    h.wait_for("root", "New session");
    h.keys("root", &["Tab", "Tab", "Tab", "sh", "Enter"]);
    h.wait_for("root", "cordon");
    h.keys("root", &["echo via-socket-$((2*4))", "Enter"]);
    h.wait_for("root", "via-socket-8");
    h.keys("root", &["C-\\"]);
    h.wait_for("root", "detached from session 1");
    h.keys("root", &["q"]);
    wait_gone(&h, "root", "1 Sessions");
    // The session belongs to the host, not to the TUI: it is still there.
    let alice = h.user("alice", "admin");
    let out = h.ssh(&alice, "alice", &["ls"]);
    assert!(out.stdout.contains("root-1"), "{out:?}");

    // An OS account without a cordon user is refused, and that is audited.
    client("nobody", "setpriv --reuid=65534 --regid=65534 --clear-groups ");
    h.wait_for("nobody", "may not use the TUI here");
    let log = h.audit_log();
    let refused = log.lines().find(|l| l.contains("\"login.failed\"") && l.contains("tui socket")).unwrap_or_default();
    assert!(refused.contains("nobody"), "{log}");
}
