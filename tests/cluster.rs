//! Several hosts sharing one store (issue 20): two real `cordon serve` hosts on this machine
//! share one SQLite file (`[store] url`), each with its own data directory, `[cluster] name`
//! and the same key ring (`cordon key backup` on the first, `cordon key restore --replace`
//! on the second). Users, locks and revocations made on one hold on the other within
//! seconds; each lists the other's sessions with its host; an attach there is redirected; a
//! killed host's sessions become lost; each host's audit chain verifies.

use cordon_test_support::host::Host;
use cordon_test_support::http::curl;
use cordon_test_support::wait::{poll, wait_until};
use std::path::Path;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

const PASSPHRASE: &str = "correct horse battery staple\n";

/// Two hosts, `a` and `b`, sharing the store in `_shared`.
struct Pair {
    a: Host,
    b: Host,
    _shared: tempfile::TempDir,
}

/// The configuration of host `name` on the shared store `db`: a beat a second, lost after
/// `lost_after` seconds of silence.
fn cluster_config(db: &Path, name: &str, lost_after: u64) -> String {
    format!(
        "[store]\nurl = \"sqlite:{}\"\n[cluster]\nname = \"{name}\"\nheartbeat = \"1s\"\nlost_after = \"{lost_after}s\"\n",
        db.display()
    )
}

/// Host `a`, then host `b` provisioned with `a`'s key ring before it starts; each is lost
/// after `lost_after` seconds of silence (long where a test needs none lost on a slow machine).
fn pair(lost_after: u64) -> Pair {
    let shared = tempfile::tempdir().unwrap();
    let db = shared.path().join("cordon.db");
    let a = Host::start_with(CORDON, &cluster_config(&db, "a", lost_after));
    let backup = shared.path().join("keys.backup");
    let out = a.cordon_with_input(
        &["key", "backup", "-o", backup.to_str().unwrap()],
        PASSPHRASE,
    );
    assert_eq!(out.code, 0, "{out:?}");
    let b = Host::start_prepared(CORDON, &cluster_config(&db, "b", lost_after), |cordon| {
        let mut c = cordon(&["key", "restore", "--replace", backup.to_str().unwrap()]);
        let out = cordon_test_support::process::output_with_input(&mut c, PASSPHRASE);
        assert_eq!(out.code, 0, "{out:?}");
    });
    Pair {
        a,
        b,
        _shared: shared,
    }
}

/// `ssh -tt ... ARGS` as `user` on `h` (attach needs a terminal), to its end; what the
/// host said (a terminal merges its streams).
fn ssh_tty(h: &Host, key: &Path, user: &str, args: &[&str]) -> String {
    let mut argv = h.ssh_command(key, user);
    argv.insert(1, "-tt".into());
    let out = cordon_test_support::process::output(
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .args(args)
            .stdin(std::process::Stdio::null()),
    );
    assert_ne!(out.code, 0, "{out:?}");
    out.all()
}

/// The sessions `user` sees on `h`, as `ls --json` answers.
fn sessions(h: &Host, key: &Path, user: &str) -> Vec<serde_json::Value> {
    let out = h.ssh(key, user, &["ls", "--json"]);
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn a_user_added_on_one_host_logs_in_on_the_other_and_a_lock_there_refuses_the_next_login_within_seconds(
) {
    let p = pair(30);
    let alice = p.a.user("alice", "developer");
    let out = p.b.ssh(&alice, "alice", &["whoami"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("alice (developer)"), "{out:?}");
    assert_eq!(p.a.cordon(&["user", "lock", "alice"]).code, 0);
    wait_until("the lock on a to refuse alice on b", || {
        p.b.ssh(&alice, "alice", &["whoami"]).code != 0
    });
    // Unlocked on b, she logs in on a again.
    assert_eq!(p.b.cordon(&["user", "unlock", "alice"]).code, 0);
    wait_until("the unlock on b to let alice in on a", || {
        p.a.ssh(&alice, "alice", &["whoami"]).code == 0
    });
}

#[test]
fn an_api_token_issued_on_one_host_works_on_the_other_until_revoked_on_the_first() {
    let p = pair(30);
    p.a.user("alice", "developer");
    let out = p.a.cordon(&["token", "issue", "alice"]);
    assert_eq!(out.code, 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let token = v["access_token"].as_str().unwrap().to_string();
    let on_b = curl(p.b.api, "GET", "/v1/sessions", Some(&token), None);
    assert_eq!(on_b.status, 200, "a's token on b: {}", on_b.body);
    let out = curl(
        p.a.api,
        "POST",
        "/v1/auth/logout",
        Some(&token),
        Some(&serde_json::json!({})),
    );
    assert!(out.status < 300, "logout on a: {} {}", out.status, out.body);
    wait_until("the revocation on a to refuse the token on b", || {
        curl(p.b.api, "GET", "/v1/sessions", Some(&token), None).status == 401
    });
}

#[test]
fn each_host_lists_the_others_sessions_with_its_name_and_an_attach_there_is_redirected() {
    let p = pair(30);
    let alice = p.a.user("alice", "developer");
    let bob = p.a.user("bob", "developer");
    let boss = p.a.user("boss", "admin");
    p.b.tmux_ssh("work", &alice, "alice", "new --name work -- cat");
    let id = poll(|| {
        sessions(&p.b, &alice, "alice")
            .iter()
            .find(|s| s["name"] == "work")
            .map(|s| s["id"].as_str().unwrap().to_string())
            .ok_or_else(|| "alice's session on b".to_string())
    });
    let short = &id[..8];
    // On a, alice and the admin see it, with its host; bob does not.
    let on_a = poll(|| {
        sessions(&p.a, &alice, "alice")
            .into_iter()
            .find(|s| s["id"] == id.as_str())
            .ok_or_else(|| {
                format!(
                    "b's session in a's list: {:?}",
                    sessions(&p.a, &alice, "alice")
                )
            })
    });
    assert_eq!(on_a["host"], "b");
    assert_eq!(on_a["state"], "running");
    assert!(sessions(&p.a, &boss, "boss")
        .iter()
        .any(|s| s["id"] == id.as_str()));
    assert!(!sessions(&p.a, &bob, "bob")
        .iter()
        .any(|s| s["id"] == id.as_str()));
    let table = p.a.ssh(&alice, "alice", &["ls"]).stdout;
    let line = table
        .lines()
        .find(|l| l.starts_with(short))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(line.trim_end().ends_with(" b"), "{table}");
    assert!(table.lines().next().unwrap().contains("HOST"), "{table}");
    // The API lists it too, with its host and where to reach it.
    let out = p.a.cordon(&["token", "issue", "alice"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let token = v["access_token"].as_str().unwrap();
    let list = curl(p.a.api, "GET", "/v1/sessions", Some(token), None).json();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{list}"))
        .clone();
    assert_eq!(entry["host"], "b");
    assert_eq!(entry["advertise"], format!("127.0.0.1:{}", p.b.port));

    // Attaching on a: redirected to b, with the command to get there.
    let out = ssh_tty(&p.a, &alice, "alice", &["attach", short]);
    let expected = format!(
        "session {short} runs on host b: connect to 127.0.0.1:{port} (ssh -t -p {port} 127.0.0.1 attach {short})",
        port = p.b.port
    );
    assert!(out.contains(&expected), "{out}");
    // Bob may not see it: the answer is that of a session that does not exist.
    let theirs = ssh_tty(&p.a, &bob, "bob", &["attach", &id]);
    let none = ssh_tty(&p.a, &bob, "bob", &["attach", "zzzzzzzzzzzz"]);
    assert!(theirs.contains("no session"), "{theirs}");
    assert_eq!(
        theirs.replace(&id, "X"),
        none.replace("zzzzzzzzzzzz", "X"),
        "no leak of another user's session on another host"
    );
    // The admin observing is redirected the same way.
    let out = ssh_tty(&p.a, &boss, "boss", &["observe", &id]);
    assert!(out.contains("runs on host b"), "{out}");

    // Each host's audit chain verifies, its events naming their host.
    for (h, name) in [(&p.a, "a"), (&p.b, "b")] {
        let out = h.cordon(&["audit", "verify"]);
        assert_eq!(out.code, 0, "host {name}: {out:?}");
        assert!(h.audit_log().contains(&format!("\"node\":\"{name}\"")));
    }
}

#[test]
fn a_killed_hosts_sessions_are_marked_lost_on_the_other_within_its_lost_after() {
    let mut p = pair(4);
    let alice = p.a.user("alice", "developer");
    p.b.tmux_ssh("work", &alice, "alice", "new --name work -- cat");
    let id = poll(|| {
        sessions(&p.a, &alice, "alice")
            .iter()
            .find(|s| s["name"] == "work" && s["host"] == "b")
            .map(|s| s["id"].as_str().unwrap().to_string())
            .ok_or_else(|| "b's session in a's list".to_string())
    });
    let _ = p.b.child.kill();
    let _ = p.b.child.wait();
    // Within lost_after and a heartbeat, given room on a slow machine.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !sessions(&p.a, &alice, "alice")
        .iter()
        .any(|s| s["id"] == id.as_str() && s["state"] == "lost")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "b's session is not lost in a's list: {:?}",
            sessions(&p.a, &alice, "alice")
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let table = p.a.ssh(&alice, "alice", &["ls"]).stdout;
    assert!(table.contains("(lost)"), "{table}");
    // Said once in a's audit log.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let log = p.a.audit_log();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"cluster.host_lost\""))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("\"host\":\"b\"") && said[0].contains("\"sessions\":1"),
        "{said:?}"
    );
    // An attach to it says it is lost.
    let out = ssh_tty(&p.a, &alice, "alice", &["attach", &id]);
    assert!(out.contains("which stopped beating"), "{out}");
}

#[test]
fn a_second_host_with_a_live_hosts_name_refuses_to_start_naming_it() {
    let shared = tempfile::tempdir().unwrap();
    let db = shared.path().join("cordon.db");
    let a = Host::start_with(CORDON, &cluster_config(&db, "a", 30));
    let Err(said) = Host::try_start(CORDON, &cluster_config(&db, "a", 30), None, |_| {}) else {
        panic!("a second host named a started");
    };
    assert!(
        said.contains(&format!(
            "another host named \"a\" is live (at 127.0.0.1:{}",
            a.port
        )),
        "{said}"
    );
}

#[test]
fn a_host_restarted_after_a_kill_marks_its_own_leftover_sessions_lost_at_once() {
    // Lost only after 30 s: what marks the session lost here is b's restart.
    let mut p = pair(30);
    let alice = p.a.user("alice", "developer");
    p.b.tmux_ssh("work", &alice, "alice", "new --name work -- cat");
    let id = poll(|| {
        sessions(&p.a, &alice, "alice")
            .iter()
            .find(|s| s["name"] == "work" && s["host"] == "b")
            .map(|s| s["id"].as_str().unwrap().to_string())
            .ok_or_else(|| "b's session in a's list".to_string())
    });
    // SIGKILL and start again at once, on the same data directory and name.
    p.b.restart();
    let lost = |h: &Host| {
        sessions(h, &alice, "alice")
            .iter()
            .any(|s| s["id"] == id.as_str() && s["state"] == "lost")
    };
    assert!(lost(&p.a), "{:?}", sessions(&p.a, &alice, "alice"));
    assert!(lost(&p.b), "b lists its own lost session");
    let log = p.b.audit_log();
    assert!(
        log.lines().any(|l| l.contains("\"cluster.host_lost\"")
            && l.contains("restarted without stopping cleanly")
            && l.contains("\"sessions\":1")),
        "{log}"
    );
}
