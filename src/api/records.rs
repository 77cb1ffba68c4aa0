//! Records in and out, shared by every resource: the body read (size-limited) and parsed,
//! the records checked by the CSV importer and stored with their audit rows, and the answer
//! built from what was stored. [`Resource`] ties a record type to how its stored rows are
//! read back, so one PUT, POST and GET serve shipments, trials and partners alike.

use std::collections::HashMap;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::model::{self, read_object, to_csv, FieldError, Record};
use super::{ApiError, ApiResult, ApiState, Caller};
use crate::import::{check_bytes, store_checked, Checked, ImportError};
use crate::store::{RecordAudit, UpsertExtras, Via};

/// Reads the request body, at most `limit` bytes.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::TooLarge(format!("request body larger than {limit} bytes"))
        } else {
            ApiError::BadRequest(format!("cannot read the request body: {e}"))
        }
    })
}

async fn read_json(state: &ApiState, body: Body) -> Result<serde_json::Value, ApiError> {
    let bytes = read_body(body, state.max_body_bytes).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))
}

/// Checks `records` ((index, id, fields)) with the CSV importer and stores them with one audit
/// row each, in one transaction. Returns the stored ids that were created.
async fn check_and_store<R: Record>(
    state: &ApiState,
    caller: &Caller,
    records: Vec<(usize, String, R)>,
    array: bool,
    what: &str,
) -> Result<(Checked, std::collections::HashSet<String>), ApiError> {
    let model::CsvRows { bytes: csv, lines } = to_csv(&records).map_err(|mut errs| {
        if !array {
            errs.iter_mut().for_each(|e| e.index = None);
        }
        ApiError::Invalid(errs)
    })?;
    let index_of: HashMap<u64, usize> = lines.into_iter().collect();
    let checked = match check_bytes(&state.store, R::KIND, &csv, &state.loans, &mut |_, _| {}).await
    {
        Ok((c, _)) => c,
        Err(ImportError::Rows(rows)) => {
            let errors = rows
                .into_iter()
                .map(|r| FieldError {
                    index: if array {
                        index_of.get(&r.line).copied()
                    } else {
                        None
                    },
                    field: r.column,
                    message: r.message,
                })
                .collect();
            return Err(ApiError::Invalid(errors));
        }
        Err(ImportError::Store(e)) => return Err(e.into()),
        Err(e @ ImportError::Read { .. }) => return Err(ApiError::Internal(e.into())),
    };
    let extras = UpsertExtras {
        audit_each: Some(RecordAudit {
            actor: caller.actor(),
            via: Via::Api,
            action: "import",
            what: what.to_string(),
        }),
        ..UpsertExtras::default()
    };
    let upserted = store_checked(&state.store, &checked, state.now_ms(), &extras).await?;
    state.data_changed.notify_one();
    if !upserted.notices.is_empty() {
        state.queued.notify_one();
    }
    let created = checked
        .ids()
        .into_iter()
        .filter(|id| !upserted.existing.contains(id))
        .collect();
    Ok((checked, created))
}

/// One record under `id` from a PUT body.
async fn put_one<R: Record>(
    state: &ApiState,
    caller: &Caller,
    id: String,
    body: Body,
) -> Result<(Checked, bool), ApiError> {
    let value = read_json(state, body).await?;
    let (given, fields) = read_object::<R>(value, None).map_err(ApiError::Invalid)?;
    // A loan number is the same loan however it is spelt (case, width); other ids are exact.
    let same = |g: &str| match R::KIND {
        crate::import::ImportKind::Shipments => {
            g.trim() == id.trim()
                || matches!(
                    (state.loans.parse_one(g), state.loans.parse_one(&id)),
                    (Some(a), Some(b)) if a == b
                )
        }
        _ => g.trim() == id.trim(),
    };
    if let Some(given) = given.filter(|g| !same(g)) {
        return Err(ApiError::Invalid(vec![FieldError {
            index: None,
            field: Some(R::ID.into()),
            message: format!("{given:?} does not match the URL's {id:?}"),
        }]));
    }
    let what = format!("PUT /api/v1/{}/{id}", R::KIND.noun());
    let (checked, created) =
        check_and_store(state, caller, vec![(0, id, fields)], false, &what).await?;
    let is_new = !created.is_empty();
    Ok((checked, is_new))
}

/// An array of records from a POST body, each with its id.
async fn post_many<R: Record>(
    state: &ApiState,
    caller: &Caller,
    body: Body,
) -> Result<Checked, ApiError> {
    let value = read_json(state, body).await?;
    let serde_json::Value::Array(items) = value else {
        return Err(ApiError::Invalid(vec![FieldError {
            index: None,
            field: None,
            message: "the body must be a JSON array of records".into(),
        }]));
    };
    let mut records = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match read_object::<R>(item, Some(i)) {
            Ok((id, fields)) => records.push((i, id.unwrap_or_default(), fields)),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let what = format!("POST /api/v1/{}", R::KIND.noun());
    let (checked, _) = check_and_store(state, caller, records, true, &what).await?;
    Ok(checked)
}

pub(super) fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

fn one<T: serde::Serialize>(status: StatusCode, mut v: Vec<T>, what: &str) -> ApiResult {
    match v.pop() {
        Some(r) => Ok((status, Json(r)).into_response()),
        None => Err(ApiError::Internal(anyhow::anyhow!(
            "{what} vanished right after it was stored"
        ))),
    }
}

/// A kind of record the API stores, with how the stored ones are read back for the answer.
pub(super) trait Resource: Record {
    /// What the API answers for a stored record.
    type Stored: serde::Serialize;
    /// `shipment`, `trial`, `partner`: named in errors.
    const NOUN: &'static str;
    /// The stored records with these (normalised) ids, in order; missing ones are left out.
    fn stored(
        state: &ApiState,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<Self::Stored>, ApiError>> + Send;
}

/// `PUT …/{id}`: one record, answered as stored (201 created, 200 updated).
pub(super) async fn put_resource<R: Resource>(
    state: &ApiState,
    caller: &Caller,
    id: String,
    body: Body,
) -> ApiResult {
    let (checked, created) = put_one::<R>(state, caller, id, body).await?;
    let stored = R::stored(state, &checked.ids()).await?;
    one(created_or_ok(created), stored, &format!("the {}", R::NOUN))
}

/// `POST …`: an array of records, all or nothing, answered as stored.
pub(super) async fn post_resource<R: Resource>(
    state: &ApiState,
    caller: &Caller,
    body: Body,
) -> ApiResult {
    let checked = post_many::<R>(state, caller, body).await?;
    let stored = R::stored(state, &checked.ids()).await?;
    Ok(Json(stored).into_response())
}

/// `GET …/{id}`: the stored record under `id` (normalised); a 404 names it as `asked`.
pub(super) async fn get_resource<R: Resource>(
    state: &ApiState,
    id: String,
    asked: &str,
) -> ApiResult {
    R::stored(state, std::slice::from_ref(&id))
        .await?
        .into_iter()
        .next()
        .map(|s| Json(s).into_response())
        .ok_or_else(|| ApiError::NotFound(format!("no {} {asked:?}", R::NOUN)))
}

/// The `Content-Type` of a request, lower-cased without parameters.
pub(super) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}
