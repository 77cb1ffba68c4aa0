//! The audit log: who did what to which item, when. Actions write their row inside the
//! transaction of their effect (see `review.rs`), so the log never claims what did not happen
//! nor misses what did.

use sqlx::QueryBuilder;

use super::{dispatch, Bind, Store, StoreDb, StoreError};

/// Where an action came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Web,
    Cli,
    /// The HTTP API (`/api/v1`), actor `token:NAME`.
    Api,
    /// The drop folder (`[import] watch_dir`), actor `drop:FILE`.
    Drop,
}

impl Via {
    pub fn code(self) -> &'static str {
        match self {
            Via::Web => "web",
            Via::Cli => "cli",
            Via::Api => "api",
            Via::Drop => "drop",
        }
    }
}

/// One audit entry to write.
#[derive(Debug, Clone)]
pub struct NewAudit {
    pub actor: String,
    pub via: Via,
    /// `answer_template`, `answer_text`, `reprocess`, `resolve`, `retry`, `discard`, `import`,
    /// `login`, `logout`, `user_add`, `user_password`, `user_disable`, `user_enable`.
    pub action: &'static str,
    pub review_id: Option<i64>,
    pub inbound_id: Option<i64>,
    pub outbox_id: Option<i64>,
    pub detail: String,
}

impl NewAudit {
    /// An entry about no particular mail or outbox row: a sign-in, an import, an account or
    /// token change.
    pub fn unlinked(
        actor: impl Into<String>,
        via: Via,
        action: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        NewAudit {
            actor: actor.into(),
            via,
            action,
            review_id: None,
            inbound_id: None,
            outbox_id: None,
            detail: detail.into(),
        }
    }
}

/// A stored audit entry.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub via: String,
    pub action: String,
    pub review_id: Option<i64>,
    pub inbound_id: Option<i64>,
    pub outbox_id: Option<i64>,
    pub detail: String,
}

/// Which audit entries to list (newest first, keyset-paged by id).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub review_id: Option<i64>,
    pub inbound_id: Option<i64>,
    /// Only entries with an id below this (the next page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Inserts `audit` at `at` with `exec` (a transaction's connection, or the pool).
pub(crate) async fn insert_audit<DB: StoreDb>(
    conn: &mut DB::Connection,
    audit: &NewAudit,
    at: i64,
) -> Result<(), sqlx::Error>
where
    i64: Bind<DB>,
    Option<i64>: Bind<DB>,
    String: Bind<DB>,
    &'static str: Bind<DB>,
{
    sqlx::query(
        "INSERT INTO audit_log (at, actor, via, action, review_id, inbound_id, outbox_id, \
         detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(at)
    .bind(&audit.actor)
    .bind(audit.via.code())
    .bind(audit.action)
    .bind(audit.review_id)
    .bind(audit.inbound_id)
    .bind(audit.outbox_id)
    .bind(&audit.detail)
    .execute(DB::exec(conn))
    .await?;
    Ok(())
}

impl Store {
    /// Writes an entry on its own (for actions whose effect is not in the database, or is
    /// written by another call: sign-in, sign-out, account changes, imports).
    pub async fn audit(&self, audit: &NewAudit, at: i64) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            insert_audit::<Db>(&mut *pool.acquire().await?, audit, at).await?;
        });
        Ok(())
    }

    pub async fn audit_entries(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(dispatch!(self, |pool| {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                "SELECT id, at, actor, via, action, review_id, inbound_id, outbox_id, detail \
                 FROM audit_log WHERE 1 = 1",
            );
            if let Some(actor) = &f.actor {
                qb.push(" AND actor = ").push_bind(actor.clone());
            }
            if let Some(action) = &f.action {
                qb.push(" AND action = ").push_bind(action.clone());
            }
            if let Some(id) = f.review_id {
                qb.push(" AND review_id = ").push_bind(id);
            }
            if let Some(id) = f.inbound_id {
                qb.push(" AND inbound_id = ").push_bind(id);
            }
            if let Some(id) = f.before_id {
                qb.push(" AND id < ").push_bind(id);
            }
            qb.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
            qb.build_query_as().fetch_all(pool).await?
        }))
    }

    /// Everything recorded about one review item or its mail, oldest first.
    pub async fn audit_for(
        &self,
        review_id: Option<i64>,
        inbound_id: Option<i64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT id, at, actor, via, action, review_id, inbound_id, outbox_id, detail \
                 FROM audit_log WHERE review_id = $1 OR inbound_id = $2 ORDER BY id",
            )
            .bind(review_id)
            .bind(inbound_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Distinct actors, for the audit page's filter.
    pub async fn audit_actors(&self) -> Result<Vec<String>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_scalar("SELECT DISTINCT actor FROM audit_log ORDER BY actor")
                .fetch_all(pool)
                .await?
        }))
    }
}
