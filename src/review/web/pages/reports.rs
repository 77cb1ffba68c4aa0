//! The reports page (`/reports`) and its CSV download (`/reports.csv`): the figures of
//! `review::report` for a range of days in the viewer's time zone (last 7 days by default).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Extension;
use minijinja::context;
use serde::Deserialize;

use super::{base, given, PageResult};
use crate::review::report::{self, human, ReportError};
use crate::review::web::auth::Session;
use crate::review::web::{i18n, render, WebError, WebState};

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
}

/// The days asked for (default: the last 7 days up to today, in the viewer's time zone).
fn days(
    state: &WebState,
    q: &ReportQuery,
    tz: &str,
) -> Result<(jiff::civil::Date, jiff::civil::Date), WebError> {
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    let today = state.clock.now().to_zoned(zone).date();
    let parse = |v: &Option<String>, default: jiff::civil::Date| match given(v) {
        Some(d) => {
            crate::domain::parse_iso_date(&d).map_err(|_| WebError::bad("error.bad_date", d))
        }
        None => Ok(default),
    };
    let to = parse(&q.to, today)?;
    let from = parse(
        &q.from,
        to.checked_sub(jiff::Span::new().days(6)).unwrap_or(to),
    )?;
    Ok((from, to))
}

async fn load(state: &WebState, q: &ReportQuery) -> Result<report::Report, WebError> {
    let tz = i18n::viewer().tz;
    let (from, to) = days(state, q, &tz)?;
    if (to - from).get_days() > 366 {
        return Err(WebError::bad("error.range_too_long", ""));
    }
    report::load(&state.store, from, to, &tz)
        .await
        .map_err(|e| match e {
            ReportError::Input(m) => WebError::bad("error.bad_range", m),
            ReportError::Store(s) => s.into(),
        })
}

pub async fn reports(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Query(q): Query<ReportQuery>,
) -> PageResult {
    let r = load(&state, &q).await?;
    let ctx = context! {
        first_median => human(r.first_action.median_ms),
        first_p90 => human(r.first_action.p90_ms),
        resolution_median => human(r.resolution.median_ms),
        resolution_p90 => human(r.resolution.p90_ms),
        csv_link => format!("/reports.csv?from={}&to={}", r.from, r.to),
        r => r,
        ..base(&state, &session, "reports").await?
    };
    render::page("reports.html", ctx)
}

pub async fn reports_csv(
    State(state): State<Arc<WebState>>,
    Query(q): Query<ReportQuery>,
) -> PageResult {
    let r = load(&state, &q).await?;
    let name = format!("trialdesk-report-{}-{}.csv", r.from, r.to);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        report::to_csv(&r),
    )
        .into_response())
}
