//! `reminders plan --date D`: every reminder whose 7-day window contains D and that has no row
//! yet (neither queued nor recorded as missed). Read-only.

use jiff::civil::Date;
use serde::Serialize;

use super::schedule::{self, Audience, Kind};
use crate::store::{ReminderCandidate, Store, StoreError};

/// One planned reminder, as printed by `reminders plan --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedReminder {
    pub trial_id: String,
    pub kind: Kind,
    pub audience: Audience,
    /// Sorted, without duplicates.
    pub recipients: Vec<String>,
    /// `YYYY-MM-DD`.
    pub due_on: Date,
}

/// The audiences of a candidate that still lack a row and have someone to write to, with their
/// sorted recipients. An audience without addresses is skipped: there is nobody to remind.
pub fn open_audiences(c: &ReminderCandidate) -> Vec<(Audience, Vec<String>)> {
    let mut out = Vec::with_capacity(2);
    for (audience, recorded, list) in [
        (
            Audience::CustomerAdmins,
            c.customer_recorded,
            &c.customer_admin_emails,
        ),
        (
            Audience::PartnerAdmins,
            c.partner_recorded,
            &c.partner_admin_emails,
        ),
    ] {
        if recorded {
            continue;
        }
        let mut recipients: Vec<String> = list
            .iter()
            .map(|a| a.trim().to_ascii_lowercase())
            .filter(|a| !a.is_empty())
            .collect();
        recipients.sort();
        recipients.dedup();
        if !recipients.is_empty() {
            out.push((audience, recipients));
        }
    }
    out
}

/// Reminders whose window contains `date` (taken as each trial's local date), sorted by
/// due date, trial, kind and audience. A few indexed range scans on the expiry date, one per
/// kind: `E ∈ [date − offset − 6, date − offset]`.
pub async fn plan(store: &Store, date: Date) -> Result<Vec<PlannedReminder>, StoreError> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let (lo, hi) = schedule::expiry_range(kind, date, date);
        for c in store
            .reminder_candidates(kind.code(), lo, hi, kind.needs_calling())
            .await?
        {
            debug_assert!(schedule::in_window(c.expires_on, kind, date));
            let due_on = schedule::due_on(c.expires_on, kind);
            for (audience, recipients) in open_audiences(&c) {
                out.push(PlannedReminder {
                    trial_id: c.trial_id.clone(),
                    kind,
                    audience,
                    recipients,
                    due_on,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        (a.due_on, &a.trial_id, a.kind, a.audience).cmp(&(
            b.due_on,
            &b.trial_id,
            b.kind,
            b.audience,
        ))
    });
    Ok(out)
}
