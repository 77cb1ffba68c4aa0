//! The staff workspace: who works on an item (assignment), internal notes, users' own
//! language and time zone, the counts the queue shows, the item sets bulk actions work on,
//! and the thread around a mail. Every write is audited in its own transaction.

use sqlx::QueryBuilder;

use super::audit::{insert_audit, NewAudit};
use super::{begin_write, dispatch, Store, StoreError};

/// A user's own settings for the pages (None: not chosen).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct UserSettings {
    pub language: Option<String>,
    pub time_zone: Option<String>,
}

/// A mail of the same thread as another (same References chain, or the same loans from the
/// same partner), for the item page.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ThreadMail {
    pub id: i64,
    pub received_at: i64,
    pub sender: Option<String>,
    pub subject: String,
    pub loan_numbers: String,
    /// Its latest review item, if it has one.
    pub review_id: Option<i64>,
    pub review_state: Option<String>,
}

impl Store {
    pub async fn user_settings(&self, user_name: &str) -> Result<UserSettings, StoreError> {
        let row: Option<UserSettings> = dispatch!(self, |pool| {
            sqlx::query_as("SELECT language, time_zone FROM user_settings WHERE user_name = $1")
                .bind(user_name)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.unwrap_or_default())
    }

    pub async fn save_user_settings(
        &self,
        user_name: &str,
        settings: &UserSettings,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            sqlx::query(
                "INSERT INTO user_settings (user_name, language, time_zone, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (user_name) DO UPDATE SET \
                 language = EXCLUDED.language, time_zone = EXCLUDED.time_zone, \
                 updated_at = EXCLUDED.updated_at",
            )
            .bind(user_name)
            .bind(&settings.language)
            .bind(&settings.time_zone)
            .bind(now_ms)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Gives open item `id` to `assignee` (None: to nobody) and audits it, in one
    /// transaction. `Conflict` when the item is not open.
    pub async fn assign_item(
        &self,
        id: i64,
        assignee: Option<&str>,
        audit: &NewAudit,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let n = sqlx::query(
                "UPDATE review_items SET assignee = $1 WHERE id = $2 AND state = 'open'",
            )
            .bind(assignee)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                tx.rollback().await?;
                return Err(super::review::not_open(id));
            }
            insert_audit::<Db>(&mut tx, audit, now_ms).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Open items older than `before_ms` (past the SLA).
    pub async fn overdue_count(&self, before_ms: i64) -> Result<i64, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM review_items WHERE state = 'open' AND created_at < $1",
            )
            .bind(before_ms)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Mail queued in the outbox and due before `due_before_ms` (waiting for a sender).
    pub async fn outbox_waiting(&self, due_before_ms: i64) -> Result<i64, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM outbox WHERE state = 'queued' AND next_attempt_at < $1",
            )
            .bind(due_before_ms)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Received mail in `[from_ms, to_ms)`, for the reports.
    pub async fn report_mails(&self, from_ms: i64, to_ms: i64) -> Result<Vec<MailRow>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT m.received_at, m.action, m.partner_id, p.name AS partner_name, \
                 EXISTS (SELECT 1 FROM review_items r WHERE r.inbound_id = m.id) AS reviewed \
                 FROM inbound_messages m LEFT JOIN partners p ON p.partner_id = m.partner_id \
                 WHERE m.received_at >= $1 AND m.received_at < $2",
            )
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Review items opened in `[from_ms, to_ms)`, with their first staff action.
    pub async fn report_items(&self, from_ms: i64, to_ms: i64) -> Result<Vec<ItemRow>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT r.created_at, r.reason, \
                 (SELECT MIN(a.at) FROM audit_log a WHERE a.review_id = r.id) AS first_action_at, \
                 r.resolved_at FROM review_items r \
                 WHERE r.created_at >= $1 AND r.created_at < $2",
            )
            .bind(from_ms)
            .bind(to_ms)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Open items per assignee view: (mine, unassigned).
    pub async fn assignment_counts(&self, user: &str) -> Result<(i64, i64), StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT COALESCE(SUM(CASE WHEN assignee = $1 THEN 1 ELSE 0 END), 0), \
                 COALESCE(SUM(CASE WHEN assignee IS NULL THEN 1 ELSE 0 END), 0) \
                 FROM review_items WHERE state = 'open'",
            )
            .bind(user)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Open items whose primary reason is `reason`, oldest first.
    pub async fn open_item_ids(&self, reason: &str) -> Result<Vec<i64>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM review_items WHERE state = 'open' AND reason = $1 \
                 ORDER BY created_at, id",
            )
            .bind(reason)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Open items about a mail that is dead in the outbox, oldest first.
    pub async fn dead_letter_item_ids(&self) -> Result<Vec<i64>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_scalar(
                "SELECT r.id FROM review_items r JOIN outbox o ON o.id = r.outbox_id \
                 WHERE r.state = 'open' AND o.state = 'dead' ORDER BY r.created_at, r.id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// The thread around inbound mail `inbound_id`, newest first (at most `limit`): mails
    /// whose Message-ID is in `references` (its References/In-Reply-To), mails that answered
    /// under one of our replies listed there, and mails from the same partner naming one of
    /// `loans`. Never the mail itself.
    pub async fn thread_of(
        &self,
        inbound_id: i64,
        partner_id: Option<&str>,
        references: &[String],
        loans: &[String],
        limit: i64,
    ) -> Result<Vec<ThreadMail>, StoreError> {
        // The newest ancestors are last in References; a crafted mail listing thousands must
        // not exceed the database's bound parameters and leave its item page unopenable.
        let references = &references[references.len().saturating_sub(MAX_THREAD_REFERENCES)..];
        if references.is_empty() && (partner_id.is_none() || loans.is_empty()) {
            return Ok(Vec::new());
        }
        Ok(dispatch!(self, |pool| {
            // Each branch is an indexed lookup (migration 0013); the candidates are few, so
            // sorting them is cheap. One OR over the three conditions was a scan of every mail.
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                "SELECT m.id, m.received_at, m.sender, m.subject, m.loan_numbers, \
                 (SELECT MAX(r.id) FROM review_items r WHERE r.inbound_id = m.id) AS review_id, \
                 (SELECT r.state FROM review_items r WHERE r.inbound_id = m.id \
                  ORDER BY r.id DESC LIMIT 1) AS review_state \
                 FROM inbound_messages m WHERE m.id IN (",
            );
            let mut branches = 0;
            if !references.is_empty() {
                qb.push("SELECT id FROM inbound_messages WHERE message_id IN (");
                let mut sep = qb.separated(", ");
                for r in references {
                    sep.push_bind(r.clone());
                }
                qb.push(") UNION SELECT inbound_id FROM outbox WHERE message_id IN (");
                let mut sep = qb.separated(", ");
                for r in references {
                    sep.push_bind(r.clone());
                }
                qb.push(")");
                branches += 1;
            }
            if let (Some(partner), false) = (partner_id, loans.is_empty()) {
                if branches > 0 {
                    qb.push(" UNION ");
                }
                qb.push(
                    "SELECT l.inbound_id FROM inbound_loans l \
                     JOIN inbound_messages p ON p.id = l.inbound_id WHERE p.partner_id = ",
                )
                .push_bind(partner.to_string())
                .push(" AND l.loan_number IN (");
                let mut sep = qb.separated(", ");
                for loan in loans {
                    sep.push_bind(loan.clone());
                }
                qb.push(")");
            }
            qb.push(") AND m.id <> ")
                .push_bind(inbound_id)
                .push(" ORDER BY m.received_at DESC, m.id DESC LIMIT ")
                .push_bind(limit);
            qb.build_query_as().fetch_all(pool).await?
        }))
    }
}

/// How many of a mail's References the thread looks up (the last ones: its nearest ancestors).
pub const MAX_THREAD_REFERENCES: usize = 100;

/// One received mail, as the report sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MailRow {
    pub received_at: i64,
    /// `reply`, `review` or `ignore` (the latest decision).
    pub action: String,
    pub partner_id: Option<String>,
    pub partner_name: Option<String>,
    /// A review item was opened for it.
    pub reviewed: bool,
}

/// One review item, as the report sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ItemRow {
    pub created_at: i64,
    pub reason: String,
    pub first_action_at: Option<i64>,
    pub resolved_at: Option<i64>,
}
