//! Lockdown (`cordon lockdown on|off`): only admins may log in, other users' connections
//! close, and the sessions that were running are frozen (the cgroup freezer) until the
//! lockdown ends, or ended. Driven through a real host, OpenSSH and the API.

use cordon_test_support::host::Host;
use cordon_test_support::http::exchange;
use cordon_test_support::process::{output, Out};
use cordon_test_support::wait::{poll, wait_until};
use std::io::BufReader;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// A session that prints the time, to the nanosecond, five times a second: while it runs,
/// what it last printed keeps changing.
const CLOCK: &str = "new --name clock -- sh -c \"'while :; do date +%s.%N; sleep 0.2; done'\"";

/// `ssh` as `user`, at OpenSSH's default log level, so that the banner a host sends before
/// login is shown (the harness's own `ssh` keeps quiet).
fn ssh_chatty(h: &Host, key: &Path, user: &str, args: &[&str]) -> Out {
    let mut argv = h.ssh_command(key, user);
    argv.insert(1, "LogLevel=INFO".into());
    argv.insert(1, "-o".into());
    output(
        Command::new(&argv[0])
            .args(&argv[1..])
            .args(args)
            .stdin(Stdio::null()),
    )
}

/// The last clock reading on a window's screen.
fn last_reading(h: &Host, win: &str) -> Option<String> {
    h.screen(win)
        .lines()
        .map(str::trim)
        .rfind(|l| {
            l.len() > 12 && l.contains('.') && l.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .map(String::from)
}

/// The sessions the admin sees, as `ls --json` answers.
fn sessions(h: &Host, admin: &Path) -> Vec<serde_json::Value> {
    let out = h.ssh(admin, "boss", &["ls", "--json"]);
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Whether every process running as `uid` is frozen, as the kernel says it of their cgroup
/// (v1 `freezer.state`, or v2 `cgroup.events`); None when there is no such process.
fn processes_frozen(uid: u32) -> Option<bool> {
    let mut seen = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let owner = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse::<u32>().ok());
        if owner != Some(uid) {
            continue;
        }
        let Ok(groups) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            continue;
        };
        seen = true;
        let frozen = groups.lines().any(|l| {
            let mut p = l.splitn(3, ':');
            let (_, controllers, path) = (p.next(), p.next().unwrap_or(""), p.next().unwrap_or(""));
            if controllers.split(',').any(|c| c == "freezer") {
                std::fs::read_to_string(format!("/sys/fs/cgroup/freezer{path}/freezer.state"))
                    .is_ok_and(|s| s.trim() == "FROZEN")
            } else if controllers.is_empty() && path != "/" {
                ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
                    .iter()
                    .any(|root| {
                        std::fs::read_to_string(format!("{root}{path}/cgroup.events"))
                            .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
                    })
            } else {
                false
            }
        });
        if !frozen {
            return Some(false);
        }
    }
    seen.then_some(true)
}

#[test]
fn lockdown_refuses_a_developer_and_freezes_then_resumes_a_session() {
    let h = Host::start(CORDON);
    let boss = h.user("boss", "admin");
    let dev = h.user("dev", "developer");
    h.tmux_ssh("dev", &dev, "dev", CLOCK);
    h.keep("dev");
    wait_until("the clock ticks", || last_reading(&h, "dev").is_some());
    h.tmux_ssh("boss", &boss, "boss", "observe dev/clock");
    h.keep("boss");
    wait_until("the admin sees the clock", || {
        last_reading(&h, "boss").is_some()
    });

    let out = h.cordon(&["lockdown", "on", "--freeze", "--reason", "incident 42"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("lockdown on since"), "{out:?}");

    // A developer's new login is refused, and told why before it is.
    let refused = ssh_chatty(&h, &dev, "dev", &["whoami"]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(
        refused.stderr.contains("the host is in lockdown since")
            && refused
                .stderr
                .contains("(incident 42); only admins may log in"),
        "{refused:?}"
    );
    assert!(!refused.stdout.contains("dev (developer)"), "{refused:?}");
    // An admin still logs in.
    let admin = h.ssh(&boss, "boss", &["whoami"]);
    assert_eq!(admin.stdout.trim(), "boss (admin)", "{admin:?}");

    // The session is frozen: listed so, its processes frozen, its clock stopped on screen.
    wait_until("the session is listed as frozen", || {
        sessions(&h, &boss)
            .iter()
            .any(|s| s["name"] == "clock" && s["frozen"] == true)
    });
    let uid = h.uid("dev");
    assert_eq!(
        processes_frozen(uid),
        Some(true),
        "its processes are frozen"
    );
    let before = last_reading(&h, "boss").expect("a reading");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        last_reading(&h, "boss").as_deref(),
        Some(before.as_str()),
        "a frozen clock does not tick: {}",
        h.screen("boss")
    );
    // The developer's own connection was closed.
    wait_until("the developer's connection closes", || {
        h.tmux.format("dev", "#{pane_dead}").trim() == "1"
    });

    let out = h.cordon(&["lockdown", "status"]);
    assert!(out.stdout.contains("in lockdown since"), "{out:?}");
    let out = h.cordon(&["lockdown", "off"]);
    assert_eq!(out.code, 0, "{out:?}");

    // Thawed: the clock ticks again, and the developer logs in.
    poll(|| match last_reading(&h, "boss") {
        Some(now) if now > before => Ok(()),
        other => Err(format!("the clock stays at {other:?} after the lockdown")),
    });
    assert_eq!(
        processes_frozen(uid),
        Some(false),
        "its processes run again"
    );
    let back = h.ssh(&dev, "dev", &["whoami"]);
    assert_eq!(back.stdout.trim(), "dev (developer)", "{back:?}");
    assert!(
        sessions(&h, &boss)
            .iter()
            .any(|s| s["name"] == "clock" && s["frozen"] == false),
        "the session runs on"
    );
    let log = h.audit_log();
    for event in [
        "lockdown.on",
        "session.freeze",
        "session.thaw",
        "lockdown.off",
    ] {
        assert!(log.contains(&format!("\"event\":\"{event}\"")), "{event}");
    }
    // The lockdown is an incident with its timeline, beside the alerts'.
    let ls = h.cordon(&["incident", "ls", "--json"]);
    let list: serde_json::Value =
        serde_json::from_str(&ls.stdout).unwrap_or_else(|_| panic!("{ls:?}"));
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["rule"] == "lockdown")
        .unwrap_or_else(|| panic!("no lockdown incident: {list}"))["id"]
        .to_string();
    let show = h.cordon(&["incident", "show", &id]);
    assert_eq!(show.code, 0, "{show:?}");
    let on = show
        .stdout
        .find("lockdown.on")
        .unwrap_or_else(|| panic!("{show:?}"));
    let off = show
        .stdout
        .find("lockdown.off")
        .unwrap_or_else(|| panic!("{show:?}"));
    assert!(on < off, "in order: {show:?}");
    assert!(
        show.stdout.contains("incident 42"),
        "the reason is told: {show:?}"
    );
}

fn token(h: &Host, user: &str) -> String {
    let out = h.cordon(&["token", "issue", user]);
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    v["access_token"].as_str().unwrap().to_string()
}

fn api(h: &Host, token: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut r = BufReader::new(TcpStream::connect(("127.0.0.1", h.api)).unwrap());
    let (status, body) = exchange(&mut r, token, method, path, body);
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn lockdown_with_end_ends_sessions_and_the_api_refuses_non_admins_until_it_is_off() {
    let h = Host::start(CORDON);
    let boss = h.user("boss", "admin");
    let dev = h.user("dev", "developer");
    let (admin_token, dev_token) = (token(&h, "boss"), token(&h, "dev"));
    h.tmux_ssh("dev", &dev, "dev", CLOCK);
    wait_until("the clock ticks", || last_reading(&h, "dev").is_some());

    // Only admins put the host in lockdown.
    let (status, _) = api(
        &h,
        &dev_token,
        "PUT",
        "/v1/lockdown",
        r#"{"sessions":"end"}"#,
    );
    assert_eq!(status, 403);
    let (status, body) = api(
        &h,
        &admin_token,
        "PUT",
        "/v1/lockdown",
        r#"{"sessions":"end","reason":"drill"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"on\":true"), "{body}");

    wait_until("the session is ended", || {
        !sessions(&h, &boss).iter().any(|s| s["name"] == "clock")
    });
    let (status, body) = api(&h, &dev_token, "GET", "/v1/sessions", "");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("only admins may log in"), "{body}");
    let (status, _) = api(&h, &admin_token, "GET", "/v1/sessions", "");
    assert_eq!(status, 200);
    // Not even a developer's new session starts.
    let out = h.ssh(&dev, "dev", &["new", "--", "true"]);
    assert_ne!(out.code, 0, "{out:?}");

    let (status, body) = api(&h, &admin_token, "DELETE", "/v1/lockdown", "");
    assert_eq!(
        (status, body.contains("\"on\":false")),
        (200, true),
        "{body}"
    );
    let (status, _) = api(&h, &dev_token, "GET", "/v1/sessions", "");
    assert_eq!(status, 200);
    assert!(h.audit_log().contains("the host is in lockdown since"));
}
