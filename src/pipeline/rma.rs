//! The answer to an RMA label request: the return labels on file attached (PDF), with the
//! return instructions (`rma_label.<lang>` templates). Only composed when `decide` found every
//! requested loan to be the sender's partner's, in `return_requested`, with a label on file.

use std::path::Path;

use serde::Serialize;

use crate::classify::{self, Decision, Inspection, Mailbox};
use crate::domain::Partner;
use crate::outbound::compose::Attachment;
use crate::outbound::Composer;
use crate::store::rma::{rma_label, LabelProblem};
use crate::store::NewOutbox;

use super::reply::{compose_auto_reply, TrackingReplies};

/// Outbox purpose (and history kind) of RMA label answers.
pub const PURPOSE: &str = "rma_label";

#[derive(Debug, Clone, Serialize)]
struct RmaContext {
    sender_name: Option<String>,
    partner_name: String,
    loans: Vec<RmaLoanView>,
    signature: String,
}

#[derive(Debug, Clone, Serialize)]
struct RmaLoanView {
    number: String,
    customer: String,
    file_name: String,
}

/// Where labels are and how large one may be.
#[derive(Debug, Clone, Copy)]
pub struct LabelSource<'a> {
    pub dir: Option<&'a Path>,
    pub max_bytes: u64,
}

/// Reads the labels, renders and composes the answer to `to`, threaded under the request.
/// Err describes for staff why it cannot go out (the mail then waits in review).
#[allow(clippy::too_many_arguments)]
pub fn compose_rma_reply(
    replies: &TrackingReplies,
    composer: &Composer,
    inspection: &Inspection,
    decision: &Decision,
    partner: &Partner,
    to: &Mailbox,
    labels: LabelSource<'_>,
    now: jiff::Timestamp,
) -> Result<NewOutbox, String> {
    let mut views = Vec::new();
    let mut files = Vec::new();
    for answer in &decision.loans {
        let Some(s) = answer
            .shipment
            .as_ref()
            .filter(|s| s.partner_id == partner.partner_id)
        else {
            return Err(format!("loan {} is not the sender's", answer.loan_number));
        };
        let label =
            rma_label(labels.dir, &s.loan_number, labels.max_bytes).map_err(|p| match p {
                LabelProblem::Missing => format!("no return label on file for {}", s.loan_number),
                LabelProblem::Unusable(m) => m,
            })?;
        views.push(RmaLoanView {
            number: s.loan_number.to_string(),
            customer: s.customer.clone(),
            file_name: label.file_name.clone(),
        });
        files.push(label);
    }
    if files.is_empty() {
        return Err("no loan to send a return label for".into());
    }
    let context = RmaContext {
        // Echoed from the mail: plain text that cannot become a link in our reply.
        sender_name: inspection
            .from
            .as_ref()
            .and_then(|f| f.name.as_deref())
            .map(|n| {
                crate::outbound::headers::echo_text(n, crate::outbound::headers::MAX_NAME_CHARS)
            })
            .filter(|n| !n.is_empty()),
        partner_name: partner.name.clone(),
        loans: views,
        signature: replies.signature().to_string(),
    };
    let rendered = replies
        .render_other(
            "rma_label",
            &[decision.language, partner.language],
            &context,
        )
        .map_err(|e| format!("RMA answer could not be rendered: {e}"))?;
    let subject = classify::subject::reply_subject(&inspection.subject);
    let attachments: Vec<Attachment<'_>> = files
        .iter()
        .map(|f| Attachment {
            file_name: &f.file_name,
            content_type: "application/pdf",
            bytes: &f.bytes,
        })
        .collect();
    let composed = compose_auto_reply(
        composer,
        inspection,
        to,
        &subject,
        &rendered,
        &attachments,
        now,
    )
    .map_err(|e| format!("RMA answer could not be composed: {e}"))?;
    Ok(NewOutbox {
        purpose: PURPOSE.into(),
        message_id: composed.message_id,
        envelope_from: composer.from_address(),
        recipients: vec![to.address.clone()],
        rate_key: to.address.to_lowercase(),
        subject,
        body: composed.bytes,
    })
}
