//! Claude Code's settings imported into a user's cordon home (`cordon claude import`); what
//! is carried and what is left out is `crate::claude`'s.

use super::{Error, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::Action;
use crate::claude::{self, ImportError, Imported};
use std::path::Path;

impl Service {
    /// Imports Claude Code's settings from `from` (a directory on the host holding
    /// `.claude/` and `.claude.json`, normally the person's own home) into `user`'s cordon
    /// home, the files given to the account their sessions run as. Admins only: the host
    /// reads `from` with its own rights.
    pub fn import_claude(&self, p: &Principal, user: &str, from: &Path) -> Result<Imported> {
        let what = "claude import";
        let p = self.check(p, Action::ManageUsers, what, |p| {
            format!(
                "{} may not import into a user's home",
                p.role.with_article()
            )
        })?;
        let u = self.user_named(user)?;
        let place = |e: crate::places::PlaceError| match e {
            crate::places::PlaceError::Io(_) => Error::failed(e.to_string()),
            e => Error::Invalid(e.to_string()),
        };
        let owner = self
            .places
            .account(&u)
            .map_err(place)?
            .map(|a| (a.uid, a.gid));
        let home = self.places.home(&u).map_err(place)?;
        let fd = crate::nofollow::open_root(&home)
            .map_err(|e| Error::caused(format!("opening {}", home.display()), e))?;
        let done =
            claude::import(from, &claude::Target { home: &fd, owner }).map_err(|e| match e {
                ImportError::Target { .. } => Error::caused("importing Claude's settings", e),
                e => Error::Invalid(e.to_string()),
            })?;
        self.record(
            p.stamp(AuditEvent::new(Kind::ClaudeImport, p.user.clone()))
                .with("user", user.to_string())
                .with("from", from.display().to_string())
                .with("copied", done.copied.join(", "))
                .with("left_out", done.left_out.join(", ")),
        );
        Ok(done)
    }
}
