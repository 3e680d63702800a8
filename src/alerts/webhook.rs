//! The webhook: each alert POSTed as JSON to `[alerts.webhook] url` (http or https), signed,
//! retried with exponential backoff on its own thread, never on the caller's.
//!
//! The signature: `X-Cordon-Timestamp: UNIX_SECONDS` and
//! `X-Cordon-Signature: sha256=HEX`, where HEX is HMAC-SHA256, keyed with the secret file's
//! bytes (surrounding whitespace removed), over `TIMESTAMP.BODY` (the timestamp header's value,
//! a full stop, the body's bytes). A receiver recomputes it, compares in constant time, and
//! refuses a timestamp older than a few minutes (a replay); docs/security.md shows how.
//!
//! Bounds: at most [`QUEUE`] alerts wait and [`IN_FLIGHT`] are being delivered; past that a
//! new alert is dropped (counted, said on stderr) rather than held in memory. Each attempt has
//! `timeout`; the waits between attempts double from `backoff`, up to five minutes.

use super::config::WebhookConfig;
use hmac::{Hmac, Mac};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Alerts waiting for the webhook at most.
pub const QUEUE: usize = 256;
/// Alerts being delivered (or retried) at once at most.
pub const IN_FLIGHT: usize = 16;

/// Deliveries since the host started, for /metrics.
pub static DELIVERED: AtomicU64 = AtomicU64::new(0);
pub static FAILED: AtomicU64 = AtomicU64::new(0);
pub static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Where to POST: scheme, host, port, path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path and query, `/` at least.
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("\"{url}\" is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("\"{url}\" is neither http:// nor https://")),
        };
        let auth = uri
            .authority()
            .ok_or_else(|| format!("\"{url}\" names no host"))?;
        if auth.as_str().contains('@') {
            return Err(format!(
                "\"{url}\" holds credentials; the webhook is authenticated by its signature"
            ));
        }
        let host = auth.host().trim_matches(['[', ']']).to_string();
        if host.is_empty() {
            return Err(format!("\"{url}\" names no host"));
        }
        Ok(Target {
            tls,
            port: auth.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            host,
            path: uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into()),
        })
    }
}

/// HMAC-SHA256 over `TIMESTAMP.BODY`, hex.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    crate::secrets::hex(&mac.finalize().into_bytes())
}

/// The secret as the file holds it (surrounding whitespace removed); refused when empty, or
/// when others may read it.
pub fn read_secret(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("alerts.webhook.secret_file {}: {e}", path.display()))?;
    if meta.mode() & 0o007 != 0 {
        return Err(format!(
            "alerts.webhook.secret_file {} may be read by anyone: chmod 600 it",
            path.display()
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| format!("alerts.webhook.secret_file {}: {e}", path.display()))?;
    let s = bytes.trim_ascii().to_vec();
    if s.len() < 16 {
        return Err(format!(
            "alerts.webhook.secret_file {} holds fewer than 16 bytes: use a long random secret",
            path.display()
        ));
    }
    Ok(s)
}

struct Job {
    body: String,
    reply: Option<std::sync::mpsc::Sender<Result<u32, String>>>,
}

/// The webhook's sender: a thread with its own runtime, fed through a bounded queue.
pub struct Webhook {
    tx: tokio::sync::mpsc::Sender<Job>,
}

impl Webhook {
    pub fn start(config: WebhookConfig) -> std::io::Result<Webhook> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(QUEUE);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let config = Arc::new(config);
        std::thread::Builder::new()
            .name("cordon-webhook".into())
            .spawn(move || {
                rt.block_on(async move {
                    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
                    while let Some(job) = rx.recv().await {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let config = config.clone();
                        tokio::spawn(async move {
                            let result = deliver(&config, &job.body).await;
                            match &result {
                                Ok(_) => DELIVERED.fetch_add(1, Ordering::Relaxed),
                                Err(e) => {
                                    eprintln!("cordon: alert webhook {}: {e}", config.url);
                                    FAILED.fetch_add(1, Ordering::Relaxed)
                                }
                            };
                            if let Some(reply) = job.reply {
                                let _ = reply.send(result);
                            }
                            drop(permit);
                        });
                    }
                })
            })?;
        Ok(Webhook { tx })
    }

    /// Queues an alert's JSON; false (counted) when the queue is full. Never waits.
    pub fn send(&self, body: String) -> bool {
        let ok = self.tx.try_send(Job { body, reply: None }).is_ok();
        if !ok {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            eprintln!("cordon: alert webhook: {QUEUE} alerts wait already; this one is dropped");
        }
        ok
    }

    /// Queues an alert and waits (up to `wait`) for its outcome: the attempts it took, or
    /// why it was not delivered. For `cordon alert test`; never call it from a login path.
    pub fn send_and_wait(&self, body: String, wait: Duration) -> Result<u32, String> {
        let (reply, answer) = std::sync::mpsc::channel();
        self.tx
            .try_send(Job {
                body,
                reply: Some(reply),
            })
            .map_err(|_| "the webhook's queue is full".to_string())?;
        answer
            .recv_timeout(wait)
            .map_err(|_| format!("no outcome within {} s", wait.as_secs()))?
    }
}

/// Every attempt, with backoff between them.
async fn deliver(config: &WebhookConfig, body: &str) -> Result<u32, String> {
    let target = Target::parse(&config.url)?;
    let mut last = String::new();
    let mut wait = config.backoff;
    for attempt in 1..=config.attempts {
        let once = async {
            let secret = read_secret(&config.secret_file)?;
            let ts = crate::audit::unix_seconds().to_string();
            let signature = sign(&secret, &ts, body.as_bytes());
            post(config, &target, body, &ts, &signature).await
        };
        match tokio::time::timeout(config.timeout, once).await {
            Ok(Ok(())) => return Ok(attempt),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("no answer within {} s", config.timeout.as_secs()),
        }
        if attempt < config.attempts {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(300));
        }
    }
    Err(format!(
        "not delivered after {} attempts; the last: {last}",
        config.attempts
    ))
}

/// One POST; Ok for a 2xx answer.
async fn post(
    config: &WebhookConfig,
    target: &Target,
    body: &str,
    ts: &str,
    signature: &str,
) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connecting to {}:{}: {e}", target.host, target.port))?;
    let host_header = if target.host.contains(':') {
        format!("[{}]:{}", target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let req = hyper::Request::post(target.path.as_str())
        .header(hyper::header::HOST, host_header)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "cordon-alerts")
        .header("x-cordon-timestamp", ts)
        .header("x-cordon-signature", format!("sha256={signature}"))
        .body(body.to_string())
        .map_err(|e| format!("building the request: {e}"))?;
    let status = if target.tls {
        let connector = tokio_rustls::TlsConnector::from(crate::tls_roots::client_config(
            config.ca_file.as_deref(),
            "[alerts.webhook] ca_file",
        )?);
        let name = rustls_pki_types::ServerName::try_from(target.host.clone())
            .map_err(|e| format!("\"{}\" is not a TLS server name: {e}", target.host))?;
        let tls = connector
            .connect(name, stream)
            .await
            .map_err(|e| format!("TLS with {}: {e}", target.host))?;
        exchange(hyper_util::rt::TokioIo::new(tls), req).await?
    } else {
        exchange(hyper_util::rt::TokioIo::new(stream), req).await?
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {status}"))
    }
}

async fn exchange<T>(io: T, req: hyper::Request<String>) -> Result<hyper::StatusCode, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(conn);
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| format!("HTTP: {e}"));
    driver.abort();
    Ok(res?.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_into_scheme_host_port_and_path() {
        let t = Target::parse("https://hooks.example.com/a/b?x=1").unwrap();
        assert_eq!(
            t,
            Target {
                tls: true,
                host: "hooks.example.com".into(),
                port: 443,
                path: "/a/b?x=1".into()
            }
        );
        let t = Target::parse("http://[::1]:8080").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 8080, "/")
        );
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("http://user:pw@x/").is_err());
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let s = sign(b"0123456789abcdef", "1700000000", b"{\"a\":1}");
        assert_eq!(s.len(), 64);
        assert_ne!(s, sign(b"0123456789abcdef", "1700000001", b"{\"a\":1}"));
        assert_ne!(s, sign(b"0123456789abcdef", "1700000000", b"{\"a\":2}"));
        assert_ne!(s, sign(b"0123456789abcdeX", "1700000000", b"{\"a\":1}"));
    }

    #[test]
    fn a_secret_others_may_read_or_a_short_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        std::fs::write(&p, "short\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_secret(&p).unwrap_err().contains("fewer than 16"));
        std::fs::write(&p, "  a-long-enough-secret-value\n").unwrap();
        assert_eq!(read_secret(&p).unwrap(), b"a-long-enough-secret-value");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_secret(&p).unwrap_err().contains("chmod 600"));
    }
}
