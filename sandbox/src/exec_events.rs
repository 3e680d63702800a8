//! Exec events: what the exec watch ([`crate::notice`]) records about every program a
//! session starts, for the host to keep with the recording: one JSON line per `execve` or
//! `execveat` (time, pid and parent pid inside the sandbox, the path as passed and as
//! resolved, the arguments, the working directory, and the verdict) and one per
//! `exit_group` (the status the process asked for).
//!
//! Lines go to the events descriptor the host passes (`cordon sandbox --events-fd`), which
//! the egress proxy writes too: each line is kept under `PIPE_BUF` so that a write is never
//! interleaved with another writer's. Everything read from the process is bounded here.
//!
//! What a process can hide, and why it cannot start a program unrecorded: the watch reads
//! the path and the arguments from the caller's memory while the call waits, so another
//! thread of the caller may rewrite them between that read and the kernel's (the record
//! then shows what was there when read; the kernel still decides what runs, under
//! Landlock and the mounts). It cannot avoid the notification: the filter is in place
//! before the command's first instruction, is inherited by every process, and cannot be
//! removed; a process that dies by a signal never calls exit_group, so its record has no
//! exit status.

use serde::Serialize;

/// Lines stay under this (PIPE_BUF is 4096): a pipe write this small is atomic.
pub const MAX_LINE: usize = 3900;
/// Most arguments recorded per exec; past it the record says how many there were.
pub const MAX_ARGS: usize = 64;
/// Longest argument (and path) recorded, in bytes; longer ones are cut.
pub const MAX_ARG: usize = 512;

/// What the watch predicts of an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The policy lets it run.
    Allowed,
    /// The policy refuses it (Landlock or the mounts will).
    Refused,
    /// The kernel will refuse it for a reason of its own (missing, not executable).
    Failed,
}

/// One exec, as recorded.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Exec {
    /// Always `exec`.
    pub event: &'static str,
    /// When the call was made, in milliseconds since the epoch.
    pub time_ms: u64,
    /// The caller, in the sandbox's pid namespace.
    pub pid: u32,
    /// Its parent (0 when it could not be read).
    pub ppid: u32,
    /// The path as the program passed it.
    pub path: String,
    /// The file it names, resolved (none when it does not exist).
    pub resolved: Option<String>,
    /// The arguments, `argv[0]` first (bounded: [`MAX_ARGS`], [`MAX_ARG`] bytes each).
    pub argv: Vec<String>,
    /// Arguments there were in all (more than `argv` holds when cut).
    pub argc: usize,
    /// The caller's working directory.
    pub cwd: Option<String>,
    /// What the watch predicts.
    pub outcome: Outcome,
    /// Why it is refused or fails.
    pub why: Option<String>,
}

/// One process's exit_group.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Exit {
    /// Always `exit`.
    pub event: &'static str,
    /// When, in milliseconds since the epoch.
    pub time_ms: u64,
    /// The process, in the sandbox's pid namespace.
    pub pid: u32,
    /// The status it asked for (the low 8 bits are what its parent sees).
    pub status: i32,
}

/// `bytes` as text, cut to `max` bytes at a character boundary.
pub fn text(bytes: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() <= max {
        return s.into_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The JSON line for `e` (newline included), within [`MAX_LINE`]: arguments are dropped
/// from the end until it fits (`argc` still says how many there were).
pub fn exec_line(e: &Exec) -> Vec<u8> {
    let mut e = e.clone();
    e.path = text(e.path.as_bytes(), MAX_ARG);
    e.resolved = e.resolved.map(|r| text(r.as_bytes(), MAX_ARG));
    e.cwd = e.cwd.map(|c| text(c.as_bytes(), MAX_ARG));
    e.argv.truncate(MAX_ARGS);
    for a in &mut e.argv {
        *a = text(a.as_bytes(), MAX_ARG);
    }
    loop {
        let mut line = serde_json::to_vec(&e).unwrap_or_default();
        if line.len() < MAX_LINE || e.argv.is_empty() {
            line.truncate(MAX_LINE);
            line.push(b'\n');
            return line;
        }
        e.argv.pop();
    }
}

/// The JSON line for `e`.
pub fn exit_line(e: &Exit) -> Vec<u8> {
    let mut line = serde_json::to_vec(e).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The parent pid in `/proc/PID/stat` (the field after the state, after the last `)`: the
/// command name may hold one).
pub fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(argv: Vec<String>) -> Exec {
        Exec {
            event: "exec",
            time_ms: 1,
            pid: 7,
            ppid: 1,
            path: "/bin/echo".into(),
            resolved: Some("/usr/bin/echo".into()),
            argc: argv.len(),
            argv,
            cwd: Some("/work".into()),
            outcome: Outcome::Allowed,
            why: None,
        }
    }

    #[test]
    fn an_exec_line_is_json_with_its_arguments_and_fits_an_atomic_pipe_write() {
        let line = exec_line(&exec(vec!["echo".into(), "hi".into()]));
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["event"], "exec");
        assert_eq!(v["argv"], serde_json::json!(["echo", "hi"]));
        assert_eq!(v["outcome"], "allowed");
        assert!(line.ends_with(b"\n"));
        let many: Vec<String> = (0..1000)
            .map(|i| format!("{i}-{}", "x".repeat(900)))
            .collect();
        let line = exec_line(&exec(many));
        assert!(line.len() <= MAX_LINE + 1, "{}", line.len());
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["argc"], 1000, "how many there were");
        let kept = v["argv"].as_array().unwrap();
        assert!(!kept.is_empty() && kept.len() < MAX_ARGS);
        assert!(
            kept[0].as_str().unwrap().ends_with("..."),
            "cut at {MAX_ARG} bytes"
        );
    }

    #[test]
    fn text_is_cut_at_a_character_boundary() {
        assert_eq!(text("aé".as_bytes(), 2), "a...");
        assert_eq!(text(b"abc", 3), "abc");
        assert_eq!(text(b"\xff", 10), "\u{fffd}");
    }

    #[test]
    fn the_parent_pid_is_read_after_the_last_parenthesis() {
        assert_eq!(parent_of("12 (sh) S 1 12 12 0"), Some(1));
        assert_eq!(parent_of("13 (a) b) (c) R 12 13"), Some(12));
        assert_eq!(parent_of("garbage"), None);
    }
}
