use super::{begin_write, dispatch, Bind, NewOutbox, Store, StoreDb, StoreError};

/// Where a queued mail is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Queued,
    Sent,
    /// Gave up (permanent error or too many attempts): a review item says why.
    Dead,
    /// Staff discarded a dead mail.
    Discarded,
}

impl OutboxState {
    pub fn code(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Sent => "sent",
            OutboxState::Dead => "dead",
            OutboxState::Discarded => "discarded",
        }
    }
}

/// A queued mail, as claimed by a sender or listed for staff.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub purpose: String,
    pub inbound_id: Option<i64>,
    pub message_id: String,
    pub envelope_from: String,
    /// JSON list.
    pub recipients: String,
    pub subject: String,
    pub body: Vec<u8>,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

impl OutboxRow {
    pub fn recipient_list(&self) -> Result<Vec<String>, StoreError> {
        super::from_json("outbox", &self.recipients)
    }
}

/// Queues one mail at `now_ms` (for `inbound_id`, when it answers one) with `exec`: the new
/// row's id. Shared by every transaction that queues mail.
pub(super) async fn insert_outbox<DB: StoreDb>(
    conn: &mut DB::Connection,
    mail: &NewOutbox,
    inbound_id: Option<i64>,
    now_ms: i64,
) -> Result<i64, sqlx::Error>
where
    i64: Bind<DB> + for<'r> sqlx::Decode<'r, DB>,
    Option<i64>: Bind<DB>,
    String: Bind<DB>,
    Vec<u8>: Bind<DB>,
    usize: sqlx::ColumnIndex<<DB as sqlx::Database>::Row>,
{
    sqlx::query_scalar(
        "INSERT INTO outbox (purpose, inbound_id, message_id, envelope_from, recipients, \
         rate_key, subject, body, state, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'queued', 0, $9, $9) RETURNING id",
    )
    .bind(&mail.purpose)
    .bind(inbound_id)
    .bind(&mail.message_id)
    .bind(&mail.envelope_from)
    .bind(super::to_json(&mail.recipients))
    .bind(&mail.rate_key)
    .bind(&mail.subject)
    .bind(&mail.body)
    .bind(now_ms)
    .fetch_one(DB::exec(conn))
    .await
}

/// Ends `worker`'s claim on the queued outbox row `id` for good, as `state` (`Dead` or
/// `Discarded`) with `error` as its last error, with `conn`. False when the row is not ours
/// (any more) or no longer queued: nothing was written.
pub(super) async fn end_claim<DB: StoreDb>(
    conn: &mut DB::Connection,
    id: i64,
    worker: &str,
    state: OutboxState,
    error: &str,
) -> Result<bool, sqlx::Error>
where
    i64: Bind<DB>,
    for<'a> &'a str: Bind<DB>,
{
    let result = sqlx::query(
        "UPDATE outbox SET state = $4, last_error = $1, locked_until = NULL, \
         locked_by = NULL WHERE id = $2 AND locked_by = $3 AND state = 'queued'",
    )
    .bind(error)
    .bind(id)
    .bind(worker)
    .bind(state.code())
    .execute(DB::exec(conn))
    .await?;
    Ok(DB::rows_affected(&result) == 1)
}

// The claim marks rows as leased to one worker for `lease` and counts the attempt up front, so
// a mail that crashes its sender every time still ends in the dead letters. PostgreSQL skips
// rows another instance is claiming right now; SQLite has a single writer, which is the lock.
//
// Lease times are the database's clock (`$1` is the lease's length), never an instance's: an
// instance whose clock runs ahead must not see another's lease as expired. Whether a row is
// due (`$3`, `next_attempt_at`) stays on the application's clock, which tests move.
const CLAIM: &str = "UPDATE outbox SET locked_until = {now_ms} + $1, locked_by = $2, \
     attempts = attempts + 1 \
     WHERE id IN (SELECT id FROM outbox WHERE state = 'queued' AND next_attempt_at <= $3 \
     AND (locked_until IS NULL OR locked_until <= {now_ms}) ORDER BY next_attempt_at, id \
     LIMIT $4{skip_locked}) \
     RETURNING id, purpose, inbound_id, message_id, envelope_from, recipients, subject, body, \
     state, attempts, next_attempt_at, last_error, created_at, sent_at";
const RENEW: &str = "UPDATE outbox SET locked_until = {now_ms} + $1 \
     WHERE locked_by = $2 AND state = 'queued' RETURNING id";

impl Store {
    /// Leases up to `limit` mails due at `now_ms` to `worker` for `lease_ms` of the
    /// database's clock.
    pub async fn claim_outbox(
        &self,
        worker: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let sql = self.dialect().sql(CLAIM);
        let mut rows: Vec<OutboxRow> = dispatch!(self, |pool| {
            sqlx::query_as(sql)
                .bind(lease_ms)
                .bind(worker)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        // RETURNING gives no order guarantee.
        rows.sort_by_key(|r| (r.next_attempt_at, r.id));
        Ok(rows)
    }

    /// Records a delivery. Only the worker holding the lease may do so.
    pub async fn mark_sent(&self, id: i64, worker: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = dispatch!(self, |pool| {
            sqlx::query(
                "UPDATE outbox SET state = 'sent', sent_at = $1, locked_until = NULL, \
                 locked_by = NULL, last_error = NULL WHERE id = $2 AND locked_by = $3 \
                 AND state = 'queued'",
            )
            .bind(now_ms)
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Extends the lease of every row `worker` holds to `lease_ms` from now on the database's
    /// clock; returns their ids. A row missing from the answer is no longer ours (its lease ran
    /// out and another sender claimed it).
    pub async fn renew_outbox_leases(
        &self,
        worker: &str,
        lease_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let sql = self.dialect().sql(RENEW);
        Ok(dispatch!(self, |pool| {
            sqlx::query_scalar(sql)
                .bind(lease_ms)
                .bind(worker)
                .fetch_all(pool)
                .await?
        }))
    }

    /// A transient failure: try again at `next_attempt_ms`.
    pub async fn mark_retry(
        &self,
        id: i64,
        worker: &str,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<bool, StoreError> {
        let done = dispatch!(self, |pool| {
            sqlx::query(
                "UPDATE outbox SET next_attempt_at = $1, last_error = $2, locked_until = NULL, \
                 locked_by = NULL WHERE id = $3 AND locked_by = $4 AND state = 'queued'",
            )
            .bind(next_attempt_ms)
            .bind(error)
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Hands a claimed row back without counting the attempt the claim counted: the relay was
    /// unavailable (the mail was never offered) or the sender is shutting down. The row stays
    /// due at its old time.
    pub async fn release_outbox(
        &self,
        id: i64,
        worker: &str,
        error: &str,
    ) -> Result<bool, StoreError> {
        let done = dispatch!(self, |pool| {
            sqlx::query(
                "UPDATE outbox SET attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
                 last_error = $1, locked_until = NULL, locked_by = NULL \
                 WHERE id = $2 AND locked_by = $3 AND state = 'queued'",
            )
            .bind(error)
            .bind(id)
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Opens the one `relay_down` review item (if none is open): the SMTP relay is unavailable.
    /// Returns whether this call opened it.
    pub async fn open_relay_down(&self, detail: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = dispatch!(self, |pool| {
            sqlx::query(
                "INSERT INTO review_items (reason, reasons, detail, state, created_at) \
                 VALUES ('relay_down', '[\"relay_down\"]', $1, 'open', $2) \
                 ON CONFLICT (reason) WHERE reason = 'relay_down' AND state = 'open' DO NOTHING",
            )
            .bind(detail)
            .bind(now_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done == 1)
    }

    /// Resolves the open `relay_down` item, if any: the relay took a mail again.
    pub async fn close_relay_down(&self, note: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = dispatch!(self, |pool| {
            sqlx::query(
                "UPDATE review_items SET state = 'resolved', resolved_at = $1, \
                 resolved_by = 'trialdesk', note = $2 WHERE reason = 'relay_down' AND state = 'open'",
            )
            .bind(now_ms)
            .bind(note)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(done >= 1)
    }

    /// Gives up on a mail and puts it in the review queue with the server's answer, in one
    /// transaction: a dead letter is never only a log line.
    pub async fn mark_dead(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let done = end_claim::<Db>(&mut tx, id, worker, OutboxState::Dead, error).await?;
            if done {
                sqlx::query(
                    "INSERT INTO review_items (reason, reasons, detail, outbox_id, state, \
                     created_at) VALUES ('dead_letter', '[\"dead_letter\"]', $1, $2, 'open', $3)",
                )
                .bind(error)
                .bind(id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(done)
        })
    }

    /// When the next queued mail becomes due (or its lease expires), so a sender can sleep
    /// until then instead of polling.
    pub async fn next_outbox_due(&self) -> Result<Option<i64>, StoreError> {
        let due: Option<i64> = dispatch!(self, |pool| {
            sqlx::query_scalar(
                "SELECT MIN(CASE WHEN locked_until IS NOT NULL AND locked_until > next_attempt_at \
                 THEN locked_until ELSE next_attempt_at END) FROM outbox WHERE state = 'queued'",
            )
            .fetch_one(pool)
            .await?
        });
        Ok(due)
    }

    /// Mails waiting to be sent, per purpose, with the oldest one's creation time (for the
    /// metrics; the partial index `outbox_due` holds exactly these rows).
    pub async fn outbox_pending(&self) -> Result<Vec<PendingMail>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT purpose, COUNT(*) AS count, MIN(created_at) AS oldest_created_at \
                 FROM outbox WHERE state = 'queued' GROUP BY purpose ORDER BY purpose",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Mails queued for an inbound message, oldest first.
    pub async fn outbox_for_inbound(&self, inbound_id: i64) -> Result<Vec<OutboxRow>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT id, purpose, inbound_id, message_id, envelope_from, recipients, subject, \
                 body, state, attempts, next_attempt_at, last_error, created_at, sent_at \
                 FROM outbox WHERE inbound_id = $1 ORDER BY id",
            )
            .bind(inbound_id)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT id, purpose, inbound_id, message_id, envelope_from, recipients, subject, \
                 body, state, attempts, next_attempt_at, last_error, created_at, sent_at \
                 FROM outbox WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Mail delivered at or after `since_ms`, counted by what it is: the outbox purpose
    /// (`reply`, …), a reminder as `reminder <kind>`. For `run --once`'s summary.
    pub async fn sent_by_kind(&self, since_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT CASE WHEN r.kind IS NULL THEN o.purpose \
                 ELSE o.purpose || ' ' || r.kind END AS what, COUNT(*) FROM outbox o \
                 LEFT JOIN reminders r ON r.outbox_id = o.id \
                 WHERE o.state = 'sent' AND o.sent_at >= $1 GROUP BY what ORDER BY what",
            )
            .bind(since_ms)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Counts by state, for summaries and health.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as("SELECT state, COUNT(*) FROM outbox GROUP BY state ORDER BY state")
                .fetch_all(pool)
                .await?
        }))
    }
}

/// Queued mail of one purpose (see [`Store::outbox_pending`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingMail {
    pub purpose: String,
    pub count: i64,
    pub oldest_created_at: i64,
}
