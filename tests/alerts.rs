//! Alerts and containment (issue 19) with a real host: failed password logins through the
//! API raise alerts that reach a webhook receiver on loopback with a valid signature, the
//! configured containment is applied (the address blocked, the user locked and their session
//! ended), the incident is listed with its timeline, /metrics counts the alerts, and a
//! receiver that fails its first attempts still gets the alert after the retries.

use cordon_test_support::host::Host;
use cordon_test_support::wait::wait_until;
use hmac::{Hmac, Mac};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");
const SECRET: &str = "a-test-secret-of-enough-length-0123";
const PASSWORD: &str = "correct horse battery staple 9";

/// One request the receiver got: its headers (lowercased names) and body.
#[derive(Clone, Debug)]
struct Got {
    headers: Vec<(String, String)>,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the signature is HMAC-SHA256 over `TIMESTAMP.BODY` with the secret.
    fn signed_with(&self, secret: &str) -> bool {
        let (Some(ts), Some(sig)) = (
            self.header("x-cordon-timestamp"),
            self.header("x-cordon-signature"),
        ) else {
            return false;
        };
        let Some(hex) = sig.strip_prefix("sha256=") else {
            return false;
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(self.body.as_bytes());
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        want == hex
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// A webhook receiver on loopback: answers the first `failing` requests 500, the rest 200.
struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn start(failing: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = got.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                if let Some(g) = read_request(&stream) {
                    seen.lock().unwrap().push(g);
                }
                let status = if n < failing {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let mut s = stream;
                let _ = s.write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
            }
        });
        Receiver { port, got }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<Got> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    let mut len = 0;
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':')?;
        let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_string());
        if n == "content-length" {
            len = v.parse().ok()?;
        }
        headers.push((n, v));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(Got {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A host with a webhook at `receiver` and the secret in a file of its own. The disk and
/// memory rules are off: the machine running the tests may be full, and their alerts would
/// reach the receiver too.
fn host(receiver: &Receiver, containment: &str) -> Host {
    let secret = std::env::temp_dir().join(format!(
        "cordon-alerts-{}-{}.secret",
        std::process::id(),
        receiver.port
    ));
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    Host::start_with(
        CORDON,
        &format!(
            "password_login = true\n{containment}\n[alerts.disk]\nenabled = false\n[alerts.memory]\nenabled = false\n[alerts.webhook]\nurl = \"http://127.0.0.1:{}/hook\"\nsecret_file = \"{}\"\nbackoff = \"1s\"\nattempts = 4\n",
            receiver.port,
            secret.display()
        ),
    )
}

/// Sets `user`'s password from the host's shell.
fn set_password(h: &Host, user: &str) {
    h.passwd(user, PASSWORD);
}

/// POST /v1/auth/login; the status and the body.
fn login(h: &Host, user: &str, password: &str) -> (u16, String) {
    let body = serde_json::json!({"user": user, "password": password}).to_string();
    let mut s = TcpStream::connect(("127.0.0.1", h.api)).unwrap();
    s.write_all(
        format!(
            "POST /v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}

/// GET `path` with a bearer token; the status and the whole answer.
fn get(h: &Host, token: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", h.api)).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}

fn ssh_ok(h: &Host, key: &std::path::Path, user: &str) -> bool {
    let argv = h.ssh_command(key, user);
    Command::new(&argv[0])
        .args(&argv[1..])
        .arg("ls")
        .stdin(Stdio::null())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn five_failed_logins_raise_a_signed_webhook_alert_block_the_address_and_lock_the_user() {
    let receiver = Receiver::start(0);
    let h = host(
        &receiver,
        "[alerts.failed_logins_address]\nactions = [\"block_address\"]\nblock_for = \"1h\"\n[alerts.failed_logins_user]\nactions = [\"lock_user\"]",
    );
    let admin = h.user("boss", "admin");
    let alice = h.user("alice", "developer");
    set_password(&h, "alice");
    // alice has a session running.
    h.tmux_ssh("alice", &alice, "alice", "new --name work -- sleep 1000");
    wait_until("alice's session starts", || {
        h.audit_log()
            .lines()
            .any(|l| l.contains("\"session.create\"") && l.contains("\"alice\""))
    });
    let token: serde_json::Value =
        serde_json::from_str(&h.cordon(&["token", "issue", "boss"]).stdout).unwrap();
    let token = token["access_token"].as_str().unwrap().to_string();

    for _ in 0..4 {
        assert_eq!(login(&h, "alice", "wrong password").0, 401);
    }
    assert!(receiver.got().is_empty(), "four failures raise nothing");
    assert_eq!(login(&h, "alice", "wrong password").0, 401);

    wait_until("the webhook receives both alerts", || {
        receiver.got().len() >= 2
    });
    let got = receiver.got();
    let rules: Vec<String> = got
        .iter()
        .map(|g| g.json()["rule"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        rules.contains(&"failed_logins_address".to_string()),
        "{got:?}"
    );
    assert!(rules.contains(&"failed_logins_user".to_string()), "{got:?}");
    for g in &got {
        assert!(g.signed_with(SECRET), "a valid signature: {g:?}");
        assert!(!g.signed_with("another secret of the same length!!"));
        assert_eq!(g.header("content-type"), Some("application/json"));
        let a = g.json();
        assert_eq!(a["count"], 5);
        assert_eq!(a["window_seconds"], 300);
        assert!(a["incident"].as_i64().unwrap() > 0);
    }
    let by_address = got
        .iter()
        .find(|g| g.json()["rule"] == "failed_logins_address")
        .unwrap()
        .json();
    assert_eq!(by_address["key"], "127.0.0.1");
    assert_eq!(by_address["actions"], serde_json::json!(["block_address"]));

    // The address is blocked: the right password is refused with the reason.
    let (status, answer) = login(&h, "alice", PASSWORD);
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer.contains("are blocked until") && answer.contains("cordon block rm 127.0.0.1"),
        "{answer}"
    );
    // ... and so is any other request, and SSH, even with a good key.
    assert_eq!(get(&h, &token, "/v1/sessions").0, 403);
    assert!(
        !ssh_ok(&h, &admin, "boss"),
        "SSH from a blocked address is closed"
    );

    // alice is locked and her session ended.
    let users: serde_json::Value =
        serde_json::from_str(&h.cordon(&["user", "list", "--json"]).stdout).unwrap();
    let alice_row = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "alice")
        .unwrap();
    assert_eq!(alice_row["locked"], true, "{users}");
    wait_until("alice's session ends", || {
        h.audit_log()
            .lines()
            .any(|l| l.contains("\"session.end\"") && l.contains("\"alice\""))
    });
    let log = h.audit_log();
    for event in [
        "alert.raised",
        "address.block",
        "user.lock",
        "address.refused",
    ] {
        assert!(log.contains(&format!("\"{event}\"")), "{event} audited");
    }

    // The incidents, with their timelines.
    let ls = h.cordon(&["incident", "ls"]);
    assert!(
        ls.stdout.contains("failed_logins_address") && ls.stdout.contains("127.0.0.1"),
        "{ls:?}"
    );
    let id = by_address["incident"].as_i64().unwrap().to_string();
    let show = h.cordon(&["incident", "show", &id]);
    assert_eq!(show.code, 0, "{show:?}");
    assert!(
        show.stdout.contains("alert.raised") && show.stdout.contains("address.block"),
        "{show:?}"
    );
    let blocks = h.cordon(&["block", "ls"]);
    assert!(blocks.stdout.contains("127.0.0.1"), "{blocks:?}");

    // Lifted by an admin: SSH and the API answer again, and /metrics counts the alerts.
    let rm = h.cordon(&["block", "rm", "127.0.0.1"]);
    assert_eq!(rm.code, 0, "{rm:?}");
    assert!(ssh_ok(&h, &admin, "boss"), "SSH works again once lifted");
    let (status, metrics) = get(&h, &token, "/metrics");
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains("cordon_alerts_total{rule=\"failed_logins_address\"} 1")
            && metrics.contains("cordon_alerts_total{rule=\"failed_logins_user\"} 1"),
        "{metrics}"
    );
    let show = h.cordon(&["incident", "show", &id]);
    assert!(show.stdout.contains("address.unblock"), "{show:?}");
}

#[test]
fn a_receiver_that_fails_its_first_attempts_gets_the_test_alert_after_retries() {
    let receiver = Receiver::start(2);
    let h = host(&receiver, "");
    let out = h.cordon(&["alert", "test"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("audit log: written") && out.stdout.contains("delivered (attempt 3)"),
        "{out:?}"
    );
    let got = receiver.got();
    assert_eq!(got.len(), 3, "{got:?}");
    for g in &got {
        assert!(g.signed_with(SECRET), "{g:?}");
        assert_eq!(g.json()["test"], true);
    }
    assert!(h.audit_log().contains("\"alert.test\""));
}

#[test]
fn a_test_alert_to_a_receiver_that_never_answers_well_says_it_failed() {
    let receiver = Receiver::start(usize::MAX);
    let h = host(&receiver, "");
    let out = h.cordon(&["alert", "test"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains("failed: not delivered after 4 attempts")
            && out.stdout.contains("500"),
        "{out:?}"
    );
}

/// `ssh USER@host ARGS` logging in with `password` only (OpenSSH's askpass, forced).
fn ssh_password(h: &Host, user: &str, password: &str) -> bool {
    let askpass = std::env::temp_dir().join(format!(
        "cordon-alerts-askpass-{}-{}",
        std::process::id(),
        h.port
    ));
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{password}'\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    Command::new("ssh")
        .args(["-p", &h.port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "LogLevel=ERROR", "-o", "PubkeyAuthentication=no"])
        .args(["-o", "PreferredAuthentications=password"])
        .args(["-o", "NumberOfPasswordPrompts=1"])
        .arg(format!("{user}@127.0.0.1"))
        .arg("ls")
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":0")
        .stdin(Stdio::null())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn five_failed_ssh_password_logins_block_the_address_across_a_restart_until_lifted() {
    let receiver = Receiver::start(0);
    let h = host(
        &receiver,
        "[alerts.failed_logins_address]\nactions = [\"block_address\"]\nblock_for = \"10m\"",
    );
    let key = h.user("dave", "developer");
    set_password(&h, "dave");
    assert!(ssh_password(&h, "dave", PASSWORD), "the password works");
    for _ in 0..5 {
        assert!(!ssh_password(&h, "dave", "wrong horse battery staple 9"));
    }
    wait_until("the webhook receives the alert", || {
        receiver
            .got()
            .iter()
            .any(|g| g.json()["rule"] == "failed_logins_address")
    });
    let got = receiver.got();
    let alert = got
        .iter()
        .find(|g| g.json()["rule"] == "failed_logins_address")
        .unwrap();
    assert!(alert.signed_with(SECRET), "{alert:?}");
    assert_eq!(alert.json()["key"], "127.0.0.1");
    assert!(
        // Even dave's key is refused (his password is also locked out by the older
        // per-login lockout, so the key is what shows the block).
        !ssh_ok(&h, &key, "dave"),
        "the address is blocked"
    );
    assert!(h
        .audit_log()
        .lines()
        .any(|l| l.contains("\"address.refused\"") && l.contains("\"ssh\"")));
    // The block is stored: a restarted host still refuses the address.
    let mut h = h;
    h.restart();
    assert!(!ssh_ok(&h, &key, "dave"), "still blocked after a restart");
    assert_eq!(h.cordon(&["block", "rm", "127.0.0.1"]).code, 0);
    assert!(ssh_ok(&h, &key, "dave"), "lifted");
}
