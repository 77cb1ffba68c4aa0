//! The decision table (STUB: to be implemented).
use super::{Action, Decision, Inspection, Kind, Lookup};
use crate::domain::Language;

pub fn decide(inspection: &Inspection, lookup: &Lookup) -> Decision {
    let kind = if inspection.automated.is_some() {
        Kind::Automated
    } else if inspection.request_language.is_some() {
        Kind::TrackingRequest
    } else {
        Kind::Other
    };
    Decision {
        kind,
        action: if kind == Kind::Automated {
            Action::Ignore
        } else {
            Action::Review
        },
        language: inspection.request_language.unwrap_or(Language::En),
        partner_id: lookup.partner.as_ref().map(|p| p.partner_id.clone()),
        reasons: vec![],
        review: vec![],
        loans: vec![],
        reply_to: inspection.from.clone(),
    }
}
