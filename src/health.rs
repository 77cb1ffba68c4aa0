//! Health: is trialdesk doing its job? `GET /healthz` answers 200 with a JSON report when it
//! is, 503 with the reasons when it is not, for a load balancer, a container orchestrator or a
//! monitoring probe.
//!
//! Unhealthy means: no successful fetch from the mail source for longer than
//! `health.max_fetch_silence` (whether fetches fail, or nothing runs at all: a stuck fetch is
//! the classic helpdesk failure that goes unnoticed for days), or sends failing without a
//! single success for longer than `health.max_send_failure`. The IMAP connection state and
//! last error are reported alongside so the cause is visible in the same place.
//!
//! Who sees what: everyone gets the status (`{"status": "ok"}` or `"unhealthy"`, with the HTTP
//! code); the detail (reasons, hosts, last errors, lease holder, counters) only signed-in staff
//! (a live review-page session cookie) and whoever may scrape `/metrics` (`Authorization:
//! Bearer <metrics.token>`; without a metrics token, direct loopback connections): see
//! [`DetailGate`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::config::HealthConfig;
use crate::inbound::imap::{ImapStatus, ImapStatusSnapshot};
use crate::outbound::SenderStats;
use crate::pipeline::InboundStats;
pub use crate::probe::ProbeStep;

/// What health is computed from; cheap to clone.
#[derive(Clone)]
pub struct HealthState {
    pub config: HealthConfig,
    pub inbound: Arc<InboundStats>,
    pub sender: Arc<SenderStats>,
    /// Present when the source is IMAP.
    pub imap: Option<Arc<ImapStatus>>,
    /// Unix ms when the workers started: silence is measured from here before a first fetch.
    pub started_ms: i64,
    pub source: String,
    pub transport: String,
    /// Who may see the detail; None: nobody (status only).
    pub gate: Option<DetailGate>,
    /// The background workers; one that died makes the report unhealthy.
    pub workers: Arc<Workers>,
}

/// Which background workers ended without being asked to (a panic, or an early return).
#[derive(Debug, Default)]
pub struct Workers {
    dead: std::sync::Mutex<Vec<String>>,
}

impl Workers {
    /// Runs `work` as a task of its own and notes it when it ends before `cancel` fired or
    /// panics: `/healthz` turns unhealthy.
    pub fn watch<F>(
        self: &Arc<Self>,
        name: &'static str,
        cancel: tokio_util::sync::CancellationToken,
        work: F,
    ) -> impl std::future::Future<Output = ()> + Send + 'static
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let me = self.clone();
        async move {
            let why = match tokio::spawn(work).await {
                Ok(()) if cancel.is_cancelled() => return,
                Ok(()) => "stopped".to_string(),
                Err(e) if e.is_panic() => {
                    let p = e.into_panic();
                    let text = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "non-text payload".into());
                    format!("panicked: {text}")
                }
                Err(e) => format!("ended: {e}"),
            };
            tracing::error!(worker = name, why = %why, "worker died; /healthz reports unhealthy");
            me.died(name, &why);
        }
    }

    /// Notes a worker that died.
    pub fn died(&self, name: &str, why: &str) {
        if let Ok(mut dead) = self.dead.lock() {
            dead.push(format!("worker {name} died ({why})"));
        }
    }

    pub fn dead(&self) -> Vec<String> {
        self.dead.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

/// Who may see `/healthz` in detail.
#[derive(Clone)]
pub struct DetailGate {
    /// The `/metrics` rule: the bearer token, or loopback when no token is configured.
    pub access: crate::access::Access,
    /// Signed-in staff (the review pages' sessions, checked by `review::web::auth`).
    pub sessions: Option<std::sync::Arc<dyn StaffSessions>>,
}

/// Whether a request comes from signed-in staff. A trait so `health` need not know the
/// review pages (which show health banners, and so depend on `health`).
pub trait StaffSessions: Send + Sync {
    fn signed_in<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>>;
}

impl DetailGate {
    async fn allows(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> bool {
        if self.access.check(headers, peer).is_ok() {
            return true;
        }
        match &self.sessions {
            Some(s) => s.signed_in(headers).await,
            None => false,
        }
    }
}

/// What an anonymous caller sees.
#[derive(Debug, Clone, Serialize)]
pub struct HealthStatus {
    /// `ok` or `unhealthy`.
    pub status: &'static str,
}

/// The JSON body of `/healthz`.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `ok` or `unhealthy`.
    pub status: &'static str,
    /// Why it is unhealthy (empty when ok).
    pub reasons: Vec<String>,
    pub checked_at: String,
    /// `0.1.0 (git 1a2b3c4d5e6f)`: which build answers.
    pub version: &'static str,
    pub inbound: InboundReport,
    pub outbound: OutboundReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imap: Option<ImapReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InboundReport {
    pub source: String,
    pub last_fetch_ok: Option<String>,
    pub last_fetch_error: Option<String>,
    pub fetched: u64,
    pub replied: u64,
    pub review: u64,
    pub ignored: u64,
    pub duplicates: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboundReport {
    pub transport: String,
    pub last_send_ok: Option<String>,
    pub last_send_error: Option<String>,
    pub sent: u64,
    pub retried: u64,
    pub dead: u64,
    /// When the SMTP relay became unavailable (absent while it is up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_down_since: Option<String>,
    /// Sends whose outcome was unknown (no reply to the final dot).
    pub unknown_outcomes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImapReport {
    pub connected: bool,
    pub connected_since: Option<String>,
    pub consecutive_failures: u32,
    /// IDLE push in use (otherwise polling).
    pub push: bool,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub capabilities: String,
    /// Which instance reads the mailbox (when reading is leased, i.e. `trialdesk run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseReport>,
}

/// The mailbox lease as `/healthz` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseReport {
    pub name: String,
    /// `holder` (this instance reads the mailbox) or `standby` (another one does).
    pub role: &'static str,
    /// This instance, as named in the lease.
    pub instance: String,
    /// The instance reading the mailbox, if any.
    pub holder: Option<String>,
    pub holder_since: Option<String>,
    /// When the holder's lease ends unless renewed.
    pub expires_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
}

fn rfc3339(ms: i64) -> Option<String> {
    if ms <= 0 {
        return None;
    }
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| t.to_string())
}

fn ago(now_ms: i64, then_ms: i64) -> String {
    let secs = ((now_ms - then_ms).max(0) / 1000) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

impl HealthState {
    /// Computes the report at `now_ms`.
    pub fn report(&self, now_ms: i64) -> HealthReport {
        let r = Ordering::Relaxed;
        let fetch_ok = self.inbound.last_fetch_ok_ms.load(r);
        let fetch_err = self.inbound.last_fetch_error_ms.load(r);
        let send_ok = self.sender.last_success_ms.load(r);
        let send_err = self.sender.last_failure_ms.load(r);
        let imap: Option<ImapStatusSnapshot> = self.imap.as_ref().map(|s| s.snapshot());
        let mut reasons = self.workers.dead();

        let silence_limit = self.config.max_fetch_silence.as_millis() as i64;
        let fetch_ref = if fetch_ok > 0 {
            fetch_ok
        } else {
            self.started_ms
        };
        let lease = imap.as_ref().and_then(|i| i.lease.clone());
        // A standby does not fetch (another instance reads the mailbox): it is healthy while
        // it can reach the database to take over.
        let standby = lease.as_ref().is_some_and(|l| !l.held);
        if let Some(l) = &lease {
            let ok = if l.last_ok_ms > 0 {
                l.last_ok_ms
            } else {
                self.started_ms
            };
            if now_ms - ok > silence_limit {
                reasons.push(format!(
                    "cannot reach the database for the mailbox lease for {} (limit {}){}",
                    ago(now_ms, ok),
                    humantime::format_duration(self.config.max_fetch_silence),
                    l.last_error
                        .as_ref()
                        .map(|e| format!("; last error: {e}"))
                        .unwrap_or_default()
                ));
            }
        }
        if !standby && now_ms - fetch_ref > silence_limit {
            let mut reason = if fetch_ok > 0 {
                format!(
                    "no successful fetch from the mail source for {} (limit {})",
                    ago(now_ms, fetch_ok),
                    humantime::format_duration(self.config.max_fetch_silence)
                )
            } else {
                format!(
                    "no successful fetch from the mail source since start {} ago (limit {})",
                    ago(now_ms, self.started_ms),
                    humantime::format_duration(self.config.max_fetch_silence)
                )
            };
            if let Some(e) = imap.as_ref().and_then(|i| i.last_error.clone()) {
                reason.push_str(&format!("; last IMAP error: {e}"));
            } else if fetch_err > fetch_ok {
                reason.push_str(&format!(
                    "; fetches failing since {} ago",
                    ago(now_ms, fetch_err)
                ));
            }
            reasons.push(reason);
        }

        let failure_limit = self.config.max_send_failure.as_millis() as i64;
        if send_err > send_ok {
            let since = if send_ok > 0 {
                send_ok
            } else {
                self.started_ms
            };
            if now_ms - since > failure_limit {
                reasons.push(format!(
                    "sending has been failing for {} without a success (limit {})",
                    ago(now_ms, since),
                    humantime::format_duration(self.config.max_send_failure)
                ));
            }
        }

        HealthReport {
            status: if reasons.is_empty() {
                "ok"
            } else {
                "unhealthy"
            },
            reasons,
            checked_at: rfc3339(now_ms).unwrap_or_default(),
            version: crate::VERSION,
            inbound: InboundReport {
                source: self.source.clone(),
                last_fetch_ok: rfc3339(fetch_ok),
                last_fetch_error: rfc3339(fetch_err),
                fetched: self.inbound.fetched.load(r),
                replied: self.inbound.replied.load(r),
                review: self.inbound.review.load(r),
                ignored: self.inbound.ignored.load(r),
                duplicates: self.inbound.duplicates.load(r),
                failed: self.inbound.failed.load(r),
            },
            outbound: OutboundReport {
                transport: self.transport.clone(),
                last_send_ok: rfc3339(send_ok),
                last_send_error: rfc3339(send_err),
                sent: self.sender.sent.load(r),
                retried: self.sender.retried.load(r),
                dead: self.sender.dead.load(r),
                relay_down_since: match self.sender.relay_down_since_ms.load(r) {
                    0 => None,
                    since => rfc3339(since),
                },
                unknown_outcomes: self.sender.unknown_outcomes.load(r),
            },
            imap: imap.map(|i| ImapReport {
                connected: i.connected,
                connected_since: i.connected_since_ms.and_then(rfc3339),
                consecutive_failures: i.consecutive_failures,
                push: i.push,
                last_error: i.last_error,
                last_error_at: i.last_error_ms.and_then(rfc3339),
                capabilities: i.capabilities,
                lease: i.lease.map(|l| LeaseReport {
                    name: l.name,
                    role: if l.held { "holder" } else { "standby" },
                    instance: l.me,
                    holder: l.holder,
                    holder_since: l.holder_since_ms.and_then(rfc3339),
                    expires_at: l.expires_at_ms.and_then(rfc3339),
                    last_error: l.last_error,
                    last_error_at: l.last_error_ms.and_then(rfc3339),
                }),
            }),
        }
    }
}

async fn healthz(
    State(state): State<HealthState>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> axum::response::Response {
    let report = state.report(jiff::Timestamp::now().as_millisecond());
    let code = if report.reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let peer = connect.map(|axum::Extension(ConnectInfo(addr))| addr);
    let detail = match &state.gate {
        Some(gate) => gate.allows(&headers, peer).await,
        None => false,
    };
    if detail {
        (code, Json(report)).into_response()
    } else {
        (
            code,
            Json(HealthStatus {
                status: report.status,
            }),
        )
            .into_response()
    }
}

/// `GET /healthz`. Merge it into the web app's router.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn state() -> HealthState {
        HealthState {
            workers: Arc::default(),
            config: HealthConfig {
                max_fetch_silence: Duration::from_secs(60),
                max_send_failure: Duration::from_secs(120),
            },
            inbound: Arc::new(InboundStats::default()),
            sender: Arc::new(SenderStats::default()),
            imap: None,
            started_ms: 1_000_000,
            source: "test".into(),
            transport: "test".into(),
            gate: None,
        }
    }

    #[test]
    fn healthy_right_after_start_then_silent_fetching_is_unhealthy() {
        let s = state();
        assert_eq!(s.report(1_000_000 + 30_000).status, "ok");
        let r = s.report(1_000_000 + 61_000);
        assert_eq!(r.status, "unhealthy");
        assert!(r.reasons[0].contains("since start"), "{:?}", r.reasons);
        s.inbound
            .last_fetch_ok_ms
            .store(1_050_000, Ordering::Relaxed);
        assert_eq!(s.report(1_100_000).status, "ok");
        s.inbound
            .last_fetch_error_ms
            .store(1_100_000, Ordering::Relaxed);
        let r = s.report(1_111_000);
        assert_eq!(r.status, "unhealthy");
        assert!(r.reasons[0].contains("1m 1s"), "{:?}", r.reasons);
        assert!(
            r.reasons[0].contains("failing since 11s"),
            "{:?}",
            r.reasons
        );
    }

    #[test]
    fn failing_sends_count_only_without_success() {
        let s = state();
        s.inbound
            .last_fetch_ok_ms
            .store(1_500_000, Ordering::Relaxed);
        s.sender.last_failure_ms.store(1_400_000, Ordering::Relaxed);
        // Failing since start (1_000_000) for 500 s > 120 s.
        let r = s.report(1_500_000);
        assert_eq!(r.status, "unhealthy");
        assert!(r.reasons[0].contains("sending"), "{:?}", r.reasons);
        // A later success clears it.
        s.sender.last_success_ms.store(1_450_000, Ordering::Relaxed);
        assert_eq!(s.report(1_500_000).status, "ok");
    }

    /// A standby (another instance reads the mailbox) does not fetch: healthy while it reaches
    /// the database for the lease; the holder is judged by its fetches.
    #[tokio::test]
    async fn a_standby_is_judged_by_its_lease_rounds_not_by_fetches() {
        use crate::lease::{Lease, LeaseSettings};
        let db = crate::config::DatabaseConfig {
            url: "sqlite::memory:".into(),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        };
        let store = crate::store::Store::open(&db, std::path::Path::new("."))
            .await
            .unwrap();
        let settings = LeaseSettings {
            ttl: Duration::from_secs(60),
            renew_every: Duration::from_secs(1),
        };
        let holder = Lease::new(store.clone(), "imap:h".into(), settings);
        let standby = Lease::new(store.clone(), "imap:h".into(), settings);
        holder.round().await;
        standby.round().await;
        let now = jiff::Timestamp::now().as_millisecond();
        let report = |lease: &Lease, at: i64| {
            let imap = Arc::new(ImapStatus::default());
            imap.set_lease(lease.handle());
            let mut s = state();
            s.started_ms = now;
            s.imap = Some(imap);
            s.report(at)
        };
        let r = report(&standby, now + 30_000);
        assert_eq!(r.status, "ok", "{:?}", r.reasons);
        let lease = r.imap.unwrap().lease.unwrap();
        assert_eq!(lease.role, "standby");
        assert_eq!(lease.holder, Some(holder.handle().snapshot().me));
        assert_eq!(
            report(&holder, now + 30_000)
                .imap
                .unwrap()
                .lease
                .unwrap()
                .role,
            "holder"
        );
        // Two minutes on: the holder has not fetched, the standby has not reached the database
        // (nothing ran the rounds): both say why.
        let r = report(&holder, now + 120_000);
        assert!(
            r.reasons.iter().any(|m| m.contains("no successful fetch")),
            "{:?}",
            r.reasons
        );
        let r = report(&standby, now + 120_000);
        assert!(
            !r.reasons.iter().any(|m| m.contains("no successful fetch")),
            "{:?}",
            r.reasons
        );
        assert!(
            r.reasons.iter().any(|m| m.contains("mailbox lease")),
            "{:?}",
            r.reasons
        );
    }

    #[tokio::test]
    async fn a_worker_that_dies_makes_health_unhealthy() {
        let s = state();
        let now = s.started_ms + 1000;
        s.inbound.last_fetch_ok_ms.store(now, Ordering::Relaxed);
        assert_eq!(s.report(now).status, "ok");
        let cancel = tokio_util::sync::CancellationToken::new();
        // Stopped on request: fine.
        let stopping = cancel.child_token();
        stopping.cancel();
        s.workers.watch("retention", stopping, async {}).await;
        assert_eq!(s.report(now).status, "ok");
        // A panic, and an early return, are not.
        s.workers
            .watch("sender", cancel.clone(), async { panic!("boom") })
            .await;
        s.workers.watch("reminders", cancel.clone(), async {}).await;
        let report = s.report(now);
        assert_eq!(report.status, "unhealthy");
        assert!(
            report
                .reasons
                .iter()
                .any(|r| r.contains("sender") && r.contains("boom")),
            "{:?}",
            report.reasons
        );
        assert!(
            report.reasons.iter().any(|r| r.contains("reminders")),
            "{:?}",
            report.reasons
        );
    }
}
