//! Start-up cost of a confined command, side by side with the peers, in one run:
//! `cordon sandbox --profile default -- /bin/true`, plain `/bin/true`, and bubblewrap's
//! `bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc -- /bin/true`.
//!
//! Run with `benches/sandbox_start.sh` (installs bubblewrap) or `cargo bench --bench
//! sandbox_start`. `RUNS=N` changes the number of runs per command (default 300).
//! The three are interleaved run by run, so that drift in the machine hits all alike.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Case {
    name: &'static str,
    argv: Vec<String>,
    times: Vec<Duration>,
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
        .max(200);
    let ws = tempfile::tempdir().expect("workspace");
    let cordon = env!("CARGO_BIN_EXE_cordon").to_string();
    let ws_arg = ws.path().display().to_string();
    let mut cases = vec![
        Case {
            name: "/bin/true",
            argv: vec!["/bin/true".into()],
            times: vec![],
        },
        Case {
            name: "cordon sandbox --profile default -- /bin/true",
            argv: [
                cordon.as_str(),
                "sandbox",
                "--profile",
                "default",
                "--workspace",
                &ws_arg,
                "--",
                "/bin/true",
            ]
            .map(String::from)
            .to_vec(),
            times: vec![],
        },
    ];
    let bwrap = which("bwrap");
    match &bwrap {
        Some(b) => cases.push(Case {
            name: "bwrap --unshare-all --ro-bind / / --dev /dev --proc /proc -- /bin/true",
            argv: [b.as_str(), "--unshare-all", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--", "/bin/true"]
                .map(String::from)
                .to_vec(),
            times: vec![],
        }),
        None => eprintln!("bwrap is not installed: run benches/sandbox_start.sh, which installs Debian's bubblewrap"),
    }
    // Each must work before it is timed.
    for c in &cases {
        let ok = Command::new(&c.argv[0])
            .args(&c.argv[1..])
            .stdin(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("`{}` does not run here; stopping", c.argv.join(" "));
            std::process::exit(1);
        }
    }
    for _ in 0..runs {
        for c in cases.iter_mut() {
            let start = Instant::now();
            let status = Command::new(&c.argv[0])
                .args(&c.argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status();
            let took = start.elapsed();
            if !status.map(|s| s.success()).unwrap_or(false) {
                eprintln!("`{}` failed during the run", c.name);
                std::process::exit(1);
            }
            c.times.push(took);
        }
    }
    println!("sandbox start-up, {runs} runs each, interleaved (milliseconds)");
    println!(
        "{:<80} {:>8} {:>8} {:>8}",
        "command", "median", "p10", "p90"
    );
    let mut medians = Vec::new();
    for c in cases.iter_mut() {
        c.times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let (p10, med, p90) = (
            ms(c.times[runs / 10]),
            ms(c.times[runs / 2]),
            ms(c.times[runs * 9 / 10]),
        );
        println!("{:<80} {:>8.3} {:>8.3} {:>8.3}", c.name, med, p10, p90);
        medians.push(med);
    }
    let overhead = medians[1] - medians[0];
    println!("\ncordon overhead over plain exec: {overhead:.3} ms (goal: under 2 ms)");
    if medians.len() == 3 {
        println!(
            "cordon / bwrap: {:.2} (goal: under 0.5); bwrap overhead over plain exec: {:.3} ms",
            medians[1] / medians[2],
            medians[2] - medians[0]
        );
    }
}

fn which(name: &str) -> Option<String> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| format!("{d}/{name}"))
        .find(|p| std::path::Path::new(p).is_file())
}
