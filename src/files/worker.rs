//! The thread a user's file operations run on, acting as the user: when the host runs as
//! root, it takes the user's account as its file system identity (setfsuid and setfsgid,
//! with no supplementary groups), so the kernel checks every open, create, rename and
//! remove with the user's permissions and gives what it creates to the user.
//!
//! Why a thread of its own, and these calls: the file system ids and the supplementary
//! groups are per thread in the kernel, and changing the fsuid away from 0 drops the
//! thread's file capabilities (CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN, ...), so nothing
//! done on it can reach what the user could not. The rest of the host keeps root. The
//! thread is never given back to a pool: it ends with the file session. glibc's setgroups
//! changes every thread of the process, so the group list is cleared with the raw system
//! call, which changes only this one.

use std::io;
use std::sync::mpsc;

use super::Tree;
use crate::places::Account;

type Job = Box<dyn FnOnce(&mut Tree) + Send>;

/// A file session's thread: jobs run on it, one at a time, against its [`Tree`].
pub struct Worker {
    jobs: mpsc::Sender<Job>,
}

/// Why the worker could not start as the user.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("starting the file session's thread: {0}")]
    Spawn(#[source] io::Error),
    #[error("acting as uid {uid} gid {gid}: the kernel kept fsuid {fsuid} fsgid {fsgid}; is the host running as root with CAP_SETUID and CAP_SETGID?")]
    Switch {
        uid: u32,
        gid: u32,
        fsuid: u32,
        fsgid: u32,
    },
    #[error("dropping the supplementary groups: {0}")]
    Groups(#[source] io::Error),
    #[error("the file session's thread ended before it started")]
    Gone,
}

impl Worker {
    /// Starts the thread, acting as `account` (None: the host's own account, unchanged),
    /// and returns once it does. `tree` moves to it.
    pub fn start(tree: Tree, account: Option<Account>) -> Result<Worker, WorkerError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, started) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("cordon-files".into())
            .spawn(move || {
                let switched = match account {
                    Some(a) => act_as(a),
                    None => Ok(()),
                };
                let ok = switched.is_ok();
                let _ = ready.send(switched);
                if !ok {
                    return;
                }
                let mut tree = tree;
                while let Ok(job) = queue.recv() {
                    job(&mut tree);
                }
            })
            .map_err(WorkerError::Spawn)?;
        started.recv().map_err(|_| WorkerError::Gone)??;
        Ok(Worker { jobs })
    }

    /// Runs `f` on the thread and waits for its answer (None if the thread is gone).
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tree) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.jobs
            .send(Box::new(move |t| {
                let _ = tx.send(f(t));
            }))
            .ok()?;
        rx.recv().ok()
    }
}

/// This thread's file system identity becomes `a`'s, without supplementary groups, and is
/// read back.
fn act_as(a: Account) -> Result<(), WorkerError> {
    // SAFETY: setgroups(0, NULL) clears this thread's supplementary groups (the raw call
    // changes only the calling thread).
    let r = unsafe { libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>()) };
    if r != 0 {
        return Err(WorkerError::Groups(io::Error::last_os_error()));
    }
    // SAFETY: setfsgid and setfsuid take any id and return the previous one; -1 is never a
    // valid id, so asking for it changes nothing and reads the current one back.
    let (fsuid, fsgid) = unsafe {
        libc::setfsgid(a.gid);
        libc::setfsuid(a.uid);
        (
            libc::setfsuid(u32::MAX) as u32,
            libc::setfsgid(u32::MAX) as u32,
        )
    };
    if (fsuid, fsgid) != (a.uid, a.gid) {
        return Err(WorkerError::Switch {
            uid: a.uid,
            gid: a.gid,
            fsuid,
            fsgid,
        });
    }
    Ok(())
}
