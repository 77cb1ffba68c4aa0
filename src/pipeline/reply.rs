//! What a tracking reply says: the template context, built from a decision. Pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::classify::{Decision, Inspection};
use crate::config::Config;
use crate::domain::{Language, Partner, Shipment};
use crate::outbound::templates::{Rendered, TemplateError, Templates};

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
    }
}

fn loan_view(s: &Shipment, carriers: &BTreeMap<String, String>) -> LoanView {
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
