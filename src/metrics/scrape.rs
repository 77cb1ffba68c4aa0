//! One scrape: the counters, then what is read now from the database and the workers' state
//! (a registry of its own per scrape, so nothing stale lingers).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::classify::ReviewReason;
use crate::counters::{Metrics, PURPOSES};
use crate::health::HealthState;
use crate::store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PurposeLabels {
    purpose: String,
}

/// Review reasons stored besides [`ReviewReason`]s.
const OTHER_REASONS: [&str; 3] = ["reminder_failed", "relay_down", "unprocessable"];

/// The exposition of `metrics` and of what is read now.
pub async fn render(metrics: &Metrics, store: &Store, health: Option<&HealthState>) -> String {
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
    metrics.encode(&mut out);
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &now);
    let _ = prometheus_client::encoding::text::encode_eof(&mut out);
    out
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
fn ms_to_seconds(ms: i64) -> f64 {
    if ms <= 0 {
        0.0
    } else {
        ms as f64 / 1000.0
    }
}
