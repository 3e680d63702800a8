//! The commands a client can give as `ssh HOST COMMAND`: whoami, ls, new, attach, observe,
//! files, kill, run, secret, totp (in `totp.rs`).

use super::Conn;
use crate::service::{NewSession, Principal, RunInput, RunRequest, Scope};
use russh::server::Session as SshSession;
use russh::ChannelId;
use std::time::Duration;

pub const USAGE: &str =
    "whoami, ls [--json], new [--profile P] [--workspace W] [--name N] [-- CMD...], attach ID, observe ID, files ID [--json], mark ID [LABEL], kill ID, questions [--json], answer ID ASK once|session|deny, run [--profile P] [--workspace W] -- CMD..., token, secret list|set|rm [--global] [KEY], totp enroll|confirm CODE|status|disable CODE";

/// `--profile P`, `--workspace W` (a name, or an absolute path beneath a granted root),
/// `--name N`, `--json`, then `-- CMD...`.
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
                a.workspace = Some(
                    words
                        .get(i + 1)
                        .ok_or("--workspace needs a name or an absolute path")?
                        .clone(),
                );
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

pub async fn dispatch(
    conn: &mut Conn,
    channel: ChannelId,
    line: &str,
    session: &mut SshSession,
) -> Result<(), russh::Error> {
    let words = match crate::text::split_words(line) {
        Ok(w) => w,
        Err(e) => return conn.finish(channel, session, "", &format!("cordon: {e}\n"), 2),
    };
    // Authority as it is now: a lock, removal or role change since login applies here.
    let principal = match conn.principal() {
        Ok(p) => p,
        Err(e) => return conn.refused(channel, session, &e),
    };
    let (cmd, rest) = match words.split_first() {
        Some((c, r)) => (c.as_str(), r.to_vec()),
        None => {
            return conn.finish(
                channel,
                session,
                "",
                &format!("cordon: commands: {USAGE}\n"),
                2,
            )
        }
    };
    // `scp -O` (and scp before OpenSSH 9.0) runs a remote `scp`; cordon copies files only
    // over SFTP, which scp uses by default.
    if cmd == "scp" {
        return conn.finish(
            channel,
            session,
            "",
            "cordon: legacy scp (scp -O) is not offered; use scp without -O, or sftp: both copy over SFTP\n",
            2,
        );
    }
    let args = match parse_args(&rest) {
        Ok(a) => a,
        Err(e) => return conn.finish(channel, session, "", &format!("cordon: {cmd}: {e}\n"), 2),
    };
    // A session: its id, a unique prefix of it, its name or owner/name (the service resolves).
    let id_arg = || args.rest.first().map(String::as_str);
    let shown = |id: &str| crate::text::printable(id).into_owned();
    match cmd {
        "whoami" => conn.finish(
            channel,
            session,
            &format!("{} ({})\n", principal.user, principal.role.name()),
            "",
            0,
        ),
        "ls" => {
            let visible = match conn.shared.service.sessions(&principal) {
                Ok(v) => v,
                Err(e) => return conn.refused(channel, session, &e),
            };
            // The other hosts sharing the store: theirs, under the same permission.
            let elsewhere = match conn.shared.service.cluster_sessions(&principal) {
                Ok(v) => v,
                Err(e) => return conn.refused(channel, session, &e),
            };
            let here = conn.shared.service.config().cluster.name.clone();
            let out = if args.json {
                let mut rows: Vec<serde_json::Value> = visible
                    .iter()
                    .map(|s| serde_json::json!({"id": s.id, "name": s.name(), "owner": s.owner, "profile": s.profile, "command": s.command, "created": s.created, "age_seconds": s.age().as_secs(), "idle_seconds": s.idle().as_secs(), "viewers": s.viewer_count(), "frozen": s.frozen(), "host": here, "state": "running"}))
                    .collect();
                rows.extend(elsewhere.iter().map(|s| serde_json::json!({"id": s.id, "name": s.name, "owner": s.owner, "profile": s.profile, "command": s.command, "created": s.started, "viewers": s.viewers, "frozen": s.state == "frozen", "host": s.host, "advertise": s.advertise, "state": s.state})));
                format!(
                    "{}\n",
                    crate::text::json(&serde_json::Value::Array(rows).to_string())
                )
            } else if visible.is_empty() && elsewhere.is_empty() {
                "no sessions\n".to_string()
            } else {
                let mut o = format!(
                    "{:<8} {:<20} {:<12} {:<10} {:<6} {:<6} {:<7} {}\n",
                    "ID", "NAME", "OWNER", "PROFILE", "AGE", "IDLE", "VIEWERS", "HOST"
                );
                for s in visible {
                    o += &format!(
                        "{:<8} {:<20} {:<12} {:<10} {:<6} {:<6} {:<7} {}\n",
                        s.id.short(),
                        crate::text::printable(&s.name()),
                        s.owner,
                        s.profile,
                        fmt_duration(s.age()),
                        fmt_duration(s.idle()),
                        s.viewer_count(),
                        here
                    );
                    if s.frozen() {
                        o.insert_str(o.len() - 1, " (frozen)");
                    }
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                for s in elsewhere {
                    let short: String = s.id.chars().take(8).collect();
                    let age = std::time::Duration::from_secs((now - s.started_unix).max(0) as u64);
                    o += &format!(
                        "{:<8} {:<20} {:<12} {:<10} {:<6} {:<6} {:<7} {}\n",
                        crate::text::printable(&short),
                        crate::text::printable(&s.name),
                        crate::text::printable(&s.owner),
                        crate::text::printable(&s.profile),
                        fmt_duration(age),
                        "-",
                        s.viewers,
                        crate::text::printable(&s.host)
                    );
                    if s.state != "running" {
                        o.insert_str(
                            o.len() - 1,
                            &format!(" ({})", crate::text::printable(&s.state)),
                        );
                    }
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
                return conn.finish(
                    channel,
                    session,
                    "",
                    &format!("cordon: {cmd} needs a session: its id (a prefix of 4 or more characters is enough) or its name (see `ls`)\n"),
                    2,
                );
            };
            conn.attach(channel, session, id, cmd == "attach")
        }
        "files" => {
            let Some(id) = id_arg() else {
                return conn.finish(
                    channel,
                    session,
                    "",
                    "cordon: files needs a session (see `ls`): files ID|NAME [--json]\n",
                    2,
                );
            };
            // `files ID --json` as well as `files --json ID`.
            let json = args.json || args.rest.iter().skip(1).any(|w| w == "--json");
            files(conn, channel, session, principal, id.to_string(), json);
            Ok(())
        }
        "mark" => {
            let Some(id) = id_arg() else {
                return conn.finish(
                    channel,
                    session,
                    "",
                    "cordon: mark needs a session (see `ls`): mark ID|NAME [LABEL...]\n",
                    2,
                );
            };
            let label = args.rest.get(1..).map(|w| w.join(" ")).unwrap_or_default();
            match conn.shared.service.mark(&principal, id, &label) {
                Ok((_, label)) => conn.finish(
                    channel,
                    session,
                    &format!(
                        "marked session {}: {}\n",
                        shown(id),
                        crate::text::printable(&label)
                    ),
                    "",
                    0,
                ),
                Err(e) => conn.refused(channel, session, &e),
            }
        }
        "questions" => match conn.shared.service.questions(&principal) {
            Ok(qs) if args.json => {
                let rows: Vec<serde_json::Value> = qs
                    .iter()
                    .map(|q| serde_json::json!({"session": q.session, "session_name": q.session_name, "ask": q.ask, "protocol": q.protocol, "host": q.host, "port": q.port, "asked": q.asked, "seconds_left": q.seconds_left}))
                    .collect();
                let out = format!(
                    "{}\n",
                    crate::text::json(&serde_json::Value::Array(rows).to_string())
                );
                conn.finish(channel, session, &out, "", 0)
            }
            Ok(qs) if qs.is_empty() => {
                conn.finish(channel, session, "no questions waiting\n", "", 0)
            }
            Ok(qs) => {
                let mut o = format!(
                    "{:<8} {:<4} {:<40} {}\n",
                    "SESSION", "ASK", "DESTINATION", "LEFT"
                );
                for q in &qs {
                    o += &format!(
                        "{:<8} {:<4} {:<40} {}s\n",
                        q.session.short(),
                        q.ask,
                        format!("{}:{}", q.host, q.port),
                        q.seconds_left
                    );
                }
                o += "answer with: answer SESSION ASK once|session|deny\n";
                conn.finish(channel, session, &o, "", 0)
            }
            Err(e) => conn.refused(channel, session, &e),
        },
        "answer" => {
            let usage = "cordon: answer SESSION ASK once|session|deny (see `questions`)\n";
            let (Some(id), Some(ask), Some(answer)) = (
                id_arg(),
                args.rest.get(1).and_then(|s| s.parse::<u64>().ok()),
                args.rest
                    .get(2)
                    .and_then(|s| sandbox::egress::Answer::parse(s)),
            ) else {
                return conn.finish(channel, session, "", usage, 2);
            };
            match conn
                .shared
                .service
                .answer_question(&principal, id, ask, answer)
            {
                Ok(q) => conn.finish(
                    channel,
                    session,
                    &format!(
                        "session {}: {}:{} answered {}\n",
                        q.session.short(),
                        q.host,
                        q.port,
                        answer.name()
                    ),
                    "",
                    0,
                ),
                Err(e) => conn.refused(channel, session, &e),
            }
        }
        "token" => match conn
            .shared
            .service
            .issue_token(&principal, &principal.user, "ssh")
        {
            Ok(pair) => conn.finish(
                channel,
                session,
                &format!(
                    "{}\n",
                    serde_json::to_string_pretty(&pair).unwrap_or_default()
                ),
                "",
                0,
            ),
            Err(e) => conn.refused(channel, session, &e),
        },
        "kill" => {
            let Some(id) = id_arg() else {
                return conn.finish(
                    channel,
                    session,
                    "",
                    "cordon: kill needs a session (see `ls`): kill ID|NAME\n",
                    2,
                );
            };
            match conn.shared.service.end_session(&principal, id) {
                Ok(()) => conn.finish(
                    channel,
                    session,
                    &format!("killed session {}\n", shown(id)),
                    "",
                    0,
                ),
                Err(e) => conn.refused(channel, session, &e),
            }
        }
        "run" => {
            let req = RunRequest {
                argv: args.rest.clone(),
                profile: args.profile.clone(),
                workspace: args.workspace.clone(),
                timeout: None,
            };
            if let Err(e) = conn.shared.service.prepare_run(&principal, &req) {
                return conn.refused(channel, session, &e);
            }
            let (to, input) = std::sync::mpsc::channel();
            conn.run_inputs
                .insert(channel, super::RunStdin { to, sent: 0 });
            run(
                conn,
                channel,
                session,
                principal,
                req,
                RunInput::Stream(input),
            );
            Ok(())
        }
        "secret" => secret(conn, channel, session, principal, &rest),
        "totp" => super::totp::command(conn, channel, session, principal, &rest),
        other => conn.finish(
            channel,
            session,
            "",
            &format!("cordon: unknown command \"{other}\"; commands: {USAGE}\n"),
            2,
        ),
    }
}

const SECRET_USAGE: &str = "secret list [--global] [--json] | secret set [--global] KEY (the value on standard input: printf %s \"$VALUE\" | ssh HOST secret set KEY) | secret rm [--global] KEY";

/// A `secret set` waiting for its value: what the channel sends until its end of input.
pub struct SecretInput {
    principal: Principal,
    scope: Scope,
    name: String,
    value: zeroize::Zeroizing<Vec<u8>>,
    too_large: bool,
}

impl SecretInput {
    /// More of the value (kept up to one byte past the bound, so a larger one is refused).
    pub fn push(&mut self, data: &[u8]) {
        let room = (sandbox::secrets::MAX_VALUE + 2).saturating_sub(self.value.len());
        if data.len() > room {
            self.too_large = true;
        }
        self.value.extend_from_slice(&data[..data.len().min(room)]);
    }
}

/// `secret list|set|rm`: the caller's own secrets, or with `--global` the host's.
fn secret(
    conn: &mut Conn,
    channel: ChannelId,
    session: &mut SshSession,
    principal: Principal,
    words: &[String],
) -> Result<(), russh::Error> {
    let usage = |conn: &Conn, session: &mut SshSession| {
        conn.finish(
            channel,
            session,
            "",
            &format!("cordon: {SECRET_USAGE}\n"),
            2,
        )
    };
    let Some((verb, rest)) = words.split_first() else {
        return usage(conn, session);
    };
    let (mut global, mut json, mut names) = (false, false, Vec::new());
    for w in rest {
        match w.as_str() {
            "--global" => global = true,
            "--json" => json = true,
            w if w.starts_with('-') => return usage(conn, session),
            w => names.push(w.to_string()),
        }
    }
    let scope = if global {
        Scope::Global
    } else {
        Scope::user_or(None, &principal)
    };
    let svc = conn.shared.service.clone();
    match (verb.as_str(), names.as_slice()) {
        ("list" | "ls", []) => match svc.secrets(&principal, &scope) {
            Ok(list) if json => {
                let rows: Vec<serde_json::Value> = list
                    .iter()
                    .map(|s| serde_json::json!({"name": s.name, "scope": s.scope, "created": s.created, "updated": s.updated}))
                    .collect();
                let text = serde_json::Value::Array(rows).to_string();
                let out = format!("{}\n", crate::text::json(&text));
                conn.finish(channel, session, &out, "", 0)
            }
            Ok(list) if list.is_empty() => conn.finish(channel, session, "no secrets\n", "", 0),
            Ok(list) => {
                let mut o = format!("{:<32} {:<20} {:<26} UPDATED\n", "NAME", "SCOPE", "CREATED");
                for s in list {
                    o += &format!(
                        "{:<32} {:<20} {:<26} {}\n",
                        s.name, s.scope, s.created, s.updated
                    );
                }
                conn.finish(channel, session, &o, "", 0)
            }
            Err(e) => conn.refused(channel, session, &e),
        },
        ("rm" | "remove", [name]) => match svc.remove_secret(&principal, &scope, name) {
            Ok(()) => conn.finish(channel, session, &format!("secret {name} removed\n"), "", 0),
            Err(e) => conn.refused(channel, session, &e),
        },
        ("set", [name]) => {
            if conn.has_pty(channel) {
                return conn.finish(
                    channel,
                    session,
                    "",
                    "cordon: secret set reads the value from standard input, not a terminal: printf %s \"$VALUE\" | ssh HOST secret set KEY\n",
                    2,
                );
            }
            // Checked now, so that a refusal comes before the value is sent; the value's own
            // checks come at the end of input.
            if let Some(problem) = sandbox::secrets::name_problem(name) {
                return conn.finish(channel, session, "", &format!("cordon: {problem}\n"), 2);
            }
            if let Err(e) = svc.secrets(&principal, &scope) {
                return conn.refused(channel, session, &e);
            }
            conn.await_secret(
                channel,
                SecretInput {
                    principal,
                    scope,
                    name: name.clone(),
                    value: Default::default(),
                    too_large: false,
                },
            );
            Ok(())
        }
        _ => usage(conn, session),
    }
}

/// The end of a `secret set`'s input: the value is complete (one trailing newline dropped).
pub fn secret_input_done(
    conn: &Conn,
    channel: ChannelId,
    session: &mut SshSession,
    mut input: SecretInput,
) -> Result<(), russh::Error> {
    if input.too_large {
        return conn.finish(
            channel,
            session,
            "",
            "cordon: the value is larger than 64 KiB, the most a secret holds\n",
            2,
        );
    }
    for end in [&b"\r\n"[..], b"\n"] {
        if input.value.ends_with(end) {
            let n = input.value.len() - end.len();
            input.value.truncate(n);
            break;
        }
    }
    match conn
        .shared
        .service
        .set_secret(&input.principal, &input.scope, &input.name, &input.value)
    {
        Ok(info) => conn.finish(
            channel,
            session,
            &format!("secret {} set ({})\n", info.name, info.scope),
            "",
            0,
        ),
        Err(e) => conn.refused(channel, session, &e),
    }
}

/// `files ID [--json]`: what a running session has created, changed and deleted in its
/// workspace. The walk runs off the async workers; the answer goes back through the channel
/// when it is done.
fn files(
    conn: &Conn,
    channel: ChannelId,
    session: &mut SshSession,
    principal: Principal,
    id: String,
    json: bool,
) {
    let svc = conn.shared.service.clone();
    let handle = session.handle();
    tokio::spawn(async move {
        let answer = tokio::task::spawn_blocking(move || svc.session_files(&principal, &id))
            .await
            .unwrap_or_else(|e| Err(crate::service::Error::failed(e)));
        let (out, err, status) = match answer {
            Ok(summary) if json => (
                format!(
                    "{}\n",
                    crate::text::json(&serde_json::to_string_pretty(&summary).unwrap_or_default())
                ),
                String::new(),
                0,
            ),
            // Every line of it is escaped already (the paths are the session's).
            Ok(summary) => (summary.lines().join("\n") + "\n", String::new(), 0),
            Err(e) => (
                String::new(),
                crate::text::printable_lines(&format!("cordon: {e}\n")).into_owned(),
                match e {
                    crate::service::Error::Invalid(_) | crate::service::Error::Conflict(_) => 2,
                    _ => 126,
                },
            ),
        };
        if !out.is_empty() {
            let _ = handle.data(channel, out.into_bytes()).await;
        }
        if !err.is_empty() {
            let _ = handle.extended_data(channel, 1, err.into_bytes()).await;
        }
        let _ = handle.exit_status_request(channel, status).await;
        let _ = handle.eof(channel).await;
        let _ = handle.close(channel).await;
    });
}

/// `run`: the command confined, without a terminal; stdout, stderr and the exit status go
/// back through the channel as they come, within the runner's time limit and output cap.
fn run(
    conn: &Conn,
    channel: ChannelId,
    session: &mut SshSession,
    principal: crate::service::Principal,
    req: RunRequest,
    input: RunInput,
) {
    let svc = conn.shared.service.clone();
    let handle = session.handle();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut sink = |stream: u32, bytes: Vec<u8>| {
            let sent = if stream == 0 {
                rt.block_on(handle.data(channel, bytes))
            } else {
                rt.block_on(handle.extended_data(channel, 1, bytes))
            };
            sent.is_ok()
        };
        let code = match svc.run(&principal, req, input, &mut sink) {
            Ok(o) => {
                let note = match o.ended_by {
                    Some(crate::service::RunEnd::Timeout) => {
                        format!(
                            "cordon: the runner's time limit ({} s) ended the command\n",
                            svc.config().run_timeout.as_secs()
                        )
                    }
                    Some(crate::service::RunEnd::StdinLimit) => {
                        format!(
                            "cordon: standard input passed the limit of {} bytes ([runner] stdin_limit); the command's input was closed and the command ended\n",
                            svc.config().run_stdin_limit
                        )
                    }
                    Some(crate::service::RunEnd::OutputCap) => {
                        format!(
                            "\ncordon: output passed the cap of {} bytes; the command was killed\n",
                            svc.config().run_output_cap
                        )
                    }
                    _ => String::new(),
                };
                if !note.is_empty() {
                    let _ = rt.block_on(handle.extended_data(channel, 1, note.into_bytes()));
                }
                o.exit_status
            }
            Err(e) => {
                let _ = rt.block_on(handle.extended_data(
                    channel,
                    1,
                    format!("cordon: {e}\n").into_bytes(),
                ));
                sandbox::EXIT_REFUSED
            }
        };
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
    fn options_come_before_the_command() {
        let w: Vec<String> = ["--profile", "strict", "--", "ls", "-la"]
            .map(String::from)
            .to_vec();
        let a = parse_args(&w).unwrap();
        assert_eq!(
            (a.profile.as_deref(), a.rest.clone()),
            (Some("strict"), vec!["ls".to_string(), "-la".to_string()])
        );
        assert!(parse_args(&["--bogus".to_string()]).is_err());
    }
}
