//! The JSON API for the systems of record (ERP, logistics), under `/api/v1` on the web
//! listener.
//!
//! - Authentication: `Authorization: Bearer TOKEN` only (tokens from `trialdesk tokens add`;
//!   only their SHA-256 is stored). Cookies are never read here, so there is no CSRF surface.
//!   401 for a missing, unknown or revoked token; 403 for a read-only token on a write.
//! - `PUT /api/v1/{shipments,trials,partners}/{id}`: one record (201 created, 200 updated),
//!   `POST /api/v1/{shipments,trials,partners}`: an array, all or nothing; `GET …/{id}`.
//!   A record is its CSV row as JSON ([`model`]) and is checked by the CSV importer itself;
//!   problems come back as 422 `{"errors":[{"index","field","message"}]}`.
//! - `PUT/GET /api/v1/shipments/{loan_number}/rma-label`: the loan's return label (PDF), kept
//!   as `[rma] labels_dir/LOAN.pdf` ([`labels`]).
//! - Every change writes an audit row (actor `token:NAME`, via `api`) in its transaction.
//! - `GET /api/v1/openapi.json`: the OpenAPI 3.1 document, generated from the same types
//!   ([`openapi`]).

pub mod labels;
pub mod model;
pub mod openapi;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use sha2::{Digest, Sha256};

use crate::classify::loan_numbers::LoanExtractor;
use crate::clock::SharedClock;
use crate::import::{check_bytes, store_checked, Checked, ImportError};
use crate::store::{RecordAudit, Store, StoreError, UpsertExtras, Via};
use model::{
    read_object, to_csv, ApiErrorBody, FieldError, PartnerFields, PartnerRecord, Record,
    ShipmentFields, ShipmentRecord, TrialFields, TrialRecord, ValidationErrors,
};

/// What the API handlers share.
pub struct ApiState {
    pub store: Store,
    pub loans: LoanExtractor,
    pub clock: SharedClock,
    pub max_body_bytes: usize,
    /// `[rma] labels_dir`, resolved (None: labels cannot be stored).
    pub labels_dir: Option<PathBuf>,
    pub max_label_bytes: u64,
    /// Poked after a change so the reminder scheduler re-plans at once.
    pub data_changed: Arc<tokio::sync::Notify>,
    /// Wakes this process's sender when a change queued shipment notices.
    pub queued: Arc<tokio::sync::Notify>,
}

impl ApiState {
    fn now_ms(&self) -> i64 {
        self.clock.now().as_millisecond()
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_name: String,
    pub read_only: bool,
}

impl Caller {
    fn actor(&self) -> String {
        format!("token:{}", self.token_name)
    }
}

/// `/api/v1/…`. Merge it into the web router; it carries its own authentication.
pub fn router(state: Arc<ApiState>) -> Router {
    let guarded = Router::new()
        .route("/api/v1/shipments", axum::routing::post(post_shipments))
        .route(
            "/api/v1/shipments/{loan_number}",
            get(get_shipment).put(put_shipment),
        )
        .route(
            "/api/v1/shipments/{loan_number}/rma-label",
            get(labels::get_rma_label).put(labels::put_rma_label),
        )
        .route("/api/v1/trials", axum::routing::post(post_trials))
        .route("/api/v1/trials/{trial_id}", get(get_trial).put(put_trial))
        .route("/api/v1/partners", axum::routing::post(post_partners))
        .route(
            "/api/v1/partners/{partner_id}",
            get(get_partner).put(put_partner),
        )
        .route_layer(from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::serve))
        .merge(guarded)
        .layer(axum::middleware::from_fn(api_headers))
        .with_state(state)
}

/// Hex SHA-256 of a token: what the database keeps.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (256 bits, URL-safe).
pub fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "td_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

async fn authenticate(
    State(state): State<Arc<ApiState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    let Some(token) = token else {
        return ApiError::Unauthorized("missing bearer token (Authorization: Bearer TOKEN)")
            .into_response();
    };
    let found = match state.store.api_token_by_hash(&token_hash(&token)).await {
        Ok(f) => f,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(found) = found.filter(|t| t.revoked_at.is_none()) else {
        return ApiError::Unauthorized("unknown or revoked token").into_response();
    };
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if write && found.read_only {
        return ApiError::Forbidden(format!(
            "token {:?} is read-only; this request changes data",
            found.name
        ))
        .into_response();
    }
    req.extensions_mut().insert(Caller {
        token_name: found.name,
        read_only: found.read_only,
    });
    next.run(req).await
}

async fn api_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// Errors of the API, as JSON with their status.
#[derive(Debug)]
pub enum ApiError {
    Unauthorized(&'static str),
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    TooLarge(String),
    UnsupportedMediaType(String),
    Invalid(Vec<FieldError>),
    Conflict(String),
    Internal(anyhow::Error),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::Conflict(m),
            e => ApiError::Internal(e.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Invalid(errors) => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(ValidationErrors { errors }),
                )
                    .into_response()
            }
            ApiError::Unauthorized(m) => {
                let mut res = (
                    StatusCode::UNAUTHORIZED,
                    Json(ApiErrorBody { error: m.into() }),
                )
                    .into_response();
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"trialdesk\""),
                );
                return res;
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
            ApiError::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error; the details are in the log".to_string(),
                )
            }
        };
        (status, Json(ApiErrorBody { error: message })).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// Reads the request body, at most `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
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

fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// The stored shipments for these loan numbers, in order.
async fn stored_shipments(
    state: &ApiState,
    ids: &[String],
) -> Result<Vec<ShipmentRecord>, ApiError> {
    let numbers: Vec<_> = ids
        .iter()
        .map(|n| crate::domain::LoanNumber::from_normalized(n.clone()))
        .collect();
    let found = state.store.shipments_by_loan(&numbers).await?;
    Ok(numbers
        .iter()
        .filter_map(|n| found.iter().find(|s| &s.loan_number == n))
        .map(ShipmentRecord::from)
        .collect())
}

async fn stored_trials(state: &ApiState, ids: &[String]) -> Result<Vec<TrialRecord>, ApiError> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(t) = state.store.trial(id).await? {
            out.push(TrialRecord::from(&t));
        }
    }
    Ok(out)
}

async fn stored_partners(state: &ApiState, ids: &[String]) -> Result<Vec<PartnerRecord>, ApiError> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(p) = state.store.partner(id).await? {
            out.push(PartnerRecord::from(&p));
        }
    }
    Ok(out)
}

fn one<T: serde::Serialize>(status: StatusCode, mut v: Vec<T>, what: &str) -> ApiResult {
    match v.pop() {
        Some(r) => Ok((status, Json(r)).into_response()),
        None => Err(ApiError::Internal(anyhow::anyhow!(
            "{what} vanished right after it was stored"
        ))),
    }
}

/// Store a shipment.
#[utoipa::path(
    put,
    path = "/api/v1/shipments/{loan_number}",
    tag = "shipments",
    params(("loan_number" = String, Path, description = "Loan number, as on the shipping notice")),
    request_body = ShipmentFields,
    responses(
        (status = 201, description = "Created", body = ShipmentRecord),
        (status = 200, description = "Updated", body = ShipmentRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid record", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn put_shipment(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(loan_number): Path<String>,
    body: Body,
) -> ApiResult {
    let (checked, created) = put_one::<ShipmentFields>(&state, &caller, loan_number, body).await?;
    let stored = stored_shipments(&state, &checked.ids()).await?;
    one(created_or_ok(created), stored, "the shipment")
}

/// Store several shipments, all or nothing.
#[utoipa::path(
    post,
    path = "/api/v1/shipments",
    tag = "shipments",
    request_body = Vec<ShipmentRecord>,
    responses(
        (status = 200, description = "All stored", body = Vec<ShipmentRecord>),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid records; nothing was stored", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn post_shipments(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> ApiResult {
    let checked = post_many::<ShipmentFields>(&state, &caller, body).await?;
    let stored = stored_shipments(&state, &checked.ids()).await?;
    Ok(Json(stored).into_response())
}

/// Read a shipment.
#[utoipa::path(
    get,
    path = "/api/v1/shipments/{loan_number}",
    tag = "shipments",
    params(("loan_number" = String, Path, description = "Loan number")),
    responses(
        (status = 200, description = "The shipment", body = ShipmentRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 404, description = "No such loan", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_shipment(
    State(state): State<Arc<ApiState>>,
    Path(loan_number): Path<String>,
) -> ApiResult {
    let not_found = || ApiError::NotFound(format!("no shipment {loan_number:?}"));
    let number = state.loans.parse_one(&loan_number).ok_or_else(not_found)?;
    let stored = stored_shipments(&state, &[number.to_string()]).await?;
    stored
        .into_iter()
        .next()
        .map(|s| Json(s).into_response())
        .ok_or_else(not_found)
}

/// Store a trial.
#[utoipa::path(
    put,
    path = "/api/v1/trials/{trial_id}",
    tag = "trials",
    params(("trial_id" = String, Path, description = "Trial id")),
    request_body = TrialFields,
    responses(
        (status = 201, description = "Created", body = TrialRecord),
        (status = 200, description = "Updated", body = TrialRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid record", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn put_trial(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(trial_id): Path<String>,
    body: Body,
) -> ApiResult {
    let (checked, created) = put_one::<TrialFields>(&state, &caller, trial_id, body).await?;
    let stored = stored_trials(&state, &checked.ids()).await?;
    one(created_or_ok(created), stored, "the trial")
}

/// Store several trials, all or nothing.
#[utoipa::path(
    post,
    path = "/api/v1/trials",
    tag = "trials",
    request_body = Vec<TrialRecord>,
    responses(
        (status = 200, description = "All stored", body = Vec<TrialRecord>),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid records; nothing was stored", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn post_trials(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> ApiResult {
    let checked = post_many::<TrialFields>(&state, &caller, body).await?;
    let stored = stored_trials(&state, &checked.ids()).await?;
    Ok(Json(stored).into_response())
}

/// Read a trial.
#[utoipa::path(
    get,
    path = "/api/v1/trials/{trial_id}",
    tag = "trials",
    params(("trial_id" = String, Path, description = "Trial id")),
    responses(
        (status = 200, description = "The trial", body = TrialRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 404, description = "No such trial", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_trial(
    State(state): State<Arc<ApiState>>,
    Path(trial_id): Path<String>,
) -> ApiResult {
    let stored = stored_trials(&state, std::slice::from_ref(&trial_id)).await?;
    stored
        .into_iter()
        .next()
        .map(|s| Json(s).into_response())
        .ok_or_else(|| ApiError::NotFound(format!("no trial {trial_id:?}")))
}

/// Store a partner.
#[utoipa::path(
    put,
    path = "/api/v1/partners/{partner_id}",
    tag = "partners",
    params(("partner_id" = String, Path, description = "Partner id")),
    request_body = PartnerFields,
    responses(
        (status = 201, description = "Created", body = PartnerRecord),
        (status = 200, description = "Updated", body = PartnerRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid record", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn put_partner(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(partner_id): Path<String>,
    body: Body,
) -> ApiResult {
    let (checked, created) = put_one::<PartnerFields>(&state, &caller, partner_id, body).await?;
    let stored = stored_partners(&state, &checked.ids()).await?;
    one(created_or_ok(created), stored, "the partner")
}

/// Store several partners, all or nothing.
#[utoipa::path(
    post,
    path = "/api/v1/partners",
    tag = "partners",
    request_body = Vec<PartnerRecord>,
    responses(
        (status = 200, description = "All stored", body = Vec<PartnerRecord>),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid records; nothing was stored", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn post_partners(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> ApiResult {
    let checked = post_many::<PartnerFields>(&state, &caller, body).await?;
    let stored = stored_partners(&state, &checked.ids()).await?;
    Ok(Json(stored).into_response())
}

/// Read a partner.
#[utoipa::path(
    get,
    path = "/api/v1/partners/{partner_id}",
    tag = "partners",
    params(("partner_id" = String, Path, description = "Partner id")),
    responses(
        (status = 200, description = "The partner", body = PartnerRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 404, description = "No such partner", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_partner(
    State(state): State<Arc<ApiState>>,
    Path(partner_id): Path<String>,
) -> ApiResult {
    let stored = stored_partners(&state, std::slice::from_ref(&partner_id)).await?;
    stored
        .into_iter()
        .next()
        .map(|s| Json(s).into_response())
        .ok_or_else(|| ApiError::NotFound(format!("no partner {partner_id:?}")))
}

/// The `Content-Type` of a request, lower-cased without parameters.
fn content_type(headers: &HeaderMap) -> String {
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
