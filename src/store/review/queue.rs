//! The review queue as staff see it: the items (joined with what they are about), the
//! filters and keyset-paged listing, one item, an inbound mail's items, and the counts.

use sqlx::QueryBuilder;

use super::search::Search;
use crate::store::{dispatch, Store, StoreError};

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
}
