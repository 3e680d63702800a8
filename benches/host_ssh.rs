//! The host against OpenSSH's sshd, side by side in one run, both on loopback and both
//! driven by OpenSSH's `ssh` client:
//! - connect to first prompt (median of 20),
//! - keystroke echo round trip through a PTY (p50, p99 of 300), and for cordon also through
//!   a session attached from its TUI,
//! - output throughput of a session attached with `ssh -tt`, recording on, on realistic
//!   output: a build and test log with colours, a full-screen TUI's redraw frames (like
//!   Claude Code's), and bulk text; each written in large blocks (`cat`) and one write per
//!   line or frame (a program that flushes each). `head -c N /dev/zero` stays as a labelled
//!   extra: every stage can skip NUL bytes, so it says little.
//! - memory with 100 idle sessions, counted as PSS over every process the host and its
//!   sessions add (sandbox processes and commands included), for both.
//!
//! Run with `benches/host_ssh.sh` (installs openssh-server; needs root for a throwaway sshd).
//! `RUNS=N` runs each throughput case N times (default 3, interleaved with the peer);
//! `ONLY=a,b` runs only the parts (`prompt`, `echo`, `throughput`, `memory`) or throughput
//! cases whose names contain one of them; `MIB=N` sets the size of the block-wise cases
//! (default 128; line-wise ones are a quarter of it). `PROFILE=1` skips the peer's
//! throughput runs, so that `perf record -a` sees cordon alone (no ratio then).

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
    /// The server's process (sshd's listener, cordon serve): its CPU and its children's.
    server: u32,
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
        "max_connections_per_user = 500\n[api]\nlisten = \"\"\n[sessions]\nmax_per_user = { admin = 500 }",
    );
    cordon.add_user("bench", "admin", &public);

    let client = |port: u16, user: &str| -> Vec<String> {
        let mut argv = ssh::argv(port, &key, user);
        argv.insert(1, "-tt".into());
        argv
    };
    let targets = [
        Target {
            name: "sshd",
            server: sshd.id(),
            ssh: client(sshd_port, "root"),
            session: vec![],
        },
        Target {
            name: "cordon",
            server: cordon.child.id(),
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

    let inputs = tempfile::Builder::new()
        .prefix("cordon-bench-")
        .tempdir_in("/opt")
        .expect("a directory under /opt, which sessions may read");
    write_inputs(inputs.path(), env_num("MIB", 128) << 20);
    open_to_all(inputs.path());

    if wanted("prompt") {
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
    }

    let echo: Vec<(f64, f64)> = if wanted("echo") {
        targets.iter().map(|t| echo_rtt(t, 300)).collect()
    } else {
        vec![(f64::NAN, f64::NAN); 2]
    };
    if wanted("echo") {
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
    }

    if let Some(met) = throughput_table(&targets, inputs.path()) {
        println!(
            "goals: throughput at least sshd's on every realistic case ({}); echo p50 and p99 at or below sshd's ({:+.3} ms, {:+.3} ms)",
            if met { "met" } else { "not met" },
            echo[1].0 - echo[0].0,
            echo[1].1 - echo[0].1
        );
    }

    if wanted("memory") {
        let n = env_num("SESSIONS", 100);
        let base = memory_per_session(&targets[0], sshd.id(), n);
        let ours = memory_per_session(&targets[1], cordon.child.id(), n);
        println!(
            "\nmemory per idle session, {n} sessions (PSS of the host and every process it adds)"
        );
        row("MiB a session (goal: cordon <= 2)", base, ours, "MB");
    }

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
            "Port {port}\nListenAddress 127.0.0.1\nUseDNS no\nMaxStartups 100\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {}\n",
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
        server: t.server,
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

/// Whether `ONLY` (if set) asks for this part or case.
fn wanted(what: &str) -> bool {
    match std::env::var("ONLY") {
        Ok(only) if !only.is_empty() => {
            what.contains(&only) || only.split(',').any(|o| what.contains(o))
        }
        _ => true,
    }
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sessions run as other users: the inputs must be readable by all.
fn open_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for e in std::fs::read_dir(dir).expect("inputs") {
        let p = e.expect("entry").path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
}

/// CPU seconds used by `pid` and its children that it has waited for (clock ticks).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    // After the command: state, ppid, ... utime is field 14 of the line, so the 12th here.
    rest.split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

/// CPU seconds of this process's children it has waited for (the ssh clients).
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// What one run measured.
struct Run {
    mib_s: f64,
    delivered: usize,
    /// CPU milliseconds per MiB: the server's (its process, and every process of the
    /// session it has waited for, the producer included), and the client's.
    server_ms: f64,
    client_ms: f64,
}

/// One timed run: the MiB/s of the producer's output between the first byte the client
/// printed and its end, how many bytes reached the client, and the CPU it cost.
fn run_case(t: &Target, cmd: &[String], payload: usize) -> Run {
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let server_before = cpu_ticks(t.server);
    let client_before = children_cpu();
    let mut c = Command::new(&t.ssh[0]);
    c.args(&t.ssh[1..])
        .args(&t.session)
        .args(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().expect("ssh");
    // Kept open (and empty) until the end: a closed stdin would end an `ssh -tt` early.
    let input = child.stdin.take();
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 256 << 10];
    let (mut first, mut total) = (None, 0usize);
    loop {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                first.get_or_insert_with(Instant::now);
                total += n;
            }
        }
    }
    let secs = first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(f64::NAN);
    drop(input);
    let _ = child.wait();
    // The session's processes are reaped by the server once they end.
    let mut server = 0.0;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(40));
        let now = (cpu_ticks(t.server) - server_before) as f64 / ticks;
        if now == server && now > 0.0 {
            break;
        }
        server = now;
    }
    let mib = payload as f64 / 1048576.0;
    Run {
        mib_s: mib / secs,
        delivered: total,
        server_ms: server * 1000.0 / mib,
        client_ms: (children_cpu() - client_before) * 1000.0 / mib,
    }
}

/// Every realistic case, block-wise and line-wise, then /dev/zero, `RUNS` times each, the
/// two targets interleaved run by run. Prints the medians and the ratio; answers whether
/// cordon was at least as fast as sshd on every realistic case.
fn throughput_table(targets: &[Target], inputs: &Path) -> Option<bool> {
    let runs = env_num("RUNS", 3).max(1);
    let dir = inputs.display().to_string();
    let block = std::fs::metadata(inputs.join(Content::BulkText.file()))
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let mut all_met = true;
    let mut header = false;
    let mut cases: Vec<(String, Vec<String>, usize, bool)> = Vec::new();
    for c in [Content::BuildLog, Content::TuiRedraw, Content::BulkText] {
        let file = format!("{dir}/{}", c.file());
        let size = std::fs::metadata(&file)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        cases.push((
            format!("{}, blocks (cat)", c.name()),
            vec!["cat".into(), file.clone()],
            size,
            true,
        ));
        let limit = block / 4;
        cases.push((
            format!("{}, a write per {}", c.name(), c.record()),
            vec![
                "python3".into(),
                format!("{dir}/lines.py"),
                file,
                c.record().into(),
                limit.to_string(),
            ],
            limit,
            true,
        ));
    }
    cases.push((
        "extra: /dev/zero (NUL, skippable)".into(),
        vec![
            "head".into(),
            "-c".into(),
            block.to_string(),
            "/dev/zero".into(),
        ],
        block,
        false,
    ));
    for (name, cmd, payload, realistic) in cases {
        if !wanted("throughput") && !wanted(&name) {
            continue;
        }
        if !header {
            header = true;
            println!(
                "\noutput throughput, ssh -tt attached, recording on, median of {runs} (MiB/s of session output; higher is better)"
            );
            println!(
                "{:<44} {:>12} {:>12} {:>8}",
                "case", targets[0].name, targets[1].name, "ratio"
            );
        }
        let mut rates = vec![Vec::new(), Vec::new()];
        let mut server = vec![Vec::new(), Vec::new()];
        let mut client = vec![Vec::new(), Vec::new()];
        let mut delivered = [0usize; 2];
        for _ in 0..runs {
            for (i, t) in targets.iter().enumerate() {
                if i == 0 && std::env::var("PROFILE").is_ok() {
                    for v in [&mut rates, &mut server, &mut client] {
                        v[0].push(f64::NAN);
                    }
                    continue;
                }
                let r = run_case(t, &cmd, payload);
                rates[i].push(r.mib_s);
                server[i].push(r.server_ms);
                client[i].push(r.client_ms);
                delivered[i] = r.delivered;
            }
        }
        let (a, b) = (median(rates[0].clone()), median(rates[1].clone()));
        println!(
            "{:<44} {:>9.1} MB {:>9.1} MB {:>7.2}x   {:.0}/{:.0} MiB delivered",
            name,
            a,
            b,
            b / a,
            delivered[0] as f64 / 1048576.0,
            delivered[1] as f64 / 1048576.0,
        );
        println!(
            "{:<44} {:>9.2} ms {:>9.2} ms {:>7.2}x   client {:.2} / {:.2} ms",
            "  CPU per MiB: server and session",
            median(server[0].clone()),
            median(server[1].clone()),
            median(server[1].clone()) / median(server[0].clone()),
            median(client[0].clone()),
            median(client[1].clone()),
        );
        if realistic && b < a {
            all_met = false;
        }
    }
    header.then_some(all_met)
}

/// PSS of `pid` and all its descendants, in KiB.
fn tree_pss_kib(pid: u32) -> f64 {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        // The parent pid is the second field after the command's closing parenthesis.
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok())
        {
            children.entry(ppid).or_default().push(p);
        }
    }
    let mut total = 0.0;
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        total += pss_kib(p);
        if let Some(c) = children.get(&p) {
            todo.extend(c);
        }
    }
    total
}

fn pss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Pss:")
                    .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
            })
        })
        .unwrap_or(0.0)
}

/// MiB a session adds: the PSS of the host's process tree before and with `n` idle
/// sessions (`sleep 600` once it said it started, attached from a client each).
fn memory_per_session(t: &Target, host: u32, n: usize) -> f64 {
    std::thread::sleep(Duration::from_millis(300));
    let before = tree_pss_kib(host);
    // One at a time: sshd refuses more than 10 unauthenticated connections at once.
    let mut clients = Vec::with_capacity(n);
    for i in 0..n {
        eprint!("\r{} session {i} of {n} ", t.name);
        // One word, quoted for the far side's parser (sshd's shell, cordon's command line).
        let mut c = spawn(t, &["sh -c 'echo ready; exec sleep 600'"]);
        c.until(|s| s.windows(5).any(|w| w == b"ready"));
        clients.push(c);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let after = tree_pss_kib(host);
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

// ---------------------------------------------------------------------------------------
// Output throughput on realistic output.

/// What a session prints in a throughput case.
#[derive(Clone, Copy, PartialEq)]
enum Content {
    /// A compiler's and a test runner's log: short lines, ANSI colours and bold.
    BuildLog,
    /// A full-screen TUI like Claude Code's: each frame, between synchronized-output marks,
    /// moves up over the previous one, erases and redraws ~20 rows of coloured text, box
    /// drawing and a spinner.
    TuiRedraw,
    /// Plain printable text lines (source code, logs), no escapes.
    BulkText,
}

impl Content {
    fn name(self) -> &'static str {
        match self {
            Content::BuildLog => "build log, colours",
            Content::TuiRedraw => "TUI redraw frames",
            Content::BulkText => "bulk text",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Content::BuildLog => "build.log",
            Content::TuiRedraw => "tui.stream",
            Content::BulkText => "bulk.txt",
        }
    }

    /// Where the line-wise producer cuts its writes: at each line, or at each frame.
    fn record(self) -> &'static str {
        match self {
            Content::TuiRedraw => "frame",
            _ => "line",
        }
    }
}

/// A little deterministic generator (xorshift), so that runs and peers see the same bytes
/// and a compressor cannot skip them.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

const WORDS: &[&str] = &[
    "session", "buffer", "render", "config", "parse", "token", "stream", "index", "value",
    "handler", "request", "result", "error", "limit", "cache", "thread", "queue", "writer",
    "reader", "policy", "profile", "record", "screen", "cursor", "window", "channel", "frame",
    "module", "import", "return", "match", "struct", "impl", "async", "await", "len", "iter",
];

fn words(r: &mut Rng, n: usize) -> String {
    (0..n).map(|_| r.pick(WORDS)).collect::<Vec<_>>().join(" ")
}

fn build_log(r: &mut Rng, out: &mut Vec<u8>) {
    let krate = format!("{}-{}", r.pick(WORDS), r.pick(WORDS));
    let line = match r.below(10) {
        0..=2 => format!(
            "\x1b[1m\x1b[32m   Compiling\x1b[0m {krate} v0.{}.{} (/home/dev/project/crates/{krate})\n",
            r.below(20),
            r.below(40)
        ),
        3 => format!(
            "\x1b[1m\x1b[33mwarning\x1b[0m\x1b[1m: unused variable: `{}_{}`\x1b[0m\n   \x1b[1m\x1b[34m-->\x1b[0m src/{}.rs:{}:{}\n    \x1b[1m\x1b[34m|\x1b[0m\n",
            r.pick(WORDS),
            r.below(99),
            r.pick(WORDS),
            r.below(900) + 1,
            r.below(80) + 1
        ),
        4 => format!(
            "\x1b[1m\x1b[31merror[E0{}]\x1b[0m\x1b[1m: mismatched types: expected `{}`, found `{}`\x1b[0m\n",
            r.below(700) + 100,
            r.pick(WORDS),
            r.pick(WORDS)
        ),
        5..=8 => format!(
            "test {}::{}::{}_{} ... \x1b[32mok\x1b[0m\n",
            r.pick(WORDS),
            r.pick(WORDS),
            words(r, 3).replace(' ', "_"),
            r.below(1000)
        ),
        _ => format!(
            "test {}::{} ... \x1b[31mFAILED\x1b[0m ({} ms)\n",
            r.pick(WORDS),
            words(r, 2).replace(' ', "_"),
            r.below(5000)
        ),
    };
    out.extend_from_slice(line.as_bytes());
}

/// One frame of a Claude Code-like interface, `n` of them so far: it goes up over the last
/// frame's rows erasing them, as Ink's log-update does, then draws the new ones.
fn tui_frame(r: &mut Rng, n: usize, out: &mut Vec<u8>) {
    const ROWS: usize = 20;
    const SPIN: &[&str] = &["·", "✢", "✳", "✶", "✻", "✽"];
    let mut f = String::from("\x1b[?2026h");
    if n > 0 {
        for _ in 0..ROWS {
            f.push_str("\x1b[2K\x1b[1A");
        }
        f.push_str("\x1b[2K\x1b[G");
    }
    f.push_str("\x1b[38;2;215;119;87m╭──────────────────────────────────────────────────────────────────────────╮\x1b[39m\n");
    for row in 0..ROWS - 6 {
        let n_words = 5 + r.below(6);
        let text = words(r, n_words);
        let text: String = text.chars().take(70).collect();
        let colour = [
            "\x1b[38;2;153;153;153m",
            "\x1b[38;2;255;255;255m",
            "\x1b[38;2;78;186;101m",
            "\x1b[1m",
        ][row % 4];
        f.push_str(&format!(
            "\x1b[38;2;215;119;87m│\x1b[39m {colour}{text:<72}\x1b[0m\x1b[38;2;215;119;87m│\x1b[39m\n"
        ));
    }
    f.push_str("\x1b[38;2;215;119;87m╰──────────────────────────────────────────────────────────────────────────╯\x1b[39m\n");
    f.push_str(&format!(
        "\x1b[38;2;215;119;87m{}\x1b[39m \x1b[38;2;215;119;87mThinking…\x1b[39m \x1b[2m({}s · ↑ {} tokens · esc to interrupt)\x1b[22m\n",
        SPIN[n % SPIN.len()],
        n / 10,
        n * 7 + r.below(7)
    ));
    f.push_str("\x1b[2m? for shortcuts\x1b[22m\n\n");
    f.push_str("\x1b[?2026l");
    out.extend_from_slice(f.as_bytes());
}

fn bulk_line(r: &mut Rng, out: &mut Vec<u8>) {
    let line = format!(
        "{:>6} {} = {}({}, {});\n",
        r.below(100_000),
        words(r, 2).replace(' ', "_"),
        r.pick(WORDS),
        words(r, 4),
        r.next() % 1_000_000
    );
    out.extend_from_slice(line.as_bytes());
}

/// Writes each content's file of about `bytes` into `dir`, and the line-wise producer.
fn write_inputs(dir: &Path, bytes: usize) {
    for c in [Content::BuildLog, Content::TuiRedraw, Content::BulkText] {
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let mut out = Vec::with_capacity(bytes + 4096);
        let mut n = 0;
        while out.len() < bytes {
            match c {
                Content::BuildLog => build_log(&mut r, &mut out),
                Content::TuiRedraw => tui_frame(&mut r, n, &mut out),
                Content::BulkText => bulk_line(&mut r, &mut out),
            }
            n += 1;
        }
        std::fs::write(dir.join(c.file()), out).expect("write input");
    }
    // One write(2) per record: python3's os.write, unbuffered.
    std::fs::write(
        dir.join("lines.py"),
        "import os, sys\n\
         data = open(sys.argv[1], 'rb').read()\n\
         sep = b'\\n' if sys.argv[2] == 'line' else b'\\x1b[?2026h'\n\
         limit = int(sys.argv[3])\n\
         pos, sent = 0, 0\n\
         while pos < len(data) and sent < limit:\n\
         \x20   nxt = data.find(sep, pos + 1)\n\
         \x20   if sep == b'\\n':\n\
         \x20       nxt = len(data) if nxt < 0 else nxt + 1\n\
         \x20   elif nxt < 0:\n\
         \x20       nxt = len(data)\n\
         \x20   sent += os.write(1, data[pos:nxt])\n\
         \x20   pos = nxt\n",
    )
    .expect("write lines.py");
}
