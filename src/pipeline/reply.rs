//! What a tracking reply says: the template context, built from a decision, and the composed
//! reply. Pure (no I/O).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::classify::{self, Decision, Inspection, Mailbox};
use crate::config::Config;
use crate::domain::{Language, Partner, Shipment};
use crate::outbound::compose::{Attachment, ComposeError, Composed, Draft, OwnMailKind};
use crate::outbound::headers;
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
    /// `loans` are the partner's active loans, listed because the request named none.
    pub listed: bool,
    /// Active loans not listed (beyond `[tracking] max_listed`).
    pub more: i64,
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
    /// The ETA lies before today and the loan is not delivered: never shown as a future date.
    pub eta_passed: bool,
    /// `exception` or `overdue` (see [`attention`]): the answer says the helpdesk is checking.
    pub attention: Option<&'static str>,
    /// For `overdue`: the ETA it was due on.
    pub overdue_since: Option<String>,
}

/// Why a loan needs a person: it is in `exception`, or it is not delivered more than
/// `overdue_days` after its ETA (overdue since the ETA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attention {
    Exception,
    Overdue { since: jiff::civil::Date },
}

impl Attention {
    pub fn code(self) -> &'static str {
        match self {
            Attention::Exception => "exception",
            Attention::Overdue { .. } => "overdue",
        }
    }
}

/// Pure: does this loan need a person on `today`?
pub fn attention(s: &Shipment, today: jiff::civil::Date, overdue_days: i64) -> Option<Attention> {
    use crate::domain::ShipmentStatus::*;
    match s.status {
        Exception => Some(Attention::Exception),
        Ordered | Processing | Shipped | InTransit if s.delivered_on.is_none() => {
            let eta = s.eta?;
            let due = eta.checked_add(jiff::Span::new().days(overdue_days)).ok()?;
            (today > due).then_some(Attention::Overdue { since: eta })
        }
        _ => None,
    }
}

/// The calendar date of `now` in UTC: the day trialdesk judges ETAs by.
pub fn utc_date(now: jiff::Timestamp) -> jiff::civil::Date {
    now.to_zoned(jiff::tz::TimeZone::UTC).date()
}

/// Renders tracking replies: the templates plus the config they need (carrier links, the
/// signature). Shared by the pipeline and staff answers so both say the same thing.
pub struct TrackingReplies {
    templates: Arc<Templates>,
    /// Lower-cased carrier name → URL pattern with `{tracking_number}`.
    carriers: BTreeMap<String, String>,
    signature: String,
    /// `[tracking] overdue_after` in whole days.
    overdue_days: i64,
}

impl TrackingReplies {
    pub fn new(config: &Config, templates: Arc<Templates>) -> TrackingReplies {
        TrackingReplies {
            templates,
            carriers: crate::config::carrier_links(&config.carriers),
            signature: config.templates.signature.clone(),
            overdue_days: config.tracking.overdue_days(),
        }
    }

    /// `[tracking] overdue_after` in whole days.
    pub fn overdue_days(&self) -> i64 {
        self.overdue_days
    }

    /// Lower-cased carrier name → tracking URL pattern.
    pub fn carriers(&self) -> &BTreeMap<String, String> {
        &self.carriers
    }

    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// `tracking_reply.<lang>.{txt,html}` in the first of `languages` that has both (then en),
    /// worded for `today` (past ETAs, overdue loans).
    pub fn render(
        &self,
        inspection: &Inspection,
        decision: &Decision,
        partner: &Partner,
        languages: &[Language],
        today: jiff::civil::Date,
    ) -> Result<Rendered, TemplateError> {
        let context = self.judged_context(inspection, decision, partner, today);
        self.templates.render("tracking_reply", languages, &context)
    }

    /// The reply context with each loan judged for `today`: what both renderings start from.
    fn judged_context(
        &self,
        inspection: &Inspection,
        decision: &Decision,
        partner: &Partner,
        today: jiff::civil::Date,
    ) -> ReplyContext {
        let mut context = reply_context(
            inspection,
            decision,
            partner,
            &self.carriers,
            &self.signature,
        );
        for loan in &mut context.loans {
            self.judge(loan, decision, today);
        }
        context
    }

    /// The tracking reply as a staff member sends it: `intro` (their own words, may be
    /// empty) above the status, and no "sent automatically".
    pub fn render_staff(
        &self,
        inspection: &Inspection,
        decision: &Decision,
        partner: &Partner,
        languages: &[Language],
        today: jiff::civil::Date,
        intro: &str,
    ) -> Result<Rendered, TemplateError> {
        let mut context = self.judged_context(inspection, decision, partner, today);
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

    /// Marks past ETAs and loans needing attention on `today`.
    fn judge(&self, view: &mut LoanView, decision: &Decision, today: jiff::civil::Date) {
        let shipment = decision
            .loans
            .iter()
            .filter_map(|l| l.shipment.as_ref())
            .chain(decision.listed.iter())
            .find(|s| s.loan_number.as_str() == view.number);
        let Some(s) = shipment else { return };
        view.eta_passed = s.delivered_on.is_none() && s.eta.is_some_and(|eta| eta < today);
        match attention(s, today, self.overdue_days) {
            Some(a @ Attention::Overdue { since }) => {
                view.attention = Some(a.code());
                view.overdue_since = Some(since.to_string());
            }
            Some(a) => view.attention = Some(a.code()),
            None => {}
        }
    }

    /// Renders another template family (`rma_label`, …) with this reply set's templates.
    pub fn render_other<C: Serialize>(
        &self,
        base: &str,
        languages: &[Language],
        context: &C,
    ) -> Result<Rendered, TemplateError> {
        self.templates.render(base, languages, context)
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
            utc_date(now),
        )
        .map_err(|e| format!("reply could not be rendered: {e}"))?;
    let subject = classify::subject::reply_subject(&inspection.subject);
    let composed = compose_auto_reply(composer, inspection, to, &subject, &rendered, &[], now)
        .map_err(|e| format!("reply could not be composed: {e}"))?;
    Ok(NewOutbox {
        purpose: "reply".into(),
        message_id: composed.message_id,
        envelope_from: composer.from_address(),
        recipients: vec![to.address.clone()],
        rate_key: to.address.to_lowercase(),
        subject: crate::outbound::headers::subject(&subject),
        body: composed.bytes,
    })
}

/// Composes an automatic answer to `inspection` (a tracking reply, an RMA label answer) to
/// `to`, with `attachments`. A broken Message-ID is not echoed into our headers; the answer
/// then starts a new thread.
pub(super) fn compose_auto_reply(
    composer: &Composer,
    inspection: &Inspection,
    to: &Mailbox,
    subject: &str,
    rendered: &Rendered,
    attachments: &[Attachment<'_>],
    now: jiff::Timestamp,
) -> Result<Composed, ComposeError> {
    // The composer drops a broken Message-ID from the thread headers itself.
    let in_reply_to = inspection.message_id.as_deref();
    composer.compose_with_attachments(
        &Draft {
            to,
            subject,
            text: &rendered.text,
            html: &rendered.html,
            in_reply_to,
            references: &inspection.references,
            kind: OwnMailKind::AutoReply,
            date: now,
        },
        attachments,
    )
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
    let listed = decision.loans.is_empty() && !decision.listed.is_empty();
    if listed {
        loans.extend(
            decision
                .listed
                .iter()
                .filter(|s| s.partner_id == partner.partner_id)
                .map(|s| loan_view(s, carriers)),
        );
    }
    ReplyContext {
        // Echoed from the mail: plain text that cannot become a link in our reply.
        sender_name: inspection
            .from
            .as_ref()
            .and_then(|f| f.name.as_deref())
            .map(|n| headers::echo_text(n, headers::MAX_NAME_CHARS))
            .filter(|n| !n.is_empty()),
        partner_name: partner.name.clone(),
        subject: headers::echo_text(&inspection.subject, headers::MAX_SUBJECT_CHARS),
        no_numbers: decision.loans.is_empty(),
        listed,
        more: if listed { decision.listed_more } else { 0 },
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
            pattern.replace("{tracking_number}", &crate::outbound::percent_encode(t))
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
        eta_passed: false,
        attention: None,
        overdue_since: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LoanNumber, ShipmentStatus};

    fn d(s: &str) -> jiff::civil::Date {
        s.parse().unwrap()
    }

    fn loan(status: ShipmentStatus, eta: Option<&str>, delivered: Option<&str>) -> Shipment {
        Shipment {
            status,
            eta: eta.map(d),
            delivered_on: delivered.map(d),
            ..Shipment::minimal(LoanNumber::from_normalized("D1000001".into()), "P01")
        }
    }

    #[test]
    fn attention_is_exception_or_overdue_past_the_grace_days() {
        use ShipmentStatus::*;
        let today = d("2026-12-04");
        let cases = [
            (loan(Exception, None, None), Some(Attention::Exception)),
            (loan(InTransit, Some("2026-12-01"), None), None), // 3 days: not yet
            (
                loan(InTransit, Some("2026-11-30"), None),
                Some(Attention::Overdue {
                    since: d("2026-11-30"),
                }),
            ),
            (
                loan(Shipped, Some("2026-11-08"), None),
                Some(Attention::Overdue {
                    since: d("2026-11-08"),
                }),
            ),
            (
                loan(Delivered, Some("2026-11-08"), Some("2026-11-20")),
                None,
            ),
            (loan(ReturnRequested, Some("2026-11-08"), None), None),
            (loan(Processing, None, None), None),
            (loan(InTransit, Some("2026-12-10"), None), None),
        ];
        for (s, want) in cases {
            assert_eq!(attention(&s, today, 3), want, "{s:?}");
        }
        assert_eq!(
            attention(&loan(InTransit, Some("2026-12-01"), None), today, 2),
            Some(Attention::Overdue {
                since: d("2026-12-01")
            })
        );
    }

    #[test]
    fn utc_date_is_the_calendar_day_in_utc() {
        let t: jiff::Timestamp = "2026-12-03T23:30:00Z".parse().unwrap();
        assert_eq!(utc_date(t), d("2026-12-03"));
    }
}

#[cfg(test)]
mod carrier_link_tests {
    use super::*;
    use crate::domain::LoanNumber;

    /// The shipped carrier links apply without any `[carriers]` config; a configured pattern
    /// wins; an unknown carrier gets no link.
    #[test]
    fn tracking_links_come_from_the_shipped_defaults_and_the_config() {
        let shipment = |carrier: &str, number: &str| Shipment {
            carrier: Some(carrier.into()),
            tracking_number: Some(number.into()),
            ..Shipment::minimal(LoanNumber::from_normalized("D20261002".into()), "P01")
        };
        let defaults = crate::config::carrier_links(&BTreeMap::new());
        let cases = [
            (
                "SF Express",
                "SF1402874471",
                Some("https://www.sf-express.com/chn/sc/waybill/waybill-detail/SF1402874471"),
            ),
            (
                "jd logistics",
                "JDX000486399531",
                Some("https://www.jdl.com/orderSearch/?waybillCodes=JDX000486399531"),
            ),
            (
                "ヤマト運輸",
                "4455 6677",
                Some("https://toi.kuronekoyamato.co.jp/cgi-bin/tneko?number01=4455%206677"),
            ),
            (
                "UPS",
                "1Z999AA10123456784",
                Some("https://www.ups.com/track?tracknum=1Z999AA10123456784"),
            ),
            ("Pigeon Post", "1", None),
        ];
        for (carrier, number, want) in cases {
            let view = loan_view(&shipment(carrier, number), &defaults);
            assert_eq!(view.tracking_url.as_deref(), want, "{carrier}");
        }
        let configured = crate::config::carrier_links(&BTreeMap::from([(
            "UPS".to_string(),
            "https://ups.example/t/{tracking_number}".to_string(),
        )]));
        let view = loan_view(&shipment("ups", "1Z"), &configured);
        assert_eq!(
            view.tracking_url.as_deref(),
            Some("https://ups.example/t/1Z")
        );
    }
}
