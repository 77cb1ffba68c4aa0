//! Return (RMA) labels on file: `[rma] labels_dir/LOAN.pdf`, one per loan.
//!
//! The one place that knows where labels live; the RMA answer reads them through
//! [`rma_label`]. (The HTTP API may store labels the same way: a file per loan.)

use std::path::{Path, PathBuf};

use crate::domain::LoanNumber;

/// A label found on file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RmaLabel {
    /// `D20261007.pdf`: the attachment's file name.
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// Why a label is not usable (for staff; the request goes to review).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelProblem {
    /// No labels folder configured, or no file for the loan.
    Missing,
    /// There is a file, but it cannot be sent (not a PDF, too large, unreadable).
    Unusable(String),
}

/// The path of a loan's label, or None when the number could leave the folder (only ASCII
/// letters, digits, `-` and `_` make a file name).
pub fn rma_label_path(labels_dir: &Path, loan: &LoanNumber) -> Option<PathBuf> {
    let n = loan.as_str();
    let safe = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    safe.then(|| labels_dir.join(format!("{n}.pdf")))
}

/// Reads the label of `loan` from `labels_dir` (`None` = no folder configured). A file must
/// start with `%PDF-` and be at most `max_bytes` long to count.
pub fn rma_label(
    labels_dir: Option<&Path>,
    loan: &LoanNumber,
    max_bytes: u64,
) -> Result<RmaLabel, LabelProblem> {
    let dir = labels_dir.ok_or(LabelProblem::Missing)?;
    let path = rma_label_path(dir, loan).ok_or(LabelProblem::Missing)?;
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LabelProblem::Missing),
        Err(e) => {
            return Err(LabelProblem::Unusable(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    if !meta.is_file() {
        return Err(LabelProblem::Unusable(format!(
            "{} is not a file",
            path.display()
        )));
    }
    if meta.len() > max_bytes {
        return Err(LabelProblem::Unusable(format!(
            "{} is {} bytes, more than rma.max_label_bytes ({max_bytes})",
            path.display(),
            meta.len()
        )));
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| LabelProblem::Unusable(format!("cannot read {}: {e}", path.display())))?;
    if !bytes.starts_with(b"%PDF-") {
        return Err(LabelProblem::Unusable(format!(
            "{} is not a PDF file",
            path.display()
        )));
    }
    Ok(RmaLabel {
        file_name: format!("{loan}.pdf"),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ln(s: &str) -> LoanNumber {
        LoanNumber::from_normalized(s.into())
    }

    #[test]
    fn labels_are_found_checked_and_confined_to_the_folder() {
        let dir = std::env::temp_dir().join(format!("td-rma-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("D1000001.pdf"), b"%PDF-1.4\n%%EOF\n").unwrap();
        std::fs::write(dir.join("D1000002.pdf"), b"hello").unwrap();
        std::fs::write(dir.join("D1000003.pdf"), vec![b'%'; 100]).unwrap();
        let label = rma_label(Some(&dir), &ln("D1000001"), 1000).unwrap();
        assert_eq!(label.file_name, "D1000001.pdf");
        assert!(label.bytes.starts_with(b"%PDF-"));
        assert_eq!(
            rma_label(Some(&dir), &ln("D1000009"), 1000),
            Err(LabelProblem::Missing)
        );
        assert_eq!(
            rma_label(None, &ln("D1000001"), 1000),
            Err(LabelProblem::Missing)
        );
        assert!(matches!(
            rma_label(Some(&dir), &ln("D1000002"), 1000),
            Err(LabelProblem::Unusable(m)) if m.contains("not a PDF")
        ));
        assert!(matches!(
            rma_label(Some(&dir), &ln("D1000003"), 10),
            Err(LabelProblem::Unusable(m)) if m.contains("max_label_bytes")
        ));
        assert_eq!(rma_label_path(&dir, &ln("../x")), None);
        assert_eq!(rma_label_path(&dir, &ln("D1/2")), None);
        std::fs::remove_dir_all(&dir).ok();
    }
}
