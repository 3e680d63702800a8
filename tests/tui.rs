//! The TUI driven as a user drives it: over SSH (OpenSSH's `ssh` in tmux) and embedded
//! (`cordon` with no arguments in tmux), asserting on what the terminal shows.

use cordon_test_support::host::Host;
use cordon_test_support::tmux::Tmux;
use cordon_test_support::wait::poll;
use std::process::Command;
use std::time::Duration;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

#[test]
fn the_tui_over_ssh_creates_attaches_detaches_observes_and_replays() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let carol = h.user("carol", "auditor");

    // Log in: a plain `ssh -t host` gets the TUI.
    h.tmux_ssh("alice", &alice, "alice", "");
    let s = h.wait_for("alice", "1 Sessions");
    assert!(
        s.contains("alice (developer)") && s.contains("n new") && !s.contains("3 Audit"),
        "{s}"
    );

    // Create a session from the dialog; it opens attached.
    h.keys("alice", &["n"]);
    h.wait_for("alice", "New session");
    h.keys("alice", &["Tab", "Tab", "demo", "Tab", "bash", "Enter"]);
    h.wait_for("alice", "cordon:");
    h.keys("alice", &["echo typed-$((6*7))", "Enter"]);
    h.wait_for("alice", "typed-42");

    // Detach: back in the list, the preview shows what was typed.
    h.keys("alice", &["C-\\"]);
    let s = h.wait_for("alice", "detached from session demo (");
    assert!(
        s.contains("Sessions (1)") && s.contains("typed-42") && s.contains("demo"),
        "{s}"
    );

    // Reattach and type again.
    h.keys("alice", &["Enter"]);
    h.wait_gone("alice", "Sessions (1)");
    h.keys("alice", &["echo again-$((1+1))", "Enter"]);
    h.wait_for("alice", "again-2");
    h.keys("alice", &["C-\\"]);
    h.wait_for("alice", "detached from session ");

    // A second user observes: sees the screen, cannot type, is not offered what an auditor
    // may not do.
    h.tmux_ssh("carol", &carol, "carol", "");
    h.wait_for("carol", "Sessions (1)");
    // The whole first frame, footer included (a loaded machine draws it in pieces).
    let s = h.wait_for("carol", "o observe");
    assert!(
        s.contains("carol (auditor)")
            && s.contains("o observe")
            && !s.contains("n new")
            && !s.contains("x end"),
        "{s}"
    );
    h.keys("carol", &["o"]);
    h.wait_gone("carol", "Sessions (1)");
    // The observed screen, once drawn (the list goes first).
    h.wait_for("carol", "again-2");
    h.keys("carol", &["echo carol-was-here", "Enter"]);
    std::thread::sleep(Duration::from_millis(300));
    h.keys("carol", &["C-\\"]);
    h.wait_for("carol", "detached from session ");
    let s = h.screen("alice");
    assert!(
        !s.contains("carol-was-here"),
        "an observer's keys reached the session:\n{s}"
    );

    // The owner ends the session from inside it.
    h.keys("alice", &["Enter"]);
    h.wait_gone("alice", "Sessions (1)");
    h.keys("alice", &["exit", "Enter"]);
    h.wait_for("alice", ") ended, exit status 0");

    // Replay the recording and find the typed word with search.
    h.keys("carol", &["2"]);
    h.wait_for("carol", "Recordings (1 of 1)");
    h.keys("carol", &["s"]);
    h.wait_for("carol", "search recordings for");
    h.keys("carol", &["typed-42", "Enter"]);
    let s = h.wait_for("carol", "replay ");
    assert!(
        s.contains("\"typed-42\": 1 matches") && s.contains("│typed-42"),
        "the typed word's output is found and shown: {s}"
    );
    // Export for asciinema, into the auditor's own exports folder.
    h.keys("carol", &["q"]);
    h.wait_for("carol", "Recordings (1 of 1)");
    h.keys("carol", &["e"]);
    h.wait_for("carol", "exported for asciinema");
    let exports: Vec<_> = std::fs::read_dir(h.data.path().join("workspaces/carol/exports"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(exports.len(), 1);
    let cast = std::fs::read_to_string(exports[0].path()).unwrap();
    assert!(
        cast.lines().next().unwrap().contains("\"version\":2") && cast.contains("typed-42"),
        "{cast}"
    );
    h.keys("carol", &["q"]);
    let s = h.wait_gone("carol", "Recordings");
    assert!(!s.contains("cordon │"), "quitting ends the TUI:\n{s}");

    let log = h.audit_log();
    for event in [
        "tui.start",
        "session.create",
        "session.attach",
        "session.detach",
        "session.observe",
        "recording.search",
        "recording.play",
    ] {
        assert!(
            log.contains(&format!("\"{event}\"")),
            "{event} is audited:\n{log}"
        );
    }
    let observe = log
        .lines()
        .find(|l| l.contains("\"session.observe\""))
        .unwrap();
    assert!(observe.contains("\"actor\":\"carol\""), "{observe}");
}

#[test]
fn the_tui_follows_resizes_and_draws_at_80x24() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    h.tmux_ssh("alice", &alice, "alice", "");
    h.wait_for("alice", "1 Sessions");
    h.tmux.resize("alice", 80, 24);
    // tmux cuts the old frame at 80 columns at once; the TUI's redraw closes the frame there.
    poll(|| {
        let s = h.screen("alice");
        let lines: Vec<&str> = s.lines().collect();
        let closed = |l: &&&str| l.starts_with('└') && l.ends_with('┘') && l.chars().count() == 80;
        if lines.len() == 24
            && lines.iter().filter(closed).count() == 2
            && s.contains("No sessions yet")
        {
            Ok(())
        } else {
            Err(format!("the frame is not redrawn at 80x24:\n{s}"))
        }
    });
    h.keys("alice", &["?"]);
    h.wait_for("alice", "any key closes this help");
    h.keys("alice", &["x"]);
    h.wait_gone("alice", "any key closes this help");
}

#[test]
fn cordon_with_no_arguments_is_an_embedded_host_with_the_tui() {
    let data = tempfile::tempdir().unwrap();
    let tmux = Tmux::new(format!("cordon-embedded-{}", std::process::id()));
    tmux.start(
        "tui",
        &format!(
            "env -u CORDON_PROFILE_PATH {CORDON} --data-dir {}; sleep 30",
            data.path().join("state").display()
        ),
    );
    let keys = |k: &[&str]| tmux.keys("tui", k);
    let wait = |text: &str| tmux.wait_for("tui", text);
    // The OS user running it administers the fresh data directory.
    let s = wait("4 Admin");
    assert!(s.contains("(admin)"), "{s}");
    keys(&["n"]);
    wait("New session");
    keys(&["Tab", "Tab", "Tab", "sh", "Enter"]);
    // Attached when the list is gone and the shell has prompted: keys typed sooner go to
    // the TUI.
    tmux.wait_gone("tui", "4 Admin");
    wait("$");
    keys(&["echo local-$((3*3))", "Enter"]);
    wait("local-9");
    keys(&["C-\\"]);
    let s = wait("detached from session ");
    assert!(s.contains("local-9"), "{s}");
    // The session ends with this host: q asks first, n stays.
    keys(&["q"]);
    let s = wait("1 of your sessions is still running");
    assert!(
        s.contains("y Enter end them and quit") && s.contains("n Esc stay"),
        "{s}"
    );
    keys(&["n"]);
    tmux.wait_gone("tui", "still running");
    wait("4 Admin");
    keys(&["q"]);
    wait("1 of your sessions is still running");
    keys(&["y"]);
    wait("ended 1 session with the embedded host");
    // The session was confined and recorded like any other.
    let out = Command::new(CORDON)
        .arg("--data-dir")
        .arg(data.path().join("state"))
        .args(["rec", "ls", "--json"])
        .output()
        .unwrap();
    let recs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(recs.as_array().map(|a| a.len()), Some(1), "{recs}");
    let audit = std::fs::read_to_string(data.path().join("state/audit.log")).unwrap();
    assert!(
        audit.contains("\"tui.start\"") && audit.contains("\"session.create\""),
        "{audit}"
    );
}

#[test]
fn cordon_tui_reaches_a_running_serve_as_the_os_account() {
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("tui.sock");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(sockets.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let h = Host::start_with(CORDON, &format!("[tui]\nsocket = \"{}\"", socket.display()));
    h.user("root", "developer");
    let client = |win: &str, prefix: &str| {
        h.tmux.start(
            win,
            &format!(
                "{prefix}{CORDON} tui --socket {}; echo exit=$?; sleep 30",
                socket.display()
            ),
        );
    };
    // This test runs as root, mapped to the cordon user "root".
    client("root", "");
    let s = h.wait_for("root", "1 Sessions");
    assert!(s.contains("root (developer)"), "{s}");
    h.keys("root", &["n"]);
    h.wait_for("root", "New session");
    h.keys("root", &["Tab", "Tab", "Tab", "sh", "Enter"]);
    // Attached when the list is gone and the shell has prompted: keys typed sooner go to
    // the TUI or into a terminal nobody reads yet.
    h.wait_gone("root", "1 Sessions");
    h.wait_for("root", "$");
    h.keys("root", &["echo via-socket-$((2*4))", "Enter"]);
    h.wait_for("root", "via-socket-8");
    h.keys("root", &["C-\\"]);
    h.wait_for("root", "detached from session ");
    h.keys("root", &["q"]);
    h.wait_gone("root", "1 Sessions");
    h.wait_for("root", "exit=0");
    // The session belongs to the host, not to the TUI: it is still there.
    let alice = h.user("alice", "admin");
    let out = h.ssh(&alice, "alice", &["ls"]);
    assert!(out.stdout.contains("root-1"), "{out:?}");

    // An OS account without a cordon user is refused, and that is audited.
    client(
        "nobody",
        "setpriv --reuid=65534 --regid=65534 --clear-groups ",
    );
    let screen = h.wait_for("nobody", "exit=1");
    assert!(
        screen.contains("cordon tui: nobody may not use the TUI here"),
        "a refusal is an error, said once: {screen}"
    );
    let log = h.audit_log();
    let refused = log
        .lines()
        .find(|l| l.contains("\"login.failed\"") && l.contains("tui socket"))
        .unwrap_or_default();
    assert!(refused.contains("nobody"), "{log}");
}

#[test]
fn the_embedded_cordon_started_in_a_project_directory_works_there() {
    let data = tempfile::tempdir().unwrap();
    let project = std::fs::canonicalize(data.path())
        .unwrap()
        .join("my-project");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(project.join("NOTES.txt"), "project notes 42\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    // Sessions of a root host run as a uid of their own, which must be able to use the
    // project (else the dialog offers the workspace area instead).
    for (p, mode) in [(data.path(), 0o755), (&project, 0o777)] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(
        project.join("NOTES.txt"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let tmux = Tmux::new(format!("cordon-project-{}", std::process::id()));
    tmux.start(
        "tui",
        &format!(
            "cd {} && env -u CORDON_PROFILE_PATH {CORDON} --data-dir {}; sleep 30",
            project.display(),
            data.path().join("state").display()
        ),
    );
    let keys = |k: &[&str]| tmux.keys("tui", k);
    let wait = |text: &str| tmux.wait_for("tui", text);
    wait("4 Admin");
    keys(&["n"]);
    let s = wait("New session");
    assert!(
        s.contains(&format!("empty: {}", project.display())),
        "the dialog shows the project as the default workspace: {s}"
    );
    assert!(s.contains("a name: a folder in"), "{s}");
    keys(&["Tab", "Tab", "Tab", "sh", "Enter"]);
    // Attached when the list is gone and the shell has prompted: keys typed sooner go to
    // the TUI.
    tmux.wait_gone("tui", "4 Admin");
    wait("$");
    keys(&["pwd; cat NOTES.txt", "Enter"]);
    let s = wait("project notes 42");
    assert!(s.contains(&project.display().to_string()), "{s}");
    keys(&["C-\\"]);
    wait("detached from session ");
    keys(&["q"]);
    wait("1 of your sessions is still running");
    keys(&["Enter"]);
    wait("ended 1 session with the embedded host");
}

#[test]
fn leaving_a_full_screen_program_in_the_tui_draws_the_tui_again_and_quitting_gives_the_shell_back()
{
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let ws = h.workspace("alice");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("modes.sh"),
        "printf '\\033[?25l\\033[?1049h\\033[?2004h\\033[?1000h\\033=\\033[?1h\\033[3;20r\\033[H\\033[31mFULL SCREEN PROGRAM'\nexec sleep 1000\n",
    )
    .unwrap();
    h.tmux.start("t", "sh");
    h.keys("t", &["echo before-$((1+1))", "Enter"]);
    h.wait_for("t", "before-2");
    let line = format!("{} -t", h.ssh_command(&alice, "alice").join(" "));
    h.keys("t", &[&line, "Enter"]);
    h.wait_for("t", "1 Sessions");
    h.keys("t", &["n"]);
    h.wait_for("t", "New session");
    h.keys("t", &["Tab", "Tab", "full", "Tab", "sh modes.sh", "Enter"]);
    // Attached: the program's screen, and on its last row which session and how to leave.
    let s = h.wait_for("t", "[cordon] attached to \"full\"");
    assert!(s.contains("ctrl-\\ detaches"), "{s}");
    h.wait_for("t", "FULL SCREEN PROGRAM");
    h.tmux.wait_modes(
        "t",
        "cursor=0 alternate=1 keypad=1 cursor_keys=1 mouse=1010",
    );

    // Detached: the TUI again, whole, on its own screen, the program's modes gone.
    h.keys("t", &["C-\\"]);
    let s = h.wait_for("t", "detached from session");
    assert!(
        s.contains("Sessions (1)") && s.contains("q quit") && !s.contains("[cordon] "),
        "{s}"
    );
    assert_eq!(
        h.tmux.modes("t"),
        "cursor=0 alternate=1 keypad=0 cursor_keys=0 mouse=0000 region=0-29"
    );
    // Over SSH the sessions outlive the TUI: q quits at once, and the shell is as it was.
    h.keys("t", &["q"]);
    let s = h.wait_for("t", "before-2");
    assert_eq!(
        h.tmux.modes("t"),
        "cursor=1 alternate=0 keypad=0 cursor_keys=0 mouse=0000 region=0-29",
        "{s}"
    );
    assert!(!s.contains("Sessions (1)"), "{s}");
    let out = h.ssh(&alice, "alice", &["ls"]);
    assert!(out.stdout.contains("full"), "{out:?}");
}
