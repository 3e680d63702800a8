//! Alerts: the specification's rules as data (`[alerts]`, see `config.rs`), a pure evaluator
//! of sliding windows per key (`evaluate.rs`), and where an alert goes (`webhook.rs`: JSON
//! signed with HMAC-SHA256, retried with backoff; syslog through the audit log's sink). The
//! service feeds events in, opens incidents, applies the containment actions and writes the
//! audit events; this module decides nothing about who may do what.

pub mod config;
pub mod evaluate;
pub mod webhook;

pub use config::{AlertsConfig, AlertsFile, ContainAction, RuleConfig};

use serde::Serialize;

/// A rule of the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// Failed password logins from one address.
    FailedLoginsAddress,
    /// Failed password logins naming one user.
    FailedLoginsUser,
    /// The share of API answers that are server errors (5xx).
    ApiErrors,
    /// The data directory's (and the recordings') file system, percent used.
    Disk,
    /// The machine's memory, percent used.
    Memory,
    /// Failed recording writes.
    RecordingFailures,
    /// The audit log's chain does not verify.
    AuditChain,
    /// Sessions and commands the sandbox refused to start.
    SandboxRefusals,
}

impl Rule {
    pub const ALL: [Rule; 8] = [
        Rule::FailedLoginsAddress,
        Rule::FailedLoginsUser,
        Rule::ApiErrors,
        Rule::Disk,
        Rule::Memory,
        Rule::RecordingFailures,
        Rule::AuditChain,
        Rule::SandboxRefusals,
    ];

    /// Its name in the configuration, the audit log, the webhook and /metrics.
    pub fn name(self) -> &'static str {
        match self {
            Rule::FailedLoginsAddress => "failed_logins_address",
            Rule::FailedLoginsUser => "failed_logins_user",
            Rule::ApiErrors => "api_errors",
            Rule::Disk => "disk",
            Rule::Memory => "memory",
            Rule::RecordingFailures => "recording_failures",
            Rule::AuditChain => "audit_chain",
            Rule::SandboxRefusals => "sandbox_refusals",
        }
    }

    /// How bad it is: `critical` where evidence or the host itself is at stake.
    pub fn severity(self) -> &'static str {
        match self {
            Rule::AuditChain | Rule::RecordingFailures | Rule::Disk => "critical",
            _ => "warning",
        }
    }

    /// What the key of this rule names.
    pub fn key_kind(self) -> &'static str {
        match self {
            Rule::FailedLoginsAddress => "address",
            Rule::FailedLoginsUser | Rule::SandboxRefusals => "user",
            Rule::Disk => "path",
            _ => "host",
        }
    }

    /// The rule a name stands for.
    #[cfg(test)]
    pub fn named(name: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// An alert as every sink receives it (the webhook's JSON body; syslog and the audit log
/// carry the same fields).
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub rule: String,
    pub severity: String,
    /// What the rule counts per: an address, a user, a path, or `host`. A user name is as a
    /// stranger typed it, escaped and bounded by the service.
    pub key: String,
    /// Events counted in the window (for a level: the percent).
    pub count: u64,
    pub threshold: u64,
    pub window_seconds: u64,
    /// The host's name (`uname -n`).
    pub host: String,
    /// RFC 3339, UTC.
    pub time: String,
    /// The incident it opened or joined (0: none, a test alert).
    pub incident: i64,
    /// Containment applied (`block_address`, `lock_user`), as it happened.
    pub actions: Vec<String>,
    /// Sent by `cordon alert test`.
    pub test: bool,
}

impl Alert {
    /// One line for syslog: `cordon alert RULE severity=... key=... ...` (the key escaped).
    pub fn line(&self) -> String {
        format!(
            "cordon alert {} severity={} key={} count={} threshold={} window_s={} incident={}{}{}",
            self.rule,
            self.severity,
            serde_json::Value::String(self.key.clone()),
            self.count,
            self.threshold,
            self.window_seconds,
            self.incident,
            if self.actions.is_empty() {
                String::new()
            } else {
                format!(" actions={}", self.actions.join(","))
            },
            if self.test { " test=true" } else { "" }
        )
    }
}

/// This machine's name, for alerts.
pub fn host_name() -> String {
    // SAFETY: uname fills the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return "unknown".into();
    }
    // SAFETY: nodename is NUL-terminated by uname.
    let name = unsafe { std::ffi::CStr::from_ptr(u.nodename.as_ptr()) };
    name.to_string_lossy().into_owned()
}

/// Percent of the file system holding `path` in use (as `df` counts: of what non-root users
/// may use), or None if it cannot be read.
pub fn disk_percent(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct it is given from a NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    let used = (s.f_blocks as u128).saturating_sub(s.f_bfree as u128);
    let total = used + s.f_bavail as u128;
    (total > 0).then(|| ((used * 100).div_ceil(total)) as u64)
}

/// Percent of memory in use (`MemTotal - MemAvailable` of /proc/meminfo).
pub fn memory_percent() -> Option<u64> {
    memory_percent_of(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

fn memory_percent_of(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim_start_matches(':')
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let (total, available) = (field("MemTotal")?, field("MemAvailable")?);
    (total > 0).then(|| (total.saturating_sub(available) * 100) / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_in_use_is_what_is_not_available() {
        let m = "MemTotal:       1000 kB\nMemFree:  10 kB\nMemAvailable:    250 kB\n";
        assert_eq!(memory_percent_of(m), Some(75));
        assert_eq!(memory_percent_of("nothing"), None);
    }

    #[test]
    fn every_rule_is_found_by_its_name() {
        for r in Rule::ALL {
            assert_eq!(Rule::named(r.name()), Some(r));
        }
    }

    #[test]
    fn a_syslog_line_cannot_be_split_by_a_key() {
        let a = Alert {
            rule: "failed_logins_user".into(),
            severity: "warning".into(),
            key: "x\ny=1".into(),
            count: 5,
            threshold: 5,
            window_seconds: 300,
            host: "h".into(),
            time: "t".into(),
            incident: 1,
            actions: vec![],
            test: false,
        };
        assert!(!a.line().contains('\n'));
        assert!(a.line().contains("key=\"x\\ny=1\""));
    }
}
