//! Egress: what a session in network mode "proxy" may reach, decided by the proxy that
//! sits outside its network namespace.
//!
//! [`rules`] is the pure part: the profile's `[network] allow` and `deny` patterns and the
//! verdict for one destination. It does no I/O and resolves no names. [`sets`] holds the
//! named domain sets a profile includes (`[network] include`) as data. [`http`] and
//! [`socks`] read what a client asks for; [`resolve`] turns names into addresses;
//! [`handoff`] carries the listeners out of the session's namespace; [`proxy`] serves, in
//! a process of its own ([`process`]), copying each connection's bytes with [`relay`] on
//! threads from [`workers`]; [`ask`] holds the questions of ask mode
//! (`[network] unknown = "ask"`) until the session's owner answers.

pub mod ask;
pub mod handoff;
pub mod http;
pub mod process;
pub mod proxy;
mod relay;
pub mod resolve;
pub mod rules;
pub mod sets;
pub mod socks;
mod workers;

pub use rules::{Answer, Destination, Host, List, Rule, RuleError, Rules, Verdict};
pub use sets::DomainSet;

/// The HTTP proxy's address inside the session's namespace. Fixed: each session has a
/// namespace of its own, so no two sessions compete for it.
pub const HTTP_PROXY_ADDR: &str = "127.0.0.1:3128";
/// The SOCKS5 proxy's address inside the session's namespace.
pub const SOCKS_PROXY_ADDR: &str = "127.0.0.1:1080";

/// The variables that announce the proxies to programs inside, set by the policy for mode
/// "proxy" over whatever the caller or the profile gave. `socks5h`: the proxy resolves.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    ("HTTP_PROXY", "http://127.0.0.1:3128"),
    ("HTTPS_PROXY", "http://127.0.0.1:3128"),
    ("http_proxy", "http://127.0.0.1:3128"),
    ("https_proxy", "http://127.0.0.1:3128"),
    ("ALL_PROXY", "socks5h://127.0.0.1:1080"),
    ("all_proxy", "socks5h://127.0.0.1:1080"),
    ("NO_PROXY", "localhost,127.0.0.1,::1"),
    ("no_proxy", "localhost,127.0.0.1,::1"),
];
