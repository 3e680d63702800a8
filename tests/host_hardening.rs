//! The host tried the way an attacker would: a developer planting links in their own
//! workspace, two users reading each other's homes, a user kept on an open connection after
//! a lock, a name removed and added again, strangers flooding the SSH port, and the limits
//! that bound what one user can hold. Each test is an attack that worked before.

use cordon_test_support::host::Host;
use cordon_test_support::process::{output, Out};
use cordon_test_support::wait::wait_until;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

fn run(h: &Host, key: &Path, user: &str, args: &[&str]) -> Out {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    h.ssh(key, user, &all)
}

/// A directory outside every workspace holding a marker file, like another user's files or
/// the host's.
fn secret_dir(h: &Host) -> std::path::PathBuf {
    let d = h.data.path().join("secret");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("marker"), "SECRET").unwrap();
    d
}

#[test]
fn a_symlinked_workspace_is_refused_over_ssh_and_its_target_never_shown() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let secret = secret_dir(&h);
    // Planted from inside a session, as the attack was made.
    let out = run(
        &h,
        &alice,
        "alice",
        &["--", "ln", "-s", &secret.display().to_string(), "evil"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let out = run(
        &h,
        &alice,
        "alice",
        &["--", "ln", "-s", "/nonexistent", "dangling"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    for name in ["evil", "dangling"] {
        let out = run(
            &h,
            &alice,
            "alice",
            &["--workspace", name, "--", "cat", "marker"],
        );
        assert_eq!(out.code, 126, "{name}: {out:?}");
        assert!(
            out.stderr.contains("symbolic link") && !out.stdout.contains("SECRET"),
            "{name}: {out:?}"
        );
        let mut argv = h.ssh_command(&alice, "alice");
        argv.insert(1, "-tt".into());
        let o = output(
            Command::new(&argv[0])
                .args(&argv[1..])
                .args(["new", "--workspace", name, "--", "cat", "marker"])
                .stdin(Stdio::null()),
        );
        assert!(
            !o.stdout.contains("SECRET") && o.stderr.contains("symbolic link"),
            "{name}: {o:?}"
        );
    }
    assert!(
        std::fs::read_dir(&secret).unwrap().count() == 1,
        "nothing was created through the link"
    );
    assert!(
        h.audit_log().contains("symbolic link"),
        "the refusal is audited"
    );
}

#[test]
fn a_link_swapped_in_during_session_creation_never_exposes_its_target() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    secret_dir(&h);
    let uid = h.uid("alice");
    let base = h.workspace("alice");
    // The host makes alice's folder on first use; then a real directory (hers) and a link
    // change places as fast as the kernel allows, atomically, for the whole test.
    assert_eq!(run(&h, &alice, "alice", &["--", "true"]).code, 0);
    let real = base.join("race");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("marker"), "real").unwrap();
    for p in [&real, &real.join("marker")] {
        std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
    }
    // Relative, so that it also resolves from wherever the sandbox sees the host's tree.
    std::os::unix::fs::symlink("../../secret", base.join("other")).unwrap();
    assert!(base.join("other/marker").exists());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (stop, base) = (stop.clone(), base.clone());
        std::thread::spawn(move || {
            let (a, b) = (
                std::ffi::CString::new("race").unwrap(),
                std::ffi::CString::new("other").unwrap(),
            );
            let dir = std::fs::File::open(&base).unwrap();
            use std::os::fd::AsRawFd;
            let mut flips = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: renameat2 on names in a directory we hold open.
                unsafe {
                    libc::renameat2(
                        dir.as_raw_fd(),
                        a.as_ptr(),
                        dir.as_raw_fd(),
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                flips += 1;
            }
            flips
        })
    };
    let (mut shown, mut refused) = (0, 0);
    for i in 0..30 {
        // Runs and interactive sessions both: each creates a sandbox on the workspace.
        let out = if i % 3 == 0 {
            let mut argv = h.ssh_command(&alice, "alice");
            argv.insert(1, "-tt".into());
            output(
                Command::new(&argv[0])
                    .args(&argv[1..])
                    .args(["new", "--workspace", "race", "--", "cat", "marker"])
                    .stdin(Stdio::null()),
            )
        } else {
            run(
                &h,
                &alice,
                "alice",
                &["--workspace", "race", "--", "cat", "marker"],
            )
        };
        assert!(
            !out.stdout.contains("SECRET") && !out.stderr.contains("SECRET"),
            "the link's target was shown: {out:?}"
        );
        if out.stdout.contains("real") {
            shown += 1;
        } else {
            refused += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    assert!(flips > 1000, "the race ran ({flips} flips)");
    assert_eq!(shown + refused, 30);
}

#[test]
fn a_session_runs_as_its_users_own_uid_never_as_root() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let uid = h.uid("alice");
    let out = run(
        &h,
        &alice,
        "alice",
        &["--", "sh", "-c", "'id -u; id -g; touch made-here'"],
    );
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("{uid}\n{uid}\n").as_str()),
        "{out:?}"
    );
    assert_eq!(
        std::fs::metadata(h.workspace("alice").join("made-here"))
            .unwrap()
            .uid(),
        uid
    );
    let out = h.session(&alice, "alice", "id -u");
    assert!(
        out.stdout.contains(&uid.to_string()) && !out.stdout.lines().any(|l| l.trim() == "0"),
        "{out:?}"
    );
    let ws = std::fs::metadata(h.workspace("alice")).unwrap();
    assert_eq!((ws.uid(), ws.mode() & 0o777), (uid, 0o700));
}

#[test]
fn two_users_homes_are_their_own_and_the_hosts_is_never_shown() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let bob = h.user("bob", "developer");
    // The claude profile writes the user's own home (Claude keeps ~/.claude/ there).
    let out = run(
        &h,
        &alice,
        "alice",
        &[
            "--profile",
            "claude",
            "--",
            "sh",
            "-c",
            "'echo $HOME; mkdir -p ~/.claude && echo alice-secret > ~/.claude/settings.json'",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), h.home("alice").display().to_string());
    let alice_settings = h.home("alice").join(".claude/settings.json");
    assert_eq!(
        std::fs::read_to_string(&alice_settings).unwrap(),
        "alice-secret\n"
    );
    let script = format!(
        "'echo $HOME; cat {} 2>&1; ls {} 2>&1; cat /root/.bashrc /root/.profile 2>&1; echo done'",
        alice_settings.display(),
        h.home("alice").display()
    );
    let out = run(
        &h,
        &bob,
        "bob",
        &["--profile", "claude", "--", "sh", "-c", &script],
    );
    assert!(
        out.stdout.starts_with(&h.home("bob").display().to_string()),
        "{out:?}"
    );
    assert!(
        !out.stdout.contains("alice-secret") && out.stdout.contains("done"),
        "{out:?}"
    );
    // Ownership is the second wall: bob's uid could not read alice's home even if a
    // profile showed it.
    let home = std::fs::metadata(h.home("alice")).unwrap();
    assert_eq!((home.uid(), home.mode() & 0o777), (h.uid("alice"), 0o700));
    assert_ne!(h.uid("alice"), h.uid("bob"));
}

/// An OpenSSH master connection for `user`; commands then go through it.
struct Mux {
    argv: Vec<String>,
    master: std::process::Child,
}

impl Mux {
    /// `label` names the control socket (`alice`, `alice-2`); the login is the part before
    /// any `-`.
    fn open(h: &Host, key: &Path, label: &str) -> Mux {
        let user = label.split('-').next().unwrap_or(label);
        let sock = h.keys.path().join(format!("mux-{label}"));
        let mut argv = h.ssh_command(key, user);
        argv.insert(1, format!("ControlPath={}", sock.display()));
        argv.insert(1, "-o".into());
        let mut m = argv.clone();
        m.splice(
            1..1,
            [
                "-o".to_string(),
                "ControlMaster=yes".to_string(),
                "-N".to_string(),
            ],
        );
        let master = Command::new(&m[0])
            .args(&m[1..])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("the master connection", || sock.exists());
        Mux { argv, master }
    }

    /// `ssh [-tt] ... COMMAND` through the master connection.
    fn ssh(&self, args: &[&str]) -> Out {
        output(&mut self.command(args))
    }

    fn command(&self, args: &[&str]) -> Command {
        let (opts, args): (Vec<&str>, Vec<&str>) = match args.first() {
            Some(&"-tt") => (vec!["-tt"], args[1..].to_vec()),
            _ => (vec![], args.to_vec()),
        };
        let mut c = Command::new(&self.argv[0]);
        c.args(["-o", "ControlMaster=no"])
            .args(opts)
            .args(&self.argv[1..])
            .args(args)
            .stdin(Stdio::null());
        c
    }
}

impl Drop for Mux {
    fn drop(&mut self) {
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

#[test]
fn a_lock_ends_an_open_multiplexed_connection_and_a_demotion_applies_to_its_next_command() {
    let h = Host::start(CORDON);
    h.user("root-admin", "admin");
    let alice = h.user("alice", "developer");
    let bob = h.user("bob", "developer");

    let mut m = Mux::open(&h, &alice, "alice");
    assert_eq!(m.ssh(&["whoami"]).stdout, "alice (developer)\n");
    // A long run on the connection, which the lock must end too.
    let mut long = m.command(&["run", "--", "sleep", "60"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(h.cordon(&["user", "lock", "alice"]).code, 0);
    let start = Instant::now();
    wait_until("the master connection to close", || {
        m.master.try_wait().unwrap().is_some()
    });
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "closed within a second or so: {:?}",
        start.elapsed()
    );
    wait_until("the run to end", || long.try_wait().unwrap().is_some());
    let out = m.ssh(&["token"]);
    assert!(
        out.code != 0 && !out.stdout.contains("access_token"),
        "no token after the lock: {out:?}"
    );
    assert!(h.audit_log().contains("\"ssh.disconnect\""));

    let b = Mux::open(&h, &bob, "bob");
    assert_eq!(b.ssh(&["whoami"]).stdout, "bob (developer)\n");
    assert_eq!(h.cordon(&["user", "role", "bob", "viewer"]).code, 0);
    assert_eq!(
        b.ssh(&["whoami"]).stdout,
        "bob (viewer)\n",
        "the next command sees the new role"
    );
    let out = b.ssh(&["-tt", "new", "--", "true"]);
    assert!(
        out.stderr.contains("a viewer may not start sessions")
            || out.stdout.contains("a viewer may not start sessions"),
        "{out:?}"
    );
    let out = b.ssh(&["run", "--", "true"]);
    assert_eq!(out.code, 126, "{out:?}");
}

#[test]
fn a_demoted_user_attached_to_a_session_is_detached_within_a_second() {
    let h = Host::start(CORDON);
    h.user("root-admin", "admin");
    let bob = h.user("bob", "developer");
    h.tmux_ssh("bob", &bob, "bob", "new -- bash");
    h.keep("bob");
    h.wait_for("bob", "$");
    h.keys("bob", &["echo still-here", "Enter"]);
    h.wait_for("bob", "still-here");
    assert_eq!(h.cordon(&["user", "role", "bob", "viewer"]).code, 0);
    let screen = h.wait_for("bob", "the host ended this view");
    assert!(
        screen.contains("a viewer may not type into session"),
        "{screen}"
    );
}

#[test]
fn a_removed_user_added_again_inherits_nothing() {
    let h = Host::start(CORDON);
    h.user("root-admin", "admin");
    let old = h.user("alice", "developer");
    let out = h.session(&old, "alice", "echo old-alice-was-here");
    assert!(out.stdout.contains("old-alice-was-here"), "{out:?}");
    assert_eq!(
        run(&h, &old, "alice", &["--", "sh", "-c", "'echo old > note'"]).code,
        0
    );
    let token = h.ssh(&old, "alice", &["token"]);
    let token: serde_json::Value = serde_json::from_str(&token.stdout).unwrap();
    let old_uid = h.uid("alice");

    let out = h.cordon(&["user", "remove", "alice"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        h.ssh(&old, "alice", &["whoami"]).code != 0,
        "the old key is gone with the user"
    );
    let new = h.keygen("alice-again");
    let public = std::fs::read_to_string(new.with_extension("pub")).unwrap();
    assert_eq!(
        h.cordon(&[
            "user",
            "add",
            "alice",
            "--role",
            "developer",
            "--key",
            public.trim()
        ])
        .code,
        0
    );
    assert_ne!(h.uid("alice"), old_uid, "a new user, a new uid");

    // Less the empty read-only directories that hold the protected paths a fresh workspace
    // lacks while a session runs (docs/profiles.md): the sandbox's own, not old alice's.
    let out = run(
        &h,
        &new,
        "alice",
        &[
            "--",
            "sh",
            "-c",
            "'ls -A -I .git -I .vscode -I .idea -I .claude -I .mcp.json; id -u'",
        ],
    );
    assert_eq!(
        out.stdout,
        format!("{}\n", h.uid("alice")),
        "an empty workspace: {out:?}"
    );
    let out = run(&h, &new, "alice", &["--", "sh", "-c", "'ls -A $HOME'"]);
    assert_eq!(out.stdout, "", "an empty home: {out:?}");
    // The old recording is not hers; the old token does not act for her.
    let recs = h.cordon(&["rec", "ls", "--json"]);
    let recs: serde_json::Value = serde_json::from_str(&recs.stdout).unwrap();
    assert_eq!(recs.as_array().unwrap().len(), 1);
    let old_id = recs[0]["user_id"].as_i64().unwrap();
    let api = |t: &str, path: &str| {
        let o = output(
            Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-H",
                    &format!("Authorization: Bearer {t}"),
                ])
                .arg(format!("http://127.0.0.1:{}{path}", h.api)),
        );
        o.stdout
    };
    assert_eq!(
        api(token["access_token"].as_str().unwrap(), "/v1/sessions"),
        "401"
    );
    let fresh = h.ssh(&new, "alice", &["token"]);
    let fresh: serde_json::Value = serde_json::from_str(&fresh.stdout).unwrap();
    let listing = output(
        Command::new("curl")
            .args([
                "-s",
                "-H",
                &format!(
                    "Authorization: Bearer {}",
                    fresh["access_token"].as_str().unwrap()
                ),
            ])
            .arg(format!("http://127.0.0.1:{}/v1/recordings", h.api)),
    );
    assert_eq!(
        listing.stdout.trim(),
        "[]",
        "the old alice's recordings are not the new alice's"
    );
    let moved: Vec<_> = std::fs::read_dir(h.data.path().join("workspaces/.removed"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        moved
            .iter()
            .any(|n| n.to_string_lossy().starts_with(&format!("alice-{old_id}-"))),
        "{moved:?}"
    );
}

#[test]
fn a_host_short_of_file_descriptors_survives_a_connection_flood_and_then_serves_a_login() {
    let h = Host::start_limited(
        CORDON,
        "login_grace = \"3s\"\nmax_unauthenticated = 2000\nmax_unauthenticated_per_address = 2000",
        Some(96),
    );
    let alice = h.user("alice", "developer");
    raise_own_open_files();
    let mut flood = Vec::new();
    for _ in 0..600 {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", h.port)) {
            flood.push(s);
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut h = h;
    assert!(
        h.child.try_wait().unwrap().is_none(),
        "the host is still running"
    );
    drop(flood);
    let start = Instant::now();
    let out = loop {
        let out = h.ssh(&alice, "alice", &["whoami"]);
        if out.code == 0 || start.elapsed() > Duration::from_secs(20) {
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(out.stdout, "alice (developer)\n", "{out:?}");
}

#[test]
fn a_flood_from_one_address_does_not_lock_out_another() {
    let h = Host::start_with(CORDON, "max_unauthenticated_per_address = 4");
    let alice = h.user("alice", "developer");
    let flood: Vec<_> = (0..50)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", h.port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut argv = h.ssh_command(&alice, "alice");
    argv.splice(1..1, ["-b".to_string(), "127.0.0.2".to_string()]);
    let out = output(
        Command::new(&argv[0])
            .args(&argv[1..])
            .arg("whoami")
            .stdin(Stdio::null()),
    );
    assert_eq!(out.stdout, "alice (developer)\n", "{out:?}");
    let refused = h.audit_log().matches("\"ssh.refused\"").count();
    assert!(
        (1..=20).contains(&refused),
        "refusals are audited in bounded form: {refused}"
    );
    drop(flood);
}

#[test]
fn a_connection_that_does_not_log_in_is_closed_after_the_grace_time() {
    let h = Host::start_with(CORDON, "login_grace = \"2s\"");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", h.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Says its version and then nothing more, as a slow client would.
    s.write_all(b"SSH-2.0-slow\r\n").unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
    wait_until("the timeout's audit line", || {
        h.audit_log().contains("no login within 2 s")
    });
}

fn raise_own_open_files() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max.min(65536);
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

#[test]
fn run_counts_against_the_per_user_limit() {
    let h = Host::start_with(CORDON, "[sessions]\nmax_per_user = { developer = 1 }");
    let alice = h.user("alice", "developer");
    let argv = h.ssh_command(&alice, "alice");
    let mut long = Command::new(&argv[0])
        .args(&argv[1..])
        .args(["run", "--", "sleep", "4"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the run to start", || {
        h.audit_log().contains("\"session.create\"")
            || std::fs::read_dir(h.workspace("alice")).is_ok()
    });
    std::thread::sleep(Duration::from_millis(700));
    let out = run(&h, &alice, "alice", &["--", "true"]);
    assert_eq!(out.code, 126, "a second run is over the limit: {out:?}");
    assert!(out.stderr.contains("already runs 1"), "{out:?}");
    let out = h.session(&alice, "alice", "true");
    assert!(
        out.stderr.contains("already runs 1") || out.stdout.contains("already runs 1"),
        "so is a session: {out:?}"
    );
    assert!(long.wait().unwrap().success());
    assert_eq!(
        run(&h, &alice, "alice", &["--", "true"]).code,
        0,
        "the place is free again"
    );
}

#[test]
fn observers_past_the_cap_are_refused() {
    let h = Host::start_with(CORDON, "[sessions]\nmax_viewers = 2");
    let alice = h.user("alice", "developer");
    let carol = h.user("carol", "auditor");
    h.tmux_ssh("s", &alice, "alice", "new -- sh");
    h.wait_for("s", "$");
    let mut watching = Vec::new();
    for _ in 0..2 {
        let argv = h.ssh_command(&carol, "carol");
        watching.push(
            Command::new(&argv[0])
                .args(&argv[1..])
                .args(["observe", "alice-1"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    // alice's own attach is one viewer; with one observer the session is full.
    wait_until("the viewers to attach", || {
        h.audit_log().matches("\"session.observe\"").count() >= 1
    });
    std::thread::sleep(Duration::from_millis(500));
    let out = h.ssh(&carol, "carol", &["observe", "alice-1"]);
    assert_eq!(out.code, 126, "{out:?}");
    assert!(out.stderr.contains("already has 2 viewers"), "{out:?}");
    for mut w in watching {
        let _ = w.kill();
        let _ = w.wait();
    }
}

#[test]
fn a_data_directory_that_existed_open_to_others_is_tightened_and_doctor_says_so() {
    let h = Host::start(CORDON);
    h.user("alice", "developer");
    let state = h.state();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        state.join("cordon.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let doctor = h.cordon(&["doctor"]);
    assert_eq!(doctor.code, 1, "{doctor:?}");
    assert!(
        doctor.stdout.contains("LOOSE") && doctor.stdout.contains("cordon.db"),
        "{doctor:?}"
    );
    // Any host command (here `user list`, as the next start of the host would) tightens it.
    let out = h.cordon(&["user", "list"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr
            .contains("open to others (mode 755); it is 0700 now")
            && out
                .stderr
                .contains("cordon.db was readable by others; it is 0600 now"),
        "{out:?}"
    );
    assert_eq!(std::fs::metadata(&state).unwrap().mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::metadata(state.join("cordon.db")).unwrap().mode() & 0o777,
        0o600
    );
    let doctor = h.cordon(&["doctor"]);
    assert_eq!(doctor.code, 0, "{doctor:?}");
}

#[test]
fn user_add_changes_nothing_on_a_bad_key_and_points_an_existing_user_to_key_add() {
    let dir = tempfile::tempdir().unwrap();
    let cordon = |args: &[&str]| {
        output(
            Command::new(CORDON)
                .arg("--data-dir")
                .arg(dir.path())
                .args(args)
                .env_remove("CORDON_CONFIG"),
        )
    };
    // `--key "$(cat missing.pub)"` gives an empty word.
    let out = cordon(&["user", "add", "alice", "--key", ""]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not an SSH public key line"), "{out:?}");
    let list = cordon(&["user", "list"]);
    assert!(
        list.stdout.contains("no users yet"),
        "nothing was added: {list:?}"
    );

    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id");
    cordon_test_support::ssh::keygen(&key, "alice");
    let line = cordon_test_support::ssh::public_key(&key);
    assert_eq!(cordon(&["user", "add", "alice"]).code, 0);
    let again = cordon(&["user", "add", "alice", "--key", &line]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(
        again.stderr.contains("there is already a user alice")
            && again.stderr.contains("cordon user key add alice"),
        "{again:?}"
    );
    let added = cordon(&["user", "key", "add", "alice", &line]);
    assert_eq!(added.code, 0, "the hint's command works: {added:?}");
}

#[test]
fn a_new_data_directory_starts_private() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = output(
        Command::new(CORDON)
            .arg("--data-dir")
            .arg(&state)
            .args(["user", "add", "alice"])
            .env_remove("CORDON_CONFIG"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    for (p, mode) in [
        (state.clone(), 0o700),
        (state.join("cordon.db"), 0o600),
        (state.join("keys"), 0o700),
        (state.join("audit.log"), 0o600),
    ] {
        assert_eq!(
            std::fs::metadata(&p).unwrap().mode() & 0o777,
            mode,
            "{}",
            p.display()
        );
    }
}

#[test]
fn a_link_planted_at_an_exports_name_is_replaced_and_its_target_untouched() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let out = h.session(&alice, "alice", "echo exported-text");
    assert!(out.stdout.contains("exported-text"), "{out:?}");
    let id = h.recordings()[0]["id"].as_str().unwrap().to_string();
    // The host's file a session would like overwritten, as root.
    let victim = h.data.path().join("victim-bashrc");
    std::fs::write(&victim, "original").unwrap();
    let plant = format!(
        "'mkdir -p exports && ln -s {} exports/{id}.cast'",
        victim.display()
    );
    assert_eq!(
        run(&h, &alice, "alice", &["--", "sh", "-c", &plant]).code,
        0
    );

    // Export from the TUI, as the attack did.
    h.tmux_ssh("tui", &alice, "alice", "");
    h.wait_for("tui", "1 Sessions");
    h.keys("tui", &["2"]);
    h.wait_for("tui", "Recordings (1 of 1)");
    h.keys("tui", &["e"]);
    h.wait_for("tui", "exported for asciinema");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "original",
        "the link's target was written"
    );
    let exported = h.workspace("alice").join(format!("exports/{id}.cast"));
    let meta = std::fs::symlink_metadata(&exported).unwrap();
    assert!(
        meta.file_type().is_file() && meta.uid() == h.uid("alice"),
        "a file of alice's replaced the link"
    );
    assert!(std::fs::read_to_string(&exported)
        .unwrap()
        .contains("exported-text"));

    // The exports folder itself a link: refused, nothing written through it.
    let aside = h.data.path().join("aside");
    std::fs::create_dir(&aside).unwrap();
    let swap = format!("'rm -rf exports && ln -s {} exports'", aside.display());
    assert_eq!(run(&h, &alice, "alice", &["--", "sh", "-c", &swap]).code, 0);
    h.keys("tui", &["e"]);
    h.wait_for("tui", "symbolic link");
    assert_eq!(std::fs::read_dir(&aside).unwrap().count(), 0);
}

#[test]
fn channels_per_connection_and_connections_per_user_are_capped() {
    let h = Host::start_with(CORDON, "max_channels = 2\nmax_connections_per_user = 2");
    let alice = h.user("alice", "developer");
    let m = Mux::open(&h, &alice, "alice");
    let mut held: Vec<_> = (0..2)
        .map(|_| {
            m.command(&["run", "--", "sleep", "5"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    // A third channel on the master connection is refused (OpenSSH then falls back to a
    // connection of its own, the user's second).
    let out = m.ssh(&["whoami"]);
    assert!(
        out.stderr.contains("Session open refused by peer"),
        "a third channel on the connection: {out:?}"
    );
    // The master is one connection; a second is allowed, a third is not.
    let second = Mux::open(&h, &alice, "alice-2");
    assert_eq!(second.ssh(&["whoami"]).stdout, "alice (developer)\n");
    let out = h.ssh(&alice, "alice", &["whoami"]);
    assert_eq!(
        out.code, 255,
        "a third connection of the same user: {out:?}"
    );
    assert!(h.audit_log().contains("max_connections_per_user"));
    for c in &mut held {
        let _ = c.kill();
        let _ = c.wait();
    }
}
