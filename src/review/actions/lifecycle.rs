//! Settling an item without a staff answer: reprocessing the stored mail through the rules,
//! resolving with a note, and retrying or discarding a dead letter.

use crate::classify::{Action, ReviewReason};
use crate::pipeline::stored_decision;
use crate::store::{NewAudit, NewReview, ReprocessRecord};

use super::{ActionError, Actions, Actor, Reprocessed, MAX_TEXT_CHARS};

impl Actions {
    /// Runs the stored mail through the rules again (after new data was imported) and
    /// records the new decision. The reply it calls for is queued unless the mail was already
    /// answered; the item is resolved when nothing needs a person any more.
    pub async fn reprocess(&self, item_id: i64, actor: &Actor) -> Result<Reprocessed, ActionError> {
        let item = self.item(item_id).await?;
        Self::open_item(&item)?;
        let inbound_id = item.inbound_id.ok_or_else(|| {
            ActionError::NotApplicable(format!(
                "review item {item_id} is not about a received mail: nothing to reprocess"
            ))
        })?;
        let record = self.store.inbound(inbound_id).await?.ok_or_else(|| {
            ActionError::Conflict(format!("inbound mail {inbound_id} does not exist"))
        })?;
        let raw = self.store.inbound_raw(inbound_id).await?.ok_or_else(|| {
            ActionError::NotApplicable(
                "the mail was too large to keep, so it cannot be read again: answer or resolve it"
                    .into(),
            )
        })?;
        let mut eval = self
            .pipeline
            .evaluator()
            .evaluate(&raw, record.size_bytes.max(0) as u64)
            .await?;
        let now = self.clock.now();
        let mut extra_detail = Vec::new();
        let mut reply = None;
        if eval.decision.action == Action::Reply {
            match self.pipeline.compose_reply(&eval, now) {
                Ok(mail) => reply = Some(mail),
                Err(detail) => {
                    eval.decision.action = Action::Review;
                    if !eval.decision.review.contains(&ReviewReason::DeadLetter) {
                        eval.decision.review.push(ReviewReason::DeadLetter);
                    }
                    extra_detail.push(detail);
                }
            }
        }
        let decision = &eval.decision;
        let needs_review = decision.action == Action::Review || !decision.review.is_empty();
        let keep_open = needs_review.then(|| {
            let reasons = if decision.review.is_empty() {
                vec![ReviewReason::OtherSubject]
            } else {
                decision.review.clone()
            };
            let mut detail: Vec<String> =
                reasons.iter().map(|r| r.describe().to_string()).collect();
            detail.extend(extra_detail.iter().cloned());
            NewReview {
                reason: reasons[0].code().to_string(),
                reasons: reasons.iter().map(|r| r.code().to_string()).collect(),
                detail: detail.join("; "),
            }
        });
        let stored = stored_decision(decision, &format!("reprocess:{}", actor.name));
        let summary = format!("reprocessed: now {} / {}", stored.kind, stored.action);
        let detail = match &keep_open {
            Some(r) => format!("{summary}; still needs review ({})", r.reasons.join(", ")),
            None => format!("{summary}; resolved"),
        };
        let audit = NewAudit {
            actor: actor.name.clone(),
            via: actor.via,
            action: "reprocess",
            review_id: Some(item.id),
            inbound_id: Some(inbound_id),
            outbox_id: None,
            detail,
        };
        let outcome = self
            .store
            .record_reprocess(
                &ReprocessRecord {
                    review_id: item.id,
                    inbound_id,
                    decision: &stored,
                    reply: reply.as_ref(),
                    keep_open: keep_open.as_ref(),
                    by: &actor.name,
                    note: &summary,
                    audit: &audit,
                },
                now.as_millisecond(),
            )
            .await?;
        if outcome.queued.is_some() {
            self.queued.notify_waiters();
        }
        tracing::info!(review_id = item.id, inbound_id, actor = %actor.name, ?outcome, "reprocessed");
        Ok(Reprocessed {
            kind: stored.kind,
            action: stored.action,
            review: stored.review,
            outcome,
        })
    }

    /// Closes an item with a note (the note is required: it is the record of why).
    pub async fn resolve(
        &self,
        item_id: i64,
        note: &str,
        actor: &Actor,
    ) -> Result<(), ActionError> {
        let item = self.item(item_id).await?;
        Self::open_item(&item)?;
        let note = note.trim();
        if note.is_empty() {
            return Err(ActionError::Invalid(
                "a note is required: say why no answer is needed".into(),
            ));
        }
        if note.chars().count() > MAX_TEXT_CHARS {
            return Err(ActionError::Invalid("the note is too long".into()));
        }
        let audit = NewAudit {
            actor: actor.name.clone(),
            via: actor.via,
            action: "resolve",
            review_id: Some(item.id),
            inbound_id: item.inbound_id,
            outbox_id: item.outbox_id,
            detail: note.to_string(),
        };
        self.store
            .resolve_item(item.id, actor.closing(note, &audit), self.now_ms())
            .await?;
        Ok(())
    }

    /// Puts a dead-lettered mail back in the outbox (attempts reset, due now).
    pub async fn retry(&self, item_id: i64, actor: &Actor) -> Result<i64, ActionError> {
        let outbox_id = self
            .settle_dead_letter(item_id, true, actor, "dead letter queued again")
            .await?;
        self.queued.notify_waiters();
        Ok(outbox_id)
    }

    /// Gives up on a dead-lettered mail for good.
    pub async fn discard(&self, item_id: i64, actor: &Actor) -> Result<i64, ActionError> {
        self.settle_dead_letter(item_id, false, actor, "dead letter discarded")
            .await
    }

    async fn settle_dead_letter(
        &self,
        item_id: i64,
        retry: bool,
        actor: &Actor,
        note: &str,
    ) -> Result<i64, ActionError> {
        let item = self.item(item_id).await?;
        Self::open_item(&item)?;
        let outbox_id = item.outbox_id.ok_or_else(|| {
            ActionError::NotApplicable(format!(
                "review item {item_id} is not a failed delivery: there is no mail to {}",
                if retry { "retry" } else { "discard" }
            ))
        })?;
        let audit = NewAudit {
            actor: actor.name.clone(),
            via: actor.via,
            action: if retry { "retry" } else { "discard" },
            review_id: Some(item.id),
            inbound_id: None,
            outbox_id: Some(outbox_id),
            detail: note.to_string(),
        };
        self.store
            .settle_dead_letter(
                item.id,
                outbox_id,
                retry,
                actor.closing(note, &audit),
                self.now_ms(),
            )
            .await?;
        Ok(outbox_id)
    }
}
