//! Every table's rows out and in, for `trialdesk export` / `trialdesk import dump` (the file
//! format is [`crate::dump`]'s). Columns are read from the database's own catalog, so a column
//! added by a later migration is carried without touching this file; a new *table* must be
//! listed in [`DUMP_TABLES`] or [`NOT_DUMPED`] (a test checks the catalog against both).
//!
//! Export reads every table in one snapshot (a read transaction), so a running system can be
//! exported. Import writes everything in one transaction into an empty database, keeping ids,
//! and sets PostgreSQL's identity sequences past them.

use futures::TryStreamExt;
use sqlx::{QueryBuilder, Row};

use super::{begin_snapshot, begin_write, dispatch, Bind, Dialect, Store, StoreDb, StoreError};

/// The tables a dump carries, parents before children (foreign keys), with the order their
/// rows are written in.
pub const DUMP_TABLES: &[(&str, &str)] = &[
    ("partners", "partner_id"),
    ("partner_domains", "domain"),
    ("shipments", "loan_number"),
    ("trials", "trial_id"),
    ("inbound_messages", "id"),
    ("decisions", "id"),
    ("outbox", "id"),
    ("shipment_notices", "loan_number, status"),
    ("reminders", "id"),
    ("review_items", "id"),
    ("users", "id"),
    ("user_settings", "user_name"),
    ("login_attempts", "id"),
    ("audit_log", "id"),
    ("api_tokens", "id"),
    ("import_files", "file_name, sha256"),
    ("imap_mailboxes", "account, mailbox"),
    ("imap_done", "account, mailbox, uidvalidity, uid"),
];

/// Tables deliberately left out: the search tables and `inbound_loans` are derived (triggers
/// rebuild them as rows are imported), sign-in sessions are not moved (staff sign in again; a dump should not carry
/// live sessions), and leases belong to running instances.
pub const NOT_DUMPED: &[&str] = &[
    "inbound_search",
    "outbox_search",
    "inbound_loans",
    "sessions",
    "leases",
];

/// How a column's values are written in a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Int,
    Text,
    Bool,
    Bytes,
}

impl ColumnType {
    /// From a declared (SQLite) or catalog (PostgreSQL) type name.
    fn from_sql(declared: &str) -> Option<ColumnType> {
        let t = declared.to_ascii_lowercase();
        if t.contains("int") {
            Some(ColumnType::Int)
        } else if t.contains("bool") {
            Some(ColumnType::Bool)
        } else if t.contains("text") || t.contains("char") {
            Some(ColumnType::Text)
        } else if t.contains("blob") || t.contains("bytea") {
            Some(ColumnType::Bytes)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// What a dump holds, in order: for each table its columns, its rows, its row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpItem {
    Table { name: String, columns: Vec<Column> },
    Row(Vec<Value>),
    EndTable { name: String, rows: u64 },
}

/// Errors moving a whole database.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not a dump this version can read, or does not fit this database.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the target database is not empty (table {table} has {rows} row(s)): import a dump only \
         into a new database (create one, or point database.url at a new SQLite file)"
    )]
    NotEmpty { table: String, rows: i64 },
}

impl From<sqlx::Error> for DumpError {
    fn from(e: sqlx::Error) -> Self {
        DumpError::Store(StoreError::Sql(e))
    }
}

/// Rows buffered before one multi-row INSERT, by count and by bytes (raw mails are large).
const FLUSH_BYTES: usize = 8 << 20;

/// A table or column name from our own lists or the catalog, checked before it is put in SQL.
fn identifier(name: &str) -> Result<&str, DumpError> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(name)
    } else {
        Err(DumpError::Invalid(format!(
            "not a table or column name: {name:?}"
        )))
    }
}

fn order_of(table: &str) -> Option<&'static str> {
    DUMP_TABLES
        .iter()
        .find(|(t, _)| *t == table)
        .map(|(_, order)| *order)
}

impl Value {
    fn size(&self) -> usize {
        match self {
            Value::Text(t) => t.len(),
            Value::Bytes(b) => b.len(),
            _ => 8,
        }
    }
}

/// One multi-row INSERT of the buffered rows (emptied); NULLs are bound with their column's
/// type (PostgreSQL checks).
async fn insert_rows<DB: StoreDb>(
    tx: &mut sqlx::Transaction<'_, DB>,
    table: &str,
    columns: &[Column],
    buffer: &mut Vec<Vec<Value>>,
) -> Result<(), DumpError>
where
    i64: Bind<DB>,
    String: Bind<DB>,
    bool: Bind<DB>,
    Vec<u8>: Bind<DB>,
    Option<i64>: Bind<DB>,
    Option<String>: Bind<DB>,
    Option<bool>: Bind<DB>,
    Option<Vec<u8>>: Bind<DB>,
{
    if buffer.is_empty() {
        return Ok(());
    }
    let mut list = Vec::with_capacity(columns.len());
    for c in columns {
        list.push(identifier(&c.name)?);
    }
    let mut qb: QueryBuilder<DB> = QueryBuilder::new(format!(
        "INSERT INTO {} ({}) ",
        identifier(table)?,
        list.join(", ")
    ));
    qb.push_values(buffer.drain(..), |mut b, row| {
        for (value, column) in row.into_iter().zip(columns) {
            match (value, column.ty) {
                (Value::Int(v), _) => b.push_bind(v),
                (Value::Text(v), _) => b.push_bind(v),
                (Value::Bool(v), _) => b.push_bind(v),
                (Value::Bytes(v), _) => b.push_bind(v),
                (Value::Null, ColumnType::Int) => b.push_bind(None::<i64>),
                (Value::Null, ColumnType::Text) => b.push_bind(None::<String>),
                (Value::Null, ColumnType::Bool) => b.push_bind(None::<bool>),
                (Value::Null, ColumnType::Bytes) => b.push_bind(None::<Vec<u8>>),
            };
        }
    });
    qb.build().execute(DB::exec(tx)).await?;
    Ok(())
}

impl Store {
    /// The highest migration applied to this database (0 before any).
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let v: Option<i64> = dispatch!(self, |pool| {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await?
        });
        Ok(v.unwrap_or(0))
    }

    /// The newest migration this build knows.
    pub fn latest_schema_version(&self) -> i64 {
        self.dialect()
            .migrator()
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0)
    }

    /// The application's tables as the catalog lists them (not sqlx's bookkeeping, not
    /// SQLite's internal or full-text shadow tables).
    pub async fn table_names(&self) -> Result<Vec<String>, StoreError> {
        let sql = self.dialect().table_names_sql();
        let mut names: Vec<String> =
            dispatch!(self, |pool| sqlx::query_scalar(sql).fetch_all(pool).await?);
        names.sort();
        Ok(names)
    }

    /// A table's columns in catalog order, with how their values are dumped.
    pub async fn table_columns(&self, table: &str) -> Result<Vec<Column>, DumpError> {
        let sql = self.dialect().table_columns_sql();
        let raw: Vec<(String, String)> = dispatch!(self, |pool| {
            sqlx::query_as(sql).bind(table).fetch_all(pool).await?
        });
        if raw.is_empty() {
            return Err(DumpError::Invalid(format!(
                "table {table} does not exist in this database"
            )));
        }
        raw.into_iter()
            .map(|(name, declared)| {
                let ty = ColumnType::from_sql(&declared).ok_or_else(|| {
                    DumpError::Invalid(format!(
                        "column {table}.{name} has a type dumps do not carry: {declared}"
                    ))
                })?;
                identifier(&name)?;
                Ok(Column { name, ty })
            })
            .collect()
    }

    /// Reads every table of [`DUMP_TABLES`] in one snapshot and hands each item to `sink`.
    pub async fn export_items<F>(&self, mut sink: F) -> Result<(), DumpError>
    where
        F: FnMut(DumpItem) -> Result<(), DumpError>,
    {
        let mut tables = Vec::new();
        for (table, _) in DUMP_TABLES {
            tables.push((*table, self.table_columns(table).await?));
        }
        dispatch!(self, |pool| {
            let mut tx = begin_snapshot(pool).await?;
            for (table, columns) in &tables {
                let list: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                let order = order_of(table).unwrap_or("1");
                let sql = format!(
                    "SELECT {} FROM {} ORDER BY {order}",
                    list.join(", "),
                    identifier(table)?
                );
                sink(DumpItem::Table {
                    name: table.to_string(),
                    columns: columns.clone(),
                })?;
                let mut rows = 0u64;
                let mut stream = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *tx);
                while let Some(row) = stream.try_next().await? {
                    let mut values = Vec::with_capacity(columns.len());
                    for (i, c) in columns.iter().enumerate() {
                        let v = match c.ty {
                            ColumnType::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
                            ColumnType::Text => {
                                row.try_get::<Option<String>, _>(i)?.map(Value::Text)
                            }
                            ColumnType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
                            ColumnType::Bytes => {
                                row.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Bytes)
                            }
                        };
                        values.push(v.unwrap_or(Value::Null));
                    }
                    sink(DumpItem::Row(values))?;
                    rows += 1;
                }
                drop(stream);
                sink(DumpItem::EndTable {
                    name: table.to_string(),
                    rows,
                })?;
            }
            tx.rollback().await?;
        });
        Ok(())
    }

    /// Writes a dump's items into this (empty) database in ONE transaction: all or nothing.
    /// Refuses a non-empty database, unknown tables, and columns that differ from this
    /// database's. Returns the rows written per table.
    pub async fn import_items<I>(&self, items: I) -> Result<Vec<(String, u64)>, DumpError>
    where
        I: Iterator<Item = Result<DumpItem, DumpError>>,
    {
        // Catalog first (outside the write transaction: SQLite's pool has other connections).
        let mut catalog = Vec::new();
        for (table, _) in DUMP_TABLES {
            catalog.push((*table, self.table_columns(table).await?));
        }
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            for (table, _) in DUMP_TABLES {
                let sql = format!("SELECT COUNT(*) FROM {}", identifier(table)?);
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut *tx)
                    .await?;
                if n > 0 {
                    return Err(DumpError::NotEmpty {
                        table: table.to_string(),
                        rows: n,
                    });
                }
            }
            let mut done: Vec<(String, u64)> = Vec::new();
            // The table being read: name, columns (dump order), rows so far, buffer.
            let mut current: Option<(String, Vec<Column>, u64)> = None;
            let mut buffer: Vec<Vec<Value>> = Vec::new();
            let mut buffered_bytes = 0usize;
            for item in items {
                match item? {
                    DumpItem::Table { name, columns } => {
                        if let Some((open, _, _)) = &current {
                            return Err(DumpError::Invalid(format!(
                                "table {name} starts before table {open} ended"
                            )));
                        }
                        let Some((_, ours)) = catalog.iter().find(|(t, _)| *t == name) else {
                            return Err(DumpError::Invalid(format!(
                                "the dump has a table this database does not take: {name}"
                            )));
                        };
                        if done.iter().any(|(t, _)| *t == name) {
                            return Err(DumpError::Invalid(format!("table {name} appears twice")));
                        }
                        let mut theirs: Vec<&Column> = columns.iter().collect();
                        let mut mine: Vec<&Column> = ours.iter().collect();
                        theirs.sort_by(|a, b| a.name.cmp(&b.name));
                        mine.sort_by(|a, b| a.name.cmp(&b.name));
                        if theirs != mine {
                            return Err(DumpError::Invalid(format!(
                                "table {name}: the dump's columns ({}) differ from this \
                                 database's ({})",
                                describe(&columns),
                                describe(ours)
                            )));
                        }
                        current = Some((name, columns, 0));
                    }
                    DumpItem::Row(values) => {
                        let Some((name, columns, rows)) = current.as_mut() else {
                            return Err(DumpError::Invalid("a row outside any table".into()));
                        };
                        if values.len() != columns.len() {
                            return Err(DumpError::Invalid(format!(
                                "table {name}: a row has {} values for {} columns",
                                values.len(),
                                columns.len()
                            )));
                        }
                        *rows += 1;
                        buffered_bytes += values.iter().map(Value::size).sum::<usize>();
                        buffer.push(values);
                        if buffer.len() >= super::INSERT_CHUNK || buffered_bytes >= FLUSH_BYTES {
                            insert_rows(&mut tx, name, columns, &mut buffer).await?;
                            buffered_bytes = 0;
                        }
                    }
                    DumpItem::EndTable { name, rows } => {
                        let Some((open, columns, read)) = current.take() else {
                            return Err(DumpError::Invalid(format!(
                                "end of table {name} without its start"
                            )));
                        };
                        if open != name || read != rows {
                            return Err(DumpError::Invalid(format!(
                                "table {open}: the dump says {rows} row(s) of {name}, it holds \
                                 {read}: the file is damaged"
                            )));
                        }
                        insert_rows(&mut tx, &open, &columns, &mut buffer).await?;
                        buffered_bytes = 0;
                        done.push((open, read));
                    }
                }
            }
            if let Some((open, _, _)) = current {
                return Err(DumpError::Invalid(format!(
                    "the dump ends inside table {open}: the file is cut short"
                )));
            }
            if self.dialect() == Dialect::Postgres {
                // Ids were kept: move each identity sequence past the highest one.
                for (table, columns) in &catalog {
                    if !columns.iter().any(|c| c.name == "id") {
                        continue;
                    }
                    let t = identifier(table)?;
                    let sql = format!(
                        "SELECT setval(pg_get_serial_sequence('{t}', 'id'), \
                         COALESCE((SELECT MAX(id) FROM {t}), 0) + 1, false)"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            Ok(done)
        })
    }
}

fn describe(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
