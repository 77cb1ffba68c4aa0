//! Everything known about one review item or one received mail, gathered for the message
//! page and `trialdesk queue show`. A fixed handful of queries per page (no N+1).

use serde::Serialize;

use crate::classify::ReviewReason;
use crate::store::{
    AuditEntry, DecisionRow, InboundRecord, ReviewItem, SentMail, Store, StoreError,
};

/// A reason code with its words for staff.
#[derive(Debug, Clone, Serialize)]
pub struct ReasonView {
    pub code: String,
    pub description: String,
}

impl ReasonView {
    pub fn new(code: &str) -> ReasonView {
        ReasonView {
            code: code.to_string(),
            description: ReviewReason::from_code(code)
                .map(|r| r.describe().to_string())
                .unwrap_or_else(|| code.replace('_', " ")),
        }
    }
}

/// A received mail with its decisions, the mail sent for it, and its review items.
#[derive(Debug, Clone, Serialize)]
pub struct MessageDetail {
    pub inbound: InboundRecord,
    /// Loan numbers of the latest decision.
    pub loan_numbers: Vec<String>,
    pub decisions: Vec<DecisionRow>,
    pub replies: Vec<SentMail>,
    pub items: Vec<ReviewItem>,
    /// Whether the raw mail was kept (it is not when over the size limit).
    pub raw_kept: bool,
}

/// A review item with what it is about.
#[derive(Debug, Clone, Serialize)]
pub struct ItemDetail {
    pub item: ReviewItem,
    pub reasons: Vec<ReasonView>,
    /// For items about a received mail.
    pub message: Option<MessageDetail>,
    /// For dead letters: the mail that could not be delivered.
    pub dead_letter: Option<SentMail>,
    pub audit: Vec<AuditEntry>,
}

pub async fn message_detail(
    store: &Store,
    inbound_id: i64,
) -> Result<Option<MessageDetail>, StoreError> {
    let Some(inbound) = store.inbound(inbound_id).await? else {
        return Ok(None);
    };
    let loan_numbers = serde_json::from_str(&inbound.loan_numbers).unwrap_or_default();
    Ok(Some(MessageDetail {
        loan_numbers,
        decisions: store.decisions_for_inbound(inbound_id).await?,
        replies: store.sent_for_inbound(inbound_id).await?,
        items: store.review_items_for_inbound(inbound_id).await?,
        raw_kept: store.inbound_raw_kept(inbound_id).await?,
        inbound,
    }))
}

/// The item `id` with what it is about.
pub async fn item_detail(store: &Store, id: i64) -> Result<Option<ItemDetail>, StoreError> {
    let Some(item) = store.review_item(id).await? else {
        return Ok(None);
    };
    let codes: Vec<String> = serde_json::from_str(&item.reasons).unwrap_or_default();
    let mut reasons: Vec<ReasonView> = codes.iter().map(|c| ReasonView::new(c)).collect();
    if reasons.is_empty() {
        reasons.push(ReasonView::new(&item.reason));
    }
    let message = match item.inbound_id {
        Some(inbound_id) => message_detail(store, inbound_id).await?,
        None => None,
    };
    let dead_letter = match item.outbox_id {
        Some(outbox_id) => store.sent_mail(outbox_id).await?,
        None => None,
    };
    let audit = store.audit_for(Some(item.id), item.inbound_id).await?;
    Ok(Some(ItemDetail {
        item,
        reasons,
        message,
        dead_letter,
        audit,
    }))
}
