//! Prometheus metrics: `GET /metrics` on the web listener, in the OpenMetrics text format.
//!
//! The workers count what they do into one [`Metrics`] per process (counters and latency
//! histograms, cheap atomics); what lives in the database — the review queue by reason, the
//! outbox waiting to be sent — and what the workers already track for `/healthz` (last
//! successful fetch and send, the IMAP connection) is read when Prometheus scrapes. Labels
//! carry only codes (kind, action, reason, purpose): never an address, a subject or a loan
//! number, so neither cardinality nor personal data grows with the mail.
//!
//! Access: with `[metrics] token` set, a scrape must send `Authorization: Bearer <token>`.
//! Without a token, `/metrics` answers only clients connected straight from a loopback
//! address — a request relayed by a proxy (it carries `Forwarded`, `X-Forwarded-For` or
//! `X-Real-IP`) is not local, whatever address the proxy connects from.
//!
//! Layout: the counters themselves live in [`crate::counters`] (depending on no worker);
//! `scrape` renders them with the database and health snapshots; `crate::access` decides who may
//! scrape.

mod scrape;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use crate::access::Access;
pub use crate::counters::{Metrics, ReminderOutcome, SendResult};
use crate::health::HealthState;
use crate::store::Store;
pub use scrape::render;

/// What the `/metrics` handler reads.
#[derive(Clone)]
pub struct MetricsState {
    pub metrics: Arc<Metrics>,
    pub store: Store,
    /// The workers' state (absent when only the pages are served).
    pub health: Option<HealthState>,
    pub access: Access,
}

/// The OpenMetrics text content type (Prometheus negotiates it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

async fn scrape(State(state): State<MetricsState>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Err(refusal) = state.access.check(req.headers(), peer) {
        return refusal.into_response();
    }
    let body = render(&state.metrics, &state.store, state.health.as_ref()).await;
    (
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `GET /metrics`. Merge it into the web app's router (outside the sign-in guard).
pub fn router(state: MetricsState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}
