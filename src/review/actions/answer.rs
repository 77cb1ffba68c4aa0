//! Answering an item's mail: the tracking template or free text, previewed and then queued
//! as a staff reply that closes the item. Also what the answer is based on (the stored mail
//! read again, its partner and reply address) and the parsing of loan numbers staff type.

use crate::classify::loan_numbers::LoanExtractor;
use crate::classify::{self, Decision, Inspection, LoanAnswer, Lookup, Mailbox};
use crate::domain::{LoanNumber, Partner};
use crate::outbound::compose::{is_sane_message_id, Draft, OwnMailKind};
use crate::pipeline::reply::StaffTextContext;
use crate::store::{InboundRecord, NewAudit, NewOutbox, ReviewItem};

use super::{ActionError, Actions, Actor, PreparedReply, MAX_TEXT_CHARS};

/// Lines of the original mail quoted under a free-text answer.
const MAX_QUOTED_LINES: usize = 200;

/// What replying to a stored mail is based on.
struct Basis {
    record: InboundRecord,
    inspection: Inspection,
    to: Mailbox,
    partner: Option<Partner>,
    /// The rules' decision on the mail with its partner (no loans looked up): its language
    /// and reply address, and the start of a template answer.
    decision: Decision,
}

impl Actions {
    /// The stored mail an item is about, read again, with whom a reply goes to.
    async fn basis(&self, item: &ReviewItem) -> Result<Basis, ActionError> {
        let inbound_id = item.inbound_id.ok_or_else(|| {
            ActionError::NotApplicable(format!(
                "review item {} is not about a received mail: nothing to answer",
                item.id
            ))
        })?;
        let record = self.store.inbound(inbound_id).await?.ok_or_else(|| {
            ActionError::Conflict(format!("inbound mail {inbound_id} does not exist"))
        })?;
        let raw = self.store.inbound_raw(inbound_id).await?;
        let mut inspection = match &raw {
            Some(raw) => classify::inspect_off_thread(&self.rules, raw, raw.len() as u64).await,
            None => classify::inspect(&self.rules, b""),
        };
        // What was stored is what staff saw: it fills what a re-read cannot give (an
        // oversize mail is not kept). The stored sender passes the same check as a parsed
        // one: an unprocessable mail's is the raw header text.
        if inspection.from.is_none() {
            inspection.from =
                classify::mime::mailbox(record.sender_name.as_deref(), record.sender.as_deref());
        }
        if inspection.message_id.is_none() {
            inspection.message_id = record.message_id.clone();
        }
        if inspection.subject.is_empty() {
            inspection.subject = record.subject.clone();
        }
        if inspection.text.is_empty() {
            inspection.text = record.body_text.clone();
        }
        // The pipeline's partner lookup and sender authorisation: staff answer for the
        // partner the rules would (a staff answer overrides the review reasons, not who the
        // sender is).
        let candidate = self
            .pipeline
            .evaluator()
            .partner_candidate(&inspection)
            .await?;
        let decision = classify::decide_with(
            &inspection,
            &Lookup {
                partner: candidate.clone(),
                shipments: Vec::new(),
                ..Lookup::default()
            },
            &self.rules.sender_policy,
        );
        let partner = candidate.filter(|p| decision.partner_id.as_deref() == Some(&p.partner_id));
        let to = decision
            .reply_to
            .clone()
            .or_else(|| inspection.from.clone())
            .ok_or_else(|| {
                ActionError::NotApplicable("the mail has no sender address to answer".into())
            })?;
        Ok(Basis {
            record,
            inspection,
            to,
            partner,
            decision,
        })
    }

    fn compose(
        &self,
        basis: &Basis,
        text: &str,
        html: &str,
    ) -> Result<(NewOutbox, String), ActionError> {
        let subject = classify::subject::reply_subject(&basis.inspection.subject);
        let in_reply_to = basis
            .inspection
            .message_id
            .as_deref()
            .filter(|id| is_sane_message_id(id));
        let composed = self
            .composer
            .compose(&Draft {
                to: &basis.to,
                subject: &subject,
                text,
                html,
                in_reply_to,
                references: &basis.inspection.references,
                kind: OwnMailKind::StaffReply,
                date: self.clock.now(),
            })
            .map_err(|e| ActionError::Invalid(format!("the reply cannot be composed: {e}")))?;
        Ok((
            NewOutbox {
                purpose: "staff_reply".into(),
                message_id: composed.message_id,
                envelope_from: self.composer.from_address(),
                recipients: vec![basis.to.address.clone()],
                rate_key: basis.to.address.to_lowercase(),
                subject: subject.clone(),
                body: composed.bytes,
            },
            subject,
        ))
    }

    /// The tracking template for the chosen numbers, rendered for the item's sender. Only
    /// loans of the sender's partner are shown as found, as in automatic replies.
    pub async fn prepare_template_answer(
        &self,
        item_id: i64,
        loans: &[String],
    ) -> Result<PreparedReply, ActionError> {
        self.prepare_template_answer_with(item_id, loans, "").await
    }

    /// [`Actions::prepare_template_answer`] with the staff member's own words (`intro`,
    /// may be empty) above the status.
    pub async fn prepare_template_answer_with(
        &self,
        item_id: i64,
        loans: &[String],
        intro: &str,
    ) -> Result<PreparedReply, ActionError> {
        if intro.chars().count() > MAX_TEXT_CHARS {
            return Err(ActionError::Invalid(format!(
                "the answer is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        let item = self.item(item_id).await?;
        let numbers = parse_loans(&self.rules.loans, loans, self.max_loan_numbers)?;
        let basis = self.basis(&item).await?;
        let partner = basis.partner.as_ref().ok_or_else(|| {
            ActionError::NotApplicable(
                "the sender's domain belongs to no partner, so the tracking template cannot \
                 show any loan: answer with free text (or import the domain and reprocess)"
                    .into(),
            )
        })?;
        let shipments = self.store.shipments_by_loan(&numbers).await?;
        let mut decision = basis.decision.clone();
        decision.loans = numbers
            .iter()
            .map(|n| LoanAnswer {
                loan_number: n.clone(),
                shipment: shipments
                    .iter()
                    .find(|s| &s.loan_number == n && s.partner_id == partner.partner_id)
                    .cloned(),
            })
            .collect();
        let rendered = self
            .pipeline
            .replies()
            .render_staff(
                &basis.inspection,
                &decision,
                partner,
                &[basis.decision.language, partner.language],
                crate::pipeline::reply::utc_date(self.clock.now()),
                &intro.replace("\r\n", "\n"),
            )
            .map_err(|e| ActionError::Invalid(format!("the template cannot be rendered: {e}")))?;
        let (outbox, subject) = self.compose(&basis, &rendered.text, &rendered.html)?;
        Ok(PreparedReply {
            to: basis.to.address.clone(),
            subject,
            text: rendered.text,
            loan_numbers: numbers.iter().map(|n| n.to_string()).collect(),
            outbox,
        })
    }

    /// Answers with the tracking template for `loans`, and closes the item.
    pub async fn answer_template(
        &self,
        item_id: i64,
        loans: &[String],
        actor: &Actor,
    ) -> Result<i64, ActionError> {
        self.answer_template_with(item_id, loans, "", actor).await
    }

    /// [`Actions::answer_template`] with the staff member's own words above the status.
    pub async fn answer_template_with(
        &self,
        item_id: i64,
        loans: &[String],
        intro: &str,
        actor: &Actor,
    ) -> Result<i64, ActionError> {
        let item = self.item(item_id).await?;
        Self::open_item(&item)?;
        let prepared = self
            .prepare_template_answer_with(item_id, loans, intro)
            .await?;
        let note = format!(
            "answered with the tracking template for {}",
            prepared.loan_numbers.join(", ")
        );
        self.queue_answer(&item, prepared, actor, "answer_template", &note)
            .await
    }

    /// Free text, rendered as the reply (signature added, the original quoted below).
    pub async fn prepare_text_answer(
        &self,
        item_id: i64,
        text: &str,
    ) -> Result<PreparedReply, ActionError> {
        let item = self.item(item_id).await?;
        let text = text.replace("\r\n", "\n");
        let text = text.trim();
        if text.is_empty() {
            return Err(ActionError::Invalid("the answer is empty".into()));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(ActionError::Invalid(format!(
                "the answer is longer than {MAX_TEXT_CHARS} characters"
            )));
        }
        let basis = self.basis(&item).await?;
        let raw = self.store.inbound_raw(basis.record.id).await?;
        let context = StaffTextContext {
            paragraphs: crate::pipeline::reply::paragraphs(text),
            signature: self.pipeline.replies().signature().to_string(),
            when: raw
                .as_deref()
                .and_then(original_date)
                .unwrap_or_else(|| utc_minutes(basis.record.received_at)),
            who: basis
                .inspection
                .from
                .as_ref()
                .map(|f| match f.name.as_deref().map(str::trim) {
                    Some(n) if !n.is_empty() => n.to_string(),
                    _ => f.address.clone(),
                })
                .or_else(|| basis.record.sender.clone())
                .unwrap_or_default(),
            quoted: basis
                .inspection
                .text
                .lines()
                .take(MAX_QUOTED_LINES)
                .map(str::to_string)
                .collect(),
        };
        // The thread's language (the rules' pick for the mail, then its partner's).
        let mut languages = vec![basis.decision.language];
        if let Some(p) = &basis.partner {
            languages.push(p.language);
        }
        let rendered = self
            .pipeline
            .replies()
            .render_staff_text(&context, &languages)
            .map_err(|e| ActionError::Invalid(format!("the answer cannot be rendered: {e}")))?;
        let (plain, html) = (rendered.text, rendered.html);
        let (outbox, subject) = self.compose(&basis, &plain, &html)?;
        Ok(PreparedReply {
            to: basis.to.address.clone(),
            subject,
            text: plain,
            loan_numbers: Vec::new(),
            outbox,
        })
    }

    /// Answers with free text, and closes the item.
    pub async fn answer_text(
        &self,
        item_id: i64,
        text: &str,
        actor: &Actor,
    ) -> Result<i64, ActionError> {
        let item = self.item(item_id).await?;
        Self::open_item(&item)?;
        let prepared = self.prepare_text_answer(item_id, text).await?;
        let note = "answered with free text".to_string();
        self.queue_answer(&item, prepared, actor, "answer_text", &note)
            .await
    }

    async fn queue_answer(
        &self,
        item: &ReviewItem,
        prepared: PreparedReply,
        actor: &Actor,
        action: &'static str,
        note: &str,
    ) -> Result<i64, ActionError> {
        let inbound_id = item.inbound_id.unwrap_or_default();
        let audit = NewAudit {
            actor: actor.name.clone(),
            via: actor.via,
            action,
            review_id: Some(item.id),
            inbound_id: Some(inbound_id),
            outbox_id: None,
            detail: format!("{note}, to {}", prepared.to),
        };
        let outbox_id = self
            .store
            .answer_item(
                item.id,
                inbound_id,
                &prepared.outbox,
                &prepared.loan_numbers,
                actor.closing(note, &audit),
                self.now_ms(),
            )
            .await?;
        self.queued.notify_waiters();
        tracing::info!(review_id = item.id, outbox_id, actor = %actor.name, action, "answer queued");
        Ok(outbox_id)
    }
}

/// Loan numbers typed by staff (one per entry, or several separated by spaces, commas or
/// semicolons), folded as mail text is, checked against `classify.loan_number_pattern` and
/// de-duplicated in order.
fn parse_loans(
    loans: &LoanExtractor,
    input: &[String],
    max: usize,
) -> Result<Vec<LoanNumber>, ActionError> {
    let mut out: Vec<LoanNumber> = Vec::new();
    let mut bad = Vec::new();
    for token in input
        .iter()
        .flat_map(|s| {
            s.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '、' | '，' | '；'))
        })
        .filter(|t| !t.is_empty())
    {
        match loans.parse_one(token) {
            Some(n) if !out.contains(&n) => out.push(n),
            Some(_) => {}
            None => bad.push(token.to_string()),
        }
    }
    if !bad.is_empty() {
        return Err(ActionError::Invalid(format!(
            "not a loan number: {} (expected a match of classify.loan_number_pattern {:?})",
            bad.join(", "),
            loans.pattern()
        )));
    }
    if out.is_empty() {
        return Err(ActionError::Invalid(
            "choose at least one loan number".into(),
        ));
    }
    if out.len() > max {
        return Err(ActionError::Invalid(format!(
            "at most {max} loan numbers per answer"
        )));
    }
    Ok(out)
}

/// The original mail's `Date` header as its sender wrote it (`2026-12-04 13:30 +08:00`):
/// the quote line says when the sender wrote, in their own time.
fn original_date(raw: &[u8]) -> Option<String> {
    let msg = mail_parser::MessageParser::default().parse_headers(raw)?;
    let d = msg.date()?;
    if !d.is_valid() {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02} {}{:02}:{:02}",
        d.year,
        d.month,
        d.day,
        d.hour,
        d.minute,
        if d.tz_before_gmt { '-' } else { '+' },
        d.tz_hour,
        d.tz_minute
    ))
}

/// `ms` as `2026-12-04 05:30 UTC` (when a mail has no usable Date header).
fn utc_minutes(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loan_input_is_split_normalised_and_checked() {
        let ex = LoanExtractor::new(r"D[0-9]{6,10}", 50).unwrap();
        let got = parse_loans(
            &ex,
            &["d1234567, D7654321；".into(), "Ｄ１２３４５６７".into()],
            50,
        )
        .unwrap();
        let got: Vec<String> = got.iter().map(|n| n.to_string()).collect();
        assert_eq!(got, vec!["D1234567", "D7654321"]);
        assert!(parse_loans(&ex, &["".into()], 50).is_err());
        assert!(parse_loans(&ex, &["X1".into()], 50).is_err());
        assert!(parse_loans(&ex, &["D1 D2 D3".into()], 2).is_err());
        assert!(parse_loans(&ex, &["D1111111 D2222222 D3333333".into()], 2).is_err());
        assert!(parse_loans(&ex, &["D1111111 D2222222".into()], 2).is_ok());
        let err = parse_loans(&ex, &["D123".into()], 50)
            .unwrap_err()
            .to_string();
        assert!(err.contains("classify.loan_number_pattern"), "{err}");
    }

    #[test]
    fn loan_input_follows_the_configured_pattern() {
        let ex = LoanExtractor::new(r"L[0-9]{8}", 50).unwrap();
        let got = parse_loans(&ex, &["l12345678".into()], 50).unwrap();
        assert_eq!(got[0].as_str(), "L12345678");
        assert!(parse_loans(&ex, &["D1234567".into()], 50).is_err());
    }

    #[test]
    fn the_quote_line_uses_the_original_date_in_its_own_offset() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "Date: Fri, 4 Dec 2026 13:30:05 +0800\r\n\r\nx",
                Some("2026-12-04 13:30 +08:00"),
            ),
            (
                "Date: Thu, 3 Dec 2026 22:05:00 -0500\r\n\r\nx",
                Some("2026-12-03 22:05 -05:00"),
            ),
            ("Date: yesterday\r\n\r\nx", None),
            ("Subject: none\r\n\r\nx", None),
        ];
        for (raw, want) in cases {
            assert_eq!(original_date(raw.as_bytes()).as_deref(), *want, "{raw:?}");
        }
        assert_eq!(utc_minutes(1_796_362_200_000), "2026-12-04 05:30 UTC");
    }
}
