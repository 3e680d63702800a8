//! Recording cost, in one run: bytes on disk for the same terminal output recorded by cordon
//! (compressed, encrypted chunks) and by `asciinema rec` (asciicast v2), scaled to a GiB of
//! output; and cordon's session throughput for that output.
//!
//! Run with `benches/recording.sh` (installs asciinema). The output is `ls -lR` of system
//! directories: long, repetitive, mostly ASCII, like a build or a test run.

use cordon_test_support::host::Host;
use cordon_test_support::ssh;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mib: u64 = std::env::var("SIZE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let corpus = make_corpus(tmp.path(), mib << 20);
    let size = std::fs::metadata(&corpus).map(|m| m.len()).unwrap_or(0);

    // asciinema, headless under script(1) (it wants a terminal).
    let cast = tmp.path().join("a.cast");
    let start = Instant::now();
    let ok = Command::new("script")
        .args([
            "-qec",
            &format!(
                "asciinema rec -q --overwrite -c 'cat {}' {}",
                corpus.display(),
                cast.display()
            ),
            "/dev/null",
        ])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let asciinema_secs = start.elapsed().as_secs_f64();
    let asciinema_bytes = std::fs::metadata(&cast).map(|m| m.len()).unwrap_or(0);
    assert!(
        ok && asciinema_bytes > 0,
        "asciinema rec failed (benches/recording.sh installs it)"
    );

    // cordon: a session that cats the same file, recorded as every session is.
    let (cordon_bytes, cordon_secs, seeks) = cordon_recording(tmp.path(), &corpus);
    let (on, off) = throughput(tmp.path(), &corpus);

    let gib = |b: u64| b as f64 * (1u64 << 30) as f64 / size as f64 / (1u64 << 20) as f64;
    println!(
        "recording size for {:.1} MiB of terminal output (ls -lR), one run",
        size as f64 / 1048576.0
    );
    println!(
        "{:<26} {:>14} {:>18} {:>10}",
        "recorder", "bytes on disk", "MiB per GiB output", "seconds"
    );
    println!(
        "{:<26} {:>14} {:>18.1} {:>10.2}",
        "asciinema rec (v2)",
        asciinema_bytes,
        gib(asciinema_bytes),
        asciinema_secs
    );
    println!(
        "{:<26} {:>14} {:>18.1} {:>10.2}",
        "cordon (zstd+AES-GCM)",
        cordon_bytes,
        gib(cordon_bytes),
        cordon_secs
    );
    println!(
        "cordon / asciinema: {:.3} (goal: under 0.333)",
        cordon_bytes as f64 / asciinema_bytes as f64
    );
    println!(
        "seek (`cordon rec screen ID --at T`, whole command, {} random moments): p50 {:.1} ms, p99 {:.1} ms (goal: under 100 ms); session output {:.1} MiB/s",
        seeks.len(),
        seeks[seeks.len() / 2],
        seeks[seeks.len() * 99 / 100],
        size as f64 / 1048576.0 / cordon_secs
    );
    let mib = size as f64 / 1048576.0;
    println!(
        "session throughput (median of {}, interleaved, `cat` of the same output through ssh -tt): recording on {:.1} MiB/s, off {:.1} MiB/s: overhead {:.1} % (goal: under 10 %)",
        RUNS,
        mib / on,
        mib / off,
        (on / off - 1.0) * 100.0
    );
}

/// Median seconds for a session to `cat` the corpus to an attached ssh client, with
/// recording on and off (`[recordings] enabled`): two hosts, runs interleaved so that the
/// machine's noise falls on both alike.
fn throughput(dir: &Path, corpus: &Path) -> (f64, f64) {
    let mut host_on = start_host(dir, "[recordings]\nenabled = true\n");
    let mut host_off = start_host(dir, "[recordings]\nenabled = false\n");
    let (port_on, port_off) = (host_on.port, host_off.port);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        // Alternate which goes first, so neither always follows the other's page-cache churn.
        if i % 2 == 0 {
            on.push(cat_session(dir, port_on, corpus));
            off.push(cat_session(dir, port_off, corpus));
        } else {
            off.push(cat_session(dir, port_off, corpus));
            on.push(cat_session(dir, port_on, corpus));
        }
    }
    host_on.stop();
    host_off.stop();
    (median(&mut on), median(&mut off))
}

const RUNS: usize = 9;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A `cordon serve` with workspaces in `dir/ws`, the admin `bench` logging in with the key
/// `dir/id`, and `extra` configuration.
fn start_host(dir: &Path, extra: &str) -> Host {
    let h = Host::start_with(
        CORDON,
        &format!(
            "[api]\nlisten = \"\"\n[sessions]\nworkspace_root = \"{}\"\n{extra}",
            dir.join("ws").display()
        ),
    );
    h.add_user("bench", "admin", &ssh::public_key(&dir.join("id")));
    h
}

/// Seconds for a new session to `cat` the corpus to an attached `ssh -tt` client.
fn cat_session(dir: &Path, port: u16, corpus: &Path) -> f64 {
    let start = Instant::now();
    let argv = ssh::argv(port, &dir.join("id"), "bench");
    let status = Command::new(&argv[0])
        .arg("-tt")
        .args(&argv[1..])
        .args([
            "new",
            "--",
            "cat",
            corpus
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("corpus.txt"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status();
    assert!(status.is_ok(), "ssh");
    start.elapsed().as_secs_f64()
}

fn make_corpus(dir: &Path, target: u64) -> std::path::PathBuf {
    let path = dir.join("ws/bench/corpus.txt");
    std::fs::create_dir_all(path.parent().unwrap_or(dir)).expect("workspace");
    let mut out = Vec::new();
    for d in ["/usr/share", "/usr/lib", "/usr/include", "/etc"] {
        if let Ok(o) = Command::new("ls")
            .args(["-lR", d])
            .stderr(Stdio::null())
            .output()
        {
            out.extend_from_slice(&o.stdout);
        }
        if out.len() as u64 >= target {
            break;
        }
    }
    let base = out.clone();
    while (out.len() as u64) < target && !base.is_empty() {
        out.extend_from_slice(&base);
    }
    out.truncate(target as usize);
    std::fs::write(&path, &out).expect("corpus");
    path
}

fn cordon_recording(dir: &Path, corpus: &Path) -> (u64, f64, Vec<f64>) {
    ssh::keygen(&dir.join("id"), "bench");
    let mut h = start_host(dir, "");
    let secs = cat_session(dir, h.port, corpus);
    std::thread::sleep(Duration::from_millis(300));
    h.stop();
    let bytes = std::fs::read_dir(h.state().join("recordings"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    let id = h
        .recordings()
        .first()
        .and_then(|r| r["id"].as_str().map(String::from))
        .expect("a recording");
    let mut seeks = Vec::new();
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for _ in 0..50 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = (x % 1000) as f64 / 1000.0 * secs;
        let start = Instant::now();
        let ok = h
            .command(&["rec", "screen", &id, "--at", &format!("{at:.3}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "rec screen");
        seeks.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    seeks.sort_by(f64::total_cmp);
    (bytes, secs, seeks)
}
