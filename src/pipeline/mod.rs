//! The pipeline: one inbound mail → inspect → look up → decide → compose → record → ack.
//!
//! Recording the decision, queueing its reply and opening its review item happen in ONE
//! transaction keyed by the mail's Message-ID (or content hash); the source acknowledges the
//! mail only after that commit. So a mail is answered once even if it is delivered twice,
//! re-read after a crash, or handled by two instances at the same moment. The worker decides
//! a round's mails one by one and records them together ([`group`]: one write transaction,
//! one disk flush per round); acknowledging still waits for that commit.

mod evaluator;
mod facts;
mod group;
mod ladder;
pub mod reply;
pub mod rma;
pub mod unprocessable;
mod worker;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::classify::{self, Action, Decision, Inspection, Kind, Lookup, ReviewReason, Rules};
use crate::clock::SharedClock;
use crate::config::{Config, RateLimitStep};
use crate::inbound::{Disposition, RawMail};
use crate::outbound::{Composer, Templates};
use crate::store::{
    NewAttention, NewDecision, NewInbound, NewOutbox, NewRecord, NewReview, RecordOutcome, Store,
    StoreError,
};
use tracing::Instrument;

pub use evaluator::Evaluator;
pub use facts::RoundFacts;
pub use group::{Group, Prepared, Ready};
pub use ladder::{ladder, Reached};
pub use worker::{InboundStats, InboundWorker};

/// Errors processing one mail. Only store trouble can stop a mail; everything about the mail
/// itself (bad MIME, no template, bad address) becomes a review item instead.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Processing this mail failed in a way retrying it is not expected to fix.
    #[error("{0}")]
    Failed(String),
}

impl PipelineError {
    pub fn is_transient(&self) -> bool {
        match self {
            PipelineError::Store(e) => e.is_transient(),
            PipelineError::Failed(_) => false,
        }
    }
}

/// A fault-injection hook run at the start of processing each mail (tests: a panic or an
/// error for one chosen mail).
pub type FaultHook = Arc<dyn Fn(&RawMail) -> Result<(), PipelineError> + Send + Sync>;

/// The classification of one mail plus the facts it was based on.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub inspection: Inspection,
    pub decision: Decision,
    pub lookup: Lookup,
}

/// What processing a mail did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    Recorded {
        inbound_id: i64,
        kind: Kind,
        action: Action,
        queued: usize,
        /// A review item was opened beside the reply (answered and flagged).
        flagged: bool,
    },
    /// Already recorded earlier (redelivery, or re-read after a crash).
    Duplicate { inbound_id: i64 },
}

impl Processed {
    pub fn disposition(&self) -> Disposition {
        match self {
            Processed::Recorded { action, .. } => match action {
                Action::Reply => Disposition::Answered,
                Action::Review => Disposition::Review,
                Action::Ignore => Disposition::Ignored,
            },
            // Filed by the run that recorded it; a duplicate copy needs no answer.
            Processed::Duplicate { .. } => Disposition::Ignored,
        }
    }
}

pub struct Pipeline {
    store: Store,
    evaluator: Evaluator,
    replies: reply::TrackingReplies,
    composer: Composer,
    rate_limits: Vec<RateLimitStep>,
    clock: SharedClock,
    queued: Arc<Notify>,
    metrics: Arc<crate::counters::Metrics>,
    fault: Option<FaultHook>,
}

impl Pipeline {
    /// Installs a fault-injection hook (tests only).
    #[doc(hidden)]
    pub fn with_fault(mut self, fault: FaultHook) -> Pipeline {
        self.fault = Some(fault);
        self
    }

    pub fn new(
        config: &Config,
        store: Store,
        rules: Arc<Rules>,
        templates: Arc<Templates>,
        composer: Composer,
        clock: SharedClock,
        queued: Arc<Notify>,
    ) -> Pipeline {
        Pipeline {
            evaluator: Evaluator::new(store.clone(), rules),
            store,
            replies: reply::TrackingReplies::new(config, templates),
            composer,
            rate_limits: config.outbox.rate_limits.clone(),
            clock,
            queued,
            metrics: Arc::new(crate::counters::Metrics::new()),
            fault: None,
        }
    }

    /// Counts decisions and processing time into `metrics` (the app's; a pipeline built
    /// without one counts into its own, unseen).
    pub fn with_metrics(mut self, metrics: Arc<crate::counters::Metrics>) -> Pipeline {
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Arc<crate::counters::Metrics> {
        &self.metrics
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// How tracking replies are rendered (staff answers use the same).
    pub fn replies(&self) -> &reply::TrackingReplies {
        &self.replies
    }

    /// The evaluator this pipeline decides with (staff "reprocess" re-runs it).
    pub fn evaluator(&self) -> &Evaluator {
        &self.evaluator
    }

    /// Processes one mail end to end (except the acknowledgement, which the caller does after
    /// this returns Ok): [`Pipeline::inspect`], [`Pipeline::prepare`] and [`Pipeline::record`]
    /// for a group of one.
    pub async fn process(&self, mail: &RawMail) -> Result<Processed, PipelineError> {
        let inspection = self.inspect(mail).await;
        match self.prepare(mail, inspection, &Group::default()).await? {
            Prepared::Duplicate(processed) => Ok(processed),
            Prepared::Ready(ready) => {
                let mut processed = self.record(std::slice::from_ref(&ready)).await?;
                Ok(processed.pop().expect("one outcome per recorded mail"))
            }
        }
    }

    /// The rules' reading of a mail, on a blocking thread (pure CPU work: the worker runs a
    /// round's inspections side by side, on every core).
    pub fn inspect(&self, mail: &RawMail) -> impl std::future::Future<Output = Inspection> + use<> {
        classify::inspect_owned_off_thread(
            self.evaluator.rules().clone(),
            mail.bytes.as_slice().into(),
            mail.size,
        )
    }

    /// The store's facts about a round of inspected mails, read once for all of them. A
    /// failed read leaves the facts empty: each mail then asks the store itself, and meets
    /// the same outage there, where it is handled.
    pub async fn read_facts(&self, inspections: &[&Inspection]) -> RoundFacts {
        let now = self.clock.now().as_millisecond();
        let since = ladder::widest(&self.rate_limits).map_or(now, |w| now - w.as_millis() as i64);
        match RoundFacts::read(&self.store, inspections, since).await {
            Ok(facts) => facts,
            Err(e) => {
                tracing::warn!(error = %e, "reading the round's facts failed; each mail reads its own");
                RoundFacts::default()
            }
        }
    }

    /// Decides an inspected mail and composes its reply, reading the store but writing
    /// nothing. `group` holds the mails decided before it and not yet committed: their replies
    /// count toward the rate limit as if they were recorded. The caller commits a group before
    /// preparing a mail whose Message-ID one of them has ([`Group::holds`]).
    pub async fn prepare(
        &self,
        mail: &RawMail,
        inspection: Inspection,
        group: &Group,
    ) -> Result<Prepared, PipelineError> {
        let span = tracing::info_span!(
            "process",
            origin = %mail.origin,
            message_id = tracing::field::Empty,
            sender = tracing::field::Empty,
            loans = tracing::field::Empty,
            inbound_id = tracing::field::Empty,
        );
        let started = std::time::Instant::now();
        let prepared = self
            .prepare_inner(mail, inspection, group, span.clone(), started)
            .instrument(span)
            .await?;
        if let Prepared::Duplicate(_) = &prepared {
            self.metrics.duplicate(started.elapsed());
        }
        Ok(prepared)
    }

    async fn prepare_inner(
        &self,
        mail: &RawMail,
        inspection: Inspection,
        group: &Group,
        span: tracing::Span,
        started: std::time::Instant,
    ) -> Result<Prepared, PipelineError> {
        if let Some(fault) = &self.fault {
            fault(mail)?;
        }
        // The rules' reading first; the store is asked about the partner and loans only
        // once the mail is known not to be recorded already (redeliveries, re-reads).
        span.record(
            "message_id",
            inspection
                .message_id
                .as_deref()
                .unwrap_or(&inspection.message_key),
        );
        if let Some(from) = &inspection.from {
            span.record("sender", from.address.as_str());
        }
        if !inspection.loan_numbers.is_empty() {
            let loans: Vec<&str> = inspection.loan_numbers.iter().map(|l| l.as_str()).collect();
            span.record("loans", loans.join(" "));
        }
        let group_key = inspection.message_key.clone();
        let mut key = inspection.message_key.clone();
        let mut reused = false;
        let recorded = match group.facts().recorded(&key) {
            Some(known) => known.cloned(),
            None => self.store.inbound_by_key(&key).await?,
        };
        if let Some((inbound_id, sender, subject, text)) = recorded {
            let from = inspection.from.as_ref().map(|f| f.address.as_str());
            let this = fingerprint(from, &inspection.subject, &inspection.text);
            if fingerprint(sender.as_deref(), &subject, &text) == this {
                span.record("inbound_id", inbound_id);
                tracing::info!(message_key = %key, "already recorded; acknowledging only");
                return Ok(Prepared::Duplicate(Processed::Duplicate { inbound_id }));
            }
            // Same Message-ID, other content (an ERP notifier with one constant id, a broken
            // mailer, or a forged id meant to suppress a request): a new mail, handled on its
            // own merits under the id plus its content fingerprint, so its own redelivery is
            // still a duplicate.
            key = format!("{key}#{this}");
            reused = true;
            tracing::warn!(message_key = %key, "Message-ID reused by a different mail");
            if let Some((inbound_id, ..)) = self.store.inbound_by_key(&key).await? {
                return Ok(Prepared::Duplicate(Processed::Duplicate { inbound_id }));
            }
        }
        let mut eval = self
            .evaluator
            .decide_with_facts(inspection, group.facts())
            .await?;
        if reused {
            eval.decision.reasons.push("message_id:reused".to_string());
        }
        let now = self.clock.now();
        let mut review_detail: Vec<String> = Vec::new();
        let mut outbox = Vec::new();
        let mut rate_key = None;
        if eval.decision.action == Action::Reply {
            match self.rate_limited(&eval.decision, group).await? {
                Some(detail) => {
                    tracing::warn!(limit = %detail, "automatic reply withheld by the rate limit; to review");
                    self.metrics.rate_limited();
                    eval.decision.action = Action::Review;
                    push_reason(&mut eval.decision, ReviewReason::RateLimited);
                    review_detail.push(detail);
                }
                None => match self.compose_reply(&eval, now) {
                    Ok(mail) => {
                        outbox.push(mail);
                        rate_key = eval.decision.reply_to.as_ref().map(|t| t.address.clone());
                    }
                    Err(detail) => {
                        // Cannot answer automatically (template or address problem): a person
                        // answers instead; nothing is lost.
                        eval.decision.action = Action::Review;
                        push_reason(&mut eval.decision, ReviewReason::DeadLetter);
                        review_detail.push(detail);
                    }
                },
            }
        }
        let decision = &eval.decision;
        let inspection = &eval.inspection;
        let review = if decision.action == Action::Review || !decision.review.is_empty() {
            let reasons: Vec<ReviewReason> = if decision.review.is_empty() {
                vec![ReviewReason::OtherSubject]
            } else {
                decision.review.clone()
            };
            let mut detail: Vec<String> =
                reasons.iter().map(|r| r.describe().to_string()).collect();
            detail.extend(review_detail);
            Some(NewReview {
                reason: reasons[0].code().to_string(),
                reasons: reasons.iter().map(|r| r.code().to_string()).collect(),
                detail: detail.join("; "),
            })
        } else {
            None
        };
        let attention =
            if decision.action == Action::Reply && decision.kind == Kind::TrackingRequest {
                attention_items(decision, reply::utc_date(now), self.replies.overdue_days())
            } else {
                Vec::new()
            };
        let keep_raw = !mail.is_truncated();
        let inbound = NewInbound {
            message_key: key,
            message_id: inspection.message_id.clone(),
            source: mail.origin.clone(),
            received_at: now.as_millisecond(),
            sender: inspection.from.as_ref().map(|f| f.address.clone()),
            sender_name: inspection.from.as_ref().and_then(|f| f.name.clone()),
            subject: inspection.subject.clone(),
            size_bytes: mail.size as i64,
            raw: keep_raw.then(|| mail.bytes.clone()),
            body_text: inspection.text.clone(),
        };
        Ok(Prepared::Ready(Box::new(Ready {
            flagged: decision.action == Action::Reply && review.is_some(),
            record: NewRecord {
                inbound,
                decision: stored_decision(decision, "pipeline"),
                outbox,
                review,
                attention,
            },
            kind: decision.kind,
            action: decision.action,
            partner: decision.partner_id.clone(),
            review_codes: decision.review.iter().map(|r| r.code()).collect(),
            group_key,
            rate_key,
            now_ms: now.as_millisecond(),
            span,
            started,
        })))
    }

    /// Records prepared mails in one transaction (group commit), then logs and counts each.
    /// All or nothing: on an error none of them is recorded and none may be acknowledged.
    pub async fn record(&self, group: &[Ready]) -> Result<Vec<Processed>, PipelineError> {
        let Some(now_ms) = group.iter().map(|r| r.now_ms).max() else {
            return Ok(Vec::new());
        };
        let records: Vec<&NewRecord> = group.iter().map(|r| &r.record).collect();
        let outcomes = self.store.record_group(&records, now_ms).await?;
        drop(records);
        let mut queued = false;
        let processed = group
            .iter()
            .zip(outcomes)
            .map(|(ready, outcome)| {
                let _entered = ready.span.enter();
                match outcome {
                    RecordOutcome::Recorded {
                        inbound_id,
                        outbox_ids,
                    } => {
                        queued |= !outbox_ids.is_empty();
                        ready.span.record("inbound_id", inbound_id);
                        tracing::info!(
                            kind = ready.kind.code(),
                            action = ready.action.code(),
                            partner = ready.partner.as_deref().unwrap_or(""),
                            review = ?ready.review_codes,
                            outbox_ids = ?outbox_ids,
                            "decided"
                        );
                        self.metrics
                            .decided(ready.kind, ready.action, ready.started.elapsed());
                        Processed::Recorded {
                            inbound_id,
                            kind: ready.kind,
                            action: ready.action,
                            queued: outbox_ids.len(),
                            flagged: ready.flagged,
                        }
                    }
                    RecordOutcome::Duplicate { inbound_id } => {
                        self.metrics.duplicate(ready.started.elapsed());
                        Processed::Duplicate { inbound_id }
                    }
                }
            })
            .collect();
        if queued {
            self.queued.notify_waiters();
        }
        Ok(processed)
    }

    /// The first rate-limit step the reply's recipient has reached, described for staff.
    async fn rate_limited(
        &self,
        decision: &Decision,
        group: &Group,
    ) -> Result<Option<String>, StoreError> {
        let Some(to) = &decision.reply_to else {
            return Ok(None);
        };
        let Some(widest) = ladder::widest(&self.rate_limits) else {
            return Ok(None);
        };
        let now = self.clock.now().as_millisecond();
        // One query for the whole ladder: the reply times of the widest window.
        let since = now - widest.as_millis() as i64;
        let mut times = match group.facts().reply_times(&to.address, since) {
            Some(times) => times,
            None => self.store.recent_reply_times(&to.address, since).await?,
        };
        times.extend(group.replies_to(&to.address));
        Ok(ladder(&self.rate_limits, &times, now).map(|reached| {
            format!(
                "{} automatic replies to {} within {}",
                reached.count,
                to.address,
                humantime::format_duration(reached.window)
            )
        }))
    }

    /// Renders and composes the tracking reply; Err carries a description for staff.
    pub(crate) fn compose_reply(
        &self,
        eval: &Evaluation,
        now: jiff::Timestamp,
    ) -> Result<NewOutbox, String> {
        let decision = &eval.decision;
        let inspection = &eval.inspection;
        let partner = eval
            .lookup
            .partner
            .as_ref()
            .ok_or_else(|| "no partner for the sender".to_string())?;
        let to = decision
            .reply_to
            .as_ref()
            .ok_or_else(|| "no address to reply to".to_string())?;
        if decision.kind == Kind::RmaLabelRequest {
            return rma::compose_rma_reply(
                &self.replies,
                &self.composer,
                inspection,
                decision,
                partner,
                to,
                rma::LabelSource {
                    dir: self.evaluator.rules().rma_labels_dir.as_deref(),
                    max_bytes: self.evaluator.rules().rma_max_label_bytes,
                },
                now,
            );
        }
        reply::compose_tracking_reply(
            &self.replies,
            &self.composer,
            inspection,
            decision,
            partner,
            to,
            now,
        )
    }
}

/// One `shipment_attention` item per answered loan in `exception` or overdue on `today`
/// (the store keeps at most one open per loan, however many mails ask).
pub fn attention_items(
    decision: &Decision,
    today: jiff::civil::Date,
    overdue_days: i64,
) -> Vec<NewAttention> {
    let shown = decision
        .loans
        .iter()
        .filter_map(|l| l.shipment.as_ref())
        .chain(decision.listed.iter());
    let mut items: Vec<NewAttention> = Vec::new();
    for s in shown {
        let detail = match reply::attention(s, today, overdue_days) {
            Some(reply::Attention::Exception) => format!(
                "loan {} ({}) is in exception: check with the carrier{} and tell the partner",
                s.loan_number,
                s.customer,
                carrier_note(s)
            ),
            Some(reply::Attention::Overdue { since }) => format!(
                "loan {} ({}) is overdue since {since} (not delivered {overdue_days} day(s) after \
                 its ETA): check with the carrier{} and tell the partner",
                s.loan_number,
                s.customer,
                carrier_note(s)
            ),
            None => continue,
        };
        let key = format!("loan:{}", s.loan_number);
        if items.iter().any(|i| i.key == key) {
            continue;
        }
        items.push(NewAttention {
            key,
            reason: ReviewReason::ShipmentAttention.code().to_string(),
            detail,
        });
    }
    items
}

fn carrier_note(s: &crate::domain::Shipment) -> String {
    match (&s.carrier, &s.tracking_number) {
        (Some(c), Some(t)) => format!(" ({c} {t})"),
        (Some(c), None) => format!(" ({c})"),
        _ => String::new(),
    }
}

fn push_reason(decision: &mut Decision, reason: ReviewReason) {
    if !decision.review.contains(&reason) {
        decision.review.push(reason);
    }
    decision.reasons.push(format!("review:{}", reason.code()));
}

/// A decision in the store's terms.
pub fn stored_decision(decision: &Decision, decided_by: &str) -> NewDecision {
    NewDecision {
        decided_by: decided_by.to_string(),
        kind: decision.kind.code().to_string(),
        action: decision.action.code().to_string(),
        language: decision.language.code().to_string(),
        partner_id: decision.partner_id.clone(),
        loan_numbers: decision
            .loans
            .iter()
            .map(|l| l.loan_number.to_string())
            .collect(),
        reasons: decision.reasons.clone(),
        review: decision
            .review
            .iter()
            .map(|r| r.code().to_string())
            .collect(),
    }
}

/// What makes two mails with one Message-ID the same mail: sender, subject and decoded body.
/// A redelivery (other `Received` lines, another transfer encoding) has the same fingerprint;
/// a different mail reusing the id has not.
pub fn fingerprint(sender: Option<&str>, subject: &str, text: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [sender.unwrap_or(""), subject, text] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("fp:{}", hex::encode(&h.finalize()[..16]))
}

#[cfg(test)]
mod fingerprint_tests;
