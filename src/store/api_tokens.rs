//! API bearer tokens. Only the token's SHA-256 is stored; the token itself is shown once,
//! when it is made.

use super::{begin_write, dispatch, Store, StoreError};

/// A token as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ApiToken {
    pub name: String,
    pub read_only: bool,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl Store {
    /// Stores a new token under `name`; a conflict when `name` already has one in force.
    pub async fn add_api_token(
        &self,
        name: &str,
        token_sha256: &str,
        read_only: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let taken: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM api_tokens WHERE name = $1 AND revoked_at IS NULL",
            )
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            if taken > 0 {
                return Err(StoreError::Conflict(format!(
                    "token {name:?} exists (revoke it first, or choose another name)"
                )));
            }
            sqlx::query(
                "INSERT INTO api_tokens (name, token_sha256, read_only, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(token_sha256)
            .bind(read_only)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The token whose hash this is (revoked ones too: the caller refuses them).
    pub async fn api_token_by_hash(
        &self,
        token_sha256: &str,
    ) -> Result<Option<ApiToken>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT name, read_only, created_at, revoked_at FROM api_tokens \
                 WHERE token_sha256 = $1",
            )
            .bind(token_sha256)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Every token, revoked ones included, by name then age.
    pub async fn api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT name, read_only, created_at, revoked_at FROM api_tokens \
                 ORDER BY name, created_at, id",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Revokes the token in force under `name`; false when there is none.
    pub async fn revoke_api_token(&self, name: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = dispatch!(self, |pool| {
            sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
            )
            .bind(now_ms)
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n > 0)
    }
}
