//! The inbound worker: drains a mail source through the pipeline.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Pipeline, PipelineError, Processed};
use crate::classify::Action;
use crate::inbound::{Disposition, MailSource, SourceError};
use crate::telemetry::ErrorChain;
use crate::worker::Outcome;

/// Counters for summaries, health and metrics.
#[derive(Debug, Default)]
pub struct InboundStats {
    pub fetched: AtomicU64,
    pub replied: AtomicU64,
    pub review: AtomicU64,
    pub ignored: AtomicU64,
    pub duplicates: AtomicU64,
    pub failed: AtomicU64,
    /// Unix ms of the last fetch that worked (0 = never).
    pub last_fetch_ok_ms: AtomicI64,
    /// Unix ms of the last fetch that failed (0 = never).
    pub last_fetch_error_ms: AtomicI64,
}

/// Errors of one round: the source failing, or the store.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// How many mails are fetched per round.
const BATCH: usize = 100;
/// A mail whose processing failed for a non-transient reason is set aside this long, so one
/// bad mail cannot stall the ones behind it; it is retried afterwards.
const QUARANTINE: Duration = Duration::from_secs(300);

pub struct InboundWorker<S: MailSource> {
    source: S,
    pipeline: Arc<Pipeline>,
    stats: Arc<InboundStats>,
    quarantine: HashMap<String, Instant>,
    /// Delays after a failed round (source unreachable, database down).
    backoff: (Duration, Duration),
}

impl<S: MailSource> InboundWorker<S> {
    pub fn new(source: S, pipeline: Arc<Pipeline>) -> Self {
        InboundWorker {
            source,
            pipeline,
            stats: Arc::new(InboundStats::default()),
            quarantine: HashMap::new(),
            backoff: (Duration::from_millis(500), Duration::from_secs(60)),
        }
    }

    /// Sets the first and the longest delay after a failed round (e.g. IMAP reconnects).
    pub fn with_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = (first, max);
        self
    }

    /// Where a mail already recorded earlier is filed: by the outcome recorded then (a crash
    /// between commit and filing must not put an answered mail among the ignored ones).
    async fn recorded_disposition(&self, inbound_id: i64) -> Result<Disposition, PipelineError> {
        let action = self
            .pipeline
            .store()
            .inbound(inbound_id)
            .await?
            .map(|r| r.action);
        Ok(match action.as_deref() {
            Some("reply") => Disposition::Answered,
            Some("review") => Disposition::Review,
            _ => Disposition::Ignored,
        })
    }

    pub fn stats(&self) -> Arc<InboundStats> {
        self.stats.clone()
    }

    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// Fetches one batch and processes it, mail by mail, stopping between mails on cancel.
    pub async fn step(&mut self, cancel: &CancellationToken) -> Result<Outcome, RoundError> {
        self.quarantine
            .retain(|_, since| since.elapsed() < QUARANTINE);
        let now_ms = || jiff::Timestamp::now().as_millisecond();
        let metrics = self.pipeline.metrics().clone();
        let started = Instant::now();
        // Left out by the source itself, before its batch limits apply: however many are set
        // aside, they neither fill the batch nor are downloaded again.
        let skip: HashSet<String> = self.quarantine.keys().cloned().collect();
        let mails = match self.source.fetch(BATCH, &skip).await {
            Ok(m) => {
                self.stats
                    .last_fetch_ok_ms
                    .store(now_ms(), Ordering::Relaxed);
                metrics.fetch_done(started.elapsed(), true);
                m
            }
            Err(e) => {
                self.stats
                    .last_fetch_error_ms
                    .store(now_ms(), Ordering::Relaxed);
                metrics.fetch_done(started.elapsed(), false);
                return Err(e.into());
            }
        };
        if mails.is_empty() {
            return Ok(Outcome::Idle);
        }
        // Filed together after the round (one IMAP command per outcome instead of one per
        // mail); each was committed before it is listed here, and a crash before the filing
        // only means it is offered again and recognised as a duplicate.
        let mut handled = Vec::with_capacity(mails.len());
        let mut stopped = None;
        for mail in &mails {
            if cancel.is_cancelled() {
                break;
            }
            self.stats.fetched.fetch_add(1, Ordering::Relaxed);
            metrics.mail_fetched();
            match self.pipeline.process(mail).await {
                Ok(processed) => {
                    let counter = match &processed {
                        Processed::Duplicate { .. } => &self.stats.duplicates,
                        Processed::Recorded { action, .. } => match action {
                            Action::Reply => &self.stats.replied,
                            Action::Review => &self.stats.review,
                            Action::Ignore => &self.stats.ignored,
                        },
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    let disposition = match &processed {
                        Processed::Duplicate { inbound_id } => {
                            match self.recorded_disposition(*inbound_id).await {
                                Ok(d) => d,
                                Err(e) => {
                                    stopped = Some(e);
                                    break;
                                }
                            }
                        }
                        recorded => recorded.disposition(),
                    };
                    handled.push((mail, disposition));
                }
                Err(e) if e.is_transient() => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    metrics.processing_failed();
                    // The database is unreachable: stop the round; the loop backs off.
                    stopped = Some(e);
                    break;
                }
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    metrics.processing_failed();
                    tracing::error!(origin = %mail.origin, error = %ErrorChain(&e), "could not process mail; set aside and retried later");
                    self.quarantine.insert(mail.handle.clone(), Instant::now());
                }
            }
        }
        if !handled.is_empty() {
            self.source.ack_all(&handled).await?;
        }
        if let Some(e) = stopped {
            return Err(e.into());
        }
        Ok(Outcome::Done)
    }

    /// Processes until the source is empty (for `run --once`).
    pub async fn drain(&mut self) -> Result<(), RoundError> {
        let never = CancellationToken::new();
        while self.step(&never).await? == Outcome::Done {}
        Ok(())
    }

    /// Runs until cancelled, waiting on the source when idle.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = crate::worker::Backoff::new(self.backoff.0, self.backoff.1);
        while !cancel.is_cancelled() {
            // A mail in hand is finished (its transaction commits or not; an unacknowledged
            // one is offered again and recognised); a hanging fetch is abandoned after the
            // grace.
            let result = tokio::select! {
                r = self.step(&cancel) => r,
                _ = crate::worker::grace_over(&cancel) => {
                    tracing::warn!("inbound round abandoned at shutdown");
                    break;
                }
            };
            match result {
                Ok(Outcome::Done) => backoff.reset(),
                Ok(Outcome::Idle) => {
                    backoff.reset();
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = self.source.wait() => {}
                    }
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(source = %self.source.describe(), error = %ErrorChain(&e), retry_in = ?delay, "inbound round failed; backing off");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.source.close().await;
        tracing::debug!("inbound worker stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::RawMail;

    /// Hands out its mails oldest first, at most `batch` per fetch (like `imap.batch_size`),
    /// leaving out skipped handles as the real sources do; records what it was asked.
    struct Fake {
        mails: Vec<RawMail>,
        batch: usize,
        acked: Vec<String>,
        offered: Vec<String>,
    }

    impl MailSource for Fake {
        async fn fetch(
            &mut self,
            max: usize,
            skip: &HashSet<String>,
        ) -> Result<Vec<RawMail>, SourceError> {
            let out: Vec<RawMail> = self
                .mails
                .iter()
                .filter(|m| !self.acked.contains(&m.handle) && !skip.contains(&m.handle))
                .take(max.min(self.batch))
                .cloned()
                .collect();
            self.offered.extend(out.iter().map(|m| m.handle.clone()));
            Ok(out)
        }

        async fn ack(&mut self, mail: &RawMail, _d: Disposition) -> Result<(), SourceError> {
            self.acked.push(mail.handle.clone());
            Ok(())
        }

        async fn wait(&mut self) {}

        fn describe(&self) -> String {
            "fake".into()
        }
    }

    async fn pipeline() -> Pipeline {
        let text = "[database]\nurl = \"sqlite::memory:\"\nmax_connections = 1\n\
             [security]\ntrusted_authserv_ids = [\"mx.helpdesk.example.test\"]\n\
             [mail]\nfrom = \"helpdesk@example.test\"\n";
        let mut config = crate::config::Config::from_toml_str(
            text,
            std::path::Path::new("test.toml"),
            ".".into(),
            &[],
        )
        .unwrap();
        config.templates.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into();
        let app = crate::app::App::open(config).await.unwrap();
        app.pipeline(Arc::new(tokio::sync::Notify::new())).unwrap()
    }

    fn mail(n: usize) -> RawMail {
        let bytes = format!(
            "From: someone{n}@example.org\r\nTo: helpdesk@example.test\r\n\
             Message-ID: <m{n}@example.org>\r\nSubject: hello {n}\r\n\r\nhi\r\n"
        )
        .into_bytes();
        RawMail {
            origin: format!("fake:{n}"),
            size: bytes.len() as u64,
            bytes,
            handle: format!("h{n}"),
        }
    }

    /// Set-aside mails oldest in the source, enough to fill a whole batch: the healthy mail
    /// behind them is still processed in the same round, and they are not handed out again.
    #[tokio::test]
    async fn quarantined_mails_filling_a_batch_do_not_hide_the_next_one() {
        let batch = 3;
        let source = Fake {
            mails: (1..=batch + 1).map(mail).collect(),
            batch,
            acked: Vec::new(),
            offered: Vec::new(),
        };
        let mut worker = InboundWorker::new(source, Arc::new(pipeline().await));
        for n in 1..=batch {
            worker.quarantine.insert(format!("h{n}"), Instant::now());
        }
        let cancel = CancellationToken::new();
        assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
        let healthy = format!("h{}", batch + 1);
        assert_eq!(worker.source.offered, vec![healthy.clone()]);
        assert_eq!(worker.source.acked, vec![healthy]);
        assert_eq!(worker.stats.fetched.load(Ordering::Relaxed), 1);
        // Nothing else to do while they are set aside; they are still there, unacknowledged.
        assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Idle);
        assert_eq!(worker.source.offered.len(), 1);
        // Once the quarantine is over (as its expiry does), they are offered again.
        worker.quarantine.clear();
        assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
        assert_eq!(worker.source.offered.len(), 1 + batch);
    }
}
