//! A small HTTP/1.1 client for the API, with nothing between the caller and the socket:
//! requests on kept-alive connections, timed by a benchmark or checked by a test; and
//! [`curl`], one request as a reader of docs/api.md would send it.

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

/// An answer as `curl -i` gave it: the status, the header lines (lowercased) and the body.
pub struct Reply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Reply {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One request to the API on `port` with curl, as a reader of docs/api.md would send it:
/// `token` as a bearer token, `body` as JSON. Any status is answered (a refusal is a reply).
pub fn curl(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> Reply {
    let mut c = std::process::Command::new("curl");
    c.args([
        "-s",
        "-i",
        "-X",
        method,
        &format!("http://127.0.0.1:{port}{path}"),
    ]);
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if let Some(b) = body {
        c.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &b.to_string(),
        ]);
    }
    let out = c.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Reply {
        status: head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        headers: head.to_lowercase(),
        body: body.to_string(),
    }
}
