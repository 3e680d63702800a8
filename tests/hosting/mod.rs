//! The harness the integration tests share: a `cordon serve` on a free port with its own
//! data directory, users with fresh keys, OpenSSH's `ssh`, and tmux windows to type into
//! and read.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Host {
    pub data: tempfile::TempDir,
    pub keys: tempfile::TempDir,
    pub port: u16,
    pub child: Child,
    pub tmux: String,
    /// The HTTP API's port.
    pub api: u16,
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Host {
    pub fn start() -> Host {
        Host::start_with("")
    }

    /// A host whose configuration adds `extra`: lines before any table header belong to
    /// [ssh]; other tables ([sessions], [api], ...) are merged with the harness's own keys.
    pub fn start_with(extra: &str) -> Host {
        Host::start_limited(extra, None)
    }

    /// A host started under `prlimit --nofile=N` when `nofile` is given.
    pub fn start_limited(extra: &str, nofile: Option<u32>) -> Host {
        let data = tempfile::tempdir().unwrap();
        let keys = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let api = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = data.path().join("cordon.toml");
        let mut tables: Vec<(String, Vec<String>)> = vec![
            ("ssh".into(), vec![format!("listen = \"127.0.0.1:{port}\"")]),
            (
                "sessions".into(),
                vec![
                    format!("workspace_root = \"{}\"", data.path().join("workspaces").display()),
                    format!("home_root = \"{}\"", data.path().join("homes").display()),
                ],
            ),
            ("api".into(), vec![format!("listen = \"127.0.0.1:{api}\"")]),
        ];
        let mut current = "ssh".to_string();
        for line in extra.lines() {
            let t = line.trim();
            if let Some(name) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                current = name.to_string();
                if !tables.iter().any(|(n, _)| *n == current) {
                    tables.push((current.clone(), Vec::new()));
                }
            } else if !t.is_empty() {
                let lines = &mut tables.iter_mut().find(|(n, _)| *n == current).unwrap().1;
                // A key the test sets wins over the harness's.
                let key = t.split('=').next().unwrap_or("").trim().to_string();
                lines.retain(|l| l.split('=').next().unwrap_or("").trim() != key);
                lines.push(t.to_string());
            }
        }
        let text: String = tables.iter().map(|(n, lines)| format!("[{n}]\n{}\n", lines.join("\n"))).collect();
        std::fs::write(&config, text).unwrap();
        let mut cmd = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(env!("CARGO_BIN_EXE_cordon"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_cordon")),
        };
        let mut child = cmd
            .arg("--data-dir")
            .arg(data.path().join("state"))
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("CORDON_PROFILE_PATH")
            .env_remove("CORDON_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(first.contains("listening on"), "serve said: {first}");
        std::thread::spawn(move || for _ in lines {});
        // "listening on" is said for SSH; the API starts a moment later.
        if !extra.contains("listen = \"\"") {
            wait_until("the API to listen", || std::net::TcpStream::connect(("127.0.0.1", api)).is_ok());
        }
        let tmux = format!("cordon-test-{}-{port}", std::process::id());
        Host { data, keys, port, child, tmux, api }
    }

    /// The configuration file the host runs with (the host-shell commands read it too).
    pub fn config(&self) -> PathBuf {
        self.data.path().join("cordon.toml")
    }

    /// A user's home on the host.
    pub fn home(&self, user: &str) -> PathBuf {
        self.data.path().join("homes").join(user)
    }

    /// A user's workspace on the host.
    pub fn workspace(&self, user: &str) -> PathBuf {
        self.data.path().join("workspaces").join(user)
    }

    /// The uid a user's sessions run as (`uid_base + id`, the default base).
    pub fn uid(&self, user: &str) -> u32 {
        let out = self.cordon(&["user", "list", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
        let id =
            v.as_array().unwrap().iter().find(|u| u["name"] == user).unwrap_or_else(|| panic!("no {user} in {v}"))["id"].as_u64().unwrap();
        2_000_000_000 + id as u32
    }

    pub fn state(&self) -> PathBuf {
        self.data.path().join("state")
    }

    pub fn cordon(&self, args: &[&str]) -> Out {
        output(
            Command::new(env!("CARGO_BIN_EXE_cordon"))
                .arg("--data-dir")
                .arg(self.state())
                .arg("--config")
                .arg(self.config())
                .env_remove("CORDON_CONFIG")
                .args(args),
        )
    }

    /// A user with a fresh Ed25519 key; returns the private key's path.
    pub fn user(&self, name: &str, role: &str) -> PathBuf {
        let key = self.keygen(name);
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let out = self.cordon(&["user", "add", name, "--role", role, "--key", public.trim()]);
        assert_eq!(out.code, 0, "{out:?}");
        key
    }

    pub fn keygen(&self, name: &str) -> PathBuf {
        let key = self.keys.path().join(name);
        let ok = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"]).arg(&key).status().unwrap();
        assert!(ok.success());
        key
    }

    pub fn ssh_command(&self, key: &Path, user: &str) -> Vec<String> {
        [
            "ssh",
            "-i",
            &key.display().to_string(),
            "-p",
            &self.port.to_string(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            &format!("{user}@127.0.0.1"),
        ]
        .map(String::from)
        .to_vec()
    }

    pub fn ssh(&self, key: &Path, user: &str, args: &[&str]) -> Out {
        let argv = self.ssh_command(key, user);
        output(Command::new(&argv[0]).args(&argv[1..]).args(args).stdin(Stdio::null()))
    }

    /// Starts `ssh -t ... args` in a tmux window named `win`.
    pub fn tmux_ssh(&self, win: &str, key: &Path, user: &str, args: &str) {
        let argv = self.ssh_command(key, user);
        let cmd = format!("{} -t {args}", argv.join(" "));
        let ok =
            Command::new("tmux").args(["-L", &self.tmux, "new-session", "-d", "-s", win, "-x", "100", "-y", "30", &cmd]).status().unwrap();
        assert!(ok.success());
    }

    /// Keeps `win` showing its last screen after its command exits.
    pub fn keep(&self, win: &str) {
        Command::new("tmux").args(["-L", &self.tmux, "set-option", "-t", win, "remain-on-exit", "on"]).status().unwrap();
    }

    pub fn keys(&self, win: &str, keys: &[&str]) {
        Command::new("tmux").args(["-L", &self.tmux, "send-keys", "-t", win]).args(keys).status().unwrap();
    }

    pub fn screen(&self, win: &str) -> String {
        let o = Command::new("tmux").args(["-L", &self.tmux, "capture-pane", "-p", "-t", win]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Waits until `win` shows `text` (or fails with what it shows).
    pub fn wait_for(&self, win: &str, text: &str) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen(win);
            if s.contains(text) {
                return s;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("window {win} never showed {text:?}; it shows:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn audit_log(&self) -> String {
        std::fs::read_to_string(self.state().join("audit.log")).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.tmux, "kill-server"]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn output(c: &mut Command) -> Out {
    let o = c.output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn session(h: &Host, key: &Path, user: &str, script: &str) -> Out {
    let mut argv = h.ssh_command(key, user);
    argv.insert(1, "-tt".into());
    output(Command::new(&argv[0]).args(&argv[1..]).args(["new", "--", "sh", "-c", &format!("'{script}'")]).stdin(Stdio::null()))
}

pub fn recordings(h: &Host) -> Vec<serde_json::Value> {
    let out = h.cordon(&["rec", "ls", "--json"]);
    serde_json::from_str::<serde_json::Value>(&out.stdout).ok().and_then(|v| v.as_array().cloned()).unwrap_or_default()
}
