//! A real S3-compatible server for the tests: moto's server (PyPI `moto[server]`, which
//! install.sh puts in `$HOME/.cache/cordon/venv`), one per test process on a free loopback
//! port, and per test a bucket with Object Lock enabled, reached through a proxy of the
//! test's own. The proxy is what a test turns off (the bucket unreachable: connections are
//! refused, moto and its objects stay) and what counts the bytes the bucket sent. Objects
//! are inspected and altered with boto3 from the same virtualenv.
//!
//! moto runs with authentication on, as S3 does: with `INITIAL_NO_AUTH_ACTION_COUNT=3` its
//! first three requests go unchecked, and are spent creating an IAM user with a policy
//! allowing `s3:*` and an access key; every later request (cordon's, and boto3's that set
//! up and inspect the buckets) must carry a SigV4 signature moto recomputes with that key's
//! secret (`moto/iam/access_control.py`, botocore's `SigV4Auth`), or is refused with
//! `SignatureDoesNotMatch`. So the tests prove cordon's signing, not only its requests.

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

/// moto's server of this test process and the access key it checks requests against.
struct Moto {
    port: u16,
    key_id: String,
    secret: String,
}

/// The requests moto lets through unauthenticated: the three IAM calls of `moto()`.
const UNCHECKED: usize = 3;

/// moto's server of this test process (started on first use), with authentication on.
fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
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
                .env("INITIAL_NO_AUTH_ACTION_COUNT", UNCHECKED.to_string())
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
        // Exactly UNCHECKED requests, unsigned for all moto cares: the user, its policy,
        // its key.
        let script = format!(
            "import boto3, json\n\
             iam = boto3.client('iam', endpoint_url='http://127.0.0.1:{port}', aws_access_key_id='bootstrap', aws_secret_access_key='bootstrap', region_name='us-east-1')\n\
             iam.create_user(UserName='cordon')\n\
             iam.put_user_policy(UserName='cordon', PolicyName='s3', PolicyDocument=json.dumps({{'Version': '2012-10-17', 'Statement': [{{'Effect': 'Allow', 'Action': 's3:*', 'Resource': '*'}}]}}))\n\
             k = iam.create_access_key(UserName='cordon')['AccessKey']\n\
             print(json.dumps([k['AccessKeyId'], k['SecretAccessKey']]))\n"
        );
        let out = python(&script);
        let [key_id, secret]: [String; 2] =
            serde_json::from_str(out.trim()).expect("moto's access key as JSON");
        Moto {
            port,
            key_id,
            secret,
        }
    })
}

/// Runs a Python script of the venv; what it printed (a failure panics with its stderr).
fn python(script: &str) -> String {
    let out = Command::new(venv().join("python3"))
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3 of the venv runs");
    assert!(
        out.status.success(),
        "boto3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
        std::fs::write(dir.path().join("secret"), format!("{}\n", moto.secret)).unwrap();
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
                let Ok(server) = TcpStream::connect(("127.0.0.1", moto.port)) else {
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
            moto: moto.port,
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
            "[objects]\nendpoint = \"http://127.0.0.1:{}\"\nbucket = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\n{more}\n",
            self.port,
            self.bucket,
            self.key_id(),
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

    /// The access key id moto checks requests against (not a secret: it names the key).
    pub fn key_id(&self) -> &'static str {
        &moto().key_id
    }

    /// The secret of that key, as cordon's secret key file holds it.
    pub fn secret(&self) -> &'static str {
        &moto().secret
    }

    /// Runs Python with boto3's client `s3` (straight to moto, signing with the same key as
    /// cordon) and the bucket's name `B`; returns what it printed.
    pub fn py(&self, code: &str) -> String {
        python(&format!(
            "import boto3, json, sys\ns3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{}', aws_access_key_id='{}', aws_secret_access_key='{}', region_name='us-east-1')\nB = '{}'\n{code}\n",
            self.moto,
            self.key_id(),
            self.secret(),
            self.bucket
        ))
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
