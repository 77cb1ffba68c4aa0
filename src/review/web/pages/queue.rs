//! The queue: counts per reason, views (all / mine / unassigned), filters, search, a date
//! range, order, keyset paging — every filter in the URL so views can be bookmarked — and
//! the bulk actions on selected rows.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::Extension;
use minijinja::context;
use serde::Deserialize;

use super::{actor, base, cursor, given, PageResult};
use crate::classify::ReviewReason;
use crate::review::mail_view::percent_encode;
use crate::review::team::{self, BulkAction};
use crate::review::web::auth::{FormData, Session};
use crate::review::web::{i18n, render, WebError, WebState};
use crate::store::{Assignee, ReviewFilter, ReviewOrder};

#[derive(Debug, Deserialize)]
pub struct QueueQuery {
    reason: Option<String>,
    q: Option<String>,
    order: Option<String>,
    state: Option<String>,
    /// `mine`, `unassigned`, or all.
    view: Option<String>,
    /// Queued on or after this day (YYYY-MM-DD, in the viewer's time zone).
    from: Option<String>,
    /// Queued on or before this day.
    until: Option<String>,
    after: Option<String>,
    before: Option<String>,
    /// What was just done (post/redirect/get flash): `answered`, `resolved`, `bulk`, …
    done: Option<String>,
    item: Option<i64>,
    outbox: Option<i64>,
    /// After a bulk action: how many went through, and the ids that did not.
    ok: Option<i64>,
    failed: Option<String>,
}

/// The filters of a queue URL, checked.
struct Filters {
    reason: Option<String>,
    search: Option<String>,
    oldest: bool,
    item_state: &'static str,
    view: Option<&'static str>,
    from: Option<String>,
    until: Option<String>,
}

impl Filters {
    fn parse(q: &QueueQuery) -> Result<Filters, WebError> {
        let reason = given(&q.reason);
        if let Some(r) = &reason {
            if ReviewReason::from_code(r).is_none() {
                return Err(WebError::bad("error.unknown_reason", r.clone()));
            }
        }
        let item_state = match given(&q.state).as_deref() {
            None | Some("open") => "open",
            Some("resolved") => "resolved",
            Some(other) => return Err(WebError::bad("error.unknown_state", other)),
        };
        let view = match given(&q.view).as_deref() {
            None | Some("all") => None,
            Some("mine") => Some("mine"),
            Some("unassigned") => Some("unassigned"),
            Some(other) => return Err(WebError::bad("error.unknown_view", other)),
        };
        Ok(Filters {
            reason,
            search: given(&q.q),
            oldest: given(&q.order).as_deref() == Some("oldest"),
            item_state,
            view,
            from: given(&q.from),
            until: given(&q.until),
        })
    }

    /// The URL query of these filters, `except` one of them (for the links that change it).
    fn query(&self, except: &str) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("reason", self.reason.clone()),
            ("q", self.search.clone()),
            ("order", self.oldest.then(|| "oldest".to_string())),
            (
                "state",
                (self.item_state == "resolved").then(|| "resolved".to_string()),
            ),
            ("view", self.view.map(str::to_string)),
            ("from", self.from.clone()),
            ("until", self.until.clone()),
        ] {
            if k == except {
                continue;
            }
            if let Some(v) = v {
                parts.push(format!("{k}={}", percent_encode(&v)));
            }
        }
        parts.join("&")
    }

    fn any(&self) -> bool {
        !self.query("").is_empty()
    }
}

/// Start of day `d` (YYYY-MM-DD) in time zone `tz`, in ms.
fn day_start(d: &str, tz: &str) -> Result<i64, WebError> {
    let date = crate::domain::parse_iso_date(d).map_err(|_| WebError::bad("error.bad_date", d))?;
    let tz = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    date.to_zoned(tz)
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| WebError::bad("error.bad_date", d))
}

fn link(keep: &str, extra: String) -> String {
    let parts: Vec<&str> = [keep, extra.as_str()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        "/queue".to_string()
    } else {
        format!("/queue?{}", parts.join("&"))
    }
}

/// The queue page.
pub async fn queue(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Query(q): Query<QueueQuery>,
) -> PageResult {
    let f = Filters::parse(&q)?;
    let tz = i18n::viewer().tz;
    let from = f.from.as_deref().map(|d| day_start(d, &tz)).transpose()?;
    let until = f
        .until
        .as_deref()
        .map(|d| day_start(d, &tz).map(|ms| ms + 86_400_000))
        .transpose()?;
    let page = state
        .store
        .review_page(&ReviewFilter {
            state: f.item_state.into(),
            reason: f.reason.clone(),
            search: f.search.clone(),
            order: if f.oldest {
                ReviewOrder::OldestFirst
            } else {
                ReviewOrder::NewestFirst
            },
            limit: i64::from(state.config.page_size),
            offset: 0,
            after: cursor(&q.after)?,
            before: cursor(&q.before)?,
            assignee: match f.view {
                Some("mine") => Some(Assignee::User(session.user.clone())),
                Some("unassigned") => Some(Assignee::Nobody),
                _ => None,
            },
            from,
            until,
        })
        .await?;
    let keep = f.query("");
    let next_link = page
        .has_next
        .then(|| {
            page.items
                .last()
                .map(|i| link(&keep, format!("after={}", i.cursor())))
        })
        .flatten();
    let prev_link = page
        .has_prev
        .then(|| {
            page.items
                .first()
                .map(|i| link(&keep, format!("before={}", i.cursor())))
                .or_else(|| Some(link(&keep, String::new())))
        })
        .flatten();
    let now = state.now_ms();
    let sla_ms = state.config.sla.as_millis() as i64;
    let overdue = state.store.overdue_count(now - sla_ms).await?;
    let (mine, unassigned) = state.store.assignment_counts(&session.user).await?;
    let failed: Vec<i64> = given(&q.failed)
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    let ctx = context! {
        items => page.items,
        reasons => ReviewReason::ALL.iter().map(|r| r.code()).collect::<Vec<_>>(),
        reason => f.reason,
        q => f.search,
        oldest => f.oldest,
        item_state => f.item_state,
        view => f.view,
        from => f.from,
        until => f.until,
        filtered => f.any(),
        next_link => next_link,
        prev_link => prev_link,
        self_link => link(&keep, String::new()),
        reason_link_base => f.query("reason"),
        view_link_base => f.query("view"),
        sla_before => now - sla_ms,
        sla => humantime::format_duration(state.config.sla).to_string(),
        overdue => overdue,
        mine => mine,
        unassigned => unassigned,
        done => given(&q.done),
        done_item => q.item,
        done_outbox => q.outbox,
        done_ok => q.ok,
        done_failed => failed,
        ..base(&state, &session, "queue").await?
    };
    render::page("queue.html", ctx)
}

/// Bulk actions from the queue (form fields: `op`, the selected `id`s, `note`, `reason`,
/// `back`): `resolve` (with the note), `retry`, `reprocess`, `assign_me`, `unassign` on the
/// selection; `retry_all_dead` and `reprocess_reason` on every open item they name. Each
/// item is done and audited on its own; the queue then says how many went through and which
/// did not.
pub async fn bulk(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Extension(form): Extension<FormData>,
) -> PageResult {
    let who = actor(&session);
    let actions = &state.actions;
    let selected: Vec<i64> = form
        .all("id")
        .iter()
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let op = form.get("op").unwrap_or("");
    let (ids, action) = match op {
        // The same library function as the CLI's retry of every dead letter.
        "retry_all_dead" => {
            let results = team::retry_all_dead_letters(actions, &who).await?;
            return Ok(after_bulk(&form, &results));
        }
        "reprocess_reason" => {
            let reason = form.get("reason").unwrap_or("");
            (
                team::items_of_reason(actions, reason).await?,
                BulkAction::Reprocess,
            )
        }
        _ => {
            let action = match op {
                "resolve" => {
                    let note = form.get("note").unwrap_or("").trim().to_string();
                    if note.is_empty() {
                        return Err(WebError::bad("error.note_empty", ""));
                    }
                    BulkAction::Resolve(note)
                }
                "retry" => BulkAction::Retry,
                "reprocess" => BulkAction::Reprocess,
                "assign_me" => BulkAction::Assign(Some(session.user.clone())),
                "unassign" => BulkAction::Assign(None),
                _ => return Err(WebError::bad("error.unknown_bulk", "")),
            };
            if selected.is_empty() {
                return Err(WebError::bad("error.nothing_selected", ""));
            }
            (selected, action)
        }
    };
    let results = team::bulk(actions, &ids, &action, &who).await;
    Ok(after_bulk(&form, &results))
}

/// Back to the queue view the bulk action came from, saying how it went.
fn after_bulk(form: &FormData, results: &[team::BulkResult]) -> axum::response::Response {
    let ok = results.iter().filter(|r| r.error.is_none()).count();
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.id.to_string())
        .collect();
    // Back to the view the action came from (a local queue URL only).
    let back = form
        .get("back")
        .filter(|b| b.starts_with("/queue") && b.bytes().all(|c| c.is_ascii_graphic()))
        .unwrap_or("/queue");
    let (path, query) = back.split_once('?').unwrap_or((back, ""));
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| {
            !p.is_empty()
                && ![
                    "done=", "ok=", "failed=", "item=", "outbox=", "after=", "before=",
                ]
                .iter()
                .any(|k| p.starts_with(k))
        })
        .collect();
    let mut url = format!("{path}?done=bulk&ok={ok}");
    if !failed.is_empty() {
        url.push_str(&format!("&failed={}", failed.join(",")));
    }
    for k in kept {
        url.push('&');
        url.push_str(k);
    }
    Redirect::to(&url).into_response()
}
