//! The SOCKS5 proxy's side of the conversation (RFC 1928): no authentication, the CONNECT
//! command, IPv4, IPv6 and domain-name addresses (socks5h: the proxy resolves). Every
//! length is a byte, so every read is bounded.

use super::rules::{Destination, Host};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The reply codes the proxy sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    /// Connected.
    Succeeded = 0,
    /// Anything else that went wrong.
    GeneralFailure = 1,
    /// The rules refuse the destination.
    NotAllowed = 2,
    /// No route, or the name does not resolve.
    HostUnreachable = 4,
    /// The destination refused the connection.
    ConnectionRefused = 5,
    /// The connection timed out.
    TimedOut = 6,
    /// Not CONNECT.
    CommandNotSupported = 7,
    /// An address type other than 1, 3 and 4.
    AddressNotSupported = 8,
}

/// Why the handshake failed. `reply` is what to tell the client, if anything.
#[derive(Debug)]
pub struct HandshakeError {
    /// What went wrong.
    pub what: String,
    /// The reply owed to the client (none when the handshake ended before a request).
    pub reply: Option<Reply>,
}

fn fail(what: impl Into<String>, reply: Option<Reply>) -> HandshakeError {
    HandshakeError {
        what: what.into(),
        reply,
    }
}

/// Greets the client and reads its CONNECT request. Answers the method negotiation itself;
/// the request's reply is left to the caller (after the rules and the connect).
pub fn handshake(s: &mut (impl Read + Write)) -> Result<Destination, HandshakeError> {
    let io = |e: std::io::Error| fail(format!("reading the SOCKS5 handshake: {e}"), None);
    let mut hdr = [0u8; 2];
    s.read_exact(&mut hdr).map_err(io)?;
    if hdr[0] != 5 {
        return Err(fail(format!("not SOCKS5 (version {})", hdr[0]), None));
    }
    let mut methods = vec![0u8; hdr[1] as usize];
    s.read_exact(&mut methods).map_err(io)?;
    if !methods.contains(&0) {
        let _ = s.write_all(&[5, 0xff]);
        return Err(fail(
            "the client offers no method without authentication",
            None,
        ));
    }
    s.write_all(&[5, 0]).map_err(io)?;
    let mut req = [0u8; 4];
    s.read_exact(&mut req).map_err(io)?;
    if req[0] != 5 {
        return Err(fail(
            "a request that is not SOCKS5",
            Some(Reply::GeneralFailure),
        ));
    }
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).map_err(io)?;
            Host::Ip(IpAddr::V4(Ipv4Addr::from(a)))
        }
        4 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).map_err(io)?;
            Host::Ip(IpAddr::V6(Ipv6Addr::from(a)))
        }
        3 => {
            let mut len = [0u8; 1];
            s.read_exact(&mut len).map_err(io)?;
            let mut name = vec![0u8; len[0] as usize];
            s.read_exact(&mut name).map_err(io)?;
            let name = String::from_utf8(name).map_err(|_| {
                fail(
                    "a host name that is not UTF-8",
                    Some(Reply::HostUnreachable),
                )
            })?;
            Host::parse(&name).map_err(|e| {
                fail(
                    format!("the host name {:?} {e}", name.escape_default().to_string()),
                    Some(Reply::HostUnreachable),
                )
            })?
        }
        t => {
            return Err(fail(
                format!("address type {t}"),
                Some(Reply::AddressNotSupported),
            ))
        }
    };
    let mut port = [0u8; 2];
    s.read_exact(&mut port).map_err(io)?;
    if req[1] != 1 {
        return Err(fail(
            format!("command {} (only CONNECT is served)", req[1]),
            Some(Reply::CommandNotSupported),
        ));
    }
    let port = u16::from_be_bytes(port);
    if port == 0 {
        return Err(fail("port 0", Some(Reply::HostUnreachable)));
    }
    Ok(Destination { host, port })
}

/// The reply to a request (the bound address is not disclosed: 0.0.0.0:0).
pub fn reply(r: Reply) -> [u8; 10] {
    [5, r as u8, 0, 1, 0, 0, 0, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's bytes in, the proxy's bytes out.
    struct Pipe {
        input: std::io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Pipe {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(b)
        }
    }

    impl Write for Pipe {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.output.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn run(bytes: &[u8]) -> (Result<Destination, HandshakeError>, Vec<u8>) {
        let mut p = Pipe {
            input: std::io::Cursor::new(bytes.to_vec()),
            output: Vec::new(),
        };
        (handshake(&mut p), p.output)
    }

    #[test]
    fn a_domain_name_request_is_read_for_the_proxy_to_resolve() {
        let mut b = vec![5, 1, 0, 5, 1, 0, 3, 12];
        b.extend_from_slice(b"Allowed.Test");
        b.extend_from_slice(&8080u16.to_be_bytes());
        let (r, out) = run(&b);
        assert_eq!(out, [5, 0]);
        let d = r.unwrap();
        assert_eq!(d.to_string(), "allowed.test:8080");
    }

    #[test]
    fn address_requests_are_ip_literals() {
        let (r, _) = run(&[5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 5, 0x1f, 0x90]);
        assert_eq!(r.unwrap().to_string(), "10.0.0.5:8080");
        let mut b = vec![5, 1, 0, 5, 1, 0, 4];
        b.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        b.extend_from_slice(&[1, 187]);
        assert_eq!(run(&b).0.unwrap().to_string(), "[::1]:443");
    }

    #[test]
    fn authentication_only_clients_bind_udp_and_odd_addresses_are_refused() {
        let (r, out) = run(&[5, 1, 2]);
        assert!(r.is_err());
        assert_eq!(out, [5, 0xff]);
        let (r, _) = run(&[5, 1, 0, 5, 3, 0, 1, 1, 2, 3, 4, 0, 53]);
        assert_eq!(r.unwrap_err().reply, Some(Reply::CommandNotSupported));
        let (r, _) = run(&[5, 1, 0, 5, 1, 0, 9, 0, 0]);
        assert_eq!(r.unwrap_err().reply, Some(Reply::AddressNotSupported));
        let mut b = vec![5, 1, 0, 5, 1, 0, 3, 9];
        b.extend_from_slice(b"evil.com/");
        b.extend_from_slice(&[1, 187]);
        assert_eq!(run(&b).0.unwrap_err().reply, Some(Reply::HostUnreachable));
        let (r, _) = run(&[4, 1, 0, 80]);
        assert!(r.unwrap_err().reply.is_none());
    }
}
