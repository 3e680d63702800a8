//! Roles and what each may do: the one permission table (docs/security.md shows it). Every
//! frontend asks [`allowed`]; none decides on its own.

pub mod password;
pub mod totp;
pub mod totp_vault;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Developer,
    Auditor,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Developer, Role::Auditor, Role::Viewer];

    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
        }
    }
}

impl Role {
    /// The role with its article, for sentences: "an admin", "a developer", "an auditor",
    /// "a viewer".
    pub fn with_article(self) -> &'static str {
        match self {
            Role::Admin => "an admin",
            Role::Developer => "a developer",
            Role::Auditor => "an auditor",
            Role::Viewer => "a viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is none of the roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a role (admin, developer, auditor, viewer)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

/// Something a principal wants to do. `own` says whether the target belongs to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CreateSession,
    AttachSession {
        own: bool,
    },
    ObserveSession {
        own: bool,
    },
    EndSession {
        own: bool,
    },
    ListSessions,
    RunCommand,
    /// Copy files in and out of one's own home and workspaces (SFTP, scp).
    TransferFiles,
    ReadRecording {
        own: bool,
    },
    ReadAudit,
    ManageUsers,
    /// Set, list or remove a user's secrets (`own`: the caller's).
    ManageSecrets {
        own: bool,
    },
    /// See the names of the global secrets (never their values).
    ListGlobalSecrets,
    /// Set or remove a global secret.
    ManageGlobalSecrets,
    /// Put the host in lockdown, end it, or see it.
    ManageLockdown,
    /// Export an evidence bundle (recordings, the audit slice, the catalog, signed).
    ExportEvidence,
}

/// The permission table.
pub fn allowed(role: Role, action: Action) -> bool {
    use Action::*;
    use Role::*;
    match (role, action) {
        (Admin, _) => true,
        (
            Developer,
            CreateSession | RunCommand | TransferFiles | ListSessions | ListGlobalSecrets,
        ) => true,
        (
            Developer,
            AttachSession { own }
            | ObserveSession { own }
            | EndSession { own }
            | ReadRecording { own }
            | ManageSecrets { own },
        ) => own,
        (
            Developer,
            ReadAudit | ManageUsers | ManageGlobalSecrets | ManageLockdown | ExportEvidence,
        ) => false,
        (
            Auditor,
            ObserveSession { .. }
            | ListSessions
            | ReadRecording { .. }
            | ReadAudit
            | ExportEvidence,
        ) => true,
        (Auditor, _) => false,
        (Viewer, ObserveSession { .. } | ListSessions) => true,
        (Viewer, _) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn developers_touch_only_their_own_sessions() {
        assert!(allowed(
            Role::Developer,
            Action::AttachSession { own: true }
        ));
        assert!(!allowed(
            Role::Developer,
            Action::AttachSession { own: false }
        ));
        assert!(!allowed(
            Role::Developer,
            Action::ObserveSession { own: false }
        ));
        assert!(!allowed(Role::Developer, Action::ReadAudit));
    }

    #[test]
    fn auditors_and_viewers_never_type_or_start_anything() {
        for r in [Role::Auditor, Role::Viewer] {
            assert!(!allowed(r, Action::CreateSession));
            assert!(!allowed(r, Action::AttachSession { own: true }));
            assert!(!allowed(r, Action::RunCommand));
            assert!(!allowed(r, Action::TransferFiles));
            assert!(!allowed(r, Action::ManageUsers));
            assert!(allowed(r, Action::ObserveSession { own: false }));
        }
        assert!(allowed(Role::Auditor, Action::ReadAudit));
        assert!(!allowed(Role::Viewer, Action::ReadAudit));
    }

    #[test]
    fn secrets_belong_to_those_who_start_sessions_and_global_ones_to_admins() {
        assert!(allowed(
            Role::Developer,
            Action::ManageSecrets { own: true }
        ));
        assert!(!allowed(
            Role::Developer,
            Action::ManageSecrets { own: false }
        ));
        assert!(allowed(Role::Developer, Action::ListGlobalSecrets));
        assert!(!allowed(Role::Developer, Action::ManageGlobalSecrets));
        for r in [Role::Auditor, Role::Viewer] {
            assert!(!allowed(r, Action::ManageSecrets { own: true }));
            assert!(!allowed(r, Action::ListGlobalSecrets));
        }
        assert!(allowed(Role::Admin, Action::ManageSecrets { own: false }));
        assert!(allowed(Role::Admin, Action::ManageGlobalSecrets));
    }

    #[test]
    fn roles_parse_from_their_names() {
        for r in Role::ALL {
            assert_eq!(r.name().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
