//! cordon's confinement library: a profile (TOML) is resolved into a [`Policy`], a plain
//! value that can be printed, diffed and serialized; [`run`] then confines a command under
//! that policy, failing closed at every step.
//!
//! The order of operations, and why, is in docs/ARCHITECTURE.md. Each step lives in its own
//! module: the choice of what to do is a pure function over the policy (tested without the
//! kernel); applying it is a few thin syscalls.

#![warn(missing_docs)]

pub mod binfmt;
pub mod caps;
pub mod egress;
pub mod error;
pub mod exec_events;
pub mod explain;
pub mod features;
pub mod identity;
pub mod landlock;
pub mod limits;
pub mod mounts;
pub mod notice;
pub mod policy;
pub mod profile;
pub mod protect;
pub mod run;
pub mod seccomp;
pub mod secrets;
mod sys;
pub mod untrusted;

pub use error::{Refusal, Step};
pub use features::Features;
pub use policy::{Identity, Network, Policy, Request};
pub use profile::{Profile, ProfileError, Search};
pub use run::{run, run_with, run_with_secrets, EgressOptions, Outcome};

/// Exit status when cordon itself refuses to start the command (a confinement step failed,
/// or the profile or request is invalid). The message on stderr names the step.
pub const EXIT_REFUSED: i32 = 125;
/// Exit status when the profile's wall-clock limit ended the command.
pub const EXIT_TIMEOUT: i32 = 124;
/// Exit status when the command was found but may not be executed (for example, it is not
/// on the profile's exec allowlist).
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit status when the command was not found.
pub const EXIT_NOT_FOUND: i32 = 127;
