//! Staff accounts, their sessions, and sign-in attempts (for rate limiting).
//!
//! Password hashing and token generation live above (`review::web::auth`); the store only
//! keeps the hashes.

use super::{begin_write, dispatch, Bind, Store, StoreError};

/// A staff account.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A live session, joined with its user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub token_hash: String,
    pub user_id: i64,
    pub user_name: String,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// A new session to store.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: i64,
    pub csrf_token: &'a str,
    pub now_ms: i64,
    pub expires_at: i64,
}

impl Store {
    /// Creates an account. `Conflict` when the name is taken (names compare exactly; the CLI
    /// and the sign-in form lower-case them first).
    pub async fn add_user(
        &self,
        name: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let id: Option<i64> = dispatch!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO users (name, password_hash, disabled, created_at, updated_at) \
                 VALUES ($1, $2, FALSE, $3, $3) ON CONFLICT (name) DO NOTHING RETURNING id",
            )
            .bind(name)
            .bind(password_hash)
            .bind(now_ms)
            .fetch_optional(pool)
            .await?
        });
        id.ok_or_else(|| StoreError::Conflict(format!("a user named {name:?} already exists")))
    }

    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, password_hash, disabled, created_at, updated_at FROM users \
                 WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await?
        }))
    }

    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT id, name, password_hash, disabled, created_at, updated_at FROM users \
                 ORDER BY name",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Runs `update` (an `UPDATE users … RETURNING id` setting `value` as `$1` and `now_ms` as
    /// `$2` for the user named `$3`) and, with `sign_out`, ends that user's sessions, in one
    /// transaction. False when there is no such user.
    async fn update_user<V>(
        &self,
        update: &'static str,
        value: V,
        name: &str,
        now_ms: i64,
        sign_out: bool,
    ) -> Result<bool, StoreError>
    where
        V: Bind<sqlx::Sqlite> + Bind<sqlx::Postgres> + Send,
    {
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let id: Option<i64> = sqlx::query_scalar(update)
                .bind(value)
                .bind(now_ms)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
            if let (Some(id), true) = (id, sign_out) {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(id.is_some())
        })
    }

    /// Sets a new password and signs the user out everywhere. False when there is no such user.
    pub async fn set_password(
        &self,
        name: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.update_user(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE name = $3 RETURNING id",
            password_hash,
            name,
            now_ms,
            true,
        )
        .await
    }

    /// Disables (or re-enables) an account; disabling ends its sessions.
    pub async fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.update_user(
            "UPDATE users SET disabled = $1, updated_at = $2 WHERE name = $3 RETURNING id",
            disabled,
            name,
            now_ms,
            disabled,
        )
        .await
    }

    pub async fn create_session(&self, s: &NewSession<'_>) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            sqlx::query(
                "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $4, $5)",
            )
            .bind(s.token_hash)
            .bind(s.user_id)
            .bind(s.csrf_token)
            .bind(s.now_ms)
            .bind(s.expires_at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The session for a token hash, if it has not expired (absolutely, or by idling longer
    /// than `idle_ms`) and its user is enabled.
    pub async fn live_session(
        &self,
        token_hash: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT s.token_hash, s.user_id, u.name AS user_name, s.csrf_token, s.created_at, \
                 s.last_seen_at, s.expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 \
                 AND NOT u.disabled",
            )
            .bind(token_hash)
            .bind(now_ms)
            .bind(now_ms - idle_ms)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Records activity (callers throttle this to keep writes rare).
    pub async fn touch_session(&self, token_hash: &str, now_ms: i64) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                .bind(now_ms)
                .bind(token_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Drops expired sessions and sign-in attempts older than `attempts_before_ms`.
    pub async fn purge_auth(
        &self,
        now_ms: i64,
        attempts_before_ms: i64,
    ) -> Result<u64, StoreError> {
        Ok(dispatch!(self, |pool| {
            let a = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
                .bind(now_ms)
                .execute(pool)
                .await?
                .rows_affected();
            let b = sqlx::query("DELETE FROM login_attempts WHERE at < $1")
                .bind(attempts_before_ms)
                .execute(pool)
                .await?
                .rows_affected();
            a + b
        }))
    }

    pub async fn record_login_attempt(
        &self,
        username: &str,
        remote: &str,
        success: bool,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            sqlx::query(
                "INSERT INTO login_attempts (at, username, remote, success) VALUES ($1, $2, $3, $4)",
            )
            .bind(now_ms)
            .bind(username)
            .bind(remote)
            .bind(success)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Count-check-record in one step for a sign-in about to be checked: records the attempt
    /// (as failed until [`Store::finish_login_attempt`] says otherwise), *then* counts the
    /// failed attempts since `since_ms` by name and by address, this one included. Concurrent
    /// attempts each see every attempt recorded before their count, so with a limit of N at
    /// most N of them see a count ≤ N, on one instance or several sharing the database.
    /// Returns the attempt's id and the counts.
    pub async fn reserve_login_attempt(
        &self,
        username: &str,
        remote: &str,
        now_ms: i64,
        since_ms: i64,
    ) -> Result<(i64, FailedLogins), StoreError> {
        let id: i64 = dispatch!(self, |pool| {
            sqlx::query_scalar(
                "INSERT INTO login_attempts (at, username, remote, success) \
                 VALUES ($1, $2, $3, FALSE) RETURNING id",
            )
            .bind(now_ms)
            .bind(username)
            .bind(remote)
            .fetch_one(pool)
            .await?
        });
        let failed = self.failed_logins_since(username, remote, since_ms).await?;
        Ok((id, failed))
    }

    /// Settles an attempt of [`Store::reserve_login_attempt`]: `Some(success)` records the
    /// outcome, `None` removes it (the attempt was refused before any password was checked).
    pub async fn finish_login_attempt(
        &self,
        id: i64,
        outcome: Option<bool>,
    ) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            match outcome {
                Some(success) => {
                    sqlx::query("UPDATE login_attempts SET success = $1 WHERE id = $2")
                        .bind(success)
                        .bind(id)
                        .execute(pool)
                        .await?
                }
                None => {
                    sqlx::query("DELETE FROM login_attempts WHERE id = $1")
                        .bind(id)
                        .execute(pool)
                        .await?
                }
            };
        });
        Ok(())
    }

    /// Failed attempts since `since_ms` for this account name and from this address, and the
    /// oldest of them (when the window frees up again).
    pub async fn failed_logins_since(
        &self,
        username: &str,
        remote: &str,
        since_ms: i64,
    ) -> Result<FailedLogins, StoreError> {
        Ok(dispatch!(self, |pool| {
            let (by_user, user_oldest): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), MIN(at) FROM login_attempts WHERE username = $1 AND at >= $2 \
                 AND NOT success",
            )
            .bind(username)
            .bind(since_ms)
            .fetch_one(pool)
            .await?;
            let (by_remote, remote_oldest): (i64, Option<i64>) = sqlx::query_as(
                "SELECT COUNT(*), MIN(at) FROM login_attempts WHERE remote = $1 AND at >= $2 \
                 AND NOT success",
            )
            .bind(remote)
            .bind(since_ms)
            .fetch_one(pool)
            .await?;
            FailedLogins {
                by_user,
                user_oldest,
                by_remote,
                remote_oldest,
            }
        }))
    }
}

/// Recent failed sign-ins, by account name and by client address.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailedLogins {
    pub by_user: i64,
    pub user_oldest: Option<i64>,
    pub by_remote: i64,
    pub remote_oldest: Option<i64>,
}
