//! Secrets for sessions: set, list and remove (a user's own, an admin's for anyone, global
//! ones for admins), and the lookup a session's start makes for the names its profile asks
//! for. A value is never returned, logged or audited; it is sealed before it is stored
//! ([`crate::vault`]).

use super::{Error, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::Action;
use crate::vault::SessionSecrets;

/// Whose secret: a user's (by name), or the host's global ones, which every user's
/// sessions receive unless the user has their own of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Global,
    User(String),
}

impl Scope {
    /// `--user NAME` or, without one, the caller's own (`me`).
    pub fn user_or(user: Option<&str>, me: &Principal) -> Scope {
        Scope::User(user.unwrap_or(&me.user).to_string())
    }
}

/// A secret as listings show it: its name, whose, and its dates; never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    /// "global", or the owner's name.
    pub scope: String,
    pub created: String,
    pub updated: String,
}

impl Service {
    /// The caller (current) and the owner id and words of `scope`, if they may act on it:
    /// `change` to set or remove, else to list.
    fn secret_scope(
        &self,
        p: &Principal,
        scope: &Scope,
        change: bool,
        what: &str,
    ) -> Result<(Principal, i64, String)> {
        let p = self.current(p)?;
        match scope {
            Scope::Global => {
                let action = if change {
                    Action::ManageGlobalSecrets
                } else {
                    Action::ListGlobalSecrets
                };
                self.permit(&p, action, what, |p| {
                    if change {
                        format!(
                            "{} may not set or remove global secrets",
                            p.role.with_article()
                        )
                    } else {
                        format!(
                            "{} may not see the global secrets' names",
                            p.role.with_article()
                        )
                    }
                })?;
                Ok((p, 0, "global".into()))
            }
            Scope::User(name) => {
                let own = p.user_id != 0 && *name == p.user;
                self.permit(&p, Action::ManageSecrets { own }, what, |p| {
                    if own {
                        format!(
                            "{} may not keep secrets (they are for sessions, which {} cannot start)",
                            p.role.with_article(), p.role.with_article()
                        )
                    } else {
                        format!("{} may not touch another user's secrets", p.role.with_article())
                    }
                })?;
                let u = self
                    .store
                    .user(name)?
                    .ok_or_else(|| Error::NotFound(format!("no user \"{name}\"")))?;
                Ok((p, u.id, u.name))
            }
        }
    }

    /// Sets a secret (replacing one of that name): the name must be an environment variable
    /// name the sandbox does not control, the value 8 to 1024 bytes of UTF-8 on one line
    /// without NUL (what the recorder can redact).
    pub fn set_secret(
        &self,
        p: &Principal,
        scope: &Scope,
        name: &str,
        value: &[u8],
    ) -> Result<SecretInfo> {
        let (p, owner, scope_name) = self.secret_scope(p, scope, true, "secret set")?;
        if let Some(problem) = sandbox::secrets::name_problem(name) {
            return Err(Error::Invalid(problem));
        }
        check_value(name, value)?;
        let sealed = self
            .vault
            .seal(owner, name, value)
            .map_err(|e| Error::caused("sealing the secret", e))?;
        let replaced = self.store.put_secret(owner, name, &sealed)?;
        self.record(
            p.stamp(AuditEvent::new(Kind::SecretSet, p.user.clone()))
                .with("name", name.to_string())
                .with("scope", scope_name.clone())
                .with("owner_id", owner)
                .with("replaced", replaced),
        );
        self.store
            .secrets(owner)?
            .into_iter()
            .find(|e| e.name == name)
            .map(|e| SecretInfo {
                name: e.name,
                scope: scope_name,
                created: e.created,
                updated: e.updated,
            })
            .ok_or_else(|| Error::failed(format!("the secret {name} was not kept")))
    }

    /// The names and dates of a scope's secrets (never their values).
    pub fn secrets(&self, p: &Principal, scope: &Scope) -> Result<Vec<SecretInfo>> {
        let (_, owner, scope_name) = self.secret_scope(p, scope, false, "secret list")?;
        Ok(self
            .store
            .secrets(owner)?
            .into_iter()
            .map(|e| SecretInfo {
                name: e.name,
                scope: scope_name.clone(),
                created: e.created,
                updated: e.updated,
            })
            .collect())
    }

    /// Removes a secret.
    pub fn remove_secret(&self, p: &Principal, scope: &Scope, name: &str) -> Result<()> {
        let (p, owner, scope_name) = self.secret_scope(p, scope, true, "secret remove")?;
        if !self.store.remove_secret(owner, name)? {
            let whose = if owner == 0 {
                "global secret".to_string()
            } else {
                format!("secret of {scope_name}")
            };
            return Err(Error::NotFound(format!(
                "no {whose} named {}",
                crate::text::printable(name)
            )));
        }
        self.record(
            p.stamp(AuditEvent::new(Kind::SecretRemove, p.user.clone()))
                .with("name", name.to_string())
                .with("scope", scope_name)
                .with("owner_id", owner),
        );
        Ok(())
    }

    /// The values a session of user `owner_id` receives for the names its profile asks
    /// for: the user's own first, else the global one; a name with neither is left out
    /// (the sandbox tells the session). A value that no longer opens fails the start.
    pub(super) fn session_secrets(
        &self,
        owner_id: i64,
        names: &[String],
    ) -> Result<SessionSecrets> {
        let mut out = SessionSecrets::default();
        for name in names {
            for owner in [owner_id, 0] {
                let Some(sealed) = self.store.sealed_secret(owner, name)? else {
                    continue;
                };
                let value = self
                    .vault
                    .open(owner, name, &sealed)
                    .map_err(|e| Error::caused("opening a secret for the session", e))?;
                out.given.push((name.clone(), value));
                break;
            }
        }
        Ok(out)
    }
}

/// A value a session's environment can hold: bounded, UTF-8, no NUL.
fn check_value(name: &str, value: &[u8]) -> Result<()> {
    if value.is_empty() {
        return Err(Error::Invalid(format!(
            "the value of {name} is empty; to drop it: cordon secret rm {name}"
        )));
    }
    if value.len() < crate::redact::MIN_SECRET {
        return Err(Error::Invalid(format!(
            "the value of {name} is shorter than {} bytes: so short a value turns up in ordinary output by chance and cannot be kept out of recordings",
            crate::redact::MIN_SECRET
        )));
    }
    // The recorder redacts values of at most MAX_SECRET bytes (its automaton per session
    // stays small); a longer one would reach recordings in clear, so it is not taken.
    if value.len() > crate::redact::MAX_SECRET {
        return Err(Error::Invalid(format!(
            "the value of {name} is {} bytes; a secret holds at most {} (longer values could not be kept out of recordings)",
            value.len(),
            crate::redact::MAX_SECRET
        )));
    }
    // A terminal prints a newline as CR LF, so a value with line breaks would reach the
    // recording in a form the recorder does not look for.
    if value.contains(&b'\n') || value.contains(&b'\r') {
        return Err(Error::Invalid(format!(
            "the value of {name} has a line break; a secret is one line (a terminal would print its breaks as CR LF, which redaction could not match): encode it, e.g. with base64"
        )));
    }
    if std::str::from_utf8(value).is_err() || value.contains(&0) {
        return Err(Error::Invalid(format!(
            "the value of {name} is not UTF-8 text without NUL bytes (it becomes an environment variable); encode binary values, e.g. with base64"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_value;

    #[test]
    fn a_value_the_recorder_could_not_redact_is_refused() {
        assert!(check_value("K", b"sk-ant-api03-abcdef").is_ok());
        assert!(check_value("K", &[b'a'; crate::redact::MAX_SECRET]).is_ok());
        let long = check_value("K", &[b'a'; crate::redact::MAX_SECRET + 1]).unwrap_err();
        assert!(long.to_string().contains("at most 1024"), "{long}");
        assert!(check_value("K", b"short").is_err());
        let broken = check_value("K", b"-----BEGIN KEY-----\nabc\n-----END KEY-----").unwrap_err();
        assert!(broken.to_string().contains("line break"), "{broken}");
        assert!(check_value("K", b"abcdefgh\rijk").is_err());
        assert!(check_value("K", b"abc\0defghij").is_err());
    }
}
