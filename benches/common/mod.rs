//! What the benchmarks share: free ports, waiting for a listener, and a `cordon serve` with
//! its own data directory and an admin user `bench`.
#![allow(dead_code)]

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

/// A `cordon serve` with data in `dir/tag`, SSH on `ssh_port`, the configuration `config`
/// (TOML, without [ssh] listen; the API is off unless it has an [api] table), and the admin
/// `bench` logging in with `public`. Returns the data directory and the process.
pub fn start_cordon(dir: &Path, tag: &str, ssh_port: u16, public: &str, config: &str) -> (PathBuf, Child) {
    let exe = env!("CARGO_BIN_EXE_cordon");
    let data = dir.join(tag);
    let path = dir.join(format!("{tag}.toml"));
    let api = if config.contains("[api]") { "" } else { "[api]\nlisten = \"\"\n" };
    let text = format!("{api}[ssh]\nlisten = \"127.0.0.1:{ssh_port}\"\n{config}\n");
    std::fs::write(&path, text).expect("config");
    run(Command::new(exe)
        .arg("--data-dir")
        .arg(&data)
        .args(["user", "add", "bench", "--role", "admin", "--key", public.trim()])
        .stdout(Stdio::null()));
    let child = Command::new(exe)
        .arg("--data-dir")
        .arg(&data)
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .expect("start cordon");
    wait_port(ssh_port);
    (data, child)
}
