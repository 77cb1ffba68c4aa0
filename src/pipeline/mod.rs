//! The pipeline: one inbound mail → inspect → look up → decide → compose → record → ack.
//!
//! Recording the decision, queueing its reply and opening its review item happen in ONE
//! transaction keyed by the mail's Message-ID (or content hash); the source acknowledges the
//! mail only after that commit. So a mail is answered once even if it is delivered twice,
//! re-read after a crash, or handled by two instances at the same moment.

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
    NewAttention, NewDecision, NewInbound, NewOutbox, NewReview, RecordOutcome, Store, StoreError,
};

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

/// Inspects and decides, reading the store but writing nothing (also behind `explain`).
#[derive(Clone)]
pub struct Evaluator {
    store: Store,
    rules: Arc<Rules>,
}

impl Evaluator {
    pub fn new(store: Store, rules: Arc<Rules>) -> Evaluator {
        Evaluator { store, rules }
    }

    /// The partner the store has for the sender's domain in canonical form (see
    /// [`classify::authorise`], which decides whether the sender may speak for it). The one
    /// partner lookup, shared by the pipeline and staff actions.
    pub async fn partner_candidate(
        &self,
        inspection: &Inspection,
    ) -> Result<Option<crate::domain::Partner>, StoreError> {
        let domain = inspection
            .from
            .as_ref()
            .and_then(|f| classify::address_domain(&f.address))
            .and_then(classify::authorise::canonical_domain);
        match domain {
            Some(domain) => self.store.partner_by_domain(&domain).await,
            None => Ok(None),
        }
    }

    /// The rules this evaluator applies.
    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// `full_size` is the mail's size at the source (larger than `raw` when only the headers
    /// of an oversize mail were read).
    pub async fn evaluate(&self, raw: &[u8], full_size: u64) -> Result<Evaluation, PipelineError> {
        let inspection = classify::inspect_off_thread(&self.rules, raw, full_size).await;
        self.decide(inspection).await
    }

    /// The store's facts for an inspected mail, and the decision.
    pub async fn decide(&self, inspection: Inspection) -> Result<Evaluation, PipelineError> {
        let lookup = self.lookup(&inspection).await?;
        let decision = classify::decide_with(&inspection, &lookup, &self.rules.sender_policy);
        Ok(Evaluation {
            inspection,
            decision,
            lookup,
        })
    }

    async fn lookup(&self, inspection: &Inspection) -> Result<Lookup, StoreError> {
        let partner = self.partner_candidate(inspection).await?;
        let shipments = self
            .store
            .shipments_by_loan(&inspection.loan_numbers)
            .await?;
        let mut lookup = Lookup {
            partner,
            shipments,
            ..Lookup::default()
        };
        if inspection.automated.is_some() {
            return Ok(lookup);
        }
        if inspection.rma_language.is_some() {
            // Which requested loans have a usable label on file (decide() checks the rest).
            for n in &inspection.loan_numbers {
                let found = crate::store::rma::rma_label(
                    self.rules.rma_labels_dir.as_deref(),
                    n,
                    self.rules.rma_max_label_bytes,
                );
                if found.is_ok() {
                    lookup.rma_labels.push(n.clone());
                }
            }
        } else if inspection.request_language.is_some() && inspection.loan_numbers.is_empty() {
            if let Some(p) = &lookup.partner {
                let (loans, total) = self
                    .store
                    .active_loans(&p.partner_id, self.rules.max_listed)
                    .await?;
                lookup.active_loans = loans;
                lookup.active_total = total;
            }
        }
        Ok(lookup)
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
    /// this returns Ok).
    #[tracing::instrument(skip_all, fields(
        origin = %mail.origin,
        message_id = tracing::field::Empty,
        sender = tracing::field::Empty,
        loans = tracing::field::Empty,
        inbound_id = tracing::field::Empty,
    ))]
    pub async fn process(&self, mail: &RawMail) -> Result<Processed, PipelineError> {
        let started = std::time::Instant::now();
        let processed = self.process_inner(mail).await?;
        match &processed {
            Processed::Recorded { kind, action, .. } => {
                self.metrics.decided(*kind, *action, started.elapsed())
            }
            Processed::Duplicate { .. } => self.metrics.duplicate(started.elapsed()),
        }
        Ok(processed)
    }

    async fn process_inner(&self, mail: &RawMail) -> Result<Processed, PipelineError> {
        if let Some(fault) = &self.fault {
            fault(mail)?;
        }
        // The rules' reading first; the store is asked about the partner and loans only
        // once the mail is known not to be recorded already (redeliveries, re-reads).
        let inspection =
            classify::inspect_off_thread(&self.evaluator.rules, &mail.bytes, mail.size).await;
        let span = tracing::Span::current();
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
        let mut key = inspection.message_key.clone();
        let mut reused = false;
        if let Some((inbound_id, sender, subject, text)) = self.store.inbound_by_key(&key).await? {
            let from = inspection.from.as_ref().map(|f| f.address.as_str());
            let this = fingerprint(from, &inspection.subject, &inspection.text);
            if fingerprint(sender.as_deref(), &subject, &text) == this {
                span.record("inbound_id", inbound_id);
                tracing::info!(message_key = %key, "already recorded; acknowledging only");
                return Ok(Processed::Duplicate { inbound_id });
            }
            // Same Message-ID, other content (an ERP notifier with one constant id, a broken
            // mailer, or a forged id meant to suppress a request): a new mail, handled on its
            // own merits under the id plus its content fingerprint, so its own redelivery is
            // still a duplicate.
            key = format!("{key}#{this}");
            reused = true;
            tracing::warn!(message_key = %key, "Message-ID reused by a different mail");
            if let Some((inbound_id, ..)) = self.store.inbound_by_key(&key).await? {
                return Ok(Processed::Duplicate { inbound_id });
            }
        }
        let mut eval = self.evaluator.decide(inspection).await?;
        if reused {
            eval.decision.reasons.push("message_id:reused".to_string());
        }
        let now = self.clock.now();
        let mut review_detail: Vec<String> = Vec::new();
        let mut outbox = Vec::new();
        if eval.decision.action == Action::Reply {
            match self.rate_limited(&eval.decision).await? {
                Some(detail) => {
                    tracing::warn!(limit = %detail, "automatic reply withheld by the rate limit; to review");
                    self.metrics.rate_limited();
                    eval.decision.action = Action::Review;
                    push_reason(&mut eval.decision, ReviewReason::RateLimited);
                    review_detail.push(detail);
                }
                None => match self.compose_reply(&eval, now) {
                    Ok(mail) => outbox.push(mail),
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
        let new_inbound = NewInbound {
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
        let new_decision = stored_decision(decision, "pipeline");
        let outcome = self
            .store
            .record_inbound_with_attention(
                &new_inbound,
                &new_decision,
                &outbox,
                review.as_ref(),
                &attention,
                now.as_millisecond(),
            )
            .await?;
        Ok(match outcome {
            RecordOutcome::Recorded {
                inbound_id,
                outbox_ids,
            } => {
                if !outbox_ids.is_empty() {
                    self.queued.notify_waiters();
                }
                tracing::Span::current().record("inbound_id", inbound_id);
                tracing::info!(
                    kind = decision.kind.code(),
                    action = decision.action.code(),
                    partner = decision.partner_id.as_deref().unwrap_or(""),
                    review = ?decision.review.iter().map(|r| r.code()).collect::<Vec<_>>(),
                    outbox_ids = ?outbox_ids,
                    "decided"
                );
                Processed::Recorded {
                    inbound_id,
                    kind: decision.kind,
                    action: decision.action,
                    queued: outbox_ids.len(),
                    flagged: decision.action == Action::Reply && review.is_some(),
                }
            }
            RecordOutcome::Duplicate { inbound_id } => Processed::Duplicate { inbound_id },
        })
    }

    /// The first rate-limit step the reply's recipient has reached, described for staff.
    async fn rate_limited(&self, decision: &Decision) -> Result<Option<String>, StoreError> {
        let Some(to) = &decision.reply_to else {
            return Ok(None);
        };
        let Some(widest) = ladder::widest(&self.rate_limits) else {
            return Ok(None);
        };
        let now = self.clock.now().as_millisecond();
        // One query for the whole ladder: the reply times of the widest window.
        let times = self
            .store
            .recent_reply_times(&to.address, now - widest.as_millis() as i64)
            .await?;
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
                    dir: self.evaluator.rules.rma_labels_dir.as_deref(),
                    max_bytes: self.evaluator.rules.rma_max_label_bytes,
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
