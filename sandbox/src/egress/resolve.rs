//! Names to addresses for the proxy: the operator's overrides first (like curl's
//! `--resolve`), then the system resolver, on the connection's own thread.
//!
//! The overrides come from `CORDON_EGRESS_RESOLVE` (`name=ip,name=ip`), read by the
//! supervisor, never by the session (whose environment the policy builds). A name the
//! overrides map may go to any address, loopback included (tests need it); a name the
//! system resolves may not go to a loopback, unspecified or multicast address: an allowed
//! name must not become a way into the host's own services.

use super::rules::Host;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Most overrides the variable may hold.
pub const MAX_OVERRIDES: usize = 64;
/// Most addresses tried for one name.
pub const MAX_ADDRESSES: usize = 8;

/// The proxy's resolver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolver {
    overrides: Vec<(String, IpAddr)>,
}

/// Why `CORDON_EGRESS_RESOLVE` could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideError(pub String);

impl std::fmt::Display for OverrideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CORDON_EGRESS_RESOLVE: {}", self.0)
    }
}

impl std::error::Error for OverrideError {}

/// Why a destination has no address to connect to.
#[derive(Debug)]
pub enum ResolveError {
    /// The system resolver failed.
    Lookup(std::io::Error),
    /// Every address was one the proxy does not reach for a resolved name.
    OnlyLocal,
    /// The name has no address.
    NoAddress,
}

impl std::fmt::Display for ResolveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolveError::Lookup(e) => write!(f, "the name does not resolve: {e}"),
            ResolveError::OnlyLocal => write!(
                f,
                "the name resolves only to loopback, unspecified or multicast addresses, which the proxy does not reach"
            ),
            ResolveError::NoAddress => write!(f, "the name has no address"),
        }
    }
}

impl std::error::Error for ResolveError {}

impl Resolver {
    /// Reads `name=ip,name=ip` (empty: no overrides).
    pub fn with_overrides(spec: &str) -> Result<Resolver, OverrideError> {
        let mut overrides = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((name, ip)) = item.split_once('=') else {
                return Err(OverrideError(format!("\"{item}\" is not NAME=ADDRESS")));
            };
            let name = match Host::parse(name.trim()) {
                Ok(Host::Name(n)) => n,
                Ok(Host::Ip(_)) => {
                    return Err(OverrideError(format!(
                        "\"{name}\" is an address, not a name"
                    )))
                }
                Err(e) => return Err(OverrideError(format!("\"{name}\" {e}"))),
            };
            let ip = ip
                .trim()
                .parse::<IpAddr>()
                .map_err(|_| OverrideError(format!("\"{ip}\" is not an IP address")))?;
            overrides.push((name, ip));
            if overrides.len() > MAX_OVERRIDES {
                return Err(OverrideError(format!(
                    "more than {MAX_OVERRIDES} overrides"
                )));
            }
        }
        Ok(Resolver { overrides })
    }

    /// The override for `name`, if any.
    pub fn overridden(&self, name: &str) -> Option<IpAddr> {
        self.overrides
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, ip)| *ip)
    }

    /// The addresses to try for `host`:`port`, at most [`MAX_ADDRESSES`]. Blocks on the
    /// system resolver for a name without an override.
    pub fn resolve(&self, host: &Host, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        let name = match host {
            Host::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, port)]),
            Host::Name(n) => n,
        };
        if let Some(ip) = self.overridden(name) {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let found: Vec<SocketAddr> = (name.as_str(), port)
            .to_socket_addrs()
            .map_err(ResolveError::Lookup)?
            .take(MAX_ADDRESSES)
            .collect();
        if found.is_empty() {
            return Err(ResolveError::NoAddress);
        }
        let reachable: Vec<SocketAddr> =
            found.into_iter().filter(|a| !local_only(a.ip())).collect();
        if reachable.is_empty() {
            return Err(ResolveError::OnlyLocal);
        }
        Ok(reachable)
    }
}

/// Addresses a resolved name must not lead to.
fn local_only(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || ip.is_multicast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_map_names_case_insensitively_to_any_address_loopback_included() {
        let r = Resolver::with_overrides("Allowed.Test=127.0.0.1, other.test.=::1").unwrap();
        let host = Host::parse("allowed.test").unwrap();
        assert_eq!(
            r.resolve(&host, 8080).unwrap(),
            vec!["127.0.0.1:8080".parse().unwrap()]
        );
        assert_eq!(
            r.resolve(&Host::parse("other.test").unwrap(), 1).unwrap(),
            vec!["[::1]:1".parse().unwrap()]
        );
        assert_eq!(Resolver::with_overrides("").unwrap(), Resolver::default());
    }

    #[test]
    fn a_bad_override_is_refused_with_what_is_wrong() {
        for bad in [
            "a.test",
            "a.test=nowhere",
            "10.0.0.1=10.0.0.2",
            "bü.test=1.2.3.4",
        ] {
            let e = Resolver::with_overrides(bad).unwrap_err();
            assert!(e.to_string().starts_with("CORDON_EGRESS_RESOLVE: "), "{e}");
        }
        let many: Vec<String> = (0..=MAX_OVERRIDES)
            .map(|i| format!("n{i}.test=127.0.0.1"))
            .collect();
        assert!(Resolver::with_overrides(&many.join(",")).is_err());
    }

    #[test]
    fn an_ip_literal_is_its_own_address() {
        let r = Resolver::default();
        assert_eq!(
            r.resolve(&Host::parse("10.0.0.5").unwrap(), 80).unwrap(),
            vec!["10.0.0.5:80".parse().unwrap()]
        );
    }

    #[test]
    fn a_name_the_system_resolves_to_loopback_is_not_reached() {
        // "localhost" resolves to loopback without DNS on every system.
        let e = Resolver::default()
            .resolve(&Host::parse("localhost").unwrap(), 80)
            .unwrap_err();
        assert!(matches!(e, ResolveError::OnlyLocal), "{e}");
    }
}
