//! Running a command to its end and keeping what it printed.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Out {
    /// The exit status; for a process a signal ended, 128 + the signal's number, as a shell
    /// says it.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Both streams, stdout first.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `c` to its end and keeps its output (read as UTF-8, lossily).
pub fn output(c: &mut Command) -> Out {
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    Out {
        code: o
            .status
            .code()
            .unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0)),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs `c` to its end with `input` on its standard input (a passphrase, a password, a
/// secret's value) and keeps its output.
pub fn output_with_input(c: &mut Command, input: &str) -> Out {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    // It may stop reading before the end (a refusal): what it printed says why.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let o = child.wait_with_output().expect("waiting for it");
    Out {
        code: o
            .status
            .code()
            .unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0)),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}
