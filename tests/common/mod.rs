//! Helpers for driving `cordon sandbox` as a user would: a real binary, real profiles, a
//! real workspace, assertions on what comes out.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// The uid the identity tests run as: far above any account a machine has.
pub const UID: u32 = 2_000_000_123;

/// A workspace (under /tmp) and a place outside every grant (under /var/tmp).
pub struct Env {
    pub ws: tempfile::TempDir,
    pub outside: tempfile::TempDir,
    pub config: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            ws: tempfile::Builder::new().prefix("cordon-ws-").tempdir().expect("workspace"),
            outside: tempfile::Builder::new().prefix("cordon-outside-").tempdir_in("/var/tmp").expect("outside dir"),
            config: tempfile::tempdir().expect("config dir"),
        }
    }

    pub fn ws(&self) -> &Path {
        self.ws.path()
    }

    /// Writes a profile file next to the test's config and returns its path.
    pub fn profile(&self, name: &str, text: &str) -> String {
        let p = self.config.path().join(format!("{name}.toml"));
        std::fs::write(&p, text).expect("write profile");
        p.display().to_string()
    }

    /// A `cordon` command with a clean profile search path (no user profiles).
    pub fn cordon(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cordon"));
        c.env_remove("CORDON_PROFILE_PATH").env("XDG_CONFIG_HOME", self.config.path()).stdin(Stdio::null());
        c
    }

    pub fn run(&self, profile: &str, argv: &[&str]) -> Out {
        let mut c = self.cordon();
        c.args(["sandbox", "--profile", profile, "--workspace"]).arg(self.ws()).arg("--").args(argv);
        output(c)
    }

    /// `cordon sandbox ARGS -- ARGV`, for runs that need more options than a profile.
    pub fn sandbox(&self, args: &[&str], argv: &[&str]) -> Out {
        let mut c = self.cordon();
        c.arg("sandbox").args(args).arg("--").args(argv);
        output(c)
    }

    /// A home directory, and the workspace, owned by `uid`: what a host gives one of its
    /// users.
    pub fn home_for(&self, uid: u32) -> tempfile::TempDir {
        let home = tempfile::Builder::new().prefix("cordon-home-").tempdir().expect("home");
        for dir in [home.path(), self.ws()] {
            std::os::unix::fs::chown(dir, Some(uid), Some(uid)).expect("chown to the identity");
        }
        home
    }

    pub fn sh(&self, profile: &str, script: &str) -> Out {
        self.run(profile, &["sh", "-c", script])
    }

    /// Python inside the sandbox, with `sc(nr, *args)` for raw system calls (returns "ok" or
    /// the errno name) and `err(e)` for an OSError's errno name.
    pub fn py(&self, profile: &str, code: &str) -> Out {
        let full = format!("{PY_PRELUDE}\n{code}");
        self.run(profile, &["python3", "-c", &full])
    }
}

pub const PY_PRELUDE: &str = r#"
import ctypes, errno, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def sc(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
def err(e):
    return errno.errorcode.get(e.errno, str(e.errno))
"#;

pub fn output(mut c: Command) -> Out {
    let o = c.output().expect("run cordon");
    Out {
        code: o.status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&o.status).unwrap_or(0)),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A file outside every grant, with known content.
pub fn secret(env: &Env) -> PathBuf {
    let p = env.outside.path().join("secret.txt");
    std::fs::write(&p, "TOP-SECRET-CONTENT\n").expect("write secret");
    p
}
