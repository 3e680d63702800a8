//! A `cordon serve` of the caller's own: a fresh data directory and configuration, SSH and
//! the API on free loopback ports, users with fresh keys, OpenSSH's `ssh` to log in, tmux
//! windows to type into and read, and the host-shell commands (`cordon user ...`) on the
//! same data. Dropped, it ends the serve and its windows.

use crate::net::{free_port, wait_port};
use crate::process::{output, Out};
use crate::ssh;
use crate::tmux::Tmux;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// A running `cordon serve` and everything that is its own.
pub struct Host {
    /// Holds the configuration (`cordon.toml`), the data directory (`state/`) and the users'
    /// `homes/` and `workspaces/`.
    pub data: tempfile::TempDir,
    /// The users' private keys, and whatever else a test keeps beside them.
    pub keys: tempfile::TempDir,
    /// The SSH port.
    pub port: u16,
    /// The HTTP API's port.
    pub api: u16,
    /// The `cordon serve` process.
    pub child: Child,
    /// The server of the windows [`Host::tmux_ssh`] starts.
    pub tmux: Tmux,
    bin: &'static str,
    nofile: Option<u32>,
    api_listens: bool,
}

impl Host {
    /// A host of the `cordon` at `bin` with the harness's configuration.
    pub fn start(bin: &'static str) -> Host {
        Host::start_with(bin, "")
    }

    /// A host whose configuration adds `extra`: lines before any table header belong to
    /// [ssh]; other tables ([sessions], [api], ...) are merged with the harness's own keys,
    /// and a key `extra` sets wins. `[api] listen = ""` turns the API off.
    pub fn start_with(bin: &'static str, extra: &str) -> Host {
        Host::start_limited(bin, extra, None)
    }

    /// A host whose store is database `db` of the PostgreSQL server `pg` (over TLS, the
    /// certificate and its name checked), with `extra` as for [`Host::start_with`].
    pub fn start_on_postgres(
        bin: &'static str,
        pg: &crate::postgres::PgServer,
        db: &str,
        extra: &str,
    ) -> Host {
        Host::start_with(bin, &format!("{extra}\n{}", pg.store_toml(db)))
    }

    /// A host started under `prlimit --nofile=N` when `nofile` is given.
    pub fn start_limited(bin: &'static str, extra: &str, nofile: Option<u32>) -> Host {
        Host::try_start(bin, extra, nofile, |_| {})
            .unwrap_or_else(|said| panic!("serve never said it listens; it said:\n{said}"))
    }

    /// A host whose data directory is prepared before serve starts: `prepare` gets a
    /// host-shell command (`cordon ARGS` on the new host's data and configuration) and
    /// runs what it needs (a key restore from another host, say). Hosts sharing one store
    /// (`[store] url = "sqlite:..."`, each its `[cluster] name`) start this way.
    pub fn start_prepared(
        bin: &'static str,
        extra: &str,
        prepare: impl FnOnce(&dyn Fn(&[&str]) -> Command),
    ) -> Host {
        Host::try_start(bin, extra, None, prepare)
            .unwrap_or_else(|said| panic!("serve never said it listens; it said:\n{said}"))
    }

    /// A host, or what serve said before it exited without listening (a refusal to start).
    pub fn try_start(
        bin: &'static str,
        extra: &str,
        nofile: Option<u32>,
        prepare: impl FnOnce(&dyn Fn(&[&str]) -> Command),
    ) -> Result<Host, String> {
        let data = tempfile::tempdir().unwrap();
        let keys = tempfile::tempdir().unwrap();
        let (port, api) = (free_port(), free_port());
        let tables = config_tables(data.path(), port, api, extra);
        let api_listens = !tables
            .iter()
            .any(|(n, lines)| n == "api" && lines.iter().any(|l| l == "listen = \"\""));
        let text: String = tables
            .iter()
            .map(|(n, lines)| format!("[{n}]\n{}\n", lines.join("\n")))
            .collect();
        std::fs::write(data.path().join("cordon.toml"), text).unwrap();
        let root = data.path().to_path_buf();
        prepare(&|args: &[&str]| command(bin, &root, args));
        let child = serve(bin, data.path(), nofile)?;
        let tmux = Tmux::new(format!("cordon-test-{}-{port}", std::process::id()));
        let h = Host {
            data,
            keys,
            port,
            api,
            child,
            tmux,
            bin,
            nofile,
            api_listens,
        };
        h.wait_for_api();
        Ok(h)
    }

    /// Ends serve as a service manager would (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child, whose pid stays ours until we wait for it.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait for serve")
    }

    /// Starts serve again on the same data directory and configuration (ending it first if it
    /// still runs).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = serve(self.bin, self.data.path(), self.nofile)
            .unwrap_or_else(|said| panic!("serve never said it listens; it said:\n{said}"));
        self.wait_for_api();
    }

    /// serve says "listening on" for SSH; the API starts a moment later.
    fn wait_for_api(&self) {
        if self.api_listens {
            wait_port(self.api);
        }
    }

    /// The configuration file the host runs with (the host-shell commands read it too).
    pub fn config(&self) -> PathBuf {
        self.data.path().join("cordon.toml")
    }

    /// The master key file the host's configuration names (`[keys] master_key_file`).
    pub fn master_key(&self) -> PathBuf {
        self.data.path().join("master.key")
    }

    /// The host's current key of `purpose` (`audit`, `api-eddsa`, ...): its id and material,
    /// read as someone holding the master key could.
    pub fn data_key(&self, purpose: &str) -> (String, Vec<u8>) {
        crate::keyring::current(&self.state(), &self.master_key(), purpose).unwrap_or_else(|| {
            panic!(
                "no {purpose} key opens with {}",
                self.master_key().display()
            )
        })
    }

    /// The data directory (`--data-dir`).
    pub fn state(&self) -> PathBuf {
        self.data.path().join("state")
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
        let v: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
        let id = v
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == user)
            .unwrap_or_else(|| panic!("no {user} in {v}"))["id"]
            .as_u64()
            .unwrap();
        2_000_000_000 + id as u32
    }

    /// A host-shell command, `cordon ARGS`, on this host's data and configuration.
    pub fn command(&self, args: &[&str]) -> Command {
        command(self.bin, self.data.path(), args)
    }

    /// Runs the host-shell command `cordon ARGS` to its end.
    pub fn cordon(&self, args: &[&str]) -> Out {
        output(&mut self.command(args))
    }

    /// Runs `cordon ARGS` to its end with `input` on its standard input (a passphrase, a
    /// password, a secret's value).
    pub fn cordon_with_input(&self, args: &[&str], input: &str) -> Out {
        crate::process::output_with_input(&mut self.command(args), input)
    }

    /// Sets `user`'s password from the host's shell (`cordon user passwd`).
    pub fn passwd(&self, user: &str, password: &str) {
        let out = self.cordon_with_input(&["user", "passwd", user], &format!("{password}\n"));
        assert_eq!(out.code, 0, "{out:?}");
    }

    /// A user with a fresh Ed25519 key; returns the private key's path.
    pub fn user(&self, name: &str, role: &str) -> PathBuf {
        let key = self.keygen(name);
        self.add_user(name, role, &ssh::public_key(&key));
        key
    }

    /// A user who logs in with the key whose public half is `public`.
    pub fn add_user(&self, name: &str, role: &str, public: &str) {
        let out = self.cordon(&["user", "add", name, "--role", role, "--key", public]);
        assert_eq!(out.code, 0, "{out:?}");
    }

    /// A fresh key `name` among the host's keys (not a user's yet); returns its path.
    pub fn keygen(&self, name: &str) -> PathBuf {
        let key = self.keys.path().join(name);
        ssh::keygen(&key, name);
        key
    }

    /// `ssh` to the host as `user` with `key` (see [`ssh::argv`]).
    pub fn ssh_command(&self, key: &Path, user: &str) -> Vec<String> {
        ssh::argv(self.port, key, user)
    }

    /// Runs `ssh ... ARGS` to its end, without a terminal.
    pub fn ssh(&self, key: &Path, user: &str, args: &[&str]) -> Out {
        let argv = self.ssh_command(key, user);
        output(
            Command::new(&argv[0])
                .args(&argv[1..])
                .args(args)
                .stdin(Stdio::null()),
        )
    }

    /// Runs `ssh ... ARGS` to its end, without a terminal, with `input` on its standard
    /// input (written from a thread while the output is read, then closed).
    pub fn ssh_input(&self, key: &Path, user: &str, args: &[&str], input: Vec<u8>) -> Out {
        use std::io::Write;
        let argv = self.ssh_command(key, user);
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ssh");
        let mut stdin = child.stdin.take().expect("ssh's stdin");
        let writer = std::thread::spawn(move || {
            // The host may end the command (and the channel) before all of it is read.
            let _ = stdin.write_all(&input);
        });
        let o = child.wait_with_output().expect("ssh's output");
        let _ = writer.join();
        Out {
            code: o.status.code().unwrap_or(255),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs `new -- sh -c 'SCRIPT'` over `ssh -tt`, without a terminal of our own, and
    /// returns when the session ends.
    pub fn session(&self, key: &Path, user: &str, script: &str) -> Out {
        let mut argv = self.ssh_command(key, user);
        argv.insert(1, "-tt".into());
        output(
            Command::new(&argv[0])
                .args(&argv[1..])
                .args(["new", "--", "sh", "-c", &format!("'{script}'")])
                .stdin(Stdio::null()),
        )
    }

    /// `cordon rec ls --json`: every recording's entry (none if the answer is not a list).
    pub fn recordings(&self) -> Vec<serde_json::Value> {
        let out = self.cordon(&["rec", "ls", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// Starts `ssh -t ... ARGS` in a tmux window named `win`.
    pub fn tmux_ssh(&self, win: &str, key: &Path, user: &str, args: &str) {
        let argv = self.ssh_command(key, user);
        self.tmux
            .start(win, &format!("{} -t {args}", argv.join(" ")));
    }

    /// Keeps `win` showing its last screen after its command exits.
    pub fn keep(&self, win: &str) {
        self.tmux.keep(win);
    }

    /// Types `keys` into `win`.
    pub fn keys(&self, win: &str, keys: &[&str]) {
        self.tmux.keys(win, keys);
    }

    /// What `win` shows now.
    pub fn screen(&self, win: &str) -> String {
        self.tmux.screen(win)
    }

    /// Waits until `win` shows `text` (or fails with what it shows).
    pub fn wait_for(&self, win: &str, text: &str) -> String {
        self.tmux.wait_for(win, text)
    }

    /// Waits until `win` no longer shows `text`.
    pub fn wait_gone(&self, win: &str, text: &str) -> String {
        self.tmux.wait_gone(win, text)
    }

    /// The audit log as it is now (empty if there is none).
    pub fn audit_log(&self) -> String {
        std::fs::read_to_string(self.state().join("audit.log")).unwrap_or_default()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration's tables: the harness's keys (SSH and the API on `port` and `api`,
/// homes and workspaces under `data`) with `extra` merged in (see [`Host::start_with`]).
fn config_tables(data: &Path, port: u16, api: u16, extra: &str) -> Vec<(String, Vec<String>)> {
    let mut tables: Vec<(String, Vec<String>)> = vec![
        ("ssh".into(), vec![format!("listen = \"127.0.0.1:{port}\"")]),
        (
            "sessions".into(),
            vec![
                format!("workspace_root = \"{}\"", data.join("workspaces").display()),
                format!("home_root = \"{}\"", data.join("homes").display()),
            ],
        ),
        ("api".into(), vec![format!("listen = \"127.0.0.1:{api}\"")]),
        // Each host its own master key, beside (not in) its data directory: tests never
        // use, or rotate, the account's generated one.
        (
            "keys".into(),
            vec![format!(
                "master_key_file = \"{}\"",
                master_key(data).display()
            )],
        ),
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
            // A key the caller sets wins over the harness's.
            let key = t.split('=').next().unwrap_or("").trim().to_string();
            lines.retain(|l| l.split('=').next().unwrap_or("").trim() != key);
            lines.push(t.to_string());
        }
    }
    tables
}

/// A fresh master key file (64 hex characters, mode 0600) under `data`, made once.
fn master_key(data: &Path) -> PathBuf {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data.join("master.key");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut r| std::io::Read::read_exact(&mut r, &mut bytes))
            .expect("random bytes");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(f, "{hex}").expect("writing the master key");
    }
    path
}

/// `bin ARGS` on the data directory and configuration under `data`.
fn command(bin: &str, data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.arg("--data-dir")
        .arg(data.join("state"))
        .arg("--config")
        .arg(data.join("cordon.toml"))
        .env_remove("CORDON_CONFIG")
        .args(args);
    c
}

/// Starts `bin serve` on the data directory and configuration under `data` (under `prlimit
/// --nofile=N` when `nofile` is given) and waits until it says it listens for SSH; what it
/// said when it exits without listening.
fn serve(bin: &str, data: &Path, nofile: Option<u32>) -> Result<Child, String> {
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut child = cmd
        .arg("--data-dir")
        .arg(data.join("state"))
        .args(["serve", "--config"])
        .arg(data.join("cordon.toml"))
        .env_remove("CORDON_PROFILE_PATH")
        .env_remove("CORDON_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its errors pass through to the test's, and are kept for a refusal to start.
    let errors = BufReader::new(child.stderr.take().unwrap());
    let errors = std::thread::spawn(move || {
        let mut kept = String::new();
        for line in errors.lines().map_while(Result::ok) {
            eprintln!("{line}");
            if kept.len() < 64 << 10 {
                kept.push_str(&line);
                kept.push('\n');
            }
        }
        kept
    });
    // It may say something first (a permission it tightened, say).
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut said = String::new();
    let listening = lines.by_ref().map_while(Result::ok).any(|line| {
        said.push_str(&line);
        said.push('\n');
        line.contains("listening on")
    });
    if !listening {
        let _ = child.kill();
        let _ = child.wait();
        said.push_str(&errors.join().unwrap_or_default());
        return Err(said);
    }
    std::thread::spawn(move || for _ in lines {});
    Ok(child)
}
