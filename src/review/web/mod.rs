//! The review pages: a small server-rendered web app (axum + minijinja). The pages work
//! without JavaScript; one small script of our own (`/static/app.js`, served from here) adds
//! keyboard keys and a self-refreshing queue.
//!
//! - [`auth`]: sign-in (argon2, rate-limited), sessions (random token in an `HttpOnly`,
//!   `SameSite=Strict` cookie; only its hash stored), the CSRF token every form carries, and
//!   the middleware that guards every page but `/login` and the stylesheet.
//! - [`pages`]: one module per page (queue, item, message, history, audit log, import,
//!   settings) with the actions behind their forms.
//! - [`render`]: the page templates (`templates/web/*.html`, built into the binary,
//!   auto-escaped).
//! - [`i18n`]: the message catalogs (zh, en) and which language and time zone a request is
//!   shown in.
//!
//! Every response carries a strict Content-Security-Policy: no inline script or style at
//! all, scripts only from this site's own `/static/app.js`, so nothing — not even a
//! sanitiser bug in a received HTML mail — can run script in these pages.
//!
//! [`router`] returns a plain `Router`: other parts add their routes with `.merge(…)`
//! (e.g. `/healthz`, `/metrics`); routes merged that way are outside the sign-in guard.

pub mod auth;
pub mod banners;
pub mod i18n;
pub mod pages;
pub mod render;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;

use super::actions::{ActionError, Actions};
use crate::clock::SharedClock;
use crate::config::WebConfig;
use crate::store::{Store, StoreError};

/// What every handler needs. Shared behind an `Arc`.
pub struct WebState {
    pub store: Store,
    pub actions: Arc<Actions>,
    pub config: WebConfig,
    pub clock: SharedClock,
    /// The compiled rules; CSV imports check loan numbers with `rules.loans`.
    pub rules: Arc<crate::classify::Rules>,
    /// Poked after an import so the reminder scheduler re-plans at once.
    pub data_changed: Arc<tokio::sync::Notify>,
    /// Carrier tracking links (lower-cased carrier → URL pattern), for the item page.
    pub carriers: std::collections::BTreeMap<String, String>,
    /// The workers of this process (`trialdesk run`), for the banners; None when the pages
    /// run alone (`trialdesk web`).
    pub health: Option<crate::health::HealthState>,
    /// Where the canned replies are (`<templates.dir>/snippets`).
    pub snippets_dir: std::path::PathBuf,
}

impl WebState {
    /// The same pages, told about the workers running beside them.
    pub fn with_health(mut self, health: Option<crate::health::HealthState>) -> WebState {
        self.health = health;
        self
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now().as_millisecond()
    }

    /// `[web] default_language` (validated at load: zh or en).
    pub fn default_lang(&self) -> i18n::Lang {
        i18n::Lang::parse(&self.config.default_language).unwrap_or(i18n::Lang::Zh)
    }
}

/// Largest CSV accepted by the import page.
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;
/// Largest ordinary form (a free-text answer is at most 50,000 characters).
pub const MAX_FORM_BYTES: usize = 1024 * 1024;

/// The review app. Merge other routes into it with `.merge(…)`.
pub fn router(state: Arc<WebState>) -> Router {
    let guarded = Router::new()
        .route("/", get(|| async { Redirect::to("/queue") }))
        .route("/queue", get(pages::queue))
        .route("/items/{id}", get(pages::item))
        .route("/items/{id}/answer", post(pages::answer))
        .route("/items/{id}/reprocess", post(pages::reprocess))
        .route("/items/{id}/resolve", post(pages::resolve))
        .route("/items/{id}/retry", post(pages::retry))
        .route("/items/{id}/discard", post(pages::discard))
        .route("/items/{id}/assign", post(pages::assign))
        .route("/items/{id}/note", post(pages::note))
        .route("/queue/bulk", post(pages::bulk))
        .route("/reports", get(pages::reports))
        .route("/reports.csv", get(pages::reports_csv))
        .route("/settings", get(pages::settings).post(pages::save_settings))
        .route("/messages/{id}", get(pages::message))
        .route("/messages/{id}/raw", get(pages::raw_mail))
        .route("/messages/{id}/attachments/{index}", get(pages::attachment))
        .route("/messages/{id}/inline/{cid}", get(pages::inline_image))
        .route("/outbox/{id}", get(pages::outgoing))
        .route("/history", get(pages::history))
        .route("/audit", get(pages::audit))
        .route(
            "/import",
            get(pages::import_form)
                .post(pages::import)
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/logout", post(auth::logout))
        .route_layer(from_fn_with_state(state.clone(), auth::require_session));
    let open = Router::new()
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/static/style.css", get(stylesheet))
        .route("/static/app.js", get(script))
        .route("/static/favicon.svg", get(favicon))
        .route("/favicon.ico", get(favicon));
    guarded
        .merge(open)
        .layer(from_fn_with_state(state.clone(), i18n::locale))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Serves `router` on `listener` until `cancel` fires, then finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "review pages listening on http://{addr}/");
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { cancel.cancelled().await })
    .await
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        include_str!("favicon.svg"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("app.js"),
    )
        .into_response()
}

/// The policy every page gets unless a handler sets its own (the message page allows remote
/// images when staff ask for them). Script only from our own file, no inline script or
/// style; `connect-src 'self'` for the queue's refresh.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";
/// [`CSP`] for a mail page whose reader chose to load its remote images.
pub const CSP_REMOTE_IMAGES: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' https: http:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        // Pages show mail content: keep it out of shared and disk caches.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Errors of a page or action, shown as a page with the matching status.
#[derive(Debug)]
pub enum WebError {
    NotFound,
    /// A text from elsewhere (an action's refusal), shown as it is under a translated title.
    BadRequest(String),
    Forbidden(String),
    Conflict(String),
    Internal(anyhow::Error),
    /// A catalog text: the status, the key, the value for its `{value}`.
    Text(StatusCode, &'static str, String),
}

impl WebError {
    /// 400 with catalog text `key` (`{value}` filled with `value`).
    pub fn bad(key: &'static str, value: impl Into<String>) -> WebError {
        WebError::Text(StatusCode::BAD_REQUEST, key, value.into())
    }

    /// 403 with catalog text `key`.
    pub fn forbidden(key: &'static str) -> WebError {
        WebError::Text(StatusCode::FORBIDDEN, key, String::new())
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        WebError::Internal(e.into())
    }
}

impl From<ActionError> for WebError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NotFound(_) => WebError::NotFound,
            ActionError::Conflict(m) => WebError::Text(StatusCode::CONFLICT, "error.conflict", m),
            ActionError::NotApplicable(m) | ActionError::Invalid(m) => {
                WebError::bad("error.action_failed", m)
            }
            ActionError::Store(s) => s.into(),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            WebError::NotFound => (StatusCode::NOT_FOUND, render::text("error.not_found", &[])),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            WebError::Conflict(m) => (StatusCode::CONFLICT, m),
            WebError::Text(status, key, value) => (status, render::text(key, &[("value", value)])),
            WebError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "review page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    render::text("error.internal", &[]),
                )
            }
        };
        render::error_page(status, &message)
    }
}
