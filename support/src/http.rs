//! A small HTTP/1.1 client for the API, with nothing between the caller and the socket:
//! requests on kept-alive connections, timed by a benchmark or checked by a test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One request on a kept-alive connection, with the bearer `token`: the status and the body.
pub fn exchange(
    r: &mut BufReader<TcpStream>,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Vec<u8>) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    r.get_mut().write_all(req.as_bytes()).expect("send");
    let mut line = String::new();
    r.read_line(&mut line).expect("status");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut out = vec![0u8; len];
    r.read_exact(&mut out).expect("body");
    (status, out)
}

/// One request on a new connection to the API on `port`; it must succeed. The body.
pub fn request(port: u16, token: &str, method: &str, path: &str, body: &str) -> Vec<u8> {
    let mut r = BufReader::new(TcpStream::connect(("127.0.0.1", port)).expect("connect"));
    let (status, out) = exchange(&mut r, token, method, path, body);
    assert!(
        status < 300,
        "{method} {path}: {status} {}",
        String::from_utf8_lossy(&out)
    );
    out
}
