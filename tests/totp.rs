//! A second factor (TOTP) on a real host: enrolled over SSH (`ssh -t HOST totp enroll`, the
//! code typed at its prompt in tmux) and from the host's shell; password logins of OpenSSH's
//! client in tmux answering the code prompt (keyboard-interactive alone, and password then
//! keyboard-interactive); the API's login with and without a code; codes two steps away,
//! replayed codes and spent recovery codes refused; an admin's reset; a role that requires
//! one. Codes are computed here with the test's own RFC 6238, from the secret the host printed.

use cordon_test_support::host::Host;
use cordon_test_support::http::Reply;
use serde_json::{json, Value};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");
const PASSWORD: &str = "Tr0mbone-Garden-Lamp";

/// RFC 6238 with HMAC-SHA1, 30-second steps, 6 digits: the test's own, not the host's.
fn code(secret: &[u8], step: i64) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = ring::hmac::sign(&key, &(step as u64).to_be_bytes());
    let m = mac.as_ref();
    let o = (m[19] & 0x0f) as usize;
    let n = u32::from_be_bytes([m[o] & 0x7f, m[o + 1], m[o + 2], m[o + 3]]);
    format!("{:06}", n % 1_000_000)
}

fn step_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 30
}

/// The step now, after waiting for the next one to begin if this one is past its 20th
/// second: a code computed from it two steps ahead stays two steps ahead for the ten
/// seconds a request takes, at the least.
fn early_in_a_step() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now % 30 > 20 {
        std::thread::sleep(std::time::Duration::from_secs(30 - now % 30));
    }
    step_now()
}

#[test]
fn the_test_s_own_totp_matches_rfc_6238() {
    assert_eq!(code(b"12345678901234567890", 59 / 30), "287082");
    assert_eq!(code(b"12345678901234567890", 1111111109 / 30), "081804");
}

/// RFC 4648 base32 (no padding) decoded.
fn from_base32(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buf, mut bits) = (Vec::new(), 0u32, 0);
    for c in text.trim().bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base32") as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buf >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

/// The secret after "or type the secret: " in what the host printed.
fn secret_in(text: &str) -> Vec<u8> {
    let rest = text
        .split("or type the secret: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no secret in:\n{text}"));
    from_base32(rest.split_whitespace().next().unwrap())
}

/// The recovery codes (`xxxx-xxxx-xxxx-xxxx`) in what the host printed.
fn recovery_in(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| {
            w.len() == 19
                && w.matches('-').count() == 3
                && w.chars().all(|c| c == '-' || c.is_ascii_alphanumeric())
        })
        .map(String::from)
        .collect()
}

/// Sets `user`'s password from the host's shell.
fn set_password(h: &Host, user: &str) {
    h.passwd(user, PASSWORD);
}

/// OpenSSH's client in tmux window `win`, logging in with a password only (no key), its
/// methods in the order `prefer`, running `whoami`; the window stays after it exits. Its
/// log level is the default's (INFO), at which it shows keyboard-interactive's instructions.
fn password_ssh(h: &Host, win: &str, user: &str, prefer: &str) {
    h.tmux.start(
        win,
        &format!(
            "ssh -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=INFO -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 -o PreferredAuthentications={prefer} {user}@127.0.0.1 whoami; echo ssh-exited-$?; sleep 60",
            h.port
        ),
    );
}

/// Logs in over SSH with the password and `answer` at the code prompt; the screen at the end.
fn ssh_with_code(h: &Host, win: &str, user: &str, prefer: &str, answer: &str) -> String {
    password_ssh(h, win, user, prefer);
    h.wait_for(win, "assword:");
    h.keys(win, &[PASSWORD, "Enter"]);
    h.wait_for(win, "Verification code (or a recovery code):");
    h.keys(win, &[answer, "Enter"]);
    h.wait_for(win, "ssh-exited-")
}

fn http(h: &Host, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    cordon_test_support::http::curl(h.api, method, path, token, body.as_ref())
}

fn login(h: &Host, user: &str, extra: Value) -> Reply {
    let mut body = json!({"user": user, "password": PASSWORD});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    http(h, "POST", "/v1/auth/login", None, Some(body))
}

#[test]
fn a_second_factor_enrolled_over_ssh_is_asked_for_at_password_logins_and_each_code_works_once() {
    let h = Host::start_with(CORDON, "password_login = true");
    let alice = h.user("alice", "developer");
    set_password(&h, "alice");

    // Enrolment in a terminal: the QR code, the secret, a code typed at the prompt.
    h.tmux_ssh("enrol", &alice, "alice", "totp enroll");
    h.keep("enrol");
    let screen = h.wait_for("enrol", "Code from the app");
    assert!(screen.contains('▀') || screen.contains('▄'), "{screen}");
    assert!(screen.contains("otpauth://totp/cordon:alice@"), "{screen}");
    let secret = secret_in(&screen);
    assert_eq!(secret.len(), 20);
    let confirmed_at = step_now();
    h.keys("enrol", &[&code(&secret, confirmed_at), "Enter"]);
    let screen = h.wait_for("enrol", "Second factor confirmed");
    let screen = if recovery_in(&screen).len() < 10 {
        h.wait_for("enrol", "Pane is dead")
    } else {
        screen
    };
    let recovery = recovery_in(&screen);
    assert_eq!(recovery.len(), 10, "{screen}");
    let status = h.ssh(&alice, "alice", &["totp", "status"]);
    assert!(
        status.stdout.contains("enrolled") && status.stdout.contains("10 recovery codes left"),
        "{status:?}"
    );

    // Keyboard-interactive alone: the password, then a code of the next step (the
    // confirming step is spent).
    let next = (confirmed_at + 1).max(step_now());
    let screen = ssh_with_code(
        &h,
        "ki",
        "alice",
        "keyboard-interactive",
        &code(&secret, next),
    );
    assert!(screen.contains("alice (developer)"), "{screen}");

    // The same code again: refused (its step is spent).
    let screen = ssh_with_code(
        &h,
        "replay",
        "alice",
        "keyboard-interactive",
        &code(&secret, next),
    );
    assert!(!screen.contains("alice (developer)"), "{screen}");
    assert!(screen.contains("ssh-exited-255"), "{screen}");

    // Two steps behind: outside the window (behind, so that the clock moving on while the
    // client logs in only takes it further away).
    let far = step_now() - 2;
    let screen = ssh_with_code(
        &h,
        "far",
        "alice",
        "keyboard-interactive",
        &code(&secret, far),
    );
    assert!(screen.contains("ssh-exited-255"), "{screen}");

    // The password method, then keyboard-interactive for the code: a recovery code, once.
    let screen = ssh_with_code(
        &h,
        "recovery",
        "alice",
        "password,keyboard-interactive",
        &recovery[0],
    );
    assert!(screen.contains("alice (developer)"), "{screen}");
    let screen = ssh_with_code(
        &h,
        "recovery-again",
        "alice",
        "password,keyboard-interactive",
        &recovery[0],
    );
    assert!(screen.contains("ssh-exited-255"), "{screen}");

    // Public-key logins never ask.
    let out = h.ssh(&alice, "alice", &["whoami"]);
    assert_eq!(out.stdout, "alice (developer)\n", "{out:?}");

    let log = h.audit_log();
    for event in [
        "\"totp.enroll\"",
        "\"totp.confirm\"",
        "keyboard-interactive+totp",
        "password+recovery",
        "\"totp.recovery_used\"",
        "\"totp.refused\"",
        "the code's step was used already",
        "wrong or spent recovery code",
    ] {
        assert!(log.contains(event), "{event} not audited:\n{log}");
    }
    let text =
        String::from_utf8_lossy(&std::fs::read(h.state().join("cordon.db")).unwrap()).into_owned();
    let shown = screen_secret_text(&secret);
    assert!(
        !log.contains(&shown) && !text.contains(&shown),
        "the secret reached the audit log or the database in the clear"
    );
    assert!(
        !log.contains(&recovery[1]),
        "a recovery code reached the log"
    );

    // Off with a code (a recovery code: the window's steps may all be spent by now).
    let off = h.ssh(&alice, "alice", &["totp", "disable", &recovery[2]]);
    assert_eq!(off.code, 0, "{off:?}");
    assert!(h.audit_log().contains("\"totp.disable\""));
}

/// The secret as the host printed it (base32), to look for elsewhere.
fn screen_secret_text(secret: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buf, mut bits) = (String::new(), 0u32, 0);
    for &b in secret {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    out
}

#[test]
fn the_api_login_needs_a_code_in_the_window_once_and_a_recovery_code_once() {
    let h = Host::start_with(
        CORDON,
        "password_login = true\n[api]\nlogin_rate_limit = 1000",
    );
    h.user("bob", "developer");
    h.user("root", "admin");
    set_password(&h, "bob");

    // Enrolled from the host's shell, confirmed later.
    let e = h.cordon(&["user", "totp", "enroll", "bob"]);
    assert_eq!(e.code, 0, "{e:?}");
    assert!(e.stdout.contains("not confirmed"), "{e:?}");
    let secret = secret_in(&e.stdout);
    let before = login(&h, "bob", json!({}));
    assert_eq!(
        before.status, 200,
        "a pending enrolment asks nothing yet: {}",
        before.body
    );
    let wrong = h.cordon(&["user", "totp", "confirm", "bob", "000000"]);
    assert_ne!(wrong.code, 0, "{wrong:?}");
    let confirmed_at = step_now();
    let c = h.cordon(&[
        "user",
        "totp",
        "confirm",
        "bob",
        &code(&secret, confirmed_at),
    ]);
    assert_eq!(c.code, 0, "{c:?}");
    let recovery = recovery_in(&c.stdout);
    assert_eq!(recovery.len(), 10, "{c:?}");

    let none = login(&h, "bob", json!({}));
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(
        none.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("second factor code is needed"),
        "{}",
        none.body
    );
    for far in [2, -2] {
        let r = login(
            &h,
            "bob",
            json!({"totp": code(&secret, early_in_a_step() + far)}),
        );
        assert_eq!(r.status, 401, "a code two steps away: {}", r.body);
    }
    let next = (confirmed_at + 1).max(step_now());
    let good = login(&h, "bob", json!({"totp": code(&secret, next)}));
    assert_eq!(good.status, 200, "{}", good.body);
    assert!(good.json()["access_token"].is_string());
    let again = login(&h, "bob", json!({"totp": code(&secret, next)}));
    assert_eq!(again.status, 401, "a replayed code: {}", again.body);

    let r = login(&h, "bob", json!({"recovery_code": recovery[3]}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = login(&h, "bob", json!({"recovery_code": recovery[3]}));
    assert_eq!(r.status, 401, "a spent recovery code: {}", r.body);
    let both = login(
        &h,
        "bob",
        json!({"recovery_code": recovery[4], "totp": "123456"}),
    );
    assert_eq!(both.status, 400, "{}", both.body);

    let status = h.cordon(&["user", "totp", "status", "bob"]);
    assert!(
        status.stdout.contains("9 recovery codes left"),
        "{status:?}"
    );

    // An admin resets it (a lost device): the password alone works again.
    let pair = h.cordon(&["token", "issue", "root"]);
    let admin: Value = serde_json::from_str(&pair.stdout).unwrap();
    let admin = admin["access_token"].as_str().unwrap();
    let (bob_pair, _) = (login(&h, "bob", json!({"recovery_code": recovery[5]})), ());
    let bob = bob_pair.json()["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let refused = http(&h, "DELETE", "/v1/users/root/totp", Some(&bob), None);
    assert_eq!(refused.status, 403, "{}", refused.body);
    let reset = http(&h, "DELETE", "/v1/users/bob/totp", Some(admin), None);
    assert_eq!(reset.status, 204, "{}", reset.body);
    let again = http(&h, "DELETE", "/v1/users/bob/totp", Some(admin), None);
    assert_eq!(again.status, 204, "none left to remove: {}", again.body);
    let nobody = http(&h, "DELETE", "/v1/users/nobody/totp", Some(admin), None);
    assert_eq!(nobody.status, 404, "{}", nobody.body);
    assert_eq!(login(&h, "bob", json!({})).status, 200);

    let log = h.audit_log();
    for event in [
        "\"totp.refused\"",
        "\"totp.recovery_used\"",
        "\"totp.reset\"",
        "api password+totp",
        "api password+recovery",
    ] {
        assert!(log.contains(event), "{event} not audited");
    }
}

#[test]
fn a_role_that_requires_a_second_factor_refuses_a_password_without_one_and_says_how_to_enrol() {
    let h = Host::start_with(
        CORDON,
        "password_login = true\n[auth]\ntotp_required = [\"developer\"]",
    );
    let carol = h.user("carol", "developer");
    set_password(&h, "carol");
    let r = login(&h, "carol", json!({}));
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("totp enroll"), "{}", r.body);

    password_ssh(&h, "told", "carol", "keyboard-interactive");
    h.wait_for("told", "assword:");
    h.keys("told", &[PASSWORD, "Enter"]);
    let screen = h.wait_for("told", "ssh-exited-");
    assert!(
        screen.contains("second factor is required") && screen.contains("ssh-exited-255"),
        "{screen}"
    );

    // With her key she enrols, and then her password and a code let her in.
    let e = h.ssh(&carol, "carol", &["totp", "enroll"]);
    assert_eq!(e.code, 0, "{e:?}");
    let secret = secret_in(&e.stdout);
    let at = step_now();
    let c = h.ssh(&carol, "carol", &["totp", "confirm", &code(&secret, at)]);
    assert_eq!(c.code, 0, "{c:?}");
    let r = login(
        &h,
        "carol",
        json!({"totp": code(&secret, (at + 1).max(step_now()))}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(h
        .audit_log()
        .contains("a second factor is required for developers"));
}
