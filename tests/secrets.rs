//! Secrets for sessions, as a user and an attacker meet them: set through the command line
//! (standard input), the API and SSH; listed by name only; refused across users; put in the
//! environment of a session whose profile names them, and nowhere else: not in the
//! supervisor's command line or environment, not in the data directory, the database, the
//! audit log or a raw export, even after the session printed the value whole, split over two
//! writes and base64-encoded.

use cordon_test_support::host::Host;
use cordon_test_support::http;
use cordon_test_support::process::{output, Out};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// A profile that asks for TEST_API_KEY, in a profile directory the host finds through
/// `$XDG_CONFIG_HOME` (set for this test binary before any host starts; every test here
/// wants the same one).
fn profiles() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let dir = std::env::temp_dir().join(format!("cordon-secrets-test-{}", std::process::id()));
        let profiles = dir.join("cordon/profiles");
        std::fs::create_dir_all(&profiles).unwrap();
        std::fs::write(
            profiles.join("secretive.toml"),
            "extends = \"default\"\n[exec]\nallow = [\"base64\"]\n[env]\nsecrets = [\"TEST_API_KEY\"]\n",
        )
        .unwrap();
        // SAFETY: set once, before this binary starts any thread that reads the environment
        // (Once makes every test wait for it).
        std::env::set_var("XDG_CONFIG_HOME", &dir);
    });
}

fn host() -> Host {
    profiles();
    Host::start_with(
        CORDON,
        "[sessions]\nprofiles = { developer = [\"default\", \"secretive\"] }",
    )
}

/// `cordon ARGS` with `input` on its standard input.
fn cordon_with_input(h: &Host, args: &[&str], input: &[u8]) -> Out {
    let mut c = h.command(args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(128),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `ssh ... ARGS` with `input` on its standard input.
fn ssh_with_input(h: &Host, key: &Path, user: &str, args: &[&str], input: &[u8]) -> Out {
    let argv = h.ssh_command(key, user);
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    Out {
        code: o.status.code().unwrap_or(128),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn token(h: &Host, user: &str) -> String {
    let out = h.cordon(&["token", "issue", user]);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    v["access_token"].as_str().unwrap().to_string()
}

/// One API request: the status and the body.
fn api(h: &Host, token: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut r =
        std::io::BufReader::new(std::net::TcpStream::connect(("127.0.0.1", h.api)).unwrap());
    let (status, out) = http::exchange(&mut r, token, method, path, body);
    (status, String::from_utf8_lossy(&out).into_owned())
}

/// A value no test output holds by chance.
fn fresh_value(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("sk-{tag}-{nanos:x}{:x}Zq9", std::process::id())
}

fn run_in(h: &Host, key: &Path, user: &str, profile: &str, script: &str) -> Out {
    h.ssh(
        key,
        user,
        &[
            "run",
            "--profile",
            profile,
            "--",
            "sh",
            "-c",
            &format!("'{script}'"),
        ],
    )
}

#[test]
fn a_secret_set_from_standard_input_reaches_only_sessions_whose_profile_names_it() {
    let h = host();
    let alice = h.user("alice", "developer");
    let bob = h.user("bob", "developer");
    let value = fresh_value("alice");

    // Piped, with the newline `echo` adds: the newline is not part of it.
    let out = cordon_with_input(
        &h,
        &["secret", "set", "--user", "alice", "TEST_API_KEY"],
        format!("{value}\n").as_bytes(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.all().contains(&value), "{out:?}");

    // The value never comes from the command line.
    let out = h.cordon(&["secret", "set", "--user", "alice", "TEST_API_KEY", &value]);
    assert_eq!(
        out.code, 2,
        "a value as an argument is a usage error: {out:?}"
    );

    let out = h.cordon(&["secret", "list", "--user", "alice"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("TEST_API_KEY"), "{out:?}");
    assert!(!out.all().contains(&value), "{out:?}");

    // A session under a profile that names it sees it; one under a profile that does not,
    // does not.
    let out = run_in(
        &h,
        &alice,
        "alice",
        "secretive",
        "echo len=${#TEST_API_KEY}",
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!("len={}", value.len())),
        "{out:?}"
    );
    let out = run_in(&h, &alice, "alice", "default", "echo len=${#TEST_API_KEY}");
    assert!(out.stdout.contains("len=0"), "{out:?}");

    // Bob has none: his session starts, and says so once.
    let out = run_in(&h, &bob, "bob", "secretive", "echo len=${#TEST_API_KEY}");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("len=0"), "{out:?}");
    assert!(out.stderr.contains("no secret TEST_API_KEY"), "{out:?}");

    // A global one reaches bob; alice keeps her own.
    let global = fresh_value("global");
    let out = cordon_with_input(&h, &["secret", "set", "TEST_API_KEY"], global.as_bytes());
    assert_eq!(out.code, 0, "{out:?}");
    let out = run_in(&h, &bob, "bob", "secretive", "echo len=${#TEST_API_KEY}");
    assert!(
        out.stdout.contains(&format!("len={}", global.len())),
        "{out:?}"
    );
    let out = run_in(
        &h,
        &alice,
        "alice",
        "secretive",
        "echo len=${#TEST_API_KEY}",
    );
    assert!(
        out.stdout.contains(&format!("len={}", value.len())),
        "{out:?}"
    );

    // Names the sandbox controls are refused.
    let out = cordon_with_input(
        &h,
        &["secret", "set", "--user", "alice", "LD_PRELOAD"],
        b"x",
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("LD_PRELOAD"), "{out:?}");

    let log = h.audit_log();
    assert!(log.contains("\"secret.set\""), "audited");
    assert!(
        !log.contains(&value) && !log.contains(&global),
        "no value in the audit log"
    );

    let out = h.cordon(&["secret", "rm", "--user", "alice", "TEST_API_KEY"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!h
        .cordon(&["secret", "list", "--user", "alice"])
        .stdout
        .contains("TEST_API_KEY"));
}

#[test]
fn the_api_and_ssh_set_a_users_own_secrets_and_refuse_anothers() {
    let h = host();
    let alice = h.user("alice", "developer");
    h.user("bob", "developer");
    let (ta, tb) = (token(&h, "alice"), token(&h, "bob"));
    let value = fresh_value("api");

    let body = serde_json::json!({ "value": value }).to_string();
    let (status, answer) = api(&h, &ta, "PUT", "/v1/secrets/TEST_API_KEY", &body);
    assert_eq!(status, 200, "{answer}");
    assert!(
        !answer.contains(&value),
        "the value is never returned: {answer}"
    );
    let (status, answer) = api(&h, &ta, "GET", "/v1/secrets", "");
    assert_eq!(status, 200);
    assert!(
        answer.contains("TEST_API_KEY") && !answer.contains(&value),
        "{answer}"
    );

    // Bob can neither read nor change alice's, nor the global ones; he may see global names.
    for (method, path) in [
        ("GET", "/v1/secrets?user=alice"),
        ("PUT", "/v1/secrets/TEST_API_KEY?user=alice"),
        ("DELETE", "/v1/secrets/TEST_API_KEY?user=alice"),
        ("PUT", "/v1/secrets/TEST_API_KEY?global=true"),
        ("GET", "/v1/secrets?user=nobody-here"),
    ] {
        let (status, answer) = api(&h, &tb, method, path, &body);
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(!answer.contains(&value));
    }
    assert_eq!(api(&h, &tb, "GET", "/v1/secrets?global=true", "").0, 200);
    let (status, _) = api(&h, &ta, "PUT", "/v1/secrets/PATH", &body);
    assert_eq!(status, 400, "a name the sandbox controls");

    // Over SSH, from standard input.
    let ssh_value = fresh_value("ssh");
    let out = ssh_with_input(
        &h,
        &alice,
        "alice",
        &["secret", "set", "OTHER_KEY"],
        format!("{ssh_value}\n").as_bytes(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let out = h.ssh(&alice, "alice", &["secret", "list"]);
    assert!(
        out.stdout.contains("OTHER_KEY") && out.stdout.contains("TEST_API_KEY"),
        "{out:?}"
    );
    assert!(!out.all().contains(&ssh_value) && !out.all().contains(&value));
    let out = run_in(
        &h,
        &alice,
        "alice",
        "secretive",
        "echo len=${#TEST_API_KEY}",
    );
    assert!(
        out.stdout.contains(&format!("len={}", value.len())),
        "{out:?}"
    );

    // A session started through the API gets it too (its recording shows the length only).
    let body = serde_json::json!({
        "profile": "secretive",
        "command": ["sh", "-c", "echo len=${#TEST_API_KEY}"],
        "cols": 80, "rows": 24
    })
    .to_string();
    let (status, answer) = api(&h, &ta, "POST", "/v1/sessions", &body);
    assert!(status < 300, "{status} {answer}");
    let raw = h.keys.path().join("api-session");
    let exported = (0..100)
        .find_map(|_| {
            let done = h
                .recordings()
                .into_iter()
                .find(|r| r["state"] == "complete" && r["profile"] == "secretive");
            let Some(r) = done else {
                std::thread::sleep(std::time::Duration::from_millis(100));
                return None;
            };
            let id = r["id"].as_str().unwrap().to_string();
            h.cordon(&["rec", "export", &id, "--raw", "-o", raw.to_str().unwrap()]);
            std::fs::read_to_string(&raw).ok()
        })
        .expect("the API session's recording");
    assert!(
        exported.contains(&format!("len={}", value.len())),
        "{exported}"
    );

    let (status, _) = api(&h, &ta, "DELETE", "/v1/secrets/TEST_API_KEY", "");
    assert_eq!(status, 204);
    let out = h.ssh(&alice, "alice", &["secret", "rm", "OTHER_KEY"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(h
        .ssh(&alice, "alice", &["secret", "list"])
        .stdout
        .contains("no secrets"));
}

/// Every file beneath `dir` whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                if let Ok(bytes) = std::fs::read(&p) {
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        found.push(p);
                    }
                }
            }
        }
    }
    found
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `cordon sandbox` processes that read their secrets from a descriptor: pid, command
/// line and environment.
fn supervisors() -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmdline.windows(12).any(|w| w == b"--secrets-fd") {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            out.push((pid, cmdline, environ));
        }
    }
    out
}

#[test]
fn a_session_that_prints_its_secret_leaves_it_nowhere_in_the_data_directory_nor_a_raw_export() {
    let h = host();
    let alice = h.user("alice", "developer");
    let value = fresh_value("attack");
    let out = cordon_with_input(
        &h,
        &["secret", "set", "--user", "alice", "TEST_API_KEY"],
        value.as_bytes(),
    );
    assert_eq!(out.code, 0, "{out:?}");

    // Whole, split over two writes a moment apart, and base64-encoded; a pause first, so that
    // the supervisor can be looked at while it runs.
    let script = "sleep 2; K=$TEST_API_KEY; echo whole:$K; printf %s \"${K:0:10}\"; sleep 0.3; printf \"%s\\n\" \"${K:10}\"; printf %s \"$K\" | base64; echo done";
    let mut argv = h.ssh_command(&alice, "alice");
    argv.insert(1, "-tt".into());
    let session = Command::new(&argv[0])
        .args(&argv[1..])
        .args([
            "new",
            "--profile",
            "secretive",
            "--",
            "bash",
            "-c",
            &format!("'{script}'"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.is_empty() && std::time::Instant::now() < deadline {
        seen = supervisors();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!seen.is_empty(), "the session's supervisor was not found");
    for (pid, cmdline, environ) in &seen {
        for (what, bytes) in [("cmdline", cmdline), ("environ", environ)] {
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "the secret is in /proc/{pid}/{what}"
            );
        }
    }
    let o = session.wait_with_output().unwrap();
    let live = String::from_utf8_lossy(&o.stdout);
    // The owner's own terminal shows the real output.
    assert!(live.contains(&format!("whole:{value}")), "{live}");
    assert!(live.contains("done"), "{live}");

    // Wait for the recording to be complete.
    let id = (0..100)
        .find_map(|_| {
            let r = h
                .recordings()
                .into_iter()
                .find(|r| r["state"] == "complete");
            if r.is_none() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            r
        })
        .expect("a complete recording")["id"]
        .as_str()
        .unwrap()
        .to_string();

    let encoded = base64(value.as_bytes());
    for needle in [value.as_str(), encoded.as_str(), &value[10..]] {
        let holding = files_holding(&h.state(), needle.as_bytes());
        assert!(holding.is_empty(), "{needle:?} is in {holding:?}");
    }
    let raw = h.keys.path().join("raw");
    let out = h.cordon(&["rec", "export", &id, "--raw", "-o", raw.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}");
    let exported = std::fs::read(&raw).unwrap();
    for needle in [value.as_str(), encoded.as_str(), &value[10..], &value[..10]] {
        assert!(
            !exported
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "{needle:?} is in the raw export: {}",
            String::from_utf8_lossy(&exported)
        );
    }
    let exported = String::from_utf8_lossy(&exported);
    assert!(exported.contains("done"), "{exported}");
    // The whole value, the value written in two parts, and its base64: three markers.
    assert_eq!(exported.matches("[redacted]").count(), 3, "{exported}");
    let out = h.cordon(&["rec", "search", &value[..12]]);
    assert!(!out.stdout.contains(&value[..12]), "{out:?}");
    let asciicast = output(&mut h.command(&["rec", "export", &id]));
    assert!(!asciicast.stdout.contains(&value), "asciicast export");
}

#[test]
fn the_sandbox_used_directly_runs_without_secrets_and_refuses_a_descriptor_that_is_not_there() {
    profiles();
    let ws = tempfile::tempdir().unwrap();
    let out = output(
        Command::new(CORDON)
            .args(["sandbox", "--profile", "secretive", "--workspace"])
            .arg(ws.path())
            .args(["--", "sh", "-c", "echo len=${#TEST_API_KEY}"]),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("len=0") && !out.stderr.contains("no secret"),
        "{out:?}"
    );
    let out = output(
        Command::new(CORDON)
            .args([
                "sandbox",
                "--secrets-fd",
                "77",
                "--profile",
                "secretive",
                "--workspace",
            ])
            .arg(ws.path())
            .args(["--", "true"]),
    );
    assert_eq!(out.code, 125, "{out:?}");
    let out = h_profile_explain();
    assert!(out.stdout.contains("TEST_API_KEY"), "{out:?}");
}

fn h_profile_explain() -> Out {
    output(Command::new(CORDON).args(["profile", "explain", "secretive"]))
}
