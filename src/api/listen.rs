//! Serving the API's connections by hand, for what `axum::serve` does not offer: a time
//! limit on reading a request's headers (a client that trickles them is dropped), and caps
//! on open connections, in all and per address (the rest are closed at once). TLS
//! handshakes run on each connection's own task, within a time limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};

use super::Remote;
use crate::audit::{AuditEvent, Kind};
use crate::service::Service;

/// A TLS handshake must finish within this.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// Open connections: in all, and per address.
pub struct Caps {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    max: usize,
    per_address: usize,
}

/// A place among the open connections; dropping it gives the place back.
struct Place {
    caps: Arc<Caps>,
    ip: Option<IpAddr>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut o = self.caps.open.lock().unwrap_or_else(|e| e.into_inner());
        o.0 = o.0.saturating_sub(1);
        if let Some(ip) = self.ip {
            if let Some(n) = o.1.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    o.1.remove(&ip);
                }
            }
        }
    }
}

impl Caps {
    pub fn new(max: usize, per_address: usize) -> Arc<Caps> {
        Arc::new(Caps {
            open: Mutex::new((0, HashMap::new())),
            max,
            per_address,
        })
    }

    fn admit(self: &Arc<Caps>, ip: Option<IpAddr>) -> Option<Place> {
        let mut o = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let from = ip.and_then(|ip| o.1.get(&ip).copied()).unwrap_or(0);
        if o.0 >= self.max || (ip.is_some() && from >= self.per_address) {
            return None;
        }
        o.0 += 1;
        if let Some(ip) = ip {
            *o.1.entry(ip).or_insert(0) += 1;
        }
        Some(Place {
            caps: self.clone(),
            ip,
        })
    }
}

/// How to serve one connection: the app, the header timeout, the caps.
#[derive(Clone)]
pub struct Server {
    pub app: Router,
    pub svc: Arc<Service>,
    pub caps: Arc<Caps>,
    pub header_timeout: Duration,
}

impl Server {
    /// Serves TCP connections (TLS when `tls` is set) for as long as the host runs. Accept
    /// errors (no descriptors left) pause accepting; they never end the API.
    pub async fn tcp(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(place) = self.caps.admit(Some(peer.ip())) else {
                self.svc.record_bounded(
                    &format!("api.cap:{}", peer.ip()),
                    AuditEvent::new(Kind::ApiRefused, "anonymous")
                        .with("address", peer.to_string())
                        .with("why", "too many open connections"),
                );
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (server, tls) = (self.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(Ok(stream)) =
                            tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await
                        {
                            server.connection(stream, Remote(Some(peer))).await;
                        }
                    }
                    None => server.connection(stream, Remote(Some(peer))).await,
                }
                drop(place);
            });
        }
    }

    /// Serves the unix socket (the host's own clients: no address, the global cap only).
    pub async fn unix(self, listener: tokio::net::UnixListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Some(place) = self.caps.admit(None) else {
                continue;
            };
            let server = self.clone();
            tokio::spawn(async move {
                server.connection(stream, Remote(None)).await;
                drop(place);
            });
        }
    }

    async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
        &self,
        stream: S,
        remote: Remote,
    ) {
        let app = self.app.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                req.extensions_mut().insert(ConnectInfo(remote.clone()));
                tower_service::Service::call(&mut app.clone(), req)
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .keep_alive(true);
        let _ = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
    }
}
