//! Working together on the queue: who works on an item (assign / unassign), internal notes
//! (kept in the item's activity, never sent), and the bulk forms of the actions. The web
//! pages and the CLI call these same functions, so both write the same audit rows: a bulk
//! action is audited per item, exactly as if each item had been done on its own.

use serde::Serialize;

use super::actions::{ActionError, Actions, Actor};
use crate::store::NewAudit;

/// The longest internal note accepted.
const MAX_NOTE_CHARS: usize = 10_000;

/// What to do with each selected item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkAction {
    /// Close without answering, with this note.
    Resolve(String),
    /// Put the dead-lettered mail back in the outbox.
    Retry,
    /// Run the rules again.
    Reprocess,
    /// Give to this user (None: to nobody).
    Assign(Option<String>),
}

/// How a bulk action went for one item.
#[derive(Debug, Clone, Serialize)]
pub struct BulkResult {
    pub id: i64,
    /// None: done. Some: why not (the item's own error; the others went on).
    pub error: Option<String>,
}

/// Gives item `id` to `to` (a staff account's name; None: to nobody). Only open items;
/// audited as `assign` / `unassign`. Returns the account it went to.
pub async fn assign(
    actions: &Actions,
    id: i64,
    to: Option<&str>,
    actor: &Actor,
) -> Result<Option<String>, ActionError> {
    let item = actions.item(id).await?;
    let store = actions.store();
    let to = match to.map(str::trim).filter(|s| !s.is_empty()) {
        Some(name) => {
            let name = crate::review::users::normalize_name(name)
                .map_err(|e| ActionError::Invalid(e.to_string()))?;
            let user = store
                .user_by_name(&name)
                .await?
                .filter(|u| !u.disabled)
                .ok_or_else(|| {
                    ActionError::Invalid(format!("{name} is not an active staff account"))
                })?;
            Some(user.name)
        }
        None => None,
    };
    let detail = match (&to, &item.assignee) {
        (Some(to), Some(was)) => format!("assigned to {to} (was {was})"),
        (Some(to), None) => format!("assigned to {to}"),
        (None, Some(was)) => format!("unassigned (was {was})"),
        (None, None) => "unassigned".to_string(),
    };
    let audit = NewAudit {
        actor: actor.name.clone(),
        via: actor.via,
        action: if to.is_some() { "assign" } else { "unassign" },
        review_id: Some(id),
        inbound_id: item.inbound_id,
        outbox_id: item.outbox_id,
        detail,
    };
    store
        .assign_item(id, to.as_deref(), &audit, actions.now_ms())
        .await?;
    Ok(to)
}

/// Adds an internal note to item `id` (open or resolved): an audit row `note`, shown in the
/// item's activity, never sent to anyone.
pub async fn note(
    actions: &Actions,
    id: i64,
    text: &str,
    actor: &Actor,
) -> Result<(), ActionError> {
    let item = actions.item(id).await?;
    let text = text.replace("\r\n", "\n");
    let text = text.trim();
    if text.is_empty() {
        return Err(ActionError::Invalid("the note is empty".into()));
    }
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(ActionError::Invalid(format!(
            "the note is longer than {MAX_NOTE_CHARS} characters"
        )));
    }
    let audit = NewAudit {
        actor: actor.name.clone(),
        via: actor.via,
        action: "note",
        review_id: Some(id),
        inbound_id: item.inbound_id,
        outbox_id: item.outbox_id,
        detail: text.to_string(),
    };
    actions.store().audit(&audit, actions.now_ms()).await?;
    Ok(())
}

/// Does `action` for each of `ids` in turn; one item's failure does not stop the others.
pub async fn bulk(
    actions: &Actions,
    ids: &[i64],
    action: &BulkAction,
    actor: &Actor,
) -> Vec<BulkResult> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let r = match action {
            BulkAction::Resolve(note) => actions.resolve(id, note, actor).await,
            BulkAction::Retry => actions.retry(id, actor).await.map(|_| ()),
            BulkAction::Reprocess => actions.reprocess(id, actor).await.map(|_| ()),
            BulkAction::Assign(to) => assign(actions, id, to.as_deref(), actor).await.map(|_| ()),
        };
        out.push(BulkResult {
            id,
            error: r.err().map(|e| e.to_string()),
        });
    }
    out
}

/// Retries every open dead letter (each audited as `retry`).
pub async fn retry_all_dead_letters(
    actions: &Actions,
    actor: &Actor,
) -> Result<Vec<BulkResult>, ActionError> {
    let ids = actions.store().dead_letter_item_ids().await?;
    Ok(bulk(actions, &ids, &BulkAction::Retry, actor).await)
}

/// The open items whose primary reason is `reason` (for `--reason` and the page's "all of
/// this reason"). Err for an unknown reason code.
pub async fn items_of_reason(actions: &Actions, reason: &str) -> Result<Vec<i64>, ActionError> {
    if crate::classify::ReviewReason::from_code(reason).is_none() {
        return Err(ActionError::Invalid(format!("unknown reason {reason:?}")));
    }
    Ok(actions.store().open_item_ids(reason).await?)
}
