//! Children of the host are started from one long-lived thread. The parent-death signal is
//! tied to the thread that forked, so a child started from a short-lived worker thread would
//! be killed when that thread exits; from here, it is killed only when the host dies.

use std::process::{Child, Command};
use std::sync::mpsc;

type Job = (Command, mpsc::Sender<std::io::Result<Child>>);

/// The spawning thread.
pub struct Spawner {
    tx: std::sync::Mutex<mpsc::Sender<Job>>,
}

impl Spawner {
    pub fn start() -> Spawner {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("cordon-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the spawner thread: {e}"));
        Spawner {
            tx: std::sync::Mutex::new(tx),
        }
    }

    /// Spawns `cmd` from the spawner thread, with SIGKILL as its parent-death signal.
    pub fn spawn(&self, mut cmd: Command) -> std::io::Result<Child> {
        use std::os::unix::process::CommandExt;
        let host = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The host may have died between fork and prctl.
                if libc::getppid() != host {
                    libc::_exit(125);
                }
                Ok(())
            });
        }
        let (reply, answer) = mpsc::channel();
        self.tx
            .lock()
            .map_err(|_| std::io::Error::other("spawner lock poisoned"))?
            .send((cmd, reply))
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
        answer
            .recv()
            .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
    }
}
