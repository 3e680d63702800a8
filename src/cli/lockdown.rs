//! `cordon lockdown on|off|status`: the host's lockdown from its shell, through the service
//! (a running `cordon serve` reads the state at each check: it refuses non-admins, and
//! freezes or ends the sessions it runs, within a second).

use super::{tryc, Admin};
use crate::service::{Lockdown, LockdownSessions};

#[derive(clap::Subcommand)]
pub enum LockdownAction {
    /// Put the host in lockdown: only admins may log in and act; the sessions running now
    /// are frozen (the default) or ended. Running it again changes what it does and why.
    On {
        /// Freeze the running sessions (cgroup freezer) until the lockdown ends.
        #[arg(long, conflicts_with = "end")]
        freeze: bool,
        /// End the running sessions.
        #[arg(long)]
        end: bool,
        /// Why (shown to those refused, and audited).
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
    },
    /// End the lockdown: everyone may log in again, frozen sessions are thawed.
    Off,
    /// Whether the host is in lockdown, since when, by whom and why.
    Status {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(a: &Admin, action: &LockdownAction) -> i32 {
    match action {
        LockdownAction::On { end, reason, .. } => {
            let sessions = if *end {
                LockdownSessions::End
            } else {
                LockdownSessions::Freeze
            };
            let l = tryc!(a.svc.lockdown_on(&a.me, sessions, reason));
            println!(
                "lockdown on since {}: only admins may log in; sessions running when it began are {} (a running host acts within a second)",
                l.since,
                match l.sessions {
                    LockdownSessions::Freeze => "frozen until `cordon lockdown off`",
                    LockdownSessions::End => "ended",
                }
            );
            0
        }
        LockdownAction::Off => match tryc!(a.svc.lockdown_off(&a.me)) {
            Some(l) => {
                println!(
                    "lockdown off (it began {}): everyone may log in again; frozen sessions are thawed",
                    l.since
                );
                0
            }
            None => {
                println!("the host was not in lockdown");
                0
            }
        },
        LockdownAction::Status { json } => {
            let l = tryc!(a.svc.lockdown_status(&a.me));
            if *json {
                println!(
                    "{}",
                    crate::text::json(&serde_json::to_string_pretty(&l).unwrap_or_default())
                );
            } else {
                println!("{}", describe(l.as_ref()));
            }
            0
        }
    }
}

/// The lockdown in words (escaped: the reason is an admin's text).
pub fn describe(l: Option<&Lockdown>) -> String {
    match l {
        None => "not in lockdown".into(),
        Some(l) => {
            let reason = if l.reason.is_empty() {
                String::new()
            } else {
                format!(", reason: {}", crate::text::printable(&l.reason))
            };
            format!(
                "in lockdown since {} (by {}; sessions: {}{reason})",
                l.since,
                crate::text::printable(&l.actor),
                l.sessions.name()
            )
        }
    }
}
