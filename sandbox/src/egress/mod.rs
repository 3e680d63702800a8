//! Egress: what a session in network mode "proxy" may reach, decided by the proxy that
//! sits outside its network namespace.
//!
//! [`rules`] is the pure part: the profile's `[network] allow` and `deny` patterns and the
//! verdict for one destination. It does no I/O and resolves no names.

pub mod rules;

pub use rules::{Destination, Host, Rule, RuleError, Rules, Verdict};
