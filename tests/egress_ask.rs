//! Ask mode (`[network] unknown = "ask"`) through a real host, as the session's owner meets
//! it: a connection to a destination no rule names waits; the owner answers through the
//! API (allow once, then deny) or in the attached SSH client's question line; nobody else
//! can answer; each question and answer is audited, counted in /metrics, and on the
//! recording's timeline. Runs as root in CI.

use cordon_test_support::host::Host;
use cordon_test_support::http;
use cordon_test_support::wait::wait_until;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// A profile that asks about everything (it allows nothing), found by the host through
/// `$XDG_CONFIG_HOME`; the host's proxy maps the test names to loopback
/// (`CORDON_EGRESS_RESOLVE`, which the host passes to the proxy, never to the session).
fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = std::env::temp_dir().join(format!("cordon-ask-test-{}", std::process::id()));
        let profiles = dir.join("cordon/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        std::fs::write(
            profiles.join("asking.toml"),
            "extends = \"default\"\n[exec]\nallow = [\"curl\"]\n[network]\nmode = \"proxy\"\nunknown = \"ask\"\nask_wait = 60\n",
        )
        .unwrap();
        // SAFETY: set once, before this binary starts any thread that reads the environment
        // (Once makes every test wait for it).
        unsafe {
            std::env::set_var("XDG_CONFIG_HOME", &dir);
            std::env::set_var(
                "CORDON_EGRESS_RESOLVE",
                "new.test=127.0.0.1,other.test=127.0.0.1",
            );
        }
    });
}

fn host() -> Host {
    setup();
    Host::start_with(
        CORDON,
        "[sessions]\nprofiles = { developer = [\"default\", \"asking\"] }",
    )
}

/// An HTTP server on loopback that answers every request with `body`.
fn http_server(body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn token(h: &Host, user: &str) -> String {
    let out = h.cordon(&["token", "issue", user]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    v["access_token"].as_str().unwrap().to_string()
}

fn api(h: &Host, token: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut r =
        std::io::BufReader::new(std::net::TcpStream::connect(("127.0.0.1", h.api)).unwrap());
    let (status, out) = http::exchange(&mut r, token, method, path, body);
    (status, serde_json::from_slice(&out).unwrap_or(Value::Null))
}

/// Waits for the question with number `ask` among the caller's, and returns it.
fn question(h: &Host, token: &str, ask: u64) -> Value {
    let mut found = Value::Null;
    wait_until(&format!("question {ask}"), || {
        let (status, list) = api(h, token, "GET", "/v1/questions", "");
        assert_eq!(status, 200, "{list}");
        found = list
            .as_array()
            .and_then(|l| l.iter().find(|q| q["ask"] == ask).cloned())
            .unwrap_or(Value::Null);
        !found.is_null()
    });
    found
}

/// Starts `script` in a new session of `user` under "asking", in the background; the
/// session's output when it ends.
fn session_in_background(
    h: &Host,
    key: &Path,
    user: &str,
    script: &str,
) -> std::thread::JoinHandle<String> {
    let mut argv = h.ssh_command(key, user);
    argv.insert(1, "-tt".into());
    let script = script.to_string();
    std::thread::spawn(move || {
        let o = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .args(["new", "--profile", "asking", "--", "sh", "-c"])
            .arg(format!("'{script}'"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    })
}

#[test]
fn an_unlisted_name_waits_for_the_owners_answer_through_the_api_allowed_once_then_denied() {
    let h = host();
    let alice = h.user("alice", "developer");
    let _bob = h.user("bob", "developer");
    let port = http_server("hello from outside");
    let url = format!("http://new.test:{port}/");
    let session = session_in_background(
        &h,
        &alice,
        "alice",
        &format!("curl -sS -m 90 {url}; echo; curl -sS -m 90 {url}; echo; echo finished"),
    );
    let (alice_token, bob_token) = (token(&h, "alice"), token(&h, "bob"));

    let q = question(&h, &alice_token, 1);
    assert_eq!(q["host"], "new.test", "{q}");
    assert_eq!(q["port"], port, "{q}");
    assert_eq!(q["protocol"], "http", "{q}");
    assert!(q["seconds_left"].as_u64().unwrap() > 30, "{q}");
    let id = q["session"].as_str().unwrap().to_string();

    // Nobody but the owner sees or answers it.
    let (status, _) = api(
        &h,
        &bob_token,
        "GET",
        &format!("/v1/sessions/{id}/questions"),
        "",
    );
    assert_eq!(status, 404);
    let (status, _) = api(
        &h,
        &bob_token,
        "POST",
        &format!("/v1/sessions/{id}/questions/1"),
        r#"{"answer":"once"}"#,
    );
    assert_eq!(status, 404);
    let (status, body) = api(
        &h,
        &alice_token,
        "POST",
        &format!("/v1/sessions/{id}/questions/1"),
        r#"{"answer":"always"}"#,
    );
    assert_eq!(status, 400, "{body}");

    let (status, body) = api(
        &h,
        &alice_token,
        "POST",
        &format!("/v1/sessions/{id}/questions/1"),
        r#"{"answer":"once"}"#,
    );
    assert_eq!(status, 200, "{body}");
    // Once is once: the second request asks again.
    let q = question(&h, &alice_token, 2);
    assert_eq!(q["host"], "new.test", "{q}");
    let (status, body) = api(
        &h,
        &alice_token,
        "POST",
        &format!("/v1/sessions/{id}/questions/2"),
        r#"{"answer":"deny"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _) = api(
        &h,
        &alice_token,
        "POST",
        &format!("/v1/sessions/{id}/questions/2"),
        r#"{"answer":"once"}"#,
    );
    assert_eq!(status, 404, "answered already");

    let out = session.join().unwrap();
    assert_eq!(out.matches("hello from outside").count(), 1, "{out}");
    assert!(out.contains("refused by the session's owner"), "{out}");
    assert!(out.contains("finished"), "{out}");

    let log = h.audit_log();
    let events: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of = |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["event"] == kind).collect() };
    let asks = of("net.ask");
    assert_eq!(asks.len(), 2, "{log}");
    assert!(
        asks.iter()
            .all(|e| e["actor"] == "alice" && e["host"] == "new.test"),
        "{log}"
    );
    let answers: Vec<(&str, &str)> = of("net.answer")
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["answer"].as_str().unwrap()))
        .collect();
    assert_eq!(answers, [("alice", "once"), ("alice", "deny")], "{log}");
    wait_until("both attempts audited", || {
        h.audit_log().matches("\"net.connect\"").count() == 2
    });
    let log = h.audit_log();
    let connects: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "net.connect")
        .collect();
    assert_eq!(connects[0]["allowed"], true, "{log}");
    assert_eq!(
        connects[0]["verdict"],
        "allowed once by the session's owner"
    );
    assert_eq!(connects[1]["allowed"], false, "{log}");
    assert_eq!(connects[1]["verdict"], "refused by the session's owner");

    // Counted for /metrics.
    let admin = h.user("root2", "admin");
    let _ = admin;
    let metrics = String::from_utf8_lossy(&http::request(
        h.api,
        &token(&h, "root2"),
        "GET",
        "/metrics",
        "",
    ))
    .into_owned();
    for line in [
        "cordon_egress_questions_total{outcome=\"asked\"} 2",
        "cordon_egress_questions_total{outcome=\"answered\"} 2",
        "cordon_egress_connections_total{verdict=\"allowed\"} 1",
        "cordon_egress_connections_total{verdict=\"refused\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // On the recording's timeline: the questions, the answers and the attempts.
    let rec = h.recordings()[0]["id"].as_str().unwrap().to_string();
    let cast = h.cordon(&["rec", "export", &rec]);
    for words in [
        format!("net: new.test:{port} waits for the owner's answer"),
        format!("net: new.test:{port}: alice answered once"),
        format!("net: new.test:{port} open (allowed once by the session's owner)"),
        format!("net: new.test:{port}: alice answered deny"),
        format!("net: new.test:{port} refused: refused by the session's owner"),
    ] {
        assert!(cast.stdout.contains(&words), "{words} in {}", cast.stdout);
    }
}

#[test]
fn the_attached_owner_answers_in_a_question_line_that_leaves_the_screen_as_it_was() {
    let h = host();
    let alice = h.user("alice", "developer");
    let port = http_server("fetched after the answer");
    h.tmux_ssh(
        "ask",
        &alice,
        "alice",
        // Quoted twice: once for tmux's shell, once for the remote command line.
        &format!("-t new --profile asking -- sh -c \"'echo top line; curl -sS -m 90 http://other.test:{port}/; echo; echo after; sleep 30'\""),
    );
    h.keep("ask");
    let screen = h.wait_for("ask", "asks to connect to other.test");
    assert!(
        screen.contains("o allow once, s allow for the session, d deny"),
        "{screen}"
    );
    assert!(screen.contains("top line"), "{screen}");
    // Typed at once, a key is held (it was meant for the program): no answer yet.
    h.keys("ask", &["x"]);
    std::thread::sleep(std::time::Duration::from_millis(800));
    h.keys("ask", &["s"]);
    let screen = h.wait_for("ask", "fetched after the answer");
    h.wait_gone("ask", "asks to connect");
    assert!(screen.contains("top line"), "{screen}");
    // The held key never reached the program (its line would read "xfetched...").
    assert!(!screen.contains("xfetched"), "{screen}");
    let log = h.audit_log();
    assert!(
        log.lines().any(|l| l.contains("\"net.answer\"")
            && l.contains("\"session\"")
            && l.contains("\"answer\":\"session\"")),
        "{log}"
    );
}
