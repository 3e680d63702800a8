//! The egress proxy's cost on loopback, against a direct connection, in one run:
//! connection setup (connect, `CONNECT` through the proxy, one byte echoed: p50, p99) and
//! throughput (bytes sent through to a server that discards them). Goal (issue 15):
//! proxied throughput at least 0.8× direct.
//!
//! The proxy is the one sessions use (`sandbox::egress::proxy`), on host loopback
//! listeners: what it adds is measured without a sandbox's start-up around it.
//! Run with `cargo bench --bench egress_proxy`; `RUNS=N` connections per side (default
//! 1000, interleaved), `MIB=N` megabytes per throughput run (default 512).

use sandbox::egress::handoff::Listeners;
use sandbox::egress::proxy::{Limits, Proxy, Settings};
use sandbox::egress::resolve::Resolver;
use sandbox::egress::Rules;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn serve(f: fn(TcpStream)) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || f(c));
        }
    });
    addr
}

fn echo(mut c: TcpStream) {
    let _ = c.set_nodelay(true);
    let mut r = c.try_clone().expect("clone");
    let _ = std::io::copy(&mut r, &mut c);
}

fn sink(mut c: TcpStream) {
    let mut buf = vec![0u8; 1 << 16];
    while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    let _ = c.write_all(b"k");
}

/// A connection to `target` port `port`, through `proxy` when given.
fn open(proxy: Option<SocketAddr>, target: SocketAddr) -> TcpStream {
    match proxy {
        None => TcpStream::connect(target).expect("connect"),
        Some(p) => {
            let mut s = TcpStream::connect(p).expect("connect proxy");
            write!(s, "CONNECT bench.test:{} HTTP/1.1\r\n\r\n", target.port()).expect("write");
            let mut head = [0u8; 39];
            s.read_exact(&mut head).expect("proxy answer");
            assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
            s
        }
    }
}

fn setup(proxy: Option<SocketAddr>, echo: SocketAddr) -> Duration {
    let t = Instant::now();
    let mut s = open(proxy, echo);
    let _ = s.set_nodelay(true);
    s.write_all(b"x").expect("write");
    let mut b = [0u8; 1];
    s.read_exact(&mut b).expect("echo");
    t.elapsed()
}

fn throughput(proxy: Option<SocketAddr>, sink: SocketAddr, mib: usize) -> f64 {
    let buf = vec![7u8; 1 << 20];
    let t = Instant::now();
    let mut s = open(proxy, sink);
    for _ in 0..mib {
        s.write_all(&buf).expect("send");
    }
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut k = [0u8; 1];
    s.read_exact(&mut k).expect("sink's answer");
    mib as f64 / t.elapsed().as_secs_f64()
}

fn pct(times: &mut [Duration], p: f64) -> Duration {
    times.sort_unstable();
    times[((times.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (runs, mib) = (env("RUNS", 1000).max(100), env("MIB", 512).max(16));
    let (echo_addr, sink_addr) = (serve(echo), serve(sink));
    let listeners = Listeners {
        http: TcpListener::bind("127.0.0.1:0").expect("bind"),
        socks: TcpListener::bind("127.0.0.1:0").expect("bind"),
    };
    let proxy_addr = listeners.http.local_addr().expect("addr");
    let _proxy = Proxy::start(
        Settings {
            rules: Rules::parse(&["bench.test:*".into()], &[]).expect("rules"),
            resolver: Resolver::with_overrides("bench.test=127.0.0.1").expect("resolver"),
            limits: Limits::default(),
            events: None,
            notes: false,
            ask: None,
        },
        listeners,
    )
    .expect("proxy");
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        direct.push(setup(None, echo_addr));
        proxied.push(setup(Some(proxy_addr), echo_addr));
    }
    println!("connection setup (connect, CONNECT, one byte echoed), {runs} each:");
    for (name, t) in [("direct", &mut direct), ("proxied", &mut proxied)] {
        println!(
            "  {name:<8} p50 {:>8.1} µs   p99 {:>8.1} µs",
            pct(t, 0.5).as_secs_f64() * 1e6,
            pct(t, 0.99).as_secs_f64() * 1e6
        );
    }
    let (mut d, mut p) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        d.push(throughput(None, sink_addr, mib));
        p.push(throughput(Some(proxy_addr), sink_addr, mib));
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let (d, p) = (best(&d), best(&p));
    println!("throughput ({mib} MiB, best of 3):");
    println!("  direct   {d:>8.0} MiB/s");
    println!(
        "  proxied  {p:>8.0} MiB/s   ({:.2}x direct; goal at least 0.8x)",
        p / d
    );
}
