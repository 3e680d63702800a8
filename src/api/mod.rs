//! The HTTP/JSON + WebSocket API (axum), versioned under /v1, on TCP (127.0.0.1:8022 by
//! default) and a unix socket. Thin like every face: it authenticates (JWT, `tokens.rs`),
//! limits (rates, body sizes), and calls the service layer with the caller's principal, which
//! checks permissions and audits. Errors are JSON with the request id and never carry
//! internals.

mod limits;
mod listen;
mod routes;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::audit::{AuditEvent, Kind};
use crate::service::{Principal, Service};
use crate::tokens::Claims;
use limits::{Limit, Limits};

/// Requests larger than this are refused (413).
const BODY_LIMIT: usize = 64 << 10;

/// Counters for /metrics.
#[derive(Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub attaches: AtomicU64,
    pub bytes_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub auth_failures: AtomicU64,
    pub rate_limited: AtomicU64,
}

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    pub svc: Arc<Service>,
    pub metrics: Arc<Metrics>,
    limits: Arc<Limits>,
}

/// The request id, set by the first middleware.
#[derive(Clone)]
pub struct RequestId(pub String);

/// Where a request came from: the peer address, or "unix" for the socket.
#[derive(Clone)]
pub struct Peer(pub String);

/// An API error: a status and a message for the caller, as JSON with the request id.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<crate::service::Error> for ApiError {
    fn from(e: crate::service::Error) -> ApiError {
        use crate::service::Error::*;
        match e {
            Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            Failed(ref m) => {
                // The details stay in the host's log; the caller gets the request id.
                eprintln!("cordon: api: {m}");
                if e.is_database_unreachable() {
                    return ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        crate::service::DATABASE_UNREACHABLE,
                    );
                }
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the host could not do that; the request id identifies it in the host's log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UPGRADE_REQUIRED {
            // What to upgrade to, as a 426 must say (RFC 9110, 15.5.22), and the one version
            // of the WebSocket protocol there is (RFC 6455, 4.4).
            let h = r.headers_mut();
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        r
    }
}

/// An authenticated caller: the principal (with the current role from the store) and the
/// token's claims.
pub struct Auth {
    pub p: Principal,
    pub claims: Claims,
}

impl FromRequestParts<Api> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        api: &Api,
    ) -> Result<Auth, ApiError> {
        let request = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
        let peer = parts
            .extensions
            .get::<Peer>()
            .map(|p| p.0.clone())
            .unwrap_or_default();
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim);
        let refuse = |why: String| {
            api.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            let mut e = AuditEvent::new(Kind::ApiUnauthorized, "anonymous")
                .with("why", why.clone())
                .with("address", peer.clone());
            if let Some(r) = &request {
                e = e.with("request", r.clone());
            }
            api.svc
                .record_bounded(&format!("api.unauthorized:{peer}"), e);
            ApiError::new(StatusCode::UNAUTHORIZED, why)
        };
        let Some(token) = bearer else {
            return Err(refuse(
                "an access token is required (Authorization: Bearer ...)".into(),
            ));
        };
        let (mut p, claims) = match api.svc.authenticate(token, &peer) {
            Ok(a) => a,
            // The host could not check: a 500, not a refusal of the caller.
            Err(e @ crate::service::Error::Failed(_)) => return Err(e.into()),
            Err(e) => return Err(refuse(e.to_string())),
        };
        p.request = request;
        if let Some(after) = api.limits.check(Limit::User(&p.user)) {
            api.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: "too many requests; slow down".into(),
                retry_after: Some(after),
            });
        }
        Ok(Auth { p, claims })
    }
}

/// First and last around every request: the request id, the per-address rate limit, and the
/// security headers.
async fn envelope(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    api.metrics.requests.fetch_add(1, Ordering::Relaxed);
    let id = crate::secrets::random_bytes(8)
        .map(|b| crate::secrets::hex(&b))
        .unwrap_or_default();
    let peer = match req.extensions().get::<ConnectInfo<Remote>>() {
        Some(ConnectInfo(Remote(Some(a)))) => a.ip().to_string(),
        _ => "unix".to_string(),
    };
    req.extensions_mut().insert(RequestId(id.clone()));
    req.extensions_mut().insert(Peer(peer.clone()));
    let login = req.uri().path() == "/v1/auth/login" || req.uri().path() == "/v1/auth/refresh";
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    let limited = if login {
        api.limits.check(Limit::Login(&peer))
    } else {
        api.limits.check(Limit::Address(&peer))
    };
    // An address blocked by alerts' containment is refused whatever it asks (audited,
    // bounded, in the service).
    let mut res = match (api.svc.blocked(&peer, "api"), limited) {
        (Some(why), _) => ApiError::new(StatusCode::FORBIDDEN, why).into_response(),
        (None, Some(after)) => {
            api.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            api.svc.record_bounded(
                &format!("api.rate_limited:{peer}"),
                AuditEvent::new(Kind::ApiRateLimited, "anonymous")
                    .with("address", peer.clone())
                    .with("request", id.clone()),
            );
            ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: "too many requests; slow down".into(),
                retry_after: Some(after),
            }
            .into_response()
        }
        (None, None) => next.run(req).await,
    };
    // Refusals of the request itself (bad input, no such thing, wrong media type, too large)
    // are audited here; 401, 403 and 429 were audited where they were decided.
    let status = res.status();
    api.svc.api_answered(status.as_u16());
    if status.is_client_error()
        && ![
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::TOO_MANY_REQUESTS,
        ]
        .contains(&status)
    {
        let path: String = path.chars().take(200).collect();
        api.svc.record_bounded(
            &format!("api.rejected:{peer}"),
            AuditEvent::new(Kind::ApiRejected, "anonymous")
                .with("status", status.as_u16())
                .with("method", method)
                .with("path", path)
                .with("address", peer.clone())
                .with("request", id.clone()),
        );
    }
    let h = res.headers_mut();
    for (k, v) in [
        ("x-request-id", id.as_str()),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("cache-control", "no-store"),
    ] {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    }
    res
}

/// The peer of a connection: an address over TCP (plain or TLS), none over the unix socket.
#[derive(Clone, Debug)]
pub struct Remote(pub Option<SocketAddr>);

/// Over TLS, browsers are told to keep to it.
async fn hsts(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    res.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    res
}

/// Starts the API on the configured TCP address and unix socket.
pub async fn start(svc: Arc<Service>) -> Result<Vec<String>, String> {
    let api = Api {
        svc: svc.clone(),
        metrics: Arc::new(Metrics::default()),
        limits: Arc::new(Limits::new(
            svc.config().api_rate,
            svc.config().api_login_rate,
        )),
    };
    let forget = Arc::downgrade(&api.limits);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let Some(limits) = forget.upgrade() else {
                return;
            };
            limits.forget_idle();
        }
    });
    let app = routes::router()
        .layer(axum::middleware::from_fn_with_state(api.clone(), envelope))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(api);
    let server = listen::Server {
        app: app.clone(),
        svc: svc.clone(),
        caps: listen::Caps::new(
            svc.config().api_max_connections,
            svc.config().api_max_connections_per_address,
        ),
        header_timeout: svc.config().api_header_timeout,
    };
    let mut said = Vec::new();
    if let Some(addr) = &svc.config().api_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("api: listening on {addr}: {e}"))?;
        let local = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| addr.clone());
        match &svc.config().api_tls {
            Some((cert, key)) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls::config(cert, key)?);
                said.push(format!("https://{local}"));
                let server = listen::Server {
                    app: app.clone().layer(axum::middleware::from_fn(hsts)),
                    ..server.clone()
                };
                tokio::spawn(server.tcp(listener, Some(acceptor)));
            }
            None => {
                said.push(format!("http://{local}"));
                tokio::spawn(server.clone().tcp(listener, None));
            }
        }
    }
    if let Some(path) = &svc.config().api_socket {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{} is in use: is another cordon serve running on this data directory?",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path)
            .map_err(|e| format!("api: listening on {}: {e}", path.display()))?;
        said.push(format!("unix:{}", path.display()));
        tokio::spawn(server.unix(listener));
    }
    Ok(said)
}
