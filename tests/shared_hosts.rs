//! Issue 20 as production runs it: two real `cordon serve` hosts, each with its own data
//! directory and `[cluster] name`, sharing ONE PostgreSQL database (a real private server,
//! over TLS with its certificate and name checked) and ONE S3-compatible bucket (moto),
//! with the same key ring (`cordon key backup` on the first, `cordon key restore
//! --replace` on the second, as docs/deploy.md says). A user, a lock and a revocation made
//! on one hold on the other within seconds; each lists the other's sessions with its host
//! and redirects an attach there; a recording made on a host that is then killed, its data
//! directory out of reach, plays, seeks and verifies on the other from the bucket, while
//! its session shows as lost.

use cordon_test_support::host::Host;
use cordon_test_support::http::curl;
use cordon_test_support::objects::S3;
use cordon_test_support::postgres::PgServer;
use cordon_test_support::wait::{poll, wait_until};
use serde_json::json;
use std::path::Path;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

const PASSPHRASE: &str = "correct horse battery staple\n";

/// Two hosts, `a` and `b`, sharing a database of the process's PostgreSQL server and a
/// bucket of their own.
struct Pair {
    a: Host,
    b: Host,
    s3: S3,
    _backup: tempfile::TempDir,
}

/// The configuration of host `name`: the shared database and bucket, its own name.
fn config(pg: &PgServer, db: &str, s3: &S3, name: &str) -> String {
    format!(
        "[recordings]\nretention = \"30d\"\n{}{}[cluster]\nname = \"{name}\"\nheartbeat = \"1s\"\nlost_after = \"4s\"\n",
        pg.store_toml(db),
        s3.config("part_size = \"1\"\nupload_interval = \"1s\""),
    )
}

/// Host `a`, then host `b` provisioned with `a`'s key ring before it starts.
fn pair() -> Pair {
    let pg = PgServer::shared();
    let db = pg.create_database();
    let s3 = S3::start();
    let a = Host::start_with(CORDON, &config(pg, &db, &s3, "a"));
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("keys.backup");
    let out = a.cordon_with_input(
        &["key", "backup", "-o", backup.to_str().unwrap()],
        PASSPHRASE,
    );
    assert_eq!(out.code, 0, "{out:?}");
    let b = Host::start_prepared(CORDON, &config(pg, &db, &s3, "b"), |cordon| {
        let mut c = cordon(&["key", "restore", "--replace", backup.to_str().unwrap()]);
        let out = cordon_test_support::process::output_with_input(&mut c, PASSPHRASE);
        assert_eq!(out.code, 0, "{out:?}");
    });
    // Neither keeps a SQLite file: the store is the database.
    for h in [&a, &b] {
        assert!(!h.state().join("cordon.db").exists());
    }
    Pair {
        a,
        b,
        s3,
        _backup: dir,
    }
}

/// `ssh -tt ... ARGS` as `user` on `h` (attach needs a terminal), to its end, refused;
/// what the host said (a terminal merges its streams).
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

/// A token pair issued on `h` from its shell: (access, refresh).
fn issue(h: &Host, user: &str) -> (String, String) {
    let out = h.cordon(&["token", "issue", user]);
    assert_eq!(out.code, 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    (
        v["access_token"].as_str().unwrap().to_string(),
        v["refresh_token"].as_str().unwrap().to_string(),
    )
}

/// The status of `GET /v1/sessions` on `h` with `token`.
fn list_status(h: &Host, token: &str) -> u16 {
    curl(h.api, "GET", "/v1/sessions", Some(token), None).status
}

#[test]
fn on_one_postgresql_database_a_user_a_lock_and_a_token_made_on_one_host_hold_on_the_other_within_seconds(
) {
    let p = pair();
    // Added on a, alice logs in on b with OpenSSH.
    let alice = p.a.user("alice", "developer");
    p.a.user("boss", "admin");
    let out = p.b.ssh(&alice, "alice", &["whoami"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "alice (developer)\n"),
        "{out:?}"
    );
    // Locked on a, her next login on b is refused; unlocked on b, a lets her in again.
    assert_eq!(p.a.cordon(&["user", "lock", "alice"]).code, 0);
    wait_until("the lock on a to refuse alice on b", || {
        p.b.ssh(&alice, "alice", &["whoami"]).code != 0
    });
    assert_ne!(p.a.ssh(&alice, "alice", &["whoami"]).code, 0);
    assert_eq!(p.b.cordon(&["user", "unlock", "alice"]).code, 0);
    wait_until("the unlock on b to let alice in on a", || {
        p.a.ssh(&alice, "alice", &["whoami"]).code == 0
    });

    // A token a issued works on b, and its refresh token is taken there.
    let (token, refresh) = issue(&p.a, "alice");
    assert_eq!(list_status(&p.b, &token), 200);
    let renewed = curl(
        p.b.api,
        "POST",
        "/v1/auth/refresh",
        None,
        Some(&json!({ "refresh_token": refresh })),
    );
    assert_eq!(
        renewed.status, 200,
        "a's refresh token on b: {}",
        renewed.body
    );
    let renewed = renewed.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(list_status(&p.a, &renewed), 200, "b's token on a");
    // Logged out on a: refused on b within seconds.
    let out = curl(
        p.a.api,
        "POST",
        "/v1/auth/logout",
        Some(&token),
        Some(&json!({})),
    );
    assert!(out.status < 300, "logout on a: {} {}", out.status, out.body);
    wait_until("the logout on a to refuse the token on b", || {
        list_status(&p.b, &token) == 401
    });
    // An admin on a revokes every token of alice's: the one b issued is refused on b.
    assert_eq!(list_status(&p.b, &renewed), 200);
    let (admin, _) = issue(&p.a, "boss");
    let out = curl(
        p.a.api,
        "POST",
        "/v1/users/alice/revoke",
        Some(&admin),
        Some(&json!({})),
    );
    assert_eq!(out.status, 204, "{}", out.body);
    wait_until("the revocation on a to refuse b's token on b", || {
        list_status(&p.b, &renewed) == 401
    });
}

#[test]
fn on_one_postgresql_database_each_host_lists_the_others_session_with_its_name_and_redirects_an_attach_there(
) {
    let p = pair();
    let alice = p.a.user("alice", "developer");
    let bob = p.a.user("bob", "developer");
    p.a.tmux_ssh("mine", &alice, "alice", "new --name on-a -- cat");
    p.b.tmux_ssh("theirs", &alice, "alice", "new --name on-b -- cat");
    // Each host lists both, each with its host.
    for (h, name) in [(&p.a, "a"), (&p.b, "b")] {
        let listed = poll(|| {
            let list = sessions(h, &alice, "alice");
            let hosts: Vec<(String, String)> = list
                .iter()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or("").to_string(),
                        s["host"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            if hosts.contains(&("on-a".into(), "a".into()))
                && hosts.contains(&("on-b".into(), "b".into()))
            {
                Ok(list)
            } else {
                Err(format!("both sessions in {name}'s list: {list:?}"))
            }
        });
        assert!(listed.iter().all(|s| s["state"] == "running"), "{listed:?}");
    }
    assert!(sessions(&p.a, &bob, "bob").is_empty(), "bob sees neither");
    let id_of = |name: &str| {
        sessions(&p.a, &alice, "alice")
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (on_a, on_b) = (id_of("on-a"), id_of("on-b"));
    // Attaching on a to b's session: redirected to b, with the command to get there; and
    // the other way round.
    for (h, other, id, name) in [(&p.a, &p.b, &on_b, "b"), (&p.b, &p.a, &on_a, "a")] {
        let short = &id[..8];
        let out = ssh_tty(h, &alice, "alice", &["attach", short]);
        let expected = format!(
            "session {short} runs on host {name}: connect to 127.0.0.1:{port} (ssh -t -p {port} 127.0.0.1 attach {short})",
            port = other.port
        );
        assert!(out.contains(&expected), "{out}");
    }
    // Bob is told of b's session what he is told of one that does not exist.
    let theirs = ssh_tty(&p.a, &bob, "bob", &["attach", &on_b]);
    let none = ssh_tty(&p.a, &bob, "bob", &["attach", "zzzzzzzzzzzz"]);
    assert_eq!(
        theirs.replace(&on_b, "X"),
        none.replace("zzzzzzzzzzzz", "X")
    );
    // Each host's audit chain verifies, its checkpoint kept in the one database.
    for (h, name) in [(&p.a, "a"), (&p.b, "b")] {
        let out = h.cordon(&["audit", "verify"]);
        assert_eq!(out.code, 0, "host {name}: {out:?}");
        assert!(h.audit_log().contains(&format!("\"node\":\"{name}\"")));
    }
}

/// What host `b` has uploaded of recording `id` so far (the end of its last part), from
/// the upload state in its spool.
fn uploaded(b: &Host, id: &str) -> u64 {
    std::fs::read(b.state().join(format!("recordings/{id}.upload")))
        .ok()
        .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
        .and_then(|v| {
            v["parts"].as_array().and_then(|parts| {
                parts
                    .last()
                    .map(|p| p["offset"].as_u64().unwrap_or(0) + p["size"].as_u64().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

#[test]
fn a_recording_made_on_a_host_then_killed_plays_seeks_and_verifies_on_the_other_from_the_bucket_and_its_session_is_lost(
) {
    let mut p = pair();
    let alice = p.a.user("alice", "developer");
    // A session on b that ends: its recording complete, its index in the bucket.
    let out =
        p.b.session(&alice, "alice", "echo ended-$((6*7)); sleep 0.3");
    assert!(out.stdout.contains("ended-42"), "{out:?}");
    let ended = p.b.recordings()[0]["id"].as_str().unwrap().to_string();
    wait_until("the ended recording's index in the bucket", || {
        !p.s3
            .list(&format!("recordings/{ended}/index.json"))
            .is_empty()
    });
    // A session on b that still runs when b is killed: about 2 MB of output, a keyframe
    // after each MiB, uploaded in parts while it runs.
    p.b.tmux_ssh("s", &alice, "alice", "new --name work -- bash");
    p.b.wait_for("s", "$");
    p.b.keys("s", &["echo first-$((6*7))", "Enter"]);
    p.b.wait_for("s", "first-42");
    let running = poll(|| {
        p.b.recordings()
            .iter()
            .map(|r| r["id"].as_str().unwrap_or("").to_string())
            .find(|id| *id != ended)
            .ok_or_else(|| "the running session's recording".to_string())
    });
    let parts = || p.s3.list(&format!("recordings/{running}/part-"));
    wait_until("a part in the bucket", || !parts().is_empty());
    // Held on a while b still uploads it: the parts b puts after are held too (b learns
    // the hold from the shared catalogue, not from a's spool).
    let out = p.a.cordon(&["rec", "hold", &running]);
    assert_eq!(out.code, 0, "{out:?}");
    let held_before = parts().len();
    p.b.keys("s", &["seq 1 300000; echo last-$((6*7))", "Enter"]);
    p.b.wait_for("s", "last-42");
    let id = poll(|| {
        sessions(&p.a, &alice, "alice")
            .iter()
            .find(|s| s["name"] == "work" && s["host"] == "b")
            .map(|s| s["id"].as_str().unwrap().to_string())
            .ok_or_else(|| "b's session in a's list".to_string())
    });
    // Everything it printed is sealed (within a second) and then uploaded.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let sealed = std::fs::metadata(p.b.state().join(format!("recordings/{running}.rec")))
        .unwrap()
        .len();
    wait_until("b's output uploaded", || uploaded(&p.b, &running) >= sealed);
    let after = parts();
    assert!(after.len() > held_before, "{after:?}");
    for (key, _) in &after {
        assert_eq!(p.s3.lock_of(key).2, "ON", "{key} held");
    }

    // b is killed, and its data directory is out of a's reach.
    let _ = p.b.child.kill();
    let _ = p.b.child.wait();
    std::fs::rename(p.b.state(), p.b.data.path().join("unreachable")).unwrap();
    assert!(!p.b.state().exists());

    // Its session shows as lost on a within the heartbeat window.
    wait_until("b's session to be lost in a's list", || {
        sessions(&p.a, &alice, "alice")
            .iter()
            .any(|s| s["id"] == id.as_str() && s["state"] == "lost")
    });

    // a plays, seeks and verifies both recordings from the bucket, with its own data
    // directory and configuration.
    let listed: Vec<String> =
        p.a.recordings()
            .iter()
            .map(|r| r["id"].as_str().unwrap_or("").to_string())
            .collect();
    assert!(
        listed.contains(&ended) && listed.contains(&running),
        "{listed:?}"
    );
    let verify = p.a.cordon(&["rec", "verify", &ended]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(verify.stdout.contains("complete"), "{verify:?}");
    let played = p.a.cordon(&["rec", "play", &ended, "--speed", "50"]);
    assert_eq!(played.code, 0, "{played:?}");
    assert!(played.stdout.contains("ended-42"), "{played:?}");

    let before = p.s3.served();
    let screen = p.a.cordon(&["rec", "screen", &running, "--at", "3600"]);
    let fetched = p.s3.served() - before;
    assert_eq!(screen.code, 0, "{screen:?}");
    assert!(screen.stdout.contains("last-42"), "{screen:?}");
    assert!(
        fetched < sealed / 2,
        "a seek fetched {fetched} bytes of a recording of {sealed}"
    );
    let played = p.a.cordon(&[
        "rec",
        "play",
        &running,
        "--idle-limit",
        "0.1",
        "--speed",
        "50",
    ]);
    assert_eq!(played.code, 0, "{played:?}");
    for line in ["first-42", "300000", "last-42"] {
        assert!(played.stdout.contains(line), "{line} played");
    }
    let verify = p.a.cordon(&["rec", "verify", &running]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(verify.stdout.contains("interrupted"), "{verify:?}");
}

#[test]
fn a_recording_sealed_with_a_key_the_other_host_lacks_is_refused_there_saying_how_until_that_hosts_keys_are_restored(
) {
    let mut p = pair();
    let alice = p.a.user("alice", "developer");
    // b makes a new recording key current; a was not provisioned again.
    let out = p.b.cordon(&["key", "rotate"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out =
        p.b.session(&alice, "alice", "echo rotated-$((6*7)); sleep 0.3");
    assert!(out.stdout.contains("rotated-42"), "{out:?}");
    let id = p.b.recordings()[0]["id"].as_str().unwrap().to_string();
    wait_until("the recording's index in the bucket", || {
        !p.s3.list(&format!("recordings/{id}/index.json")).is_empty()
    });
    let backup = p.b.keys.path().join("b-keys.backup");
    let out = p.b.cordon_with_input(
        &["key", "backup", "-o", backup.to_str().unwrap()],
        PASSPHRASE,
    );
    assert_eq!(out.code, 0, "{out:?}");
    let _ = p.b.child.kill();
    let _ = p.b.child.wait();
    std::fs::rename(p.b.state(), p.b.data.path().join("unreachable")).unwrap();

    // a finds the recording in the bucket but not its key: it says which, and how to get it.
    let verify = p.a.cordon(&["rec", "verify", &id]);
    assert!(
        verify.all().contains("no recording key")
            && verify.all().contains("a backup of that host's keys"),
        "{verify:?}"
    );
    let played = p.a.cordon(&["rec", "play", &id, "--speed", "50"]);
    assert_ne!(played.code, 0, "{played:?}");
    assert!(!played.stdout.contains("rotated-42"), "{played:?}");
    // b's keys restored on a (added beside a's own): it plays.
    let out =
        p.a.cordon_with_input(&["key", "restore", backup.to_str().unwrap()], PASSPHRASE);
    assert_eq!(out.code, 0, "{out:?}");
    let verify = p.a.cordon(&["rec", "verify", &id]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(verify.stdout.contains("complete"), "{verify:?}");
    let played = p.a.cordon(&["rec", "play", &id, "--speed", "50"]);
    assert!(played.stdout.contains("rotated-42"), "{played:?}");
}
