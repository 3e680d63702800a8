//! Network mode "proxy": the session's own network namespace, tried for real. Runs as root
//! in CI (see README for unprivileged use).

use cordon_test_support::process::output;
use cordon_test_support::sandbox::{Env, PY_PRELUDE};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// A proxy-mode profile that lets python3 probe the network.
fn proxy_profile(env: &Env) -> String {
    env.profile(
        "proxy-py",
        "extends = \"default\"\n[exec]\nallow = [\"python3\", \"curl\"]\n[network]\nmode = \"proxy\"\nallow = [\"allowed.test:*\", \"echo.test:*\"]\ndeny = [\"denied.test\"]\n",
    )
}

#[test]
fn under_proxy_mode_no_tcp_or_udp_reaches_the_host_or_beyond() {
    let env = Env::new(CORDON);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let out = env.py(
        &proxy_profile(&env),
        &format!(
            r#"
for addr in [("127.0.0.1", {port}), ("10.255.255.1", 80), ("1.1.1.1", 443)]:
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(addr); print("CONNECTED", addr)
    except OSError as e:
        print("tcp", addr[0], err(e))
for addr in [("1.1.1.1", 53), ("10.255.255.1", 9999)]:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.sendto(b"x", addr); print("SENT", addr)
    except OSError as e:
        print("udp", addr[0], err(e))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"leak", ("127.0.0.1", {udp_port}))
print("loopback udp stays inside")
"#
        ),
    );
    assert!(
        !out.stdout.contains("CONNECTED") && !out.stdout.contains("SENT"),
        "{out:?}"
    );
    // The host's loopback is another namespace's: nothing listens on this one.
    assert!(out.stdout.contains("tcp 127.0.0.1 ECONNREFUSED"), "{out:?}");
    for addr in [
        "tcp 10.255.255.1",
        "tcp 1.1.1.1",
        "udp 1.1.1.1",
        "udp 10.255.255.1",
    ] {
        assert!(
            out.stdout.contains(&format!("{addr} ENETUNREACH")),
            "{addr}: {out:?}"
        );
    }
    assert!(out.stdout.contains("loopback udp stays inside"), "{out:?}");
    udp.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        udp.recv_from(&mut buf).is_err(),
        "a datagram to loopback inside reached the host's loopback"
    );
}

#[test]
fn under_proxy_mode_only_loopback_exists_and_it_is_up() {
    let env = Env::new(CORDON);
    let out = env.py(
        &proxy_profile(&env),
        r#"
print("ifaces", [name for _, name in socket.if_nameindex()])
s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen()
c = socket.create_connection(s.getsockname(), timeout=2)
print("loopback works")
"#,
    );
    assert!(out.stdout.contains("ifaces ['lo']"), "{out:?}");
    assert!(out.stdout.contains("loopback works"), "{out:?}");
}

#[test]
fn profile_check_shows_the_rules_and_warns_about_modes_that_do_not_name_hosts() {
    let env = Env::new(CORDON);
    let proxy = proxy_profile(&env);
    let mut c = env.cordon();
    c.args(["profile", "check", &proxy]);
    let out = output(&mut c);
    for line in [
        "network   proxy: a network of its own with only loopback; the proxies reach these hosts",
        "allow     allowed.test:*  (every port)",
        "allow     echo.test:*  (every port)",
        "deny      denied.test  (every port)",
    ] {
        assert!(out.stdout.lines().any(|l| l == line), "{line:?}: {out:?}");
    }
    assert!(!out.stdout.contains("warning"), "{out:?}");
    let host = env.profile(
        "hostnet",
        "extends = \"default\"\n[network]\nmode = \"all\"\n",
    );
    let mut c = env.cordon();
    c.args(["profile", "check", &host]);
    let out = output(&mut c);
    assert!(
        out.stdout.contains("warning   network mode \"host\""),
        "{out:?}"
    );
}

#[test]
fn a_bad_rule_is_refused_naming_the_key_and_the_entry() {
    let env = Env::new(CORDON);
    let bad = env.profile(
        "badrule",
        "extends = \"default\"\n[network]\nmode = \"proxy\"\nallow = [\"*.com\"]\n",
    );
    let mut c = env.cordon();
    c.args(["profile", "check", &bad]);
    let out = output(&mut c);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("network.allow") && out.stderr.contains("\"*.com\""),
        "{out:?}"
    );
}

/// A one-page HTTP server on the host's loopback: every request gets `body`.
fn http_server(body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && c.read(&mut b).unwrap_or(0) == 1 {
                head.push(b[0]);
            }
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// A TCP echo server on the host's loopback.
fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut w: TcpStream = c;
                let mut r = w.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut w);
            });
        }
    });
    port
}

/// `cordon sandbox --events-fd 5` under `profile`, the resolver override mapping the test
/// names to the host's loopback; the attempts' records come back parsed, one per attempt
/// (each allowed one checked to have been announced as `open` before it).
fn run_with_events(
    env: &Env,
    profile: &str,
    argv: &[&str],
) -> (cordon_test_support::process::Out, Vec<serde_json::Value>) {
    let events = tempfile::NamedTempFile::new().unwrap();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(events.path())
        .unwrap();
    let mut c = env.cordon();
    // registry.npmjs.org too: a test that includes the npm set must never reach the real one.
    c.env(
        "CORDON_EGRESS_RESOLVE",
        "allowed.test=127.0.0.1,denied.test=127.0.0.1,echo.test=127.0.0.1,registry.npmjs.org=127.0.0.1",
    )
    .args([
        "sandbox",
        "--profile",
        profile,
        "--events-fd",
        "5",
        "--workspace",
    ])
    .arg(env.ws())
    .arg("--")
    .args(argv);
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: dup2 between the fork and the exec, on descriptors this process owns.
    unsafe {
        c.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear it instead.
            let r = if fd == 5 {
                libc::fcntl(5, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 5)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output(&mut c);
    drop(file);
    let text = std::fs::read_to_string(events.path()).unwrap();
    let all: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let records: Vec<serde_json::Value> = all
        .iter()
        .filter(|e| e["event"] == "connect")
        .cloned()
        .collect();
    for r in records
        .iter()
        .filter(|r| r["allowed"] == true && r["address"].is_string())
    {
        assert!(
            all.iter().any(|e| e["event"] == "open"
                && e["host"] == r["host"]
                && e["time_ms"] == r["time_ms"]),
            "an allowed connection is announced when made: {text}"
        );
    }
    (out, records)
}

#[test]
fn an_allowed_name_is_reached_through_the_http_proxy_and_through_socks5h_and_each_attempt_is_recorded(
) {
    let env = Env::new(CORDON);
    let port = http_server("hello from outside");
    let url = format!("http://allowed.test:{port}/");
    let script = format!(
        "curl -sSf -m 10 {url}; echo; curl -sSf -m 10 --proxy socks5h://127.0.0.1:1080 {url}; echo"
    );
    let (out, events) = run_with_events(&env, &proxy_profile(&env), &["sh", "-c", &script]);
    assert_eq!(
        out.stdout.matches("hello from outside").count(),
        2,
        "{out:?}"
    );
    assert_eq!(events.len(), 2, "{events:?}");
    for (e, protocol) in events.iter().zip(["http", "socks5"]) {
        assert_eq!(e["protocol"], protocol, "{e}");
        assert_eq!(e["host"], "allowed.test", "{e}");
        assert_eq!(e["port"], port, "{e}");
        assert_eq!(e["allowed"], true, "{e}");
        assert_eq!(e["rule"], "allowed.test:*", "{e}");
        assert!(e["bytes_down"].as_u64().unwrap() > 18, "{e}");
        assert!(e["bytes_up"].as_u64().unwrap() > 0, "{e}");
    }
}

#[test]
fn a_denied_name_an_unlisted_name_and_an_ip_literal_are_refused_each_with_its_reason() {
    let env = Env::new(CORDON);
    let port = http_server("SHOULD NOT ARRIVE");
    let script = format!(
        "curl -sSf -m 10 http://denied.test:{port}/; curl -sSf -m 10 https://unlisted.test/; curl -sSf -m 10 --noproxy '' --proxy socks5h://127.0.0.1:1080 http://127.0.0.1:{port}/; curl -sSf -m 10 -x http://127.0.0.1:3128 http://10.0.0.5:{port}/; echo done"
    );
    let (out, events) = run_with_events(&env, &proxy_profile(&env), &["sh", "-c", &script]);
    assert!(out.stdout.contains("done"), "{out:?}");
    assert!(!out.stdout.contains("SHOULD NOT ARRIVE"), "{out:?}");
    let verdicts: Vec<(&str, &str, bool)> = events
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap(),
                e["verdict"].as_str().unwrap(),
                e["allowed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("denied.test", "deny denied.test", false),
            ("unlisted.test", "no rule names it", false),
            ("127.0.0.1", "an IP address that no rule names", false),
            ("10.0.0.5", "an IP address that no rule names", false),
        ],
        "{out:?}"
    );
    assert!(
        out.stderr.contains(&format!(
            "cordon: connection to denied.test:{port} refused: deny denied.test ([network] deny)"
        )),
        "{out:?}"
    );
    assert!(
        out.stderr.contains(
            "cordon: connection to unlisted.test:443 refused: no rule names it ([network] allow)"
        ),
        "{out:?}"
    );
}

#[test]
fn a_host_an_included_set_brings_is_allowed_naming_the_set_and_a_deny_still_wins_over_one() {
    let env = Env::new(CORDON);
    let profile = env.profile(
        "with-sets",
        "extends = \"default\"\n[exec]\nallow = [\"curl\"]\n[network]\nmode = \"proxy\"\ninclude = [\"npm\"]\ndeny = [\"registry.yarnpkg.com\"]\n",
    );
    // registry.npmjs.org is pinned to the host's loopback (run_with_events): whether
    // anything answers there does not matter, only the verdict.
    let script = "curl -sS -m 10 https://registry.npmjs.org/; curl -sS -m 10 https://registry.yarnpkg.com/; echo done";
    let (out, events) = run_with_events(&env, &profile, &["sh", "-c", script]);
    assert!(out.stdout.contains("done"), "{out:?}");
    let verdicts: Vec<(&str, &str, &str, bool)> = events
        .iter()
        .map(|e| {
            (
                e["host"].as_str().unwrap_or_default(),
                e["verdict"].as_str().unwrap_or_default(),
                e["rule"].as_str().unwrap_or_default(),
                e["allowed"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (
                "registry.npmjs.org",
                "allow registry.npmjs.org from set npm",
                "registry.npmjs.org",
                true
            ),
            (
                "registry.yarnpkg.com",
                "deny registry.yarnpkg.com",
                "registry.yarnpkg.com",
                false
            ),
        ],
        "{out:?}"
    );
}

#[test]
fn an_allowed_connect_tunnel_carries_bytes_both_ways() {
    let env = Env::new(CORDON);
    let port = echo_server();
    let code = format!(
        r#"{PY_PRELUDE}
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall(b"CONNECT echo.test:{port} HTTP/1.1\r\nHost: echo.test\r\n\r\n")
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += s.recv(1)
print(head.split(b"\r\n")[0].decode())
s.sendall(b"ping through the tunnel")
got = b""
while len(got) < 23:
    got += s.recv(100)
print(got.decode())
"#
    );
    let (out, events) = run_with_events(&env, &proxy_profile(&env), &["python3", "-c", &code]);
    assert!(
        out.stdout.contains("HTTP/1.1 200 Connection established"),
        "{out:?}"
    );
    assert!(out.stdout.contains("ping through the tunnel"), "{out:?}");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["protocol"], "connect");
    assert_eq!(events[0]["rule"], "echo.test:*");
    assert_eq!(events[0]["bytes_up"], 23);
    assert_eq!(events[0]["bytes_down"], 23);
}

#[test]
fn the_resolver_override_is_the_supervisors_and_never_reaches_the_session() {
    let env = Env::new(CORDON);
    let (out, _) = run_with_events(
        &env,
        &proxy_profile(&env),
        &["sh", "-c", "env | grep -c CORDON_EGRESS_RESOLVE; true"],
    );
    assert_eq!(out.stdout.trim(), "0", "{out:?}");
}

#[test]
fn claude_version_runs_under_the_claude_profile_which_is_in_proxy_mode() {
    let env = Env::new(CORDON);
    let home = tempfile::tempdir().unwrap();
    let mut c = env.cordon();
    c.args(["profile", "check", "claude"]);
    let check = output(&mut c);
    assert!(
        check.stdout.contains("network   proxy")
            && check
                .stdout
                .contains("allow     api.anthropic.com  (port 443)"),
        "{check:?}"
    );
    let out = env.sandbox(
        &[
            "--profile",
            "claude",
            "--home",
            home.path().to_str().unwrap(),
            "--workspace",
            env.ws().to_str().unwrap(),
        ],
        &["claude", "--version"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Claude Code"), "{out:?}");
}

#[test]
fn a_host_session_under_claude_audits_each_connection_attempt_with_its_session_and_verdict() {
    use cordon_test_support::host::Host;
    use cordon_test_support::wait::wait_until;
    let h = Host::start(CORDON);
    let alice = h.user("alice", "developer");
    // One line, no single quote: the session's command line is quoted as a shell would.
    let probe = "import socket; s = socket.create_connection((\"127.0.0.1\", 3128), timeout=10); s.sendall(b\"CONNECT exfil.example:443 HTTP/1.1\\r\\n\\r\\n\"); print(s.recv(200).split(b\"\\r\\n\")[0].decode())";
    let mut argv = h.ssh_command(&alice, "alice");
    argv.insert(1, "-tt".into());
    let out = output(
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .args(["new", "--profile", "claude", "--", "python3", "-c"])
            .arg(format!("'{probe}'"))
            .stdin(std::process::Stdio::null()),
    );
    assert!(out.stdout.contains("403"), "{out:?}");
    let mut line = String::new();
    wait_until("the attempt in the audit log", || {
        line = h
            .audit_log()
            .lines()
            .find(|l| l.contains("\"net.connect\""))
            .unwrap_or_default()
            .to_string();
        !line.is_empty()
    });
    let e: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(e["actor"], "alice", "{line}");
    assert_eq!(e["host"], "exfil.example", "{line}");
    assert_eq!(e["port"], 443, "{line}");
    assert_eq!(e["allowed"], false, "{line}");
    assert_eq!(e["verdict"], "no rule names it", "{line}");
    assert_eq!(e["session"].as_str().map(str::len), Some(12), "{line}");
}

#[test]
fn an_unprivileged_account_gets_the_same_proxy_its_own_namespace_and_the_same_verdicts() {
    // Run as `nobody`: the sandbox makes its namespaces as an unprivileged user, and the
    // proxy runs as that user too.
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    let (ws, home) = (dir.path().join("ws"), dir.path().join("home"));
    for d in [dir.path(), &ws, &home] {
        std::fs::create_dir_all(d).unwrap();
        std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let profile = dir.path().join("unpriv.toml");
    std::fs::write(
        &profile,
        "extends = \"default\"\n[exec]\nallow = [\"curl\"]\n[network]\nmode = \"proxy\"\nallow = [\"allowed.test:*\"]\n",
    )
    .unwrap();
    let port = http_server("reached unprivileged");
    let script = format!(
        "curl -sS -m 10 http://allowed.test:{port}/; echo; curl -sS -m 10 http://unlisted.test:{port}/; echo; curl -sS -m 5 http://127.0.0.1:{port}/ || echo direct refused"
    );
    let out = output(
        std::process::Command::new(CORDON)
            .args(["sandbox", "--profile"])
            .arg(&profile)
            .arg("--workspace")
            .arg(&ws)
            .args(["--", "sh", "-c", &script])
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &home)
            .env(
                "CORDON_EGRESS_RESOLVE",
                "allowed.test=127.0.0.1,unlisted.test=127.0.0.1",
            )
            .current_dir(&ws)
            .uid(NOBODY)
            .gid(NOBODY),
    );
    assert!(out.stdout.contains("reached unprivileged"), "{out:?}");
    assert!(
        out.stdout.contains("no rule names it") && out.stderr.contains("unlisted.test"),
        "{out:?}"
    );
    assert!(out.stdout.contains("direct refused"), "{out:?}");
}
