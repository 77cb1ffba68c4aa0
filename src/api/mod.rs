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
//!
//! The parts: `auth` (bearer tokens and the response headers), `records` (reading,
//! checking and storing records, shared by every resource), `handlers` (the documented
//! endpoints per resource), [`labels`], [`model`] and [`openapi`].

mod auth;
mod handlers;
pub mod labels;
pub mod model;
pub mod openapi;
mod records;

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::classify::loan_numbers::LoanExtractor;
use crate::clock::SharedClock;
use crate::store::{Store, StoreError};
use auth::{api_headers, authenticate};
pub use auth::{new_token, token_hash};
use handlers::{
    get_partner, get_shipment, get_trial, post_partners, post_shipments, post_trials, put_partner,
    put_shipment, put_trial,
};
use model::{ApiErrorBody, FieldError, ValidationErrors};

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
