//! What an upsert of partners, shipments or trials writes beside the rows, in the same
//! transaction: audit entries (API changes) and the drop-folder file it came from. One write
//! path per table (`upsert_*_with`) serves the CLI, the web upload, the API and the drop
//! folder.

use std::collections::HashSet;

use super::{dispatch, NewAudit, Store, StoreError};

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

/// The ids among `$ids` (an iterator of `String`) already in `$table`.`$col`, read with the
/// transaction `$tx` (inside `dispatch!`, where `Db` is the backend).
macro_rules! existing_ids {
    ($tx:expr, $table:literal, $col:literal, $ids:expr) => {{
        let ids: Vec<String> = $ids.collect();
        let mut found = std::collections::HashSet::new();
        for chunk in ids.chunks($crate::store::INSERT_CHUNK) {
            let mut qb: sqlx::QueryBuilder<Db> = sqlx::QueryBuilder::new(concat!(
                "SELECT ", $col, " FROM ", $table, " WHERE ", $col, " IN ("
            ));
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.clone());
            }
            qb.push(")");
            let rows: Vec<String> = qb.build_query_scalar().fetch_all(&mut *$tx).await?;
            found.extend(rows);
        }
        found
    }};
}
pub(crate) use existing_ids;

/// Writes `$extras` with the transaction `$tx` at `$now`; `$ids` (an iterator of `String`)
/// are the records written, `$noun` what one is, `$existing` the ids that existed before.
macro_rules! write_extras {
    ($tx:expr, $extras:expr, $rows:expr, $now:expr, $noun:literal, $ids:expr, $existing:expr) => {{
        for audit in &$extras.audit {
            $crate::store::audit::insert_audit!(&mut *$tx, audit, $now);
        }
        if let Some(each) = &$extras.audit_each {
            for id in $ids {
                let verb = if $existing.contains(&id) {
                    "updated"
                } else {
                    "created"
                };
                let audit = $crate::store::NewAudit {
                    actor: each.actor.clone(),
                    via: each.via,
                    action: each.action,
                    review_id: None,
                    inbound_id: None,
                    outbox_id: None,
                    detail: format!("{}: {verb} {} {id}", each.what, $noun),
                };
                $crate::store::audit::insert_audit!(&mut *$tx, audit, $now);
            }
        }
        if let Some(f) = &$extras.imported_file {
            sqlx::query(
                "INSERT INTO import_files (file_name, sha256, kind, rows, imported_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&f.file_name)
            .bind(&f.sha256)
            .bind(&f.kind)
            .bind($rows as i64)
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}
pub(crate) use write_extras;

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
