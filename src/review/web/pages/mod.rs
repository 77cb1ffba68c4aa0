//! The pages and the actions behind their forms, one module per page. Every write is a POST
//! that redirects (post/redirect/get), so reloading a page never repeats an action.
//!
//! Handlers pass codes, numbers and rows to the templates; every word on a page comes from
//! the message catalogs (`templates/web/i18n/`), chosen by [`super::i18n`].
//!
//! - [`queue`]: the list, its filters, views and bulk actions.
//! - [`item`]: one item and the actions on it (answer, reprocess, resolve, retry, discard,
//!   assign, note).
//! - [`message`]: a received mail, its raw bytes, attachments and inline images; a mail we
//!   sent.
//! - [`reports`]: the helpdesk's figures, and their CSV.
//! - [`history`], [`audit`], [`import`], [`settings`]: the other pages.

pub mod audit;
pub mod history;
pub mod import;
pub mod item;
pub mod message;
pub mod queue;
pub mod reports;
pub mod settings;

use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{context, Value};

use super::auth::Session;
use super::banners::{banners, Facts, Workers};
use super::{WebError, WebState};
use crate::review::actions::Actor;
use crate::store::Cursor;

pub use audit::audit;
pub use history::history;
pub use import::{import, import_form};
pub use item::{answer, assign, discard, item, note, reprocess, resolve, retry};
pub use message::{attachment, inline_image, message, outgoing, raw_mail};
pub use queue::{bulk, queue};
pub use reports::{reports, reports_csv};
pub use settings::{save_settings, settings};

pub(crate) type PageResult = Result<Response, WebError>;

/// Context every page shares: who is signed in, the CSRF token, the clock for the ages,
/// and the open count for the navigation.
pub(crate) async fn base(
    state: &WebState,
    session: &Session,
    nav: &str,
) -> Result<Value, WebError> {
    let counts = state.store.review_counts().await?;
    let open_total: i64 = counts.iter().map(|(_, n)| n).sum();
    let now = state.now_ms();
    let facts = Facts {
        now_ms: now,
        waiting: match &state.health {
            Some(_) => 0,
            None => state.store.outbox_waiting(now - 60_000).await?,
        },
        workers: state.health.as_ref().map(|h| Workers::from_health(h, now)),
    };
    Ok(context! {
        banners => banners(&facts),
        user => session.user,
        csrf => session.csrf,
        now => state.now_ms(),
        nav => nav,
        open_total => open_total,
        counts => counts,
    })
}

/// Empty form/query values mean "not given".
pub(crate) fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub(crate) fn cursor(v: &Option<String>) -> Result<Option<Cursor>, WebError> {
    given(v)
        .map(|c| {
            c.parse()
                .map_err(|_| WebError::bad("error.bad_cursor", c.clone()))
        })
        .transpose()
}

pub(crate) fn actor(session: &Session) -> Actor {
    Actor::web(&session.user)
}

/// Back to the queue with a note of what was done (`done`, the item, the mail queued).
pub(crate) fn done_redirect(done: &str, item: i64, outbox: Option<i64>) -> Response {
    let mut url = format!("/queue?done={done}&item={item}");
    if let Some(o) = outbox {
        url.push_str(&format!("&outbox={o}"));
    }
    Redirect::to(&url).into_response()
}
