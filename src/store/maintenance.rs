//! Upkeep: raw-mail retention and online backups.

use std::path::Path;

use super::{dispatch, Dialect, Store, StoreError};

impl Store {
    /// Deletes the raw bytes of at most `limit` mails received before `before_ms` (oldest
    /// first), keeping their decisions, text and metadata. Returns how many were cleared; fewer
    /// than `limit` means nothing older is left.
    pub async fn clear_raw_before(&self, before_ms: i64, limit: u32) -> Result<u64, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query(
                "UPDATE inbound_messages SET raw = NULL WHERE id IN (SELECT id FROM \
                 inbound_messages WHERE raw IS NOT NULL AND received_at < $1 \
                 ORDER BY received_at LIMIT $2)",
            )
            .bind(before_ms)
            .bind(i64::from(limit))
            .execute(pool)
            .await?
            .rows_affected()
        }))
    }

    /// Mails whose raw bytes are still kept, received before `before_ms`.
    pub async fn raw_kept_before(&self, before_ms: i64) -> Result<i64, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM inbound_messages WHERE raw IS NOT NULL AND received_at < $1",
            )
            .bind(before_ms)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Writes a consistent copy of a SQLite database to `target` while the service runs
    /// (`VACUUM INTO`: one read transaction, so writers are not blocked in WAL mode). The
    /// target must not exist. The copy is opened read-only and integrity-checked before this
    /// returns its size. PostgreSQL has its own tools: [`BackupError::Postgres`].
    pub async fn backup_to(&self, target: &Path) -> Result<u64, BackupError> {
        if self.dialect() != Dialect::Sqlite {
            return Err(BackupError::Postgres);
        }
        if target.exists() {
            return Err(BackupError::Exists(target.display().to_string()));
        }
        let name = target
            .to_str()
            .ok_or_else(|| BackupError::Path(target.display().to_string()))?;
        // Created empty with mode 0600 first: VACUUM INTO fills an empty file and keeps its
        // mode. Bound as a parameter, never spliced into the SQL. SQLite itself also refuses a
        // target that exists and is not empty (a file created in between).
        crate::private_file::create(target)
            .map_err(|e| BackupError::Path(format!("{}: {e}", target.display())))?;
        dispatch!(self, |pool| {
            sqlx::query("VACUUM INTO $1")
                .bind(name)
                .execute(pool)
                .await
                .map_err(StoreError::from)?;
        });
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(target)
            .read_only(true);
        let mut conn = sqlx::ConnectOptions::connect(&options)
            .await
            .map_err(StoreError::from)?;
        let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .map_err(StoreError::from)?;
        sqlx::Connection::close(conn)
            .await
            .map_err(StoreError::from)?;
        if verdict != "ok" {
            return Err(BackupError::Damaged(verdict));
        }
        Ok(std::fs::metadata(target).map(|m| m.len()).unwrap_or(0))
    }
}

/// Errors of `trialdesk backup`.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists; choose a new file name (a backup never overwrites)")]
    Exists(String),
    #[error("backup path {0} is not valid UTF-8")]
    Path(String),
    #[error(
        "`trialdesk backup` copies SQLite databases only. For PostgreSQL use its own tools, \
         e.g. `pg_dump --format=custom --file=trialdesk.dump DBNAME` (restore with \
         `pg_restore`), or the server's continuous archiving"
    )]
    Postgres,
    #[error("the backup failed its integrity check: {0}")]
    Damaged(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
