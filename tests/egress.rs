//! Network mode "proxy": the session's own network namespace, tried for real. Runs as root
//! in CI (see README for unprivileged use).

use cordon_test_support::process::output;
use cordon_test_support::sandbox::Env;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

/// A proxy-mode profile that lets python3 probe the network.
fn proxy_profile(env: &Env) -> String {
    env.profile(
        "proxy-py",
        "extends = \"default\"\n[exec]\nallow = [\"python3\"]\n[network]\nmode = \"proxy\"\nallow = [\"allowed.test:*\"]\ndeny = [\"denied.test\"]\n",
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
    assert!(
        out.stdout
            .contains("network   proxy: allow [allowed.test:*], deny [denied.test]"),
        "{out:?}"
    );
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
