use super::{dispatch, Store, StoreError};

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
    pub received_at: Option<i64>,
    pub loan_numbers: Option<String>,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReviewOrder {
    #[default]
    NewestFirst,
    OldestFirst,
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
    pub offset: i64,
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
        }
    }
}

macro_rules! review_select {
    ($order:literal) => {
        concat!(
            "SELECT r.id, r.reason, r.reasons, r.detail, r.state, r.created_at, r.inbound_id, \
             r.outbox_id, r.reminder_id, COALESCE(m.sender, o.recipients) AS sender, \
             COALESCE(m.subject, o.subject) AS subject, m.partner_id, m.received_at, \
             m.loan_numbers, r.resolved_at, r.resolved_by, r.note \
             FROM review_items r \
             LEFT JOIN inbound_messages m ON m.id = r.inbound_id \
             LEFT JOIN outbox o ON o.id = r.outbox_id \
             WHERE r.state = $1 AND ($2 IS NULL OR r.reason = $2) \
             AND ($3 IS NULL OR LOWER(COALESCE(m.sender, o.recipients, '')) LIKE $3 ESCAPE '\\' \
                  OR LOWER(COALESCE(m.subject, o.subject, '')) LIKE $3 ESCAPE '\\' \
                  OR LOWER(COALESCE(m.loan_numbers, '')) LIKE $3 ESCAPE '\\') \
             ORDER BY r.created_at ",
            $order,
            ", r.id ",
            $order,
            " LIMIT $4 OFFSET $5"
        )
    };
}

impl Store {
    pub async fn review_items(&self, filter: &ReviewFilter) -> Result<Vec<ReviewItem>, StoreError> {
        let pattern = filter
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| format!("%{}%", escape_like(&s.to_lowercase())));
        let sql = match filter.order {
            ReviewOrder::NewestFirst => review_select!("DESC"),
            ReviewOrder::OldestFirst => review_select!("ASC"),
        };
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(sql)
                .bind(&filter.state)
                .bind(&filter.reason)
                .bind(&pattern)
                .bind(filter.limit)
                .bind(filter.offset)
                .fetch_all(pool)
                .await?
        }))
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

    /// Closes an open item with a note. Returns false when it was not open.
    pub async fn resolve_review(
        &self,
        id: i64,
        by: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = dispatch!(self, |pool| {
            sqlx::query(
                "UPDATE review_items SET state = 'resolved', resolved_at = $1, resolved_by = $2, \
                 note = $3 WHERE id = $4 AND state = 'open'",
            )
            .bind(now_ms)
            .bind(by)
            .bind(note)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }
}

/// LIKE wildcards typed by a user are literal (the queries say `ESCAPE '\'`).
fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
