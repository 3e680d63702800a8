//! Copies of every audit event kept elsewhere, so that a cut or replaced log is caught by
//! comparing it with a copy its tamperer could not change (`cordon audit verify --against`):
//! syslog (journald reads the same socket), and an append-only file (`chattr +a` it, or
//! put it on another machine's mount).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// Where copies go, as configured (`[audit] forward`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A syslog datagram socket (`/dev/log` by default; journald listens there too).
    Syslog(PathBuf),
    /// A file appended to.
    File(PathBuf),
}

impl Target {
    /// `syslog` or `file:PATH`; `socket` is where syslog listens.
    pub fn parse(s: &str, socket: &std::path::Path) -> Result<Target, super::AuditError> {
        match s {
            "syslog" | "journald" => Ok(Target::Syslog(socket.to_path_buf())),
            _ => match s.strip_prefix("file:") {
                Some(p) if p.starts_with('/') => Ok(Target::File(PathBuf::from(p))),
                _ => Err(super::AuditError::Target(s.to_string())),
            },
        }
    }
}

/// One open copy.
pub struct Sink {
    target: Target,
    open: Mutex<Option<Open>>,
    /// When a failure was last said (at most once a minute per sink).
    said: Mutex<Option<Instant>>,
}

enum Open {
    Syslog(UnixDatagram),
    File(std::fs::File),
}

impl Sink {
    pub fn new(target: Target) -> Sink {
        Sink {
            target,
            open: Mutex::new(None),
            said: Mutex::new(None),
        }
    }

    fn connect(&self) -> std::io::Result<Open> {
        match &self.target {
            Target::Syslog(path) => {
                let s = UnixDatagram::unbound()?;
                s.connect(path)?;
                Ok(Open::Syslog(s))
            }
            Target::File(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)?;
                Ok(Open::File(f))
            }
        }
    }

    /// Sends one sealed line (with its newline). A failure is said on stderr (at most once
    /// a minute) and the copy is retried with the next event: the log itself is written
    /// already, and a sink must never stop the host.
    pub fn send(&self, line: &str) {
        if let Err(e) = self.try_send(line) {
            let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
            if said.is_none_or(|t| t.elapsed().as_secs() >= 60) {
                *said = Some(Instant::now());
                eprintln!("cordon: audit: forwarding to {:?} failed ({e}); events are still written to the log", self.target);
            }
        }
    }

    /// Sends one line, saying how it went (the sink reconnects at the next line after a
    /// failure). Alerts use it too (`cordon alert test` reports the outcome).
    pub fn try_send(&self, line: &str) -> std::io::Result<()> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let result = (|| -> std::io::Result<()> {
            if open.is_none() {
                *open = Some(self.connect()?);
            }
            match open.as_mut() {
                // RFC 3164 framing: facility authpriv (10), severity info (6).
                Some(Open::Syslog(s)) => s
                    .send(
                        format!("<86>cordon[{}]: {}", std::process::id(), line.trim_end())
                            .as_bytes(),
                    )
                    .map(drop),
                Some(Open::File(f)) => f.write_all(line.as_bytes()),
                None => Ok(()),
            }
        })();
        if result.is_err() {
            *open = None;
        }
        result
    }
}
