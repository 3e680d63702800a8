//! The proxy itself, run by the supervisor in the host's network namespace: accepts on the
//! listeners made inside the session's, reads an HTTP or SOCKS5 request, applies the rules,
//! resolves and connects, then copies bytes both ways. Each attempt becomes an
//! [`Attempt`], written as a JSON line to the events descriptor and, when refused, noted
//! on stderr (bounded).
//!
//! A thread per connection and one more for its way back ([`super::relay`]), taken from
//! threads kept waiting ([`super::workers`]); at most [`Limits::connections`] connections
//! at once; every wait is bounded (connect timeout, idle timeout, request head size).

use super::ask::Asker;
use super::handoff::Listeners;
use super::http::{self, RequestError};
use super::relay::{relay, Outcome};
use super::resolve::{ResolveError, Resolver};
use super::rules::{Destination, Rules, Verdict};
use super::socks::{self, Reply};
use super::workers::Workers;
use serde::Serialize;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The proxy's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once, both proxies together.
    pub connections: usize,
    /// Longest wait for the destination to accept.
    pub connect_timeout: Duration,
    /// Longest silence in both directions before the connection is closed.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 128,
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// How long a thread waits for the next connection before it ends: long enough to carry
/// a burst of requests (a package install, an agent's turn) on the same threads.
const WORKER_KEEP: Duration = Duration::from_secs(30);

/// Most refusals noted on stderr per session (one per destination); the rest go to the
/// events only.
pub const MAX_NOTES: usize = 20;

/// What the supervisor runs the proxy with, besides the listeners.
pub struct Settings {
    /// The profile's rules.
    pub rules: Rules,
    /// Names to addresses.
    pub resolver: Resolver,
    /// Bounds.
    pub limits: Limits,
    /// Where each attempt is written as a JSON line (`cordon sandbox --events-fd`).
    pub events: Option<std::fs::File>,
    /// Whether refusals are noted on stderr (standalone `cordon sandbox`).
    pub notes: bool,
    /// Ask mode: where the owner's answers come from, and how long a question waits.
    /// None: destinations no rule names are refused.
    pub ask: Option<Ask>,
}

/// Ask mode's settings (`[network] unknown = "ask"` with a host to ask).
pub struct Ask {
    /// The answers, one JSON line each (`cordon sandbox --answers-fd`).
    pub answers: std::fs::File,
    /// How long a question waits.
    pub wait: Duration,
}

/// One connection attempt, as audited.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Attempt {
    /// `connect` for the attempt's record (written when it ends); `open` for the moment an
    /// allowed connection is made (the same fields, bytes and duration not yet known).
    pub event: &'static str,
    /// When it was asked for, in milliseconds since the epoch.
    pub time_ms: u64,
    /// `http` (a forwarded request), `connect` (an HTTP tunnel) or `socks5`.
    pub protocol: &'static str,
    /// The host as the client named it (normalized).
    pub host: String,
    /// The port.
    pub port: u16,
    /// Whether the rules allowed it.
    pub allowed: bool,
    /// The verdict in words (`allow api.anthropic.com`, `no rule names it`).
    pub verdict: String,
    /// The rule that decided, as written; none for a default refusal.
    pub rule: Option<String>,
    /// The address connected to, when one was.
    pub address: Option<String>,
    /// Bytes from the session to the destination.
    pub bytes_up: u64,
    /// Bytes from the destination to the session.
    pub bytes_down: u64,
    /// From the request to the end of the connection.
    pub duration_ms: u64,
    /// What failed after an allowed verdict (resolution, connect, idle timeout).
    pub error: Option<String>,
}

impl Attempt {
    fn new(protocol: &'static str, dest: &Destination, verdict: &Verdict) -> Attempt {
        Attempt {
            event: "connect",
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            protocol,
            host: dest.host.to_string(),
            port: dest.port,
            allowed: verdict.allowed(),
            verdict: verdict.to_string(),
            rule: verdict.rule().map(|r| r.to_string()),
            address: None,
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            error: None,
        }
    }
}

/// The one-line note for a refused attempt.
pub fn refusal_note(dest: &Destination, verdict: &Verdict) -> String {
    let key = match verdict {
        Verdict::Denied(_) => "[network] deny",
        _ => "[network] allow",
    };
    // The destination is the session's string: escaped before a terminal sees it, even
    // where the rules would refuse the name for its characters.
    format!(
        "cordon: connection to {} refused: {} ({key})",
        crate::notice::escape(&dest.to_string()),
        crate::notice::escape(&verdict.to_string())
    )
}

struct Shared {
    rules: Rules,
    resolver: Resolver,
    limits: Limits,
    events: Mutex<Option<std::fs::File>>,
    notes: bool,
    asker: Option<Arc<Asker>>,
    /// The destinations already noted: a program that retries is noted once.
    noted: Mutex<Vec<String>>,
    active: AtomicUsize,
    stopping: AtomicBool,
    workers: Workers,
}

impl Shared {
    /// Writes one JSON line to the events descriptor.
    fn emit(&self, event: &impl Serialize) {
        if let Ok(mut guard) = self.events.lock() {
            if let Some(f) = guard.as_mut() {
                if let Ok(mut line) = serde_json::to_vec(event) {
                    line.push(b'\n');
                    // A reader that went away loses the events, not the session.
                    if f.write_all(&line).is_err() {
                        *guard = None;
                    }
                }
            }
        }
    }

    /// The verdict on `dest`: the rules', or, for a name no rule names in ask mode, the
    /// owner's answer (this waits, bounded).
    fn decide(&self, protocol: &'static str, dest: &Destination) -> Verdict {
        match (self.rules.decide(dest), &self.asker) {
            (Verdict::NoRule, Some(asker)) => {
                asker.decide(protocol, dest, |q| self.emit(q), |e| self.emit(e))
            }
            (v, _) => v,
        }
    }

    /// Announces that an allowed connection is made (the timeline shows it when it
    /// happens; the attempt's record follows when it ends).
    fn opened(&self, a: &Attempt) {
        self.emit(&Attempt {
            event: "open",
            ..a.clone()
        });
    }

    fn record(&self, a: &Attempt, dest: &Destination, verdict: &Verdict) {
        self.emit(a);
        if self.notes && !a.allowed {
            let key = dest.to_string();
            let count = match self.noted.lock() {
                Ok(mut noted) if noted.len() < MAX_NOTES && !noted.contains(&key) => {
                    noted.push(key);
                    noted.len()
                }
                _ => return,
            };
            // A terminal in raw mode (a full-screen program) needs the carriage return.
            // SAFETY: isatty on a plain integer.
            let eol = if unsafe { libc::isatty(2) } == 1 {
                "\r\n"
            } else {
                "\n"
            };
            let mut note = format!("{}{eol}", refusal_note(dest, verdict));
            if count == MAX_NOTES {
                note.push_str(&format!(
                    "cordon: further refused connections are not shown here{eol}"
                ));
            }
            // One write, so that the line is not interleaved with the session's own output.
            let _ = io::stderr().lock().write_all(note.as_bytes());
        }
    }
}

/// The running proxy. Dropping it stops accepting; connections already open run on until
/// either side closes (the session's side closes when the sandbox ends).
pub struct Proxy {
    shared: Arc<Shared>,
    listeners: Vec<Arc<TcpListener>>,
}

impl Proxy {
    /// Starts one accepting thread per listener.
    pub fn start(settings: Settings, l: Listeners) -> io::Result<Proxy> {
        let asker = match settings.ask {
            Some(ask) => {
                let asker = Asker::new(ask.wait);
                asker.listen(ask.answers)?;
                Some(asker)
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            asker,
            rules: settings.rules,
            resolver: settings.resolver,
            limits: settings.limits,
            events: Mutex::new(settings.events),
            notes: settings.notes,
            noted: Mutex::new(Vec::new()),
            active: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            workers: Workers::new("egress-conn", WORKER_KEEP),
        });
        let http = Arc::new(l.http);
        let socks = Arc::new(l.socks);
        for (listener, kind) in [(http.clone(), Kind::Http), (socks.clone(), Kind::Socks)] {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("egress-{kind:?}").to_lowercase())
                .spawn(move || accept_loop(&shared, &listener, kind))?;
        }
        Ok(Proxy {
            shared,
            listeners: vec![http, socks],
        })
    }
}

impl Proxy {
    /// Stops accepting, then waits up to `grace` for open connections to end (so that
    /// their attempts are recorded).
    pub fn stop_and_drain(self, grace: Duration) {
        let shared = self.shared.clone();
        drop(self);
        let deadline = Instant::now() + grace;
        while shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for l in &self.listeners {
            // SAFETY: shutdown on a socket the Arc keeps open; it wakes a blocked accept.
            unsafe { libc::shutdown(l.as_raw_fd(), libc::SHUT_RDWR) };
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Http,
    Socks,
}

/// Decrements the count of open connections when a connection's thread ends.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener, kind: Kind) {
    loop {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(_) if shared.stopping.load(Ordering::SeqCst) => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // Out of descriptors or memory: wait rather than spin.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.limits.connections {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            if let Kind::Http = kind {
                let _ = (&client).write_all(&http::response(
                    503,
                    "Service Unavailable",
                    "cordon: too many connections through the proxy at once\n",
                ));
            }
            continue;
        }
        let slot = Slot(shared.clone());
        let started = shared.workers.run(move || {
            let shared = slot.0.clone();
            let _ = client.set_nodelay(true);
            let _ = client.set_read_timeout(Some(shared.limits.idle_timeout));
            let _ = client.set_write_timeout(Some(shared.limits.idle_timeout));
            match kind {
                Kind::Http => serve_http(&shared, client),
                Kind::Socks => serve_socks(&shared, client),
            }
            drop(slot);
        });
        // A job that could not start dropped its slot and its client with it.
        drop(started);
    }
}

fn serve_http(shared: &Shared, mut client: TcpStream) {
    let started = Instant::now();
    let answer = |c: &mut TcpStream, status: u16, reason: &str, body: &str| {
        let _ = c.write_all(&http::response(status, reason, body));
    };
    let (head, rest) = match http::read_head(&mut client) {
        Ok(h) => h,
        Err(RequestError::Closed) => return,
        Err(e @ RequestError::TooLarge) => {
            return answer(
                &mut client,
                431,
                "Request Header Fields Too Large",
                &format!("cordon: {e}\n"),
            )
        }
        Err(e) => return answer(&mut client, 400, "Bad Request", &format!("cordon: {e}\n")),
    };
    let (dest, protocol, forward) = match http::parse(&head) {
        Ok(http::Request::Connect(d)) => (d, "connect", None),
        Ok(http::Request::Forward { dest, head }) => (dest, "http", Some(head)),
        Err(e) => return answer(&mut client, 400, "Bad Request", &format!("cordon: {e}\n")),
    };
    let verdict = shared.decide(protocol, &dest);
    let mut attempt = Attempt::new(protocol, &dest, &verdict);
    if !verdict.allowed() {
        // Recorded (and noted) before the client hears of it, so the note comes first.
        attempt.duration_ms = started.elapsed().as_millis() as u64;
        shared.record(&attempt, &dest, &verdict);
        return answer(
            &mut client,
            403,
            "Forbidden",
            &format!("{}\n", refusal_note(&dest, &verdict)),
        );
    }
    let upstream = match connect(shared, &dest) {
        Ok((s, addr)) => {
            attempt.address = Some(addr.to_string());
            shared.opened(&attempt);
            s
        }
        Err(e) => {
            let (status, reason) = match e {
                ConnectError::TimedOut => (504, "Gateway Timeout"),
                _ => (502, "Bad Gateway"),
            };
            answer(
                &mut client,
                status,
                reason,
                &format!("cordon: connection to {dest}: {e}\n"),
            );
            attempt.error = Some(e.to_string());
            attempt.duration_ms = started.elapsed().as_millis() as u64;
            return shared.record(&attempt, &dest, &verdict);
        }
    };
    let first = match &forward {
        Some(h) => (&upstream).write_all(h).map(|_| h.len()),
        None => client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .map(|_| 0),
    };
    let sent = first.and_then(|n| (&upstream).write_all(&rest).map(|_| n + rest.len()));
    match sent {
        Ok(n) => {
            let Outcome { up, down, error } = relay(
                client,
                upstream,
                shared.limits.idle_timeout,
                &shared.workers,
            );
            attempt.bytes_up = up + n as u64;
            attempt.bytes_down = down;
            attempt.error = error;
        }
        Err(e) => attempt.error = Some(e.to_string()),
    }
    attempt.duration_ms = started.elapsed().as_millis() as u64;
    shared.record(&attempt, &dest, &verdict);
}

fn serve_socks(shared: &Shared, mut client: TcpStream) {
    let started = Instant::now();
    let dest = match socks::handshake(&mut client) {
        Ok(d) => d,
        Err(e) => {
            if let Some(r) = e.reply {
                let _ = client.write_all(&socks::reply(r));
            }
            return;
        }
    };
    let verdict = shared.decide("socks5", &dest);
    let mut attempt = Attempt::new("socks5", &dest, &verdict);
    if !verdict.allowed() {
        attempt.duration_ms = started.elapsed().as_millis() as u64;
        shared.record(&attempt, &dest, &verdict);
        let _ = client.write_all(&socks::reply(Reply::NotAllowed));
        return;
    }
    let upstream = match connect(shared, &dest) {
        Ok((s, addr)) => {
            attempt.address = Some(addr.to_string());
            shared.opened(&attempt);
            s
        }
        Err(e) => {
            let _ = client.write_all(&socks::reply(e.reply()));
            attempt.error = Some(e.to_string());
            attempt.duration_ms = started.elapsed().as_millis() as u64;
            return shared.record(&attempt, &dest, &verdict);
        }
    };
    if let Err(e) = client.write_all(&socks::reply(Reply::Succeeded)) {
        attempt.error = Some(e.to_string());
    } else {
        let Outcome { up, down, error } = relay(
            client,
            upstream,
            shared.limits.idle_timeout,
            &shared.workers,
        );
        attempt.bytes_up = up;
        attempt.bytes_down = down;
        attempt.error = error;
    }
    attempt.duration_ms = started.elapsed().as_millis() as u64;
    shared.record(&attempt, &dest, &verdict);
}

/// Why no connection to an allowed destination was made.
#[derive(Debug)]
enum ConnectError {
    Resolve(ResolveError),
    TimedOut,
    Refused,
    Other(io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Resolve(e) => write!(f, "{e}"),
            ConnectError::TimedOut => write!(f, "the connection timed out"),
            ConnectError::Refused => write!(f, "the destination refused the connection"),
            ConnectError::Other(e) => write!(f, "{e}"),
        }
    }
}

impl ConnectError {
    fn reply(&self) -> Reply {
        match self {
            ConnectError::Resolve(_) => Reply::HostUnreachable,
            ConnectError::TimedOut => Reply::TimedOut,
            ConnectError::Refused => Reply::ConnectionRefused,
            ConnectError::Other(_) => Reply::GeneralFailure,
        }
    }
}

fn connect(shared: &Shared, dest: &Destination) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let addrs = shared
        .resolver
        .resolve(&dest.host, dest.port)
        .map_err(ConnectError::Resolve)?;
    let mut last = ConnectError::Other(io::Error::other("no address to try"));
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, shared.limits.connect_timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let _ = s.set_write_timeout(Some(shared.limits.idle_timeout));
                return Ok((s, addr));
            }
            Err(e) => {
                last = match e.kind() {
                    io::ErrorKind::TimedOut => ConnectError::TimedOut,
                    io::ErrorKind::ConnectionRefused => ConnectError::Refused,
                    _ => ConnectError::Other(e),
                }
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Read};
    use std::net::Shutdown;

    fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut c = c;
                    let mut r = c.try_clone().unwrap();
                    let _ = io::copy(&mut r, &mut c);
                });
            }
        });
        addr
    }

    /// A proxy on ephemeral loopback ports, with events read back through a pipe.
    fn proxy(allow: &[&str], resolve: &str) -> (Proxy, SocketAddr, SocketAddr, std::fs::File) {
        proxy_with(allow, resolve, Limits::default())
    }

    fn proxy_with(
        allow: &[&str],
        resolve: &str,
        limits: Limits,
    ) -> (Proxy, SocketAddr, SocketAddr, std::fs::File) {
        let l = Listeners {
            http: TcpListener::bind("127.0.0.1:0").unwrap(),
            socks: TcpListener::bind("127.0.0.1:0").unwrap(),
        };
        let (h, s) = (l.http.local_addr().unwrap(), l.socks.local_addr().unwrap());
        let mut fds = [0; 2];
        // SAFETY: a two-int array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        use std::os::fd::FromRawFd;
        // SAFETY: pipe2 returned them.
        let (r, w) = unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        };
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        let p = Proxy::start(
            Settings {
                rules: Rules::parse(&allow, &[]).unwrap(),
                resolver: Resolver::with_overrides(resolve).unwrap(),
                limits,
                events: Some(w),
                notes: false,
                ask: None,
            },
            l,
        )
        .unwrap();
        (p, h, s, r)
    }

    fn next_event(r: &mut io::BufReader<std::fs::File>) -> serde_json::Value {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    #[test]
    fn an_allowed_connect_relays_bytes_both_ways_and_is_recorded_with_its_rule() {
        let echo = echo_server();
        let (_p, http, _, events) = proxy(&["echo.test:*"], "echo.test=127.0.0.1");
        let mut events = io::BufReader::new(events);
        let mut c = TcpStream::connect(http).unwrap();
        write!(
            c,
            "CONNECT echo.test:{} HTTP/1.1\r\nHost: x\r\n\r\n",
            echo.port()
        )
        .unwrap();
        let mut reply = [0u8; 39];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"HTTP/1.1 200 Connection established\r\n\r\n");
        c.write_all(b"hello through the tunnel").unwrap();
        let mut back = [0u8; 24];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello through the tunnel");
        c.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        let open = next_event(&mut events);
        assert_eq!(open["event"], "open", "announced when made: {open}");
        assert_eq!(open["host"], "echo.test");
        assert_eq!(open["bytes_up"], 0);
        let e = next_event(&mut events);
        assert_eq!(e["event"], "connect", "recorded when it ends: {e}");
        assert_eq!(e["protocol"], "connect");
        assert_eq!(e["host"], "echo.test");
        assert_eq!(e["allowed"], true);
        assert_eq!(e["rule"], "echo.test:*");
        assert_eq!(e["bytes_up"], 24);
        assert_eq!(e["bytes_down"], 24);
    }

    #[test]
    fn a_tunnel_silent_both_ways_for_the_idle_timeout_is_closed_and_its_event_says_so() {
        let echo = echo_server();
        let limits = Limits {
            idle_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let (_p, http, _, events) = proxy_with(&["echo.test:*"], "echo.test=127.0.0.1", limits);
        let mut events = io::BufReader::new(events);
        let mut c = TcpStream::connect(http).unwrap();
        write!(c, "CONNECT echo.test:{} HTTP/1.1\r\n\r\n", echo.port()).unwrap();
        let mut reply = [0u8; 39];
        c.read_exact(&mut reply).unwrap();
        c.write_all(b"ping").unwrap();
        let mut back = [0u8; 4];
        c.read_exact(&mut back).unwrap();
        // Then neither side says anything: the proxy closes the tunnel.
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        assert_eq!(next_event(&mut events)["event"], "open");
        let e = next_event(&mut events);
        assert_eq!(e["event"], "connect", "{e}");
        assert_eq!(e["error"], "idle for 1 s");
        assert_eq!(e["bytes_up"], 4);
        assert_eq!(e["bytes_down"], 4);
        assert!(e["duration_ms"].as_u64().unwrap() >= 1000, "{e}");
    }

    #[test]
    fn a_refused_socks_request_gets_reply_2_and_an_event_without_a_rule() {
        let (_p, _, socks, events) = proxy(&["echo.test:*"], "");
        let mut events = io::BufReader::new(events);
        let mut c = TcpStream::connect(socks).unwrap();
        let mut req = vec![5, 1, 0, 5, 1, 0, 3, 8];
        req.extend_from_slice(b"evil.com");
        req.extend_from_slice(&443u16.to_be_bytes());
        c.write_all(&req).unwrap();
        let mut out = [0u8; 12];
        c.read_exact(&mut out).unwrap();
        assert_eq!(out[..2], [5, 0]);
        assert_eq!(out[3], Reply::NotAllowed as u8);
        let e = next_event(&mut events);
        assert_eq!(e["event"], "connect", "a refusal has its record only: {e}");
        assert_eq!(e["allowed"], false);
        assert_eq!(e["verdict"], "no rule names it");
        assert_eq!(e["rule"], serde_json::Value::Null);
    }

    #[test]
    fn a_refusal_note_names_the_destination_the_reason_and_the_key() {
        let dest = Destination {
            host: super::super::Host::parse("evil.com").unwrap(),
            port: 443,
        };
        assert_eq!(
            refusal_note(&dest, &Verdict::NoRule),
            "cordon: connection to evil.com:443 refused: no rule names it ([network] allow)"
        );
        // Even a name the parser would refuse never reaches the terminal raw.
        let raw = Destination {
            host: super::super::Host::Name("x\x1b]52;c;AAAA\x07.com".into()),
            port: 443,
        };
        let note = refusal_note(&raw, &Verdict::NoRule);
        assert!(!note.contains('\x1b') && !note.contains('\x07'), "{note}");
        assert!(note.contains("\\x1b"), "{note}");
    }
}
