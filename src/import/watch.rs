//! The drop folder (`[import] watch_dir`): batch feeds from the systems of record.
//!
//! Files named `partners*.csv`, `shipments*.csv` and `trials*.csv` that appear in the folder
//! (written elsewhere and renamed in, so they are whole when they appear) are imported by
//! `run`, one at a time (partners first), each all-or-nothing through the same checks and the
//! same upsert as `trialdesk import`. Then the file moves to `done/`, or to `failed/` with
//! `NAME.errors.txt` beside it (one line and column per problem).
//!
//! Crash safety: the import's transaction also records the file (name + SHA-256) in
//! `import_files`. A crash before the commit leaves nothing written and the file in place, so
//! it is imported again; a crash between the commit and the move leaves a file whose record
//! exists, so it is moved to `done/` without importing it twice. A file with the same name and
//! bytes as one imported earlier is therefore moved to `done/` without importing it again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{check_bytes, store_checked, ImportError, ImportKind};
use crate::classify::loan_numbers::LoanExtractor;
use crate::clock::SharedClock;
use crate::store::{ImportedFile, NewAudit, Store, StoreError, UpsertExtras, Via};
use crate::worker::{run_loop, Backoff, Outcome};

/// Test hook: `TRIALDESK_FAULT_DROP_AFTER_COMMIT=1` aborts the process right after an import
/// committed and before its file is moved (the crash the `import_files` record guards against).
const FAULT_AFTER_COMMIT: &str = "TRIALDESK_FAULT_DROP_AFTER_COMMIT";

/// What the kind of a drop-folder file is, from its name (`None`: not ours, left alone).
pub fn kind_of(file_name: &str) -> Option<ImportKind> {
    if file_name.starts_with('.') {
        return None;
    }
    let lower = file_name.to_ascii_lowercase();
    if !lower.ends_with(".csv") {
        return None;
    }
    [
        ImportKind::Partners,
        ImportKind::Shipments,
        ImportKind::Trials,
    ]
    .into_iter()
    .find(|k| file_name.starts_with(k.noun()))
}

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropOutcome {
    Imported {
        file: String,
        rows: usize,
    },
    /// Imported before (a crash hit between the commit and the move): only moved.
    AlreadyImported {
        file: String,
    },
    Failed {
        file: String,
        errors: usize,
    },
}

/// The drop-folder worker.
pub struct DropFolder {
    store: Store,
    loans: LoanExtractor,
    dir: PathBuf,
    poll: Duration,
    clock: SharedClock,
    /// Poked after an import so the reminder scheduler re-plans at once.
    data_changed: Arc<Notify>,
}

#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("drop folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DropFolder {
    pub fn new(
        store: Store,
        loans: LoanExtractor,
        dir: PathBuf,
        poll: Duration,
        clock: SharedClock,
        data_changed: Arc<Notify>,
    ) -> DropFolder {
        DropFolder {
            store,
            loans,
            dir,
            poll,
            clock,
            data_changed,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Polls the folder until `cancel`; a file in hand is finished first.
    pub async fn run(self, cancel: CancellationToken) {
        tracing::info!(dir = %self.dir.display(), "watching the drop folder");
        let poll = self.poll;
        run_loop(
            "drop-folder",
            &cancel,
            Backoff::new(poll, Duration::from_secs(60)),
            || async {
                let done = self.step().await?;
                Ok::<_, DropError>(if done.is_some() {
                    Outcome::Done
                } else {
                    Outcome::Idle
                })
            },
            || tokio::time::sleep(poll),
        )
        .await;
    }

    /// Imports every waiting file (for `run --once` and tests).
    pub async fn drain(&self) -> Result<Vec<DropOutcome>, DropError> {
        let mut out = Vec::new();
        while let Some(o) = self.step().await? {
            out.push(o);
        }
        Ok(out)
    }

    /// The next waiting file: partners first (shipments and trials refer to them), then
    /// shipments, then trials; by name within a kind.
    fn next_file(&self) -> Result<Option<(String, ImportKind)>, DropError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| DropError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut files: Vec<(usize, String, ImportKind)> = Vec::new();
        for e in entries.flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let Some(kind) = kind_of(&name) else { continue };
            if !e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                continue;
            }
            let rank = match kind {
                ImportKind::Partners => 0,
                ImportKind::Shipments => 1,
                ImportKind::Trials => 2,
            };
            files.push((rank, name, kind));
        }
        files.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        Ok(files.into_iter().next().map(|(_, n, k)| (n, k)))
    }

    /// Handles one waiting file; `None` when there is none.
    pub async fn step(&self) -> Result<Option<DropOutcome>, DropError> {
        let Some((name, kind)) = self.next_file()? else {
            return Ok(None);
        };
        let path = self.dir.join(&name);
        let io = |source| DropError::Io {
            path: path.clone(),
            source,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            // Moved away meanwhile (another instance sharing the folder).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if self.store.imported_file(&name, &sha256).await? {
            tracing::info!(file = %name, "already imported; moving it to done/");
            self.move_to("done", &name)?;
            return Ok(Some(DropOutcome::AlreadyImported { file: name }));
        }
        tracing::info!(file = %name, kind = kind.noun(), bytes = bytes.len(), "importing from the drop folder");
        let checked = match check_bytes(&self.store, kind, &bytes, &self.loans, &mut |_, _| {})
            .await
        {
            Ok((c, _)) => c,
            Err(ImportError::Rows(errors)) => {
                let text: String = errors.iter().map(|e| format!("{e}\n")).collect();
                let moved = self.move_to("failed", &name)?;
                let report = errors_path(&moved);
                std::fs::write(&report, text).map_err(|source| DropError::Io {
                    path: report.clone(),
                    source,
                })?;
                tracing::warn!(file = %name, problems = errors.len(), report = %report.display(), "drop-folder file refused; nothing was imported");
                return Ok(Some(DropOutcome::Failed {
                    file: name,
                    errors: errors.len(),
                }));
            }
            Err(ImportError::Store(e)) => return Err(e.into()),
            Err(ImportError::Read { source, .. }) => return Err(io(source)),
        };
        let now = self.clock.now().as_millisecond();
        let extras = UpsertExtras {
            audit: vec![NewAudit::unlinked(
                format!("drop:{name}"),
                Via::Drop,
                "import",
                format!(
                    "imported {} {} from {name} (drop folder)",
                    checked.len(),
                    kind.noun()
                ),
            )],
            imported_file: Some(ImportedFile {
                file_name: name.clone(),
                sha256,
                kind: kind.noun().to_string(),
            }),
            audit_each: None,
        };
        store_checked(&self.store, &checked, now, &extras).await?;
        if std::env::var_os(FAULT_AFTER_COMMIT).is_some_and(|v| v == "1") {
            tracing::error!(file = %name, "{FAULT_AFTER_COMMIT}: aborting after the commit");
            std::process::abort();
        }
        self.data_changed.notify_one();
        self.move_to("done", &name)?;
        tracing::info!(file = %name, rows = checked.len(), "imported from the drop folder");
        Ok(Some(DropOutcome::Imported {
            file: name,
            rows: checked.len(),
        }))
    }

    /// Moves `name` into `sub/` (a name already there gets a numbered suffix); returns the
    /// new path.
    fn move_to(&self, sub: &str, name: &str) -> Result<PathBuf, DropError> {
        let target_dir = self.dir.join(sub);
        std::fs::create_dir_all(&target_dir).map_err(|source| DropError::Io {
            path: target_dir.clone(),
            source,
        })?;
        let mut target = target_dir.join(name);
        let mut n = 1;
        while target.exists() || errors_path(&target).exists() {
            target = target_dir.join(format!("{name}.{n}"));
            n += 1;
        }
        let from = self.dir.join(name);
        std::fs::rename(&from, &target).map_err(|source| DropError::Io { path: from, source })?;
        Ok(target)
    }
}

/// `failed/NAME.errors.txt` beside `failed/NAME`.
fn errors_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_os_string();
    s.push(".errors.txt");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_named_csv_files_are_taken() {
        let cases = [
            ("partners.csv", Some(ImportKind::Partners)),
            ("shipments-2026-12-04.csv", Some(ImportKind::Shipments)),
            ("trials_erp.CSV", Some(ImportKind::Trials)),
            ("shipments.csv.tmp", None),
            (".shipments.csv", None),
            ("Shipments.csv", None),
            ("loans.csv", None),
            ("shipments.csv.errors.txt", None),
        ];
        for (name, want) in cases {
            assert_eq!(kind_of(name), want, "{name}");
        }
    }

    #[test]
    fn the_report_sits_beside_the_file() {
        assert_eq!(
            errors_path(Path::new("/w/failed/shipments.csv")),
            PathBuf::from("/w/failed/shipments.csv.errors.txt")
        );
    }
}
