//! Raw-mail retention: raw bytes of inbound mail older than `retention.raw_mail_days` are
//! deleted in bounded batches; decisions, extracted text and metadata stay.
//!
//! `trialdesk run` sweeps once at start and then every `retention.interval` (a day by
//! default); `trialdesk retention run` sweeps once. Several instances may sweep at the same
//! time: clearing a cleared row changes nothing.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::RetentionConfig;
use crate::store::{Store, StoreError};
use crate::worker::{run_loop, Backoff, Outcome};

const DAY_MS: i64 = 24 * 3600 * 1000;

pub struct Retention {
    store: Store,
    clock: SharedClock,
    raw_mail_days: u32,
    batch: u32,
    interval: Duration,
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Mails whose raw bytes were deleted.
    pub cleared: u64,
    /// Mails received before this moment (Unix ms) lost their raw bytes.
    pub cutoff_ms: i64,
}

impl Retention {
    /// `None` when raw mail is kept forever (`raw_mail_days = 0`).
    pub fn new(config: &RetentionConfig, store: Store, clock: SharedClock) -> Option<Retention> {
        (config.raw_mail_days > 0).then(|| Retention {
            store,
            clock,
            raw_mail_days: config.raw_mail_days,
            batch: config.batch,
            interval: config.interval,
        })
    }

    /// Mails received before this moment (Unix ms) lose their raw bytes.
    pub fn cutoff_ms(&self) -> i64 {
        self.clock.now().as_millisecond() - i64::from(self.raw_mail_days) * DAY_MS
    }

    /// Clears one batch: `Done` when the batch was full (more may be left), else `Idle`.
    pub async fn step(&self) -> Result<Outcome, StoreError> {
        let cleared = self
            .store
            .clear_raw_before(self.cutoff_ms(), self.batch)
            .await?;
        if cleared > 0 {
            tracing::info!(
                cleared,
                days = self.raw_mail_days,
                "deleted raw mail past retention"
            );
        }
        Ok(if cleared >= u64::from(self.batch) {
            Outcome::Done
        } else {
            Outcome::Idle
        })
    }

    /// Sweeps until nothing past retention is left (the CLI).
    pub async fn sweep(&self) -> Result<Sweep, StoreError> {
        let cutoff_ms = self.cutoff_ms();
        let mut cleared = 0;
        loop {
            let n = self.store.clear_raw_before(cutoff_ms, self.batch).await?;
            cleared += n;
            if n < u64::from(self.batch) {
                return Ok(Sweep { cleared, cutoff_ms });
            }
        }
    }

    /// Sweeps now and then every `interval`, until cancelled (between batches).
    pub async fn run(self, cancel: CancellationToken) {
        let interval = self.interval;
        run_loop(
            "retention",
            &cancel,
            Backoff::new(
                Duration::from_secs(60),
                interval.min(Duration::from_secs(3600)),
            ),
            || self.step(),
            || tokio::time::sleep(interval),
        )
        .await;
    }
}
