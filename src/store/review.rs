//! The review queue: listing (keyset-paged, filtered and searched in SQL), the facts behind
//! one item, the history of what was sent, and the staff actions — each action's effect,
//! the item's new state and its audit row in ONE transaction.

use sqlx::QueryBuilder;

use super::audit::{insert_audit, NewAudit};
use super::inbound::insert_decision;
use super::outbox::insert_outbox;
use super::{
    begin_write, dispatch, to_json, Bind, Dialect, NewDecision, NewOutbox, NewReview, Store,
    StoreDb, StoreError,
};

/// An item in the review queue, joined with what it is about.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ReviewItem {
    pub id: i64,
    pub reason: String,
    /// JSON list of every reason code.
    pub reasons: String,
    pub detail: String,
    pub state: String,
    pub created_at: i64,
    pub inbound_id: Option<i64>,
    pub outbox_id: Option<i64>,
    pub reminder_id: Option<i64>,
    /// Inbound sender, or the outgoing mail's recipients (JSON) for a dead letter.
    pub sender: Option<String>,
    pub subject: Option<String>,
    pub partner_id: Option<String>,
    pub partner_name: Option<String>,
    pub received_at: Option<i64>,
    pub loan_numbers: Option<String>,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub note: Option<String>,
    /// Who works on it (a user name); None: nobody yet.
    pub assignee: Option<String>,
}

impl ReviewItem {
    /// Where this item sits in the queue's order: the keyset-paging cursor.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReviewOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

/// A position in a list ordered by (time, id): pages continue strictly after or before it,
/// so paging costs the same on page 1 and page 2,000 (no OFFSET scan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: i64,
    pub id: i64,
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.at, self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (at, id) = s
            .split_once('_')
            .ok_or_else(|| format!("bad cursor {s:?}"))?;
        Ok(Cursor {
            at: at.parse().map_err(|_| format!("bad cursor {s:?}"))?,
            id: id.parse().map_err(|_| format!("bad cursor {s:?}"))?,
        })
    }
}

/// Which review items to list.
#[derive(Debug, Clone)]
pub struct ReviewFilter {
    /// `open` or `resolved`.
    pub state: String,
    pub reason: Option<String>,
    /// Substring of sender, subject or loan numbers (case-insensitive).
    pub search: Option<String>,
    pub order: ReviewOrder,
    pub limit: i64,
    /// Plain offset (the CLI's `--offset`); the web pages use the cursors.
    pub offset: i64,
    /// Items that come after this one in `order` (next page).
    pub after: Option<Cursor>,
    /// Items that come before this one in `order` (previous page).
    pub before: Option<Cursor>,
    /// Whose items: everyone's (None), one user's, or nobody's.
    pub assignee: Option<Assignee>,
    /// Queued at or after this time (ms).
    pub from: Option<i64>,
    /// Queued before this time (ms).
    pub until: Option<i64>,
}

/// The "mine" / "unassigned" views of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    User(String),
    Nobody,
}

impl Default for ReviewFilter {
    fn default() -> Self {
        ReviewFilter {
            state: "open".into(),
            reason: None,
            search: None,
            order: ReviewOrder::NewestFirst,
            limit: 50,
            offset: 0,
            after: None,
            before: None,
            assignee: None,
            from: None,
            until: None,
        }
    }
}

/// One page of the queue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReviewPage {
    pub items: Vec<ReviewItem>,
    /// More items follow the last one.
    pub has_next: bool,
    /// Items precede the first one.
    pub has_prev: bool,
}

const REVIEW_COLUMNS: &str = "SELECT r.id, r.reason, r.reasons, r.detail, r.state, r.created_at, \
     r.inbound_id, r.outbox_id, r.reminder_id, COALESCE(m.sender, o.recipients) AS sender, \
     COALESCE(m.subject, o.subject) AS subject, m.partner_id, p.name AS partner_name, \
     m.received_at, m.loan_numbers, r.resolved_at, r.resolved_by, r.note, r.assignee \
     FROM review_items r \
     LEFT JOIN inbound_messages m ON m.id = r.inbound_id \
     LEFT JOIN outbox o ON o.id = r.outbox_id \
     LEFT JOIN partners p ON p.partner_id = m.partner_id ";

/// A mail trialdesk queued: a reply, a staff reply, a reminder. No body (lists stay light).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct SentMail {
    pub id: i64,
    pub purpose: String,
    pub inbound_id: Option<i64>,
    pub message_id: String,
    /// JSON list.
    pub recipients: String,
    pub subject: String,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    /// The request it answers, when it answers one.
    pub request_sender: Option<String>,
    pub request_subject: Option<String>,
    pub partner_id: Option<String>,
    pub partner_name: Option<String>,
    pub loan_numbers: Option<String>,
}

const SENT_COLUMNS: &str = "SELECT o.id, o.purpose, o.inbound_id, o.message_id, o.recipients, \
     o.subject, o.state, o.attempts, o.next_attempt_at, o.last_error, o.created_at, o.sent_at, \
     m.sender AS request_sender, m.subject AS request_subject, m.partner_id, \
     p.name AS partner_name, COALESCE(o.loan_numbers, m.loan_numbers) AS loan_numbers \
     FROM outbox o \
     LEFT JOIN inbound_messages m ON m.id = o.inbound_id \
     LEFT JOIN partners p ON p.partner_id = m.partner_id ";

/// Which sent mail to list (newest first).
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// `reply`, `staff_reply`, `reminder`, `shipment_notice` or `rma_label`; all when None.
    pub purpose: Option<String>,
    pub partner_id: Option<String>,
    /// Substring of recipients, subject, the request's sender/subject, or its loan numbers.
    pub search: Option<String>,
    /// Continue after this row (next page).
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// A stored decision.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct DecisionRow {
    pub id: i64,
    pub decided_at: i64,
    pub decided_by: String,
    pub kind: String,
    pub action: String,
    pub language: String,
    pub partner_id: Option<String>,
    /// JSON lists.
    pub loan_numbers: String,
    pub reasons: String,
    pub review: String,
}

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

fn not_open(id: i64) -> StoreError {
    StoreError::Conflict(format!(
        "review item {id} is not open (someone else resolved it meanwhile?)"
    ))
}

/// `%text%` for LIKE, lower-cased, with the user's own wildcards made literal.
fn like_pattern(search: Option<&str>) -> Option<String> {
    search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("%{}%", escape_like(&s.to_lowercase())))
}

impl Store {
    /// One page of review items. Filters, search, order and paging all happen in SQL; the
    /// conditions are only added when used, so each query shape gets its index.
    pub async fn review_page(&self, filter: &ReviewFilter) -> Result<ReviewPage, StoreError> {
        let search = Search::new(filter.search.as_deref(), self.dialect());
        let limit = filter.limit.max(1);
        // Going backwards: read in the opposite order from the cursor, then flip.
        let backwards = filter.before.is_some() && filter.after.is_none();
        let newest_first = (filter.order == ReviewOrder::NewestFirst) != backwards;
        let mut items: Vec<ReviewItem> = dispatch!(self, |pool| {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(REVIEW_COLUMNS);
            qb.push("WHERE r.state = ").push_bind(filter.state.clone());
            if let Some(reason) = &filter.reason {
                qb.push(" AND r.reason = ").push_bind(reason.clone());
            }
            match &filter.assignee {
                Some(Assignee::User(name)) => {
                    qb.push(" AND r.assignee = ").push_bind(name.clone());
                }
                Some(Assignee::Nobody) => {
                    qb.push(" AND r.assignee IS NULL");
                }
                None => {}
            }
            if let Some(from) = filter.from {
                qb.push(" AND r.created_at >= ").push_bind(from);
            }
            if let Some(until) = filter.until {
                qb.push(" AND r.created_at < ").push_bind(until);
            }
            if let Some(search) = &search {
                // The item's mail, its undelivered mail, or the request that mail answered.
                qb.push(" AND (r.inbound_id IN (");
                search.push_ids(&mut qb, "inbound_search");
                qb.push(") OR r.outbox_id IN (");
                search.push_ids(&mut qb, "outbox_search");
                qb.push(") OR r.outbox_id IN (SELECT id FROM outbox WHERE inbound_id IN (");
                search.push_ids(&mut qb, "inbound_search");
                qb.push(")))");
            }
            if let Some(c) = filter.after.or(filter.before) {
                // Row-value comparison (SQLite ≥ 3.15, PostgreSQL): uses the index as a range.
                qb.push(if newest_first {
                    " AND (r.created_at, r.id) < ("
                } else {
                    " AND (r.created_at, r.id) > ("
                })
                .push_bind(c.at)
                .push(", ")
                .push_bind(c.id)
                .push(")");
            }
            qb.push(if newest_first {
                " ORDER BY r.created_at DESC, r.id DESC LIMIT "
            } else {
                " ORDER BY r.created_at ASC, r.id ASC LIMIT "
            })
            .push_bind(limit + 1);
            if filter.offset > 0 && filter.after.is_none() && filter.before.is_none() {
                qb.push(" OFFSET ").push_bind(filter.offset);
            }
            qb.build_query_as().fetch_all(pool).await?
        });
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        if backwards {
            items.reverse();
            Ok(ReviewPage {
                items,
                has_next: true,
                has_prev: more,
            })
        } else {
            Ok(ReviewPage {
                items,
                has_next: more,
                has_prev: filter.after.is_some() || filter.offset > 0,
            })
        }
    }

    /// One page of review items (see [`Store::review_page`]).
    pub async fn review_items(&self, filter: &ReviewFilter) -> Result<Vec<ReviewItem>, StoreError> {
        Ok(self.review_page(filter).await?.items)
    }

    pub async fn review_item(&self, id: i64) -> Result<Option<ReviewItem>, StoreError> {
        Ok(dispatch!(self, |pool| {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(REVIEW_COLUMNS);
            qb.push("WHERE r.id = ").push_bind(id);
            qb.build_query_as().fetch_optional(pool).await?
        }))
    }

    /// Every review item about one inbound mail (open and resolved), oldest first.
    pub async fn review_items_for_inbound(
        &self,
        inbound_id: i64,
    ) -> Result<Vec<ReviewItem>, StoreError> {
        Ok(dispatch!(self, |pool| {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(REVIEW_COLUMNS);
            // Its own items, and the dead letters of replies to it. (A UNION of two index
            // lookups: with OR across them, PostgreSQL scans the whole table.)
            qb.push("WHERE r.id IN (SELECT id FROM review_items WHERE inbound_id = ")
                .push_bind(inbound_id)
                .push(
                    " UNION ALL SELECT ri.id FROM review_items ri JOIN outbox ob \
                     ON ob.id = ri.outbox_id WHERE ob.inbound_id = ",
                )
                .push_bind(inbound_id)
                .push(") ORDER BY r.id");
            qb.build_query_as().fetch_all(pool).await?
        }))
    }

    /// Every reason code any item (open or resolved) has as its primary reason.
    pub async fn review_reasons_used(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = dispatch!(self, |pool| {
            sqlx::query_as("SELECT DISTINCT reason FROM review_items ORDER BY reason")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(r,)| r).collect())
    }

    /// Open items per primary reason.
    pub async fn review_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT reason, COUNT(*) FROM review_items WHERE state = 'open' \
                 GROUP BY reason ORDER BY reason",
            )
            .fetch_all(pool)
            .await?
        }))
    }

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

    /// Whether the raw bytes of a mail were kept (without reading them).
    pub async fn inbound_raw_kept(&self, inbound_id: i64) -> Result<bool, StoreError> {
        let kept: Option<bool> = dispatch!(self, |pool| {
            sqlx::query_scalar("SELECT raw IS NOT NULL FROM inbound_messages WHERE id = $1")
                .bind(inbound_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(kept.unwrap_or(false))
    }

    /// Every decision taken on a mail, oldest first.
    pub async fn decisions_for_inbound(
        &self,
        inbound_id: i64,
    ) -> Result<Vec<DecisionRow>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT id, decided_at, decided_by, kind, action, language, partner_id, \
                 loan_numbers, reasons, review FROM decisions WHERE inbound_id = $1 ORDER BY id",
            )
            .bind(inbound_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Mail queued for an inbound mail (replies and staff replies), oldest first, without
    /// bodies.
    pub async fn sent_for_inbound(&self, inbound_id: i64) -> Result<Vec<SentMail>, StoreError> {
        Ok(dispatch!(self, |pool| {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(SENT_COLUMNS);
            qb.push("WHERE o.inbound_id = ")
                .push_bind(inbound_id)
                .push(" ORDER BY o.id");
            qb.build_query_as().fetch_all(pool).await?
        }))
    }

    pub async fn sent_mail(&self, outbox_id: i64) -> Result<Option<SentMail>, StoreError> {
        Ok(dispatch!(self, |pool| {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(SENT_COLUMNS);
            qb.push("WHERE o.id = ").push_bind(outbox_id);
            qb.build_query_as().fetch_optional(pool).await?
        }))
    }

    /// The history: replies, staff replies and reminders, newest first, one page (plus one
    /// row to tell whether more follow).
    pub async fn history(&self, f: &HistoryFilter) -> Result<(Vec<SentMail>, bool), StoreError> {
        let search = Search::new(f.search.as_deref(), self.dialect());
        let limit = f.limit.max(1);
        let mut rows: Vec<SentMail> = dispatch!(self, |pool| {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(SENT_COLUMNS);
            match &f.purpose {
                Some(p) => {
                    qb.push("WHERE o.purpose = ").push_bind(p.clone());
                }
                None => {
                    qb.push(
                        "WHERE o.purpose IN ('reply', 'staff_reply', 'reminder', \
                         'shipment_notice', 'rma_label')",
                    );
                }
            }
            if let Some(partner) = &f.partner_id {
                qb.push(" AND m.partner_id = ").push_bind(partner.clone());
            }
            if let Some(search) = &search {
                qb.push(" AND (o.id IN (");
                search.push_ids(&mut qb, "outbox_search");
                qb.push(") OR o.inbound_id IN (");
                search.push_ids(&mut qb, "inbound_search");
                qb.push("))");
            }
            if let Some(c) = f.after {
                qb.push(" AND (o.created_at, o.id) < (")
                    .push_bind(c.at)
                    .push(", ")
                    .push_bind(c.id)
                    .push(")");
            }
            qb.push(" ORDER BY o.created_at DESC, o.id DESC LIMIT ")
                .push_bind(limit + 1);
            qb.build_query_as().fetch_all(pool).await?
        });
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        Ok((rows, more))
    }
}

/// A substring search over mails (sender, subject, loan numbers) and outgoing mail
/// (recipients, subject, loan numbers), answered from the search indexes of migration 0003:
/// FTS5 trigram tables on SQLite, pg_trgm GIN indexes on PostgreSQL. Both are
/// case-insensitive substring matches; they differ only in SQL spelling.
#[derive(Debug, Clone)]
enum Search {
    /// SQLite, three characters or more: an FTS5 phrase (trigram phrases match substrings).
    Fts(String),
    /// SQLite, shorter: LIKE over the narrow FTS tables.
    SqliteLike(String),
    /// PostgreSQL: LIKE on the narrow lower-cased copies (pg_trgm serves it when installed).
    PgLike(String),
}

impl Search {
    fn new(text: Option<&str>, dialect: Dialect) -> Option<Search> {
        let text = text.map(str::trim).filter(|s| !s.is_empty())?;
        let pattern = like_pattern(Some(text))?;
        Some(if dialect == Dialect::Postgres {
            Search::PgLike(pattern)
        } else if text.chars().count() >= 3 {
            Search::Fts(format!("\"{}\"", text.replace('"', "\"\"")))
        } else {
            Search::SqliteLike(pattern)
        })
    }

    /// `SELECT <ids of table that match>`; `table` is `inbound_search` or `outbox_search`.
    fn push_ids<DB: sqlx::Database>(&self, qb: &mut QueryBuilder<DB>, table: &'static str)
    where
        String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        match self {
            Search::Fts(q) => qb
                .push(format_args!(
                    "SELECT rowid FROM {table} WHERE {table} MATCH "
                ))
                .push_bind(q.clone()),
            Search::SqliteLike(p) => qb
                .push(format_args!("SELECT rowid FROM {table} WHERE text LIKE "))
                .push_bind(p.clone())
                .push(" ESCAPE '\\'"),
            Search::PgLike(p) => qb
                .push(format_args!("SELECT id FROM {table} WHERE text LIKE "))
                .push_bind(p.clone())
                .push(" ESCAPE '\\'"),
        };
    }
}

/// LIKE wildcards typed by a user are literal (the queries say `ESCAPE '\'`).
fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = Cursor {
            at: 1_790_000_000_000,
            id: 42,
        };
        assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        assert!("".parse::<Cursor>().is_err());
        assert!("12".parse::<Cursor>().is_err());
        assert!("a_b".parse::<Cursor>().is_err());
    }

    #[test]
    fn search_patterns_escape_wildcards() {
        assert_eq!(like_pattern(Some("  ")), None);
        assert_eq!(like_pattern(Some("50%_off")).unwrap(), "%50\\%\\_off%");
        assert_eq!(like_pattern(Some("Wang")).unwrap(), "%wang%");
    }
}
