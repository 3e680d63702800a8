//! The host itself: health, the profiles one may use, and Prometheus metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Common, ErrorOut, Result};
use crate::api::{Api, Auth};

pub(super) fn router() -> OpenApiRouter<Api> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(profiles))
        .routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct HealthOut {
    pub status: String,
    pub version: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProfileOut {
    pub name: String,
}

#[utoipa::path(get, path = "/v1/health", responses((status = 200, body = HealthOut)))]
async fn health() -> Json<HealthOut> {
    Json(HealthOut {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// The profiles the caller's role may use.
#[utoipa::path(get, path = "/v1/profiles", security(("bearer" = [])),
    responses(Common, (status = 200, body = [ProfileOut])))]
async fn profiles(State(api): State<Api>, auth: Auth) -> Result<Json<Vec<ProfileOut>>> {
    Ok(Json(
        api.svc
            .profiles(&auth.p)?
            .into_iter()
            .map(|name| ProfileOut { name })
            .collect(),
    ))
}

/// Prometheus metrics, for admins and auditors.
#[utoipa::path(get, path = "/metrics", security(("bearer" = [])),
    responses(Common, (status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 403, body = ErrorOut, description = "the caller is neither an admin nor an auditor")))]
async fn metrics(State(api): State<Api>, auth: Auth) -> Result<Response> {
    let host = api.svc.figures(&auth.p)?;
    let m = &api.metrics;
    let mut out = String::new();
    for (name, help, kind, v) in [
        (
            "cordon_sessions",
            "Sessions running.",
            "gauge",
            host.sessions as u64,
        ),
        (
            "cordon_api_requests_total",
            "API requests.",
            "counter",
            m.requests.load(Ordering::Relaxed),
        ),
        (
            "cordon_api_attaches_total",
            "WebSocket attaches and observes.",
            "counter",
            m.attaches.load(Ordering::Relaxed),
        ),
        (
            "cordon_api_bytes_out_total",
            "Terminal and export bytes sent by the API.",
            "counter",
            m.bytes_out.load(Ordering::Relaxed),
        ),
        (
            "cordon_api_bytes_in_total",
            "Terminal bytes received by the API.",
            "counter",
            m.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "cordon_auth_failures_total",
            "Refused logins and tokens.",
            "counter",
            m.auth_failures.load(Ordering::Relaxed),
        ),
        (
            "cordon_api_rate_limited_total",
            "Requests answered 429.",
            "counter",
            m.rate_limited.load(Ordering::Relaxed),
        ),
        (
            "cordon_recording_errors_total",
            "Failed recording writes.",
            "counter",
            host.recording_errors,
        ),
        (
            "cordon_audit_errors_total",
            "Audit events that could not be written.",
            "counter",
            host.audit_errors,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
        ));
    }
    let e = &host.egress;
    for (name, help, label, values) in [
        (
            "cordon_egress_connections_total",
            "Connection attempts through sessions' and runs' egress proxies, by verdict.",
            "verdict",
            vec![("allowed", e.allowed), ("refused", e.refused)],
        ),
        (
            "cordon_egress_bytes_total",
            "Bytes through the egress proxies (up: from sessions; down: to them).",
            "direction",
            vec![("up", e.bytes_up), ("down", e.bytes_down)],
        ),
        (
            "cordon_egress_questions_total",
            "Questions to sessions' owners about unlisted destinations (ask mode), by outcome.",
            "outcome",
            vec![
                ("asked", e.asked),
                ("answered", e.answered),
                ("unanswered", e.unanswered),
            ],
        ),
        (
            "cordon_alerts_total",
            "Alerts raised since the host started, by rule ([alerts]).",
            "rule",
            host.alerts.to_vec(),
        ),
        (
            "cordon_alert_webhook_total",
            "Alerts sent to the webhook, by outcome (failed: after every attempt; dropped: its queue was full).",
            "outcome",
            host.webhook.to_vec(),
        ),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
        for (value, v) in values {
            out.push_str(&format!("{name}{{{label}=\"{value}\"}} {v}\n"));
        }
    }
    out.push_str(
        "# HELP cordon_key_age_seconds The age of the master key and of each data key in use.\n\
         # TYPE cordon_key_age_seconds gauge\n",
    );
    for k in &host.keys {
        out.push_str(&format!(
            "cordon_key_age_seconds{{key=\"{}\"}} {}\n",
            k.key,
            k.age.as_secs()
        ));
    }
    out.push_str(
        "# HELP cordon_key_overdue 1 when a key is older than its rotation period ([keys] rotate_*).\n\
         # TYPE cordon_key_overdue gauge\n",
    );
    for k in &host.keys {
        out.push_str(&format!(
            "cordon_key_overdue{{key=\"{}\"}} {}\n",
            k.key,
            u8::from(k.overdue())
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}
