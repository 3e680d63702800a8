//! Users, their keys, passwords and API tokens: who may log in, and as whom. Logins are
//! decided here for every face (SSH keys and passwords, the API's password login and
//! refresh), so that each rule and each audit event exists once.

use super::{failed, Error, Login, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::{Action, Role};
use crate::store::{Key, StoreError, User};
use crate::tokens::{Claims, RefreshError, TokenPair};

/// A user as the admin view shows it.
#[derive(Debug, Clone)]
pub struct UserInfo {
    pub user: User,
    pub keys: usize,
    pub password: bool,
}

/// At most this much of a name a stranger offered is kept (audit lines, lockout counters).
const NAME_KEPT: usize = 64;

/// A user name as a stranger typed it, safe to write down: at most 64 characters, anything
/// but printable ASCII shown as `\x..` or `\u{..}`, so that a log line cannot carry escape
/// sequences, forged line breaks or megabytes.
pub fn offered_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().take(NAME_KEPT) {
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else if c.is_ascii() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    if name.chars().count() > NAME_KEPT {
        out.push('…');
    }
    out
}

pub(super) fn address_of(peer: &str) -> String {
    // "1.2.3.4:5678" and "[::1]:5678" → the address without the port.
    match peer.rsplit_once(':') {
        Some((ip, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
            ip.trim_matches(['[', ']']).to_string()
        }
        _ => peer.to_string(),
    }
}

impl Service {
    fn manage(&self, p: &Principal, what: &str) -> Result<Principal> {
        self.check(p, Action::ManageUsers, what, |p| {
            format!("{} may not manage users", p.role.with_article())
        })
    }

    /// A user by name, for an admin: missing is NotFound.
    pub(super) fn user_named(&self, name: &str) -> Result<User> {
        self.store
            .user(name)?
            .ok_or_else(|| Error::NotFound(format!("no user \"{name}\"")))
    }

    /// Users, their keys and whether they have a password (admins only).
    pub fn users(&self, p: &Principal) -> Result<Vec<UserInfo>> {
        self.manage(p, "users")?;
        let users = self.store.users()?;
        Ok(users
            .into_iter()
            .map(|u| {
                let keys = self.store.keys(&u.name).map(|k| k.len()).unwrap_or(0);
                let password = self.store.password(&u.name).ok().flatten().is_some();
                UserInfo {
                    user: u,
                    keys,
                    password,
                }
            })
            .collect())
    }

    /// Adds a user with their keys (admins). The keys are checked first: a bad one adds
    /// nothing.
    pub fn add_user(
        &self,
        p: &Principal,
        name: &str,
        role: Role,
        keys: &[String],
    ) -> Result<(User, Vec<Key>)> {
        let p = self.manage(p, "user add")?;
        for line in keys {
            crate::store::parse_key_line(line).map_err(|e| Error::Invalid(e.to_string()))?;
        }
        if self.store.user(name)?.is_some() {
            return Err(Error::Conflict(format!("there is already a user {name}")));
        }
        let u = self.store.add_user(name, role)?;
        self.record(
            p.stamp(AuditEvent::new(Kind::UserAdd, p.user.clone()))
                .with("user", name.to_string())
                .with("role", role.name()),
        );
        let mut added = Vec::new();
        for line in keys {
            added.push(self.add_key(&p, name, line)?);
        }
        Ok((u, added))
    }

    /// Whether changing `u` away from an active admin would leave none.
    pub(super) fn last_admin(&self, u: &User) -> bool {
        u.role == Role::Admin && !u.locked && self.store.count_admins().unwrap_or(0) <= 1
    }

    /// Removes a user (admins; never the last admin): their keys, tokens, sessions and runs
    /// end; their home and workspaces are moved aside, so that a user added later under the
    /// same name (a new id, a new uid) inherits nothing. Their recordings stay, for auditors.
    pub fn remove_user(&self, p: &Principal, name: &str) -> Result<()> {
        let p = self.manage(p, "user remove")?;
        let u = self.user_named(name)?;
        if self.last_admin(&u) {
            return Err(Error::Conflict(format!(
                "{name} is the last active admin; add another admin first"
            )));
        }
        self.store.revoke_user_tokens(u.id, crate::tokens::now())?;
        self.store.remove_user(name)?;
        self.end_everything_of(u.id);
        let moved = self.places.retire(&u).map_err(|e| {
            Error::caused(
                format!("{name} is removed, but their files stay in place"),
                e,
            )
        });
        let mut ev = p
            .stamp(AuditEvent::new(Kind::UserRemove, p.user.clone()))
            .with("user", name.to_string())
            .with("user_id", u.id);
        if let Ok(moved) = &moved {
            ev = ev.with(
                "moved",
                moved
                    .iter()
                    .map(|m| m.display().to_string())
                    .collect::<Vec<_>>(),
            );
        }
        self.record(ev);
        moved.map(drop)
    }

    /// Ends the sessions and runs of user `id` (in this host; a host in another process
    /// ends them within a second through [`Service::maintain`]).
    pub(super) fn end_everything_of(&self, id: i64) -> usize {
        let mut ended = 0;
        for s in self.hub.list().into_iter().filter(|s| s.owner_id == id) {
            s.kill();
            ended += 1;
        }
        for job in self.runs.list().into_iter().filter(|j| j.owner_id == id) {
            job.kill();
            ended += 1;
        }
        ended
    }

    /// Changes a user's role (admins; never the last admin away from admin). Takes effect on
    /// their next call; viewers that the new role may not hold end within a second.
    pub fn set_role(&self, p: &Principal, name: &str, role: Role) -> Result<()> {
        let p = self.manage(p, "user role")?;
        let u = self.user_named(name)?;
        if role != Role::Admin && self.last_admin(&u) {
            return Err(Error::Conflict(format!(
                "{name} is the last active admin; add another admin first"
            )));
        }
        self.store.set_role(name, role)?;
        self.record(
            p.stamp(AuditEvent::new(Kind::UserRole, p.user.clone()))
                .with("user", name.to_string())
                .with("from", u.role.name())
                .with("to", role.name()),
        );
        Ok(())
    }

    /// Locks or unlocks a user (admins). Locking voids their tokens and ends their sessions,
    /// runs and connections.
    pub fn set_locked(&self, p: &Principal, name: &str, locked: bool) -> Result<usize> {
        let p = self.manage(p, "lock")?;
        let u = self.user_named(name)?;
        if locked && u.id == p.user_id {
            return Err(Error::Conflict("you cannot lock yourself out".into()));
        }
        if locked && self.last_admin(&u) {
            return Err(Error::Conflict(format!(
                "{name} is the last active admin; add another admin first"
            )));
        }
        self.store.set_locked(name, locked)?;
        let mut ended = 0;
        if locked {
            self.store.revoke_user_tokens(u.id, crate::tokens::now())?;
            ended = self.end_everything_of(u.id);
        }
        let event = if locked {
            Kind::UserLock
        } else {
            Kind::UserUnlock
        };
        self.record(
            p.stamp(AuditEvent::new(event, p.user.clone()))
                .with("user", name.to_string())
                .with("sessions_ended", ended),
        );
        Ok(ended)
    }

    /// Sets (or with None clears) a user's password (admins); a new one must pass the policy.
    pub fn set_password(&self, p: &Principal, name: &str, password: Option<&str>) -> Result<()> {
        let p = self.manage(p, "user passwd")?;
        self.user_named(name)?;
        let phc = match password {
            Some(pw) => {
                crate::auth::password::check_policy(name, pw)
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                Some(
                    crate::auth::password::hash(pw)
                        .map_err(|e| Error::caused("setting the password", e))?,
                )
            }
            None => None,
        };
        self.store.set_password(name, phc.as_deref())?;
        let event = if phc.is_some() {
            Kind::UserPasswordSet
        } else {
            Kind::UserPasswordClear
        };
        self.record(
            p.stamp(AuditEvent::new(event, p.user.clone()))
                .with("user", name.to_string()),
        );
        Ok(())
    }

    /// A user's SSH keys (admins, or the user themselves). Another user's keys are refused
    /// whether or not that user exists.
    pub fn keys(&self, p: &Principal, name: &str) -> Result<Vec<Key>> {
        let p = self.current(p)?;
        if name != p.user {
            self.permit(&p, Action::ManageUsers, "keys", |p| {
                format!("{} may not see another user's keys", p.role.with_article())
            })?;
        }
        self.user_named(name)?;
        self.store.keys(name).map_err(Error::from)
    }

    /// Adds an SSH key (an authorized_keys line) to a user (admins).
    pub fn add_key(&self, p: &Principal, name: &str, line: &str) -> Result<Key> {
        let p = self.check(p, Action::ManageUsers, "key add", |p| {
            format!("{} may not manage keys", p.role.with_article())
        })?;
        self.user_named(name)?;
        let (k, _) = self.store.add_key(name, line)?;
        self.record(
            p.stamp(AuditEvent::new(Kind::KeyAdd, p.user.clone()))
                .with("user", name.to_string())
                .with("fingerprint", k.fingerprint.clone())
                .with("algorithm", k.algorithm.clone()),
        );
        Ok(k)
    }

    /// Removes a user's SSH key by fingerprint (admins).
    pub fn remove_key(&self, p: &Principal, name: &str, fingerprint: &str) -> Result<Key> {
        let p = self.check(p, Action::ManageUsers, "key remove", |p| {
            format!("{} may not manage keys", p.role.with_article())
        })?;
        // A key not found or named ambiguously is "not found" (as it always was); a failure
        // of the database stays a failure.
        let k = self
            .store
            .remove_key(name, fingerprint)
            .map_err(|e| match e {
                StoreError::NotFound(m) | StoreError::Invalid(m) => Error::NotFound(m),
                e => e.into(),
            })?;
        self.record(
            p.stamp(AuditEvent::new(Kind::KeyRemove, p.user.clone()))
                .with("user", name.to_string())
                .with("fingerprint", k.fingerprint.clone()),
        );
        Ok(k)
    }

    /// Voids every token of `name` issued until now (admins; or anyone for themselves).
    /// Another user's name is refused whether or not that user exists.
    pub fn revoke_tokens(&self, p: &Principal, name: &str) -> Result<()> {
        let p = self.current(p)?;
        if name != p.user {
            self.permit(&p, Action::ManageUsers, "revoke tokens", |p| {
                format!(
                    "{} may not revoke another user's tokens",
                    p.role.with_article()
                )
            })?;
        }
        let u = self.user_named(name)?;
        self.store.revoke_user_tokens(u.id, crate::tokens::now())?;
        self.record(
            p.stamp(AuditEvent::new(Kind::TokenRevoke, p.user.clone()))
                .with("user", name.to_string()),
        );
        Ok(())
    }

    /// A new API token pair for `name` (the caller themselves, or any user for an admin);
    /// audited with the face it went through.
    pub fn issue_token(&self, p: &Principal, name: &str, via: &str) -> Result<TokenPair> {
        let p = self.current(p)?;
        if name != p.user {
            self.permit(&p, Action::ManageUsers, "token issue", |p| {
                format!(
                    "{} may not issue another user's tokens",
                    p.role.with_article()
                )
            })?;
        }
        let u = self.user_named(name)?;
        if u.locked {
            return Err(Error::Invalid(format!("{name} is locked")));
        }
        let pair = self
            .tokens
            .pair(&self.store, &u, None)
            .map_err(|e| Error::caused("issuing a token", e))?;
        self.record(
            p.stamp(AuditEvent::new(Kind::TokenIssue, p.user.clone()))
                .with("user", name.to_string())
                .with("via", via.to_string()),
        );
        Ok(pair)
    }

    /// Starts signing API tokens with a new key (admins); earlier tokens stay valid.
    pub fn rotate_token_key(&self, p: &Principal) -> Result<String> {
        let p = self.manage(p, "token rotate")?;
        let kid = crate::tokens::Tokens::rotate(&self.keys, &self.config.api_signing)
            .map_err(|e| Error::caused("rotating the API signing key", e))?;
        self.record(
            p.stamp(AuditEvent::new(Kind::TokenRotateKey, p.user.clone()))
                .with("kid", kid.clone()),
        );
        Ok(kid)
    }

    /// A public-key login: the key must be registered to `user`, who must not be locked.
    /// The client learns only yes or no; the reason is audited (bounded per address).
    pub fn key_login(&self, user: &str, fingerprint: &str, peer: &str) -> Result<Principal> {
        if let Some(why) = self.blocked(peer, "login") {
            return Err(Error::Forbidden(why));
        }
        let found = self.store.user_by_key(fingerprint)?;
        let verdict = match &found {
            Some(u) if u.name != user => Err("the key belongs to another user"),
            Some(u) if u.locked => Err("the user is locked"),
            Some(_) => Ok(()),
            None => Err("unknown key"),
        };
        if let (Ok(()), Some(u)) = (&verdict, &found) {
            if let Some(why) = self.lockdown_refuses(u.role)? {
                self.record_bounded(
                    &format!("login.failed:{}", address_of(peer)),
                    AuditEvent::new(Kind::LoginFailed, u.name.clone())
                        .with("fingerprint", fingerprint.to_string())
                        .with("address", peer.to_string())
                        .with("why", why.clone()),
                );
                return Err(Error::Forbidden(why));
            }
        }
        match (verdict, found) {
            (Ok(()), Some(u)) => {
                self.record(
                    AuditEvent::new(Kind::Login, u.name.clone())
                        .with("fingerprint", fingerprint.to_string())
                        .with("address", peer.to_string())
                        .with("method", "publickey"),
                );
                Ok(Principal {
                    user: u.name,
                    user_id: u.id,
                    role: u.role,
                    address: peer.to_string(),
                    request: None,
                })
            }
            (verdict, _) => {
                let why = verdict.err().unwrap_or("unknown key");
                self.record_bounded(
                    &format!("login.failed:{}", address_of(peer)),
                    AuditEvent::new(Kind::LoginFailed, offered_name(user))
                        .with("fingerprint", fingerprint.to_string())
                        .with("address", peer.to_string())
                        .with("why", why),
                );
                Err(Error::Forbidden("Permission denied".into()))
            }
        }
    }

    /// A password login (SSH and the API's /v1/auth/login), when `[ssh] password_login` is
    /// on. Unknown users, users without a password and locked-out logins are checked
    /// against a dummy hash, so that the answer takes as long as for a known user. After
    /// repeated failures the user and the address are locked out for the window, and no
    /// further failure is written to the database. A right password of a user with a second
    /// factor leaves a code due ([`Login::NeedsCode`], then [`Service::code_login`]).
    pub async fn password_login(
        &self,
        user: &str,
        password: &str,
        peer: &str,
        method: &str,
    ) -> Result<Login> {
        if !self.config.password_login {
            return Err(Error::Forbidden("password logins are off here".into()));
        }
        // A blocked address is refused before any password is checked (alerts' containment).
        if let Some(why) = self.blocked(peer, "login") {
            return Err(Error::Forbidden(why));
        }
        let now = crate::tokens::now();
        let name = offered_name(user);
        let subjects = [format!("user:{name}"), format!("addr:{}", address_of(peer))];
        let locked_out = subjects.iter().any(|s| {
            self.store.recent_failures(s, now).unwrap_or(i64::MAX)
                >= crate::auth::password::MAX_FAILURES
        });
        let found = self.store.user(user)?;
        let hash = if locked_out {
            None
        } else {
            self.store.password(user).ok().flatten()
        };
        let ok = {
            // Argon2 costs ~19 MiB and tens of milliseconds: off the async workers, a few
            // at a time.
            let _permit = self.hashing.acquire().await.map_err(failed)?;
            let pw = password.to_string();
            tokio::task::spawn_blocking(move || {
                crate::auth::password::verify_or_dummy(hash.as_deref(), &pw)
            })
            .await
            .unwrap_or(false)
        };
        if let Some(u) = found.as_ref().filter(|u| ok && !u.locked) {
            // Said only to whoever knows the password.
            if let Some(why) = self.lockdown_refuses(u.role)? {
                self.record_bounded(
                    &format!("login.failed:{}", address_of(peer)),
                    AuditEvent::new(Kind::LoginFailed, u.name.clone())
                        .with("method", method.to_string())
                        .with("address", peer.to_string())
                        .with("why", why.clone()),
                );
                return Err(Error::Forbidden(why));
            }
        }
        match found {
            Some(u) if ok && !u.locked => self.after_password(u, peer, method),
            other => {
                let why = match other {
                    _ if locked_out => "locked out after repeated failures",
                    None => "unknown user",
                    Some(u) if u.locked && ok => "the user is locked",
                    _ => "wrong password",
                };
                if !locked_out {
                    let _ = self.store.record_failure(&subjects, now);
                }
                self.alert_login_failed(&name, peer);
                self.record_bounded(
                    &format!("login.failed:{}", address_of(peer)),
                    AuditEvent::new(Kind::LoginFailed, name)
                        .with("method", method.to_string())
                        .with("address", peer.to_string())
                        .with("why", why),
                );
                Err(Error::Forbidden(
                    "wrong user or password, or too many failures: wait 15 minutes".into(),
                ))
            }
        }
    }

    /// A new token pair for a principal who just logged in (the API's password login).
    pub fn login_tokens(&self, p: &Principal) -> Result<TokenPair> {
        let u = self
            .store
            .user_by_id(p.user_id)?
            .ok_or_else(|| Error::Forbidden("the user no longer exists".into()))?;
        self.tokens
            .pair(&self.store, &u, None)
            .map_err(|e| Error::caused("issuing a token", e))
    }

    /// An access token's caller: the signature, times and revocations checked, and the user
    /// it was issued to (by id) still able to act, with their current role. A token that is
    /// not good is `Forbidden` (the face says "not authenticated"); `Failed` when the host
    /// could not check.
    pub fn authenticate(&self, token: &str, peer: &str) -> Result<(Principal, Claims)> {
        let claims = match self.tokens.verify(&self.store, token) {
            Ok(c) => c,
            Err(crate::tokens::TokenError::Refused(why)) => return Err(Error::Forbidden(why)),
            Err(e) => return Err(Error::caused("checking a token", e)),
        };
        let p = match self.principal_by_id(claims.uid, peer) {
            Ok(p) => p,
            Err(Error::Failed(f)) => return Err(Error::Failed(f)),
            Err(e) => {
                return Err(Error::Forbidden(format!(
                    "the token's user cannot act: {e}"
                )))
            }
        };
        if p.user != claims.sub {
            return Err(Error::Forbidden(
                "the token's user cannot act: the token was issued to another user".into(),
            ));
        }
        Ok((p, claims))
    }

    /// Trades a refresh token for a new pair. A reused one revokes its whole login (refresh
    /// and access tokens), audited.
    pub fn refresh_tokens(&self, refresh: &str, peer: &str, request: &str) -> Result<TokenPair> {
        let stamp = |e: AuditEvent| {
            e.with("address", peer.to_string())
                .with("request", request.to_string())
        };
        match self.tokens.refresh(&self.store, refresh) {
            Ok((user, pair)) => {
                self.record(stamp(AuditEvent::new(Kind::TokenRefresh, user.name)));
                Ok(pair)
            }
            Err(RefreshError::Reused { user_id, family }) => {
                let name = self
                    .store
                    .user_by_id(user_id)
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_else(|| format!("#{user_id}"));
                self.record(
                    stamp(AuditEvent::new(Kind::TokenReuse, name))
                        .with("family", family)
                        .with("action", "login revoked"),
                );
                Err(Error::Forbidden(
                    "this refresh token was already used: every token of its login is now revoked"
                        .into(),
                ))
            }
            Err(RefreshError::Invalid) => Err(Error::Forbidden(
                "invalid, expired or revoked refresh token".into(),
            )),
            Err(RefreshError::Failed(e)) => Err(Error::caused("refreshing a token", e)),
        }
    }

    /// Logs out: the access token, and with a refresh token of the same user, its whole
    /// login (refresh and access tokens).
    pub fn logout(&self, p: &Principal, claims: &Claims, refresh: Option<&str>) -> Result<()> {
        self.store.revoke_jti(&claims.jti, claims.exp)?;
        if let Some(r) = refresh {
            if let Ok(Some((owner, family))) = self.store.refresh_family(&crate::tokens::hash(r)) {
                if owner == p.user_id {
                    self.store.revoke_family(
                        &family,
                        crate::tokens::now() + crate::tokens::ACCESS_SECONDS,
                    )?;
                }
            }
        }
        self.record(p.stamp(AuditEvent::new(Kind::Logout, p.user.clone())));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offered_name_is_bounded_and_cannot_carry_escapes() {
        assert_eq!(offered_name("alice"), "alice");
        assert_eq!(
            offered_name("a\x1b]52;c;cm0=\x07b"),
            "a\\x1b]52;c;cm0=\\x07b"
        );
        assert_eq!(offered_name("x\ny"), "x\\x0ay");
        let long = "a".repeat(200_000);
        assert_eq!(offered_name(&long).chars().count(), NAME_KEPT + 1);
    }

    #[test]
    fn an_address_loses_its_port() {
        assert_eq!(address_of("10.1.2.3:5555"), "10.1.2.3");
        assert_eq!(address_of("[::1]:22"), "::1");
        assert_eq!(address_of("unix"), "unix");
    }
}
