//! The substring search of the queue and the history, in each database's own spelling.

use sqlx::QueryBuilder;

use crate::store::{dispatch, Dialect, Store};

/// Matches from which a search counts as common (see [`Search::is_common`]): about where
/// walking ~limit × rows / matches index entries costs less than fetching and sorting all
/// matches, for pages of 50 over ~100,000 rows.
const COMMON_MATCHES: i64 = 2000;

/// `%text%` for LIKE, lower-cased, with the user's own wildcards made literal.
fn like_pattern(search: Option<&str>) -> Option<String> {
    search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("%{}%", escape_like(&s.to_lowercase())))
}

/// A substring search over mails (sender, subject, loan numbers) and outgoing mail
/// (recipients, subject, loan numbers), answered from the search indexes of migration 0003:
/// FTS5 trigram tables on SQLite, pg_trgm GIN indexes on PostgreSQL. Both are
/// case-insensitive substring matches; they differ only in SQL spelling.
#[derive(Debug, Clone)]
pub(super) enum Search {
    /// SQLite, three characters or more: an FTS5 phrase (trigram phrases match substrings).
    Fts(String),
    /// SQLite, shorter: LIKE over the narrow FTS tables.
    SqliteLike(String),
    /// PostgreSQL: LIKE on the narrow lower-cased copies (pg_trgm serves it when installed).
    PgLike(String),
}

impl Search {
    pub(super) fn new(text: Option<&str>, dialect: Dialect) -> Option<Search> {
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

    /// Whether an FTS5 search matches at least [`COMMON_MATCHES`] rows of the two tables.
    /// Such a term is better answered by walking a list's ordered index and testing each
    /// row against the match set, stopping at the page limit, than by collecting every
    /// match and sorting them (the planner's choice, right for rare terms, where the walk
    /// would read the whole list). Counting stops at the bound, so the probe stays cheap.
    /// Always false for the other spellings.
    pub(super) async fn is_common(&self, store: &Store) -> Result<bool, sqlx::Error> {
        let Search::Fts(q) = self else {
            return Ok(false);
        };
        // Only SQLite searches are `Fts`, so only its arm of the dispatch ever runs.
        let n: i64 = dispatch!(store, |pool| {
            sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox_search \
                 WHERE outbox_search MATCH $1 LIMIT $2)) \
                 + (SELECT count(*) FROM (SELECT 1 FROM inbound_search \
                 WHERE inbound_search MATCH $1 LIMIT $2))",
            )
            .bind(q)
            .bind(COMMON_MATCHES)
            .fetch_one(pool)
            .await?
        });
        Ok(n >= COMMON_MATCHES)
    }

    /// `SELECT <ids of table that match>`; `table` is `inbound_search` or `outbox_search`.
    pub(super) fn push_ids<DB: sqlx::Database>(
        &self,
        qb: &mut QueryBuilder<DB>,
        table: &'static str,
    ) where
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
    fn search_patterns_escape_wildcards() {
        assert_eq!(like_pattern(Some("  ")), None);
        assert_eq!(like_pattern(Some("50%_off")).unwrap(), "%50\\%\\_off%");
        assert_eq!(like_pattern(Some("Wang")).unwrap(), "%wang%");
    }
}
