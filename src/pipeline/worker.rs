//! The inbound worker: drains a mail source through the pipeline.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use futures::FutureExt;

use super::{Group, Pipeline, PipelineError, Prepared, Processed, Ready};
use crate::classify::{Action, Inspection};
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

impl Failure {
    fn of(e: PipelineError) -> Failure {
        if e.is_transient() {
            Failure::Transient(e)
        } else {
            Failure::Failed(ErrorChain(&e).to_string())
        }
    }
}

/// The message a panic carried.
fn panic_payload_text(payload: Box<dyn std::any::Any + Send>) -> String {
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
/// Recorded mails are filed (moved out of the inbox) once this many wait, or once the oldest
/// has waited [`FILE_AFTER`], and always before the worker idles. Filing changes the mailbox,
/// and a Maildir server (Dovecot) rescans the whole folder on its next command after a
/// change: filing every round of 100 made a 100,000-mail backlog quadratic in the server.
const FILE_BATCH: usize = 1000;
const FILE_AFTER: Duration = Duration::from_secs(5);
/// How many mails share one read of the store's facts ([`super::RoundFacts`]): four queries
/// per chunk instead of four per mail, while only a chunk's inspections are held at once
/// (a whole round's would add megabytes to the resident set).
const FACTS_CHUNK: usize = 16;
/// A mail whose processing failed for a non-transient reason is set aside this long, so one
/// bad mail cannot stall the ones behind it; it is retried afterwards.
const QUARANTINE: Duration = Duration::from_secs(300);

pub struct InboundWorker<S: MailSource> {
    source: S,
    rounds: Rounds,
    /// Committed and not yet filed: filed in batches ([`FILE_BATCH`], [`FILE_AFTER`]) while
    /// the next round is processed (the source's command and the pipeline's work overlap),
    /// and left out of the listings meanwhile. Only handles are kept, not the bytes.
    unfiled: Vec<(RawMail, Disposition)>,
    /// When the oldest of `unfiled` was committed.
    unfiled_since: Option<Instant>,
    /// [`FILE_BATCH`] and [`FILE_AFTER`] (tests file every round).
    file_batch: (usize, Duration),
    /// Delays after a failed round (source unreachable, database down).
    backoff: (Duration, Duration),
}

/// What a round needs besides the source.
struct Rounds {
    pipeline: Arc<Pipeline>,
    stats: Arc<InboundStats>,
    quarantine: HashMap<String, Instant>,
    /// Non-transient failures per mail handle; at `max_failures` the mail is set aside.
    failures: HashMap<String, u32>,
    max_failures: u32,
}

impl<S: MailSource> InboundWorker<S> {
    pub fn new(source: S, pipeline: Arc<Pipeline>) -> Self {
        InboundWorker {
            source,
            rounds: Rounds {
                pipeline,
                stats: Arc::new(InboundStats::default()),
                quarantine: HashMap::new(),
                failures: HashMap::new(),
                max_failures: 3,
            },
            unfiled: Vec::new(),
            unfiled_since: None,
            file_batch: (FILE_BATCH, FILE_AFTER),
            backoff: (Duration::from_millis(500), Duration::from_secs(60)),
        }
    }

    /// Files recorded mails once `count` wait or the oldest has waited `after` (and always
    /// before idling).
    pub fn with_filing_batch(mut self, count: usize, after: Duration) -> Self {
        self.file_batch = (count.max(1), after);
        self
    }

    /// After this many non-transient failures a mail is set aside as `unprocessable`
    /// (`mail.max_processing_failures`).
    pub fn with_max_failures(mut self, n: u32) -> Self {
        self.rounds.max_failures = n.max(1);
        self
    }

    /// Sets the first and the longest delay after a failed round (e.g. IMAP reconnects).
    pub fn with_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = (first, max);
        self
    }

    pub fn stats(&self) -> Arc<InboundStats> {
        self.rounds.stats.clone()
    }

    pub fn source_mut(&mut self) -> &mut S {
        &mut self.source
    }

    /// Fetches one batch and processes it, mail by mail, stopping between mails on cancel,
    /// while the previous round's mails are filed.
    pub async fn step(&mut self, cancel: &CancellationToken) -> Result<Outcome, RoundError> {
        self.rounds
            .quarantine
            .retain(|_, since| since.elapsed() < QUARANTINE);
        let now_ms = || jiff::Timestamp::now().as_millisecond();
        let stats = self.rounds.stats.clone();
        let metrics = self.rounds.pipeline.metrics().clone();
        let started = Instant::now();
        // Left out by the source itself, before its batch limits apply: however many are set
        // aside, they neither fill the batch nor are downloaded again. Mails waiting to be
        // filed are recorded already.
        let skip: HashSet<String> = self
            .rounds
            .quarantine
            .keys()
            .chain(self.unfiled.iter().map(|(m, _)| &m.handle))
            .cloned()
            .collect();
        let mails = match self.source.fetch(BATCH, &skip).await {
            Ok(m) => {
                stats.last_fetch_ok_ms.store(now_ms(), Ordering::Relaxed);
                metrics.fetch_done(started.elapsed(), true);
                m
            }
            Err(e) => {
                stats.last_fetch_error_ms.store(now_ms(), Ordering::Relaxed);
                metrics.fetch_done(started.elapsed(), false);
                return Err(e.into());
            }
        };
        // Listed but unreadable: set aside for review and acknowledged, so they never stall
        // the source.
        let unreadable = self.source.take_unreadable();
        for u in &unreadable {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            metrics.processing_failed();
            tracing::error!(origin = %u.mail.origin, error = %u.error, "cannot read mail; set aside for review as unprocessable");
            self.rounds.pipeline.set_aside(&u.mail, &u.error).await?;
            stats.review.fetch_add(1, Ordering::Relaxed);
        }
        if !unreadable.is_empty() {
            let acks: Vec<_> = unreadable
                .iter()
                .map(|u| (&u.mail, Disposition::Review))
                .collect();
            self.source.ack_all(&acks).await?;
        }
        if mails.is_empty() {
            self.file_unfiled().await?;
            // A source that stopped listing at its per-round bound goes on at once.
            return Ok(if unreadable.is_empty() && !self.source.more_to_list() {
                Outcome::Idle
            } else {
                Outcome::Done
            });
        }
        // Filed together (one IMAP command per outcome instead of one per mail), in batches,
        // during a later round; each was committed before it is listed, and a crash before
        // the filing only means it is offered again and recognised as a duplicate.
        let (count, after) = self.file_batch;
        let due = self.unfiled.len() >= count
            || self
                .unfiled_since
                .is_some_and(|since| since.elapsed() >= after);
        let filing = if due {
            self.unfiled_since = None;
            std::mem::take(&mut self.unfiled)
        } else {
            Vec::new()
        };
        let mut handled = Vec::with_capacity(mails.len());
        let (filed, stopped) = tokio::join!(
            file(&mut self.source, &filing),
            self.rounds.process_round(&mails, cancel, &mut handled),
        );
        // Listed in the source's order (a set-aside mail is recorded before its group).
        let position: HashMap<&str, usize> = mails
            .iter()
            .enumerate()
            .map(|(i, m)| (m.handle.as_str(), i))
            .collect();
        handled.sort_by_key(|(mail, _)| position.get(mail.handle.as_str()).copied());
        if !handled.is_empty() && self.unfiled.is_empty() {
            self.unfiled_since = Some(Instant::now());
        }
        self.unfiled
            .extend(handled.into_iter().map(|(m, d)| (m.handle_only(), d)));
        // The source failing first: its mails are listed again and known as duplicates.
        filed?;
        stopped?;
        Ok(Outcome::Done)
    }

    /// Files what the last round committed (before idling, and at the end).
    async fn file_unfiled(&mut self) -> Result<(), SourceError> {
        self.unfiled_since = None;
        let filing = std::mem::take(&mut self.unfiled);
        file(&mut self.source, &filing).await
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
        if let Err(e) = self.file_unfiled().await {
            tracing::warn!(error = %e, "recorded mails left unfiled at shutdown; they are recognised when read again");
        }
        self.source.close().await;
    }
}

/// Files mails with their outcomes (nothing to do for none).
async fn file<S: MailSource>(
    source: &mut S,
    mails: &[(RawMail, Disposition)],
) -> Result<(), SourceError> {
    if mails.is_empty() {
        return Ok(());
    }
    let acks: Vec<(&RawMail, Disposition)> = mails.iter().map(|(m, d)| (m, *d)).collect();
    source.ack_all(&acks).await
}

impl Rounds {
    /// Records decided mails; a panic while recording (the worker runs uncontained) becomes
    /// a failure of this group, as one in deciding does for its mail.
    async fn record_contained(&self, ready: &[Ready]) -> Result<Vec<Processed>, Failure> {
        let record = self.pipeline.record(ready);
        match std::panic::AssertUnwindSafe(record).catch_unwind().await {
            Ok(Ok(outcomes)) => Ok(outcomes),
            Ok(Err(e)) => Err(Failure::of(e)),
            Err(payload) => Err(Failure::Panicked(panic_payload_text(payload))),
        }
    }

    /// Decides one mail; a panic costs that mail, not the worker or its round.
    async fn prepare_contained(
        &self,
        mail: &RawMail,
        inspection: Inspection,
        group: &Group,
    ) -> Result<Prepared, Failure> {
        let prepare = self.pipeline.prepare(mail, inspection, group);
        match std::panic::AssertUnwindSafe(prepare).catch_unwind().await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(Failure::of(e)),
            Err(payload) => Err(Failure::Panicked(panic_payload_text(payload))),
        }
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

    /// Decides the round's mails in order and records them in groups (one write transaction
    /// per group). The inspections, pure CPU work, run ahead on every core while earlier
    /// mails are decided. `handled` collects each mail once it is committed, with where it is
    /// filed; an Err (the store unreachable) stops the round, and what is not in `handled` is
    /// offered again.
    async fn process_round<'m>(
        &mut self,
        mails: &'m [RawMail],
        cancel: &CancellationToken,
        handled: &mut Vec<(&'m RawMail, Disposition)>,
    ) -> Result<(), PipelineError> {
        // Inspections (pure CPU) run ahead on all cores, results in mailbox order. The mails
        // are decided a chunk at a time, each chunk's store facts read in a few queries;
        // the whole round is committed as one group.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut ahead = std::collections::VecDeque::with_capacity(cores);
        let mut next_to_inspect = mails.iter();
        let mut group = Group::default();
        let mut waiting: Vec<&'m RawMail> = Vec::new();
        let mut stopped = None;
        'round: for chunk in mails.chunks(FACTS_CHUNK) {
            if cancel.is_cancelled() {
                break;
            }
            let mut inspected = Vec::with_capacity(chunk.len());
            while inspected.len() < chunk.len() && !cancel.is_cancelled() {
                while ahead.len() < cores {
                    let Some(later) = next_to_inspect.next() else {
                        break;
                    };
                    ahead.push_back(tokio::spawn(self.pipeline.inspect(later)));
                }
                let Some(inspecting) = ahead.pop_front() else {
                    break;
                };
                inspected.push(inspecting.await);
            }
            let inspections: Vec<&Inspection> =
                inspected.iter().filter_map(|i| i.as_ref().ok()).collect();
            group.set_facts(self.pipeline.read_facts(&inspections).await);
            drop(inspections);
            for (mail, inspection) in chunk.iter().zip(inspected) {
                if cancel.is_cancelled() {
                    break 'round;
                }
                self.stats.fetched.fetch_add(1, Ordering::Relaxed);
                self.pipeline.metrics().mail_fetched();
                let inspection = match inspection {
                    Ok(inspection) => inspection,
                    Err(join) => {
                        let failure = Failure::Panicked(join.to_string());
                        if let Err(e) = self.failed(mail, failure, handled).await {
                            stopped = Some(e);
                            break 'round;
                        }
                        continue;
                    }
                };
                if group.holds(&inspection.message_key) {
                    // Decided against the committed first copy: a duplicate, or a reused id.
                    if let Err(e) = self.commit(&mut group, &mut waiting, handled).await {
                        stopped = Some(e);
                        break 'round;
                    }
                }
                let failure = match self.prepare_contained(mail, inspection, &group).await {
                    Ok(Prepared::Ready(ready)) => {
                        group.push(*ready);
                        waiting.push(mail);
                        continue;
                    }
                    Ok(Prepared::Duplicate(processed)) => {
                        match self.handled(mail, processed, handled).await {
                            Ok(()) => continue,
                            Err(e) => {
                                stopped = Some(e);
                                break 'round;
                            }
                        }
                    }
                    Err(f) => f,
                };
                if let Err(e) = self.failed(mail, failure, handled).await {
                    stopped = Some(e);
                    break 'round;
                }
            }
        }
        // What was decided is committed even when the round stops early: it is all valid.
        let committed = self.commit(&mut group, &mut waiting, handled).await;
        match stopped {
            Some(e) => Err(e),
            None => committed,
        }
    }

    /// Records the group in one transaction and lists its mails as handled. Should the group
    /// fail for a reason other than the store being unreachable (one mail's rows refused),
    /// each mail is recorded on its own, so one mail cannot hold back the others.
    async fn commit<'m>(
        &mut self,
        group: &mut Group,
        waiting: &mut Vec<&'m RawMail>,
        handled: &mut Vec<(&'m RawMail, Disposition)>,
    ) -> Result<(), PipelineError> {
        if group.is_empty() {
            return Ok(());
        }
        let ready = group.take();
        let owners = std::mem::take(waiting);
        let outcomes = match self.record_contained(&ready).await {
            Ok(outcomes) => outcomes,
            Err(Failure::Transient(e)) => return Err(e),
            Err(Failure::Failed(why) | Failure::Panicked(why)) => {
                tracing::warn!(error = %why, mails = ready.len(), "recording a group failed; recording its mails one by one");
                for (mail, one) in owners.into_iter().zip(&ready) {
                    match self.record_contained(std::slice::from_ref(one)).await {
                        Ok(mut outcome) => {
                            let processed = outcome.pop().expect("one outcome per recorded mail");
                            self.handled(mail, processed, handled).await?;
                        }
                        Err(failure) => self.failed(mail, failure, handled).await?,
                    }
                }
                return Ok(());
            }
        };
        for (mail, processed) in owners.into_iter().zip(outcomes) {
            self.handled(mail, processed, handled).await?;
        }
        Ok(())
    }

    /// Counts a committed (or earlier recorded) mail and lists it for filing.
    async fn handled<'m>(
        &mut self,
        mail: &'m RawMail,
        processed: Processed,
        handled: &mut Vec<(&'m RawMail, Disposition)>,
    ) -> Result<(), PipelineError> {
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
            Processed::Duplicate { inbound_id } => self.recorded_disposition(*inbound_id).await?,
            recorded => recorded.disposition(),
        };
        self.failures.remove(&mail.handle);
        handled.push((mail, disposition));
        Ok(())
    }

    /// A mail that could not be processed: set aside for a while, or for review once it has
    /// failed `max_failures` times. Err when the store is unreachable (the round stops).
    async fn failed<'m>(
        &mut self,
        mail: &'m RawMail,
        failure: Failure,
        handled: &mut Vec<(&'m RawMail, Disposition)>,
    ) -> Result<(), PipelineError> {
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        self.pipeline.metrics().processing_failed();
        let why = match failure {
            // The database is unreachable: stop the round; the loop backs off.
            Failure::Transient(e) => return Err(e),
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
                    return Ok(());
                }
                tracing::error!(origin = %mail.origin, error = %text, failures = *n, "could not process mail again; set aside for review as unprocessable");
                format!("failed {n} times: {text}")
            }
        };
        self.pipeline.set_aside(mail, &why).await?;
        self.failures.remove(&mail.handle);
        self.stats.review.fetch_add(1, Ordering::Relaxed);
        handled.push((mail, Disposition::Review));
        Ok(())
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
mod tests;
