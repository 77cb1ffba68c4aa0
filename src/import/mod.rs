//! CSV import of partners, shipments and trials.
//!
//! All-or-nothing: every row is parsed and checked first (each problem reported with its line
//! number and column), references are checked against the database, and only a clean file is
//! written, in one transaction, upserting by id. Parsing is pure (`parse_*`), so the CLI and
//! the review web page share it.

pub(crate) mod partners;
pub(crate) mod shipments;
mod table;
pub(crate) mod trials;
pub mod watch;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::classify::loan_numbers::LoanExtractor;
use crate::domain::{Partner, Shipment, Trial};
use crate::store::{Store, StoreError, UpsertExtras, Upserted};

pub use partners::{parse_partners, partner_from_record, partner_row, COLUMNS as PARTNER_COLUMNS};
pub use shipments::{
    parse_shipments, shipment_from_record, shipment_row, COLUMNS as SHIPMENT_COLUMNS,
};
pub use table::{delimiter_name, Row};
pub use trials::{parse_trials, trial_from_record, trial_row, COLUMNS as TRIAL_COLUMNS};

/// What a CSV file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum ImportKind {
    Partners,
    Shipments,
    Trials,
}

impl ImportKind {
    pub fn noun(self) -> &'static str {
        match self {
            ImportKind::Partners => "partners",
            ImportKind::Shipments => "shipments",
            ImportKind::Trials => "trials",
        }
    }
}

/// One problem in one row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    /// 1-based line in the file (the header is line 1).
    pub line: u64,
    /// The column at fault, when there is one.
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "line {}, column {}: {}", self.line, c, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// Errors at the import boundary.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} problem(s) found, nothing was imported:\n{}", .0.len(), format_rows(.0))]
    Rows(Vec<RowError>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// At most this many row errors are listed; the count says how many more there were.
const MAX_LISTED_ERRORS: usize = 200;

fn format_rows(errors: &[RowError]) -> String {
    let mut out: Vec<String> = errors
        .iter()
        .take(MAX_LISTED_ERRORS)
        .map(|e| format!("  {e}"))
        .collect();
    if errors.len() > MAX_LISTED_ERRORS {
        out.push(format!("  … and {} more", errors.len() - MAX_LISTED_ERRORS));
    }
    out.join("\n")
}

/// Called as parsing advances, with (bytes read, total bytes): drives a progress bar.
pub type Progress<'a> = &'a mut (dyn FnMut(u64, u64) + Send);

/// Result of a successful import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub kind: ImportKind,
    pub rows: usize,
    /// The separator the file used (`,`, or `;` / tab when the header said so).
    pub delimiter: u8,
    /// Shipment notices queued by this import (partners that opted in, see `notify`).
    pub notices: usize,
}

/// Rows that passed every check, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    Partners(Vec<Partner>),
    Shipments(Vec<Shipment>),
    Trials(Vec<Trial>),
}

impl Checked {
    pub fn len(&self) -> usize {
        match self {
            Checked::Partners(v) => v.len(),
            Checked::Shipments(v) => v.len(),
            Checked::Trials(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids in file order (partner ids, loan numbers, trial ids).
    pub fn ids(&self) -> Vec<String> {
        match self {
            Checked::Partners(v) => v.iter().map(|p| p.partner_id.clone()).collect(),
            Checked::Shipments(v) => v.iter().map(|s| s.loan_number.to_string()).collect(),
            Checked::Trials(v) => v.iter().map(|t| t.trial_id.clone()).collect(),
        }
    }
}

/// Parses and checks one CSV's bytes (rows, then references against the database): THE
/// validation of partner, shipment and trial data, for the CLI, the web upload, the drop
/// folder and the API (which hands its JSON over as CSV rows).
pub async fn check_bytes(
    store: &Store,
    kind: ImportKind,
    bytes: &[u8],
    loans: &LoanExtractor,
    progress: Progress<'_>,
) -> Result<(Checked, u8), ImportError> {
    // Every problem of the file in one pass: row checks and references together.
    Ok(match kind {
        ImportKind::Partners => {
            let parsed = partners::parse_partners_all(bytes, progress);
            let owners = store.domain_owners().await?;
            let mut errors = parsed.errors;
            if let Err(e) = partners::check_domain_owners(&parsed.rows, &owners) {
                errors.extend(e);
            }
            table::ok_if_empty((), errors).map_err(ImportError::Rows)?;
            (
                Checked::Partners(parsed.rows.into_iter().map(|(_, p)| p).collect()),
                parsed.delimiter,
            )
        }
        ImportKind::Shipments => {
            let known = store.partner_ids().await?;
            let parsed = shipments::parse_shipments_all(bytes, loans, Some(&known), progress);
            table::ok_if_empty((), parsed.errors).map_err(ImportError::Rows)?;
            (
                Checked::Shipments(parsed.rows.into_iter().map(|(_, s)| s).collect()),
                parsed.delimiter,
            )
        }
        ImportKind::Trials => {
            let known = store.partner_ids().await?;
            let parsed = trials::parse_trials_all(bytes, Some(&known), progress);
            table::ok_if_empty((), parsed.errors).map_err(ImportError::Rows)?;
            (
                Checked::Trials(parsed.rows.into_iter().map(|(_, t)| t).collect()),
                parsed.delimiter,
            )
        }
    })
}

/// Stores checked rows with `extras` (audit rows, the drop-folder file) in one transaction,
/// through the store's one upsert per table.
pub async fn store_checked(
    store: &Store,
    checked: &Checked,
    now_ms: i64,
    extras: &UpsertExtras,
) -> Result<Upserted, StoreError> {
    match checked {
        Checked::Partners(v) => store.upsert_partners_with(v, now_ms, extras).await,
        Checked::Shipments(v) => store.upsert_shipments_with(v, now_ms, extras).await,
        Checked::Trials(v) => store.upsert_trials_with(v, now_ms, extras).await,
    }
}

/// Parses, checks and stores one CSV file's bytes.
pub async fn import_bytes(
    store: &Store,
    kind: ImportKind,
    bytes: &[u8],
    loans: &LoanExtractor,
    progress: Progress<'_>,
    now_ms: i64,
) -> Result<ImportSummary, ImportError> {
    import_bytes_with(
        store,
        kind,
        bytes,
        loans,
        progress,
        now_ms,
        &UpsertExtras::default(),
    )
    .await
}

/// [`import_bytes`] writing `extras` in the import's transaction.
pub async fn import_bytes_with(
    store: &Store,
    kind: ImportKind,
    bytes: &[u8],
    loans: &LoanExtractor,
    progress: Progress<'_>,
    now_ms: i64,
    extras: &UpsertExtras,
) -> Result<ImportSummary, ImportError> {
    let (checked, delimiter) = check_bytes(store, kind, bytes, loans, progress).await?;
    let upserted = store_checked(store, &checked, now_ms, extras).await?;
    Ok(ImportSummary {
        kind,
        rows: checked.len(),
        delimiter,
        notices: upserted.notices.len(),
    })
}

/// Reads a file and imports it.
pub async fn import_file(
    store: &Store,
    kind: ImportKind,
    path: &Path,
    loans: &LoanExtractor,
    progress: Progress<'_>,
    now_ms: i64,
) -> Result<ImportSummary, ImportError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| ImportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    import_bytes(store, kind, &bytes, loans, progress, now_ms).await
}
