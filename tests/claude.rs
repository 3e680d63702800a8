//! The main job, as a new user does it: the real Claude Code CLI (installed by install.sh)
//! in a cordon session under the `claude` profile, its API key stored once as a secret, the
//! session started over SSH and through the API. No network is needed to reach Claude's
//! main screen; what is checked is that the key reached the session (no "Not logged in")
//! and that it is not kept in clear in the data directory.

use cordon_test_support::host::Host;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// A key of the shape Anthropic issues; the session must receive it whole.
const KEY: &str = "sk-ant-api03-cordonTestKey0123456789abcdefghijklmnopqrstuvwxyzAB-CDEF";

/// Fails, naming the fix, when Claude Code is missing: install.sh installs it.
fn claude_is_installed() {
    let ok = Command::new("claude")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "Claude Code is not installed: run ./install.sh --deps-only (npm install -g @anthropic-ai/claude-code)"
    );
}

/// `cordon secret set --user USER NAME` with the value on standard input, as documented.
fn set_secret(h: &Host, user: &str, name: &str, value: &str) {
    let mut child = h
        .command(&["secret", "set", "--user", user, name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{value}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// The user's own Claude settings carried into their cordon home: onboarding done (its
/// first screen needs the network), as `cordon claude import` brings it from their account.
fn import_settings(h: &Host, user: &str) {
    let from = tempfile::tempdir().unwrap();
    std::fs::write(
        from.path().join(".claude.json"),
        r#"{"hasCompletedOnboarding":true,"theme":"dark"}"#,
    )
    .unwrap();
    let out = h.cordon(&[
        "claude",
        "import",
        "--user",
        user,
        "--from",
        from.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
}

/// Every file beneath `dir` holding `needle`, by path.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                let bytes = std::fs::read(&p).unwrap_or_default();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(p.display().to_string());
                }
            }
        }
    }
    found
}

#[test]
fn claude_code_started_over_ssh_and_the_api_is_logged_in_with_the_stored_key() {
    claude_is_installed();
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    set_secret(&h, "alice", "ANTHROPIC_API_KEY", KEY);
    import_settings(&h, "alice");

    // Over SSH: the profile's own command is claude. Its first screens ask whether to trust
    // the folder and whether to use the key it found in its environment: the key is there.
    h.tmux_ssh("ssh", &alice, "alice", "new --profile claude");
    h.wait_for("ssh", "trust this folder");
    h.keys("ssh", &["Enter"]);
    let screen = h.wait_for("ssh", "Do you want to use this API key?");
    assert!(screen.contains("ANTHROPIC_API_KEY"), "{screen}");
    h.keys("ssh", &["Up"]);
    h.keys("ssh", &["Enter"]);
    h.wait_for("ssh", "API Usage Billing");
    // Under load its footer may say "Not logged in" for a moment before the key is taken.
    let screen = h.wait_gone("ssh", "Not logged in");
    assert!(screen.contains("for shortcuts"), "{screen}");
    // Claude's state is in alice's cordon home, valid JSON, hers.
    let json = std::fs::read_to_string(h.home("alice").join(".claude.json")).unwrap();
    let v: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    assert_eq!(v["hasCompletedOnboarding"], true, "{json}");

    // Through the API: a session under the claude profile, watched over SSH. The folder and
    // the key were accepted above, so Claude goes straight to its main screen, logged in.
    let out = h.cordon(&["token", "issue", "alice"]);
    assert_eq!(out.code, 0, "{out:?}");
    let token: Value = serde_json::from_str(&out.stdout).unwrap();
    let token = token["access_token"].as_str().unwrap();
    let reply = Command::new("curl")
        .args(["-s", "-X", "POST", "-H", "Content-Type: application/json"])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--data-binary",
            &json!({"profile": "claude", "cols": 120, "rows": 40}).to_string(),
        ])
        .arg(format!("http://127.0.0.1:{}/v1/sessions", h.api))
        .output()
        .unwrap();
    let created: Value = serde_json::from_slice(&reply.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&reply.stdout)));
    let id = created["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    h.tmux_ssh("api", &alice, "alice", &format!("attach {id}"));
    let screen = h.wait_for("api", "API Usage Billing");
    assert!(!screen.contains("Not logged in"), "{screen}");

    // The key reached both sessions, and the data directory keeps it only sealed.
    let found = files_holding(&h.state(), KEY.as_bytes());
    assert!(found.is_empty(), "the key in clear in {found:?}");
    assert!(!h.audit_log().contains(KEY));
}
