//! Reminder rows: which trials are near a reminder date, and the exactly-once record of each
//! reminder (queued with its mail, missed, or failed) keyed by (trial, kind, audience, expiry).

use super::inbound::insert_review;
use super::outbox::{end_claim, insert_outbox};
use super::{
    begin_write, dispatch, from_json, parse_field, to_json, Bind, Dialect, NewOutbox, NewReview,
    OutboxState, Store, StoreDb, StoreError,
};
use crate::domain::Language;

/// A non-converted trial whose expiry date lies in a scanned range, with its recipients and
/// whether each audience already has a row for this kind and expiry date. Only trials with at
/// least one audience still open are returned.
#[derive(Debug, Clone)]
pub struct ReminderCandidate {
    pub trial_id: String,
    pub expires_on: jiff::civil::Date,
    pub timezone: String,
    /// Unix ms since which the current expiry date is known.
    pub planned_since: i64,
    pub customer_admin_emails: Vec<String>,
    pub partner_admin_emails: Vec<String>,
    /// The customer admins' language (the trial's) and the partner admins' (the partner's).
    pub trial_language: Language,
    pub partner_language: Language,
    pub customer_recorded: bool,
    pub partner_recorded: bool,
}

/// One candidate as the planning query returns it (an element of its JSON array, or a row).
#[derive(serde::Deserialize, sqlx::FromRow)]
struct CandidateRow(
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
);

/// The candidates' columns and where they come from: one range scan on `trials_active_plan`
/// (its predicate `NOT converted` is repeated word for word so both planners match the partial
/// index) and, per trial, one probe of the reminders' unique key per audience; trials with
/// both audiences recorded are dropped in SQL.
macro_rules! candidates {
    ($select:literal, $close:literal) => {
        concat!(
            $select,
            "t.trial_id, t.expires_on, t.timezone, t.planned_since, t.customer_admin_emails, \
             p.admin_emails, t.language, p.language, \
             CAST(CASE WHEN rc.id IS NULL THEN 0 ELSE 1 END AS BIGINT), \
             CAST(CASE WHEN rp.id IS NULL THEN 0 ELSE 1 END AS BIGINT)",
            $close,
            " FROM trials t JOIN partners p ON p.partner_id = t.partner_id \
             LEFT JOIN reminders rc ON rc.trial_id = t.trial_id AND rc.kind = $3 \
               AND rc.audience = 'customer_admins' AND rc.expires_on = t.expires_on \
             LEFT JOIN reminders rp ON rp.trial_id = t.trial_id AND rp.kind = $3 \
               AND rp.audience = 'partner_admins' AND rp.expires_on = t.expires_on \
             WHERE NOT t.converted AND t.expires_on >= $1 AND t.expires_on <= $2 \
             AND (NOT $4 OR t.services LIKE '%\"calling\"%') \
             AND (rc.id IS NULL OR rp.id IS NULL)"
        )
    };
}

/// The candidates as ONE row holding a JSON array, for SQLite: a day's planning over a million
/// trials is tens of thousands of candidates, and as rows each was a hand-off from the SQLite
/// connection's thread and a copy per column (most of the planning time); one JSON text is
/// parsed here in a fraction of that (1,000,000 trials: 0.31 s as rows, 0.11 s as JSON). The
/// address lists stay the JSON texts they are stored as.
const CANDIDATES: &str = candidates!(
    "SELECT CAST(COALESCE({json_agg}({json_array}(",
    ")), '[]') AS TEXT)"
);

/// The same candidates one row each, for PostgreSQL: its wire protocol streams rows cheaply,
/// and building the JSON there cost more than it saved (0.10 s as rows, 0.16 s as JSON).
const CANDIDATE_ROWS: &str = candidates!("SELECT ", "");

/// One reminder to record.
#[derive(Debug, Clone)]
pub struct NewReminder {
    pub trial_id: String,
    pub kind: String,
    pub audience: String,
    /// The expiry date the reminder was planned from (part of the unique key).
    pub expires_on: jiff::civil::Date,
    pub due_on: jiff::civil::Date,
    pub recipients: Vec<String>,
    pub language: String,
}

/// What recording a reminder did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderOutcome {
    /// First time: the row (and its mail or review item) was written.
    Recorded { reminder_id: i64 },
    /// A row for the key exists already (another tick or instance), or the trial no longer has
    /// this expiry date or was converted meanwhile: nothing was written.
    Skipped,
}

/// A stored reminder row, for staff and tests.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ReminderRow {
    pub id: i64,
    pub trial_id: String,
    pub kind: String,
    pub audience: String,
    pub expires_on: String,
    pub due_on: String,
    /// `queued`, `missed`, `failed` or `cancelled` (the trial changed before it was sent).
    pub state: String,
    /// JSON list.
    pub recipients: String,
    pub language: String,
    pub outbox_id: Option<i64>,
    pub created_at: i64,
    /// Why a `cancelled` reminder was not sent.
    pub cancelled_reason: Option<String>,
}

// Inserts the row only while the trial still has this expiry date and is not converted, so a
// re-import or extension racing with a tick never gets a stale reminder recorded. SQLite needs
// the WHERE for INSERT … SELECT … ON CONFLICT to parse.
const INSERT_REMINDER: &str = "INSERT INTO reminders (trial_id, kind, audience, expires_on, \
     due_on, state, recipients, language, created_at) \
     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 WHERE EXISTS (SELECT 1 FROM trials \
     WHERE trial_id = $1 AND expires_on = $4 AND NOT converted) \
     ON CONFLICT (trial_id, kind, audience, expires_on) DO NOTHING RETURNING id";

/// Inserts `reminder` in `state` at `now_ms` with `conn`: its id, or None when the unique key
/// (or the trial's current expiry date) says it is not to be written.
async fn insert_reminder<DB: StoreDb>(
    conn: &mut DB::Connection,
    reminder: &NewReminder,
    state: &str,
    now_ms: i64,
) -> Result<Option<i64>, sqlx::Error>
where
    i64: Bind<DB> + for<'r> sqlx::Decode<'r, DB>,
    String: Bind<DB>,
    for<'a> &'a str: Bind<DB>,
    usize: sqlx::ColumnIndex<<DB as sqlx::Database>::Row>,
{
    sqlx::query_scalar(INSERT_REMINDER)
        .bind(&reminder.trial_id)
        .bind(&reminder.kind)
        .bind(&reminder.audience)
        .bind(reminder.expires_on.to_string())
        .bind(reminder.due_on.to_string())
        .bind(state)
        .bind(to_json(&reminder.recipients))
        .bind(&reminder.language)
        .bind(now_ms)
        .fetch_optional(DB::exec(conn))
        .await
}

impl Store {
    /// Trials with expiry dates in `[from, to]` that still lack a row for `kind` for at least
    /// one audience. `calling_only` keeps trials with the calling service.
    pub async fn reminder_candidates(
        &self,
        kind: &str,
        from: jiff::civil::Date,
        to: jiff::civil::Date,
        calling_only: bool,
    ) -> Result<Vec<ReminderCandidate>, StoreError> {
        let rows: Vec<CandidateRow> = if self.dialect() == Dialect::Sqlite {
            let sql = self.dialect().sql(CANDIDATES);
            let json: String = dispatch!(self, |pool| {
                sqlx::query_scalar(sql)
                    .bind(from.to_string())
                    .bind(to.to_string())
                    .bind(kind)
                    .bind(calling_only)
                    .fetch_one(pool)
                    .await?
            });
            serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                table: "trials",
                message: format!("reminder candidates: {e}"),
            })?
        } else {
            dispatch!(self, |pool| {
                sqlx::query_as(CANDIDATE_ROWS)
                    .bind(from.to_string())
                    .bind(to.to_string())
                    .bind(kind)
                    .bind(calling_only)
                    .fetch_all(pool)
                    .await?
            })
        };
        rows.into_iter()
            .map(|r| {
                let CandidateRow(
                    trial_id,
                    expires_on,
                    timezone,
                    planned_since,
                    customer_admin_emails,
                    partner_admin_emails,
                    trial_language,
                    partner_language,
                    customer_recorded,
                    partner_recorded,
                ) = r;
                Ok(ReminderCandidate {
                    expires_on: super::parse_date("trials", Some(&expires_on))?.ok_or_else(
                        || StoreError::Corrupt {
                            table: "trials",
                            message: format!("trial {trial_id} has no expiry date"),
                        },
                    )?,
                    customer_admin_emails: from_json("trials", &customer_admin_emails)?,
                    partner_admin_emails: from_json("partners", &partner_admin_emails)?,
                    trial_language: parse_field("trials", &trial_language)?,
                    partner_language: parse_field("partners", &partner_language)?,
                    trial_id,
                    timezone,
                    planned_since,
                    customer_recorded: customer_recorded != 0,
                    partner_recorded: partner_recorded != 0,
                })
            })
            .collect()
    }

    /// Records a reminder as queued and queues its mail, in ONE transaction. The unique key
    /// decides: a second tick, a restart or another instance finds the row and writes nothing.
    pub async fn queue_reminder(
        &self,
        reminder: &NewReminder,
        mail: &NewOutbox,
        now_ms: i64,
    ) -> Result<ReminderOutcome, StoreError> {
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let inserted = insert_reminder::<Db>(&mut tx, reminder, "queued", now_ms).await?;
            let Some(reminder_id) = inserted else {
                tx.rollback().await?;
                return Ok(ReminderOutcome::Skipped);
            };
            let outbox_id: i64 = insert_outbox::<Db>(&mut tx, mail, None, now_ms).await?;
            sqlx::query("UPDATE reminders SET outbox_id = $1 WHERE id = $2")
                .bind(outbox_id)
                .bind(reminder_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(ReminderOutcome::Recorded { reminder_id })
        })
    }

    /// Records a reminder that will not be sent (`missed`: its window ended; `failed`: it could
    /// not be rendered or addressed) together with its review item, in ONE transaction.
    pub async fn record_unsent_reminder(
        &self,
        reminder: &NewReminder,
        state: &str,
        review: &NewReview,
        now_ms: i64,
    ) -> Result<ReminderOutcome, StoreError> {
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let inserted = insert_reminder::<Db>(&mut tx, reminder, state, now_ms).await?;
            let Some(reminder_id) = inserted else {
                tx.rollback().await?;
                return Ok(ReminderOutcome::Skipped);
            };
            insert_review::<Db>(&mut tx, review, None, Some(reminder_id), now_ms).await?;
            tx.commit().await?;
            Ok(ReminderOutcome::Recorded { reminder_id })
        })
    }

    /// Every reminder row of a trial (or of all trials), oldest first.
    pub async fn reminders(&self, trial_id: Option<&str>) -> Result<Vec<ReminderRow>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT id, trial_id, kind, audience, expires_on, due_on, state, recipients, \
                 language, outbox_id, created_at, cancelled_reason FROM reminders \
                 WHERE ($1 IS NULL OR trial_id = $1) ORDER BY id",
            )
            .bind(trial_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// At send time: why the reminder queued as outbox row `outbox_id` must not go out any
    /// more (its trial was converted, or extended to another expiry date since it was
    /// planned), or None when it still holds.
    pub async fn reminder_stale(&self, outbox_id: i64) -> Result<Option<String>, StoreError> {
        let row: Option<(String, String, bool)> = dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT r.expires_on, t.expires_on, t.converted FROM reminders r \
                 JOIN trials t ON t.trial_id = r.trial_id WHERE r.outbox_id = $1",
            )
            .bind(outbox_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(|(planned, now, converted)| {
            if converted {
                Some("trial converted before the reminder was sent".to_string())
            } else if planned != now {
                Some(format!(
                    "trial extended (expires {now}, was {planned}) before the reminder was sent"
                ))
            } else {
                None
            }
        }))
    }

    /// Cancels a claimed reminder mail: the outbox row is discarded and the reminder marked
    /// `cancelled` with `why`, in one transaction. Only the worker holding the lease may.
    pub async fn cancel_reminder_mail(
        &self,
        outbox_id: i64,
        worker: &str,
        why: &str,
    ) -> Result<bool, StoreError> {
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let done =
                end_claim::<Db>(&mut tx, outbox_id, worker, OutboxState::Discarded, why).await?;
            if done {
                sqlx::query(
                    "UPDATE reminders SET state = 'cancelled', cancelled_reason = $1 \
                     WHERE outbox_id = $2",
                )
                .bind(why)
                .bind(outbox_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(done)
        })
    }
}
