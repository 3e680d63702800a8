//! One HTTP/1.1 exchange over a fresh connection (plain, or TLS with rustls and ring), in
//! blocking calls: the uploader runs on a thread of its own and the recording reader is
//! synchronous, so neither needs a runtime. Bodies are bounded.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// The largest response body believed (a part, an index or a listing).
pub const BODY_MAX: usize = 256 << 20;

pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Where requests go.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// Some: the connection speaks TLS with these roots.
    pub tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    pub timeout: Duration,
}

/// Sends `head` (request line and headers, without the blank line) and `body`; reads the
/// answer to its end (the request asks the server to close).
pub fn exchange(t: &Target, head: &str, body: &[u8]) -> std::io::Result<Response> {
    let addr = (t.host.as_str(), t.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{} has no address", t.host)))?;
    let tcp = TcpStream::connect_timeout(&addr, t.timeout)?;
    tcp.set_read_timeout(Some(t.timeout))?;
    tcp.set_write_timeout(Some(t.timeout))?;
    let _ = tcp.set_nodelay(true);
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    let raw = match &t.tls {
        None => talk(tcp, &request)?,
        Some(config) => {
            let name = rustls_pki_types::ServerName::try_from(t.host.clone())
                .map_err(|e| std::io::Error::other(format!("{}: {e}", t.host)))?;
            let conn = tokio_rustls::rustls::ClientConnection::new(config.clone(), name)
                .map_err(std::io::Error::other)?;
            talk(tokio_rustls::rustls::StreamOwned::new(conn, tcp), &request)?
        }
    };
    parse(&raw)
}

fn talk(mut s: impl Read + Write, request: &[u8]) -> std::io::Result<Vec<u8>> {
    s.write_all(request)?;
    s.flush()?;
    let mut raw = Vec::new();
    let limit = (BODY_MAX + (64 << 10)) as u64;
    match s.take(limit + 1).read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify: what came is what was sent.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    if raw.len() as u64 > limit {
        return Err(std::io::Error::other(
            "the answer is larger than cordon reads",
        ));
    }
    Ok(raw)
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// The status and body of a whole HTTP/1.1 response (Content-Length, chunked, or to the end).
fn parse(raw: &[u8]) -> std::io::Result<Response> {
    let end = memchr::memmem::find(raw, b"\r\n\r\n").ok_or_else(|| bad("no HTTP answer"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("an HTTP head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no HTTP status"))?;
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            length = v.parse::<usize>().ok();
        } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or_else(|| bad("the answer ended before its length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = memchr::memmem::find(data, b"\r\n").ok_or_else(|| bad("a chunk cut short"))?;
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .ok_or_else(|| bad("a bad chunk size"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or_else(|| bad("a chunk cut short"))?);
        data = data
            .get(size + 2..)
            .ok_or_else(|| bad("a chunk cut short"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_by_length_chunked_or_to_the_end() {
        let r = parse(b"HTTP/1.1 206 Partial\r\nContent-Length: 3\r\n\r\nabcdef").unwrap();
        assert_eq!((r.status, &r.body[..]), (206, &b"abc"[..]));
        let r = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!(r.body, b"abcde");
        let r = parse(b"HTTP/1.0 404 Not Found\r\n\r\nnope").unwrap();
        assert_eq!((r.status, &r.body[..]), (404, &b"nope"[..]));
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab").is_err());
    }
}
