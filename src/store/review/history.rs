//! What was sent and decided: the stored decisions and the queued mail of one inbound mail,
//! and the searchable, paged history of everything trialdesk sent.

use sqlx::QueryBuilder;

use super::queue::Cursor;
use super::search::Search;
use crate::store::{dispatch, Store, StoreError};

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

impl Store {
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
        let common = match &search {
            Some(s) => s.is_common(self).await?,
            None => false,
        };
        // A unary `+` keeps SQLite from answering the membership tests from the match sets
        // (MULTI-INDEX OR, then a sort of every match): it then walks `outbox_created` (or
        // `outbox_purpose_created`) newest first and stops at the limit.
        let member = if common { " +" } else { " " };
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
                qb.push(format_args!(" AND ({member}o.id IN ("));
                search.push_ids(&mut qb, "outbox_search");
                qb.push(format_args!(") OR{member}o.inbound_id IN ("));
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
