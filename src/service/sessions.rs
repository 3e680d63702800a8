//! Sessions: start, list, watch, type into, resize, rename, mark, end. A session the caller
//! may not see answers exactly like one that does not exist.

use std::sync::Arc;

use super::{Error, Principal, Result, Service};
use crate::audit::{AuditEvent, Kind};
use crate::auth::{allowed, Action};
use crate::changes::{Summary, Taken, Watch};
use crate::sessions::{Confinement, Session, Spec, Viewer};

/// A request for a new session; what is left out takes the configured default.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    pub profile: Option<String>,
    pub workspace: Option<String>,
    pub name: String,
    pub command: Vec<String>,
    pub cols: u16,
    pub rows: u16,
    pub term: String,
}

/// A session's screen as text: its size and one string per row, trailing blanks left out
/// (the screen keeps no scrollback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenText {
    pub cols: u16,
    pub rows: u16,
    pub lines: Vec<String>,
}

/// Where a user's sessions may work: see [`Service::workspace_choices`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceChoices {
    /// What a session gets when it names none.
    pub default: std::path::PathBuf,
    /// Where a plain name lives (`<workspace_root>/<user>`).
    pub area: std::path::PathBuf,
    /// The roots beneath which an absolute path is taken.
    pub granted: Vec<std::path::PathBuf>,
}

impl Service {
    /// Sessions the principal may see, oldest first.
    pub fn sessions(&self, p: &Principal) -> Result<Vec<Arc<Session>>> {
        let p = self.check(p, Action::ListSessions, "ls", |p| {
            format!("{} may not list sessions", p.role.with_article())
        })?;
        let list: Vec<_> = self
            .hub
            .list()
            .into_iter()
            .filter(|s| {
                allowed(
                    p.role,
                    Action::ObserveSession {
                        own: p.owns(s.owner_id),
                    },
                )
            })
            .collect();
        Ok(list)
    }

    /// The session a reference names (a whole id, a unique prefix of one, a name, or
    /// `owner/name`: [`crate::sessions::id::resolve`]) among those the principal may see,
    /// with the current principal. A whole id of a session they may not see is refused
    /// (audited) with the words used for one that does not exist.
    pub(super) fn visible(
        &self,
        p: &Principal,
        reference: &str,
        what: &str,
    ) -> Result<(Principal, Arc<Session>)> {
        use crate::sessions::id::{resolve, Candidate, Resolved, SessionId};
        let p = self.current(p)?;
        let cut: String = reference.chars().take(80).collect();
        let shown = crate::text::printable(&cut).into_owned();
        let missing = || Error::NotFound(format!("no session {shown}"));
        let may_see = |s: &Session| {
            allowed(
                p.role,
                Action::ObserveSession {
                    own: p.owns(s.owner_id),
                },
            )
        };
        let all = self.hub.list();
        let seen: Vec<(&Arc<Session>, String)> = all
            .iter()
            .filter(|s| may_see(s))
            .map(|s| (s, s.name()))
            .collect();
        let candidates: Vec<Candidate<'_>> = seen
            .iter()
            .map(|(s, name)| Candidate {
                id: s.id,
                owner: &s.owner,
                name,
            })
            .collect();
        match resolve(reference, &p.user, &candidates) {
            Resolved::Found(id) => match seen.iter().find(|(s, _)| s.id == id) {
                Some((s, _)) => Ok((p.clone(), Arc::clone(s))),
                None => Err(missing()),
            },
            Resolved::Ambiguous(matches) => Err(Error::Invalid(format!(
                "\"{shown}\" could be any of {}: give more of the id, or owner/name",
                crate::text::printable(&matches.join(", "))
            ))),
            Resolved::Missing => {
                if let Some(s) = SessionId::parse(reference).and_then(|id| self.hub.get(id)) {
                    let why = format!("session {} belongs to {}", s.id, s.owner);
                    return Err(self.refused(&p, what, &why, missing()));
                }
                Err(missing())
            }
        }
    }

    /// Where the principal's new sessions may work (the TUI's dialog says it): the default
    /// workspace, the folder plain names are made in, and the roots granted for absolute
    /// paths ([`crate::places`]).
    pub fn workspace_choices(&self, p: &Principal) -> Result<WorkspaceChoices> {
        let p = self.check(p, Action::CreateSession, "new", |p| {
            format!("{} may not start sessions", p.role.with_article())
        })?;
        let user = self.store.user_by_id(p.user_id)?.ok_or_else(|| {
            Error::Invalid("the host's own shell has no workspace; act as a cordon user".into())
        })?;
        let area = self.places.workspace_area(&user);
        Ok(WorkspaceChoices {
            default: self
                .places
                .default_workspace(&user)
                .unwrap_or_else(|| area.clone()),
            area,
            granted: self.places.granted_roots(&user),
        })
    }

    /// The profile and places of a new session or run, checked: the profile allowed for the
    /// role and known here; the workspace a plain name reached without links, or a path
    /// beneath a granted root reached without links beneath it.
    pub(super) fn confinement(
        &self,
        p: &Principal,
        profile: Option<String>,
        workspace: Option<&str>,
        what: &str,
    ) -> Result<Confinement> {
        let profile = profile.unwrap_or_else(|| self.config.default_profile.clone());
        self.config.profile_allowed(p.role, &profile).map_err(|e| {
            let why = e.to_string();
            self.refused(p, what, &why, Error::Forbidden(why.clone()))
        })?;
        // A name that is no profile here is a thing that does not exist, like a missing
        // session: the request itself was well formed.
        if !self.profiles(p)?.contains(&profile) {
            return Err(Error::NotFound(format!(
                "no profile \"{profile}\" (see `cordon profile list`)"
            )));
        }
        let user = self.store.user_by_id(p.user_id)?.ok_or_else(|| {
            let why =
                "the host's own shell has no home or workspace; act as a cordon user".to_string();
            Error::Invalid(why)
        })?;
        let place = |e: crate::places::PlaceError| {
            let why = e.to_string();
            match e {
                crate::places::PlaceError::Io(_) => Error::failed(why),
                _ => self.refused(p, what, &why, Error::Forbidden(why.clone())),
            }
        };
        let account = self.places.account(&user).map_err(place)?;
        let home = self.places.home(&user).map_err(place)?;
        let workspace = self
            .places
            .requested_workspace(&user, workspace)
            .map_err(place)?;
        // The names the profile asks for; a profile that does not load gets none here (the
        // sandbox refuses it with the reason).
        let names = sandbox::profile::Search::standard()
            .load(&profile)
            .map(|p| p.env_secrets)
            .unwrap_or_default();
        let secrets = self.session_secrets(user.id, &names)?;
        Ok(Confinement {
            profile,
            workspace,
            home,
            account,
            user: user.name,
            secrets,
        })
    }

    /// Starts a session for the principal.
    pub fn create_session(&self, p: &Principal, req: NewSession) -> Result<Arc<Session>> {
        let p = self.check(p, Action::CreateSession, "new", |p| {
            format!("{} may not start sessions", p.role.with_article())
        })?;
        super::command_without_nul(&req.command)?;
        // Checked first so that a start refused costs no walk; again under the lock below.
        self.within_limit(&p, "new")?;
        let name = req.name.clone();
        if !name.is_empty() {
            if let Some(why) = crate::sessions::id::bad_name(&name) {
                return Err(Error::Invalid(why.into()));
            }
        }
        let confinement = self.confinement(&p, req.profile, req.workspace.as_deref(), "new")?;
        // Walked before the command starts, outside the admission lock: a large workspace
        // delays its own session's start, never another's.
        let files = watch(&confinement);
        let admission = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        // Another start may have taken the last place, or the name, while this one walked.
        self.within_limit(&p, "new")?;
        self.name_free(&p.user, p.user_id, &name, None)?;
        let profile = confinement.profile.clone();
        let secrets: Vec<String> = confinement
            .secrets
            .given
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        let spec = Spec {
            owner: p.user.clone(),
            owner_id: p.user_id,
            name,
            confinement,
            command: req.command,
            cols: req.cols.max(1),
            rows: req.rows.max(1),
            term: if req.term.is_empty() {
                "xterm-256color".into()
            } else {
                req.term
            },
            files,
        };
        let s = self.hub.create(spec)?;
        drop(admission);
        self.record(
            p.stamp(AuditEvent::new(Kind::SessionCreate, p.user.clone()))
                .with("session", s.id)
                .with("name", s.name())
                .with("profile", profile)
                .with("command", s.command.join(" "))
                .with("secrets", secrets),
        );
        Ok(s)
    }

    /// Attaches (`writer`: may type) or observes; audited. At most `[sessions] max_viewers`
    /// viewers per session.
    pub fn attach(
        &self,
        p: &Principal,
        id: &str,
        writer: bool,
    ) -> Result<(Arc<Session>, Arc<Viewer>)> {
        let verb = if writer { "attach" } else { "observe" };
        let (p, s) = match self.visible(p, id, verb) {
            Ok(found) => found,
            // Not here: on another host sharing the store, the answer says where.
            Err(Error::NotFound(m)) => {
                return Err(self
                    .elsewhere(p, id, writer, Error::NotFound(m.clone()))
                    .unwrap_or(Error::NotFound(m)))
            }
            Err(e) => return Err(e),
        };
        let own = p.owns(s.owner_id);
        let action = if writer {
            Action::AttachSession { own }
        } else {
            Action::ObserveSession { own }
        };
        self.permit(&p, action, verb, |p| {
            format!(
                "{} may not {verb} session {} of {}",
                p.role.with_article(),
                s.id,
                s.owner
            )
        })?;
        // Someone else's session reaches this viewer's terminal only through the filter
        // (unless their role is configured to see output unfiltered).
        let filtered = !own && !self.config.unfiltered_roles.contains(&p.role);
        let viewer = s
            .attach(writer, p.user_id, self.config.max_viewers, filtered)
            .map_err(|e| {
                let why = e.to_string();
                self.refused(&p, verb, &why, Error::Forbidden(why.clone()))
            })?;
        self.record(
            p.stamp(AuditEvent::new(
                if writer {
                    Kind::SessionAttach
                } else {
                    Kind::SessionObserve
                },
                p.user.clone(),
            ))
            .with("session", s.id),
        );
        Ok((s, viewer))
    }

    pub fn detach(&self, p: &Principal, s: &Session, viewer: &Arc<Viewer>) {
        s.detach(viewer);
        self.record(
            p.stamp(AuditEvent::new(Kind::SessionDetach, p.user.clone()))
                .with("session", s.id),
        );
    }

    /// At most `height` lines of a session's screen, `back` lines up from its live view
    /// through its scrollback (the TUI's preview). Seeing a screen is observing it: the same
    /// permission.
    pub fn preview(
        &self,
        p: &Principal,
        id: &str,
        back: usize,
        height: usize,
    ) -> Result<crate::sessions::screen::Window> {
        let (_, s) = self.visible(p, id, "preview")?;
        Ok(s.screen_window(back, height))
    }

    /// The screen of a session as text with its size (the API's screen): what
    /// [`Service::preview`] shows, under the same permission.
    pub fn screen_text(&self, p: &Principal, id: &str) -> Result<ScreenText> {
        let (_, s) = self.visible(p, id, "screen")?;
        let (cols, rows, lines) = s.screen_text();
        Ok(ScreenText { cols, rows, lines })
    }

    pub fn end_session(&self, p: &Principal, id: &str) -> Result<()> {
        let (p, s) = self.visible(p, id, "kill")?;
        self.permit(
            &p,
            Action::EndSession {
                own: p.owns(s.owner_id),
            },
            "kill",
            |p| {
                format!(
                    "{} may not end session {} of {}",
                    p.role.with_article(),
                    s.id,
                    s.owner
                )
            },
        )?;
        s.kill();
        self.record(
            p.stamp(AuditEvent::new(Kind::SessionKill, p.user.clone()))
                .with("session", s.id),
        );
        Ok(())
    }

    /// What a running session has created, changed and deleted in its workspace so far: a
    /// walk now, compared with the one taken before its command started. The right to
    /// observe it; audited with the counts.
    pub fn session_files(&self, p: &Principal, id: &str) -> Result<Summary> {
        let (p, s) = self.visible(p, id, "files")?;
        let summary = s.files(Taken::Now);
        self.record(
            p.stamp(AuditEvent::new(Kind::SessionFiles, p.user.clone()))
                .with("session", s.id)
                .with("created", summary.counts.created)
                .with("changed", summary.counts.changed)
                .with("deleted", summary.counts.deleted),
        );
        Ok(summary)
    }

    /// One session, if the principal may see it.
    pub fn session_info(&self, p: &Principal, id: &str) -> Result<Arc<Session>> {
        Ok(self.visible(p, id, "info")?.1)
    }

    /// A session the principal may type into (the right to attach), for a change to it.
    pub(super) fn changeable(
        &self,
        p: &Principal,
        id: &str,
        verb: &str,
    ) -> Result<(Principal, Arc<Session>)> {
        let (p, s) = self.visible(p, id, verb)?;
        self.permit(
            &p,
            Action::AttachSession {
                own: p.owns(s.owner_id),
            },
            verb,
            |p| {
                format!(
                    "{} may not {verb} session {} of {}",
                    p.role.with_article(),
                    s.id,
                    s.owner
                )
            },
        )?;
        Ok((p, s))
    }

    /// Types into a session (the API's input call): the right to attach.
    pub fn input(&self, p: &Principal, id: &str, bytes: &[u8]) -> Result<()> {
        let (p, s) = self.changeable(p, id, "type into")?;
        s.input(bytes)
            .map_err(|e| Error::caused("writing to the session", e))?;
        self.record(
            p.stamp(AuditEvent::new(Kind::SessionInput, p.user.clone()))
                .with("session", s.id)
                .with("bytes", bytes.len()),
        );
        Ok(())
    }

    pub fn resize(&self, p: &Principal, id: &str, cols: u16, rows: u16) -> Result<()> {
        let (p, s) = self.changeable(p, id, "resize")?;
        if !(1..=1000).contains(&cols) || !(1..=1000).contains(&rows) {
            return Err(Error::Invalid(
                "cols and rows must be between 1 and 1000".into(),
            ));
        }
        s.resize(cols, rows);
        self.record(
            p.stamp(AuditEvent::new(Kind::SessionResize, p.user.clone()))
                .with("session", s.id)
                .with("size", format!("{cols}x{rows}")),
        );
        Ok(())
    }

    /// Renames a session: as changing it, the right to attach.
    /// Returns the session, for the caller to show it under its new name.
    pub fn rename_session(&self, p: &Principal, id: &str, name: &str) -> Result<Arc<Session>> {
        let (p, s) = self.changeable(p, id, "rename")?;
        if let Some(why) = crate::sessions::id::bad_name(name) {
            return Err(Error::Invalid(why.into()));
        }
        // Under the lock starts take, so that a start and a rename cannot take one name.
        let admission = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        self.name_free(&s.owner, s.owner_id, name, Some(s.id))?;
        let old = s.name();
        s.rename(name);
        drop(admission);
        self.record(
            p.stamp(AuditEvent::new(Kind::SessionRename, p.user.clone()))
                .with("session", s.id)
                .with("from", old)
                .with("to", s.name()),
        );
        Ok(s)
    }

    /// Refuses a name another live session of the same owner has: names are unique per
    /// user, so that a name typed finds one session.
    fn name_free(
        &self,
        owner: &str,
        owner_id: i64,
        name: &str,
        except: Option<crate::sessions::SessionId>,
    ) -> Result<()> {
        match self.hub.named(owner_id, name, except) {
            Some(other) if !name.is_empty() => Err(Error::Conflict(format!(
                "{} already has a session named {} ({}): choose another name",
                owner,
                crate::text::printable(name),
                other.short()
            ))),
            _ => Ok(()),
        }
    }

    /// Adds a marker to a session's recording; returns the session's id and the label used.
    pub fn mark(
        &self,
        p: &Principal,
        id: &str,
        label: &str,
    ) -> Result<(crate::sessions::SessionId, String)> {
        let (p, s) = self.changeable(p, id, "mark")?;
        let label = if label.trim().is_empty() {
            format!("mark by {}", p.user)
        } else {
            label.to_string()
        };
        let label: String = label
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        s.mark(&label);
        self.record(
            p.stamp(AuditEvent::new(Kind::SessionMark, p.user.clone()))
                .with("session", s.id)
                .with("label", label.clone()),
        );
        Ok((s.id, label))
    }
}

/// The workspace of a session about to start, walked ([`crate::changes`]), with the
/// placeholders its sandbox will hold missing protected paths with (from its profile, as the
/// sandbox finds them); or why it could not be.
fn watch(c: &Confinement) -> std::result::Result<Arc<Watch>, String> {
    let protect = sandbox::profile::Search::standard()
        .load(&c.profile)
        .map(|p| p.protect)
        .unwrap_or_default();
    let placeholders: Vec<std::path::PathBuf> =
        sandbox::protect::resolve(&protect, &c.workspace, true)
            .map(|list| list.into_iter().filter_map(|p| p.placeholder).collect())
            .unwrap_or_default();
    Watch::start(&c.workspace, &placeholders, crate::changes::Limits::DEFAULT).map(Arc::new)
}
