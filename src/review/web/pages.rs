//! The pages and the actions behind their forms. Every write is a POST that redirects
//! (post/redirect/get), so reloading a page never repeats an action.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use minijinja::{context, Value};
use serde::Deserialize;

use super::auth::{csrf_matches, FormData, Session};
use super::{render, WebError, WebState};
use crate::classify::ReviewReason;
use crate::import::{ImportError, ImportKind};
use crate::review::actions::Actor;
use crate::review::detail::{item_detail, message_detail, MessageDetail};
use crate::review::mail_view::{self, percent_encode, SanitizeOptions};
use crate::store::{AuditFilter, Cursor, HistoryFilter, NewAudit, ReviewFilter, ReviewOrder, Via};

type PageResult = Result<Response, WebError>;

/// Context every page shares: who is signed in, the CSRF token, the clock and time zone for
/// the date filters, and the open count for the navigation.
async fn base(state: &WebState, session: &Session, nav: &str) -> Result<Value, WebError> {
    let counts = state.store.review_counts().await?;
    let open_total: i64 = counts.iter().map(|(_, n)| n).sum();
    Ok(context! {
        user => session.user,
        csrf => session.csrf,
        now => state.now_ms(),
        tz => state.config.time_zone,
        nav => nav,
        open_total => open_total,
        counts => counts,
    })
}

/// Empty form/query values mean "not given".
fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn cursor(v: &Option<String>) -> Result<Option<Cursor>, WebError> {
    given(v)
        .map(|c| c.parse().map_err(WebError::BadRequest))
        .transpose()
}

#[derive(Debug, Deserialize)]
pub struct QueueQuery {
    reason: Option<String>,
    q: Option<String>,
    order: Option<String>,
    state: Option<String>,
    after: Option<String>,
    before: Option<String>,
    /// What was just done (post/redirect/get flash): `answered`, `resolved`, …
    done: Option<String>,
    item: Option<i64>,
    outbox: Option<i64>,
}

/// The queue: counts per reason, filters, search, order, keyset paging.
pub async fn queue(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Query(q): Query<QueueQuery>,
) -> PageResult {
    let reason = given(&q.reason);
    if let Some(r) = &reason {
        if ReviewReason::from_code(r).is_none() {
            return Err(WebError::BadRequest(format!("unknown reason {r:?}")));
        }
    }
    let oldest = given(&q.order).as_deref() == Some("oldest");
    let item_state = match given(&q.state).as_deref() {
        None | Some("open") => "open",
        Some("resolved") => "resolved",
        Some(other) => return Err(WebError::BadRequest(format!("unknown state {other:?}"))),
    };
    let search = given(&q.q);
    let page = state
        .store
        .review_page(&ReviewFilter {
            state: item_state.into(),
            reason: reason.clone(),
            search: search.clone(),
            order: if oldest {
                ReviewOrder::OldestFirst
            } else {
                ReviewOrder::NewestFirst
            },
            limit: i64::from(state.config.page_size),
            offset: 0,
            after: cursor(&q.after)?,
            before: cursor(&q.before)?,
        })
        .await?;
    // The filter part of every link on the page, so paging keeps the filters.
    let mut keep = Vec::new();
    for (k, v) in [
        ("reason", reason.clone()),
        ("q", search.clone()),
        ("order", oldest.then(|| "oldest".to_string())),
        (
            "state",
            (item_state == "resolved").then(|| "resolved".to_string()),
        ),
    ] {
        if let Some(v) = v {
            keep.push(format!("{k}={}", percent_encode(&v)));
        }
    }
    let keep = keep.join("&");
    let link = |extra: String| {
        let mut parts = vec![];
        if !keep.is_empty() {
            parts.push(keep.clone());
        }
        if !extra.is_empty() {
            parts.push(extra);
        }
        if parts.is_empty() {
            "/queue".to_string()
        } else {
            format!("/queue?{}", parts.join("&"))
        }
    };
    let next_link = page
        .has_next
        .then(|| {
            page.items
                .last()
                .map(|i| link(format!("after={}", i.cursor())))
        })
        .flatten();
    let prev_link = page
        .has_prev
        .then(|| {
            page.items
                .first()
                .map(|i| link(format!("before={}", i.cursor())))
                .or_else(|| Some(link(String::new())))
        })
        .flatten();
    let reasons: Vec<Value> = ReviewReason::ALL
        .iter()
        .map(|r| context! { code => r.code(), label => r.describe() })
        .collect();
    let ctx = context! {
        items => page.items,
        reasons => reasons,
        reason => reason,
        q => search,
        oldest => oldest,
        item_state => item_state,
        next_link => next_link,
        prev_link => prev_link,
        first_link => link(String::new()),
        reason_link_base => {
            let mut parts = vec![];
            if let Some(s) = &search { parts.push(format!("q={}", percent_encode(s))); }
            if oldest { parts.push("order=oldest".to_string()); }
            parts.join("&")
        },
        done => given(&q.done),
        done_item => q.item,
        done_outbox => q.outbox,
        ..base(&state, &session, "queue").await?
    };
    render::page("queue.html", ctx)
}

#[derive(Debug, Deserialize)]
pub struct ItemQuery {
    images: Option<String>,
    done: Option<String>,
    outbox: Option<i64>,
}

/// The mail's display (sanitised HTML, attachments) and the text of the mail sent for it.
async fn mail_context(
    state: &WebState,
    message: &MessageDetail,
    images: bool,
) -> Result<(Value, bool), WebError> {
    let inbound_id = message.inbound.id;
    let remote_images = state.config.remote_images || images;
    let view = match state.store.inbound_raw(inbound_id).await? {
        Some(raw) => mail_view::view(
            &raw,
            &SanitizeOptions {
                remote_images,
                inline_base: format!("/messages/{inbound_id}/inline/"),
            },
        ),
        None => None,
    };
    let mut reply_text: BTreeMap<String, String> = BTreeMap::new();
    for row in state.store.outbox_for_inbound(inbound_id).await? {
        reply_text.insert(row.id.to_string(), body_text(&row.body));
    }
    let uses_remote = remote_images && view.as_ref().is_some_and(|v| v.html.is_some());
    Ok((
        context! {
            message => message,
            view => view,
            reply_text => reply_text,
            remote_images => remote_images,
        },
        uses_remote,
    ))
}

/// The text part of a mail we composed (for showing what was sent).
fn body_text(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default()
}

/// A page showing a received mail; with remote images shown, its policy lets them load.
fn mail_page(name: &str, ctx: minijinja::Value, uses_remote: bool) -> PageResult {
    let mut res = render::page(name, ctx)?;
    if uses_remote {
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(super::CSP_REMOTE_IMAGES),
        );
    }
    Ok(res)
}

/// The raw bytes of received mail `id`; 404 when it is unknown or no longer kept.
async fn raw_or_404(state: &WebState, id: i64) -> Result<Vec<u8>, WebError> {
    state.store.inbound_raw(id).await?.ok_or(WebError::NotFound)
}

/// One review item: the mail (or the failed delivery), why it is here, what was done, and
/// the forms to act on it.
pub async fn item(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
    Query(q): Query<ItemQuery>,
) -> PageResult {
    let detail = item_detail(&state.store, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let images = given(&q.images).is_some();
    let (mail, uses_remote) = match &detail.message {
        Some(m) => {
            let (ctx, remote) = mail_context(&state, m, images).await?;
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
    let ctx = context! {
        d => detail,
        mail => mail,
        dead_text => dead_text,
        done => given(&q.done),
        done_outbox => q.outbox,
        ..base(&state, &session, "queue").await?
    };
    mail_page("item.html", ctx, uses_remote)
}

/// A received mail on its own (from the history), with its items and replies.
pub async fn message(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
    Query(q): Query<ItemQuery>,
) -> PageResult {
    let detail = message_detail(&state.store, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let images = given(&q.images).is_some();
    let (mail, uses_remote) = mail_context(&state, &detail, images).await?;
    let audit = state.store.audit_for(None, Some(id)).await?;
    let ctx = context! {
        mail => mail,
        audit => audit,
        ..base(&state, &session, "history").await?
    };
    mail_page("message.html", ctx, uses_remote)
}

/// A mail trialdesk sent (or is sending): recipients, status, text.
pub async fn outgoing(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
) -> PageResult {
    let sent = state.store.sent_mail(id).await?.ok_or(WebError::NotFound)?;
    let text = state
        .store
        .outbox_row(id)
        .await?
        .map(|r| body_text(&r.body))
        .unwrap_or_default();
    let ctx = context! {
        o => sent,
        text => text,
        ..base(&state, &session, "history").await?
    };
    render::page("outgoing.html", ctx)
}

fn actor(session: &Session) -> Actor {
    Actor::web(&session.user)
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
    let text = form.get("text").unwrap_or("").to_string();
    let actions = &state.actions;
    match (mode, preview) {
        ("template", true) | ("text", true) => {
            let prepared = if mode == "template" {
                actions.prepare_template_answer(id, &loans).await?
            } else {
                actions.prepare_text_answer(id, &text).await?
            };
            let ctx = context! {
                item_id => id,
                mode => mode,
                loans => loans,
                text => text,
                p => prepared,
                ..base(&state, &session, "queue").await?
            };
            render::page("preview.html", ctx)
        }
        ("template", false) => {
            let outbox = actions
                .answer_template(id, &loans, &actor(&session))
                .await?;
            Ok(done_redirect("answered", id, Some(outbox)))
        }
        ("text", false) => {
            let outbox = actions.answer_text(id, &text, &actor(&session)).await?;
            Ok(done_redirect("answered", id, Some(outbox)))
        }
        _ => Err(WebError::BadRequest("unknown kind of answer".into())),
    }
}

fn done_redirect(done: &str, item: i64, outbox: Option<i64>) -> Response {
    let mut url = format!("/queue?done={done}&item={item}");
    if let Some(o) = outbox {
        url.push_str(&format!("&outbox={o}"));
    }
    Redirect::to(&url).into_response()
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

/// `Content-Disposition: attachment` with the name in both the plain and the RFC 6266/8187
/// UTF-8 form.
fn download_headers(
    name: &str,
    content_type: &str,
    inline: bool,
) -> [(header::HeaderName, HeaderValue); 2] {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != ';' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "{}; filename=\"{ascii}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        percent_encode(name)
    );
    [
        (
            header::CONTENT_DISPOSITION,
            HeaderValue::from_str(&disposition)
                .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
        ),
        (
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
        ),
    ]
}

/// The mail as received (`.eml`), as a download.
pub async fn raw_mail(State(state): State<Arc<WebState>>, Path(id): Path<i64>) -> PageResult {
    let raw = raw_or_404(&state, id).await?;
    Ok((
        download_headers(
            &format!("message-{id}.eml"),
            "application/octet-stream",
            false,
        ),
        raw,
    )
        .into_response())
}

/// An attachment, always as a download of opaque bytes: an HTML or SVG attachment opened in
/// the browser would run in our origin.
pub async fn attachment(
    State(state): State<Arc<WebState>>,
    Path((id, index)): Path<(i64, usize)>,
) -> PageResult {
    let raw = raw_or_404(&state, id).await?;
    let part = mail_view::attachment(&raw, index).ok_or(WebError::NotFound)?;
    Ok((
        download_headers(&part.name, "application/octet-stream", false),
        part.bytes,
    )
        .into_response())
}

/// A `cid:` image of the mail's HTML (raster images only).
pub async fn inline_image(
    State(state): State<Arc<WebState>>,
    Path((id, cid)): Path<(i64, String)>,
) -> PageResult {
    let raw = raw_or_404(&state, id).await?;
    let part = mail_view::inline_image(&raw, &cid).ok_or(WebError::NotFound)?;
    let mut res = (
        download_headers(&part.name, &part.content_type, true),
        part.bytes,
    )
        .into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(res)
}

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
            return Err(WebError::BadRequest(format!("unknown purpose {p:?}")));
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

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    before: Option<i64>,
}

const AUDIT_ACTIONS: [&str; 13] = [
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

pub async fn import_form(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
) -> PageResult {
    let ctx = context! {
        ..base(&state, &session, "import").await?
    };
    render::page("import.html", ctx)
}

/// Imports a CSV (multipart: `csrf`, `kind`, `file`) with the CLI's validation: all or
/// nothing, every bad row listed with its line.
pub async fn import(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    mut multipart: Multipart,
) -> PageResult {
    let mut csrf = None;
    let mut kind = None;
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| WebError::BadRequest(format!("bad upload: {e}")))?
    {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "csrf" => csrf = Some(field.text().await.map_err(bad_upload)?),
            "kind" => kind = Some(field.text().await.map_err(bad_upload)?),
            "file" => {
                let filename = field.file_name().unwrap_or("upload.csv").to_string();
                // Check the token before reading a possibly large file.
                if !csrf_matches(csrf.as_deref(), &session.csrf) {
                    break;
                }
                let bytes = field.bytes().await.map_err(bad_upload)?;
                file = Some((filename, bytes.to_vec()));
            }
            _ => {}
        }
    }
    if !csrf_matches(csrf.as_deref(), &session.csrf) {
        return Err(WebError::Forbidden(
            "The form has expired or did not come from this site. Go back, reload the page and \
             try again."
                .into(),
        ));
    }
    let kind = match kind.as_deref() {
        Some("partners") => ImportKind::Partners,
        Some("shipments") => ImportKind::Shipments,
        Some("trials") => ImportKind::Trials,
        _ => return Err(WebError::BadRequest("choose what the file holds".into())),
    };
    let (filename, bytes) = file
        .filter(|(_, b)| !b.is_empty())
        .ok_or_else(|| WebError::BadRequest("choose a non-empty CSV file".into()))?;
    let now = state.now_ms();
    let result = crate::import::import_bytes(
        &state.store,
        kind,
        &bytes,
        &state.rules.loans,
        &mut |_, _| {},
        now,
    )
    .await;
    let (imported, errors, more_errors) = match result {
        Ok(summary) => {
            state.data_changed.notify_one();
            state
                .store
                .audit(
                    &NewAudit {
                        actor: session.user.clone(),
                        via: Via::Web,
                        action: "import",
                        review_id: None,
                        inbound_id: None,
                        outbox_id: None,
                        detail: format!(
                            "imported {} {} from {filename}",
                            summary.rows,
                            kind.noun()
                        ),
                    },
                    now,
                )
                .await?;
            (Some(summary.rows), Vec::new(), 0)
        }
        Err(ImportError::Rows(rows)) => {
            let total = rows.len();
            let shown: Vec<String> = rows.iter().take(200).map(|r| r.to_string()).collect();
            (None, shown, total.saturating_sub(200))
        }
        Err(ImportError::Read { source, .. }) => {
            return Err(WebError::BadRequest(format!(
                "cannot read the file: {source}"
            )))
        }
        Err(ImportError::Store(e)) => return Err(e.into()),
    };
    let ctx = context! {
        kind => kind.noun(),
        filename => filename,
        imported => imported,
        errors => errors,
        more_errors => more_errors,
        ..base(&state, &session, "import").await?
    };
    let mut res = render::page("import.html", ctx)?;
    if imported.is_none() {
        *res.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(res)
}

fn bad_upload(e: axum::extract::multipart::MultipartError) -> WebError {
    WebError::BadRequest(format!("bad upload: {e}"))
}
