//! The outbox sender: claims due mail with a lease, sends it, records the result.
//!
//! What a failure means ([`SendError`]) decides what happens:
//! - the relay is unavailable ([`SendError::Relay`]): the row is handed back without counting
//!   the attempt, and the sender as a whole waits — one probe mail at a time, after a backoff
//!   from `retry_base` doubling to `retry_max` — until a send works. Meanwhile `/healthz`
//!   says since when the relay is down and one review item `relay_down` is open; it is
//!   resolved automatically when the relay takes mail again;
//! - this mail is refused for now ([`SendError::Transient`]): retried with exponential backoff
//!   until the mail is `give_up_after` old (and, if set, `max_attempts`), then dead-lettered;
//! - refused for good ([`SendError::Permanent`]): dead-lettered into the review queue with the
//!   server's answer;
//! - handed over without hearing the final reply ([`SendError::Unknown`]): it may have been
//!   delivered, so it is tried again only after `unknown_outcome_delay`, never at once.
//!
//! No DB transaction is held across a network send: the lease marks the row as ours meanwhile,
//! and a sender that dies mid-send leaves rows another sender picks up when the lease ends.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Outgoing, SendError, Transport};
use crate::clock::SharedClock;
use crate::config::OutboxConfig;
use crate::store::{OutboxRow, Store, StoreError};
use crate::worker::Outcome;

/// Counters for summaries, health and metrics.
#[derive(Debug, Default)]
pub struct SenderStats {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub dead: AtomicU64,
    /// Unix ms of the last successful send (0 = never).
    pub last_success_ms: AtomicI64,
    /// Unix ms of the last failed attempt (0 = never).
    pub last_failure_ms: AtomicI64,
    /// Unix ms since when the relay is unavailable (0 = it is not).
    pub relay_down_since_ms: AtomicI64,
    /// Sends whose outcome is unknown (no reply to the final dot).
    pub unknown_outcomes: AtomicU64,
}

/// The relay as this sender sees it.
#[derive(Debug, Default, Clone)]
struct RelayState {
    /// Unix ms of the first failure of the current outage (None: the relay is up).
    down_since: Option<i64>,
    /// Failures in a row during this outage (for the backoff).
    failures: u32,
    /// Unix ms before which no probe is sent.
    next_probe: i64,
}

/// What one send means for the rest of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    /// The relay is unavailable: stop sending, hand the rest back.
    RelayDown,
}

pub struct Sender {
    store: Store,
    transport: Arc<dyn Transport>,
    config: OutboxConfig,
    worker_id: String,
    clock: SharedClock,
    stats: Arc<SenderStats>,
    /// Woken when mail is queued, so replies leave at once rather than at the next poll.
    queued: Arc<Notify>,
    metrics: Arc<crate::counters::Metrics>,
    relay: std::sync::Mutex<RelayState>,
}

/// How long a send in hand may go on after a stop was asked for (below
/// [`crate::worker::SHUTDOWN_GRACE`], so its outcome is still recorded).
const SEND_GRACE: Duration = Duration::from_secs(20);

/// Longest sleep between looks at the outbox when nothing is due: rows queued by another
/// instance (or by a CLI command) are picked up at least this often.
const MAX_IDLE_SLEEP: Duration = Duration::from_secs(5);

impl Sender {
    pub fn new(
        store: Store,
        transport: Arc<dyn Transport>,
        config: OutboxConfig,
        worker_id: String,
        clock: SharedClock,
        queued: Arc<Notify>,
    ) -> Sender {
        Sender {
            store,
            transport,
            config,
            worker_id,
            clock,
            stats: Arc::new(SenderStats::default()),
            queued,
            metrics: Arc::new(crate::counters::Metrics::new()),
            relay: std::sync::Mutex::new(RelayState::default()),
        }
    }

    fn relay_state(&self) -> RelayState {
        self.relay.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Counts send attempts and their latency into `metrics` (the app's).
    pub fn with_metrics(mut self, metrics: Arc<crate::counters::Metrics>) -> Sender {
        self.metrics = metrics;
        self
    }

    /// Where this sender delivers (`file:…`, `smtp://…`), for summaries and health.
    pub fn describe_transport(&self) -> String {
        self.transport.describe()
    }

    pub fn stats(&self) -> Arc<SenderStats> {
        self.stats.clone()
    }

    /// Claims one batch and sends it. `Idle` when nothing was due, or when the relay is down
    /// and its next probe is not due yet.
    pub async fn step(&self, cancel: &CancellationToken) -> Result<Outcome, StoreError> {
        let now = self.clock.now().as_millisecond();
        let relay = self.relay_state();
        if relay.down_since.is_some() && now < relay.next_probe {
            return Ok(Outcome::Idle);
        }
        // While the relay is down, one mail probes it; the rest wait untouched.
        let limit = if relay.down_since.is_some() {
            1
        } else {
            i64::from(self.config.batch)
        };
        // The lease runs on the database's clock; locally it is followed on the monotonic
        // clock from just before the claim, so our idea of it ends no later than the
        // database's.
        let lease = self.config.lease;
        let lease_ms = lease.as_millis() as i64;
        let mut lease_until = tokio::time::Instant::now() + lease;
        let rows = self
            .store
            .claim_outbox(&self.worker_id, now, lease_ms, limit)
            .await?;
        if rows.is_empty() {
            return Ok(Outcome::Idle);
        }
        // After a renewal: the rows still ours (a row whose lease ran out may have been
        // claimed, and sent, by another sender meanwhile).
        let mut still_ours: Option<std::collections::HashSet<i64>> = None;
        let mut rows = rows.into_iter();
        let mut release_why = "released at shutdown";
        for row in rows.by_ref() {
            // A slow relay must not let the lease of the rows still waiting in this batch run
            // out: another instance would send them too. Renew at half time.
            if tokio::time::Instant::now() + lease / 2 >= lease_until {
                lease_until = tokio::time::Instant::now() + lease;
                let ids = self
                    .store
                    .renew_outbox_leases(&self.worker_id, lease_ms)
                    .await?;
                still_ours = Some(ids.into_iter().collect());
            }
            if still_ours
                .as_ref()
                .is_some_and(|ids| !ids.contains(&row.id))
            {
                continue;
            }
            if self.send_one(&row, lease_until, cancel).await? == Flow::RelayDown {
                release_why = "relay unavailable; not tried";
                break;
            }
            if cancel.is_cancelled() {
                break;
            }
        }
        // Shutting down, or the relay went away: hand back what we claimed but did not try,
        // without counting it.
        for row in rows {
            self.store
                .release_outbox(row.id, &self.worker_id, release_why)
                .await?;
        }
        Ok(Outcome::Done)
    }

    /// The relay failed: the whole sender waits. Opens the `relay_down` item on the first
    /// failure of an outage.
    async fn relay_failed(&self, error: &str, now: i64) -> Result<Duration, StoreError> {
        let (first, delay) = {
            let mut r = self.relay.lock().unwrap_or_else(|p| p.into_inner());
            let first = r.down_since.is_none();
            if first {
                r.down_since = Some(now);
            }
            r.failures = r.failures.saturating_add(1);
            let delay = retry_delay(&self.config, i64::from(r.failures));
            r.next_probe = now + delay.as_millis() as i64;
            (first, delay)
        };
        if first {
            self.stats.relay_down_since_ms.store(now, Ordering::Relaxed);
            let detail = format!(
                "The SMTP relay {} is unavailable: {error}. Mail waits in the outbox and is sent \
                 when it is back; this item is resolved by itself then.",
                self.transport.describe()
            );
            self.store.open_relay_down(&detail, now).await?;
            tracing::error!(error = %error, "SMTP relay unavailable; holding all mail until it is back");
        }
        Ok(delay)
    }

    /// A send worked: if the relay was down, it is back.
    async fn relay_ok(&self, now: i64) -> Result<(), StoreError> {
        let was = {
            let mut r = self.relay.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *r).down_since
        };
        if let Some(since) = was {
            self.stats.relay_down_since_ms.store(0, Ordering::Relaxed);
            let took = Duration::from_millis((now - since).max(0) as u64);
            let note = format!(
                "relay available again after {}",
                humantime::format_duration(Duration::from_secs(took.as_secs()))
            );
            self.store.close_relay_down(&note, now).await?;
            tracing::info!(down_for = ?took, "SMTP relay available again");
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(
        outbox_id = row.id,
        message_id = %row.message_id,
        purpose = %row.purpose,
        inbound_id = row.inbound_id,
        attempt = row.attempts,
        to = tracing::field::Empty,
    ))]
    async fn send_one(
        &self,
        row: &OutboxRow,
        lease_until: tokio::time::Instant,
        cancel: &CancellationToken,
    ) -> Result<Flow, StoreError> {
        let recipients = row.recipient_list()?;
        tracing::Span::current().record("to", recipients.join(", "));
        // A reminder planned days ago: the trial may have been converted or extended since.
        if row.purpose == "reminder" {
            if let Some(why) = self.store.reminder_stale(row.id).await? {
                self.store
                    .cancel_reminder_mail(row.id, &self.worker_id, &why)
                    .await?;
                tracing::info!(reason = %why, "reminder cancelled at send time");
                return Ok(Flow::Continue);
            }
        }
        let started = std::time::Instant::now();
        // A panic in the transport costs this one mail (dead-lettered for review), not the
        // sender.
        let send = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
            self.transport
                .send(Outgoing {
                    envelope_from: &row.envelope_from,
                    recipients: &recipients,
                    body: &row.body,
                })
                .await
        }));
        let send = async {
            send.await.unwrap_or_else(|panic| {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-text payload".into());
                tracing::error!(panic = %text, "sending this mail panicked; set aside for review");
                Err(SendError::Permanent(format!(
                    "unprocessable: sending this mail panicked: {text}"
                )))
            })
        };
        // At shutdown a send in hand gets SEND_GRACE; cut off then, it may have reached the
        // relay: recorded as an unknown outcome (not resent before the delay), not left
        // leased for another sender to resend when the lease ends.
        let result = tokio::select! {
            r = send => r,
            _ = async { cancel.cancelled().await; tokio::time::sleep(SEND_GRACE).await } => {
                Err(SendError::Unknown(format!(
                    "interrupted by shutdown after {}s",
                    SEND_GRACE.as_secs()
                )))
            }
        };
        let took = started.elapsed();
        let now = self.clock.now().as_millisecond();
        use crate::counters::SendResult;
        let age = Duration::from_millis((now - row.created_at).max(0) as u64);
        let too_old = age >= self.config.give_up_after
            || self
                .config
                .max_attempts
                .is_some_and(|max| row.attempts >= i64::from(max));
        match result {
            Ok(()) => {
                self.metrics
                    .send_attempt(&row.purpose, SendResult::Sent, took);
                let send_ms = took.as_millis() as u64;
                self.record_sent(row, now, lease_until).await?;
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                self.stats.last_success_ms.store(now, Ordering::Relaxed);
                let record_ms = started.elapsed().as_millis() as u64 - send_ms;
                tracing::info!(send_ms, record_ms, "sent");
                self.relay_ok(now).await?;
            }
            Err(SendError::Relay(e)) => {
                self.store
                    .release_outbox(row.id, &self.worker_id, &format!("relay unavailable: {e}"))
                    .await?;
                self.metrics
                    .send_attempt(&row.purpose, SendResult::RelayDown, took);
                self.stats.last_failure_ms.store(now, Ordering::Relaxed);
                let delay = self.relay_failed(&e, now).await?;
                tracing::warn!(error = %e, probe_in = ?delay, "relay unavailable; attempt not counted");
                return Ok(Flow::RelayDown);
            }
            Err(SendError::Unknown(e)) if !too_old => {
                let delay = self.config.unknown_outcome_delay;
                let next = now + delay.as_millis() as i64;
                let text = format!(
                    "outcome unknown (the relay may have it; not resent before {}): {e}",
                    jiff::Timestamp::from_millisecond(next)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                );
                self.store
                    .mark_retry(row.id, &self.worker_id, next, &text)
                    .await?;
                self.stats.unknown_outcomes.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .send_attempt(&row.purpose, SendResult::UnknownOutcome, took);
                self.stats.last_failure_ms.store(now, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in = ?delay, "no reply to the final dot: outcome unknown; not resent before the delay");
            }
            Err(SendError::Transient(e)) if !too_old => {
                let delay = retry_delay(&self.config, row.attempts);
                let next = now + delay.as_millis() as i64;
                self.store
                    .mark_retry(row.id, &self.worker_id, next, &e)
                    .await?;
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .send_attempt(&row.purpose, SendResult::Retried, took);
                self.stats.last_failure_ms.store(now, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in = ?delay, "send failed; will retry");
            }
            Err(err) => {
                let given_up = format!(
                    "gave up after {} attempts in {}",
                    row.attempts,
                    humantime::format_duration(Duration::from_secs(age.as_secs()))
                );
                let reason = match &err {
                    SendError::Transient(e) => format!("{given_up}: {e}"),
                    SendError::Unknown(e) => {
                        format!("{given_up}; the last outcome is unknown (it may have been delivered): {e}")
                    }
                    SendError::Permanent(e) | SendError::Relay(e) => e.clone(),
                };
                self.store
                    .mark_dead(row.id, &self.worker_id, &reason, now)
                    .await?;
                self.stats.dead.fetch_add(1, Ordering::Relaxed);
                self.metrics
                    .send_attempt(&row.purpose, SendResult::Dead, took);
                self.stats.last_failure_ms.store(now, Ordering::Relaxed);
                tracing::error!(error = %reason, "send failed for good; moved to the review queue");
            }
        }
        // A mail reached the relay and got an answer about itself: the relay is up.
        if self.relay_state().down_since.is_some() {
            self.relay_ok(now).await?;
        }
        Ok(Flow::Continue)
    }

    /// Records a delivery. The relay has the mail now: if the database is unreachable for a
    /// moment (restarting, failing over), keep trying while the row's lease lasts — giving up
    /// earlier would let another sender deliver it a second time after the lease.
    async fn record_sent(
        &self,
        row: &OutboxRow,
        now: i64,
        lease_until: tokio::time::Instant,
    ) -> Result<(), StoreError> {
        let deadline = lease_until;
        let mut backoff =
            crate::worker::Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match self.store.mark_sent(row.id, &self.worker_id, now).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_transient() => {
                    let delay = backoff.next_delay();
                    if tokio::time::Instant::now() + delay >= deadline {
                        tracing::error!(error = %e, "sent, but cannot record it before the lease ends: another sender may send it again");
                        return Err(e);
                    }
                    if backoff.failures() == 1 {
                        tracing::warn!(error = %e, "sent, but cannot record it yet; retrying while the lease lasts");
                    }
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sleeps until the next queued mail is due, new mail is queued, or `MAX_IDLE_SLEEP`.
    pub async fn wait(&self) {
        let now = self.clock.now().as_millisecond();
        let relay = self.relay_state();
        let until_due = if relay.down_since.is_some() {
            // The relay is down: nothing goes before the next probe, however much is due.
            Duration::from_millis(relay.next_probe.saturating_sub(now).max(0) as u64)
        } else {
            match self.store.next_outbox_due().await {
                Ok(Some(due)) => Duration::from_millis(due.saturating_sub(now).max(0) as u64),
                _ => MAX_IDLE_SLEEP,
            }
        };
        let sleep = until_due.min(MAX_IDLE_SLEEP).max(Duration::from_millis(10));
        tokio::select! {
            _ = self.queued.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }

    /// Sends until cancelled.
    pub async fn run(&self, cancel: CancellationToken) {
        crate::worker::run_loop(
            "sender",
            &cancel,
            crate::worker::Backoff::new(Duration::from_millis(200), Duration::from_secs(30)),
            || self.step(&cancel),
            || self.wait(),
        )
        .await;
    }

    /// Sends everything due now, then returns (for `run --once` and tests).
    pub async fn drain(&self) -> Result<(), StoreError> {
        let never = CancellationToken::new();
        while self.step(&never).await? == Outcome::Done {}
        Ok(())
    }
}

/// Delay before attempt `attempts + 1`: `retry_base * 2^(attempts-1)`, capped at `retry_max`,
/// with ±20 % jitter so a relay that comes back is not hit by every mail at once.
pub fn retry_delay(config: &OutboxConfig, attempts: i64) -> Duration {
    let exp = (attempts.max(1) - 1).min(30) as u32;
    let base = config
        .retry_base
        .saturating_mul(2u32.saturating_pow(exp))
        .min(config.retry_max);
    let jitter = 0.8 + 0.4 * rand::random::<f64>();
    base.mul_f64(jitter).min(config.retry_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_and_cap() {
        let c = OutboxConfig::default();
        let d1 = retry_delay(&c, 1);
        assert!(
            d1 >= Duration::from_secs(24) && d1 <= Duration::from_secs(36),
            "{d1:?}"
        );
        let d3 = retry_delay(&c, 3);
        assert!(
            d3 >= Duration::from_secs(96) && d3 <= Duration::from_secs(144),
            "{d3:?}"
        );
        assert!(retry_delay(&c, 30) <= c.retry_max);
    }
}
