//! Return (RMA) labels over the API: one PDF per loan, kept as `[rma] labels_dir/LOAN.pdf`
//! (the folder staff may also fill by hand, read by the mail side through
//! [`crate::store::rma::rma_label`]). Written to a temporary file and renamed into place, so a
//! reader never sees half a label.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::{Extension, Json};

use super::records::{content_type, created_or_ok, read_body};
use super::{ApiError, ApiResult, ApiState, Caller};
use crate::domain::LoanNumber;
use crate::store::rma::{rma_label, rma_label_path, LabelProblem};
use crate::store::{NewAudit, Via};

/// Stores `pdf` as `loan`'s label, replacing any; true when there was none before.
pub fn store_rma_label(
    labels_dir: &FsPath,
    loan: &LoanNumber,
    pdf: &[u8],
) -> std::io::Result<bool> {
    let path = rma_label_path(labels_dir, loan).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{loan} cannot be a file name"),
        )
    })?;
    std::fs::create_dir_all(labels_dir)?;
    let existed = path.exists();
    let tmp = labels_dir.join(format!(
        ".{}.{:016x}.tmp",
        loan.as_str(),
        rand::random::<u64>()
    ));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(pdf)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| !existed)
}

/// What `PUT …/rma-label` answers.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LabelStored {
    pub loan_number: String,
    pub bytes: usize,
}

/// The loan (which must exist) named in the URL.
async fn known_loan(state: &ApiState, raw: &str) -> Result<LoanNumber, ApiError> {
    let not_found = || ApiError::NotFound(format!("no shipment {raw:?}"));
    let loan = state.loans.parse_one(raw).ok_or_else(not_found)?;
    if state
        .store
        .shipments_by_loan(std::slice::from_ref(&loan))
        .await?
        .is_empty()
    {
        return Err(not_found());
    }
    Ok(loan)
}

fn labels_dir(state: &ApiState) -> Result<&FsPath, ApiError> {
    state.labels_dir.as_deref().ok_or_else(|| {
        ApiError::Conflict("no [rma] labels_dir is configured: labels cannot be stored".into())
    })
}

/// Store a loan's return label (PDF).
#[utoipa::path(
    put,
    path = "/api/v1/shipments/{loan_number}/rma-label",
    tag = "shipments",
    params(("loan_number" = String, Path, description = "Loan number")),
    request_body(content = Vec<u8>, content_type = "application/pdf", description = "The label, a PDF file"),
    responses(
        (status = 201, description = "Stored (there was none)", body = LabelStored),
        (status = 200, description = "Replaced", body = LabelStored),
        (status = 401, description = "Missing, unknown or revoked token", body = super::ApiErrorBody),
        (status = 403, description = "Read-only token", body = super::ApiErrorBody),
        (status = 404, description = "No such loan", body = super::ApiErrorBody),
        (status = 413, description = "Larger than [rma] max_label_bytes", body = super::ApiErrorBody),
        (status = 415, description = "Not application/pdf", body = super::ApiErrorBody),
        (status = 422, description = "Not a PDF file", body = super::ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn put_rma_label(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(loan_number): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    if content_type(&headers) != "application/pdf" {
        return Err(ApiError::UnsupportedMediaType(
            "send the label as Content-Type: application/pdf".into(),
        ));
    }
    let loan = known_loan(&state, &loan_number).await?;
    let dir = labels_dir(&state)?.to_path_buf();
    let limit = usize::try_from(state.max_label_bytes).unwrap_or(usize::MAX);
    let pdf = read_body(body, limit).await?;
    if !pdf.starts_with(b"%PDF-") {
        return Err(ApiError::Invalid(vec![super::FieldError {
            index: None,
            field: None,
            message: "not a PDF file (it must start with %PDF-)".into(),
        }]));
    }
    let created = {
        let (d, loan, pdf) = (dir.clone(), loan.clone(), pdf.clone());
        tokio::task::spawn_blocking(move || store_rma_label(&d, &loan, &pdf))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
            .map_err(|e| {
                ApiError::Internal(anyhow::anyhow!(
                    "cannot store the label in {}: {e}",
                    dir.display()
                ))
            })?
    };
    let audit = NewAudit::unlinked(
        caller.actor(),
        Via::Api,
        "rma_label",
        format!("stored the return label of {loan} ({} bytes)", pdf.len()),
    );
    state.store.audit(&audit, state.now_ms()).await?;
    Ok((
        created_or_ok(created),
        Json(LabelStored {
            loan_number: loan.to_string(),
            bytes: pdf.len(),
        }),
    )
        .into_response())
}

/// Read a loan's return label.
#[utoipa::path(
    get,
    path = "/api/v1/shipments/{loan_number}/rma-label",
    tag = "shipments",
    params(("loan_number" = String, Path, description = "Loan number")),
    responses(
        (status = 200, description = "The label", content_type = "application/pdf", body = Vec<u8>),
        (status = 401, description = "Missing, unknown or revoked token", body = super::ApiErrorBody),
        (status = 404, description = "No such loan, or no label", body = super::ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_rma_label(
    State(state): State<Arc<ApiState>>,
    Path(loan_number): Path<String>,
) -> ApiResult {
    let loan = known_loan(&state, &loan_number).await?;
    let dir = state.labels_dir.clone();
    let max = state.max_label_bytes;
    let found = {
        let loan = loan.clone();
        tokio::task::spawn_blocking(move || rma_label(dir.as_deref(), &loan, max))
            .await
            .map_err(|e| ApiError::Internal(e.into()))?
    };
    let pdf = match found {
        Ok(label) => label.bytes,
        Err(LabelProblem::Missing) => {
            return Err(ApiError::NotFound(format!("no return label for {loan}")))
        }
        Err(LabelProblem::Unusable(m)) => {
            return Err(ApiError::Conflict(format!(
                "the return label of {loan} on file cannot be used: {m}"
            )))
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{loan}.pdf\""),
            ),
        ],
        pdf,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ln(s: &str) -> LoanNumber {
        LoanNumber::from_normalized(s.into())
    }

    #[test]
    fn labels_are_stored_replaced_read_and_confined_to_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("labels");
        assert_eq!(
            rma_label(Some(&d), &ln("D1000001"), 100),
            Err(LabelProblem::Missing)
        );
        assert!(store_rma_label(&d, &ln("D1000001"), b"%PDF-1 a").unwrap());
        assert!(!store_rma_label(&d, &ln("D1000001"), b"%PDF-1 b").unwrap());
        assert_eq!(
            rma_label(Some(&d), &ln("D1000001"), 100).unwrap().bytes,
            b"%PDF-1 b"
        );
        assert!(store_rma_label(&d, &ln("a/b"), b"%PDF-").is_err());
        let names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["D1000001.pdf"], "no temporary file is left");
    }
}
