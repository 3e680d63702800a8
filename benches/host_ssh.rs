//! The host against OpenSSH's sshd, side by side in one run, both on loopback and both
//! driven by OpenSSH's `ssh` client:
//! - connect to first prompt (median of 20),
//! - keystroke echo round trip through a PTY (p50, p99 of 300), and for cordon also through
//!   a session attached from its TUI,
//! - output throughput of a session writing 512 MiB to the attached client (`ssh -tt`),
//! - host memory with 100 concurrent sessions (cordon's serve process only).
//!
//! Run with `benches/host_ssh.sh` (installs openssh-server; needs root for a throwaway sshd).

use cordon_test_support::host::Host;
use cordon_test_support::net::{free_port, wait_port};
use cordon_test_support::ssh;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

struct Target {
    name: &'static str,
    ssh: Vec<String>,
    /// Prefix that turns a command into a new session (`new --` for cordon, nothing for sshd).
    session: Vec<String>,
}

fn main() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = tmp.path().join("id");
    ssh::keygen(&key, "bench");
    let public = ssh::public_key(&key);

    let sshd_port = free_port();
    let mut sshd = start_sshd(tmp.path(), sshd_port, &public);
    let mut cordon = Host::start_with(
        CORDON,
        "[api]\nlisten = \"\"\n[sessions]\nmax_per_user = { admin = 500 }",
    );
    cordon.add_user("bench", "admin", &public);

    let client = |port: u16, user: &str| -> Vec<String> {
        let mut argv = ssh::argv(port, &key, user);
        argv.insert(1, "-tt".into());
        argv
    };
    let targets = [
        Target {
            name: "OpenSSH sshd",
            ssh: client(sshd_port, "root"),
            session: vec![],
        },
        Target {
            name: "cordon serve",
            ssh: client(cordon.port, "bench"),
            session: vec!["new".into(), "--".into()],
        },
    ];

    println!("host benchmarks: cordon serve vs OpenSSH sshd, loopback, OpenSSH client\n");
    println!(
        "{:<34} {:>14} {:>14} {:>8}",
        "measure", "sshd", "cordon", "ratio"
    );
    let row = |what: &str, a: f64, b: f64, unit: &str| {
        println!(
            "{:<34} {:>11.2} {unit:<2} {:>11.2} {unit:<2} {:>8.2}",
            what,
            a,
            b,
            b / a
        );
    };

    let prompt: Vec<f64> = targets
        .iter()
        .map(|t| median((0..20).map(|_| first_prompt(t)).collect()))
        .collect();
    row(
        "connect to first prompt (median)",
        prompt[0],
        prompt[1],
        "ms",
    );

    let echo: Vec<(f64, f64)> = targets.iter().map(|t| echo_rtt(t, 300)).collect();
    row("keystroke echo p50", echo[0].0, echo[1].0, "ms");
    row("keystroke echo p99", echo[0].1, echo[1].1, "ms");
    let tui = echo_rtt_tui(&targets[1], 300);
    println!(
        "{:<34} {:>14} {:>11.2} ms {:>8}   p99 {:.2} ms; attach in the TUI vs plain attach: {:+.3} ms (goal: within 1 ms)",
        "keystroke echo p50, TUI attach",
        "",
        tui.0,
        "",
        tui.1,
        tui.0 - echo[1].0
    );

    let tput: Vec<f64> = targets.iter().map(|t| throughput(t, 512 << 20)).collect();
    row("output throughput, 512 MiB (-tt)", tput[0], tput[1], "MB");
    println!(
        "{:<34} (MiB/s of session output shown; higher is better)",
        ""
    );

    let per_session = memory_per_session(&targets[1], cordon.child.id(), 100);
    println!("\ncordon host memory with 100 sessions: {per_session:.2} MiB per session (goal: under 2 MiB)");
    println!(
        "goals: throughput at least sshd's ({}), echo p50 within 0.3 ms of sshd's ({:+.3} ms)",
        if tput[1] >= tput[0] { "met" } else { "not met" },
        echo[1].0 - echo[0].0
    );

    let _ = sshd.kill();
    // SIGTERM ends every session.
    cordon.stop();
    let _ = sshd.wait();
}

fn start_sshd(dir: &Path, port: u16, public: &str) -> Child {
    let host_key = dir.join("sshd_host_key");
    ssh::keygen(&host_key, "sshd");
    std::fs::write(dir.join("authorized_keys"), format!("{public}\n")).expect("authorized_keys");
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {}\n",
            host_key.display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        ),
    )
    .expect("sshd_config");
    let _ = std::fs::create_dir_all("/run/sshd");
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stderr(Stdio::null())
        .spawn()
        .expect("start sshd (benches/host_ssh.sh installs it)");
    wait_port(port);
    child
}

/// An ssh client with pipes, and a thread turning its output into a channel.
struct Client {
    child: Child,
    input: std::process::ChildStdin,
    output: mpsc::Receiver<Vec<u8>>,
}

fn spawn(t: &Target, cmd: &[&str]) -> Client {
    let mut c = Command::new(&t.ssh[0]);
    c.args(&t.ssh[1..])
        .args(&t.session)
        .args(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().expect("ssh");
    let input = child.stdin.take().expect("stdin");
    let mut out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 << 10];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    Client {
        child,
        input,
        output: rx,
    }
}

impl Client {
    /// Reads until `pred` holds for what was read; returns the time it took.
    fn until(&mut self, mut pred: impl FnMut(&[u8]) -> bool) -> Duration {
        let start = Instant::now();
        let mut seen = Vec::new();
        while !pred(&seen) {
            match self.output.recv_timeout(Duration::from_secs(30)) {
                Ok(b) => seen.extend_from_slice(&b),
                Err(_) => panic!(
                    "no answer; saw {:?}",
                    String::from_utf8_lossy(&seen[seen.len().saturating_sub(200)..])
                ),
            }
        }
        start.elapsed()
    }

    /// Ends the remote command: a newline, then end-of-file on the empty line.
    fn finish(mut self) {
        let _ = self.input.write_all(b"\n\x04");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn first_prompt(t: &Target) -> f64 {
    let start = Instant::now();
    let mut c = spawn(t, &["sh"]);
    c.until(|s| s.windows(2).any(|w| w == b"# " || w == b"$ "));
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let _ = c.input.write_all(b"exit\n");
    let _ = c.child.wait();
    ms
}

/// Types `n` characters into `cat` and times each echo from the terminal.
fn echo_rtt(t: &Target, n: usize) -> (f64, f64) {
    let c = spawn(t, &["cat"]);
    echo_times(c, n)
}

/// The same through cordon's TUI: log in to it, start `cat` from its new-session dialog
/// (which attaches full screen), then time the echoes.
fn echo_rtt_tui(t: &Target, n: usize) -> (f64, f64) {
    let tui = Target {
        name: "cordon TUI",
        ssh: t.ssh.clone(),
        session: vec![],
    };
    let mut c = spawn(&tui, &[]);
    let has = |s: &[u8], text: &str| s.windows(text.len()).any(|w| w == text.as_bytes());
    c.until(|s| has(s, "Sessions"));
    c.input.write_all(b"n").expect("type");
    c.until(|s| has(s, "New session"));
    c.input.write_all(b"\t\t\tcat\r").expect("type");
    echo_times(c, n)
}

fn echo_times(mut c: Client, n: usize) -> (f64, f64) {
    std::thread::sleep(Duration::from_millis(500));
    while c.output.try_recv().is_ok() {}
    let mut times = Vec::with_capacity(n);
    let mut expected_x = 0usize;
    let mut got_x = 0usize;
    let count = |b: &[u8]| b.iter().filter(|&&c| c == b'x').count();
    let mut line = 0usize;
    for i in 0..n {
        let start = Instant::now();
        c.input.write_all(b"x").expect("type");
        c.input.flush().ok();
        expected_x += 1;
        line += 1;
        while got_x < expected_x {
            let b = c
                .output
                .recv_timeout(Duration::from_secs(10))
                .expect("echo");
            got_x += count(&b);
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        if i % 40 == 39 {
            // cat prints the line back: drain it before timing the next key.
            c.input.write_all(b"\n").ok();
            expected_x += line;
            line = 0;
            while got_x < expected_x {
                got_x += count(
                    &c.output
                        .recv_timeout(Duration::from_secs(10))
                        .expect("line"),
                );
            }
        }
    }
    c.finish();
    times.sort_by(f64::total_cmp);
    (times[n / 2], times[n * 99 / 100])
}

fn throughput(t: &Target, bytes: usize) -> f64 {
    let start = Instant::now();
    let mut c = spawn(t, &["head", "-c", &bytes.to_string(), "/dev/zero"]);
    let mut total = 0usize;
    while let Ok(b) = c.output.recv_timeout(Duration::from_secs(60)) {
        total += b.len();
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = c.child.wait();
    // cordon resyncs a viewer that falls more than 1 MiB behind from the screen instead of
    // slowing the session: fewer bytes may arrive, the final screen is the same.
    println!(
        "{:<34} {}: {:.1} of {:.1} MiB delivered in {:.2} s",
        "",
        t.name,
        total as f64 / 1048576.0,
        bytes as f64 / 1048576.0,
        secs
    );
    bytes as f64 / (1 << 20) as f64 / secs
}

fn rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:").map(|v| {
                    v.trim()
                        .trim_end_matches(" kB")
                        .trim()
                        .parse::<f64>()
                        .unwrap_or(0.0)
                })
            })
        })
        .unwrap_or(0.0)
}

fn memory_per_session(t: &Target, host: u32, n: usize) -> f64 {
    std::thread::sleep(Duration::from_millis(300));
    let before = rss_kib(host);
    let mut clients: Vec<Client> = (0..n).map(|_| spawn(t, &["sleep", "600"])).collect();
    for c in clients.iter_mut() {
        c.until(|s| !s.is_empty());
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(host);
    for c in clients.iter_mut() {
        let _ = c.child.kill();
    }
    for c in clients {
        let _ = c.child.wait_with_output();
    }
    (after - before).max(0.0) / n as f64 / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
