//! What was sent: automatic replies, staff replies, reminders — searchable.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Extension;
use minijinja::context;
use serde::Deserialize;

use super::{base, cursor, given, PageResult};
use crate::review::mail_view::percent_encode;
use crate::review::web::auth::Session;
use crate::review::web::{render, WebError, WebState};
use crate::store::{Cursor, HistoryFilter};

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    q: Option<String>,
    purpose: Option<String>,
    partner: Option<String>,
    after: Option<String>,
}

/// What was sent: automatic replies, staff replies, reminders — searchable, so staff can
/// answer "did we reply to partner X about D1234567?".
pub async fn history(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Query(q): Query<HistoryQuery>,
) -> PageResult {
    let purpose = given(&q.purpose);
    if let Some(p) = &purpose {
        if ![
            "reply",
            "staff_reply",
            "reminder",
            "shipment_notice",
            "rma_label",
        ]
        .contains(&p.as_str())
        {
            return Err(WebError::bad("error.unknown_purpose", p.clone()));
        }
    }
    let search = given(&q.q);
    let partner = given(&q.partner);
    let (rows, more) = state
        .store
        .history(&HistoryFilter {
            purpose: purpose.clone(),
            partner_id: partner.clone(),
            search: search.clone(),
            after: cursor(&q.after)?,
            limit: i64::from(state.config.page_size),
        })
        .await?;
    let mut keep = Vec::new();
    for (k, v) in [("q", &search), ("purpose", &purpose), ("partner", &partner)] {
        if let Some(v) = v {
            keep.push(format!("{k}={}", percent_encode(v)));
        }
    }
    let next_link = if more {
        rows.last().map(|r| {
            let mut parts = keep.clone();
            parts.push(format!(
                "after={}",
                Cursor {
                    at: r.created_at,
                    id: r.id
                }
            ));
            format!("/history?{}", parts.join("&"))
        })
    } else {
        None
    };
    let partners = state.store.partners().await?;
    let ctx = context! {
        rows => rows,
        q => search,
        purpose => purpose,
        partner => partner,
        partners => partners,
        next_link => next_link,
        paged => given(&q.after).is_some(),
        first_link => if keep.is_empty() { "/history".to_string() } else { format!("/history?{}", keep.join("&")) },
        ..base(&state, &session, "history").await?
    };
    render::page("history.html", ctx)
}
