//! The Audit view on a big log, in one run: a host whose audit log holds SIZE_MIB (default
//! 1024) MiB of events, in 64 MiB segments as the host rotates them, sealed with its key.
//! - a refresh of the Audit view: `GET /v1/audit?limit=1000` (the latest events, read from
//!   the end of the log), p50 and p99 of 30;
//! - the peer: what a refresh cost before, the whole log read and parsed, in the same run;
//! - a search (`q=`) and a full verification of the chain, for scale.
//!
//! Run with `benches/audit.sh` (SIZE_MIB=64 for a quick run).

use cordon_test_support::host::Host;
use cordon_test_support::http::exchange;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Instant;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

const SEGMENT: u64 = 64 << 20;

fn seal(key: &[u8], prev: &str, body: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("hmac key");
    m.update(prev.as_bytes());
    m.update(b"\n");
    m.update(body.as_bytes());
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends events to the log of `data` until it holds `size` bytes, in the host's format
/// and chain (continuing from its sealed head), rotating into segments as the host does.
fn grow(data: &Path, key: &[u8], size: u64) -> u64 {
    let head = std::fs::read_to_string(data.join("audit.head")).expect("head");
    let mut parts = head.split_whitespace();
    let mut seq: u64 = parts.next().and_then(|s| s.parse().ok()).expect("head seq");
    let mut mac = parts.next().expect("head mac").to_string();
    let log = data.join("audit.log");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("log");
    let mut in_file = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut first_of_file = 1u64;
    let mut total = 0u64;
    let mut out = Vec::with_capacity(1 << 20);
    while total < size {
        seq += 1;
        let body = format!(
            r#"{{"seq":{seq},"time":"2026-11-30T12:00:00.000Z","event":"run","actor":"user{}","address":"10.0.{}.{}:5{:04}","argv":"cargo test --workspace -- --test-threads {}","exit_status":0,"profile":"default","seconds":1.25,"prev":"{mac}"}}"#,
            seq % 97,
            seq % 250,
            seq % 199,
            seq % 9999,
            seq % 8
        );
        let m = seal(key, &mac, &body);
        let line = format!("{},\"mac\":\"{m}\"}}\n", &body[..body.len() - 1]);
        out.extend_from_slice(line.as_bytes());
        mac = m;
        in_file += line.len() as u64;
        total += line.len() as u64;
        if out.len() > (1 << 20) {
            file.write_all(&out).expect("write");
            out.clear();
        }
        if in_file >= SEGMENT {
            file.write_all(&out).expect("write");
            out.clear();
            std::fs::rename(&log, data.join(format!("audit-{first_of_file:012}.log")))
                .expect("rotate");
            file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("log");
            in_file = 0;
            first_of_file = seq + 1;
        }
    }
    file.write_all(&out).expect("write");
    let sealed = seal(key, "cordon audit head", &format!("{seq} {mac}"));
    std::fs::write(data.join("audit.head"), format!("{seq} {mac} {sealed}\n")).expect("head");
    seq
}

/// The old refresh: every line of every file read and parsed.
fn read_whole(data: &Path) -> usize {
    let mut files: Vec<_> = std::fs::read_dir(data)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit") && n.ends_with(".log"))
        })
        .collect();
    files.sort();
    let mut n = 0;
    for f in files {
        for line in BufReader::new(std::fs::File::open(f).expect("open"))
            .lines()
            .map_while(Result::ok)
        {
            if serde_json::from_str::<serde_json::Value>(&line).is_ok() {
                n += 1;
            }
        }
    }
    n
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let size_mib: u64 = std::env::var("SIZE_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    // The host is stopped while its log grows: the log has one writer at a time.
    let mut h = Host::start_with(CORDON, "[api]\nrate_limit = 100000000");
    h.user("bench", "admin");
    h.stop();
    let started = Instant::now();
    let (_, key) = h.data_key("audit");
    let events = grow(&h.state(), &key, size_mib << 20);
    println!(
        "Audit view benchmark: a log of {size_mib} MiB ({events} events, {} segments), made in {:.1} s\n",
        size_mib * (1 << 20) / SEGMENT,
        started.elapsed().as_secs_f64()
    );
    h.restart();
    let out = h.cordon(&["token", "issue", "bench"]);
    let token = serde_json::from_str::<serde_json::Value>(&out.stdout).expect("token json")
        ["access_token"]
        .as_str()
        .expect("token")
        .to_string();

    let mut conn =
        BufReader::new(std::net::TcpStream::connect(("127.0.0.1", h.api)).expect("connect"));
    conn.get_ref().set_nodelay(true).ok();
    let mut refresh: Vec<f64> = (0..30)
        .map(|_| {
            let t = Instant::now();
            let (status, body) = exchange(&mut conn, &token, "GET", "/v1/audit?limit=1000", "");
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let (p50, p99) = (
        percentile(&mut refresh, 0.5),
        percentile(&mut refresh, 0.99),
    );
    let t = Instant::now();
    let whole = read_whole(&h.state());
    let peer = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let (status, _) = exchange(
        &mut conn,
        &token,
        "GET",
        "/v1/audit?limit=10&q=no-such-text",
        "",
    );
    let search = t.elapsed().as_secs_f64() * 1e3;
    assert_eq!(status, 200);
    let t = Instant::now();
    let (status, body) = exchange(&mut conn, &token, "GET", "/v1/audit/verify", "");
    let verify = t.elapsed().as_secs_f64();
    assert_eq!(status, 200);
    h.stop();

    println!("{:<52} {:>10} {:>10}", "", "p50", "p99");
    println!(
        "{:<52} {:>8.1}ms {:>8.1}ms",
        "refresh: the latest 1000 events (cordon)", p50, p99
    );
    println!(
        "{:<52} {:>8.0}ms",
        format!("peer: the whole log read and parsed ({whole} events)"),
        peer
    );
    println!(
        "\nratio refresh/peer: {:.5} (goal: a refresh under 100 ms at 1 GiB)",
        p50 / peer
    );
    println!("a search of the latest 256 MiB with no match: {search:.0} ms");
    println!(
        "a full verification of the chain: {verify:.1} s ({})",
        String::from_utf8_lossy(&body)
    );
}
