//! What an upsert of partners, shipments or trials writes beside the rows, in the same
//! transaction: audit entries (API changes) and the drop-folder file it came from. One write
//! path per table (`upsert_*_with`) serves the CLI, the web upload, the API and the drop
//! folder.

use std::collections::HashSet;

use super::audit::insert_audit;
use super::{dispatch, Bind, NewAudit, Store, StoreDb, StoreError};

/// A drop-folder file recorded as imported (by name and content hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedFile {
    pub file_name: String,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// `partners`, `shipments` or `trials`.
    pub kind: String,
}

/// Written in the upsert's transaction, after the rows.
#[derive(Debug, Clone, Default)]
pub struct UpsertExtras {
    pub audit: Vec<NewAudit>,
    /// One audit row per record, saying whether it was created or updated.
    pub audit_each: Option<RecordAudit>,
    pub imported_file: Option<ImportedFile>,
}

/// The audit row written for each record of an upsert: `detail` is
/// `"{what}: created shipment D20261001"` (or `updated`).
#[derive(Debug, Clone)]
pub struct RecordAudit {
    pub actor: String,
    pub via: super::Via,
    pub action: &'static str,
    /// How the change came, e.g. `PUT /api/v1/shipments/D20261001`.
    pub what: String,
}

/// What an upsert found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upserted {
    /// Ids (loan numbers, partner or trial ids) that existed before: the others were created.
    pub existing: HashSet<String>,
    /// Outbox ids of the shipment notices queued (shipments only).
    pub notices: Vec<i64>,
}

/// The ids among `ids` already in `table`.`col` (constant names), read with `tx`.
pub(crate) async fn existing_ids<DB: StoreDb>(
    tx: &mut sqlx::Transaction<'_, DB>,
    table: &'static str,
    col: &'static str,
    ids: impl Iterator<Item = String>,
) -> Result<HashSet<String>, sqlx::Error>
where
    String: Bind<DB> + for<'r> sqlx::Decode<'r, DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let ids: Vec<String> = ids.collect();
    let mut found = HashSet::new();
    for chunk in ids.chunks(super::INSERT_CHUNK) {
        let mut qb: sqlx::QueryBuilder<DB> =
            sqlx::QueryBuilder::new(format!("SELECT {col} FROM {table} WHERE {col} IN ("));
        let mut sep = qb.separated(", ");
        for id in chunk {
            sep.push_bind(id.clone());
        }
        qb.push(")");
        let rows: Vec<String> = qb.build_query_scalar().fetch_all(DB::exec(tx)).await?;
        found.extend(rows);
    }
    Ok(found)
}

/// Writes `extras` with `tx` at `now`; `ids` are the `rows` records written, `noun` what one
/// is, `existing` the ids that existed before.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_extras<DB: StoreDb>(
    tx: &mut sqlx::Transaction<'_, DB>,
    extras: &UpsertExtras,
    rows: usize,
    now: i64,
    noun: &'static str,
    ids: impl Iterator<Item = String>,
    existing: &HashSet<String>,
) -> Result<(), sqlx::Error>
where
    i64: Bind<DB>,
    Option<i64>: Bind<DB>,
    String: Bind<DB>,
    &'static str: Bind<DB>,
{
    for audit in &extras.audit {
        insert_audit::<DB>(tx, audit, now).await?;
    }
    if let Some(each) = &extras.audit_each {
        for id in ids {
            let verb = if existing.contains(&id) {
                "updated"
            } else {
                "created"
            };
            let audit = NewAudit::unlinked(
                each.actor.clone(),
                each.via,
                each.action,
                format!("{}: {verb} {noun} {id}", each.what),
            );
            insert_audit::<DB>(tx, &audit, now).await?;
        }
    }
    if let Some(f) = &extras.imported_file {
        sqlx::query(
            "INSERT INTO import_files (file_name, sha256, kind, rows, imported_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&f.file_name)
        .bind(&f.sha256)
        .bind(&f.kind)
        .bind(rows as i64)
        .bind(now)
        .execute(DB::exec(tx))
        .await?;
    }
    Ok(())
}

impl Store {
    /// Whether this drop-folder file (same name, same bytes) was imported already.
    pub async fn imported_file(&self, file_name: &str, sha256: &str) -> Result<bool, StoreError> {
        let n: i64 = dispatch!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM import_files WHERE file_name = $1 AND sha256 = $2",
            )
            .bind(file_name)
            .bind(sha256)
            .fetch_one(pool)
            .await?
        });
        Ok(n > 0)
    }
}
