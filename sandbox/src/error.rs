//! Why cordon refused to start a confined command: which step, why, and what to do.

use std::fmt;

/// A confinement step, in the order they are applied (see docs/ARCHITECTURE.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Reading, merging or resolving the profile.
    Profile,
    /// Finding the command.
    Command,
    /// Creating the namespaces.
    Namespaces,
    /// Opening the egress proxy's listeners in the session's network namespace and
    /// handing them to the supervisor (network mode "proxy").
    Egress,
    /// Creating or joining the cgroup.
    Cgroup,
    /// Building the sandbox's filesystem.
    Mounts,
    /// Setting rlimits.
    Limits,
    /// Switching to the identity's uid and gid.
    Identity,
    /// Dropping capabilities.
    Capabilities,
    /// Setting no_new_privs.
    NoNewPrivs,
    /// Applying Landlock.
    Landlock,
    /// Loading the seccomp filter.
    Seccomp,
    /// Closing inherited descriptors.
    Descriptors,
    /// Executing the command (the allowlist, execve).
    Exec,
    /// Supervising the sandbox from the host side.
    Supervise,
}

impl Step {
    /// The step's name as messages and docs spell it.
    pub fn name(self) -> &'static str {
        match self {
            Step::Profile => "profile",
            Step::Command => "command",
            Step::Namespaces => "namespaces",
            Step::Egress => "egress proxy",
            Step::Cgroup => "cgroup",
            Step::Mounts => "mounts",
            Step::Limits => "resource limits",
            Step::Identity => "identity",
            Step::Capabilities => "capabilities",
            Step::NoNewPrivs => "no_new_privs",
            Step::Landlock => "landlock",
            Step::Seccomp => "seccomp",
            Step::Descriptors => "file descriptors",
            Step::Exec => "exec",
            Step::Supervise => "supervise",
        }
    }

    /// The step named `name` (the inverse of [`Step::name`]).
    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Every step, in the order they are applied.
    pub const ALL: [Step; 15] = {
        use Step::*;
        [
            Profile,
            Command,
            Namespaces,
            Egress,
            Cgroup,
            Mounts,
            Limits,
            Identity,
            Capabilities,
            NoNewPrivs,
            Landlock,
            Seccomp,
            Descriptors,
            Exec,
            Supervise,
        ]
    };
}

/// cordon refused to run a command: the step that failed, the reason, and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The step that failed.
    pub step: Step,
    /// Why, in words for the person reading it.
    pub reason: String,
    /// What to do about it, when there is something to do.
    pub hint: Option<String>,
}

impl Refusal {
    /// A refusal at `step` for `reason`.
    pub fn new(step: Step, reason: impl Into<String>) -> Self {
        Refusal {
            step,
            reason: reason.into(),
            hint: None,
        }
    }

    /// Adds a hint: what the reader can do.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A failed system call: the action in words and the OS error.
    pub fn os(step: Step, action: impl fmt::Display, err: std::io::Error) -> Self {
        Refusal::new(step, format!("{action}: {err}"))
    }
}

impl Refusal {
    /// The exit status cordon uses for this refusal: 127 when the command was not found,
    /// 126 when it may not be executed, 125 for every other refusal.
    pub fn exit_code(&self) -> i32 {
        match self.step {
            Step::Command => crate::EXIT_NOT_FOUND,
            Step::Exec => crate::EXIT_CANNOT_EXECUTE,
            _ => crate::EXIT_REFUSED,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused at step \"{}\": {}",
            self.step.name(),
            self.reason
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_found_again_by_its_name() {
        for step in Step::ALL {
            assert_eq!(Step::from_name(step.name()), Some(step));
        }
        assert_eq!(Step::Identity.name(), "identity");
    }
}
