use std::collections::HashMap;

use sqlx::QueryBuilder;

use super::{
    begin_write, dispatch, push_in_list, to_json, Bind, Store, StoreDb, StoreError, INSERT_CHUNK,
};

/// Rows per multi-row INSERT that carries whole mails (raw bytes, reply bodies): each
/// statement's bound values are copied into SQLite, so a whole round's mails in one statement
/// raised the peak resident set by megabytes; 16 keeps most of the saved round trips.
const BODY_CHUNK: usize = 16;

fn owned(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// A recorded mail as the duplicate check compares it: id, sender, subject, text.
pub type RecordedMail = (i64, Option<String>, String, String);

/// Records a decision on mail `inbound_id` at `now_ms` with `exec`. Shared by the first
/// decision and a staff reprocess.
pub(super) async fn insert_decision<DB: StoreDb>(
    conn: &mut DB::Connection,
    d: &NewDecision,
    inbound_id: i64,
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    i64: Bind<DB>,
    String: Bind<DB>,
    Option<String>: Bind<DB>,
{
    sqlx::query(
        "INSERT INTO decisions (inbound_id, decided_at, decided_by, kind, action, \
         language, partner_id, loan_numbers, reasons, review) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(inbound_id)
    .bind(now_ms)
    .bind(&d.decided_by)
    .bind(&d.kind)
    .bind(&d.action)
    .bind(&d.language)
    .bind(&d.partner_id)
    .bind(to_json(&d.loan_numbers))
    .bind(to_json(&d.reasons))
    .bind(to_json(&d.review))
    .execute(DB::exec(conn))
    .await?;
    Ok(())
}

/// Opens review item `item` at `now_ms` with `conn`, about mail `inbound_id` or reminder
/// `reminder_id`.
pub(super) async fn insert_review<DB: StoreDb>(
    conn: &mut DB::Connection,
    item: &NewReview,
    inbound_id: Option<i64>,
    reminder_id: Option<i64>,
    now_ms: i64,
) -> Result<(), sqlx::Error>
where
    i64: Bind<DB>,
    Option<i64>: Bind<DB>,
    String: Bind<DB>,
{
    sqlx::query(
        "INSERT INTO review_items (reason, reasons, detail, inbound_id, reminder_id, state, \
         created_at) VALUES ($1, $2, $3, $4, $5, 'open', $6)",
    )
    .bind(&item.reason)
    .bind(to_json(&item.reasons))
    .bind(&item.detail)
    .bind(inbound_id)
    .bind(reminder_id)
    .bind(now_ms)
    .execute(DB::exec(conn))
    .await?;
    Ok(())
}

/// A mail as taken in from a source.
#[derive(Debug, Clone)]
pub struct NewInbound {
    /// `mid:<Message-ID>` or `sha256:<hex>`: the idempotency key.
    pub message_key: String,
    pub message_id: Option<String>,
    /// Where it came from (`maildir:<file>` or `imap:<mailbox>/<uidvalidity>/<uid>`).
    pub source: String,
    pub received_at: i64,
    pub sender: Option<String>,
    pub sender_name: Option<String>,
    pub subject: String,
    pub size_bytes: i64,
    /// The raw bytes, kept for review (None when too large to keep).
    pub raw: Option<Vec<u8>>,
    pub body_text: String,
}

/// A decision as stored (codes as text, so the store does not depend on the rules).
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub decided_by: String,
    pub kind: String,
    pub action: String,
    pub language: String,
    pub partner_id: Option<String>,
    pub loan_numbers: Vec<String>,
    pub reasons: Vec<String>,
    pub review: Vec<String>,
}

/// A mail to queue.
#[derive(Debug, Clone)]
pub struct NewOutbox {
    /// `reply`, `reminder`, `staff_reply`, `shipment_notice` or `rma_label`.
    pub purpose: String,
    pub message_id: String,
    pub envelope_from: String,
    pub recipients: Vec<String>,
    /// Lower-cased primary recipient, for the per-recipient rate limit.
    pub rate_key: String,
    pub subject: String,
    pub body: Vec<u8>,
}

/// An item for the review queue.
#[derive(Debug, Clone)]
pub struct NewReview {
    /// Primary reason code (filters and counts use it).
    pub reason: String,
    /// All reason codes.
    pub reasons: Vec<String>,
    pub detail: String,
}

/// A review item about a thing (a loan), not only about the mail that noticed it: at most one
/// is open per `key` (`loan:D20261003`), however many mails notice it.
#[derive(Debug, Clone)]
pub struct NewAttention {
    pub key: String,
    /// Reason code, e.g. `shipment_attention`.
    pub reason: String,
    pub detail: String,
}

/// One mail to record with everything decided for it (see [`Store::record_group`]).
#[derive(Debug, Clone)]
pub struct NewRecord {
    pub inbound: NewInbound,
    pub decision: NewDecision,
    pub outbox: Vec<NewOutbox>,
    pub review: Option<NewReview>,
    pub attention: Vec<NewAttention>,
}

/// What recording a mail did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// First time: stored with its decision, replies queued.
    Recorded {
        inbound_id: i64,
        outbox_ids: Vec<i64>,
    },
    /// The message key was already known: nothing was written.
    Duplicate { inbound_id: i64 },
}

/// A stored inbound mail with its latest decision, for staff.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct InboundRecord {
    pub id: i64,
    pub message_key: String,
    pub message_id: Option<String>,
    pub source: String,
    pub received_at: i64,
    pub sender: Option<String>,
    pub sender_name: Option<String>,
    pub subject: String,
    pub size_bytes: i64,
    pub body_text: String,
    pub kind: String,
    pub action: String,
    pub partner_id: Option<String>,
    pub loan_numbers: String,
}

impl Store {
    /// The mail already taken in under this key, if any: (id, sender, subject). Lets the
    /// pipeline skip the work and just acknowledge a mail whose decision was committed before a
    /// crash, and tell a true redelivery from a different mail reusing a Message-ID.
    pub async fn inbound_by_key(
        &self,
        message_key: &str,
    ) -> Result<Option<RecordedMail>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT id, sender, subject, body_text FROM inbound_messages \
                 WHERE message_key = $1",
            )
            .bind(message_key)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// [`Store::inbound_by_key`] for a round's mails at once: the keys that are recorded.
    pub async fn inbound_by_keys(
        &self,
        message_keys: &[&str],
    ) -> Result<HashMap<String, RecordedMail>, StoreError> {
        let mut found = HashMap::new();
        for chunk in message_keys.chunks(INSERT_CHUNK) {
            let rows: Vec<(String, i64, Option<String>, String, String)> =
                dispatch!(self, |pool| {
                    let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                        "SELECT message_key, id, sender, subject, body_text \
                         FROM inbound_messages WHERE message_key IN (",
                    );
                    push_in_list(&mut qb, &owned(chunk));
                    qb.build_query_as().fetch_all(pool).await?
                });
            found.extend(
                rows.into_iter()
                    .map(|(key, id, sender, subject, text)| (key, (id, sender, subject, text))),
            );
        }
        Ok(found)
    }

    /// Stores a mail, its decision, its queued replies and its review item in ONE transaction.
    /// The unique message key decides "first time" versus "already done": a mail delivered
    /// twice, or re-read after a crash, is recorded once and answered once.
    pub async fn record_inbound(
        &self,
        inbound: &NewInbound,
        decision: &NewDecision,
        outbox: &[NewOutbox],
        review: Option<&NewReview>,
        now_ms: i64,
    ) -> Result<RecordOutcome, StoreError> {
        let record = NewRecord {
            inbound: inbound.clone(),
            decision: decision.clone(),
            outbox: outbox.to_vec(),
            review: review.cloned(),
            attention: Vec::new(),
        };
        let mut outcomes = self.record_group(&[&record], now_ms).await?;
        Ok(outcomes.pop().expect("one outcome per recorded mail"))
    }

    /// Records a group of mails in one write transaction (group commit: one disk flush for
    /// the group instead of one per mail). Each mail is written as by [`Store::record_inbound`]
    /// plus its `attention` items (one OPEN item per key: a key that already has an open item
    /// gets none). All or nothing: an error leaves none of the group recorded, so the caller
    /// acknowledges the mails to their source only after this returns. A mail whose key is
    /// already known comes back `Duplicate` and writes nothing.
    pub async fn record_group(
        &self,
        group: &[&NewRecord],
        now_ms: i64,
    ) -> Result<Vec<RecordOutcome>, StoreError> {
        if group.is_empty() {
            return Ok(Vec::new());
        }
        // A few multi-row statements for the whole group rather than three or more per mail:
        // on SQLite each statement is a hand-off to the connection's thread, which costs more
        // than the insert, and the write lock is held for less time. Rows are matched back by
        // their unique keys, not by position. The statements are not kept prepared: each
        // group size is its own SQL text, and a cache of large VALUES lists on every
        // connection would cost megabytes.
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            // 1. The mails: the id of each one recorded now, by its key. A key known before
            //    (a redelivery, or another instance was first) writes nothing.
            let mut fresh_ids: HashMap<String, i64> = HashMap::with_capacity(group.len());
            for chunk in group.chunks(BODY_CHUNK) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "INSERT INTO inbound_messages (message_key, message_id, source, received_at, \
                     sender, sender_name, subject, size_bytes, raw, body_text, kind, action, \
                     partner_id, loan_numbers) ",
                );
                qb.push_values(chunk, |mut row, r| {
                    let (m, d) = (&r.inbound, &r.decision);
                    row.push_bind(m.message_key.clone())
                        .push_bind(m.message_id.clone())
                        .push_bind(m.source.clone())
                        .push_bind(m.received_at)
                        .push_bind(m.sender.clone())
                        .push_bind(m.sender_name.clone())
                        .push_bind(m.subject.clone())
                        .push_bind(m.size_bytes)
                        .push_bind(m.raw.clone())
                        .push_bind(m.body_text.clone())
                        .push_bind(d.kind.clone())
                        .push_bind(d.action.clone())
                        .push_bind(d.partner_id.clone())
                        .push_bind(to_json(&d.loan_numbers));
                });
                qb.push(" ON CONFLICT (message_key) DO NOTHING RETURNING id, message_key");
                let rows: Vec<(i64, String)> = qb
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *tx)
                    .await?;
                fresh_ids.extend(rows.into_iter().map(|(id, key)| (key, id)));
            }
            // The first mail under a key recorded now is new; every other one a duplicate.
            let mut fresh: Vec<(i64, &NewRecord)> = Vec::with_capacity(group.len());
            let mut slots: Vec<Option<i64>> = Vec::with_capacity(group.len());
            for &record in group {
                let id = fresh_ids.remove(&record.inbound.message_key);
                if let Some(id) = id {
                    fresh.push((id, record));
                }
                slots.push(id);
            }
            let known_keys: Vec<&str> = group
                .iter()
                .zip(&slots)
                .filter(|(_, id)| id.is_none())
                .map(|(r, _)| r.inbound.message_key.as_str())
                .collect();
            let mut known: HashMap<String, i64> = HashMap::new();
            for chunk in known_keys.chunks(INSERT_CHUNK) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "SELECT message_key, id FROM inbound_messages WHERE message_key IN (",
                );
                push_in_list(&mut qb, &owned(chunk));
                let rows: Vec<(String, i64)> = qb
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *tx)
                    .await?;
                known.extend(rows);
            }
            // 2. Their decisions.
            for chunk in fresh.chunks(INSERT_CHUNK) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "INSERT INTO decisions (inbound_id, decided_at, decided_by, kind, action, \
                     language, partner_id, loan_numbers, reasons, review) ",
                );
                qb.push_values(chunk, |mut row, (id, r)| {
                    let d = &r.decision;
                    row.push_bind(*id)
                        .push_bind(now_ms)
                        .push_bind(d.decided_by.clone())
                        .push_bind(d.kind.clone())
                        .push_bind(d.action.clone())
                        .push_bind(d.language.clone())
                        .push_bind(d.partner_id.clone())
                        .push_bind(to_json(&d.loan_numbers))
                        .push_bind(to_json(&d.reasons))
                        .push_bind(to_json(&d.review));
                });
                qb.build().persistent(false).execute(&mut *tx).await?;
            }
            // 3. Their replies, queued; ids matched back by (mail, Message-ID).
            let replies: Vec<(i64, &NewOutbox)> = fresh
                .iter()
                .flat_map(|(id, r)| r.outbox.iter().map(move |mail| (*id, mail)))
                .collect();
            let mut outbox_ids: HashMap<(i64, String), Vec<i64>> = HashMap::new();
            for chunk in replies.chunks(BODY_CHUNK) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "INSERT INTO outbox (purpose, inbound_id, message_id, envelope_from, \
                     recipients, rate_key, subject, body, state, attempts, next_attempt_at, \
                     created_at) ",
                );
                qb.push_values(chunk, |mut row, (id, mail)| {
                    row.push_bind(mail.purpose.clone())
                        .push_bind(*id)
                        .push_bind(mail.message_id.clone())
                        .push_bind(mail.envelope_from.clone())
                        .push_bind(to_json(&mail.recipients))
                        .push_bind(mail.rate_key.clone())
                        .push_bind(mail.subject.clone())
                        .push_bind(mail.body.clone())
                        .push("'queued'")
                        .push("0")
                        .push_bind(now_ms)
                        .push_bind(now_ms);
                });
                qb.push(" RETURNING id, inbound_id, message_id");
                let rows: Vec<(i64, i64, String)> = qb
                    .build_query_as()
                    .persistent(false)
                    .fetch_all(&mut *tx)
                    .await?;
                for (id, inbound_id, message_id) in rows {
                    outbox_ids
                        .entry((inbound_id, message_id))
                        .or_default()
                        .push(id);
                }
            }
            // 4. Review items, and attention items (one OPEN item per key).
            let reviews: Vec<(i64, &NewReview)> = fresh
                .iter()
                .filter_map(|(id, r)| r.review.as_ref().map(|item| (*id, item)))
                .collect();
            for chunk in reviews.chunks(INSERT_CHUNK) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "INSERT INTO review_items (reason, reasons, detail, inbound_id, state, \
                     created_at) ",
                );
                qb.push_values(chunk, |mut row, (id, item)| {
                    row.push_bind(item.reason.clone())
                        .push_bind(to_json(&item.reasons))
                        .push_bind(item.detail.clone())
                        .push_bind(*id)
                        .push("'open'")
                        .push_bind(now_ms);
                });
                qb.build().persistent(false).execute(&mut *tx).await?;
            }
            let attention: Vec<(i64, &NewAttention)> = fresh
                .iter()
                .flat_map(|(id, r)| r.attention.iter().map(move |item| (*id, item)))
                .collect();
            for chunk in attention.chunks(INSERT_CHUNK) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "INSERT INTO review_items (reason, reasons, detail, inbound_id, state, \
                     created_at, attention_key) ",
                );
                qb.push_values(chunk, |mut row, (id, item)| {
                    row.push_bind(item.reason.clone())
                        .push_bind(to_json(std::slice::from_ref(&item.reason)))
                        .push_bind(item.detail.clone())
                        .push_bind(*id)
                        .push("'open'")
                        .push_bind(now_ms)
                        .push_bind(item.key.clone());
                });
                qb.push(" ON CONFLICT DO NOTHING");
                qb.build().persistent(false).execute(&mut *tx).await?;
            }
            // Every mail accounted for before the commit: all or nothing.
            let mut outcomes = Vec::with_capacity(group.len());
            for (&record, slot) in group.iter().zip(slots) {
                let outcome = match slot {
                    Some(inbound_id) => RecordOutcome::Recorded {
                        inbound_id,
                        outbox_ids: record
                            .outbox
                            .iter()
                            .filter_map(|mail| {
                                let ids =
                                    outbox_ids.get_mut(&(inbound_id, mail.message_id.clone()))?;
                                ids.sort_unstable_by(|a, b| b.cmp(a));
                                ids.pop()
                            })
                            .collect(),
                    },
                    None => match known.get(&record.inbound.message_key) {
                        Some(&inbound_id) => RecordOutcome::Duplicate { inbound_id },
                        None => {
                            tx.rollback().await?;
                            return Err(StoreError::Corrupt {
                                table: "inbound_messages",
                                message: format!(
                                    "mail {} neither recorded nor found",
                                    record.inbound.message_key
                                ),
                            });
                        }
                    },
                };
                outcomes.push(outcome);
            }
            tx.commit().await?;
            Ok(outcomes)
        })
    }

    /// When automatic replies to `rate_key` were queued since `since_ms` (the widest window of
    /// the per-recipient rate limit: a few rows, since the limit stops more).
    pub async fn recent_reply_times(
        &self,
        rate_key: &str,
        since_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(dispatch!(self, |pool| {
            // `purpose || ''` keeps SQLite's planner on `outbox_rate` (a few rows per address):
            // on `purpose` it would pick `outbox_purpose_created` and read every reply of the
            // window, one full window scan per mail (quadratic in a backlog).
            sqlx::query_scalar(
                "SELECT created_at FROM outbox WHERE rate_key = $1 AND created_at >= $2 \
                 AND purpose || '' IN ('reply', 'rma_label')",
            )
            .bind(rate_key)
            .bind(since_ms)
            .fetch_all(pool)
            .await?
        }))
    }

    /// [`Store::recent_reply_times`] for several addresses at once (a round's senders).
    pub async fn recent_reply_times_of(
        &self,
        rate_keys: &[&str],
        since_ms: i64,
    ) -> Result<HashMap<String, Vec<i64>>, StoreError> {
        let mut times: HashMap<String, Vec<i64>> = HashMap::new();
        for chunk in rate_keys.chunks(INSERT_CHUNK) {
            let rows: Vec<(String, i64)> = dispatch!(self, |pool| {
                // As in recent_reply_times: `purpose || ''` keeps the planner on outbox_rate.
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "SELECT rate_key, created_at FROM outbox WHERE rate_key IN (",
                );
                push_in_list(&mut qb, &owned(chunk));
                qb.push(" AND created_at >= ")
                    .push_bind(since_ms)
                    .push(" AND purpose || '' IN ('reply', 'rma_label')");
                qb.build_query_as().fetch_all(pool).await?
            });
            for (key, at) in rows {
                times.entry(key).or_default().push(at);
            }
        }
        Ok(times)
    }

    pub async fn inbound(&self, id: i64) -> Result<Option<InboundRecord>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT id, message_key, message_id, source, received_at, sender, sender_name, \
                 subject, size_bytes, body_text, kind, action, partner_id, loan_numbers \
                 FROM inbound_messages WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// The raw bytes of an inbound mail (None when not kept).
    pub async fn inbound_raw(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let raw: Option<Option<Vec<u8>>> = dispatch!(self, |pool| {
            sqlx::query_scalar("SELECT raw FROM inbound_messages WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(raw.flatten())
    }

    /// Counts of inbound mails by (kind, action), for summaries.
    pub async fn inbound_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT kind, action, COUNT(*) FROM inbound_messages GROUP BY kind, action \
                 ORDER BY kind, action",
            )
            .fetch_all(pool)
            .await?
        }))
    }
}
