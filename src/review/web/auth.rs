//! Sign-in, sessions and CSRF protection.
//!
//! - Session: a 256-bit random token in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` and
//!   the `__Host-` prefix when `web.secure_cookies`); the database keeps only its SHA-256, with
//!   an absolute and an idle expiry. Signing in always starts a new session (no fixation).
//! - CSRF: each session has a random token that every form echoes in a hidden `csrf` field;
//!   [`require_session`] checks it on every non-GET request before any handler runs (the
//!   multipart import form is checked by its handler, which reads the field first). Browsers
//!   that say a request is cross-site (`Sec-Fetch-Site`) are refused outright. The sign-in
//!   form, before any session exists, uses a double-submit cookie.
//! - Rate limit: failed sign-ins are counted per account name and per client address over
//!   `web.login_window`; beyond the limits, sign-in is refused without checking the
//!   password (HTTP 429), so guessing is slow whichever way it is spread.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use sha2::{Digest, Sha256};

use super::render;
use super::{WebError, WebState, MAX_FORM_BYTES};
use crate::review::users::{dummy_hash, normalize_name, verify_password};
use crate::store::{NewAudit, NewSession, Via};

/// The signed-in user, put in the request by [`require_session`].
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    token_hash: String,
}

/// A parsed `application/x-www-form-urlencoded` body, in order, repeated names kept
/// (checkbox lists). Put in the request by [`require_session`] after the CSRF check.
#[derive(Debug, Clone, Default)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Cookie names. `__Host-` (only with `Secure`) pins the cookie to this host and path `/`.
fn session_cookie(state: &WebState) -> &'static str {
    session_cookie_name(state.config.secure_cookies)
}

/// The session cookie's name (`__Host-` prefixed with `web.secure_cookies`).
pub fn session_cookie_name(secure_cookies: bool) -> &'static str {
    if secure_cookies {
        "__Host-td_session"
    } else {
        "td_session"
    }
}

fn login_cookie(state: &WebState) -> &'static str {
    if state.config.secure_cookies {
        "__Host-td_login"
    } else {
        "td_login"
    }
}

fn set_cookie(state: &WebState, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if state.config.secure_cookies {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of cookie `name` in the request (the last one wins, as in browsers' order the
/// most specific comes first — we only ever set one of each).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A fresh 256-bit random token, hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Refuses requests a browser marks as coming from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    matches!(
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()),
        Some("cross-site") | Some("same-site")
    )
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Where to go after signing in: only paths on this site.
fn local_path(next: Option<&str>) -> String {
    match next {
        // Visible ASCII only: anything else could not even be put in a Location header.
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && p.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            p.to_string()
        }
        _ => "/queue".into(),
    }
}

/// Guards every page: no session → the sign-in page; a write without the session's CSRF
/// token → 403. Parses urlencoded bodies once and hands them on as [`FormData`].
pub async fn require_session(
    State(state): State<Arc<WebState>>,
    req: Request,
    next: Next,
) -> Response {
    let now = state.now_ms();
    let token = cookie(req.headers(), session_cookie(&state)).map(token_hash);
    let session = match token {
        Some(hash) => {
            match state
                .store
                .live_session(
                    &hash,
                    now,
                    state.config.session_idle_timeout.as_millis() as i64,
                )
                .await
            {
                Ok(s) => s,
                Err(e) => return WebError::from(e).into_response(),
            }
        }
        None => None,
    };
    let Some(row) = session else {
        if is_safe(req.method()) {
            let target = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            let login = format!(
                "/login?next={}",
                crate::review::mail_view::percent_encode(&target)
            );
            return Redirect::to(&login).into_response();
        }
        return Redirect::to("/login").into_response();
    };
    // Touch at most once a minute: one write per request would serialise SQLite for nothing.
    if now - row.last_seen_at > 60_000 {
        if let Err(e) = state.store.touch_session(&row.token_hash, now).await {
            tracing::warn!(error = %e, "could not record session activity");
        }
    }
    let session = Session {
        user: row.user_name,
        csrf: row.csrf_token,
        token_hash: row.token_hash,
    };
    let (mut parts, body) = req.into_parts();
    let mut req = if is_safe(&parts.method) {
        Request::from_parts(parts, body)
    } else {
        if cross_site(&parts.headers) {
            return WebError::forbidden("error.cross_site").into_response();
        }
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            // The one multipart form (the CSV import) checks its `csrf` field itself, before
            // reading the file; everywhere else multipart is refused, so no handler can be
            // reached without the check.
            if parts.uri.path() != "/import" {
                return WebError::bad("error.unexpected_upload", "").into_response();
            }
            Request::from_parts(parts, body)
        } else {
            let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
                Ok(b) => b,
                Err(_) => return WebError::bad("error.form_too_large", "").into_response(),
            };
            let form = FormData(
                form_urlencoded::parse(&bytes)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            );
            if !csrf_matches(form.get("csrf"), &session.csrf) {
                return WebError::forbidden("error.form_expired").into_response();
            }
            parts.extensions.insert(form);
            Request::from_parts(parts, Body::empty())
        }
    };
    // The user's own language and time zone, over what the browser and config say.
    let settings = match state.store.user_settings(&session.user).await {
        Ok(s) => s,
        Err(e) => return WebError::from(e).into_response(),
    };
    let accept = req
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let viewer = super::i18n::for_user(
        &state,
        accept.as_deref(),
        settings.language.as_deref(),
        settings.time_zone.as_deref(),
    );
    req.extensions_mut().insert(session);
    super::i18n::scoped(viewer, next.run(req)).await
}

pub fn csrf_matches(given: Option<&str>, expected: &str) -> bool {
    match given {
        Some(g) => !expected.is_empty() && constant_time_eq(g.as_bytes(), expected.as_bytes()),
        None => false,
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// The sign-in form. Sets the double-submit cookie its CSRF field must match.
pub async fn login_form(
    State(state): State<Arc<WebState>>,
    Query(q): Query<LoginQuery>,
) -> Response {
    login_page(&state, q.next.as_deref(), None, "", StatusCode::OK)
}

/// Why a sign-in was refused: `expired`, `wrong` or `limited` (the catalog's
/// `login.error.*`), with the minutes to wait for `limited`.
struct LoginError {
    code: &'static str,
    minutes: i64,
}

fn login_page(
    state: &WebState,
    next: Option<&str>,
    error: Option<LoginError>,
    name: &str,
    status: StatusCode,
) -> Response {
    let csrf = new_token();
    let ctx = minijinja::context! {
        csrf => csrf,
        next => local_path(next),
        error => error.as_ref().map(|e| e.code),
        minutes => error.as_ref().map(|e| e.minutes),
        name => name,
    };
    match render::page("login.html", ctx) {
        Ok(mut res) => {
            *res.status_mut() = status;
            res.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(state, login_cookie(state), &csrf, Some(3600)),
            );
            res
        }
        Err(e) => e.into_response(),
    }
}

/// The client address for rate limiting.
fn client_address(state: &WebState, req_headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    if state.config.trust_forwarded_for {
        if let Some(last) = req_headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            return last.to_string();
        }
    }
    peer.map(|p| p.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Password checks (argon2) running at once; a sign-in finding none free is refused with 429.
pub const MAX_CONCURRENT_PASSWORD_CHECKS: usize = 4;
static PASSWORD_CHECKS: tokio::sync::Semaphore =
    tokio::sync::Semaphore::const_new(MAX_CONCURRENT_PASSWORD_CHECKS);

/// The sign-in page with 429 and `Retry-After`.
fn too_many(
    state: &WebState,
    next: Option<&str>,
    typed_name: &str,
    error: LoginError,
    retry_after_s: i64,
) -> Response {
    let mut res = login_page(
        state,
        next,
        Some(error),
        typed_name,
        StatusCode::TOO_MANY_REQUESTS,
    );
    if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// Signs in: CSRF (double-submit), rate limit, password, new session.
pub async fn login(
    State(state): State<Arc<WebState>>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = FormData(
        form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    );
    let next = form.get("next").map(str::to_string);
    let typed_name = form.get("name").unwrap_or("").to_string();
    if cross_site(&headers)
        || !csrf_matches(
            form.get("csrf"),
            cookie(&headers, login_cookie(&state)).unwrap_or(""),
        )
    {
        return login_page(
            &state,
            next.as_deref(),
            Some(LoginError {
                code: "expired",
                minutes: 0,
            }),
            &typed_name,
            StatusCode::FORBIDDEN,
        );
    }
    let peer = connect.map(|Extension(ConnectInfo(addr))| addr);
    let remote = client_address(&state, &headers, peer);
    let name = normalize_name(&typed_name).unwrap_or_else(|_| typed_name.trim().to_lowercase());
    let now = state.now_ms();
    let window = state.config.login_window.as_millis() as i64;
    // Count-check-record in one step: the attempt is recorded before the count, so parallel
    // attempts cannot all pass the check (see `Store::reserve_login_attempt`).
    let (attempt, failed) = match state
        .store
        .reserve_login_attempt(&name, &remote, now, now - window)
        .await
    {
        Ok(r) => r,
        Err(e) => return WebError::from(e).into_response(),
    };
    // The counts include this attempt.
    let limited_user = failed.by_user > i64::from(state.config.login_max_failures);
    let limited_remote = failed.by_remote > i64::from(state.config.login_max_failures_per_address);
    if limited_user || limited_remote {
        if let Err(e) = state.store.finish_login_attempt(attempt, None).await {
            return WebError::from(e).into_response();
        }
        let oldest = if limited_user {
            failed.user_oldest
        } else {
            failed.remote_oldest
        }
        .unwrap_or(now);
        let wait_s = ((oldest + window - now) / 1000).max(1);
        tracing::warn!(user = %name, %remote, "sign-in refused: too many failed attempts");
        return too_many(
            &state,
            next.as_deref(),
            &typed_name,
            LoginError {
                code: "limited",
                minutes: (wait_s + 59) / 60,
            },
            wait_s,
        );
    }
    // argon2 needs ≈ 19 MiB and a core for a while per check: only a few at once; more are
    // refused at once rather than queued (a flood must not exhaust memory).
    let Ok(_hashing) = PASSWORD_CHECKS.try_acquire() else {
        if let Err(e) = state.store.finish_login_attempt(attempt, None).await {
            return WebError::from(e).into_response();
        }
        tracing::warn!(user = %name, %remote, "sign-in refused: too many password checks at once");
        return too_many(
            &state,
            next.as_deref(),
            &typed_name,
            LoginError {
                code: "busy",
                minutes: 1,
            },
            1,
        );
    };
    let password = form.get("password").unwrap_or("").to_string();
    let user = match state.store.user_by_name(&name).await {
        Ok(u) => u.filter(|u| !u.disabled),
        Err(e) => return WebError::from(e).into_response(),
    };
    // argon2 is deliberately slow: keep it off the async threads. Unknown names are checked
    // against a dummy hash so they take as long as known ones.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_string());
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false)
        && user.is_some();
    drop(_hashing);
    if let Err(e) = state.store.finish_login_attempt(attempt, Some(ok)).await {
        return WebError::from(e).into_response();
    }
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(user = %name, %remote, "sign-in failed");
        return login_page(
            &state,
            next.as_deref(),
            Some(LoginError {
                code: "wrong",
                minutes: 0,
            }),
            &typed_name,
            StatusCode::UNAUTHORIZED,
        );
    };
    let token = new_token();
    let lifetime = state.config.session_lifetime.as_millis() as i64;
    let created = state
        .store
        .create_session(&NewSession {
            token_hash: &token_hash(&token),
            user_id: user.id,
            csrf_token: &new_token(),
            now_ms: now,
            expires_at: now + lifetime,
        })
        .await;
    if let Err(e) = created {
        return WebError::from(e).into_response();
    }
    let audit = NewAudit::unlinked(
        user.name.clone(),
        Via::Web,
        "login",
        format!("signed in from {remote}"),
    );
    if let Err(e) = state.store.audit(&audit, now).await {
        tracing::warn!(error = %e, "could not audit a sign-in");
    }
    // Housekeeping, now and then: expired sessions and old attempts.
    if let Err(e) = state
        .store
        .purge_auth(now, now - window.max(86_400_000))
        .await
    {
        tracing::warn!(error = %e, "could not purge expired sessions");
    }
    tracing::info!(user = %user.name, %remote, "signed in");
    let mut res = Redirect::to(&local_path(next.as_deref())).into_response();
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, session_cookie(&state), &token, None),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, login_cookie(&state), "", Some(0)),
    );
    res
}

/// Signs out: the session is deleted server-side, the cookie cleared.
pub async fn logout(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
) -> Response {
    if let Err(e) = state.store.delete_session(&session.token_hash).await {
        return WebError::from(e).into_response();
    }
    let audit = NewAudit::unlinked(session.user.clone(), Via::Web, "logout", "signed out");
    if let Err(e) = state.store.audit(&audit, state.now_ms()).await {
        tracing::warn!(error = %e, "could not audit a sign-out");
    }
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, session_cookie(&state), "", Some(0)),
    );
    res
}

/// Compares without an early exit, so the time taken does not tell how much of a guessed
/// token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A review-page session check, for `/healthz` detail ([`crate::health::StaffSessions`]).
#[derive(Clone)]
pub struct SessionCheck {
    pub store: crate::store::Store,
    pub secure_cookies: bool,
    pub idle_timeout_ms: i64,
    pub clock: crate::clock::SharedClock,
}

impl crate::health::StaffSessions for SessionCheck {
    fn signed_in<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let Some(token) = cookie(headers, session_cookie_name(self.secure_cookies)) else {
                return false;
            };
            let now = self.clock.now().as_millisecond();
            matches!(
                self.store
                    .live_session(&token_hash(token), now, self.idle_timeout_ms)
                    .await,
                Ok(Some(_))
            )
        })
    }
}

#[cfg(test)]
mod tests;
