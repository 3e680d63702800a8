//! A real, private PostgreSQL server for the tests: Debian's postgresql package (install.sh
//! installs it), `initdb` run as the `postgres` user in a temporary directory, listening on
//! 127.0.0.1 on a free port with TLS on (a CA and a server certificate made with the openssl
//! command, the certificate naming 127.0.0.1), password logins over TLS only.
//!
//! [`PgServer::shared`] is one server per test process (stopped when the process ends);
//! [`PgServer::start`] an own one (stopped when dropped), for tests that stop and start it.
//! Each test takes a fresh database ([`PgServer::create_database`]).
//!
//! This file uses only std: the cordon binary's unit tests include it too (`src/store/
//! testing.rs`), since they cannot depend on this crate.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The role the stores log in as.
pub const USER: &str = "cordon";

/// A running private PostgreSQL server.
pub struct PgServer {
    root: PathBuf,
    bin: PathBuf,
    pub port: u16,
    /// The CA that signed the server's certificate (`[store] ca_file`).
    pub ca_file: PathBuf,
    /// The password of [`USER`] (`[store] password_file`).
    pub password_file: PathBuf,
    databases: AtomicU32,
    owned: bool,
}

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where Debian's postgresql package put its programs (the newest version).
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): the store's tests on PostgreSQL need it; run ./install.sh --deps-only (it installs Debian's postgresql package)"
        )
    })
}

fn postgres_ids() -> (u32, u32) {
    let out = run(
        "id -u postgres",
        Command::new("id").args(["-u", "postgres"]),
    );
    let uid = out.trim().parse().expect("the postgres user's uid");
    let out = run(
        "id -g postgres",
        Command::new("id").args(["-g", "postgres"]),
    );
    let gid = out.trim().parse().expect("the postgres user's gid");
    (uid, gid)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn random_hex() -> String {
    let mut b = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl PgServer {
    /// The server of this test process, started on first use and stopped when it ends.
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            let s = PgServer::boot(false);
            s.watch(std::process::id());
            s
        })
    }

    /// A server of its own, stopped (and its files removed) when dropped.
    pub fn start() -> PgServer {
        let s = PgServer::boot(true);
        // Should the test process die without dropping it.
        s.watch(std::process::id());
        s
    }

    fn boot(owned: bool) -> PgServer {
        let bin = bin_dir();
        let (uid, gid) = postgres_ids();
        let root =
            std::env::temp_dir().join(format!("cordon-pg-{}-{}", std::process::id(), random_hex()));
        std::fs::create_dir_all(root.join("tls")).unwrap();
        std::fs::create_dir_all(root.join("sock")).unwrap();
        let tls = root.join("tls");
        // The CA and the server's certificate (naming 127.0.0.1 and localhost).
        let ca_key = tls.join("ca.key");
        let ca_file = tls.join("ca.crt");
        run(
            "openssl: the test CA",
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .arg("ec_paramgen_curve:prime256v1")
                .args(["-nodes", "-days", "30", "-subj", "/CN=cordon test CA"])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-keyout")
                .arg(&ca_key)
                .arg("-out")
                .arg(&ca_file),
        );
        let key = tls.join("server.key");
        let csr = tls.join("server.csr");
        let crt = tls.join("server.crt");
        run(
            "openssl: the server's key",
            Command::new("openssl")
                .args(["req", "-newkey", "ec", "-pkeyopt"])
                .arg("ec_paramgen_curve:prime256v1")
                .args(["-nodes", "-subj", "/CN=localhost"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
        );
        let ext = tls.join("ext.cnf");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(
            "openssl: the server's certificate",
            Command::new("openssl")
                .args(["x509", "-req", "-days", "30", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&ca_file)
                .arg("-CAkey")
                .arg(&ca_key)
                .arg("-CAcreateserial")
                .arg("-out")
                .arg(&crt)
                .arg("-extfile")
                .arg(&ext),
        );
        let password = random_hex();
        let password_file = tls.join("password");
        std::fs::write(&password_file, format!("{password}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        // The server's files are its user's; the key private to it.
        for p in [&root, &root.join("sock"), &key, &crt] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(&tls, std::fs::Permissions::from_mode(0o711)).unwrap();
        let data = root.join("data");
        run(
            "initdb (as the postgres user)",
            Command::new("runuser")
                .current_dir(&root)
                .args(["-u", "postgres", "--"])
                .arg(bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "--no-locale", "-E", "UTF8", "-N"])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"]),
        );
        let port = free_port();
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 300\n",
            root.join("sock").display(),
            crt.display(),
            key.display()
        );
        let mut pgconf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        pgconf.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), pgconf).unwrap();
        // The superuser by the private socket only; everyone else by TLS with a password.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all postgres trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        let s = PgServer {
            root,
            bin,
            port,
            ca_file,
            password_file,
            databases: AtomicU32::new(0),
            owned,
        };
        s.start_again();
        s.psql(&format!("CREATE ROLE {USER} LOGIN PASSWORD '{password}'"));
        s
    }

    /// Stops the server when process `pid` is gone (a static is never dropped).
    fn watch(&self, pid: u32) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; runuser -u postgres -- {} -D {} stop -m immediate >/dev/null 2>&1; rm -rf {}",
            self.bin.join("pg_ctl").display(),
            self.root.join("data").display(),
            self.root.display()
        );
        use std::os::unix::process::CommandExt;
        let _ = Command::new("sh")
            .args(["-c", &script])
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
    }

    fn pg_ctl(&self, args: &[&str]) {
        run(
            &format!("pg_ctl {}", args.join(" ")),
            Command::new("runuser")
                .current_dir(&self.root)
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.root.join("data"))
                .arg("-l")
                .arg(self.root.join("server.log"))
                .args(args),
        );
    }

    /// Starts the server (again, after [`PgServer::stop`]), waiting until it accepts.
    pub fn start_again(&self) {
        self.pg_ctl(&["-w", "-t", "120", "start"]);
    }

    /// Stops the server the way an operator would (`pg_ctl stop -m fast`): connections are
    /// ended.
    pub fn stop(&self) {
        self.pg_ctl(&["-w", "-t", "120", "stop", "-m", "fast"]);
    }

    /// Runs SQL as the superuser over the private socket.
    pub fn psql(&self, sql: &str) -> String {
        run(
            &format!("psql: {sql}"),
            Command::new("runuser")
                .current_dir(&self.root)
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("psql"))
                .arg("-h")
                .arg(self.root.join("sock"))
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ])
                .args(["-v", "ON_ERROR_STOP=1", "-tA", "-c", sql]),
        )
    }

    /// Runs SQL as the superuser in `database`; psql's unaligned output.
    pub fn query(&self, database: &str, sql: &str) -> String {
        run(
            &format!("psql: {sql}"),
            Command::new("runuser")
                .current_dir(&self.root)
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("psql"))
                .arg("-h")
                .arg(self.root.join("sock"))
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    database,
                ])
                .args(["-v", "ON_ERROR_STOP=1", "-tA", "-c", sql]),
        )
    }

    /// A new empty database owned by [`USER`]; its name.
    pub fn create_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}_{n}", std::process::id());
        self.psql(&format!("CREATE DATABASE {name} OWNER {USER}"));
        name
    }

    /// The url of `database` (TLS, certificate and name checked).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{USER}@127.0.0.1:{}/{database}?sslmode=verify-full",
            self.port
        )
    }

    /// The `[store]` section of a cordon configuration for `database`.
    pub fn store_toml(&self, database: &str) -> String {
        format!(
            "[store]\nurl = \"{}\"\npassword_file = \"{}\"\nca_file = \"{}\"\nconnect_timeout = \"5s\"\n",
            self.url(database),
            self.password_file.display(),
            self.ca_file.display()
        )
    }

    /// The server's directory (its log is `server.log` there).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.owned {
            let _ = Command::new("runuser")
                .current_dir("/")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.root.join("data"))
                .args(["stop", "-m", "immediate"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
