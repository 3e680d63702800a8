//! The host driven the way a user drives it: OpenSSH's `ssh` client against `cordon serve`,
//! interactive sessions inside tmux, and assertions on what the user sees.

use cordon_test_support::host::Host;
use cordon_test_support::process::{output, Out};
use cordon_test_support::wait::wait_until;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

#[test]
fn whoami_and_run_answer_like_ssh_does() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let out = h.ssh(&alice, "alice", &["whoami"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "alice (developer)\n"),
        "{out:?}"
    );

    let out = h.ssh(&alice, "alice", &["run", "--", "false"]);
    assert_eq!(out.code, 1, "{out:?}");
    let out = h.ssh(
        &alice,
        "alice",
        &[
            "run",
            "--",
            "sh",
            "-c",
            "'echo to-stdout; echo to-stderr >&2; exit 3'",
        ],
    );
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (3, "to-stdout\n", "to-stderr\n"),
        "{out:?}"
    );

    let out = h.ssh(&alice, "alice", &["run", "--", "od", "-c", "/dev/null"]);
    assert_eq!(out.code, 126, "{out:?}");
    assert!(out.stderr.contains("not on the exec allowlist"), "{out:?}");

    let out = h.ssh(
        &alice,
        "alice",
        &["run", "--", "sh", "-c", "'cat /etc/shadow; env'"],
    );
    assert!(
        !out.stdout.contains("root:") && !out.stdout.contains("CORDON"),
        "{out:?}"
    );
    assert!(
        h.audit_log().contains("\"event\":\"run\""),
        "runs are audited"
    );
}

#[test]
fn profiles_and_workspaces_stay_within_what_the_role_allows() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let out = h.ssh(&alice, "alice", &["run", "--profile", "base", "--", "true"]);
    assert_eq!(out.code, 126, "{out:?}");
    assert!(
        out.stderr.contains("may not use profile \"base\""),
        "{out:?}"
    );
    let out = h.ssh(
        &alice,
        "alice",
        &[
            "run",
            "--workspace",
            "proj",
            "--",
            "sh",
            "-c",
            "'echo hi > note'",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        std::fs::read_to_string(h.data.path().join("workspaces/alice/proj/note")).unwrap(),
        "hi\n"
    );
    let out = h.ssh(&alice, "alice", &["run", "--workspace", "..", "--", "true"]);
    assert_eq!(out.code, 126, "{out:?}");
}

#[test]
fn unknown_keys_wrong_users_and_locked_users_are_refused() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let _bob = h.user("bob", "developer");
    let stranger = h.keygen("stranger");
    let out = h.ssh(&stranger, "alice", &["whoami"]);
    assert_eq!(out.code, 255, "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
    let out = h.ssh(&alice, "bob", &["whoami"]);
    assert_eq!(out.code, 255, "alice's key must not log in as bob: {out:?}");
    assert_eq!(h.cordon(&["user", "lock", "alice"]).code, 0);
    let out = h.ssh(&alice, "alice", &["whoami"]);
    assert_eq!(out.code, 255, "{out:?}");
    let log = h.audit_log();
    assert!(
        log.contains("unknown key")
            && log.contains("the user is locked")
            && log.contains("another user"),
        "{log}"
    );
}

#[test]
fn a_session_lives_on_after_detach_and_reattaches_with_the_same_screen() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    h.tmux_ssh("first", &alice, "alice", "new -- bash");
    h.wait_for("first", "$");
    h.keys("first", &["echo hello-$((6*7))", "Enter"]);
    h.wait_for("first", "hello-42");
    h.keys("first", &["C-\\"]);
    wait_until("the detach", || {
        h.ssh(&alice, "alice", &["ls"]).stdout.contains("alice-1")
    });
    let ls = h.ssh(&alice, "alice", &["ls", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ls.stdout).expect("json");
    assert_eq!(v[0]["owner"], "alice");
    assert_eq!(v[0]["viewers"], 0, "{v}");
    // Attached again by a prefix of its id, as a user copies it from `ls`.
    let id = v[0]["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 12, "{v}");
    h.tmux_ssh("second", &alice, "alice", &format!("attach {}", &id[..4]));
    let screen = h.wait_for("second", "hello-42");
    assert!(
        screen.contains("echo hello-$((6*7))"),
        "the reattached screen shows what was there:\n{screen}"
    );
    h.keys("second", &["exit 7", "Enter"]);
    wait_until("the session to end", || {
        h.ssh(&alice, "alice", &["ls"])
            .stdout
            .contains("no sessions")
    });
    let log = h.audit_log();
    assert!(
        log.contains("\"session.create\"")
            && log.contains("\"session.detach\"")
            && log.contains("\"exit_status\":7"),
        "{log}"
    );
}

#[test]
fn an_observer_sees_the_session_but_cannot_type_and_others_cannot_look() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let carol = h.user("carol", "auditor");
    let bob = h.user("bob", "developer");
    h.tmux_ssh("owner", &alice, "alice", "new -- bash");
    h.wait_for("owner", "$");
    h.tmux_ssh("watcher", &carol, "carol", "observe alice/alice-1");
    h.keys("owner", &["echo visible-$((2+3))", "Enter"]);
    h.wait_for("watcher", "visible-5");
    h.keys("watcher", &["echo injected-$((4+4))", "Enter"]);
    std::thread::sleep(Duration::from_millis(700));
    let owner = h.screen("owner");
    assert!(
        !owner.contains("injected"),
        "an observer typed into the session:\n{owner}"
    );

    // Leaving, the observer is told how to come back: observing again, where it connected.
    h.keep("watcher");
    h.keys("watcher", &["C-\\"]);
    // One line that the 100-column window wraps.
    let left = h.wait_for("watcher", "to return").replace('\n', "");
    assert!(
        left.contains(&format!("ssh -t -p {} carol@127.0.0.1 observe ", h.port))
            && !left.contains("attach"),
        "{left}"
    );

    // Another developer's session answers like one that does not exist.
    let out = h.ssh(&bob, "bob", &["observe", "alice-1"]);
    assert_eq!(out.code, 126, "{out:?}");
    assert_eq!(out.stderr, "cordon: no session alice-1\n");
    assert_eq!(
        h.ssh(&bob, "bob", &["observe", "zzzzzzzzzzzz"]).stderr,
        "cordon: no session zzzzzzzzzzzz\n"
    );
    let out = h.ssh(&carol, "carol", &["run", "--", "true"]);
    assert_eq!(out.code, 126, "an auditor may not run commands: {out:?}");
}

#[test]
fn kill_ends_a_session_and_its_processes() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let marker = format!("{}.{}", h.port, 1234);
    h.tmux_ssh("s", &alice, "alice", &format!("new -- sleep {marker}"));
    wait_until("the session to start", || sleeping(&marker) == 1);
    let out = h.ssh(&alice, "alice", &["kill", "alice-1"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "killed session alice-1\n"),
        "{out:?}"
    );
    wait_until("the processes to go", || sleeping(&marker) == 0);
}

#[test]
fn no_session_process_survives_a_kill_9_of_the_host() {
    let mut h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let marker = format!("{}.{}", h.port, 4321);
    h.tmux_ssh(
        "s",
        &alice,
        "alice",
        &format!(r#"new -- sh -c "'sleep {marker} & sleep {marker}'""#),
    );
    wait_until("the session to start", || sleeping(&marker) == 2);
    // SAFETY: SIGKILL to our own child.
    unsafe { libc::kill(h.child.id() as i32, libc::SIGKILL) };
    let _ = h.child.wait();
    wait_until("every session process to go", || sleeping(&marker) == 0);
}

#[test]
fn the_audit_log_verifies_until_one_byte_changes() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    assert_eq!(h.ssh(&alice, "alice", &["whoami"]).code, 0);
    let out = h.cordon(&["audit", "verify"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("ok: "), "{out:?}");
    let path = h.state().join("audit.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let first_line = bytes.iter().position(|&b| b == b'\n').unwrap();
    let pos = first_line
        + 1
        + bytes[first_line + 1..]
            .iter()
            .position(|&b| b == b'e')
            .unwrap();
    bytes[pos] = b'E';
    std::fs::write(&path, bytes).unwrap();
    let out = h.cordon(&["audit", "verify"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("BROKEN: audit.log line 2 (event 2)"),
        "{out:?}"
    );
}

/// How many `sleep MARKER` processes run on the machine (not counting command lines that
/// merely mention them, like the ssh client's).
fn sleeping(marker: &str) -> usize {
    let o = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.trim() == format!("sleep {marker}"))
        .count()
}

/// `ssh` with a password given through SSH_ASKPASS, as a person would type it.
fn ssh_password(h: &Host, user: &str, password: &str, args: &[&str]) -> Out {
    let askpass = h.keys.path().join(format!("askpass-{}", password.len()));
    std::fs::write(
        &askpass,
        format!("#!/bin/sh\nprintf '%s\\n' '{password}'\n"),
    )
    .unwrap();
    Command::new("chmod")
        .arg("700")
        .arg(&askpass)
        .status()
        .unwrap();
    output(
        Command::new("ssh")
            .args([
                "-p",
                &h.port.to_string(),
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ])
            .args([
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "NumberOfPasswordPrompts=1",
            ])
            .arg(format!("{user}@127.0.0.1"))
            .args(args)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null()),
    )
}

#[test]
fn passwords_follow_the_policy_and_repeated_failures_lock_the_login_out() {
    let h = Host::start_with(CORDON, "password_login = true");
    h.user("dave", "developer");
    let set = |pw: &str| {
        let mut c = h.command(&["user", "passwd", "dave"]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{pw}\n").as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = set("password123");
    assert_eq!(code, 1, "a weak password must be refused: {err}");
    assert!(
        err.contains("12 characters") || err.contains("three of"),
        "{err}"
    );
    assert_eq!(set("Tr0mbone-Garden-Lamp").0, 0);

    let out = ssh_password(&h, "dave", "Tr0mbone-Garden-Lamp", &["whoami"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "dave (developer)\n"),
        "{out:?}"
    );
    for _ in 0..5 {
        let out = ssh_password(&h, "dave", "wrong-Password-9", &["whoami"]);
        assert_eq!(out.code, 255, "{out:?}");
    }
    let out = ssh_password(&h, "dave", "Tr0mbone-Garden-Lamp", &["whoami"]);
    assert_eq!(
        out.code, 255,
        "the right password must not work during a lockout: {out:?}"
    );
    let log = h.audit_log();
    assert!(log.contains("locked out after repeated failures"), "{log}");
    assert!(
        !log.contains("Tr0mbone") && !log.contains("wrong-Password"),
        "a password reached the audit log"
    );
}

#[test]
fn sigterm_ends_every_session_and_closes_the_audit_log_cleanly() {
    let mut h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let marker = format!("{}.{}", h.port, 777);
    h.tmux_ssh("s", &alice, "alice", &format!("new -- sleep {marker}"));
    wait_until("the session to start", || sleeping(&marker) == 1);
    let status = h.stop();
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    wait_until("the session's processes to go", || sleeping(&marker) == 0);
    let log = h.audit_log();
    assert!(
        log.contains("\"session.end\"")
            && log
                .trim_end()
                .lines()
                .last()
                .unwrap_or("")
                .contains("\"serve.stop\""),
        "{log}"
    );
    assert_eq!(h.cordon(&["audit", "verify"]).code, 0);
}

#[test]
fn forwarding_requests_are_refused_and_audited() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let mut argv = h.ssh_command(&alice, "alice");
    argv.splice(
        1..1,
        [
            "-A",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            "0:127.0.0.1:9",
        ]
        .map(String::from),
    );
    let out = output(
        Command::new(&argv[0])
            .args(&argv[1..])
            .arg("whoami")
            .stdin(Stdio::null()),
    );
    assert_ne!(out.code, 0, "a remote forward must fail: {out:?}");
    let log = h.audit_log();
    assert!(log.contains("remote port forwarding"), "{log}");
}

#[test]
fn a_stalled_observer_neither_slows_the_session_nor_grows_the_host() {
    let mut h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let carol = h.user("carol", "auditor");
    let ws = h.data.path().join("workspaces/alice");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("flood.sh"),
        "sleep 2\nhead -c 60000000 /dev/zero\necho DONE-$((1+1))\nsleep 30\n",
    )
    .unwrap();

    // The owner reads everything, as fast as ssh delivers it.
    let mut argv = h.ssh_command(&alice, "alice");
    argv.insert(1, "-tt".into());
    let mut owner = Command::new(&argv[0])
        .args(&argv[1..])
        .args(["new", "--", "sh", "flood.sh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = owner.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut tail: Vec<u8> = Vec::new();
        while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.windows(6).any(|w| w == b"DONE-2") {
                let _ = tx.send(());
                break;
            }
            let keep = tail.len().saturating_sub(16);
            tail.drain(..keep);
        }
    });
    wait_until("the session", || {
        h.ssh(&alice, "alice", &["ls"]).stdout.contains("alice-1")
    });

    // The observer never reads: its ssh client's window fills and everything backs up.
    let mut argv = h.ssh_command(&carol, "carol");
    argv.insert(1, "-tt".into());
    let mut stalled = Command::new(&argv[0])
        .args(&argv[1..])
        .args(["observe", "alice-1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    let start = Instant::now();
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the owner saw the end of the output");
    let took = start.elapsed();
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", h.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0);
    assert!(
        rss_kib < 200 * 1024,
        "the host grew to {rss_kib} KiB with a stalled viewer"
    );
    assert!(
        took < Duration::from_secs(45),
        "the session was held back by the stalled viewer: {took:?}"
    );
    let _ = stalled.kill();
    let _ = owner.kill();
    let _ = stalled.wait();
    let _ = owner.wait();
    let _ = h.child.kill();
}

// Recordings.

#[test]
fn sessions_are_recorded_and_exported_for_asciinema() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let out = h.session(&alice, "alice", "echo snow-☃-$((40+2)); exit 3");
    assert_eq!(out.code, 3, "{out:?}");
    let recs = h.recordings();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["state"], "complete");
    let id = recs[0]["id"].as_str().unwrap().to_string();

    let raw = h.cordon(&["rec", "export", &id, "--raw"]);
    assert!(raw.stdout.contains("snow-☃-42\r\n"), "{raw:?}");
    let cast = h.data.path().join("s.cast");
    assert_eq!(
        h.cordon(&[
            "rec",
            "export",
            &id,
            "--format",
            "asciicast-v2",
            "-o",
            cast.to_str().unwrap()
        ])
        .code,
        0
    );
    let played = output(Command::new("script").args([
        "-qec",
        &format!("asciinema cat {}", cast.display()),
        "/dev/null",
    ]));
    assert!(
        played.stdout.contains("snow-☃-42"),
        "asciinema cat: {played:?}"
    );
    let v3 = h.cordon(&["rec", "export", &id, "--format", "asciicast-v3"]);
    assert!(
        v3.stdout.starts_with("{") && v3.stdout.lines().next().unwrap().contains("\"version\":3"),
        "{v3:?}"
    );
    assert!(
        v3.stdout.lines().last().unwrap().contains("\"x\",\"3\""),
        "v3 ends with the exit status: {v3:?}"
    );

    let verify = h.cordon(&["rec", "verify", "--all"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(
        h.audit_log().contains("\"recording.export\""),
        "exports are audited"
    );
    assert!(h
        .cordon(&["rec", "ls", "--since", "1h"])
        .stdout
        .contains(&id));
    assert!(h
        .cordon(&["rec", "ls", "--since", "2099-01-01"])
        .stdout
        .contains("no recordings"));
    assert_eq!(h.cordon(&["rec", "ls", "--since", "yesterday-ish"]).code, 1);
}

#[test]
fn a_changed_byte_in_a_recording_is_reported_with_its_position() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    h.session(&alice, "alice", "echo something worth keeping");
    let recs = h.recordings();
    let path = recs[0]["path"].as_str().unwrap().to_string();
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let out = h.cordon(&["rec", "verify", recs[0]["id"].as_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("DAMAGED: chunk") && out.stdout.contains("at byte"),
        "{out:?}"
    );
}

#[test]
fn a_kill_9_leaves_an_interrupted_recording_readable_to_within_a_second() {
    let mut h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let mut argv = h.ssh_command(&alice, "alice");
    argv.insert(1, "-tt".into());
    let mut client = Command::new(&argv[0])
        .args(&argv[1..])
        .args([
            "new",
            "--",
            "sh",
            "-c",
            "'echo before-$((1+1))-kill; sleep 60'",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the recording", || h.recordings().len() == 1);
    std::thread::sleep(Duration::from_millis(1600));
    // While its host records it, it is live, not interrupted.
    let id = h.recordings()[0]["id"].as_str().unwrap().to_string();
    let live = h.cordon(&["rec", "verify", &id]);
    assert_eq!(live.code, 0, "{live:?}");
    assert!(
        live.stdout.contains("still being recorded") && !live.stdout.contains("interrupted"),
        "{live:?}"
    );
    // SAFETY: SIGKILL to our own child.
    unsafe { libc::kill(h.child.id() as i32, libc::SIGKILL) };
    let _ = h.child.wait();
    let _ = client.kill();
    let _ = client.wait();
    let out = h.cordon(&["rec", "verify", &id]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("interrupted"), "{out:?}");
    let raw = h.cordon(&["rec", "export", &id, "--raw"]);
    assert!(raw.stdout.contains("before-2-kill"), "{raw:?}");
}

#[test]
fn a_full_disk_ends_the_session_under_the_strict_policy_and_not_under_best_effort() {
    let data = tempfile::tempdir().unwrap();
    let recs = data.path().join("recs");
    std::fs::create_dir_all(&recs).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&recs)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("cannot mount a small tmpfs here (not root?); skipping");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(recs.clone());
    let h = Host::start_with(
        CORDON,
        &format!(
            "[recordings]\ndir = \"{}\"\npolicy = \"strict\"",
            recs.display()
        ),
    );
    let alice = h.user("alice", "developer");
    let start = Instant::now();
    let out = h.session(
        &alice,
        "alice",
        "head -c 3000000 /dev/urandom; echo; echo SURVIVED; sleep 20",
    );
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "the session went on after the recording failed"
    );
    assert!(
        out.stdout.contains("the recording cannot be written"),
        "the user is told: {:?}",
        &out.stdout[out.stdout.len().saturating_sub(300)..]
    );
    assert!(!out.stdout.contains("SURVIVED"));
    assert!(h.audit_log().contains("\"recording.failed\""));
    drop(h);
    for f in std::fs::read_dir(&recs).unwrap().flatten() {
        let _ = std::fs::remove_file(f.path());
    }

    let h = Host::start_with(
        CORDON,
        &format!(
            "[recordings]\ndir = \"{}\"\npolicy = \"best-effort\"",
            recs.display()
        ),
    );
    let alice = h.user("alice", "developer");
    let out = h.session(
        &alice,
        "alice",
        "head -c 3000000 /dev/urandom; echo; echo SURVIVED-$((1+1))",
    );
    assert!(
        out.stdout.contains("SURVIVED-2"),
        "best-effort keeps the session going"
    );
    assert!(
        h.audit_log().contains("\"recording.gap\""),
        "the gap is audited"
    );
    // A write cut short by the full disk is cut off again: what is on disk reads back.
    let id = h.recordings()[0]["id"].as_str().unwrap().to_string();
    let verify = h.cordon(&["rec", "verify", &id]);
    assert!(
        !verify.stdout.contains("DAMAGED") && verify.stdout.contains(&id),
        "{verify:?}"
    );
}

#[test]
fn search_finds_what_appeared_and_rotation_keeps_old_recordings_readable() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    h.session(&alice, "alice", "echo needle-$((5*5)) in the first");
    let rotate = h.cordon(&["key", "rotate"]);
    assert_eq!(rotate.code, 0, "{rotate:?}");
    h.session(&alice, "alice", "echo needle-$((5*5)) in the second");
    let recs = h.recordings();
    assert_eq!(recs.len(), 2);
    assert_ne!(
        recs[0]["key_id"], recs[1]["key_id"],
        "the second recording uses the new key"
    );
    assert_eq!(h.cordon(&["rec", "verify", "--all"]).code, 0);
    let found = h.cordon(&["rec", "search", "needle-25"]);
    assert_eq!(
        found
            .stdout
            .lines()
            .filter(|l| l.contains("needle-25 in the"))
            .count(),
        2,
        "{found:?}"
    );
    assert!(
        !found.stdout.contains("$((5*5))"),
        "the typed command is not what appeared: {found:?}"
    );
    let log = h.audit_log();
    assert!(
        log.contains("\"recording.search\"") && log.contains("\"key.rotate\""),
        "{log}"
    );
    let search = log
        .lines()
        .find(|l| l.contains("\"recording.search\""))
        .unwrap();
    for r in &recs {
        assert!(
            search.contains(r["id"].as_str().unwrap()),
            "the search's audit event names the recordings it showed: {search}"
        );
    }
}

#[test]
fn a_recording_plays_back_at_its_pace_and_from_a_chosen_time() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    h.session(
        &alice,
        "alice",
        "echo early-$((1+1)); sleep 1; echo late-$((2+2))",
    );
    let id = h.recordings()[0]["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    let out = h.cordon(&["rec", "play", &id]);
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "played faster than recorded: {:?}",
        start.elapsed()
    );
    assert!(
        out.stdout.contains("early-2\r\n") && out.stdout.contains("late-4\r\n"),
        "{out:?}"
    );
    let start = Instant::now();
    let fast = h.cordon(&["rec", "play", &id, "--speed", "50"]);
    assert!(
        start.elapsed() < Duration::from_millis(600),
        "--speed 50 took {:?}",
        start.elapsed()
    );
    assert!(fast.stdout.contains("late-4"), "{fast:?}");
    let from = h.cordon(&["rec", "play", &id, "--at", "0.8"]);
    let (screen, rest) = from
        .stdout
        .split_once("late-4")
        .expect("plays on from the chosen time");
    assert!(
        screen.contains("early-2"),
        "the screen at 0.8 s is drawn first: {from:?}"
    );
    assert!(!rest.contains("early-2"));
    assert!(
        h.audit_log().contains("\"recording.play\""),
        "playback is audited"
    );
}

#[test]
fn input_is_recorded_only_when_configured_and_never_with_echo_off() {
    let h = Host::start_with(CORDON, "[recordings]\ninput = true");
    let alice = h.user("alice", "developer");
    h.tmux_ssh("s", &alice, "alice", "new -- bash");
    h.wait_for("s", "$");
    h.keys("s", &["echo typed-$((3*3))", "Enter"]);
    h.wait_for("s", "typed-9");
    h.keys("s", &["read -s secret; echo got-${#secret}", "Enter"]);
    std::thread::sleep(Duration::from_millis(400));
    h.keys("s", &["hunter2secret", "Enter"]);
    h.wait_for("s", "got-13");
    h.keys("s", &["exit", "Enter"]);
    wait_until("the recording to end", || {
        h.recordings()
            .first()
            .map(|r| r["state"] == "complete")
            .unwrap_or(false)
    });
    let id = h.recordings()[0]["id"].as_str().unwrap().to_string();
    let cast = h.cordon(&["rec", "export", &id, "--format", "asciicast-v2"]);
    let typed: String = cast
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v[1] == "i")
        .filter_map(|v| v[2].as_str().map(String::from))
        .collect();
    assert!(
        typed.contains("echo typed-$((3*3))"),
        "typed input is recorded: {typed:?}"
    );
    assert!(
        !typed.contains("hunter2"),
        "input typed with echo off was recorded: {typed:?}"
    );
}

#[test]
fn the_screen_at_any_moment_comes_from_the_nearest_keyframe() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    // 3 MB of output (several keyframes), then a last line.
    h.session(
        &alice,
        "alice",
        "head -c 3000000 /dev/zero | tr \\\\0 a; echo; echo END-$((6*7)); sleep 0.3",
    );
    let id = h.recordings()[0]["id"].as_str().unwrap().to_string();
    let out = h.cordon(&["rec", "screen", &id, "--at", "3600"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("END-42"),
        "{:?}",
        &out.stdout[out.stdout.len().saturating_sub(400)..]
    );
    let early = h.cordon(&["rec", "screen", &id, "--at", "0"]);
    assert!(!early.stdout.contains("END-42"));
    // Playback from a late moment starts from a keyframe too, and plays on from there.
    let late = h.cordon(&["rec", "play", &id, "--at", "3600"]);
    assert!(
        late.stdout.contains("END-42") && late.stdout.len() < 1_000_000,
        "{} bytes",
        late.stdout.len()
    );
}

#[test]
fn markers_land_in_the_recording_and_its_exports() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let bob = h.user("bob", "developer");
    h.tmux_ssh("s", &alice, "alice", "new -- bash");
    h.wait_for("s", "$");
    let out = h.ssh(&alice, "alice", &["mark", "alice-1", "deploy", "starts"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "marked session alice-1: deploy starts\n"),
        "{out:?}"
    );
    assert_eq!(
        h.ssh(&bob, "bob", &["mark", "alice-1"]).code,
        126,
        "another developer may not mark it"
    );
    h.keys("s", &["exit", "Enter"]);
    wait_until("the recording to end", || {
        h.recordings()
            .first()
            .map(|r| r["state"] == "complete")
            .unwrap_or(false)
    });
    let id = h.recordings()[0]["id"].as_str().unwrap().to_string();
    let cast = h.cordon(&["rec", "export", &id]);
    assert!(cast.stdout.contains("\"m\",\"deploy starts\"]"), "{cast:?}");
}

#[test]
fn recording_off_is_said_and_audited() {
    let h = Host::start_with(CORDON, "[recordings]\nenabled = false");
    let alice = h.user("alice", "developer");
    let out = h.session(&alice, "alice", "echo unrecorded");
    assert!(out.stdout.contains("unrecorded"), "{out:?}");
    assert!(h.recordings().is_empty());
    assert!(
        h.audit_log().contains("\"recording\":false"),
        "the host's start says recording is off"
    );
}

/// Runs `script` in a session, kills the host with SIGKILL after `run_for`, and checks that
/// every marker line the script printed more than a second before the kill is in the
/// recording. The script appends each marker to `marks` in the workspace too: that file
/// says what was printed, and when.
fn killed_while(script: &str, run_for: Duration) {
    let mut h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let mut argv = h.ssh_command(&alice, "alice");
    argv.insert(1, "-tt".into());
    let mut client = Command::new(&argv[0])
        .args(&argv[1..])
        .args(["new", "--", "sh", "-c", &format!("'{script}'")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the recording", || h.recordings().len() == 1);
    std::thread::sleep(run_for);
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // SAFETY: SIGKILL to our own child.
    unsafe { libc::kill(h.child.id() as i32, libc::SIGKILL) };
    let _ = h.child.wait();
    let _ = client.kill();
    let _ = client.wait();
    let id = h.recordings()[0]["id"].as_str().unwrap().to_string();
    let raw = h.cordon(&["rec", "export", &id, "--raw"]).stdout;
    let printed = std::fs::read_to_string(h.workspace("alice").join("marks")).unwrap();
    let due: Vec<&str> = printed
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| t + 1000 <= killed_at)
        })
        .collect();
    assert!(due.len() >= 3, "the script ran: {printed}");
    for m in &due {
        assert!(raw.contains(m), "{m:?} was printed more than a second before the kill but is not in the recording ({} due)", due.len());
    }
}

#[test]
fn a_kill_9_during_a_trickle_of_output_loses_at_most_the_last_second() {
    killed_while(
        "while :; do echo \"t $(date +%s%3N)\" | tee -a marks; sleep 0.1; done",
        Duration::from_millis(3500),
    );
}

#[test]
fn a_kill_9_during_bursts_of_output_loses_at_most_the_last_second() {
    killed_while(
        "while :; do echo \"b $(date +%s%3N)\" | tee -a marks; seq 1 3000; sleep 0.7; done",
        Duration::from_millis(4000),
    );
}

#[test]
fn a_kill_9_during_bulk_output_loses_at_most_the_last_second() {
    killed_while(
        "while :; do echo \"k $(date +%s%3N)\" | tee -a marks; seq 1 100000; done",
        Duration::from_millis(3000),
    );
}
