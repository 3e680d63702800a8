//! The exec watch's cost when it records (issue 16), in one run: a loop of 10,000 execs of
//! `/bin/true` in `cordon sandbox --profile default`, with exec events (`--events-fd` to a
//! pipe a thread drains, as a host does) and without (the watch still answers every exec
//! and exit, for the refusal notice, but writes nothing), interleaved; and the output
//! throughput of the same sandbox (320 MiB of coloured log lines through a pipe, one cat)
//! both ways.
//! Goal: the exec loop at most 20 % slower with events; output unchanged.
//!
//! Run with `cargo bench --bench exec_events`; `EXECS=N` changes the loop (default 10000),
//! `RUNS=N` the runs per side (default 3, best kept).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run(ws: &std::path::Path, script: &str, events: bool) -> (Duration, u64) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cordon"));
    cmd.args(["sandbox", "--profile", "default", "--workspace"])
        .arg(ws)
        .current_dir(ws)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut drain = None;
    // Both sides start the same way: a pre_exec hook makes std fork instead of
    // posix_spawn, which would otherwise cost only the side with events.
    // SAFETY: an empty hook.
    unsafe {
        cmd.pre_exec(|| Ok(()));
    }
    if events {
        let (r, w) = os_pipe();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&w);
        cmd.arg("--events-fd").arg("9");
        // SAFETY: dup2 in the child between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(fd, 9) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        drain = Some((
            std::thread::spawn(move || {
                let mut r = r;
                let mut n = 0u64;
                let mut buf = vec![0u8; 1 << 16];
                while let Ok(k) = r.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    n += k as u64;
                }
                n
            }),
            w,
        ));
    }
    cmd.args(["--", "sh", "-c", script]);
    let t = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    // Our copy of the write end goes, so the drain ends with the sandbox.
    let drain = drain.map(|(h, w)| {
        drop(w);
        h
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut sink = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    while let Ok(k) = out.read(&mut sink) {
        if k == 0 {
            break;
        }
        bytes += k as u64;
    }
    let status = child.wait().expect("wait");
    let took = t.elapsed();
    assert!(status.success(), "{script}: {status}");
    let _events = drain.map(|h| h.join().expect("drain"));
    (took, bytes)
}

fn main() {
    let execs: usize = std::env::var("EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let ws = tempfile::tempdir().expect("workspace");
    let loop_script = format!("i=0; while [ $i -lt {execs} ]; do /bin/true; i=$((i+1)); done");
    // 320 MiB of coloured compiler-like lines, written once into the workspace; the
    // session prints it with one cat, so the output path is measured, not exec.
    let line = "\x1b[1;32m   Compiling\x1b[0m cordon v0.1.0 (/work/main) \x1b[2m[build]\x1b[0m\n";
    let log = line.repeat((320 << 20) / line.len());
    std::fs::write(ws.path().join("build.log"), &log).expect("build.log");
    drop(log);
    let output_script = "cat build.log";
    let mut best = [[Duration::MAX; 2]; 2];
    let mut mib = 0.0;
    for run_no in 0..runs {
        // Each side goes first every other run, so that order favours neither.
        let order = if run_no % 2 == 0 {
            [(0, false), (1, true)]
        } else {
            [(1, true), (0, false)]
        };
        for (i, events) in order {
            let (t, _) = run(ws.path(), &loop_script, events);
            best[0][i] = best[0][i].min(t);
            let (t, bytes) = run(ws.path(), output_script, events);
            mib = bytes as f64 / f64::from(1 << 20);
            best[1][i] = best[1][i].min(t);
        }
    }
    let per_exec = |d: Duration| d.as_secs_f64() * 1e6 / execs as f64;
    println!("{execs} execs of /bin/true in a session (best of {runs}):");
    println!(
        "  without exec events  {:>8.1} ms  ({:.1} µs an exec)",
        best[0][0].as_secs_f64() * 1e3,
        per_exec(best[0][0])
    );
    println!(
        "  with exec events     {:>8.1} ms  ({:.1} µs an exec)  {:+.1} % (goal: at most +20 %)",
        best[0][1].as_secs_f64() * 1e3,
        per_exec(best[0][1]),
        (best[0][1].as_secs_f64() / best[0][0].as_secs_f64() - 1.0) * 100.0
    );
    let mibs = |d: Duration| mib / d.as_secs_f64();
    println!("output, {mib:.0} MiB of coloured lines (best of {runs}):");
    println!("  without exec events  {:>8.1} MiB/s", mibs(best[1][0]));
    println!(
        "  with exec events     {:>8.1} MiB/s  ({:.2}x)",
        mibs(best[1][1]),
        mibs(best[1][1]) / mibs(best[1][0])
    );
}

/// A pipe (read end, write end), close-on-exec.
fn os_pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: a two-int array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    use std::os::fd::FromRawFd;
    // SAFETY: pipe2 returned them; owned from here.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}
