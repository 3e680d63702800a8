//! What the host shows people: strings that users, sessions and strangers control (commands,
//! session names, markers, login names) never reach a terminal raw, and secrets typed on a
//! command line are masked wherever the command is stored or shown.

use cordon_test_support::host::Host;
use cordon_test_support::process::output;
use cordon_test_support::wait::wait_until;
use std::process::{Command, Stdio};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// An OSC 52 sequence (sets the reader's clipboard), a title change and an erase-line.
const NASTY: &str = "\x1b]52;c;cm0gLXJmIH4=\x07\x1b]0;owned\x07\x1b[2K";

/// Logs in over SSH with `user` (whatever bytes it holds) and a key the host does not know,
/// as a stranger's client would (OpenSSH refuses to send such names).
fn stranger_login(port: u16, user: &str, key: &std::path::Path) {
    struct Client;
    impl russh::client::Handler for Client {
        type Error = russh::Error;
        async fn check_server_key(
            &mut self,
            _key: &russh::keys::PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            Ok(true)
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config = std::sync::Arc::new(russh::client::Config::default());
        let mut session = russh::client::connect(config, ("127.0.0.1", port), Client)
            .await
            .expect("connect");
        let key = russh::keys::load_secret_key(key, None).unwrap();
        let with = russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(key), None);
        let answer = session
            .authenticate_publickey(user, with)
            .await
            .expect("an answer");
        assert!(!answer.success(), "a stranger got in");
    });
}

#[test]
fn escape_sequences_in_commands_names_labels_and_login_names_never_reach_a_terminal_raw() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    // A command holding the sequences, run and in a session.
    let out = h.ssh(
        &alice,
        "alice",
        &["run", "--", "echo", &format!("'{NASTY}'")],
    );
    assert_eq!(out.code, 0, "{out:?}");
    let mut argv = h.ssh_command(&alice, "alice");
    argv.insert(1, "-tt".into());
    // A name holding them is refused (names have no control characters), and the refusal
    // does not echo them.
    let name = format!("'n{NASTY}'");
    let named = output(
        Command::new(&argv[0])
            .args(&argv[1..])
            .args(["new", "--name", &name, "--", "true"])
            .stdin(Stdio::null()),
    );
    assert_eq!(named.code, 2, "{named:?}");
    assert!(!named.stderr.contains('\x1b'), "{named:?}");
    let o = output(
        Command::new(&argv[0])
            .args(&argv[1..])
            .args(["new", "--", "echo", &format!("'{NASTY}'")])
            .stdin(Stdio::null()),
    );
    assert_eq!(o.code, 0, "{o:?}");
    // A marker's label holding them, on a session that is still running.
    let mut argv = h.ssh_command(&alice, "alice");
    argv.insert(1, "-tt".into());
    let mut running = Command::new(&argv[0])
        .args(&argv[1..])
        .args(["new", "--", "sleep", "20"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the second session", || {
        h.ssh(&alice, "alice", &["ls"]).stdout.contains("alice-")
    });
    let ls: serde_json::Value =
        serde_json::from_str(&h.ssh(&alice, "alice", &["ls", "--json"]).stdout).unwrap();
    let running_name = ls[0]["name"].as_str().unwrap().to_string();
    let marked = h.ssh(
        &alice,
        "alice",
        &["mark", &running_name, &format!("'l{NASTY}'")],
    );
    assert_eq!(marked.code, 0, "{marked:?}");
    assert!(!marked.stdout.contains('\x1b'), "{marked:?}");
    let _ = running.kill();
    let _ = running.wait();
    // A stranger whose "user name" is the sequence.
    stranger_login(h.port, &format!("x{NASTY}y"), &h.keygen("stranger"));

    for args in [
        vec!["audit", "tail", "-n", "100"],
        vec!["audit", "tail", "-n", "100", "--json"],
        vec!["rec", "ls"],
        vec!["rec", "ls", "--json"],
        vec!["rec", "search", "owned"],
    ] {
        let out = h.cordon(&args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        assert!(
            !out.stdout.contains('\x1b') && !out.stdout.contains('\x07'),
            "{args:?} printed raw escapes:\n{}",
            out.stdout
        );
    }
    let tail = h.cordon(&["audit", "tail", "-n", "100"]).stdout;
    assert!(
        tail.contains("\\x1b]52;c;cm0gLXJmIH4=\\x07"),
        "the sequence is shown, escaped:\n{tail}"
    );
    assert!(
        tail.contains("login.failed") && tail.contains("x\\x1b]52"),
        "the stranger's name is there, escaped:\n{tail}"
    );
    let rec_json: serde_json::Value =
        serde_json::from_str(&h.cordon(&["rec", "ls", "--json"]).stdout).expect("still JSON");
    assert!(
        rec_json
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["command"].as_str().unwrap().contains("\x1b]52")),
        "the JSON holds the real text, escaped as JSON"
    );
    let ls = h.ssh(&alice, "alice", &["ls", "--json"]);
    assert!(!ls.stdout.contains('\x1b'), "{ls:?}");
}

#[test]
fn secrets_on_a_command_line_are_masked_everywhere_the_command_is_shown() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    h.user("ada", "admin");
    let secrets = ["hunter2", "sk-live-123", "s3cr3tpw", "eyJhbGciOi.x.y"];
    let script =
        "sleep 30; : --password hunter2 API_TOKEN=sk-live-123 https://bob:s3cr3tpw@git.example/x";
    let mut argv = h.ssh_command(&alice, "alice");
    argv.insert(1, "-tt".into());
    let mut session = Command::new(&argv[0])
        .args(&argv[1..])
        .args([
            "new",
            "--",
            "sh",
            "-c",
            &format!("'{script}'"),
            "Authorization: Bearer eyJhbGciOi.x.y",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the session", || {
        h.ssh(&alice, "alice", &["ls"]).stdout.contains("alice-")
    });
    let out = h.ssh(
        &alice,
        "alice",
        &[
            "run",
            "--",
            "sh",
            "-c",
            "'true --token=sk-live-123 -- mysql -phunter2'",
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");

    let token = h.cordon(&["token", "issue", "ada"]).stdout;
    let t: serde_json::Value = serde_json::from_str(&token).unwrap();
    let api = |path: &str| {
        let o = Command::new("curl")
            .args([
                "-s",
                "-H",
                &format!(
                    "Authorization: Bearer {}",
                    t["access_token"].as_str().unwrap()
                ),
            ])
            .arg(format!("http://127.0.0.1:{}{path}", h.api))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let shown = [
        (
            "ssh ls --json",
            h.ssh(&alice, "alice", &["ls", "--json"]).stdout,
        ),
        ("rec ls", h.cordon(&["rec", "ls"]).stdout),
        ("rec ls --json", h.cordon(&["rec", "ls", "--json"]).stdout),
        ("GET /v1/sessions", api("/v1/sessions")),
        ("GET /v1/recordings", api("/v1/recordings")),
        ("the audit log", h.audit_log()),
        // Recording files: the header (in clear, bound to every chunk) names the command.
        (
            "the recording's header",
            std::fs::read_dir(h.state().join("recordings"))
                .unwrap()
                .flatten()
                .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned())
                .collect::<String>(),
        ),
        // The database's file and its write-ahead log, as bytes on disk.
        (
            "the database",
            ["cordon.db", "cordon.db-wal"]
                .iter()
                .map(|f| {
                    String::from_utf8_lossy(&std::fs::read(h.state().join(f)).unwrap_or_default())
                        .into_owned()
                })
                .collect::<String>(),
        ),
    ];
    for (place, text) in &shown {
        assert!(
            text.contains("--password ***")
                || text.contains("Bearer ***")
                || text.contains("--token=***"),
            "{place} shows the command:\n{text}"
        );
        for s in secrets {
            assert!(!text.contains(s), "{place} shows the secret {s}:\n{text}");
        }
    }
    let _ = session.kill();
    let _ = session.wait();
}

/// What a session prints that acts on a viewer's machine: OSC 52 (the clipboard), a
/// cursor-position query (the terminal answers into its input), a title, a DCS string.
const ACTS: &str = r"A\033]52;c;cm0gLXJmIH4=\007B\033[6nC\033]0;owned\007D\033P+q544e\033\\E";

#[test]
fn an_observer_and_a_replay_get_the_screen_but_nothing_that_acts_on_their_machine() {
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    let carol = h.user("carol", "auditor");
    let mut owner = h.ssh_command(&alice, "alice");
    owner.insert(1, "-tt".into());
    let script = format!("'sleep 1.5; printf \"{ACTS}\\n\"; sleep 2'");
    let owner = std::thread::spawn(move || {
        output(
            Command::new(&owner[0])
                .args(&owner[1..])
                .args(["new", "--", "sh", "-c", &script])
                .stdin(Stdio::null()),
        )
    });
    wait_until("the session", || {
        h.ssh(&carol, "carol", &["ls"]).stdout.contains("alice-")
    });
    let watched = h.ssh(&carol, "carol", &["observe", "alice-1"]);
    let owned = owner.join().unwrap();

    let text_of = |s: &str| {
        s.contains('A') && s.contains('B') && s.contains('C') && s.contains('D') && s.contains('E')
    };
    assert!(
        owned.stdout.contains("\x1b]52;c;cm0gLXJmIH4=\x07") && owned.stdout.contains("\x1b[6n"),
        "the owner's own view is byte-exact: {owned:?}"
    );
    assert!(text_of(&watched.stdout), "{watched:?}");
    for bad in ["\x1b]52", "\x1b[6n", "\x1b]0;", "\x1bP"] {
        assert!(
            !watched.stdout.contains(bad),
            "the observer got {bad:?}: {:?}",
            watched.stdout
        );
    }

    let id = h.recordings()[0]["id"].as_str().unwrap().to_string();
    let played = h.cordon(&["rec", "play", &id, "--speed", "20"]);
    assert_eq!(played.code, 0, "{played:?}");
    assert!(text_of(&played.stdout), "{played:?}");
    for bad in ["\x1b]52", "\x1b[6n", "\x1b]0;", "\x1bP"] {
        assert!(!played.stdout.contains(bad), "rec play wrote {bad:?}");
    }
    let raw = h.cordon(&["rec", "export", &id, "--raw"]);
    assert!(
        raw.stdout.contains("\x1b]52;c;cm0gLXJmIH4=\x07") && raw.stdout.contains("\x1bP+q544e"),
        "the raw export keeps every byte"
    );
}
