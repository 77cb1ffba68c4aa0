//! The inbound worker: drains a mail source through the pipeline.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Pipeline, PipelineError, Processed};
use crate::classify::Action;
use crate::inbound::{Disposition, MailSource, RawMail, SourceError};
use crate::telemetry::ErrorChain;
use crate::worker::{Outcome, Worker};

/// Counters for summaries, health and metrics.
#[derive(Debug, Default)]
pub struct InboundStats {
    pub fetched: AtomicU64,
    /// Answered (flagged or not).
    pub replied: AtomicU64,
    /// Answered and also given a review item (a subset of `replied`).
    pub replied_flagged: AtomicU64,
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

/// Why one mail could not be processed.
enum Failure {
    /// The database is unreachable: the round stops, the mail is offered again.
    Transient(PipelineError),
    /// Failed for a reason retrying may not fix.
    Failed(String),
    /// The processing task panicked.
    Panicked(String),
}

/// The panic message of a failed task, or how it ended.
fn panic_text(join: tokio::task::JoinError) -> String {
    if !join.is_panic() {
        return format!("processing task ended: {join}");
    }
    let payload = join.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
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
    /// Non-transient failures per mail handle; at `max_failures` the mail is set aside.
    failures: HashMap<String, u32>,
    max_failures: u32,
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
            failures: HashMap::new(),
            max_failures: 3,
            backoff: (Duration::from_millis(500), Duration::from_secs(60)),
        }
    }

    /// After this many non-transient failures a mail is set aside as `unprocessable`
    /// (`mail.max_processing_failures`).
    pub fn with_max_failures(mut self, n: u32) -> Self {
        self.max_failures = n.max(1);
        self
    }

    /// Processes one mail in a task of its own: a panic costs that mail, not the worker.
    async fn process_contained(&self, mail: &RawMail) -> Result<Processed, Failure> {
        let pipeline = self.pipeline.clone();
        let owned = mail.clone();
        match tokio::spawn(async move { pipeline.process(&owned).await }).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) if e.is_transient() => Err(Failure::Transient(e)),
            Ok(Err(e)) => Err(Failure::Failed(ErrorChain(&e).to_string())),
            Err(join) => Err(Failure::Panicked(panic_text(join))),
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
        // Listed but unreadable: set aside for review and acknowledged, so they never stall
        // the source.
        let unreadable = self.source.take_unreadable();
        for u in &unreadable {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            metrics.processing_failed();
            tracing::error!(origin = %u.mail.origin, error = %u.error, "cannot read mail; set aside for review as unprocessable");
            self.pipeline.set_aside(&u.mail, &u.error).await?;
            self.stats.review.fetch_add(1, Ordering::Relaxed);
        }
        if !unreadable.is_empty() {
            let acks: Vec<_> = unreadable
                .iter()
                .map(|u| (&u.mail, Disposition::Review))
                .collect();
            self.source.ack_all(&acks).await?;
        }
        if mails.is_empty() {
            // A source that stopped listing at its per-round bound goes on at once.
            return Ok(if unreadable.is_empty() && !self.source.more_to_list() {
                Outcome::Idle
            } else {
                Outcome::Done
            });
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
            let failure = match self.process_contained(mail).await {
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
                    if let Processed::Recorded { flagged: true, .. } = &processed {
                        self.stats.replied_flagged.fetch_add(1, Ordering::Relaxed);
                    }
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
                    self.failures.remove(&mail.handle);
                    handled.push((mail, disposition));
                    continue;
                }
                Err(f) => f,
            };
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            metrics.processing_failed();
            let why = match failure {
                Failure::Transient(e) => {
                    // The database is unreachable: stop the round; the loop backs off.
                    stopped = Some(e);
                    break;
                }
                Failure::Panicked(text) => {
                    tracing::error!(origin = %mail.origin, panic = %text, "processing a mail panicked; set aside for review as unprocessable");
                    format!("processing panicked: {text}")
                }
                Failure::Failed(text) => {
                    let n = self.failures.entry(mail.handle.clone()).or_insert(0);
                    *n += 1;
                    if *n < self.max_failures {
                        tracing::error!(origin = %mail.origin, error = %text, failures = *n, "could not process mail; set aside and retried later");
                        self.quarantine.insert(mail.handle.clone(), Instant::now());
                        continue;
                    }
                    tracing::error!(origin = %mail.origin, error = %text, failures = *n, "could not process mail again; set aside for review as unprocessable");
                    format!("failed {n} times: {text}")
                }
            };
            match self.pipeline.set_aside(mail, &why).await {
                Ok(_) => {
                    self.failures.remove(&mail.handle);
                    self.stats.review.fetch_add(1, Ordering::Relaxed);
                    handled.push((mail, Disposition::Review));
                }
                Err(e) => {
                    stopped = Some(e);
                    break;
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

    /// Runs until cancelled, waiting on the source when idle (the loop every worker shares,
    /// [`crate::worker::run_worker`]), then closes the source.
    pub async fn run(mut self, cancel: CancellationToken) {
        tracing::debug!(source = %self.source.describe(), "inbound worker started");
        let backoff = crate::worker::Backoff::new(self.backoff.0, self.backoff.1);
        crate::worker::run_worker("inbound", &cancel, backoff, &mut self).await;
        self.source.close().await;
    }
}

impl<S: MailSource> Worker for InboundWorker<S> {
    type Error = RoundError;

    fn step(
        &mut self,
        cancel: &CancellationToken,
    ) -> impl std::future::Future<Output = Result<Outcome, RoundError>> {
        InboundWorker::step(self, cancel)
    }

    fn wait(&mut self) -> impl std::future::Future<Output = ()> {
        self.source.wait()
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
        /// Fetches that come back empty first, with more to list (a listing bound reached).
        unlisted_rounds: usize,
        more: bool,
    }

    impl MailSource for Fake {
        async fn fetch(
            &mut self,
            max: usize,
            skip: &HashSet<String>,
        ) -> Result<Vec<RawMail>, SourceError> {
            self.more = self.unlisted_rounds > 0;
            if self.more {
                self.unlisted_rounds -= 1;
                return Ok(Vec::new());
            }
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

        fn more_to_list(&self) -> bool {
            self.more
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
            unlisted_rounds: 0,
            more: false,
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

    fn fake(n: usize) -> Fake {
        Fake {
            mails: (1..=n).map(mail).collect(),
            batch: 100,
            acked: Vec::new(),
            offered: Vec::new(),
            unlisted_rounds: 0,
            more: false,
        }
    }

    /// A source that stopped listing at its per-round bound returns nothing but has more to
    /// list: the round counts as work done, so the worker (and `run --once`'s drain) goes on
    /// at once instead of waiting for new mail, and reaches the mail above.
    #[tokio::test]
    async fn an_empty_round_with_more_to_list_is_followed_at_once() {
        let mut source = fake(1);
        source.unlisted_rounds = 2;
        let mut worker = InboundWorker::new(source, Arc::new(pipeline().await));
        let cancel = CancellationToken::new();
        assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
        assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
        worker.drain().await.unwrap();
        assert_eq!(worker.source.acked, vec!["h1".to_string()]);
        assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Idle);
    }

    async fn open_items(worker: &InboundWorker<Fake>) -> Vec<(String, String)> {
        worker
            .pipeline
            .store()
            .review_items(&Default::default())
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.reason, i.detail))
            .collect()
    }

    /// A panic while processing one mail costs that mail (set aside as `unprocessable`, raw
    /// bytes kept), not the batch and not the worker.
    #[tokio::test]
    async fn a_panic_on_one_mail_sets_it_aside_and_the_batch_goes_on() {
        let hook: super::super::FaultHook = Arc::new(|m: &RawMail| {
            if m.handle == "h2" {
                panic!("injected fault for h2");
            }
            Ok(())
        });
        let pipeline = pipeline().await.with_fault(hook);
        let mut worker = InboundWorker::new(fake(3), Arc::new(pipeline));
        let cancel = CancellationToken::new();
        assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
        assert_eq!(worker.source.acked, vec!["h1", "h2", "h3"]);
        let items = open_items(&worker).await;
        let set_aside: Vec<_> = items.iter().filter(|(r, _)| r == "unprocessable").collect();
        assert_eq!(set_aside.len(), 1, "{items:?}");
        assert!(
            set_aside[0].1.contains("injected fault for h2"),
            "{items:?}"
        );
        let store = worker.pipeline.store();
        let item = store
            .review_items(&Default::default())
            .await
            .unwrap()
            .into_iter()
            .find(|i| i.reason == "unprocessable")
            .unwrap();
        let raw = store.inbound_raw(item.inbound_id.unwrap()).await.unwrap();
        assert_eq!(raw.as_deref(), Some(&mail(2).bytes[..]), "raw bytes kept");
        // The worker lives on: the next round works.
        worker.source.mails.push(mail(4));
        assert_eq!(worker.step(&cancel).await.unwrap(), Outcome::Done);
        assert_eq!(worker.source.acked.len(), 4);
    }

    /// A mail failing for a non-transient reason is retried after its quarantine, and set
    /// aside after `max_failures`; the others flow meanwhile.
    #[tokio::test]
    async fn a_mail_failing_three_times_is_set_aside() {
        let hook: super::super::FaultHook = Arc::new(|m: &RawMail| match m.handle.as_str() {
            "h1" => Err(PipelineError::Failed("injected failure".into())),
            _ => Ok(()),
        });
        let pipeline = pipeline().await.with_fault(hook);
        let mut worker = InboundWorker::new(fake(2), Arc::new(pipeline)).with_max_failures(3);
        let cancel = CancellationToken::new();
        worker.step(&cancel).await.unwrap();
        assert_eq!(worker.source.acked, vec!["h2"]);
        for round in 2..=3 {
            worker.quarantine.clear();
            worker.step(&cancel).await.unwrap();
            let items = open_items(&worker).await;
            let set_aside = items.iter().any(|(r, _)| r == "unprocessable");
            assert_eq!(set_aside, round == 3, "round {round}: {items:?}");
        }
        assert_eq!(worker.source.acked, vec!["h2", "h1"]);
        let items = open_items(&worker).await;
        assert!(
            items
                .iter()
                .any(|(r, d)| r == "unprocessable" && d.contains("failed 3 times")),
            "{items:?}"
        );
    }
}
