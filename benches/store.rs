//! The store on PostgreSQL against SQLite, side by side in one run: two `cordon serve` hosts
//! alike but for `[store]` (one on the embedded SQLite, one on a private PostgreSQL server
//! over TLS with verify-full, on loopback), each measured the way users meet the store:
//! - an SSH key login running `whoami` (OpenSSH's client; the key and the user read from
//!   the store, the lockdown checked),
//! - a session start to its end (`ssh -tt new -- true`: the login, the user re-read, the
//!   recording catalogued and ended),
//! - an API password login (`POST /v1/auth/login`: the user, the failures, the hash, a
//!   refresh token written).
//!
//! Medians of `RUNS` (default 20) each, the two hosts interleaved. Run with
//! `benches/store.sh` (PostgreSQL from install.sh; needs root to run it as `postgres`).

use cordon_test_support::host::Host;
use cordon_test_support::postgres::PgServer;
use std::process::{Command, Stdio};
use std::time::Instant;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");
const PASSWORD: &str = "Timing-Stone-71";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1000.0
}

fn ssh_ok(h: &Host, key: &std::path::Path, tty: bool, args: &[&str]) {
    let mut argv = h.ssh_command(key, "bench");
    if tty {
        argv.insert(1, "-tt".into());
    }
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("ssh");
    assert!(out.status.success(), "{out:?}");
}

fn api_login(h: &Host) {
    let r = cordon_test_support::http::curl(
        h.api,
        "POST",
        "/v1/auth/login",
        None,
        Some(&serde_json::json!({"user": "bench", "password": PASSWORD})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let pg = PgServer::start();
    let db = pg.create_database();
    let extra = "password_login = true\nmax_connections_per_user = 500\n[api]\nlogin_rate_limit = 100000\nrate_limit = 100000\n[sessions]\nmax_per_user = { admin = 500 }";
    let sqlite = Host::start_with(CORDON, extra);
    let postgres = Host::start_on_postgres(CORDON, &pg, &db, extra);
    let hosts = [("sqlite", &sqlite), ("postgres", &postgres)];
    let keys: Vec<_> = hosts
        .iter()
        .map(|(_, h)| {
            let key = h.user("bench", "admin");
            h.passwd("bench", PASSWORD);
            // Warm: the first connection of each (PostgreSQL's pool, OpenSSH's).
            ssh_ok(h, &key, false, &["whoami"]);
            key
        })
        .collect();

    println!("store benchmarks: PostgreSQL (TLS, loopback) vs SQLite, OpenSSH client, {runs} runs each\n");
    println!(
        "{:<40} {:>12} {:>12} {:>8}",
        "measure (median)", "sqlite", "postgres", "ratio"
    );
    let measure = |what: &str, f: &dyn Fn(usize) -> f64| {
        let mut t = [Vec::new(), Vec::new()];
        for _ in 0..runs {
            for (i, v) in t.iter_mut().enumerate() {
                v.push(f(i));
            }
        }
        let a = median(t[0].clone());
        let b = median(t[1].clone());
        println!("{what:<40} {a:>9.1} ms {b:>9.1} ms {:>8.2}", b / a);
    };
    measure("SSH key login + whoami", &|i| {
        timed(|| ssh_ok(hosts[i].1, &keys[i], false, &["whoami"]))
    });
    measure("session start to end (new -- true)", &|i| {
        timed(|| ssh_ok(hosts[i].1, &keys[i], true, &["new", "--", "true"]))
    });
    measure("API password login", &|i| timed(|| api_login(hosts[i].1)));
}
