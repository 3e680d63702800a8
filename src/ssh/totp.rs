//! `ssh HOST totp ...`: a user's own second factor. `enroll` shows the QR code, the secret
//! and the URI, then (with a terminal) asks for a code to confirm and shows the recovery
//! codes once; without a terminal, `totp confirm CODE` confirms. `status`, and `disable
//! CODE`. The service decides and audits; this parses and draws.

use super::Conn;
use crate::service::Principal;
use russh::server::Session as SshSession;
use russh::ChannelId;

pub const USAGE: &str =
    "totp enroll (with ssh -t: asks for a code) | totp confirm CODE | totp status | totp disable CODE";

/// The longest line a code prompt keeps.
const LINE_MAX: usize = 64;

/// A code being typed at the prompt after `totp enroll`, echoed as typed.
pub struct CodeInput {
    principal: Principal,
    line: String,
}

impl CodeInput {
    /// Takes typed bytes: what to echo, and the line once Enter is pressed (`None` at
    /// Ctrl-C or Ctrl-D: confirm later).
    pub fn push(&mut self, data: &[u8]) -> (Vec<u8>, Option<Option<String>>) {
        let mut echo = Vec::new();
        for &b in data {
            match b {
                b'\r' | b'\n' => {
                    echo.extend_from_slice(b"\r\n");
                    return (echo, Some(Some(std::mem::take(&mut self.line))));
                }
                3 | 4 => {
                    echo.extend_from_slice(b"\r\n");
                    return (echo, Some(None));
                }
                0x7f | 8 if self.line.pop().is_some() => {
                    echo.extend_from_slice(b"\x08 \x08");
                }
                b if (b.is_ascii_alphanumeric() || b == b' ' || b == b'-')
                    && self.line.len() < LINE_MAX =>
                {
                    self.line.push(b as char);
                    echo.push(b);
                }
                _ => {}
            }
        }
        (echo, None)
    }
}

/// The enrolment as the terminal shows it: the QR code (colours fixed, so that it scans on
/// any theme, when there is a terminal), the secret and the URI.
fn enrolment_text(e: &crate::service::Enrolment, terminal: bool) -> String {
    let nl = if terminal { "\r\n" } else { "\n" };
    let mut out = String::new();
    out += &format!(
        "Scan this QR code with an authenticator app (account {}):{nl}{nl}",
        crate::text::printable(&e.account)
    );
    for line in &e.qr {
        if terminal {
            out += &format!("  \x1b[97;40m{line}\x1b[0m{nl}");
        } else {
            out += &format!("  {line}{nl}");
        }
    }
    out += &format!("{nl}or type the secret: {}{nl}", e.secret);
    out += &format!("URI: {}{nl}", crate::text::printable(&e.uri));
    out
}

/// The recovery codes, shown once.
fn recovery_text(codes: &[String], nl: &str) -> String {
    let mut out = format!(
        "Second factor confirmed. Recovery codes, each good for one login without the app; keep them offline, they are not shown again:{nl}"
    );
    for c in codes {
        out += &format!("  {c}{nl}");
    }
    out
}

pub fn command(
    conn: &mut Conn,
    channel: ChannelId,
    session: &mut SshSession,
    principal: Principal,
    words: &[String],
) -> Result<(), russh::Error> {
    let svc = conn.shared.service.clone();
    let me = principal.user.clone();
    match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["enroll"] => {
            let e = match svc.totp_enroll(&principal, &me) {
                Ok(e) => e,
                Err(e) => return conn.refused(channel, session, &e),
            };
            if !conn.has_pty(channel) {
                let out = enrolment_text(&e, false)
                    + "\nThen confirm with a code from the app: ssh HOST totp confirm CODE\n";
                return conn.finish(channel, session, &out, "", 0);
            }
            // Our own drawing (the QR code's colours): sent as it is; the user's strings in
            // it are escaped above.
            let mut out = enrolment_text(&e, true);
            out += "\r\nCode from the app (Ctrl-C to confirm later with `totp confirm CODE`): ";
            session.channel_success(channel)?;
            session.data(channel, out.into_bytes())?;
            conn.totp_inputs.insert(
                channel,
                CodeInput {
                    principal,
                    line: String::new(),
                },
            );
            Ok(())
        }
        ["confirm", code] => match svc.totp_confirm(&principal, &me, code) {
            Ok(codes) => conn.finish(channel, session, &recovery_text(&codes, "\n"), "", 0),
            Err(e) => conn.refused(channel, session, &e),
        },
        ["status"] => match svc.totp_status(&principal, &me) {
            Ok(s) => conn.finish(channel, session, &status_text(&s), "", 0),
            Err(e) => conn.refused(channel, session, &e),
        },
        ["disable", code] => match svc.totp_disable(&principal, code) {
            Ok(()) => conn.finish(
                channel,
                session,
                "second factor turned off; password logins no longer ask for a code\n",
                "",
                0,
            ),
            Err(e) => conn.refused(channel, session, &e),
        },
        _ => conn.finish(channel, session, "", &format!("cordon: {USAGE}\n"), 2),
    }
}

/// `totp status` in words.
pub fn status_text(s: &crate::service::TotpStatus) -> String {
    let required = if s.required {
        "required for this role"
    } else {
        "optional for this role"
    };
    match s.state {
        "enrolled" => format!(
            "{}: second factor enrolled since {} ({required}); {} recovery codes left\n",
            s.user,
            s.since.as_deref().unwrap_or("?"),
            s.recovery_left
        ),
        "pending" => format!(
            "{}: enrolment pending: confirm with a code (totp confirm CODE) ({required})\n",
            s.user
        ),
        _ => format!("{}: no second factor ({required})\n", s.user),
    }
}

/// The code typed at the prompt after `totp enroll`: confirms, shows the recovery codes.
pub fn code_entered(
    conn: &Conn,
    channel: ChannelId,
    session: &mut SshSession,
    input: CodeInput,
    line: Option<String>,
) -> Result<(), russh::Error> {
    // The client's terminal is raw: lines end in CR LF. Only our own words go raw.
    let Some(code) = line.filter(|l| !l.trim().is_empty()) else {
        session.data(
            channel,
            b"not confirmed: the enrolment waits; confirm with `totp confirm CODE`\r\n".to_vec(),
        )?;
        return conn.finish(channel, session, "", "", 1);
    };
    let me = input.principal.user.clone();
    match conn
        .shared
        .service
        .totp_confirm(&input.principal, &me, &code)
    {
        Ok(codes) => {
            session.data(channel, recovery_text(&codes, "\r\n").into_bytes())?;
            conn.finish(channel, session, "", "", 0)
        }
        Err(e) => conn.refused(channel, session, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> CodeInput {
        CodeInput {
            principal: Principal::local_admin(),
            line: String::new(),
        }
    }

    #[test]
    fn the_code_prompt_echoes_digits_erases_and_ends_at_enter() {
        let mut i = input();
        let (echo, done) = i.push(b"12x\x7f");
        assert_eq!((echo.as_slice(), done), (&b"12x\x08 \x08"[..], None));
        let (_, done) = i.push(b"3456\r");
        assert_eq!(done, Some(Some("123456".to_string())));
        let mut i = input();
        assert_eq!(i.push(b"12\x03").1, Some(None));
    }

    #[test]
    fn the_code_prompt_keeps_no_control_characters_and_a_bounded_line() {
        let mut i = input();
        let (echo, _) = i.push(b"\x1b[2J");
        assert!(!echo.contains(&0x1b));
        i.push(&[b'1'; 500]);
        assert_eq!(i.line.len(), LINE_MAX);
        assert!(i.line.starts_with("2J"));
    }
}
