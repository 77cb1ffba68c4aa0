//! One review item: the mail (or the failed delivery), why it waits, the context the
//! decision needs (the partner, the shipments of the loans it names, the thread), what was
//! done, and the actions on it.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::Extension;
use minijinja::{context, Value};
use serde::Deserialize;

use super::message::{body_text, mail_context, mail_page};
use super::{actor, base, done_redirect, given, PageResult};
use crate::review::actions::ActionError;
use crate::review::detail::{item_detail, MessageDetail};
use crate::review::team;
use crate::review::web::auth::{FormData, Session};
use crate::review::web::{render, WebError, WebState};

#[derive(Debug, Default, Deserialize)]
pub struct ItemQuery {
    images: Option<String>,
    done: Option<String>,
    outbox: Option<i64>,
}

/// One review item: the mail (or the failed delivery), why it is here, what was done, and
/// the forms to act on it.
pub async fn item(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
    Query(q): Query<ItemQuery>,
) -> PageResult {
    item_page(&state, &session, id, &q, None).await
}

/// What the staff member had typed when an action failed, and why it failed: the page
/// shows it again next to the reason instead of losing it.
struct Kept {
    mode: String,
    text: String,
    loans: String,
    problem: String,
}

async fn item_page(
    state: &WebState,
    session: &Session,
    id: i64,
    q: &ItemQuery,
    kept: Option<Kept>,
) -> PageResult {
    let detail = item_detail(&state.store, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let images = given(&q.images).is_some();
    let around = match &detail.message {
        Some(m) => surroundings(state, m).await?,
        None => Value::UNDEFINED,
    };
    let (mail, uses_remote) = match &detail.message {
        Some(m) => {
            let (ctx, remote) = mail_context(state, m, images).await?;
            (Some(ctx), remote)
        }
        None => (None, false),
    };
    let dead_text = match detail.item.outbox_id {
        Some(oid) => state
            .store
            .outbox_row(oid)
            .await?
            .map(|row| body_text(&row.body)),
        None => None,
    };
    let users = state.store.users().await?;
    let staff: Vec<String> = users
        .into_iter()
        .filter(|u| !u.disabled)
        .map(|u| u.name)
        .collect();
    let conflict = kept.is_some();
    let snippets = crate::review::snippets::load(&state.snippets_dir);
    let ctx = context! {
        d => detail,
        mail => mail,
        dead_text => dead_text,
        around => around,
        staff => staff,
        snippets => snippets,
        kept_mode => kept.as_ref().map(|k| k.mode.clone()),
        typed => kept.as_ref().map(|k| k.text.clone()),
        typed_loans => kept.as_ref().map(|k| k.loans.clone()),
        problem => kept.as_ref().map(|k| k.problem.clone()),
        sla_before => state.now_ms() - state.config.sla.as_millis() as i64,
        sla => humantime::format_duration(state.config.sla).to_string(),
        done => given(&q.done),
        done_outbox => q.outbox,
        ..base(state, session, "queue").await?
    };
    let mut res = mail_page("item.html", ctx, uses_remote)?;
    if conflict {
        *res.status_mut() = StatusCode::CONFLICT;
    }
    Ok(res)
}

/// Beside the mail: its partner (by the sender's domain), the shipment rows of the loans
/// it names (only that partner's), whether the tracking template can answer it, and the
/// thread (same References chain, or the same loans from the same partner).
async fn surroundings(state: &WebState, m: &MessageDetail) -> Result<Value, WebError> {
    let inb = &m.inbound;
    let domain = inb
        .sender
        .as_deref()
        .and_then(crate::classify::address_domain)
        .map(str::to_string);
    let partner = match &domain {
        Some(d) => state.store.partner_by_domain(d).await?,
        None => None,
    };
    let mut loans = Vec::new();
    for n in &m.loan_numbers {
        if let Some(n) = state.rules.loans.parse_one(n) {
            loans.push(n);
        }
    }
    let shipments: Vec<_> = match &partner {
        Some(p) if !loans.is_empty() => state
            .store
            .shipments_by_loan(&loans)
            .await?
            .into_iter()
            .filter(|s| s.partner_id == p.partner_id)
            .map(|s| crate::pipeline::reply::loan_view(&s, &state.carriers))
            .collect(),
        _ => Vec::new(),
    };
    let references = match state.store.inbound_raw(inb.id).await? {
        Some(raw) => crate::classify::inspect(&state.rules, &raw).references,
        None => Vec::new(),
    };
    let thread = state
        .store
        .thread_of(
            inb.id,
            partner.as_ref().map(|p| p.partner_id.as_str()),
            &references,
            &m.loan_numbers,
            20,
        )
        .await?;
    Ok(context! {
        partner => partner,
        sender_domain => domain,
        shipments => shipments,
        thread => thread,
        template_ok => partner.is_some(),
    })
}

/// Answers an item: `mode` = `template` (loan numbers from the checkboxes `loan` and the
/// field `more_loans`) or `text`; `intent` = `preview` (show what would be sent) or `send`.
pub async fn answer(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Extension(form): Extension<FormData>,
    Path(id): Path<i64>,
) -> PageResult {
    let mode = form.get("mode").unwrap_or("");
    let preview = form.get("intent") == Some("preview");
    let mut loans = form.all("loan");
    loans.extend(form.all("more_loans"));
    let mut text = form.get("text").unwrap_or("").to_string();
    let mut intro = form.get("intro").unwrap_or("").to_string();
    // A canned reply chosen without the page's script: put it above what was typed.
    if let Some(name) = form.get("snippet").filter(|n| !n.is_empty()) {
        let all = crate::review::snippets::load(&state.snippets_dir);
        if let Some(s) = all.iter().find(|s| s.name == name) {
            let target = if mode == "template" {
                &mut intro
            } else {
                &mut text
            };
            *target = crate::review::snippets::with_snippet(target, &s.text);
        }
    }
    let result = answer_inner(&state, &session, id, mode, preview, &loans, &text, &intro).await;
    match result {
        // A refusal (someone else answered meanwhile, an unknown number, …): the typed text
        // stays on the page, next to why.
        Err(
            e
            @ (ActionError::Conflict(_) | ActionError::Invalid(_) | ActionError::NotApplicable(_)),
        ) => {
            let kept = Kept {
                mode: mode.to_string(),
                text: if mode == "template" { intro } else { text },
                loans: form.all("more_loans").join(" "),
                problem: e.to_string(),
            };
            let q = ItemQuery {
                images: None,
                done: None,
                outbox: None,
            };
            item_page(&state, &session, id, &q, Some(kept)).await
        }
        Err(e) => Err(e.into()),
        Ok(res) => Ok(res),
    }
}

#[allow(clippy::too_many_arguments)]
async fn answer_inner(
    state: &WebState,
    session: &Session,
    id: i64,
    mode: &str,
    preview: bool,
    loans: &[String],
    text: &str,
    intro: &str,
) -> Result<axum::response::Response, ActionError> {
    let actions = &state.actions;
    match (mode, preview) {
        ("template", true) | ("text", true) => {
            let prepared = if mode == "template" {
                actions
                    .prepare_template_answer_with(id, loans, intro)
                    .await?
            } else {
                actions.prepare_text_answer(id, text).await?
            };
            let base = base(state, session, "queue").await.map_err(|e| match e {
                WebError::Internal(e) => ActionError::Invalid(format!("{e:#}")),
                _ => ActionError::Invalid("page".into()),
            })?;
            let ctx = context! {
                item_id => id,
                mode => mode,
                loans => loans,
                text => if mode == "template" { intro } else { text },
                p => prepared,
                ..base
            };
            render::page("preview.html", ctx)
                .map_err(|_| ActionError::Invalid("the preview cannot be shown".into()))
        }
        ("template", false) => {
            let outbox = actions
                .answer_template_with(id, loans, intro, &actor(session))
                .await?;
            Ok(done_redirect("answered", id, Some(outbox)))
        }
        ("text", false) => {
            let outbox = actions.answer_text(id, text, &actor(session)).await?;
            Ok(done_redirect("answered", id, Some(outbox)))
        }
        _ => Err(ActionError::Invalid("unknown kind of answer".into())),
    }
}

pub async fn reprocess(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
) -> PageResult {
    let r = state.actions.reprocess(id, &actor(&session)).await?;
    let done = match (
        &r.outcome.queued,
        r.outcome.already_answered,
        r.outcome.resolved,
    ) {
        (Some(_), _, true) => "reprocessed_answered",
        (Some(_), _, false) => "reprocessed_answered_open",
        (None, true, _) => "reprocessed_already_answered",
        (None, false, true) => "reprocessed_resolved",
        (None, false, false) => "reprocessed_open",
    };
    let mut url = format!("/items/{id}?done={done}");
    if let Some(o) = r.outcome.queued {
        url.push_str(&format!("&outbox={o}"));
    }
    Ok(Redirect::to(&url).into_response())
}

pub async fn resolve(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Extension(form): Extension<FormData>,
    Path(id): Path<i64>,
) -> PageResult {
    let note = form.get("note").unwrap_or("");
    state.actions.resolve(id, note, &actor(&session)).await?;
    Ok(done_redirect("resolved", id, None))
}

pub async fn retry(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
) -> PageResult {
    let outbox = state.actions.retry(id, &actor(&session)).await?;
    Ok(done_redirect("retried", id, Some(outbox)))
}

pub async fn discard(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
) -> PageResult {
    let outbox = state.actions.discard(id, &actor(&session)).await?;
    Ok(done_redirect("discarded", id, Some(outbox)))
}

/// Assigns the item (`to` = a user name; empty: unassign; `me`: the signed-in user).
pub async fn assign(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Extension(form): Extension<FormData>,
    Path(id): Path<i64>,
) -> PageResult {
    let to = match form.get("to").map(str::trim) {
        Some("me") => Some(session.user.clone()),
        Some("") | None => None,
        Some(name) => Some(name.to_string()),
    };
    team::assign(&state.actions, id, to.as_deref(), &actor(&session)).await?;
    let done = if to.is_some() {
        "assigned"
    } else {
        "unassigned"
    };
    Ok(Redirect::to(&format!("/items/{id}?done={done}")).into_response())
}

/// Adds an internal note (never sent) to the item's activity.
pub async fn note(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Extension(form): Extension<FormData>,
    Path(id): Path<i64>,
) -> PageResult {
    let text = form.get("note").unwrap_or("");
    team::note(&state.actions, id, text, &actor(&session)).await?;
    Ok(Redirect::to(&format!("/items/{id}?done=noted")).into_response())
}
