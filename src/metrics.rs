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

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use sha2::{Digest, Sha256};

use crate::classify::{Action, Kind, ReviewReason};
use crate::config::Secret;
use crate::health::HealthState;
use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    kind: &'static str,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    purpose: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReminderLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PurposeLabels {
    purpose: String,
}

/// What became of one attempt to send an outbox mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendResult {
    Sent,
    /// Failed for now; tried again later.
    Retried,
    /// Failed for good; moved to the review queue.
    Dead,
}

impl SendResult {
    fn code(self) -> &'static str {
        match self {
            SendResult::Sent => "sent",
            SendResult::Retried => "retried",
            SendResult::Dead => "dead",
        }
    }
}

/// What became of one reminder the scheduler handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderOutcome {
    Queued,
    Missed,
    Failed,
}

impl ReminderOutcome {
    fn code(self) -> &'static str {
        match self {
            ReminderOutcome::Queued => "queued",
            ReminderOutcome::Missed => "missed",
            ReminderOutcome::Failed => "failed",
        }
    }
}

/// The outbox purposes (`outbox.purpose`), pre-declared so their series exist from the start.
const PURPOSES: [&str; 5] = [
    "reply",
    "reminder",
    "staff_reply",
    "shipment_notice",
    "rma_label",
];
/// Review reasons stored besides [`ReviewReason`]s.
const OTHER_REASONS: [&str; 1] = ["reminder_failed"];

/// One process's metrics. Cheap to share (`Arc`); every recording method is a few atomics.
pub struct Metrics {
    registry: Registry,
    mails_fetched: Counter,
    fetch_errors: Counter,
    fetch_duration: Histogram,
    decisions: Family<DecisionLabels, Counter>,
    duplicates: Counter,
    processing_failures: Counter,
    processing_duration: Histogram,
    rate_limited: Counter,
    sends: Family<SendLabels, Counter>,
    send_duration: Histogram,
    reminders: Family<ReminderLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn seconds_buckets(start: f64, length: u16) -> Histogram {
    Histogram::new(exponential_buckets(start, 2.0, length))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("trialdesk");
        r.register(
            "build",
            "The version and git revision of this binary",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("revision", crate::GIT_REVISION.to_string()),
            ]),
        );
        let start = Gauge::<f64, AtomicU64>::default();
        start.set(now_seconds());
        r.register_with_unit(
            "start_time",
            "When this process started, Unix time",
            Unit::Seconds,
            start,
        );

        let mails_fetched = Counter::default();
        r.register(
            "mails_fetched",
            "Mails read from the mail source (each time one is offered, redeliveries included)",
            mails_fetched.clone(),
        );
        let fetch_errors = Counter::default();
        r.register(
            "fetch_errors",
            "Fetches from the mail source that failed (connection, login, protocol)",
            fetch_errors.clone(),
        );
        // 1 ms … ~33 s: a Maildir listing to an IMAP round trip on a slow link.
        let fetch_duration = seconds_buckets(0.001, 16);
        r.register_with_unit(
            "fetch_duration",
            "Time one fetch from the mail source took (listing and downloading a batch)",
            Unit::Seconds,
            fetch_duration.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        r.register(
            "decisions",
            "Mails decided, by kind (tracking_request, other, automated) and action (reply, review, ignore)",
            decisions.clone(),
        );
        let duplicates = Counter::default();
        r.register(
            "mails_duplicate",
            "Mails already recorded earlier (redelivered or re-read), acknowledged without a decision",
            duplicates.clone(),
        );
        let processing_failures = Counter::default();
        r.register(
            "processing_failures",
            "Mails whose processing failed (database trouble); they stay at the source and are retried",
            processing_failures.clone(),
        );
        // 0.5 ms … ~16 s.
        let processing_duration = seconds_buckets(0.0005, 16);
        r.register_with_unit(
            "mail_processing_duration",
            "Time from a fetched mail to its committed decision (classify, look up, compose, record)",
            Unit::Seconds,
            processing_duration.clone(),
        );
        let rate_limited = Counter::default();
        r.register(
            "replies_rate_limited",
            "Automatic replies withheld by the per-recipient rate limit (the mail went to review)",
            rate_limited.clone(),
        );
        let sends = Family::<SendLabels, Counter>::default();
        r.register(
            "sends",
            "Attempts to send outbox mail, by purpose (reply, reminder, staff_reply) and result (sent, retried, dead)",
            sends.clone(),
        );
        // 1 ms … ~65 s (the SMTP timeout is in this range).
        let send_duration = seconds_buckets(0.001, 17);
        r.register_with_unit(
            "send_duration",
            "Time one send attempt took at the transport (SMTP dialogue or file write), whatever its result",
            Unit::Seconds,
            send_duration.clone(),
        );
        let reminders = Family::<ReminderLabels, Counter>::default();
        r.register(
            "reminders",
            "Reminders handled by the scheduler, by kind and outcome (queued, missed, failed)",
            reminders.clone(),
        );
        let m = Metrics {
            registry: r,
            mails_fetched,
            fetch_errors,
            fetch_duration,
            decisions,
            duplicates,
            processing_failures,
            processing_duration,
            rate_limited,
            sends,
            send_duration,
            reminders,
        };
        // Every series that can appear exists from the start at 0, so `rate()` and alerts on
        // absent series behave from the first scrape.
        for kind in Kind::ALL {
            for action in [Action::Reply, Action::Review, Action::Ignore] {
                let _ = m.decisions.get_or_create(&DecisionLabels {
                    kind: kind.code(),
                    action: action.code(),
                });
            }
        }
        for purpose in PURPOSES {
            for result in [SendResult::Sent, SendResult::Retried, SendResult::Dead] {
                let _ = m.sends.get_or_create(&SendLabels {
                    purpose: purpose.to_string(),
                    result: result.code(),
                });
            }
        }
        for kind in crate::reminders::Kind::ALL.map(crate::reminders::Kind::code) {
            for outcome in [
                ReminderOutcome::Queued,
                ReminderOutcome::Missed,
                ReminderOutcome::Failed,
            ] {
                let _ = m.reminders.get_or_create(&ReminderLabels {
                    kind,
                    outcome: outcome.code(),
                });
            }
        }
        m
    }

    /// One fetch from the source: how long it took, and whether it worked.
    pub fn fetch_done(&self, took: Duration, ok: bool) {
        self.fetch_duration.observe(took.as_secs_f64());
        if !ok {
            self.fetch_errors.inc();
        }
    }

    /// One mail taken from the source for processing.
    pub fn mail_fetched(&self) {
        self.mails_fetched.inc();
    }

    /// A mail decided and recorded.
    pub fn decided(&self, kind: Kind, action: Action, took: Duration) {
        self.decisions
            .get_or_create(&DecisionLabels {
                kind: kind.code(),
                action: action.code(),
            })
            .inc();
        self.processing_duration.observe(took.as_secs_f64());
    }

    /// A mail found already recorded.
    pub fn duplicate(&self, took: Duration) {
        self.duplicates.inc();
        self.processing_duration.observe(took.as_secs_f64());
    }

    /// A mail whose processing failed.
    pub fn processing_failed(&self) {
        self.processing_failures.inc();
    }

    /// An automatic reply withheld by the rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// One send attempt.
    pub fn send_attempt(&self, purpose: &str, result: SendResult, took: Duration) {
        // Only known purposes become label values (a hand-edited row cannot add series).
        let purpose = if PURPOSES.contains(&purpose) {
            purpose
        } else {
            "other"
        };
        self.sends
            .get_or_create(&SendLabels {
                purpose: purpose.to_string(),
                result: result.code(),
            })
            .inc();
        self.send_duration.observe(took.as_secs_f64());
    }

    /// One reminder handled by the scheduler; `kind` is a `reminders::Kind` code.
    pub fn reminder(&self, kind: &'static str, outcome: ReminderOutcome) {
        self.reminders
            .get_or_create(&ReminderLabels {
                kind,
                outcome: outcome.code(),
            })
            .inc();
    }

    /// The exposition: the counters, then what is read now from the database and the
    /// workers' state (a registry of its own per scrape, so nothing stale lingers).
    pub async fn render(&self, store: &Store, health: Option<&HealthState>) -> String {
        let mut now = Registry::with_prefix("trialdesk");
        let db = snapshot_store(&mut now, store).await;
        let database_up = Gauge::<i64>::default();
        database_up.set(i64::from(db.is_ok()));
        now.register(
            "database_up",
            "1 when the database answered this scrape's queries, else 0",
            database_up,
        );
        if let Err(e) = db {
            tracing::warn!(error = %crate::telemetry::ErrorChain(&e), "metrics: database queries failed");
        }
        if let Some(h) = health {
            snapshot_workers(&mut now, h);
        }
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &now);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// The review queue and the outbox, counted in the database (indexed, cheap).
async fn snapshot_store(r: &mut Registry, store: &Store) -> Result<(), crate::store::StoreError> {
    let counts = store.review_counts().await?;
    let pending = store.outbox_pending().await?;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let review_queue = Family::<ReasonLabels, Gauge>::default();
    for reason in ReviewReason::ALL
        .iter()
        .map(|r| r.code())
        .chain(OTHER_REASONS)
    {
        let _ = review_queue.get_or_create(&ReasonLabels {
            reason: reason.to_string(),
        });
    }
    for (reason, n) in counts {
        review_queue.get_or_create(&ReasonLabels { reason }).set(n);
    }
    r.register(
        "review_queue_depth",
        "Open review items, by reason",
        review_queue,
    );
    let outbox_pending = Family::<PurposeLabels, Gauge>::default();
    for purpose in PURPOSES {
        let _ = outbox_pending.get_or_create(&PurposeLabels {
            purpose: purpose.to_string(),
        });
    }
    let mut oldest: Option<i64> = None;
    for p in pending {
        outbox_pending
            .get_or_create(&PurposeLabels { purpose: p.purpose })
            .set(p.count);
        oldest = Some(oldest.map_or(p.oldest_created_at, |o| o.min(p.oldest_created_at)));
    }
    r.register(
        "outbox_pending",
        "Mails queued and not yet sent (due, or waiting for a retry), by purpose",
        outbox_pending,
    );
    let age = Gauge::<f64, AtomicU64>::default();
    age.set(oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0));
    r.register_with_unit(
        "outbox_oldest_pending_age",
        "Age of the oldest mail waiting in the outbox (0 when none waits)",
        Unit::Seconds,
        age,
    );
    Ok(())
}

/// Health, last successes and the IMAP connection, as `/healthz` sees them.
fn snapshot_workers(r: &mut Registry, h: &HealthState) {
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let healthy = Gauge::<i64>::default();
    healthy.set(i64::from(h.report(now_ms).reasons.is_empty()));
    r.register("healthy", "1 when /healthz reports ok, else 0", healthy);
    let o = Ordering::Relaxed;
    for (name, help, ms) in [
        (
            "last_fetch_success_timestamp",
            "When a fetch from the mail source last succeeded, Unix time (0 = not since start)",
            h.inbound.last_fetch_ok_ms.load(o),
        ),
        (
            "last_send_success_timestamp",
            "When a mail was last sent successfully, Unix time (0 = not since start)",
            h.sender.last_success_ms.load(o),
        ),
    ] {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(ms_to_seconds(ms));
        r.register_with_unit(name, help, Unit::Seconds, g);
    }
    if let Some(imap) = &h.imap {
        let s = imap.snapshot();
        for (name, help, v) in [
            (
                "imap_connected",
                "1 while the IMAP connection is up",
                i64::from(s.connected),
            ),
            (
                "imap_idle_push",
                "1 while new mail is pushed by IMAP IDLE, 0 while polling",
                i64::from(s.push),
            ),
            (
                "imap_consecutive_failures",
                "IMAP connection attempts failed since the last success",
                i64::from(s.consecutive_failures),
            ),
        ] {
            let g = Gauge::<i64>::default();
            g.set(v);
            r.register(name, help, g);
        }
        if let Some(lease) = &s.lease {
            let g = Gauge::<i64>::default();
            g.set(i64::from(lease.held));
            r.register(
                "imap_lease_held",
                "1 while this instance holds the mailbox lease and reads the mailbox (summed over instances: 1)",
                g,
            );
        }
    }
}

fn now_seconds() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}

fn ms_to_seconds(ms: i64) -> f64 {
    if ms <= 0 {
        0.0
    } else {
        ms as f64 / 1000.0
    }
}

/// Who may scrape.
#[derive(Clone)]
pub enum Access {
    /// Requests with `Authorization: Bearer <token>`; the SHA-256 of the token is kept so the
    /// comparison takes the same time whatever the guess.
    Token([u8; 32]),
    /// Only direct connections from a loopback address.
    Loopback,
}

impl Access {
    pub fn new(token: Option<&Secret>) -> Access {
        match token {
            Some(t) => Access::Token(Sha256::digest(t.expose().as_bytes()).into()),
            None => Access::Loopback,
        }
    }

    /// Whether the request may see the metrics.
    fn check(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<(), Refusal> {
        match self {
            Access::Token(expected) => {
                let given = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .map(|t| -> [u8; 32] { Sha256::digest(t.trim().as_bytes()).into() });
                match given {
                    Some(g) if constant_time_eq(&g, expected) => Ok(()),
                    _ => Err(Refusal::NoToken),
                }
            }
            Access::Loopback => {
                let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
                    .iter()
                    .any(|h| headers.contains_key(*h));
                let local = peer.is_some_and(|p| p.ip().is_loopback());
                if local && !proxied {
                    Ok(())
                } else {
                    Err(Refusal::NotLocal)
                }
            }
        }
    }
}

/// Why a scrape is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 401: the token is missing or wrong.
    NoToken,
    /// 403: no token is configured and the client is not on loopback.
    NotLocal,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NoToken => (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"trialdesk metrics\"",
                )],
                "a bearer token is required (metrics.token)\n",
            )
                .into_response(),
            Refusal::NotLocal => (
                StatusCode::FORBIDDEN,
                "metrics are served to loopback clients only; set metrics.token to scrape from elsewhere\n",
            )
                .into_response(),
        }
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

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
    let body = state
        .metrics
        .render(&state.store, state.health.as_ref())
        .await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn loopback_access_refuses_remote_and_proxied_clients() {
        let a = Access::new(None);
        let local: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        let local6: SocketAddr = "[::1]:5555".parse().unwrap();
        let remote: SocketAddr = "192.0.2.7:5555".parse().unwrap();
        let none = HeaderMap::new();
        assert!(a.check(&none, Some(local)).is_ok());
        assert!(a.check(&none, Some(local6)).is_ok());
        assert_eq!(a.check(&none, Some(remote)), Err(Refusal::NotLocal));
        assert!(a.check(&none, None).is_err());
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert!(a.check(&proxied, Some(local)).is_err());
    }

    #[test]
    fn token_access_needs_the_exact_bearer_token_from_anywhere() {
        let a = Access::new(Some(&Secret::new("s3cret-token")));
        let remote: SocketAddr = "192.0.2.7:5555".parse().unwrap();
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
            h
        };
        assert!(a.check(&with("Bearer s3cret-token"), Some(remote)).is_ok());
        assert_eq!(
            a.check(&with("Bearer s3cret-tokeN"), Some(remote)),
            Err(Refusal::NoToken)
        );
        assert!(a.check(&with("Basic s3cret-token"), Some(remote)).is_err());
        // Loopback alone is not enough once a token is configured.
        let local: SocketAddr = "127.0.0.1:5555".parse().unwrap();
        assert!(a.check(&HeaderMap::new(), Some(local)).is_err());
    }
}
