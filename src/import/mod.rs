//! CSV import of partners, shipments and trials.
//!
//! All-or-nothing: every row is parsed and checked first (each problem reported with its line
//! number and column), references are checked against the database, and only a clean file is
//! written, in one transaction, upserting by id. Parsing is pure (`parse_*`), so the CLI and
//! the review web page share it.

mod partners;
mod shipments;
mod table;
mod trials;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::classify::loan_numbers::LoanExtractor;
use crate::store::{Store, StoreError};

pub use partners::parse_partners;
pub use shipments::parse_shipments;
pub use trials::parse_trials;

/// What a CSV file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
    /// Shipment notices queued by this import (partners that opted in, see `notify`).
    pub notices: usize,
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
    let mut notices = 0;
    let rows = match kind {
        ImportKind::Partners => {
            let partners = parse_partners(bytes, progress).map_err(ImportError::Rows)?;
            let owners = store.domain_owners().await?;
            partners::check_domain_owners(&partners, &owners).map_err(ImportError::Rows)?;
            let partners: Vec<_> = partners.into_iter().map(|(_, p)| p).collect();
            store.upsert_partners(&partners, now_ms).await?;
            partners.len()
        }
        ImportKind::Shipments => {
            let shipments = parse_shipments(bytes, loans, progress).map_err(ImportError::Rows)?;
            let known = store.partner_ids().await?;
            table::check_partner_refs(
                shipments.iter().map(|(line, s)| (*line, &s.partner_id)),
                &known,
            )
            .map_err(ImportError::Rows)?;
            let shipments: Vec<_> = shipments.into_iter().map(|(_, s)| s).collect();
            notices = store.upsert_shipments(&shipments, now_ms).await?.len();
            shipments.len()
        }
        ImportKind::Trials => {
            let trials = parse_trials(bytes, progress).map_err(ImportError::Rows)?;
            let known = store.partner_ids().await?;
            table::check_partner_refs(
                trials.iter().map(|(line, t)| (*line, &t.partner_id)),
                &known,
            )
            .map_err(ImportError::Rows)?;
            let trials: Vec<_> = trials.into_iter().map(|(_, t)| t).collect();
            store.upsert_trials(&trials, now_ms).await?;
            trials.len()
        }
    };
    Ok(ImportSummary {
        kind,
        rows,
        notices,
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
