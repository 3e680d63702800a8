//! The second factor (TOTP) as service operations: enrolment (pending until confirmed with a
//! code, then recovery codes shown once), status, a user turning theirs off with a code, an
//! admin's reset, and the second step of a password login. Codes are checked here for every
//! face (SSH keyboard-interactive, the API's login), so that the replay rule, the lockout
//! and the audit events exist once.

use super::users::{address_of, offered_name};
use super::{Error, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::totp;
use crate::auth::Action;
use crate::store::User;

/// How long a login may wait between its password and its code.
const PENDING_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// What a new enrolment shows its user, once: the secret as text, the URI and its QR code.
pub struct Enrolment {
    /// `user@host`, as the authenticator app will name it.
    pub account: String,
    /// The secret in base32, for typing into an app.
    pub secret: String,
    pub uri: String,
    /// The URI as a QR code drawn with half blocks.
    pub qr: Vec<String>,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolment")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Where a user's second factor stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpStatus {
    pub user: String,
    /// "none", "pending" (enrolled, not confirmed) or "enrolled".
    pub state: &'static str,
    /// Recovery codes not spent yet.
    pub recovery_left: usize,
    /// Whether the user's role must give a code with a password (`[auth] totp_required`).
    pub required: bool,
    pub since: Option<String>,
}

/// The outcome of a right password: logged in, or a code still to give.
#[derive(Debug)]
pub enum Login {
    Done(Principal),
    NeedsCode(PendingLogin),
}

/// A login whose password was right and whose second factor is still due. Only the service
/// makes one; it lasts five minutes.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    user_id: i64,
    user: String,
    peer: String,
    method: String,
    since: std::time::Instant,
}

impl PendingLogin {
    /// The user name the password was given for.
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// The host's name, for the account an authenticator app shows (`user@host`).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(s) if r == 0 && !s.is_empty() => s.to_string(),
        _ => "cordon".into(),
    }
}

impl Service {
    /// The user a TOTP operation acts on: the caller themselves, or anyone for an admin.
    /// Another user's name is refused whether or not that user exists.
    fn totp_user(&self, p: &Principal, name: &str, what: &str) -> Result<(Principal, User)> {
        let p = self.current(p)?;
        if name != p.user {
            self.permit(&p, Action::ManageUsers, what, |p| {
                format!(
                    "{} may not manage another user's second factor",
                    p.role.with_article()
                )
            })?;
        }
        let u = self.user_named(name)?;
        Ok((p, u))
    }

    fn totp_failed(e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::caused("the second factor", e)
    }

    /// Begins an enrolment for `name` (themselves, or anyone for an admin): a new secret,
    /// pending until [`Service::totp_confirm`]. A confirmed second factor must be turned
    /// off or reset first (`Conflict`).
    pub fn totp_enroll(&self, p: &Principal, name: &str) -> Result<Enrolment> {
        let (p, u) = self.totp_user(p, name, "totp enroll")?;
        let secret = zeroize::Zeroizing::new(
            totp::new_secret().map_err(|e| Error::caused("a secret for a second factor", e))?,
        );
        let sealed = self
            .totp_vault
            .seal(u.id, &secret)
            .map_err(Self::totp_failed)?;
        self.store.totp_begin(u.id, &sealed)?;
        let account = format!("{}@{}", u.name, host_name());
        let uri = totp::uri(&secret, &account);
        let qr = totp::qr_lines(&uri).unwrap_or_default();
        self.record(
            p.stamp(AuditEvent::new(Kind::TotpEnroll, p.user.clone()))
                .with("user", u.name.clone()),
        );
        Ok(Enrolment {
            account,
            secret: totp::base32(&secret),
            uri,
            qr,
        })
    }

    /// Confirms a pending enrolment with a code from the app; returns the recovery codes,
    /// which are shown this once (only their hashes are kept).
    pub fn totp_confirm(&self, p: &Principal, name: &str, code: &str) -> Result<Vec<String>> {
        let (p, u) = self.totp_user(p, name, "totp confirm")?;
        let row = match self.store.totp(u.id)? {
            Some(r) if !r.confirmed => r,
            Some(_) => {
                return Err(Error::Conflict(format!(
                    "{name}'s second factor is confirmed already"
                )))
            }
            None => {
                return Err(Error::Conflict(format!(
                    "{name} has no enrolment to confirm: begin with totp enroll"
                )))
            }
        };
        let secret = self
            .totp_vault
            .open(u.id, &row.sealed)
            .map_err(Self::totp_failed)?;
        let Some(step) = totp::verify(&secret, code, crate::tokens::now(), 0) else {
            return Err(Error::Invalid(
                "that code is not the app's current one: check the device's clock, and give the 6 digits the app shows now".into(),
            ));
        };
        let codes = totp::new_recovery_codes()
            .map_err(|e| Error::caused("recovery codes for a second factor", e))?;
        let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_hash(u.id, c)).collect();
        if !self.store.totp_confirm(u.id, step, &hashes)? {
            return Err(Error::Conflict(format!(
                "{name}'s enrolment changed meanwhile: begin again with totp enroll"
            )));
        }
        self.record(
            p.stamp(AuditEvent::new(Kind::TotpConfirm, p.user.clone()))
                .with("user", u.name.clone())
                .with("recovery_codes", codes.len()),
        );
        Ok(codes)
    }

    /// Where `name`'s second factor stands (themselves, or anyone for an admin).
    pub fn totp_status(&self, p: &Principal, name: &str) -> Result<TotpStatus> {
        let (_, u) = self.totp_user(p, name, "totp status")?;
        let row = self.store.totp(u.id)?;
        let recovery_left = match &row {
            Some(r) if r.confirmed => self.store.totp_recovery_unused(u.id)?.len(),
            _ => 0,
        };
        Ok(TotpStatus {
            state: match &row {
                None => "none",
                Some(r) if r.confirmed => "enrolled",
                Some(_) => "pending",
            },
            recovery_left,
            required: self.config.totp_required.contains(&u.role),
            since: row.and_then(|r| r.confirmed_at.or(Some(r.created))),
            user: u.name,
        })
    }

    /// Turns the caller's own second factor off; needs a current code or a recovery code
    /// (a stolen session alone cannot). A refused code counts toward the login lockout.
    pub fn totp_disable(&self, p: &Principal, code: &str) -> Result<()> {
        let p = self.current(p)?;
        if p.user_id == 0 {
            return Err(Error::Invalid(
                "the host's shell has no second factor: reset a user's with cordon user totp reset NAME".into(),
            ));
        }
        match self.store.totp(p.user_id)? {
            Some(r) if r.confirmed => {}
            Some(_) => {
                // A pending enrolment proves nothing: drop it.
                self.store.totp_remove(p.user_id)?;
                self.record(
                    p.stamp(AuditEvent::new(Kind::TotpDisable, p.user.clone()))
                        .with("user", p.user.clone()),
                );
                return Ok(());
            }
            None => {
                return Err(Error::Conflict(format!(
                    "{} has no second factor to turn off",
                    p.user
                )))
            }
        }
        self.check_code(p.user_id, &p.user, &p.address, "totp disable", code)?;
        self.store.totp_remove(p.user_id)?;
        self.record(
            p.stamp(AuditEvent::new(Kind::TotpDisable, p.user.clone()))
                .with("user", p.user.clone()),
        );
        Ok(())
    }

    /// Removes `name`'s second factor and recovery codes, pending or confirmed, if any
    /// (admins): for a lost device. The
    /// user enrols again (with their key, or from the host shell) before a password login
    /// their role requires a code for.
    pub fn totp_reset(&self, p: &Principal, name: &str) -> Result<()> {
        let p = self.check(p, Action::ManageUsers, "totp reset", |p| {
            format!(
                "{} may not reset a user's second factor",
                p.role.with_article()
            )
        })?;
        let u = self.user_named(name)?;
        // Done whether or not there was one: afterwards the user has none either way.
        let enrolled = self.store.totp_remove(u.id)?;
        self.record(
            p.stamp(AuditEvent::new(Kind::TotpReset, p.user.clone()))
                .with("user", u.name.clone())
                .with("enrolled", enrolled),
        );
        Ok(())
    }

    /// After a right password: a code is due if the user enrolled one; a user whose role
    /// requires one and who has none is refused, told how to enrol; anyone else is in.
    pub(super) fn after_password(&self, u: User, peer: &str, method: &str) -> Result<Login> {
        let enrolled = self.store.totp(u.id)?.is_some_and(|r| r.confirmed);
        if enrolled {
            return Ok(Login::NeedsCode(PendingLogin {
                user_id: u.id,
                user: u.name,
                peer: peer.to_string(),
                method: method.to_string(),
                since: std::time::Instant::now(),
            }));
        }
        if self.config.totp_required.contains(&u.role) {
            let why = format!(
                "a second factor is required for {}s on this host and {} has none enrolled",
                u.role, u.name
            );
            self.record_bounded(
                &format!("login.failed:{}", address_of(peer)),
                AuditEvent::new(Kind::LoginFailed, u.name.clone())
                    .with("method", method.to_string())
                    .with("address", peer.to_string())
                    .with("why", why.clone()),
            );
            return Err(Error::Forbidden(format!(
                "{why}: enrol one first (log in with your SSH key and run `ssh -t HOST totp enroll`, or ask an admin to run `cordon user totp enroll {}` on the host)",
                u.name
            )));
        }
        self.record(
            AuditEvent::new(Kind::Login, u.name.clone())
                .with("method", method.to_string())
                .with("address", peer.to_string()),
        );
        Ok(Login::Done(Principal {
            user: u.name,
            user_id: u.id,
            role: u.role,
            address: peer.to_string(),
            request: None,
        }))
    }

    /// The second step of a password login: a TOTP code (within one step of now, never a
    /// step used before) or a recovery code (spent by its use). A refused code counts toward
    /// the login lockout like a wrong password; once locked out, no code is taken.
    pub fn code_login(&self, pending: &PendingLogin, code: &str) -> Result<Principal> {
        if pending.since.elapsed() > PENDING_FOR {
            return Err(Error::Forbidden(
                "the code came more than five minutes after the password: log in again".into(),
            ));
        }
        let u = match self.store.user_by_id(pending.user_id)? {
            Some(u) if !u.locked && u.name == pending.user => u,
            _ => {
                return Err(Error::Forbidden(
                    "wrong user or password, or too many failures: wait 15 minutes".into(),
                ))
            }
        };
        let used = self.check_code(u.id, &u.name, &pending.peer, &pending.method, code)?;
        self.record(
            AuditEvent::new(Kind::Login, u.name.clone())
                .with("method", format!("{}+{used}", pending.method))
                .with("address", pending.peer.clone()),
        );
        Ok(Principal {
            user: u.name,
            user_id: u.id,
            role: u.role,
            address: pending.peer.clone(),
            request: None,
        })
    }

    /// Checks `code` for user `id`: "totp" or "recovery" when taken. Refusals are audited
    /// (bounded per address) and counted toward the lockout of the user and the address.
    fn check_code(
        &self,
        id: i64,
        name: &str,
        peer: &str,
        method: &str,
        code: &str,
    ) -> Result<&'static str> {
        let now = crate::tokens::now();
        let subjects = [
            format!("user:{}", offered_name(name)),
            format!("addr:{}", address_of(peer)),
        ];
        let locked_out = subjects.iter().any(|s| {
            self.store.recent_failures(s, now).unwrap_or(i64::MAX)
                >= crate::auth::password::MAX_FAILURES
        });
        let refuse = |why: &str, count: bool| {
            if count {
                let _ = self.store.record_failure(&subjects, now);
            }
            self.record_bounded(
                &format!("login.failed:{}", address_of(peer)),
                AuditEvent::new(Kind::TotpRefused, name.to_string())
                    .with("method", method.to_string())
                    .with("address", peer.to_string())
                    .with("why", why.to_string()),
            );
            Error::Forbidden("wrong or expired code, or too many failures: wait 15 minutes".into())
        };
        if locked_out {
            return Err(refuse("locked out after repeated failures", false));
        }
        let row = match self.store.totp(id)? {
            Some(r) if r.confirmed => r,
            _ => return Err(refuse("no second factor is enrolled any more", false)),
        };
        if code.chars().count() > 64 {
            return Err(refuse("not a code", true));
        }
        if totp::looks_like_code(code) {
            let secret = self
                .totp_vault
                .open(id, &row.sealed)
                .map_err(Self::totp_failed)?;
            return match totp::verify(&secret, code, now, row.last_step) {
                Some(step) if self.store.totp_use_step(id, step)? => Ok("totp"),
                Some(_) => Err(refuse("the code's step was used already", true)),
                None if totp::verify(&secret, code, now, i64::MIN).is_some() => {
                    Err(refuse("the code's step was used already", true))
                }
                None => Err(refuse("wrong or expired code", true)),
            };
        }
        let stored = self.store.totp_recovery_unused(id)?;
        match totp::find_recovery(id, code, &stored) {
            Some(i) if self.store.totp_recovery_spend(id, &stored[i])? => {
                self.record(
                    AuditEvent::new(Kind::TotpRecoveryUsed, name.to_string())
                        .with("method", method.to_string())
                        .with("left", stored.len() - 1)
                        .with("address", peer.to_string()),
                );
                Ok("recovery")
            }
            _ => Err(refuse("wrong or spent recovery code", true)),
        }
    }
}
