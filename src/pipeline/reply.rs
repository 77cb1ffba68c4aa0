//! What a tracking reply says: the template context, built from a decision, and the composed
//! reply. Pure (no I/O).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::classify::{self, Decision, Inspection, Mailbox};
use crate::config::Config;
use crate::domain::{Language, Partner, Shipment};
use crate::outbound::compose::{is_sane_message_id, Draft, OwnMailKind};
use crate::outbound::templates::{Rendered, TemplateError, Templates};
use crate::outbound::Composer;
use crate::store::NewOutbox;

/// Context of the `tracking_reply.*` templates.
#[derive(Debug, Clone, Serialize)]
pub struct ReplyContext {
    pub sender_name: Option<String>,
    pub partner_name: String,
    pub subject: String,
    /// Found loans, in request order.
    pub loans: Vec<LoanView>,
    /// Numbers not found (or not the sender's partner's: indistinguishable on purpose).
    pub not_found: Vec<String>,
    /// The request carried no number at all.
    pub no_numbers: bool,
    pub signature: String,
    /// A staff member sends it (never "sent automatically").
    pub staff: bool,
    /// The staff member's own words, above the status.
    pub staff_text: Option<String>,
    /// The same, as paragraphs of lines (for the HTML part).
    pub staff_paragraphs: Vec<Vec<String>>,
}

/// Context of the `staff_reply.*` templates: a staff member's own answer.
#[derive(Debug, Clone, Serialize)]
pub struct StaffTextContext {
    /// The answer: paragraphs (split at blank lines) of lines.
    pub paragraphs: Vec<Vec<String>>,
    pub signature: String,
    /// When the original was written: its `Date` header, in its sender's own offset.
    pub when: String,
    /// Who wrote it: the display name, else the address.
    pub who: String,
    /// The original's lines, quoted below.
    pub quoted: Vec<String>,
}

/// One found loan, flattened for templates (dates as `YYYY-MM-DD`).
#[derive(Debug, Clone, Serialize)]
pub struct LoanView {
    pub number: String,
    pub customer: String,
    pub status: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub shipped_on: Option<String>,
    pub eta: Option<String>,
    pub delivered_on: Option<String>,
    pub items: Vec<String>,
}

/// Renders tracking replies: the templates plus the config they need (carrier links, the
/// signature). Shared by the pipeline and staff answers so both say the same thing.
pub struct TrackingReplies {
    templates: Arc<Templates>,
    /// Lower-cased carrier name → URL pattern with `{tracking_number}`.
    carriers: BTreeMap<String, String>,
    signature: String,
}

impl TrackingReplies {
    pub fn new(config: &Config, templates: Arc<Templates>) -> TrackingReplies {
        TrackingReplies {
            templates,
            carriers: config
                .carriers
                .iter()
                .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
                .collect(),
            signature: config.templates.signature.clone(),
        }
    }

    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// `tracking_reply.<lang>.{txt,html}` in the first of `languages` that has both (then en).
    pub fn render(
        &self,
        inspection: &Inspection,
        decision: &Decision,
        partner: &Partner,
        languages: &[Language],
    ) -> Result<Rendered, TemplateError> {
        let context = reply_context(
            inspection,
            decision,
            partner,
            &self.carriers,
            &self.signature,
        );
        self.templates.render("tracking_reply", languages, &context)
    }

    /// The tracking reply as a staff member sends it: `intro` (their own words, may be
    /// empty) above the status, and no "sent automatically".
    pub fn render_staff(
        &self,
        inspection: &Inspection,
        decision: &Decision,
        partner: &Partner,
        languages: &[Language],
        intro: &str,
    ) -> Result<Rendered, TemplateError> {
        let mut context = reply_context(
            inspection,
            decision,
            partner,
            &self.carriers,
            &self.signature,
        );
        context.staff = true;
        context.staff_text = Some(intro.trim().to_string()).filter(|t| !t.is_empty());
        context.staff_paragraphs = paragraphs(intro);
        self.templates.render("tracking_reply", languages, &context)
    }

    /// A staff member's own answer (`staff_reply.<lang>.*`), in the first of `languages`
    /// that has it.
    pub fn render_staff_text(
        &self,
        context: &StaffTextContext,
        languages: &[Language],
    ) -> Result<Rendered, TemplateError> {
        self.templates.render("staff_reply", languages, context)
    }

    /// The carriers' tracking links (lower-cased carrier name → URL pattern).
    pub fn carriers(&self) -> &BTreeMap<String, String> {
        &self.carriers
    }
}

/// Renders and composes the automatic tracking reply to `to`, threaded under the request:
/// the outbox row the pipeline queues (and what the pipeline benchmark measures). Err carries
/// a description for staff.
pub fn compose_tracking_reply(
    replies: &TrackingReplies,
    composer: &Composer,
    inspection: &Inspection,
    decision: &Decision,
    partner: &Partner,
    to: &Mailbox,
    now: jiff::Timestamp,
) -> Result<NewOutbox, String> {
    let rendered = replies
        .render(
            inspection,
            decision,
            partner,
            &[decision.language, partner.language],
        )
        .map_err(|e| format!("reply could not be rendered: {e}"))?;
    let subject = classify::subject::reply_subject(&inspection.subject);
    // A broken Message-ID is not echoed into our headers; the reply starts a new thread.
    let in_reply_to = inspection
        .message_id
        .as_deref()
        .filter(|id| is_sane_message_id(id));
    let composed = composer
        .compose(&Draft {
            to,
            subject: &subject,
            text: &rendered.text,
            html: &rendered.html,
            in_reply_to,
            references: &inspection.references,
            kind: OwnMailKind::AutoReply,
            date: now,
        })
        .map_err(|e| format!("reply could not be composed: {e}"))?;
    Ok(NewOutbox {
        purpose: "reply".into(),
        message_id: composed.message_id,
        envelope_from: composer.from_address(),
        recipients: vec![to.address.clone()],
        rate_key: to.address.to_lowercase(),
        subject,
        body: composed.bytes,
    })
}

/// Builds the context. `carriers` maps lower-cased carrier names to URL patterns.
pub fn reply_context(
    inspection: &Inspection,
    decision: &Decision,
    partner: &Partner,
    carriers: &BTreeMap<String, String>,
    signature: &str,
) -> ReplyContext {
    let mut loans = Vec::new();
    let mut not_found = Vec::new();
    for answer in &decision.loans {
        match &answer.shipment {
            // Defence in depth: decide() already hides other partners' loans.
            Some(s) if s.partner_id == partner.partner_id => loans.push(loan_view(s, carriers)),
            _ => not_found.push(answer.loan_number.to_string()),
        }
    }
    ReplyContext {
        sender_name: inspection
            .from
            .as_ref()
            .and_then(|f| f.name.clone())
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        partner_name: partner.name.clone(),
        subject: inspection.subject.clone(),
        no_numbers: decision.loans.is_empty(),
        loans,
        not_found,
        signature: signature.to_string(),
        staff: false,
        staff_text: None,
        staff_paragraphs: Vec::new(),
    }
}

/// `text` as paragraphs (split at blank lines, trimmed, empty ones dropped) of lines.
pub fn paragraphs(text: &str) -> Vec<Vec<String>> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.lines().map(str::to_string).collect())
        .collect()
}

/// One shipment as the templates and the item page show it (with its carrier link).
pub fn loan_view(s: &Shipment, carriers: &BTreeMap<String, String>) -> LoanView {
    let tracking_url = match (&s.carrier, &s.tracking_number) {
        (Some(c), Some(t)) => carriers.get(&c.trim().to_lowercase()).map(|pattern| {
            pattern.replace(
                "{tracking_number}",
                &crate::review::mail_view::percent_encode(t),
            )
        }),
        _ => None,
    };
    LoanView {
        number: s.loan_number.to_string(),
        customer: s.customer.clone(),
        status: s.status.code().to_string(),
        carrier: s.carrier.clone(),
        tracking_number: s.tracking_number.clone(),
        tracking_url,
        shipped_on: s.shipped_on.map(|d| d.to_string()),
        eta: s.eta.map(|d| d.to_string()),
        delivered_on: s.delivered_on.map(|d| d.to_string()),
        items: s.items.clone(),
    }
}
