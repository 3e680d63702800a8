//! The proxy's own process: forked by the supervisor before it enters the session's pid
//! namespace, because after `unshare(CLONE_NEWPID)` a process can no longer start threads
//! (clone with CLONE_THREAD fails with EINVAL) and the proxy needs two per connection.
//! It stays in the host's network namespace, receives the listeners init made in the
//! session's, serves them, and reports to the supervisor over a pipe:
//!
//! - `R`: serving; `N`: init ended without sending listeners (its refusal says why);
//!   `E` and a message: the proxy could not start (the supervisor then ends the session).
//!
//! It ends when the supervisor closes the stop pipe (the command has ended): it stops
//! accepting, lets open connections finish for a moment so that their events are
//! written, and exits. It dies with the supervisor (parent-death signal).

use super::handoff;
use super::proxy::{Proxy, Settings};
use crate::sys;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// How long open connections may run on once the session has ended.
const DRAIN: Duration = Duration::from_secs(2);
/// Longest report the proxy process sends.
const MAX_REPORT: u64 = 1024;

/// The supervisor's handle on the proxy process.
pub struct ProxyProcess {
    pid: libc::pid_t,
    /// init's end of the handoff pair, until init is forked.
    init_end: Option<OwnedFd>,
    report: Option<std::fs::File>,
    stop: Option<OwnedFd>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: a two-int array.
    sys::check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 returned them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl ProxyProcess {
    /// Forks the proxy process. Call while single-threaded, before entering the pid
    /// namespace, with the forwarded signals blocked (the proxy ignores them; the
    /// supervisor ends it).
    pub fn spawn(settings: Settings) -> io::Result<ProxyProcess> {
        let (ours, theirs) = handoff::pair()?;
        let (report_r, report_w) = pipe()?;
        let (stop_r, stop_w) = pipe()?;
        // SAFETY: getpid cannot fail.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the caller is single-threaded.
        let pid = sys::check(unsafe { libc::fork() })?;
        if pid == 0 {
            drop((theirs, report_r, stop_w));
            let code = serve(parent, ours, report_w, stop_r, settings);
            // SAFETY: leaving without the supervisor's destructors.
            unsafe { libc::_exit(code) }
        }
        drop((ours, report_w, stop_r, settings));
        Ok(ProxyProcess {
            pid,
            init_end: Some(theirs),
            report: Some(std::fs::File::from(report_r)),
            stop: Some(stop_w),
        })
    }

    /// The descriptor init sends the listeners over.
    pub fn init_end(&self) -> Option<RawFd> {
        self.init_end.as_ref().map(|f| f.as_raw_fd())
    }

    /// After init is forked: whether the proxy serves (`true`), or init ended before
    /// handing the listeners over (`false`); an error says why the proxy could not start.
    pub fn wait_ready(&mut self) -> Result<bool, String> {
        // Our copy closed, init's is the only one: the proxy sees end-of-file if init ends.
        self.init_end = None;
        let mut text = Vec::new();
        if let Some(r) = self.report.take() {
            let _ = r.take(MAX_REPORT).read_to_end(&mut text);
        }
        match text.split_first() {
            Some((b'R', _)) => Ok(true),
            Some((b'N', _)) => Ok(false),
            Some((b'E', msg)) => Err(String::from_utf8_lossy(msg).into_owned()),
            _ => Err("the proxy process ended without a word".into()),
        }
    }
}

impl Drop for ProxyProcess {
    /// Tells the proxy to stop, waits for it a bounded time, then kills it.
    fn drop(&mut self) {
        self.init_end = None;
        self.stop = None;
        let deadline = Instant::now() + DRAIN + Duration::from_secs(1);
        loop {
            let mut st = 0;
            // SAFETY: reaping our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut st, libc::WNOHANG) };
            if r == self.pid
                || (r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD))
            {
                return;
            }
            if Instant::now() >= deadline {
                // SAFETY: as above.
                unsafe {
                    libc::kill(self.pid, libc::SIGKILL);
                    libc::waitpid(self.pid, &mut st, 0);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The proxy process's life. Returns its exit status.
fn serve(
    parent: libc::pid_t,
    handoff_end: OwnedFd,
    report: OwnedFd,
    stop: OwnedFd,
    settings: Settings,
) -> i32 {
    let mut report = std::fs::File::from(report);
    let say = |r: &mut std::fs::File, what: &[u8]| {
        let _ = r.write_all(what);
    };
    // Dies with the supervisor; checked once more in case it already died.
    if sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong).is_err()
        // SAFETY: getppid cannot fail.
        || unsafe { libc::getppid() } != parent
    {
        return 1;
    }
    let mut keep = vec![
        handoff_end.as_raw_fd(),
        report.as_raw_fd(),
        stop.as_raw_fd(),
    ];
    keep.extend(settings.events.as_ref().map(|f| f.as_raw_fd()));
    keep.extend(settings.ask.as_ref().map(|a| a.answers.as_raw_fd()));
    if let Err(e) = sys::close_fds_except(&keep) {
        say(
            &mut report,
            format!("Eclosing inherited descriptors: {e}").as_bytes(),
        );
        return 1;
    }
    let listeners = match handoff::receive(&handoff_end) {
        Ok(Some(l)) => l,
        Ok(None) => {
            say(&mut report, b"N");
            return 0;
        }
        Err(e) => {
            say(
                &mut report,
                format!("Ereceiving the proxy's listeners from the sandbox: {e}").as_bytes(),
            );
            return 1;
        }
    };
    drop(handoff_end);
    let proxy = match Proxy::start(settings, listeners) {
        Ok(p) => p,
        Err(e) => {
            say(&mut report, format!("Estarting the proxy: {e}").as_bytes());
            return 1;
        }
    };
    say(&mut report, b"R");
    drop(report);
    // Blocks until the supervisor closes its end (or dies).
    let mut stop = std::fs::File::from(stop);
    let _ = stop.read(&mut [0u8; 1]);
    proxy.stop_and_drain(DRAIN);
    0
}
