//! `cordon sandbox` driven as a user drives it: the real binary, real profiles, a real
//! workspace, and a place outside every grant to try to reach.

use crate::process::{output, Out};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The uid the identity tests run as: far above any account a machine has.
pub const UID: u32 = 2_000_000_123;

/// A workspace (under /tmp), a place outside every grant (under /var/tmp), and a
/// configuration directory of its own (no user's profiles).
pub struct Env {
    pub ws: tempfile::TempDir,
    pub outside: tempfile::TempDir,
    pub config: tempfile::TempDir,
    bin: &'static str,
}

impl Env {
    /// Fresh places for runs of the `cordon` at `bin`.
    pub fn new(bin: &'static str) -> Env {
        Env {
            ws: tempfile::Builder::new()
                .prefix("cordon-ws-")
                .tempdir()
                .expect("workspace"),
            outside: tempfile::Builder::new()
                .prefix("cordon-outside-")
                .tempdir_in("/var/tmp")
                .expect("outside dir"),
            config: tempfile::tempdir().expect("config dir"),
            bin,
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
        let mut c = Command::new(self.bin);
        c.env_remove("CORDON_PROFILE_PATH")
            .env("XDG_CONFIG_HOME", self.config.path())
            .stdin(Stdio::null());
        c
    }

    /// `cordon sandbox --profile PROFILE --workspace WS -- ARGV`.
    pub fn run(&self, profile: &str, argv: &[&str]) -> Out {
        let mut c = self.cordon();
        c.args(["sandbox", "--profile", profile, "--workspace"])
            .arg(self.ws())
            .arg("--")
            .args(argv);
        output(&mut c)
    }

    /// `cordon sandbox ARGS -- ARGV`, for runs that need more options than a profile.
    pub fn sandbox(&self, args: &[&str], argv: &[&str]) -> Out {
        let mut c = self.cordon();
        c.arg("sandbox").args(args).arg("--").args(argv);
        output(&mut c)
    }

    /// A home directory, and the workspace, owned by `uid`: what a host gives one of its
    /// users.
    pub fn home_for(&self, uid: u32) -> tempfile::TempDir {
        let home = tempfile::Builder::new()
            .prefix("cordon-home-")
            .tempdir()
            .expect("home");
        for dir in [home.path(), self.ws()] {
            std::os::unix::fs::chown(dir, Some(uid), Some(uid)).expect("chown to the identity");
        }
        home
    }

    /// `sh -c SCRIPT` inside the sandbox.
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

/// What [`Env::py`] puts before the code it runs.
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

/// A file outside every grant, with known content.
pub fn secret(env: &Env) -> PathBuf {
    let p = env.outside.path().join("secret.txt");
    std::fs::write(&p, "TOP-SECRET-CONTENT\n").expect("write secret");
    p
}
