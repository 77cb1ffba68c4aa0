//! The audit log: who did what, when.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Extension;
use minijinja::context;
use serde::Deserialize;

use super::{base, given, PageResult};
use crate::review::mail_view::percent_encode;
use crate::review::web::auth::Session;
use crate::review::web::{render, WebState};
use crate::store::AuditFilter;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    before: Option<i64>,
}

pub(crate) const AUDIT_ACTIONS: [&str; 16] = [
    "answer_template",
    "answer_text",
    "reprocess",
    "resolve",
    "retry",
    "discard",
    "import",
    "login",
    "logout",
    "user_add",
    "user_password",
    "user_disable",
    "user_enable",
    "assign",
    "unassign",
    "note",
];

/// Who did what, when.
pub async fn audit(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let actor = given(&q.actor);
    let action = given(&q.action);
    let limit = i64::from(state.config.page_size);
    let mut entries = state
        .store
        .audit_entries(&AuditFilter {
            actor: actor.clone(),
            action: action.clone(),
            review_id: None,
            inbound_id: None,
            before_id: q.before,
            limit: limit + 1,
        })
        .await?;
    let more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    let mut keep = Vec::new();
    for (k, v) in [("actor", &actor), ("action", &action)] {
        if let Some(v) = v {
            keep.push(format!("{k}={}", percent_encode(v)));
        }
    }
    let next_link = if more {
        entries.last().map(|e| {
            let mut parts = keep.clone();
            parts.push(format!("before={}", e.id));
            format!("/audit?{}", parts.join("&"))
        })
    } else {
        None
    };
    let ctx = context! {
        entries => entries,
        actors => state.store.audit_actors().await?,
        actions => AUDIT_ACTIONS,
        actor => actor,
        action => action,
        next_link => next_link,
        paged => q.before.is_some(),
        first_link => if keep.is_empty() { "/audit".to_string() } else { format!("/audit?{}", keep.join("&")) },
        ..base(&state, &session, "audit").await?
    };
    render::page("audit.html", ctx)
}
