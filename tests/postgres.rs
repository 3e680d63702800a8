//! A host whose store is PostgreSQL (a real private server, over TLS with the certificate
//! and its name checked): everything a host keeps in its store works there and survives a
//! restart, and the database going away refuses new logins saying so while running
//! sessions go on, until it is back (no restart of the host).

use cordon_test_support::host::Host;
use cordon_test_support::postgres::PgServer;
use cordon_test_support::process::{output, Out};
use cordon_test_support::wait::wait_until;
use serde_json::json;
use std::path::Path;
use std::process::{Command, Stdio};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// `ssh ... ARGS` at log level INFO, at which OpenSSH shows the host's banner.
fn ssh_told(h: &Host, key: &Path, user: &str, args: &[&str]) -> Out {
    let mut argv = h.ssh_command(key, user);
    argv.splice(1..1, ["-o".to_string(), "LogLevel=INFO".to_string()]);
    output(
        Command::new(&argv[0])
            .args(&argv[1..])
            .args(args)
            .stdin(Stdio::null()),
    )
}

#[test]
fn a_host_on_postgresql_keeps_users_sessions_recordings_and_locks_across_a_restart() {
    let pg = PgServer::shared();
    let db = pg.create_database();
    let mut h = Host::start_on_postgres(CORDON, pg, &db, "");
    let alice = h.user("alice", "developer");
    let out = h.session(&alice, "alice", "echo made-$((6*7))");
    assert!(out.stdout.contains("made-42"), "{out:?}");
    let recs = h.recordings();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["user"], "alice", "{recs:?}");
    // In PostgreSQL, not in a SQLite file of the data directory.
    assert!(!h.state().join("cordon.db").exists());
    assert_eq!(pg.query(&db, "SELECT name FROM users").trim(), "alice");
    assert_eq!(pg.query(&db, "SELECT COUNT(*) FROM recordings").trim(), "1");
    // store::SCHEMA_VERSION: the same number as SQLite's `user_version`.
    assert_eq!(
        pg.query(&db, "SELECT version FROM schema_version").trim(),
        "9"
    );

    let out = h.cordon(&["user", "lock", "alice"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = h.ssh(&alice, "alice", &["whoami"]);
    assert_ne!(out.code, 0, "a locked user is refused: {out:?}");

    h.restart();
    let out = h.ssh(&alice, "alice", &["whoami"]);
    assert_ne!(out.code, 0, "still locked after a restart: {out:?}");
    let out = h.cordon(&["user", "unlock", "alice"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = h.ssh(&alice, "alice", &["whoami"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "alice (developer)\n"),
        "{out:?}"
    );
    assert_eq!(h.recordings().len(), 1, "the catalogue is kept");
}

#[test]
fn with_the_database_down_sessions_go_on_logins_are_refused_saying_why_and_it_recovers_without_a_restart(
) {
    let pg = PgServer::start();
    let db = pg.create_database();
    let h = Host::start_on_postgres(CORDON, &pg, &db, "password_login = true");
    let alice = h.user("alice", "developer");
    h.passwd("alice", "Correct-Horse-42");
    h.tmux_ssh("s", &alice, "alice", "new -- sh");
    h.keys("s", &["echo before-$((1+1))", "Enter"]);
    h.wait_for("s", "before-2");

    pg.stop();
    // The running session is untouched, past several of the host's sweeps.
    std::thread::sleep(std::time::Duration::from_secs(3));
    h.keys("s", &["echo during-$((2+3))", "Enter"]);
    h.wait_for("s", "during-5");

    let out = ssh_told(&h, &alice, "alice", &["whoami"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("the host's database is unreachable"),
        "the client is told why: {out:?}"
    );
    let reply = cordon_test_support::http::curl(
        h.api,
        "POST",
        "/v1/auth/login",
        None,
        Some(&json!({"user": "alice", "password": "Correct-Horse-42"})),
    );
    assert!(
        reply.status >= 500 && reply.body.contains("database is unreachable"),
        "{} {}",
        reply.status,
        reply.body
    );
    assert!(
        !reply.body.contains("127.0.0.1"),
        "no detail for the caller"
    );

    pg.start_again();
    wait_until("a login once the database is back", || {
        h.ssh(&alice, "alice", &["whoami"]).code == 0
    });
    let reply = cordon_test_support::http::curl(
        h.api,
        "POST",
        "/v1/auth/login",
        None,
        Some(&json!({"user": "alice", "password": "Correct-Horse-42"})),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    h.keys("s", &["echo after-$((3+4))", "Enter"]);
    h.wait_for("s", "after-7");
}

#[test]
fn a_wrong_certificate_authority_or_password_is_refused_at_start_naming_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let pg = PgServer::shared();
    let db = pg.create_database();
    let dir = tempfile::tempdir().unwrap();
    // A CA that did not sign the server's certificate.
    let other_ca = dir.path().join("other.crt");
    let out = output(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:prime256v1")
            .args(["-nodes", "-days", "1", "-subj", "/CN=other", "-keyout"])
            .arg(dir.path().join("other.key"))
            .arg("-out")
            .arg(&other_ca),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let config = dir.path().join("c.toml");
    // The master key beside the test's data, never the machine's.
    let master = dir.path().join("master.key");
    std::fs::write(&master, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&master, std::fs::Permissions::from_mode(0o600)).unwrap();
    let keys = format!(
        "[keys]\nmaster_key_file = \"{}\"\n",
        dir.path().join("master.key").display()
    );
    std::fs::write(
        &config,
        keys.clone()
            + &pg.store_toml(&db).replace(
                &pg.ca_file.display().to_string(),
                &other_ca.display().to_string(),
            ),
    )
    .unwrap();
    let out = output(
        Command::new(CORDON)
            .arg("--data-dir")
            .arg(dir.path().join("state"))
            .arg("--config")
            .arg(&config)
            .args(["user", "list"]),
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("TLS to PostgreSQL") && out.stderr.contains("ca_file"),
        "{out:?}"
    );

    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-it\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        &config,
        keys + &pg.store_toml(&db).replace(
            &pg.password_file.display().to_string(),
            &wrong.display().to_string(),
        ),
    )
    .unwrap();
    let out = output(
        Command::new(CORDON)
            .arg("--data-dir")
            .arg(dir.path().join("state"))
            .arg("--config")
            .arg(&config)
            .args(["user", "list"]),
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("password_file") && !out.stderr.contains("not-it"),
        "{out:?}"
    );
}
