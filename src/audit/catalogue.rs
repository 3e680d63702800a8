//! Every event the audit log records, in one place: its name in the log (`"event"`), what it
//! means, and the fields it carries beside `seq`, `time`, `actor`, `prev` and `mac`. Faces
//! and the service name events by [`Kind`], never by a string; docs/audit-events.md is this
//! table (a test keeps them the same).

/// An audit event's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Login,
    LoginFailed,
    Logout,
    SshRefused,
    SshDisconnect,
    TuiStart,
    TuiStop,
    ApiUnauthorized,
    ApiRejected,
    ApiRefused,
    ApiRateLimited,
    TokenIssue,
    TokenRefresh,
    TokenReuse,
    TokenRevoke,
    TokenRotateKey,
    UserAdd,
    UserRemove,
    UserRole,
    UserLock,
    UserUnlock,
    UserPasswordSet,
    UserPasswordClear,
    KeyAdd,
    KeyRemove,
    KeyRotate,
    SecretSet,
    SecretRemove,
    ClaudeImport,
    SessionCreate,
    SessionAttach,
    SessionObserve,
    SessionDetach,
    SessionInput,
    SessionResize,
    SessionRename,
    SessionMark,
    SessionKill,
    SessionTimeout,
    SessionEnd,
    SessionFiles,
    NetConnect,
    NetAsk,
    NetAnswer,
    Run,
    RunKill,
    FilesStart,
    FilesEnd,
    FileRead,
    FileWrite,
    FileMkdir,
    FileRmdir,
    FileRemove,
    FileRename,
    FileAttrs,
    RecordingPlay,
    RecordingExport,
    RecordingSearch,
    RecordingVerify,
    RecordingHold,
    RecordingRelease,
    RecordingPurge,
    RecordingFailed,
    RecordingGap,
    RecordingResumed,
    Refused,
    ServeStart,
    ServeStop,
    AuditSuppressed,
    AuditRetention,
    LockdownOn,
    LockdownOff,
    SessionFreeze,
    SessionThaw,
    EvidenceExport,
}

impl Kind {
    /// Every kind, in the catalogue's order (the test that keeps docs/audit-events.md true).
    #[cfg(test)]
    pub const ALL: [Kind; 75] = [
        Kind::Login,
        Kind::LoginFailed,
        Kind::Logout,
        Kind::SshRefused,
        Kind::SshDisconnect,
        Kind::TuiStart,
        Kind::TuiStop,
        Kind::ApiUnauthorized,
        Kind::ApiRejected,
        Kind::ApiRefused,
        Kind::ApiRateLimited,
        Kind::TokenIssue,
        Kind::TokenRefresh,
        Kind::TokenReuse,
        Kind::TokenRevoke,
        Kind::TokenRotateKey,
        Kind::UserAdd,
        Kind::UserRemove,
        Kind::UserRole,
        Kind::UserLock,
        Kind::UserUnlock,
        Kind::UserPasswordSet,
        Kind::UserPasswordClear,
        Kind::KeyAdd,
        Kind::KeyRemove,
        Kind::KeyRotate,
        Kind::SecretSet,
        Kind::SecretRemove,
        Kind::ClaudeImport,
        Kind::SessionCreate,
        Kind::SessionAttach,
        Kind::SessionObserve,
        Kind::SessionDetach,
        Kind::SessionInput,
        Kind::SessionResize,
        Kind::SessionRename,
        Kind::SessionMark,
        Kind::SessionKill,
        Kind::SessionTimeout,
        Kind::SessionEnd,
        Kind::SessionFiles,
        Kind::NetConnect,
        Kind::NetAsk,
        Kind::NetAnswer,
        Kind::Run,
        Kind::RunKill,
        Kind::FilesStart,
        Kind::FilesEnd,
        Kind::FileRead,
        Kind::FileWrite,
        Kind::FileMkdir,
        Kind::FileRmdir,
        Kind::FileRemove,
        Kind::FileRename,
        Kind::FileAttrs,
        Kind::RecordingPlay,
        Kind::RecordingExport,
        Kind::RecordingSearch,
        Kind::RecordingVerify,
        Kind::RecordingHold,
        Kind::RecordingRelease,
        Kind::RecordingPurge,
        Kind::RecordingFailed,
        Kind::RecordingGap,
        Kind::RecordingResumed,
        Kind::Refused,
        Kind::ServeStart,
        Kind::ServeStop,
        Kind::AuditSuppressed,
        Kind::AuditRetention,
        Kind::LockdownOn,
        Kind::LockdownOff,
        Kind::SessionFreeze,
        Kind::SessionThaw,
        Kind::EvidenceExport,
    ];

    /// The name written in the log's `event` field, and what the event means with its fields.
    pub fn describe(self) -> (&'static str, &'static str) {
        use Kind::*;
        match self {
            Login => ("login", "a login succeeded: `method` (publickey, password, api password, tui socket), `fingerprint`, `address`"),
            LoginFailed => ("login.failed", "a login was refused: `why`, `method` or `fingerprint`, `address`; the actor is the offered name, bounded and escaped; bounded per address"),
            Logout => ("logout", "an API token (and with a refresh token, its login) was revoked by its user: `address`, `request`"),
            SshRefused => ("ssh.refused", "a connection was closed before it could log in (too many not logged in): `address`, `why`; bounded per address"),
            SshDisconnect => ("ssh.disconnect", "the host closed a logged-in SSH connection whose user can no longer act: `why`, `address`"),
            TuiStart => ("tui.start", "a TUI opened: `address` (or `local`), `recording` for the embedded host"),
            TuiStop => ("tui.stop", "the embedded host's TUI closed"),
            ApiUnauthorized => ("api.unauthorized", "an API request without a valid token: `why`, `address`, `request`; bounded per address"),
            ApiRejected => ("api.rejected", "an API request refused for its form or for how things stand (400, 404, 409, 413, 415, 426): `status`, `method`, `path`, `address`, `request`; bounded"),
            ApiRefused => ("api.refused", "an API connection closed at once (too many open): `address`, `why`; bounded"),
            ApiRateLimited => ("api.rate_limited", "an API request over the rate limit (429): `address`, `request`; bounded"),
            TokenIssue => ("token.issue", "an API token pair was issued: `user`, `via` (ssh, cli, test)"),
            TokenRefresh => ("token.refresh", "a refresh token was traded for a new pair: `address`, `request`"),
            TokenReuse => ("token.reuse", "a used refresh token was presented again; its whole login is revoked: `family`, `action`"),
            TokenRevoke => ("token.revoke", "every token of `user` issued until now was revoked"),
            TokenRotateKey => ("token.rotate_key", "API tokens are signed with a new key: `kid`"),
            UserAdd => ("user.add", "a user was added: `user`, `role`"),
            UserRemove => ("user.remove", "a user was removed: `user`, `user_id`, `moved` (where their home and workspaces went)"),
            UserRole => ("user.role", "a user's role changed: `user`, `from`, `to`"),
            UserLock => ("user.lock", "a user was locked (tokens revoked, sessions ended): `user`, `sessions_ended`"),
            UserUnlock => ("user.unlock", "a user was unlocked: `user`"),
            UserPasswordSet => ("user.password.set", "a user's password was set: `user`"),
            UserPasswordClear => ("user.password.clear", "a user's password was removed: `user`"),
            KeyAdd => ("key.add", "an SSH key was added: `user`, `fingerprint`, `algorithm`"),
            KeyRemove => ("key.remove", "an SSH key was removed: `user`, `fingerprint`"),
            KeyRotate => ("key.rotate", "a new recording key is current: `key`, `key_id`"),
            SecretSet => ("secret.set", "a secret for sessions was set (never its value): `name`, `scope` (global, or the owner's name), `owner_id`, `replaced`"),
            SecretRemove => ("secret.remove", "a secret was removed: `name`, `scope`, `owner_id`"),
            ClaudeImport => ("claude.import", "Claude Code's settings were imported into a user's cordon home: `user`, `from`, `copied`, `left_out` (the keys not carried)"),
            SessionCreate => ("session.create", "a session started: `session` (its id: 12 characters of base32, unique across restarts and hosts, as every `session` field), `name`, `profile`, `command` (masked), `secrets` (the names it received)"),
            SessionAttach => ("session.attach", "a viewer that may type joined a session: `session`"),
            SessionObserve => ("session.observe", "a read-only viewer joined a session: `session`"),
            SessionDetach => ("session.detach", "a viewer left a session, or the host ended it (`user_id`, `reason`): `session`"),
            SessionInput => ("session.input", "input typed through the API: `session`, `bytes`"),
            SessionResize => ("session.resize", "a session's terminal was resized through the API: `session`, `size`"),
            SessionRename => ("session.rename", "a session was renamed: `session`, `from`, `to`"),
            SessionMark => ("session.mark", "a marker was added to a session's recording: `session`, `label`"),
            SessionKill => ("session.kill", "a session was ended by a user, or by the host (`reason`): `session`"),
            SessionTimeout => ("session.timeout", "the host ended a session at its idle or age limit: `session`, `reason`"),
            SessionEnd => ("session.end", "a session's command ended: `session`, `exit_status`, and what it did to its workspace (`files_created`, `files_changed`, `files_deleted`; absent when no walk was taken before it started)"),
            SessionFiles => ("session.files", "a running session's summary of files changed was taken (a walk of its workspace, on demand): `session`, `created`, `changed`, `deleted`"),
            NetConnect => ("net.connect", "a connection attempt through a session's egress proxy (network mode \"proxy\"): `session`, `protocol` (http, connect, socks5), `host`, `port`, `allowed`, `verdict`, `rule`, `address`, `bytes_up`, `bytes_down`, `duration_ms`, `error`; `run` instead of `session` for an API or SSH run; at most 10000 a session, then one with `suppressed`"),
            NetAsk => ("net.ask", "a connection to a destination no rule names waits while the session's owner is asked (`[network] unknown = \"ask\"`): `session`, `ask` (its number in the session), `protocol`, `host`, `port`, `wait_s`"),
            NetAnswer => ("net.answer", "a question about a destination was answered: `session`, `ask`, `host`, `port`, `answer` (`once`, `session`, `deny`; `none` when the wait ran out, with the owner as actor)"),
            Run => ("run", "a command ran through the runner: `argv` (masked), `profile`, `exit_status`, `seconds`, `ended_by` (`timeout`, `output cap`, `stdin limit` when the host ended it)"),
            RunKill => ("run.kill", "the host ended a run whose owner is locked or removed: `owner`, `reason`"),
            FilesStart => ("files.start", "a file session (SFTP, scp) started, acting as the user: `roots`, `address`"),
            FilesEnd => ("files.end", "a file session ended: `files_read`, `files_written`, `address`"),
            FileRead => ("file.read", "a file was copied out (closed after reading): `path` (in the session's tree: /home, /workspace), `bytes`, `address`"),
            FileWrite => ("file.write", "a file was copied in or changed (closed after opening for writing): `path`, `bytes` written, `created`, `address`"),
            FileMkdir => ("file.mkdir", "a folder was made: `path`, `address`"),
            FileRmdir => ("file.rmdir", "a folder was removed: `path`, `address`"),
            FileRemove => ("file.remove", "a file was removed: `path`, `address`"),
            FileRename => ("file.rename", "a file or folder was renamed: `from`, `to`, `address`"),
            FileAttrs => ("file.attrs", "a file's permissions, times or size were changed: `path`, `permissions`, `times`, `size`, `address`"),
            RecordingPlay => ("recording.play", "a recording's content was shown (playback, a screen, its summary of files changed): `recording`, `at`, `screen_only`, `files_only`"),
            RecordingExport => ("recording.export", "a recording was exported: `recording`, `format`, `to`"),
            RecordingSearch => ("recording.search", "recordings were searched: `pattern`, `recordings`, `hits`, `matched` (those whose lines were shown)"),
            RecordingVerify => ("recording.verify", "recordings were verified: `recording` and `ok`, or `count` and `damaged`"),
            RecordingHold => ("recording.hold", "a recording was put under legal hold: `recording`"),
            RecordingRelease => ("recording.release", "a legal hold was lifted: `recording`"),
            RecordingPurge => ("recording.purge", "retention removed a recording: `recording`, `started`"),
            RecordingFailed => ("recording.failed", "a recording could not be written; the strict policy ended the session: `session`, `recording`, `error`, `policy`"),
            RecordingGap => ("recording.gap", "a recording could not be written; the best-effort policy went on: `session`, `recording`, `error`, `policy`"),
            RecordingResumed => ("recording.resumed", "writing a recording works again after a gap: `session`, `recording`, `gap`, `policy`"),
            Refused => ("refused", "an action was refused: `what`, `why`, `address`; bounded per user"),
            ServeStart => ("serve.start", "the host started: `listen`, `recording`"),
            ServeStop => ("serve.stop", "the host stopped"),
            AuditSuppressed => ("audit.suppressed", "events of `key` past the bound in a minute were counted, not written: `suppressed`, `window_seconds`"),
            LockdownOn => ("lockdown.on", "the host was put in lockdown (only admins may log in and act), or its terms changed: `sessions` (freeze, end), `reason`, `since`, `address`"),
            LockdownOff => ("lockdown.off", "the host's lockdown ended: `since` (when it began), `address`"),
            SessionFreeze => ("session.freeze", "the host froze a session's processes (lockdown): `session`, `reason`; `error` when it could not, and ended it instead"),
            SessionThaw => ("session.thaw", "the host thawed a frozen session (the lockdown ended): `session`; `error` when it could not"),
            EvidenceExport => ("evidence.exported", "an evidence bundle was exported: `sessions`, `user`, `since`, `recordings`, `audit_events`, `bundle_sha256`"),
            AuditRetention => ("audit.retention", "retention removed old segments of this log: `removed`, `resumes_at`, `prev_of_first`, `older_than`"),
        }
    }

    /// The name written in the log.
    pub fn name(self) -> &'static str {
        self.describe().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_name() {
        let names: std::collections::BTreeSet<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), Kind::ALL.len());
        assert!(names.iter().all(|n| n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')));
    }

    #[test]
    fn the_documented_catalogue_is_this_one() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/audit-events.md"))
                .unwrap();
        for k in Kind::ALL {
            let (name, meaning) = k.describe();
            assert!(
                doc.contains(&format!("| `{name}` | {meaning} |")),
                "docs/audit-events.md lacks or differs for {name}"
            );
        }
        assert_eq!(
            doc.matches("\n| `").count(),
            Kind::ALL.len(),
            "docs/audit-events.md lists events that are not in the catalogue"
        );
    }
}
