//! What the benchmarks share: free ports, waiting for a listener, and a `cordon serve` with
//! its own data directory and an admin user `bench`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `c`, which must succeed.
pub fn run(c: &mut Command) {
    let ok = c.status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "{c:?} failed");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

pub fn wait_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(10), "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `cordon serve` on an existing data directory `data` (its users already added), with
/// SSH on `ssh_port` and the configuration `config` written to `path` (as for
/// [`start_cordon`]).
pub fn start_cordon_on(path: &Path, data: &Path, ssh_port: u16, config: &str) -> Child {
    let api = if config.contains("[api]") { "" } else { "[api]\nlisten = \"\"\n" };
    std::fs::write(path, format!("{api}[ssh]\nlisten = \"127.0.0.1:{ssh_port}\"\n{config}\n")).expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_cordon"))
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--config"])
        .arg(path)
        .stdout(Stdio::null())
        .spawn()
        .expect("start cordon");
    wait_port(ssh_port);
    child
}

/// A `cordon serve` with data in `dir/tag`, SSH on `ssh_port`, the configuration `config`
/// (TOML, without [ssh] listen; the API is off unless it has an [api] table), and the admin
/// `bench` logging in with `public`. Returns the data directory and the process.
pub fn start_cordon(dir: &Path, tag: &str, ssh_port: u16, public: &str, config: &str) -> (PathBuf, Child) {
    let data = dir.join(tag);
    run(Command::new(env!("CARGO_BIN_EXE_cordon"))
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "bench", "--role", "admin", "--key", public.trim()])
        .stdout(Stdio::null()));
    let child = start_cordon_on(&dir.join(format!("{tag}.toml")), &data, ssh_port, config);
    (data, child)
}

/// One HTTP/1.1 request on a kept-alive connection: the status and the body.
pub fn exchange(r: &mut BufReader<std::net::TcpStream>, token: &str, method: &str, path: &str, body: &str) -> (u16, Vec<u8>) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    r.get_mut().write_all(req.as_bytes()).expect("send");
    let mut line = String::new();
    r.read_line(&mut line).expect("status");
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut out = vec![0u8; len];
    r.read_exact(&mut out).expect("body");
    (status, out)
}

/// One request on a new connection; it must succeed.
pub fn request(port: u16, token: &str, method: &str, path: &str, body: &str) -> Vec<u8> {
    let mut r = BufReader::new(std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    let (status, out) = exchange(&mut r, token, method, path, body);
    assert!(status < 300, "{method} {path}: {status} {}", String::from_utf8_lossy(&out));
    out
}
