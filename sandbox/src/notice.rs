//! The exec notice: one line in the session's terminal the first time a program is refused,
//! saying why and which profile key changes it.
//!
//! Without it a refused exec shows only the kernel's bare "Permission denied". The sandbox's
//! init holds the listener of a seccomp user-notification filter on execve and execveat
//! ([`crate::seccomp::exec_watch_program`]). For each exec it reads the path the caller
//! passed (from `/proc/PID/mem`, relative to `/proc/PID/cwd` or the directory descriptor),
//! predicts with the policy whether the mounts or Landlock will refuse it, prints the first
//! refusal on its standard error (the session's terminal), and always answers "continue":
//! it only observes, and the kernel still decides. A process can change the path between our
//! read and the kernel's (another thread rewriting the string, a file renamed): that can only
//! make the notice wrong or missing, never let anything run.
//!
//! What is pure ([`line`], [`escape`], [`judge`]) is tested without the kernel; [`Watch`] is
//! the loop around it.

use crate::binfmt;
use crate::policy::{ExecVerdict, NotExecutable, Policy};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The longest path (in characters) a notice shows; longer ones end in `...`.
const SHOWN_MAX: usize = 200;
/// The longest path read from a process's memory (PATH_MAX).
const PATH_MAX: usize = 4096;

/// `s` made safe for a terminal: control characters and the characters that reorder or hide
/// text (bidirectional controls, zero-width marks) escaped, and at most [`SHOWN_MAX`]
/// characters kept.
pub fn escape(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == SHOWN_MAX {
            out.push_str("...");
            break;
        }
        let hidden = matches!(c, '\u{61c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}');
        if (c as u32) < 0x80 && c.is_control() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else if c.is_control() || hidden {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The notice for `shown` (the path as the program passed it), refused because of `why`;
/// `interpreter` when it is the program's interpreter that may not run.
pub fn line(shown: &str, interpreter: Option<&Path>, why: &NotExecutable) -> String {
    match interpreter {
        None => format!("cordon: {} was not run: {why}", escape(shown)),
        Some(i) => format!(
            "cordon: {} was not run: its interpreter {} cannot run: {why}",
            escape(shown),
            escape(&i.to_string_lossy())
        ),
    }
}

/// The notice for an exec of `shown`, resolved to `canonical`, or none when the policy lets
/// it run (or the kernel will refuse it for a reason of its own: absent, a directory, no
/// execute bit). Reads the file's mode and `#!` line, as the kernel will.
pub fn judge(policy: &Policy, shown: &str, canonical: &Path) -> Option<String> {
    let meta = std::fs::metadata(canonical).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return None;
    }
    if let ExecVerdict::Refused(why) = policy.exec_verdict(canonical) {
        return Some(line(shown, None, &why));
    }
    let path_var = policy
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/bin:/bin");
    let mut resolver = binfmt::Resolver::default();
    for i in binfmt::interpreters(&mut resolver, canonical, path_var) {
        if let ExecVerdict::Refused(why) = policy.exec_verdict(&i.path) {
            return Some(line(shown, Some(&i.path), &why));
        }
    }
    None
}

/// The exec watch: the listener and the policy it predicts with.
pub struct Watch {
    /// The seccomp listener of the exec filter.
    pub listener: OwnedFd,
    /// The policy the sandbox enforces.
    pub policy: Policy,
    /// Where exec and exit events go ([`crate::exec_events`]), when the host asked for them.
    pub events: Option<std::fs::File>,
}

/// What the watch read about one exec.
struct Looked {
    /// The path as passed.
    shown: String,
    /// The file it names, resolved; none when it does not exist.
    canonical: Option<PathBuf>,
}

impl Watch {
    /// Serves the listener on a thread of its own, for the life of the process.
    pub fn start(self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("exec-watch".into())
            .stack_size(256 << 10)
            .spawn(move || self.serve())
            .map(drop)
    }

    /// Answers every exec (and exit) with "continue", forever: a call left unanswered would
    /// hang its caller. Prints the notice for the first refused exec; records each exec and
    /// exit when the host asked for events.
    fn serve(mut self) {
        let fd = self.listener.as_raw_fd();
        let mut noticed = false;
        loop {
            // SAFETY: a zeroed seccomp_notif is what RECV wants.
            let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            // SAFETY: RECV fills req, which outlives the call.
            if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } < 0 {
                let e = std::io::Error::last_os_error().raw_os_error();
                if !matches!(e, Some(libc::EINTR) | Some(libc::ENOENT)) {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                continue;
            }
            if req.data.nr == libc::SYS_exit_group as i32 {
                let status = req.data.args[0] as i32;
                self.emit(&crate::exec_events::exit_line(&crate::exec_events::Exit {
                    event: "exit",
                    time_ms: crate::exec_events::now_ms(),
                    pid: req.pid,
                    status,
                }));
            } else if !noticed || self.events.is_some() {
                let time_ms = crate::exec_events::now_ms();
                if let Some(looked) = self.look(fd, &req) {
                    let notice = looked
                        .canonical
                        .as_deref()
                        .and_then(|c| judge(&self.policy, &looked.shown, c));
                    if !noticed {
                        if let Some(text) = &notice {
                            noticed = true;
                            let end = if unsafe { libc::isatty(2) } == 1 {
                                "\r\n"
                            } else {
                                "\n"
                            };
                            let _ = std::io::stderr().write_all(format!("{text}{end}").as_bytes());
                        }
                    }
                    if self.events.is_some() {
                        let e = self.exec_event(fd, &req, time_ms, looked, notice);
                        self.emit(&crate::exec_events::exec_line(&e));
                    }
                }
            }
            // SAFETY: a zeroed response, filled below.
            let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
            resp.id = req.id;
            resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
            // SAFETY: SEND reads resp, which outlives the call. ENOENT: the caller is gone.
            unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
        }
    }

    /// Writes one event line; a host that stopped reading loses the events, not the session.
    fn emit(&mut self, line: &[u8]) {
        if let Some(f) = self.events.as_mut() {
            if f.write_all(line).is_err() {
                self.events = None;
            }
        }
    }

    /// The record of an exec the watch looked at: its arguments, directory and parent read
    /// from the process (bounded), and the verdict.
    fn exec_event(
        &self,
        fd: i32,
        req: &libc::seccomp_notif,
        time_ms: u64,
        looked: Looked,
        notice: Option<String>,
    ) -> crate::exec_events::Exec {
        use crate::exec_events::{text, Exec, Outcome, MAX_ARG, MAX_ARGS};
        let pid = req.pid;
        let argv_at = if req.data.nr == libc::SYS_execveat as i32 {
            req.data.args[2]
        } else {
            req.data.args[1]
        };
        let (argv, argc) = read_argv(pid, argv_at, MAX_ARGS, MAX_ARG);
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
            .ok()
            .map(|p| text(p.as_os_str().as_bytes(), MAX_ARG));
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| crate::exec_events::parent_of(&s))
            .unwrap_or(0);
        // Read while the caller waits: if the notification is no longer valid, the pid may
        // be another process's by now, and what was read is not this exec's.
        let mut id = req.id;
        // SAFETY: ID_VALID reads a u64 we own.
        let valid = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) } == 0;
        let (outcome, why) = match (&looked.canonical, notice) {
            _ if !valid => (Outcome::Failed, Some("the caller went away".to_string())),
            (None, _) => (Outcome::Failed, Some("no such file".into())),
            (Some(_), Some(n)) => (Outcome::Refused, Some(n)),
            (Some(c), None) => match std::fs::metadata(c) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
                    (Outcome::Allowed, None)
                }
                _ => (Outcome::Failed, Some("not an executable file".into())),
            },
        };
        Exec {
            event: "exec",
            time_ms,
            pid,
            ppid,
            path: looked.shown,
            resolved: looked
                .canonical
                .map(|c| text(c.as_os_str().as_bytes(), MAX_ARG)),
            argv,
            argc,
            cwd,
            outcome,
            why,
        }
    }

    /// What the exec names. Anything unreadable gives none.
    fn look(&self, fd: i32, req: &libc::seccomp_notif) -> Option<Looked> {
        let pid = req.pid;
        let args = req.data.args;
        let (dirfd, addr, flags) = if req.data.nr == libc::SYS_execveat as i32 {
            (args[0] as i32, args[1], args[4] as i32)
        } else {
            (libc::AT_FDCWD, args[0], 0)
        };
        let raw = read_string(pid, addr)?;
        // The pid could have been reused since the notification: check that it is still ours.
        let mut id = req.id;
        // SAFETY: ID_VALID reads a u64 we own.
        if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) } != 0 {
            return None;
        }
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&raw));
        let base = |dirfd: i32| {
            if dirfd == libc::AT_FDCWD {
                std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
            } else {
                std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}")).ok()
            }
        };
        let full = if raw.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
            base(dirfd)?
        } else if path.is_absolute() {
            path
        } else {
            base(dirfd)?.join(path)
        };
        Some(Looked {
            shown,
            canonical: std::fs::canonicalize(&full).ok(),
        })
    }
}

/// The argument strings of an exec whose `argv` array is at `addr` in process `pid`: at
/// most `max` of them, each cut at `max_len` bytes, and how many there were (counted up to
/// 4096).
fn read_argv(pid: u32, addr: u64, max: usize, max_len: usize) -> (Vec<String>, usize) {
    let Ok(mem) = std::fs::File::open(format!("/proc/{pid}/mem")) else {
        return (Vec::new(), 0);
    };
    let (mut out, mut count) = (Vec::new(), 0usize);
    let mut at = addr;
    while addr != 0 && count < 4096 {
        let mut p = [0u8; 8];
        if mem.read_exact_at(&mut p, at).is_err() {
            break;
        }
        let s = u64::from_ne_bytes(p);
        if s == 0 {
            break;
        }
        count += 1;
        if out.len() < max {
            let arg = read_string(pid, s).unwrap_or_default();
            out.push(crate::exec_events::text(&arg, max_len));
        }
        at += 8;
    }
    (out, count)
}

/// The NUL-terminated string at `addr` in process `pid`'s memory, read a piece at a time so
/// that a string ending just before an unmapped page is still read.
fn read_string(pid: u32, addr: u64) -> Option<Vec<u8>> {
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < PATH_MAX {
        // Up to the end of the page, so that a read never crosses into one that is unmapped.
        let room = (4096 - (at % 4096)) as usize;
        let mut buf = vec![0u8; room.min(PATH_MAX - out.len())];
        let n = mem.read_at(&mut buf, at).ok()?;
        if n == 0 {
            return None;
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Some(out);
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Place;

    #[test]
    fn a_notice_escapes_the_path_and_bounds_it() {
        let why = NotExecutable::Place {
            place: Place::Workspace,
            profile: "strict".into(),
        };
        assert_eq!(
            line("./a.out", None, &why),
            "cordon: ./a.out was not run: the workspace is not executable under profile \"strict\" ([exec] workspace = false)"
        );
        let evil = line("./\x1b]52;c;aGk=\x07x\u{202e}", None, &why);
        assert!(!evil.contains('\x1b') && !evil.contains('\x07') && !evil.contains('\u{202e}'));
        assert!(
            evil.contains("\\x1b]52") && evil.contains("\\u{202e}"),
            "{evil}"
        );
        let long = escape(&"a".repeat(5000));
        assert_eq!(long.len(), SHOWN_MAX + 3);
    }

    #[test]
    fn an_interpreter_that_may_not_run_is_named() {
        let why = NotExecutable::NotAllowed {
            profile: "strict".into(),
        };
        assert_eq!(
            line("./x.pl", Some(Path::new("/usr/bin/perl")), &why),
            "cordon: ./x.pl was not run: its interpreter /usr/bin/perl cannot run: it is not on the exec allowlist of profile \"strict\" ([exec] allow)"
        );
    }
}
