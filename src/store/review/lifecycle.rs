//! The writes behind the staff actions: closing an item (resolve), answering it, settling a
//! dead letter and recording a reprocess — each with its audit row in one transaction.

use crate::store::audit::{insert_audit, NewAudit};
use crate::store::inbound::insert_decision;
use crate::store::outbox::insert_outbox;
use crate::store::{
    begin_write, dispatch, to_json, Bind, NewDecision, NewOutbox, NewReview, Store, StoreDb,
    StoreError,
};

/// How a staff action closes its item: by whom, the note kept on the item, the audit row.
#[derive(Debug, Clone, Copy)]
pub struct Closing<'a> {
    pub by: &'a str,
    pub note: &'a str,
    pub audit: &'a NewAudit,
}

/// What a reprocess writes.
#[derive(Debug, Clone)]
pub struct ReprocessRecord<'a> {
    pub review_id: i64,
    pub inbound_id: i64,
    pub decision: &'a NewDecision,
    /// The automatic reply the new decision calls for (skipped if the mail was answered).
    pub reply: Option<&'a NewOutbox>,
    /// Some: the item stays open with these reasons. None: the item is resolved.
    pub keep_open: Option<&'a NewReview>,
    pub by: &'a str,
    pub note: &'a str,
    pub audit: &'a NewAudit,
}

/// What a reprocess did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReprocessOutcome {
    /// The reply queued, if one was.
    pub queued: Option<i64>,
    /// A reply was called for but the mail already has one: none was queued.
    pub already_answered: bool,
    pub resolved: bool,
}

/// Closes item `id` if it is open and hands the transaction back; otherwise rolls it back
/// and returns `Conflict`.
async fn claim_open_item<DB: StoreDb>(
    mut tx: sqlx::Transaction<'static, DB>,
    id: i64,
    by: &str,
    note: &str,
    now: i64,
) -> Result<sqlx::Transaction<'static, DB>, StoreError>
where
    i64: Bind<DB>,
    for<'a> &'a str: Bind<DB>,
{
    let n = sqlx::query(
        "UPDATE review_items SET state = 'resolved', resolved_at = $1, resolved_by = $2, \
         note = $3 WHERE id = $4 AND state = 'open'",
    )
    .bind(now)
    .bind(by)
    .bind(note)
    .bind(id)
    .execute(DB::exec(&mut tx))
    .await?;
    if DB::rows_affected(&n) != 1 {
        tx.rollback().await?;
        return Err(not_open(id));
    }
    Ok(tx)
}

/// The conflict of acting on an item that is no longer open.
pub(in crate::store) fn not_open(id: i64) -> StoreError {
    StoreError::Conflict(format!(
        "review item {id} is not open (someone else resolved it meanwhile?)"
    ))
}

impl Store {
    /// Closes an open item and audits it. `Conflict` when it is not open.
    pub async fn resolve_item(
        &self,
        id: i64,
        c: Closing<'_>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            let tx = begin_write(pool).await?;
            let mut tx = claim_open_item(tx, id, c.by, c.note, now_ms).await?;
            insert_audit::<Db>(&mut tx, c.audit, now_ms).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Queues a staff reply to the item's mail (noting the loan numbers it reports on, for the
    /// history), closes the item and audits it (the audit row gets the new outbox id).
    /// Returns the outbox id; `Conflict` when the item is not open.
    pub async fn answer_item(
        &self,
        id: i64,
        inbound_id: i64,
        mail: &NewOutbox,
        loan_numbers: &[String],
        c: Closing<'_>,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        dispatch!(self, |pool| {
            let tx = begin_write(pool).await?;
            let mut tx = claim_open_item(tx, id, c.by, c.note, now_ms).await?;
            let outbox_id: i64 =
                insert_outbox::<Db>(&mut tx, mail, Some(inbound_id), now_ms).await?;
            if !loan_numbers.is_empty() {
                sqlx::query("UPDATE outbox SET loan_numbers = $1 WHERE id = $2")
                    .bind(to_json(loan_numbers))
                    .bind(outbox_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut audit = c.audit.clone();
            audit.outbox_id = Some(outbox_id);
            insert_audit::<Db>(&mut tx, &audit, now_ms).await?;
            tx.commit().await?;
            Ok(outbox_id)
        })
    }

    /// A dead letter goes back to the queue (attempts reset, due now), or is discarded; either
    /// way its item is closed and audited. `Conflict` when the item is not open or the mail is
    /// no longer dead.
    pub async fn settle_dead_letter(
        &self,
        id: i64,
        outbox_id: i64,
        retry: bool,
        c: Closing<'_>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            let tx = begin_write(pool).await?;
            let mut tx = claim_open_item(tx, id, c.by, c.note, now_ms).await?;
            let n = if retry {
                sqlx::query(
                    "UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = $1, \
                     locked_until = NULL, locked_by = NULL WHERE id = $2 AND state = 'dead'",
                )
                .bind(now_ms)
                .bind(outbox_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            } else {
                sqlx::query(
                    "UPDATE outbox SET state = 'discarded', locked_until = NULL, \
                     locked_by = NULL WHERE id = $1 AND state = 'dead'",
                )
                .bind(outbox_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
            };
            if n != 1 {
                tx.rollback().await?;
                return Err(StoreError::Conflict(format!(
                    "outbox mail {outbox_id} is not a dead letter any more"
                )));
            }
            insert_audit::<Db>(&mut tx, c.audit, now_ms).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Records a new decision for a stored mail and settles its review item, in one
    /// transaction. The mail's row is updated first, which (on PostgreSQL) locks it: two staff
    /// reprocessing the same mail at once are serialised, and the second sees the first's
    /// reply — a mail is never answered twice by reprocessing.
    pub async fn record_reprocess(
        &self,
        r: &ReprocessRecord<'_>,
        now_ms: i64,
    ) -> Result<ReprocessOutcome, StoreError> {
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let d = r.decision;
            let n = sqlx::query(
                "UPDATE inbound_messages SET kind = $1, action = $2, partner_id = $3, \
                 loan_numbers = $4 WHERE id = $5",
            )
            .bind(&d.kind)
            .bind(&d.action)
            .bind(&d.partner_id)
            .bind(to_json(&d.loan_numbers))
            .bind(r.inbound_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                tx.rollback().await?;
                return Err(StoreError::Conflict(format!(
                    "inbound mail {} does not exist",
                    r.inbound_id
                )));
            }
            let open: Option<String> =
                sqlx::query_scalar("SELECT state FROM review_items WHERE id = $1")
                    .bind(r.review_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if open.as_deref() != Some("open") {
                tx.rollback().await?;
                return Err(not_open(r.review_id));
            }
            insert_decision::<Db>(&mut tx, d, r.inbound_id, now_ms).await?;
            let mut outcome = ReprocessOutcome {
                queued: None,
                already_answered: false,
                resolved: r.keep_open.is_none(),
            };
            if let Some(mail) = r.reply {
                let answered: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM outbox WHERE inbound_id = $1 \
                     AND purpose IN ('reply', 'staff_reply', 'rma_label') AND state <> 'discarded'",
                )
                .bind(r.inbound_id)
                .fetch_one(&mut *tx)
                .await?;
                if answered > 0 {
                    outcome.already_answered = true;
                } else {
                    outcome.queued =
                        Some(insert_outbox::<Db>(&mut tx, mail, Some(r.inbound_id), now_ms).await?);
                }
            }
            let mut note = r.note.to_string();
            if outcome.already_answered {
                note.push_str("; already answered, so no second reply");
            }
            match r.keep_open {
                Some(review) => {
                    sqlx::query(
                        "UPDATE review_items SET reason = $1, reasons = $2, detail = $3 \
                         WHERE id = $4 AND state = 'open'",
                    )
                    .bind(&review.reason)
                    .bind(to_json(&review.reasons))
                    .bind(&review.detail)
                    .bind(r.review_id)
                    .execute(&mut *tx)
                    .await?;
                }
                None => tx = claim_open_item(tx, r.review_id, r.by, &note, now_ms).await?,
            }
            let mut audit = r.audit.clone();
            audit.outbox_id = outcome.queued;
            if outcome.already_answered {
                audit
                    .detail
                    .push_str("; already answered, so no second reply");
            }
            insert_audit::<Db>(&mut tx, &audit, now_ms).await?;
            tx.commit().await?;
            Ok(outcome)
        })
    }
}
