//! A received mail (from the history), its raw bytes, attachments and inline images, and a
//! mail trialdesk sent.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::Extension;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{base, given, PageResult};
use crate::review::detail::{message_detail, MessageDetail};
use crate::review::mail_view::{self, percent_encode, SanitizeOptions};
use crate::review::web::auth::Session;
use crate::review::web::{render, WebError, WebState};

#[derive(Debug, Deserialize)]
pub struct MessageQuery {
    images: Option<String>,
}

/// The mail's display (sanitised HTML, attachments) and the text of the mail sent for it.
pub(crate) async fn mail_context(
    state: &WebState,
    message: &MessageDetail,
    images: bool,
) -> Result<(Value, bool), WebError> {
    let inbound_id = message.inbound.id;
    let remote_images = state.config.remote_images || images;
    let view = match state.store.inbound_raw(inbound_id).await? {
        Some(raw) => {
            let opts = SanitizeOptions {
                remote_images,
                inline_base: format!("/messages/{inbound_id}/inline/"),
            };
            mail_view::view_off_thread(raw, opts, view_limits(state)).await
        }
        None => None,
    };
    let mut message = message.clone();
    mail_view::cap_display_text(&mut message.inbound.body_text);
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

/// The classification's limits, which every page reading a stored mail keeps to.
pub(crate) fn view_limits(state: &WebState) -> mail_view::ViewLimits {
    mail_view::ViewLimits::from_rules(&state.rules)
}

/// The text part of a mail we composed (for showing what was sent).
pub(crate) fn body_text(raw: &[u8]) -> String {
    mail_parser::MessageParser::default()
        .parse(raw)
        .and_then(|m| m.body_text(0).map(|t| t.into_owned()))
        .unwrap_or_default()
}

/// A page showing a received mail; with remote images shown, its policy lets them load.
pub(crate) fn mail_page(name: &str, ctx: minijinja::Value, uses_remote: bool) -> PageResult {
    let mut res = render::page(name, ctx)?;
    if uses_remote {
        res.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(crate::review::web::CSP_REMOTE_IMAGES),
        );
    }
    Ok(res)
}

/// The raw bytes of received mail `id`; 404 when it is unknown or no longer kept.
async fn raw_or_404(state: &WebState, id: i64) -> Result<Vec<u8>, WebError> {
    state.store.inbound_raw(id).await?.ok_or(WebError::NotFound)
}

/// A received mail on its own (from the history), with its items and replies.
pub async fn message(
    State(state): State<Arc<WebState>>,
    Extension(session): Extension<Session>,
    Path(id): Path<i64>,
    Query(q): Query<MessageQuery>,
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
    let part = mail_view::attachment_off_thread(raw, index, view_limits(&state))
        .await
        .ok_or(WebError::NotFound)?;
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
    let part = mail_view::inline_image_off_thread(raw, cid, view_limits(&state))
        .await
        .ok_or(WebError::NotFound)?;
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
