//! `cordon secret set|list|rm [--user NAME] KEY`: secrets for sessions, through the service.
//! The host's shell owns none: without `--user` these act on the global secrets. A value is
//! read from standard input (piped: all of it, one trailing newline dropped; a terminal: a
//! prompt that does not echo), never from the command line.

use std::io::{IsTerminal, Read, Write};

use zeroize::Zeroizing;

use super::{fail, tryc, Admin};
use crate::service::Scope;

fn scope(user: Option<&str>) -> Scope {
    match user {
        Some(u) => Scope::User(u.to_string()),
        None => Scope::Global,
    }
}

fn whose(scope: &Scope) -> String {
    match scope {
        Scope::Global => "global".into(),
        Scope::User(u) => format!("for {}", crate::text::printable(u)),
    }
}

/// The value, from a no-echo prompt on a terminal or all of a pipe. One trailing newline
/// (`\n` or `\r\n`, as `echo` and a typed line end) is not part of it.
fn read_value(name: &str) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let stdin = std::io::stdin();
    let mut value = Zeroizing::new(Vec::new());
    if stdin.is_terminal() {
        eprint!("value of {name} (not shown): ");
        let _ = std::io::stderr().flush();
        let _quiet = NoEcho::on(0);
        let mut line = Zeroizing::new(String::new());
        stdin.read_line(&mut line)?;
        eprintln!();
        value.extend_from_slice(line.as_bytes());
    } else {
        // One byte more than a secret may hold, so that a larger one is refused, not cut.
        let limit = sandbox::secrets::MAX_VALUE as u64 + 3;
        stdin.lock().take(limit).read_to_end(&mut value)?;
    }
    if value.ends_with(b"\r\n") {
        let n = value.len() - 2;
        value.truncate(n);
    } else if value.ends_with(b"\n") {
        let n = value.len() - 1;
        value.truncate(n);
    }
    Ok(value)
}

/// The terminal's echo, off until dropped.
pub(super) struct NoEcho {
    fd: i32,
    saved: Option<libc::termios>,
}

impl NoEcho {
    pub(super) fn on(fd: i32) -> NoEcho {
        // SAFETY: tcgetattr/tcsetattr on a terminal descriptor into a zeroed struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return NoEcho { fd, saved: None };
            }
            let saved = t;
            t.c_lflag &= !(libc::ECHO | libc::ECHONL);
            t.c_lflag |= libc::ICANON;
            libc::tcsetattr(fd, libc::TCSAFLUSH, &t);
            NoEcho {
                fd,
                saved: Some(saved),
            }
        }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(t) = &self.saved {
            // SAFETY: restores the modes read in `on`.
            unsafe { libc::tcsetattr(self.fd, libc::TCSAFLUSH, t) };
        }
    }
}

pub fn set(a: &Admin, user: Option<&str>, name: &str) -> i32 {
    let scope = scope(user);
    let value = match read_value(name) {
        Ok(v) => v,
        Err(e) => return fail(format!("reading the value from standard input: {e}")),
    };
    let info = tryc!(a.svc.set_secret(&a.me, &scope, name, &value));
    println!(
        "secret {} set ({}); sessions whose profile names it in [env] secrets receive it",
        info.name,
        whose(&scope)
    );
    0
}

pub fn list(a: &Admin, user: Option<&str>, json: bool) -> i32 {
    let scope = scope(user);
    let list = tryc!(a.svc.secrets(&a.me, &scope));
    if json {
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name, "scope": s.scope, "created": s.created, "updated": s.updated
                })
            })
            .collect();
        println!(
            "{}",
            crate::text::json(&serde_json::to_string_pretty(&rows).unwrap_or_default())
        );
        return 0;
    }
    if list.is_empty() {
        println!("no secrets ({})", whose(&scope));
        return 0;
    }
    println!("{:<32} {:<20} {:<26} updated", "name", "scope", "created");
    for s in list {
        println!(
            "{:<32} {:<20} {:<26} {}",
            s.name,
            crate::text::printable(&s.scope),
            s.created,
            s.updated
        );
    }
    0
}

pub fn remove(a: &Admin, user: Option<&str>, name: &str) -> i32 {
    let scope = scope(user);
    tryc!(a.svc.remove_secret(&a.me, &scope, name));
    println!("secret {name} removed ({})", whose(&scope));
    0
}
