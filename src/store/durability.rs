//! Durable before acknowledged: a mail is acknowledged to its source only after the
//! transaction recording it committed, and a commit must mean "on disk". SQLite runs with
//! `synchronous=FULL` on every connection (WAL with `NORMAL` may lose the last commits on a
//! power cut, after the source was told the mail is filed). PostgreSQL's durability is the
//! server's: with `synchronous_commit = off` a commit returns before its WAL is flushed, so
//! trialdesk warns at start.

use super::{dispatch, Dialect, Store, StoreError};

/// What the database promises about a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Durability {
    /// SQLite: `PRAGMA synchronous` of every pooled connection (2 = FULL, 3 = EXTRA).
    Sqlite { synchronous: Vec<i64> },
    /// PostgreSQL: the session's `synchronous_commit`.
    Postgres { synchronous_commit: String },
}

impl Durability {
    /// Why a commit might not be on disk when trialdesk acknowledges a mail, if it might not.
    pub fn warning(&self) -> Option<String> {
        match self {
            Durability::Sqlite { synchronous } => synchronous.iter().any(|s| *s < 2).then(|| {
                format!("SQLite connections with synchronous below FULL: {synchronous:?}")
            }),
            Durability::Postgres { synchronous_commit } => (synchronous_commit == "off").then(|| {
                "PostgreSQL synchronous_commit is off: a mail acknowledged to its source may be \
                 lost if the database server crashes; set it to on (or local/remote_write/\
                 remote_apply)"
                    .to_string()
            }),
        }
    }
}

impl Store {
    /// Reads the commit durability setting. On SQLite, of every connection the pool can
    /// open (they are all held at once, so each is a different one).
    pub async fn durability(&self) -> Result<Durability, StoreError> {
        let dialect = self.dialect();
        Ok(dispatch!(self, |pool| match dialect {
            Dialect::Sqlite => {
                let mut held = Vec::new();
                let mut synchronous = Vec::new();
                for _ in 0..pool.options().get_max_connections() {
                    let mut conn = pool.acquire().await?;
                    let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                        .fetch_one(&mut *conn)
                        .await?;
                    synchronous.push(level);
                    held.push(conn);
                }
                Durability::Sqlite { synchronous }
            }
            Dialect::Postgres => {
                let synchronous_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
                    .fetch_one(pool)
                    .await?;
                Durability::Postgres { synchronous_commit }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings() {
        let cases = [
            (
                Durability::Sqlite {
                    synchronous: vec![2, 2],
                },
                false,
            ),
            (
                Durability::Sqlite {
                    synchronous: vec![3],
                },
                false,
            ),
            (
                Durability::Sqlite {
                    synchronous: vec![2, 1],
                },
                true,
            ),
            (
                Durability::Postgres {
                    synchronous_commit: "on".into(),
                },
                false,
            ),
            (
                Durability::Postgres {
                    synchronous_commit: "local".into(),
                },
                false,
            ),
            (
                Durability::Postgres {
                    synchronous_commit: "off".into(),
                },
                true,
            ),
        ];
        for (d, warn) in cases {
            assert_eq!(d.warning().is_some(), warn, "{d:?}");
        }
    }
}
