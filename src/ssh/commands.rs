//! The commands a client can give as `ssh HOST COMMAND`: whoami, ls, new, attach, observe,
//! kill, run.

use super::Conn;
use crate::audit::AuditEvent;
use crate::auth::{allowed, Action};
use crate::service::NewSession;
use russh::server::Session as SshSession;
use russh::ChannelId;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub const USAGE: &str =
    "whoami, ls [--json], new [--profile P] [--workspace W] [--name N] [-- CMD...], attach ID, observe ID, mark ID [LABEL], kill ID, run [--profile P] [--workspace W] -- CMD..., token";

/// Splits a command line into words: whitespace separates, '...' and "..." group, \ escapes.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => cur.extend(chars.next()),
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                cur.extend(chars.next());
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `--profile P`, `--name N`, `--json`, then `-- CMD...`.
#[derive(Default, Debug, PartialEq)]
struct Args {
    profile: Option<String>,
    workspace: Option<String>,
    name: String,
    json: bool,
    rest: Vec<String>,
}

fn parse_args(words: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut i = 0;
    while i < words.len() {
        match words[i].as_str() {
            "--profile" | "-p" => {
                a.profile = Some(words.get(i + 1).ok_or("--profile needs a name")?.clone());
                i += 1;
            }
            "--workspace" | "-w" => {
                a.workspace = Some(words.get(i + 1).ok_or("--workspace needs a name")?.clone());
                i += 1;
            }
            "--name" => {
                a.name = words.get(i + 1).ok_or("--name needs a value")?.clone();
                i += 1;
            }
            "--json" => a.json = true,
            "--" => {
                a.rest = words[i + 1..].to_vec();
                break;
            }
            w if w.starts_with('-') => return Err(format!("unknown option {w}")),
            _ => {
                a.rest = words[i..].to_vec();
                break;
            }
        }
        i += 1;
    }
    Ok(a)
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

pub async fn dispatch(conn: &mut Conn, channel: ChannelId, line: &str, session: &mut SshSession) -> Result<(), russh::Error> {
    let words = match split_words(line) {
        Ok(w) => w,
        Err(e) => return conn.finish(channel, session, "", &format!("cordon: {e}\n"), 2),
    };
    let Some(user) = conn.user.clone() else { return conn.refuse(channel, session, line, "not logged in") };
    let Some(principal) = conn.principal() else { return conn.refuse(channel, session, line, "not logged in") };
    let (cmd, rest) = match words.split_first() {
        Some((c, r)) => (c.as_str(), r.to_vec()),
        None => return conn.finish(channel, session, "", &format!("cordon: commands: {USAGE}\n"), 2),
    };
    let args = match parse_args(&rest) {
        Ok(a) => a,
        Err(e) => return conn.finish(channel, session, "", &format!("cordon: {cmd}: {e}\n"), 2),
    };
    let id_arg = || args.rest.first().and_then(|s| s.parse::<u64>().ok());
    match cmd {
        "whoami" => conn.finish(channel, session, &format!("{} ({})\n", user.name, user.role.name()), "", 0),
        "ls" => {
            let visible = match conn.shared.service.sessions(&principal) {
                Ok(v) => v,
                Err(e) => return conn.refused(channel, session, &e),
            };
            let out = if args.json {
                let rows: Vec<serde_json::Value> = visible
                    .iter()
                    .map(|s| serde_json::json!({"id": s.id, "name": s.name(), "owner": s.owner, "profile": s.profile, "command": s.command, "created": s.created, "age_seconds": s.age().as_secs(), "idle_seconds": s.idle().as_secs(), "viewers": s.viewer_count()}))
                    .collect();
                format!("{}\n", serde_json::Value::Array(rows))
            } else if visible.is_empty() {
                "no sessions\n".to_string()
            } else {
                let mut o =
                    format!("{:<5} {:<20} {:<12} {:<10} {:<6} {:<6} {}\n", "ID", "NAME", "OWNER", "PROFILE", "AGE", "IDLE", "VIEWERS");
                for s in visible {
                    o += &format!(
                        "{:<5} {:<20} {:<12} {:<10} {:<6} {:<6} {}\n",
                        s.id,
                        s.name(),
                        s.owner,
                        s.profile,
                        fmt_duration(s.age()),
                        fmt_duration(s.idle()),
                        s.viewer_count()
                    );
                }
                o
            };
            conn.finish(channel, session, &out, "", 0)
        }
        "new" => {
            let req = NewSession {
                profile: args.profile.clone(),
                workspace: args.workspace.clone(),
                name: args.name.clone(),
                command: args.rest.clone(),
                ..Default::default()
            };
            conn.new_session(channel, session, req)
        }
        "attach" | "observe" => {
            let Some(id) = id_arg() else {
                return conn.finish(channel, session, "", &format!("cordon: {cmd} needs a session id (see `ls`)\n"), 2);
            };
            conn.attach(channel, session, id, cmd == "attach")
        }
        "mark" => {
            let Some(id) = id_arg() else {
                return conn.finish(channel, session, "", "cordon: mark needs a session id: mark ID [LABEL...]\n", 2);
            };
            let label = args.rest.get(1..).map(|w| w.join(" ")).unwrap_or_default();
            match conn.shared.service.mark(&principal, id, &label) {
                Ok(label) => conn.finish(channel, session, &format!("marked session {id}: {label}\n"), "", 0),
                Err(e) => conn.refused(channel, session, &e),
            }
        }
        "token" => match conn.shared.service.issue_token(&principal, "ssh") {
            Ok(pair) => conn.finish(channel, session, &format!("{}\n", serde_json::to_string_pretty(&pair).unwrap_or_default()), "", 0),
            Err(e) => conn.refused(channel, session, &e),
        },
        "kill" => {
            let Some(id) = id_arg() else { return conn.finish(channel, session, "", "cordon: kill needs a session id (see `ls`)\n", 2) };
            match conn.shared.service.end_session(&principal, id) {
                Ok(()) => conn.finish(channel, session, &format!("killed session {id}\n"), "", 0),
                Err(e) => conn.refused(channel, session, &e),
            }
        }
        "run" => {
            if !allowed(user.role, Action::RunCommand) {
                return conn.refuse(channel, session, "run", &format!("a {} may not run commands", user.role.name()));
            }
            if args.rest.is_empty() {
                return conn.finish(channel, session, "", "cordon: run needs a command: run [--profile P] -- CMD...\n", 2);
            }
            let profile = args.profile.clone().unwrap_or_else(|| conn.shared.config.default_profile.clone());
            if let Err(e) = conn.shared.config.profile_allowed(user.role, &profile) {
                return conn.refuse(channel, session, "run", &e);
            }
            let workspace = match conn.shared.config.workspace(&user.name, args.workspace.as_deref()) {
                Ok(w) => w,
                Err(e) => return conn.refuse(channel, session, "run", &e),
            };
            run(conn, channel, session, &user.name, profile, workspace, args.rest.clone());
            Ok(())
        }
        other => conn.finish(channel, session, "", &format!("cordon: unknown command \"{other}\"; commands: {USAGE}\n"), 2),
    }
}

/// `run`: the command confined, without a terminal; stdout, stderr and the exit status go
/// back through the channel, within the runner's time limit and output cap.
#[allow(clippy::too_many_arguments)]
fn run(
    conn: &Conn,
    channel: ChannelId,
    session: &mut SshSession,
    user: &str,
    profile: String,
    workspace: std::path::PathBuf,
    argv: Vec<String>,
) {
    let shared = conn.shared.clone();
    let handle = session.handle();
    let peer = conn.peer.clone();
    let user = user.to_string();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let outcome = (|| -> Result<(i32, &'static str), String> {
            std::fs::create_dir_all(&workspace).map_err(|e| format!("creating the workspace: {e}"))?;
            let mut cmd = shared.hub.sandbox_command(&profile, &workspace, &argv, "dumb");
            cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            use std::os::unix::process::CommandExt;
            // SAFETY: setsid is async-signal-safe; it lets the whole tree be killed at once.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            let mut child = shared.hub.spawn(cmd).map_err(|e| format!("starting the sandbox: {e}"))?;
            let pid = child.id() as i32;
            let (tx, rx) = std::sync::mpsc::channel::<(u32, Vec<u8>)>();
            for (ext, pipe) in [
                (0u32, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
                (1, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
            ] {
                let Some(mut pipe) = pipe else { continue };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 32 << 10];
                    while let Ok(n) = pipe.read(&mut buf) {
                        if n == 0 || tx.send((ext, buf[..n].to_vec())).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let deadline = started + shared.config.run_timeout;
            let mut total: u64 = 0;
            let mut stop: Option<&'static str> = None;
            loop {
                let wait = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok((ext, bytes)) => {
                        total += bytes.len() as u64;
                        if total > shared.config.run_output_cap {
                            stop = Some("output cap");
                            break;
                        }
                        let sent = if ext == 0 {
                            rt.block_on(handle.data(channel, bytes))
                        } else {
                            rt.block_on(handle.extended_data(channel, 1, bytes))
                        };
                        if sent.is_err() {
                            stop = Some("client gone");
                            break;
                        }
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        stop = Some("timeout");
                        break;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            if stop.is_some() {
                // SAFETY: the runner's own process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let status = child.wait().map_err(|e| e.to_string())?;
            let code = status.code().unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0));
            Ok(match stop {
                Some("timeout") => (sandbox::EXIT_TIMEOUT, "timeout"),
                Some("output cap") => (code, "output cap"),
                _ => (code, ""),
            })
        })();
        let (code, note) = match outcome {
            Ok((code, "timeout")) => {
                let _ = rt.block_on(handle.extended_data(
                    channel,
                    1,
                    format!("cordon: the runner's time limit ({} s) ended the command\n", shared.config.run_timeout.as_secs()).into_bytes(),
                ));
                (code, "timeout")
            }
            Ok((code, "output cap")) => {
                let _ = rt.block_on(
                    handle.extended_data(
                        channel,
                        1,
                        format!("\ncordon: output passed the cap of {} bytes; the command was killed\n", shared.config.run_output_cap)
                            .into_bytes(),
                    ),
                );
                (code, "output cap")
            }
            Ok((code, note)) => (code, note),
            Err(e) => {
                let _ = rt.block_on(handle.extended_data(channel, 1, format!("cordon: {e}\n").into_bytes()));
                (sandbox::EXIT_REFUSED, "error")
            }
        };
        let mut ev = AuditEvent::new("run", user.clone())
            .with("argv", argv.join(" "))
            .with("profile", profile.clone())
            .with("exit_status", code)
            .with("address", peer)
            .with("seconds", started.elapsed().as_secs_f64());
        if !note.is_empty() {
            ev = ev.with("ended_by", note);
        }
        let _ = shared.audit.record(ev);
        rt.block_on(async {
            let _ = handle.exit_status_request(channel, code as u32).await;
            let _ = handle.eof(channel).await;
            let _ = handle.close(channel).await;
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(split_words("run -- sh -c 'echo hi; exit 3'").unwrap(), vec!["run", "--", "sh", "-c", "echo hi; exit 3"]);
        assert_eq!(split_words(r#"new --name "my box" -- a\ b"#).unwrap(), vec!["new", "--name", "my box", "--", "a b"]);
        assert!(split_words("echo 'open").is_err());
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn options_come_before_the_command() {
        let w: Vec<String> = ["--profile", "strict", "--", "ls", "-la"].map(String::from).to_vec();
        let a = parse_args(&w).unwrap();
        assert_eq!((a.profile.as_deref(), a.rest.clone()), (Some("strict"), vec!["ls".to_string(), "-la".to_string()]));
        assert!(parse_args(&["--bogus".to_string()]).is_err());
    }
}
