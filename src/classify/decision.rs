//! The decision table: inspection + store facts → kind, action, answers.
//!
//! | situation                                   | kind             | action             |
//! |---------------------------------------------|------------------|--------------------|
//! | machine-generated (wins over everything)    | automated        | ignore             |
//! | over `max_message_bytes`                    | (by subject)     | review `oversize`  |
//! | MIME deeper than `max_mime_depth`           | (by subject)     | review `mime_too_deep` |
//! | more parts than `max_mime_parts`            | (by subject)     | review `too_many_parts` |
//! | more than 1000 top-level header fields      | (by subject)     | review `too_many_headers` |
//! | sender domain belongs to no partner         | (by subject)     | review             |
//! | two From fields / several From addresses    | (by subject)     | review `sender:ambiguous` |
//! | trusted `dmarc=fail`                        | (by subject)     | review             |
//! | no trusted `dmarc=pass` with `require_dmarc_pass` | (by subject) | review `dmarc_not_pass` |
//! | subject is no tracking request              | other            | review             |
//! | more numbers than `max_loan_numbers`        | (by subject)     | review             |
//! | tracking request from the partner's domain  | tracking_request | reply              |
//! | RMA label request, every loan its partner's,   | rma_label_request | reply (labels    |
//! |   `return_requested`, label on file         |                  |   attached)        |
//! | RMA label request, anything else            | rma_label_request | review `rma_label_missing` |
//!
//! A mail naming an RMA label phrase (`[rma] aliases`) in its subject or fresh text is an RMA
//! label request even under a tracking subject (our tracking answers tell partners to reply
//! with "RMA label" and the loan number).
//!
//! A loan owned by another partner is answered as "not found" (the sender cannot tell it
//! from an unknown number) and flagged for staff, but the reply still goes out.
//!
//! Who the sender is and which partner they speak for is [`super::authorise::authorise`]'s
//! call (shared with staff actions).

use super::authorise::{authorise, AuthVerdict, SenderIdentity, SenderPolicy};
use super::sender::reply_target;
use super::{Action, Decision, Inspection, Kind, LoanAnswer, Lookup, ReviewReason};
use crate::domain::{Language, Partner, ShipmentStatus};

pub fn decide(inspection: &Inspection, lookup: &Lookup, policy: &SenderPolicy) -> Decision {
    let kind = if inspection.automated.is_some() {
        Kind::Automated
    } else if inspection.rma_language.is_some() {
        Kind::RmaLabelRequest
    } else if inspection.request_language.is_some() {
        Kind::TrackingRequest
    } else {
        Kind::Other
    };
    let auth = authorise(
        SenderIdentity {
            from: inspection.from.as_ref(),
            ambiguous: inspection.sender_ambiguous,
        },
        lookup.partner.as_ref(),
        AuthVerdict {
            dmarc: inspection.dmarc.as_deref(),
        },
        policy,
    );
    let partner: Option<&Partner> = auth.partner;
    let language = inspection
        .rma_language
        .filter(|_| kind == Kind::RmaLabelRequest)
        .or(inspection.request_language)
        .or(partner.map(|p| p.language))
        .unwrap_or(Language::En);

    let mut reasons: Vec<String> = inspection
        .findings
        .iter()
        .filter(|f| f.starts_with("automated:"))
        .cloned()
        .collect();
    reasons.push(match inspection.request_language {
        Some(l) => format!("subject:alias:{l}"),
        None if inspection.subject.trim().is_empty() => "subject:empty".to_string(),
        None => "subject:not_tracking".to_string(),
    });
    reasons.extend(auth.reasons.iter().cloned());
    reasons.extend(
        inspection
            .findings
            .iter()
            .filter(|f| !f.starts_with("automated:"))
            .cloned(),
    );

    if kind == Kind::Automated {
        return Decision {
            kind,
            action: Action::Ignore,
            language,
            partner_id: partner.map(|p| p.partner_id.clone()),
            reasons,
            review: Vec::new(),
            loans: Vec::new(),
            reply_to: None,
            listed: Vec::new(),
            listed_more: 0,
        };
    }

    let mut review = Vec::new();
    if inspection.oversize {
        review.push(ReviewReason::Oversize);
    }
    if inspection.mime_too_deep {
        review.push(ReviewReason::MimeTooDeep);
    }
    if inspection.too_many_parts {
        review.push(ReviewReason::TooManyParts);
    }
    if inspection.too_many_headers {
        review.push(ReviewReason::TooManyHeaders);
    }
    review.extend(auth.review.iter().copied());
    if inspection.dmarc_fail && !review.contains(&ReviewReason::DmarcFail) {
        review.push(ReviewReason::DmarcFail);
    }
    if kind == Kind::Other {
        review.push(ReviewReason::OtherSubject);
    }
    if inspection.loan_numbers_truncated {
        review.push(ReviewReason::TooManyNumbers);
    }

    let mut loans = Vec::with_capacity(inspection.loan_numbers.len());
    for n in &inspection.loan_numbers {
        let shipment = lookup.shipments.iter().find(|s| &s.loan_number == n);
        let (visible, status) = match (partner, shipment) {
            (Some(p), Some(s)) if s.partner_id == p.partner_id => (Some(s.clone()), "found"),
            (Some(_), Some(_)) => {
                if !review.contains(&ReviewReason::LoanOfOtherPartner) {
                    review.push(ReviewReason::LoanOfOtherPartner);
                }
                (None, "other_partner")
            }
            (None, Some(_)) => (None, "exists"),
            (_, None) => (None, "not_found"),
        };
        reasons.push(format!("loan:{n}:{status}"));
        if kind == Kind::RmaLabelRequest {
            let problem = match visible.as_ref() {
                None => Some("not_found"),
                Some(s) if s.status != ShipmentStatus::ReturnRequested => {
                    Some("not_return_requested")
                }
                Some(_) if !lookup.rma_labels.contains(n) => Some("no_label"),
                Some(_) => None,
            };
            match problem {
                Some(p) => {
                    reasons.push(format!("rma:{n}:{p}"));
                    if !review.contains(&ReviewReason::RmaLabelMissing) {
                        review.push(ReviewReason::RmaLabelMissing);
                    }
                }
                None => reasons.push(format!("rma:{n}:label")),
            }
        }
        loans.push(LoanAnswer {
            loan_number: n.clone(),
            shipment: visible,
        });
    }

    if kind == Kind::RmaLabelRequest
        && inspection.loan_numbers.is_empty()
        && !review.contains(&ReviewReason::RmaLabelMissing)
    {
        reasons.push("rma:no_numbers".to_string());
        review.push(ReviewReason::RmaLabelMissing);
    }
    let action = if review
        .iter()
        .any(|r| *r != ReviewReason::LoanOfOtherPartner)
    {
        Action::Review
    } else {
        Action::Reply
    };

    // No number from an authorised sender: answer from its identity (its active loans).
    let (listed, listed_more) = match partner {
        Some(p)
            if kind == Kind::TrackingRequest
                && inspection.loan_numbers.is_empty()
                && action == Action::Reply =>
        {
            let listed: Vec<_> = lookup
                .active_loans
                .iter()
                .filter(|s| s.partner_id == p.partner_id && s.status != ShipmentStatus::Returned)
                .cloned()
                .collect();
            let more = (lookup.active_total - listed.len() as i64).max(0);
            if !listed.is_empty() {
                reasons.push(format!("listed:active:{}", listed.len()));
            }
            (listed, more)
        }
        _ => (Vec::new(), 0),
    };

    let reply_to = reply_target(inspection.from.as_ref(), &inspection.reply_to, partner);
    if !inspection.reply_to.is_empty() {
        let used = reply_to.as_ref() != inspection.from.as_ref();
        reasons.push(if used {
            "reply_to:partner_domain".to_string()
        } else {
            "reply_to:ignored_outside_partner".to_string()
        });
    }

    Decision {
        kind,
        action,
        language,
        partner_id: partner.map(|p| p.partner_id.clone()),
        reasons,
        review,
        loans,
        reply_to,
        listed,
        listed_more,
    }
}

#[cfg(test)]
mod tests;
