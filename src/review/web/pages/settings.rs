//! A user's own settings: the pages' language and time zone.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::Extension;
use minijinja::context;
use serde::Deserialize;

use super::{base, given, PageResult};
use crate::review::web::auth::{FormData, Session};
use crate::review::web::i18n::Lang;
use crate::review::web::{render, WebError, WebState};
use crate::store::UserSettings;

/// Time zones offered in the list (any IANA name is accepted).
const ZONES: [&str; 8] = [
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Tokyo",
    "Asia/Singapore",
    "Europe/Berlin",
    "Europe/London",
    "UTC",
];

#[derive(Debug, Deserialize)]
pub struct SettingsQuery {
    saved: Option<String>,
}

pub async fn settings(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Query(q): Query<SettingsQuery>,
) -> PageResult {
    let mine = state.store.user_settings(&session.user).await?;
    let ctx = context! {
        setting_language => mine.language,
        setting_time_zone => mine.time_zone,
        default_time_zone => state.config.time_zone,
        zones => ZONES,
        saved => given(&q.saved).is_some(),
        ..base(&state, &session, "settings").await?
    };
    render::page("settings.html", ctx)
}

/// Saves `language` (`zh`, `en`, or empty: as the browser asks) and `time_zone` (an IANA
/// name, or empty: the configured one).
pub async fn save_settings(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Extension(form): Extension<FormData>,
) -> PageResult {
    let language = given(&form.get("language").map(str::to_string));
    if let Some(l) = &language {
        if Lang::parse(l).map(Lang::code) != Some(l.as_str()) {
            return Err(WebError::bad("error.unknown_language", l.clone()));
        }
    }
    let time_zone = given(&form.get("time_zone").map(str::to_string));
    if let Some(tz) = &time_zone {
        if jiff::tz::TimeZone::get(tz).is_err() {
            return Err(WebError::bad("error.unknown_time_zone", tz.clone()));
        }
    }
    state
        .store
        .save_user_settings(
            &session.user,
            &UserSettings {
                language,
                time_zone,
            },
            state.now_ms(),
        )
        .await?;
    Ok(Redirect::to("/settings?saved=1").into_response())
}
