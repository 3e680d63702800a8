//! The HTTP proxy's side of the conversation: reading a request head (bounded), telling a
//! `CONNECT host:port` from an absolute-form request (`GET http://host/path`), and
//! rewriting the latter for the origin server. Pure over bytes; the I/O is the caller's.

use super::rules::{Destination, Host};
use std::io::Read;

/// Largest request head accepted (request line and headers).
pub const MAX_HEAD: usize = 32 * 1024;
/// Most header lines accepted.
pub const MAX_HEADERS: usize = 100;

/// Why a request was not understood; each maps to an HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The head is longer than [`MAX_HEAD`] or has more than [`MAX_HEADERS`] lines (431).
    TooLarge,
    /// The connection ended before the head did (no answer is possible).
    Closed,
    /// Not an HTTP/1 proxy request (400).
    Malformed(&'static str),
    /// An absolute-form URL with a scheme other than http (400: use CONNECT).
    Scheme,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestError::TooLarge => write!(f, "the request head is too large"),
            RequestError::Closed => write!(f, "the client closed the connection"),
            RequestError::Malformed(what) => write!(f, "malformed request: {what}"),
            RequestError::Scheme => {
                write!(f, "only http:// URLs are forwarded; use CONNECT for https")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// What the client asked the proxy for.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// A tunnel: answer 200, then relay.
    Connect(Destination),
    /// A plain HTTP request: send `head` (rewritten to origin form) to the destination,
    /// then relay.
    Forward {
        /// Where it goes.
        dest: Destination,
        /// The request head for the origin server.
        head: Vec<u8>,
    },
}

/// Reads until the end of the head (`\r\n\r\n`); returns the head and what came after it.
pub fn read_head(r: &mut impl Read) -> Result<(Vec<u8>, Vec<u8>), RequestError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = r.read(&mut chunk).map_err(|_| RequestError::Closed)?;
        if n == 0 {
            return Err(RequestError::Closed);
        }
        let searched_from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = find(&buf[searched_from..], b"\r\n\r\n") {
            let end = searched_from + i + 4;
            if end > MAX_HEAD {
                return Err(RequestError::TooLarge);
            }
            let rest = buf.split_off(end);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(RequestError::TooLarge);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Parses a head read by [`read_head`].
pub fn parse(head: &[u8]) -> Result<Request, RequestError> {
    let text = std::str::from_utf8(head).map_err(|_| RequestError::Malformed("not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Malformed("the request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(RequestError::Malformed("the HTTP version"));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(RequestError::Malformed("the method"));
    }
    let headers: Vec<&str> = lines.take_while(|l| !l.is_empty()).collect();
    if headers.len() > MAX_HEADERS {
        return Err(RequestError::TooLarge);
    }
    if method == "CONNECT" {
        return authority(target, None).map(Request::Connect);
    }
    let rest = match target.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some(_) => return Err(RequestError::Scheme),
        None => return Err(RequestError::Malformed("the target is not an absolute URL")),
    };
    let (auth, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_string()
    };
    if auth.contains('@') {
        return Err(RequestError::Malformed("credentials in the URL"));
    }
    let dest = authority(auth, Some(80))?;
    let mut out = format!("{method} {path} {version}\r\n");
    for h in headers {
        let name = h.split(':').next().unwrap_or_default().trim();
        // Hop-by-hop headers are the proxy's; one request per connection keeps the
        // destination the one decided.
        if [
            "proxy-connection",
            "proxy-authorization",
            "connection",
            "keep-alive",
        ]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    Ok(Request::Forward {
        dest,
        head: out.into_bytes(),
    })
}

/// `host:port` (IPv6 in brackets); without a port, `default` (CONNECT has none).
fn authority(s: &str, default: Option<u16>) -> Result<Destination, RequestError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest
            .split_once(']')
            .ok_or(RequestError::Malformed("the IPv6 address"))?;
        (h, tail.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match (port, default) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or(RequestError::Malformed("the port"))?,
        (None, Some(d)) => d,
        (None, None) => return Err(RequestError::Malformed("CONNECT needs host:port")),
    };
    let host = Host::parse(host).map_err(|_| RequestError::Malformed("the host name"))?;
    Ok(Destination { host, port })
}

/// The proxy's own answer: a status line, a short text body, and the end of the exchange.
pub fn response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(h: &str, p: u16) -> Destination {
        Destination {
            host: Host::parse(h).unwrap(),
            port: p,
        }
    }

    #[test]
    fn connect_names_a_host_and_port() {
        let r = parse(b"CONNECT API.anthropic.com:443 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r, Request::Connect(dest("api.anthropic.com", 443)));
        let r = parse(b"CONNECT [::1]:8443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(r, Request::Connect(dest("::1", 8443)));
        assert!(parse(b"CONNECT a.test HTTP/1.1\r\n\r\n").is_err());
        assert!(parse(b"CONNECT a.test:0 HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn an_absolute_form_request_is_rewritten_to_origin_form_without_proxy_headers() {
        let r = parse(
            b"GET http://allowed.test:8080/a/b?c=d HTTP/1.1\r\nHost: allowed.test:8080\r\nProxy-Connection: Keep-Alive\r\nProxy-Authorization: Basic x\r\nAccept: */*\r\n\r\n",
        )
        .unwrap();
        let Request::Forward { dest: d, head } = r else {
            panic!("not a forward")
        };
        assert_eq!(d, dest("allowed.test", 8080));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET /a/b?c=d HTTP/1.1\r\nHost: allowed.test:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let Request::Forward { dest: d, head } =
            parse(b"GET http://a.test HTTP/1.0\r\n\r\n").unwrap()
        else {
            panic!()
        };
        assert_eq!(d, dest("a.test", 80));
        assert!(head.starts_with(b"GET / HTTP/1.0\r\n"));
    }

    #[test]
    fn other_schemes_origin_form_credentials_and_odd_request_lines_are_refused() {
        assert_eq!(
            parse(b"GET https://a.test/ HTTP/1.1\r\n\r\n"),
            Err(RequestError::Scheme)
        );
        for bad in [
            &b"GET /path HTTP/1.1\r\n\r\n"[..],
            b"GET http://u:p@a.test/ HTTP/1.1\r\n\r\n",
            b"GET http://a.test/ HTTP/2\r\n\r\n",
            b"get http://a.test/ HTTP/1.1\r\n\r\n",
            b"GET  http://a.test/ HTTP/1.1\r\n\r\n",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(RequestError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_head_is_bounded_and_what_follows_it_is_kept() {
        let mut input: &[u8] = b"CONNECT a.test:443 HTTP/1.1\r\n\r\nCLIENTHELLO";
        let (head, rest) = read_head(&mut input).unwrap();
        assert!(head.ends_with(b"\r\n\r\n"));
        assert_eq!(rest, b"CLIENTHELLO");
        let big = format!(
            "GET http://a.test/ HTTP/1.1\r\nX: {}\r\n\r\n",
            "y".repeat(MAX_HEAD)
        );
        assert_eq!(
            read_head(&mut big.as_bytes()).unwrap_err(),
            RequestError::TooLarge
        );
        let mut cut: &[u8] = b"GET http://a.test/ HTTP/1.1\r\n";
        assert_eq!(read_head(&mut cut).unwrap_err(), RequestError::Closed);
        let many = format!(
            "GET http://a.test/ HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(parse(many.as_bytes()).unwrap_err(), RequestError::TooLarge);
    }
}
