//! "SQLite or PostgreSQL", decided in one place.
//!
//! [`Dialect`] names the database a store runs on and holds every piece of SQL or
//! transaction handling the two do not share. [`StoreDb`] ties it to sqlx's database types, so
//! code made generic over `DB: StoreDb` (inside `dispatch!`, or helper functions with
//! `sqlx::Executor` bounds) reads `DB::DIALECT` instead of matching on the pool.

use sqlx::migrate::Migrator;
use sqlx::{Pool, Transaction};

/// The SQL spoken by the database behind a [`super::Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A fragment of SQL that differs between the dialects, named in statement templates as
/// `{name}` and filled in by [`Dialect::sql`].
const FRAGMENTS: &[(&str, [&str; 2])] = &[
    // Unix milliseconds on the database server's clock, fixed for the statement.
    (
        "{now_ms}",
        [
            "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)",
        ],
    ),
    // Row locking for claims by several instances: PostgreSQL skips rows another instance
    // is claiming right now; SQLite has a single writer, which is the lock.
    ("{skip_locked}", ["", " FOR UPDATE SKIP LOCKED"]),
    // Many rows as one JSON array (NULL over no rows on PostgreSQL: wrap in COALESCE).
    ("{json_agg}", ["json_group_array", "json_agg"]),
    ("{json_array}", ["json_array", "json_build_array"]),
];

impl Dialect {
    /// `"sqlite"` or `"postgres"`, as reports and dumps name the backend.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// `template` with each `{fragment}` of [`FRAGMENTS`] spelt for this dialect. Only
    /// constant fragments are spliced in: values are always bound as parameters.
    pub(crate) fn sql(self, template: &'static str) -> sqlx::AssertSqlSafe<String> {
        let index = match self {
            Dialect::Sqlite => 0,
            Dialect::Postgres => 1,
        };
        let mut sql = template.to_string();
        for (name, spellings) in FRAGMENTS {
            if sql.contains(name) {
                sql = sql.replace(name, spellings[index]);
            }
        }
        sqlx::AssertSqlSafe(sql)
    }

    /// The migrations of this dialect's schema.
    pub(crate) fn migrator(self) -> &'static Migrator {
        match self {
            Dialect::Sqlite => &super::SQLITE_MIGRATIONS,
            Dialect::Postgres => &super::POSTGRES_MIGRATIONS,
        }
    }

    /// The application's tables, from the catalog (not sqlx's bookkeeping, not SQLite's
    /// internal or full-text shadow tables).
    pub(crate) fn table_names_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' \
                 AND name NOT LIKE 'inbound_search_%' AND name NOT LIKE 'outbox_search_%'"
            }
            Dialect::Postgres => {
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
                 AND table_name <> '_sqlx_migrations'"
            }
        }
    }

    /// `(name, declared type)` of table `$1`'s columns in catalog order.
    pub(crate) fn table_columns_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
            Dialect::Postgres => {
                "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) \
                 FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND table_name = $1 ORDER BY ordinal_position"
            }
        }
    }
}

/// One of sqlx's database types the store runs on, with its [`Dialect`]. Sealed: SQLite
/// and PostgreSQL only. The bound on `Arguments` is implied wherever `DB: StoreDb` is, so
/// generic helpers need only name the value types they bind.
pub trait StoreDb: sqlx::Database<Arguments: sqlx::IntoArguments<Self>> + sealed::Sealed {
    const DIALECT: Dialect;

    /// A connection (of a transaction: `&mut *tx`) as an executor. A method rather than a
    /// `for<'c> &'c mut Connection: Executor<'c>` bound, which async functions cannot carry
    /// into `Send` futures.
    type Exec<'c>: sqlx::Executor<'c, Database = Self>
    where
        Self: 'c;
    fn exec(conn: &mut Self::Connection) -> Self::Exec<'_>;

    /// Rows an INSERT, UPDATE or DELETE touched.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

impl StoreDb for sqlx::Sqlite {
    const DIALECT: Dialect = Dialect::Sqlite;
    type Exec<'c> = &'c mut sqlx::SqliteConnection;
    fn exec(conn: &mut sqlx::SqliteConnection) -> Self::Exec<'_> {
        conn
    }
    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl StoreDb for sqlx::Postgres {
    const DIALECT: Dialect = Dialect::Postgres;
    type Exec<'c> = &'c mut sqlx::PgConnection;
    fn exec(conn: &mut sqlx::PgConnection) -> Self::Exec<'_> {
        conn
    }
    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for sqlx::Sqlite {}
    impl Sealed for sqlx::Postgres {}
}

/// A value that can be bound as a parameter on `DB` (shorthand for generic helpers).
pub(crate) trait Bind<DB: sqlx::Database>:
    for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>
{
}
impl<DB: sqlx::Database, T: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>> Bind<DB> for T {}

/// Starts a write transaction. On SQLite it must be `BEGIN IMMEDIATE`: a deferred
/// transaction that reads and then writes can fail with SQLITE_BUSY when another connection
/// writes in between, and busy_timeout does not help in that case. PostgreSQL: a plain
/// `BEGIN` (rows are locked as they are written, or with `FOR UPDATE`).
pub(crate) async fn begin_write<DB: StoreDb>(
    pool: &Pool<DB>,
) -> Result<Transaction<'static, DB>, sqlx::Error> {
    match DB::DIALECT {
        Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Dialect::Postgres => pool.begin().await,
    }
}

/// Starts a read-only transaction that sees one snapshot of every table (for dumps).
pub(crate) async fn begin_snapshot<DB: StoreDb>(
    pool: &Pool<DB>,
) -> Result<Transaction<'static, DB>, sqlx::Error> {
    match DB::DIALECT {
        // A deferred transaction in WAL mode reads one snapshot from its first read.
        Dialect::Sqlite => pool.begin().await,
        Dialect::Postgres => {
            pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_spelt_per_dialect() {
        let t = "SELECT {now_ms} FROM t LIMIT $1{skip_locked}";
        assert_eq!(
            Dialect::Sqlite.sql(t).0,
            "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER) FROM t LIMIT $1"
        );
        assert_eq!(
            Dialect::Postgres.sql(t).0,
            "SELECT CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT) FROM t \
             LIMIT $1 FOR UPDATE SKIP LOCKED"
        );
    }
}
