//! Accepting SSH connections without letting strangers exhaust the host: a cap on
//! connections that have not logged in (in all, and per address), a time limit to log in
//! enforced on the connection's reads, and accept errors (no file descriptors left) met by
//! waiting and going on. russh's own accept loop returns on the first such error, which
//! would end every session; this one never does.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::{Conn, Shared};
use crate::audit::{AuditEvent, Kind};

/// A connection's login state, shared by its handler, its guarded stream and the watcher.
pub struct Gate {
    logged_in: AtomicBool,
    timed_out: AtomicBool,
    /// Its place among the connections not logged in yet (given back at login or close).
    slot: Mutex<Option<Slot>>,
    handle: Mutex<Option<russh::server::Handle>>,
}

impl Gate {
    /// The connection logged in: it leaves the not-logged-in pool and its time limit.
    pub fn logged_in(&self) {
        self.logged_in.store(true, Ordering::SeqCst);
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Ends the connection with a word to the client.
    pub async fn disconnect(&self, why: &str) {
        let handle = self
            .handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(h) = handle {
            let _ = h
                .disconnect(
                    russh::Disconnect::ByApplication,
                    why.to_string(),
                    String::new(),
                )
                .await;
        }
    }
}

/// A place in the not-logged-in pool; dropping it gives the place back.
pub struct Slot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut p = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        p.0 = p.0.saturating_sub(1);
        if let Some(n) = p.1.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                p.1.remove(&self.ip);
            }
        }
    }
}

impl Shared {
    /// A place for a new connection from `ip`, if the caps allow one.
    fn admit(self: &Arc<Shared>, ip: IpAddr) -> Option<Slot> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = p.1.get(&ip).copied().unwrap_or(0);
        if p.0 >= self.config.max_unauthenticated
            || from_ip >= self.config.max_unauthenticated_per_address
        {
            return None;
        }
        p.0 += 1;
        *p.1.entry(ip).or_insert(0) += 1;
        Some(Slot {
            shared: self.clone(),
            ip,
        })
    }
}

/// A TCP stream whose reads fail once the login time is up and no login happened: the
/// session then ends, whatever stage the client stalled in (its SSH version line, the key
/// exchange, or authentication).
struct Guarded {
    inner: TcpStream,
    gate: Arc<Gate>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.gate.logged_in.load(Ordering::SeqCst) && self.deadline.as_mut().poll(cx).is_ready()
        {
            self.gate.timed_out.store(true, Ordering::SeqCst);
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no login within the grace time",
            )));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Whether an accept error is the host running short of something (descriptors, memory)
/// rather than a problem of one connection: either way the host goes on.
fn scarce(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Serves SSH on `listener` until `stop` resolves; then closes every logged-in connection
/// with `stop`'s message.
pub async fn serve(
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    shared: Arc<Shared>,
    stop: impl Future<Output = String>,
) {
    tokio::pin!(stop);
    let mut last_said = std::time::Instant::now() - Duration::from_secs(60);
    let reason = loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            why = &mut stop => break why,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Said at most once a minute: a flood must not flood the log too.
                if last_said.elapsed() > Duration::from_secs(60) {
                    last_said = std::time::Instant::now();
                    eprintln!("cordon: ssh: accepting a connection failed ({e}); going on");
                }
                // Out of descriptors: give connections in progress a moment to end.
                tokio::time::sleep(Duration::from_millis(if scarce(&e) { 100 } else { 5 })).await;
                continue;
            }
        };
        accept(stream, peer, &config, &shared);
    };
    let live: Vec<Arc<Gate>> = shared
        .live
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .map(|(_, g)| g.clone())
        .collect();
    for g in live {
        g.disconnect(&reason).await;
    }
}

fn accept(
    stream: TcpStream,
    peer: SocketAddr,
    config: &Arc<russh::server::Config>,
    shared: &Arc<Shared>,
) {
    // An address blocked by alerts' containment is closed at once (audited, bounded, in
    // the service; its logins are refused there too).
    if shared.service.blocked(&peer.to_string(), "ssh").is_some() {
        return;
    }
    let Some(slot) = shared.admit(peer.ip()) else {
        // Over the caps: closed at once, and said in bounded form.
        shared.service.record_bounded(
            &format!("ssh.pending:{}", peer.ip()),
            AuditEvent::new(Kind::SshRefused, "anonymous")
                .with("address", peer.to_string())
                .with("why", "too many connections not logged in"),
        );
        return;
    };
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().ok();
    let gate = Arc::new(Gate {
        logged_in: AtomicBool::new(false),
        timed_out: AtomicBool::new(false),
        slot: Mutex::new(Some(slot)),
        handle: Mutex::new(None),
    });
    let guarded = Guarded {
        inner: stream,
        gate: gate.clone(),
        deadline: Box::pin(tokio::time::sleep(shared.config.login_grace)),
    };
    let handler = Conn::new(shared.clone(), peer, local, gate.clone());
    let (config, shared) = (config.clone(), shared.clone());
    tokio::spawn(async move {
        if let Ok(session) = russh::server::run_stream(config, guarded, handler).await {
            *gate.handle.lock().unwrap_or_else(|e| e.into_inner()) = Some(session.handle());
            let _ = session.await;
        }
        if gate.timed_out.load(Ordering::SeqCst) {
            shared.service.record_bounded(
                &format!("ssh.grace:{}", peer.ip()),
                AuditEvent::new(Kind::LoginFailed, "anonymous")
                    .with("address", peer.to_string())
                    .with(
                        "why",
                        format!(
                            "no login within {} s ([ssh] login_grace)",
                            shared.config.login_grace.as_secs()
                        ),
                    ),
            );
        }
        // The slot, if the connection never logged in, goes back with the gate.
        gate.slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    });
}
