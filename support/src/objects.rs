//! A real S3-compatible server for the tests: moto's server (PyPI `moto[server]`, which
//! install.sh puts in `$HOME/.cache/cordon/venv`), one per test process on a free loopback
//! port, and per test a bucket with Object Lock enabled, reached through a proxy of the
//! test's own. The proxy is what a test turns off (the bucket unreachable: connections are
//! refused, moto and its objects stay) and what counts the bytes the bucket sent. Objects
//! are inspected and altered with boto3 from the same virtualenv.

use crate::net::{free_port, wait_port};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

fn venv() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
        .join(".cache/cordon/venv/bin")
}

/// moto's server of this test process: its port (started on first use).
fn moto() -> u16 {
    static MOTO: OnceLock<u16> = OnceLock::new();
    *MOTO.get_or_init(|| {
        let bin = venv().join("moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run ./install.sh (it installs moto[server], the S3-compatible server of these tests)",
            bin.display()
        );
        let port = free_port();
        // Spawned by a thread that lives as long as the process, with the parent-death
        // signal: moto ends with the test process (the signal follows the spawning thread).
        std::thread::spawn(move || {
            use std::os::unix::process::CommandExt;
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // SAFETY: prctl in the child before exec, no allocation.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = cmd.spawn().expect("moto_server starts");
            let _ = child.wait();
        });
        wait_port(port);
        port
    })
}

/// A bucket of this test's own, behind a proxy of its own.
pub struct S3 {
    pub bucket: String,
    /// The proxy's port: what cordon is configured with.
    pub port: u16,
    moto: u16,
    open: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    /// Holds the secret key file.
    pub dir: tempfile::TempDir,
}

impl S3 {
    /// A fresh bucket with Object Lock enabled.
    pub fn start() -> S3 {
        let moto = moto();
        let bucket = format!(
            "cordon-{}-{}",
            std::process::id(),
            free_port() as u32 * 1000 + (std::time::UNIX_EPOCH.elapsed().unwrap().subsec_millis())
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "testing-secret\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("secret"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let served = Arc::new(AtomicU64::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (o, s) = (open.clone(), served.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                if !o.load(Ordering::SeqCst) {
                    // Away: the connection is dropped unanswered.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", moto)) else {
                    continue;
                };
                let s = s.clone();
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || pump(c2, s2, None));
                std::thread::spawn(move || pump(server, client, Some(s)));
            }
        });
        let s3 = S3 {
            bucket,
            port,
            moto,
            open,
            served,
            dir,
        };
        s3.py("s3.create_bucket(Bucket=B, ObjectLockEnabledForBucket=True)");
        s3
    }

    /// The `[objects]` table of a host that uploads here; `more` adds keys.
    pub fn config(&self, more: &str) -> String {
        format!(
            "[objects]\nendpoint = \"http://127.0.0.1:{}\"\nbucket = \"{}\"\naccess_key_id = \"testing\"\nsecret_access_key_file = \"{}\"\n{more}\n",
            self.port,
            self.bucket,
            self.dir.path().join("secret").display()
        )
    }

    /// The bucket away (true) or back (false): connections through the proxy are dropped.
    pub fn set_away(&self, away: bool) {
        self.open.store(!away, Ordering::SeqCst);
    }

    /// Bytes the bucket has sent through the proxy so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }

    /// Runs Python with boto3's client `s3` (straight to moto) and the bucket's name `B`;
    /// returns what it printed.
    pub fn py(&self, code: &str) -> String {
        let script = format!(
            "import boto3, json, sys\ns3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{}', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\nB = '{}'\n{code}\n",
            self.moto, self.bucket
        );
        let out = Command::new(venv().join("python3"))
            .arg("-c")
            .arg(&script)
            .output()
            .expect("python3 of the venv runs");
        assert!(
            out.status.success(),
            "boto3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The objects whose names begin with `prefix`: (name, size).
    pub fn list(&self, prefix: &str) -> Vec<(String, u64)> {
        let out = self.py(&format!(
            "r = s3.list_objects_v2(Bucket=B, Prefix='{prefix}')\nprint(json.dumps([[o['Key'], o['Size']] for o in r.get('Contents', [])]))"
        ));
        serde_json::from_str(out.trim()).unwrap()
    }

    /// An object's Object Lock mode, retain-until date (Unix seconds, 0 if none) and legal
    /// hold status.
    pub fn lock_of(&self, key: &str) -> (String, f64, String) {
        let out = self.py(&format!(
            "h = s3.head_object(Bucket=B, Key='{key}')\nprint(json.dumps([h.get('ObjectLockMode', ''), h['ObjectLockRetainUntilDate'].timestamp() if 'ObjectLockRetainUntilDate' in h else 0, h.get('ObjectLockLegalHoldStatus', '')]))"
        ));
        serde_json::from_str(out.trim()).unwrap()
    }

    /// Puts a new version of `key` with one byte changed at `at`.
    pub fn tamper(&self, key: &str, at: usize) {
        self.py(&format!(
            "b = bytearray(s3.get_object(Bucket=B, Key='{key}')['Body'].read())\nb[{at}] ^= 1\ns3.put_object(Bucket=B, Key='{key}', Body=bytes(b), ChecksumAlgorithm='SHA256')"
        ));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, count: Option<Arc<AtomicU64>>) {
    let mut buf = [0u8; 16 << 10];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(c) = &count {
                    c.fetch_add(n as u64, Ordering::SeqCst);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
