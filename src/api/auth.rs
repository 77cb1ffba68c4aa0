//! Who may call the API: bearer tokens (only their SHA-256 is stored) checked on every
//! guarded route, read-only tokens refused on writes; and the headers every answer carries.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{ApiError, ApiState, Caller};

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

pub(super) async fn authenticate(
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

pub(super) async fn api_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}
