//! CSV import of partners, shipments and trials, with the CLI's validation.

use std::sync::Arc;

use axum::extract::{Multipart, State};
use axum::Extension;
use minijinja::context;

use super::{base, PageResult};
use crate::import::{ImportError, ImportKind};
use crate::review::web::auth::{csrf_matches, Session};
use crate::review::web::{render, WebError, WebState};
use crate::store::{NewAudit, Via};

pub async fn import_form(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
) -> PageResult {
    let ctx = context! {
        ..base(&state, &session, "import").await?
    };
    render::page("import.html", ctx)
}

/// Imports a CSV (multipart: `csrf`, `kind`, `file`) with the CLI's validation: all or
/// nothing, every bad row listed with its line.
pub async fn import(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    mut multipart: Multipart,
) -> PageResult {
    let mut csrf = None;
    let mut kind = None;
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = multipart.next_field().await.map_err(bad_upload)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "csrf" => csrf = Some(field.text().await.map_err(bad_upload)?),
            "kind" => kind = Some(field.text().await.map_err(bad_upload)?),
            "file" => {
                let filename = field.file_name().unwrap_or("upload.csv").to_string();
                // Check the token before reading a possibly large file.
                if !csrf_matches(csrf.as_deref(), &session.csrf) {
                    break;
                }
                let bytes = field.bytes().await.map_err(bad_upload)?;
                file = Some((filename, bytes.to_vec()));
            }
            _ => {}
        }
    }
    if !csrf_matches(csrf.as_deref(), &session.csrf) {
        return Err(WebError::forbidden("error.form_expired"));
    }
    let kind = match kind.as_deref() {
        Some("partners") => ImportKind::Partners,
        Some("shipments") => ImportKind::Shipments,
        Some("trials") => ImportKind::Trials,
        _ => return Err(WebError::bad("error.choose_kind", "")),
    };
    let (filename, bytes) = file
        .filter(|(_, b)| !b.is_empty())
        .ok_or_else(|| WebError::bad("error.choose_file", ""))?;
    let now = state.now_ms();
    let result = crate::import::import_bytes(
        &state.store,
        kind,
        &bytes,
        &state.rules.loans,
        &mut |_, _| {},
        now,
    )
    .await;
    let (imported, errors, more_errors) = match result {
        Ok(summary) => {
            state.data_changed.notify_one();
            state
                .store
                .audit(
                    &NewAudit::unlinked(
                        session.user.clone(),
                        Via::Web,
                        "import",
                        format!("imported {} {} from {filename}", summary.rows, kind.noun()),
                    ),
                    now,
                )
                .await?;
            (Some(summary.rows), Vec::new(), 0)
        }
        Err(ImportError::Rows(rows)) => {
            let total = rows.len();
            let shown: Vec<String> = rows.iter().take(200).map(|r| r.to_string()).collect();
            (None, shown, total.saturating_sub(200))
        }
        Err(ImportError::Read { source, .. }) => {
            return Err(WebError::bad("error.cannot_read", source.to_string()))
        }
        Err(ImportError::Store(e)) => return Err(e.into()),
    };
    let ctx = context! {
        kind => kind.noun(),
        filename => filename,
        imported => imported,
        errors => errors,
        more_errors => more_errors,
        ..base(&state, &session, "import").await?
    };
    let mut res = render::page("import.html", ctx)?;
    if imported.is_none() {
        *res.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(res)
}

fn bad_upload(e: axum::extract::multipart::MultipartError) -> WebError {
    WebError::bad("error.bad_upload", e.to_string())
}
