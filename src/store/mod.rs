//! The store: every SQL statement trialdesk runs, for SQLite and PostgreSQL.
//!
//! One schema (`migrations/sqlite`, `migrations/postgres`: same tables, different type
//! spellings) and one set of queries. `$1` placeholders work on both backends, so each query
//! is written once and the `dispatch!` macro instantiates it for the pool at hand; what SQL
//! cannot share (the clock, row locking, write transactions, catalogs) is said once, by
//! [`Dialect`] (`dialect.rs`).
//! Business rules live above this module: it only reads and writes rows.
//!
//! Conventions: times are Unix milliseconds, dates `YYYY-MM-DD` text, lists JSON text.

mod api_tokens;
mod audit;
mod dialect;
pub mod dump;
mod durability;
mod imap_state;
mod imports;
mod inbound;
mod leases;
mod maintenance;
mod notices;
mod outbox;
mod partners;
mod reminders;
mod review;
pub mod rma;
mod shipments;
mod trials;
mod users;
pub mod workspace;

use std::path::Path;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::config::DatabaseConfig;

pub use api_tokens::ApiToken;
pub use audit::{AuditEntry, AuditFilter, NewAudit, Via};
pub(crate) use dialect::{begin_snapshot, begin_write, Bind};
pub use dialect::{Dialect, StoreDb};
pub use durability::Durability;
pub use imap_state::ImapMailboxState;
pub use imports::{ImportedFile, RecordAudit, UpsertExtras, Upserted};
pub use inbound::{
    InboundRecord, NewAttention, NewDecision, NewInbound, NewOutbox, NewRecord, NewReview,
    RecordOutcome, RecordedMail,
};
pub use leases::{LeaseClaim, LeaseRow};
pub use maintenance::BackupError;
pub use notices::{NoticeLoan, ShipmentNotifier};
pub use outbox::{OutboxRow, OutboxState, PendingMail};
pub use reminders::{NewReminder, ReminderCandidate, ReminderOutcome, ReminderRow};
pub use review::{
    Assignee, Closing, Cursor, DecisionRow, HistoryFilter, ReprocessOutcome, ReprocessRecord,
    ReviewFilter, ReviewItem, ReviewOrder, ReviewPage, SentMail,
};
pub use users::{FailedLogins, NewSession, SessionRow, User};
pub use workspace::{ThreadMail, UserSettings};

/// Errors at the database boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A stored value does not parse back (hand-edited row, or a bug).
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    /// Connection-level failures a retry may cure (database restarting, pool exhausted).
    /// Every worker backs off and carries on after these; sqlx pools replace dead connections
    /// by themselves (each is tested before it is handed out).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Connect { .. } => true,
            StoreError::Sql(e) => {
                matches!(
                    e,
                    sqlx::Error::Io(_)
                        | sqlx::Error::Tls(_)
                        | sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::WorkerCrashed
                        | sqlx::Error::Protocol(_)
                ) || e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| transient_sqlstate(c.as_ref()))
            }
            _ => false,
        }
    }
}

/// SQLite busy/locked (5, 6, 517); PostgreSQL connection exceptions (class 08), serialization
/// failure and deadlock (40001, 40P01), too many connections (53300), the server shutting down
/// or crashing or starting up (57P01, 57P02, 57P03), and a read-only server during failover
/// (25006).
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "5" | "6" | "517" | "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03" | "25006"
        )
}

/// Which database the pool talks to.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Handle to the database; cheap to clone (pools are reference-counted).
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// Composes proactive shipment notices inside the shipment upsert (none: no notices).
    notifier: Option<std::sync::Arc<dyn ShipmentNotifier>>,
}

/// Runs `$body` with `$pool` bound to the concrete pool and `Db` to its `sqlx::Database`
/// (a [`StoreDb`], whose `DIALECT` says what differs). The body is compiled once per
/// backend, so the same query text serves both. The only place that matches on the pool.
macro_rules! dispatch {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Sqlite;
                $body
            }
            $crate::store::Backend::Postgres($pool) => {
                #[allow(dead_code)]
                type Db = sqlx::Postgres;
                $body
            }
        }
    };
}
pub(crate) use dispatch;

/// How long the first connection to PostgreSQL may take before the error is reported.
pub const PG_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens and closes one connection, so that a server that refuses or never answers is
/// reported with its cause within [`PG_CONNECT_TIMEOUT`].
async fn probe_postgres(options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    use sqlx::{ConnectOptions, Connection};
    match tokio::time::timeout(PG_CONNECT_TIMEOUT, options.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer from the server within {} s",
                PG_CONNECT_TIMEOUT.as_secs()
            ),
        ))),
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens the pool and applies pending migrations (each instance may do so: sqlx takes a
    /// lock around migrations on both backends).
    pub async fn open(config: &DatabaseConfig, base_dir: &Path) -> Result<Store, StoreError> {
        let store = Self::connect(config, base_dir).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the pool without touching the schema.
    pub async fn connect(config: &DatabaseConfig, base_dir: &Path) -> Result<Store, StoreError> {
        let url = config.url.as_str();
        let connect_err = |source| StoreError::Connect {
            url: config.redacted_url(),
            source,
        };
        let backend = if url.starts_with("sqlite:") {
            let url = resolve_sqlite_url(url, base_dir);
            let options = SqliteConnectOptions::from_str(&url).map_err(connect_err)?;
            // A new database file is created here with mode 0600 (SQLite gives its WAL and SHM
            // files the database file's mode), not by SQLite under the process umask.
            let file = options.get_filename();
            if url.contains("mode=rwc")
                && !file.as_os_str().is_empty()
                && file != std::path::Path::new(":memory:")
                && !url.contains("mode=memory")
                && !file.exists()
            {
                if let Err(e) = crate::private_file::create(file) {
                    if e.kind() != std::io::ErrorKind::AlreadyExists {
                        return Err(connect_err(sqlx::Error::Io(e)));
                    }
                }
            }
            let options = options
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit is on disk before a mail is acknowledged to its source
                // (store/durability.rs).
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(config.acquire_timeout);
            let pool = SqlitePoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(config.acquire_timeout)
                // A ping before each use checks a network connection; a local file's
                // connection cannot go stale, and the ping is a round trip to the
                // connection's worker thread, as costly as the statement itself.
                .test_before_acquire(false)
                .connect_with(options)
                .await
                .map_err(connect_err)?;
            Backend::Sqlite(pool)
        } else {
            // trialdesk never waits on anything but the database inside a transaction. A
            // session idle in one (a paused or hung instance) would hold its row locks and
            // stall the others; the server ends it instead.
            let options = PgConnectOptions::from_str(url)
                .map_err(connect_err)?
                .options([("idle_in_transaction_session_timeout", "30s")]);
            // One direct connection first, bounded by PG_CONNECT_TIMEOUT: the pool would retry
            // for `acquire_timeout` and report only "pool timed out", never the real cause
            // (connection refused, bad password, no such database).
            probe_postgres(&options).await.map_err(connect_err)?;
            let pool = PgPoolOptions::new()
                .max_connections(config.max_connections)
                .acquire_timeout(config.acquire_timeout)
                .connect_with(options)
                .await
                .map_err(connect_err)?;
            Backend::Postgres(pool)
        };
        Ok(Store {
            backend,
            notifier: None,
        })
    }

    /// Opens the pool for looking only (`trialdesk check`): an SQLite file is opened read-only
    /// and never created, its journal mode left as it is. PostgreSQL as [`Store::connect`].
    pub async fn connect_read_only(
        config: &DatabaseConfig,
        base_dir: &Path,
    ) -> Result<Store, StoreError> {
        let url = config.url.as_str();
        if !url.starts_with("sqlite:") {
            return Self::connect(config, base_dir).await;
        }
        let connect_err = |source| StoreError::Connect {
            url: config.redacted_url(),
            source,
        };
        let options = SqliteConnectOptions::from_str(&resolve_sqlite_url(url, base_dir))
            .map_err(connect_err)?
            .read_only(true)
            .create_if_missing(false)
            .busy_timeout(config.acquire_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        Ok(Store {
            backend: Backend::Sqlite(pool),
            notifier: None,
        })
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = self.dialect().migrator();
        dispatch!(self, |pool| migrator.run(pool).await?);
        Ok(())
    }

    /// Migrations known to this build that the database has not applied (for `check`), and
    /// how many it has applied.
    pub async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        let migrator = self.dialect().migrator();
        let applied: Vec<i64> = dispatch!(self, |pool| applied_versions(pool).await?);
        let pending = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect();
        Ok(MigrationStatus {
            applied: applied.len(),
            pending,
        })
    }

    /// This handle (and its clones made afterwards) queues shipment notices through
    /// `notifier` whenever it upserts shipments.
    pub fn with_notifier(mut self, notifier: std::sync::Arc<dyn ShipmentNotifier>) -> Store {
        self.notifier = Some(notifier);
        self
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The SQL this store speaks.
    pub fn dialect(&self) -> Dialect {
        dispatch!(self, |_pool| <Db as StoreDb>::DIALECT)
    }

    pub fn backend_name(&self) -> &'static str {
        self.dialect().name()
    }

    /// A trivial round trip, for `check` and health.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        dispatch!(self, |pool| pool.close().await)
    }
}

/// What `Store::migration_status` found.
#[derive(Debug, Clone)]
pub struct MigrationStatus {
    pub applied: usize,
    /// `"<version> <description>"` of each migration not yet applied.
    pub pending: Vec<String>,
}

/// Versions recorded by sqlx; none when the bookkeeping table does not exist yet.
async fn applied_versions<'c, E>(executor: E) -> Result<Vec<i64>, StoreError>
where
    E: sqlx::Executor<'c>,
    i64: sqlx::Type<E::Database> + for<'r> sqlx::Decode<'r, E::Database>,
    for<'q> <E::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<E::Database>,
    usize: sqlx::ColumnIndex<<E::Database as sqlx::Database>::Row>,
{
    match sqlx::query_scalar::<_, i64>(
        "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(executor)
    .await
    {
        Ok(v) => Ok(v),
        Err(sqlx::Error::Database(e)) if e.message().contains("_sqlx_migrations") => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// `sqlite://rel/path.db?x` → `sqlite://<base_dir>/rel/path.db?x`, so the database sits
/// next to the config rather than wherever the process was started.
/// The file of an `sqlite:` URL (relative to `base_dir`), and whether the URL lets SQLite
/// create it (`mode=rwc`). None for other URLs and in-memory databases.
pub fn sqlite_file(url: &str, base_dir: &Path) -> Option<(std::path::PathBuf, bool)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return None;
    }
    let creates = query.split('&').any(|kv| kv == "mode=rwc");
    Some((base_dir.join(path), creates))
}

fn resolve_sqlite_url(url: &str, base_dir: &Path) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() || path == ":memory:" || path.starts_with('/') {
        return url.to_string();
    }
    let joined = base_dir.join(path);
    match query {
        Some(q) => format!("sqlite://{}?{q}", joined.display()),
        None => format!("sqlite://{}", joined.display()),
    }
}

/// Milliseconds since the Unix epoch, the store's time unit.
pub fn millis(ts: jiff::Timestamp) -> i64 {
    ts.as_millisecond()
}

pub(crate) fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn from_json(table: &'static str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        message: format!("bad JSON list {text:?}: {e}"),
    })
}

pub(crate) fn parse_date(
    table: &'static str,
    text: Option<&str>,
) -> Result<Option<jiff::civil::Date>, StoreError> {
    match text {
        None | Some("") => Ok(None),
        Some(t) => t.parse().map(Some).map_err(|e| StoreError::Corrupt {
            table,
            message: format!("bad date {t:?}: {e}"),
        }),
    }
}

pub(crate) fn parse_field<T: FromStr<Err = String>>(
    table: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    text.parse()
        .map_err(|message| StoreError::Corrupt { table, message })
}

/// Upper bound of rows per multi-row INSERT: well under SQLite's and PostgreSQL's limits on
/// bound parameters (32766 and 65535) for our widest table.
pub(crate) const INSERT_CHUNK: usize = 500;

/// The values of an `IN (…)` list, padded to the next power of two by repeating the last.
/// Each list length is its own SQL text, and each text a prepared statement cached on every
/// connection: padded, a round's lookups use a handful of statements instead of one per length
/// (which cost megabytes of resident memory and a fresh prepare each). Repeats match nothing new.
/// Pushes `values` as the bound contents of an `IN (` already written, padded by [`in_list`],
/// and the closing parenthesis.
pub(crate) fn push_in_list<DB: sqlx::Database>(qb: &mut sqlx::QueryBuilder<DB>, values: &[String])
where
    String: Bind<DB>,
{
    let mut sep = qb.separated(", ");
    for value in in_list(values) {
        sep.push_bind(value.clone());
    }
    qb.push(")");
}

pub(crate) fn in_list<T>(values: &[T]) -> impl Iterator<Item = &T> {
    let padded = values.len().next_power_of_two();
    let last = values.last();
    values
        .iter()
        .chain(std::iter::repeat_n(last, padded - values.len()).flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_lists_are_padded_to_a_power_of_two_with_the_last_value() {
        for (values, want) in [
            (vec![], vec![]),
            (vec![1], vec![1]),
            (vec![1, 2], vec![1, 2]),
            (vec![1, 2, 3], vec![1, 2, 3, 3]),
            (vec![1, 2, 3, 4, 5], vec![1, 2, 3, 4, 5, 5, 5, 5]),
        ] {
            assert_eq!(in_list(&values).copied().collect::<Vec<i32>>(), want);
        }
    }

    #[test]
    fn relative_sqlite_paths_follow_the_config() {
        let base = Path::new("/etc/td");
        assert_eq!(
            resolve_sqlite_url("sqlite://data/t.db?mode=rwc", base),
            "sqlite:///etc/td/data/t.db?mode=rwc"
        );
        assert_eq!(
            resolve_sqlite_url("sqlite:///abs/t.db?mode=rwc", base),
            "sqlite:///abs/t.db?mode=rwc"
        );
        assert_eq!(
            resolve_sqlite_url("sqlite::memory:", base),
            "sqlite::memory:"
        );
    }
}
