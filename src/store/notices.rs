//! Proactive shipment notices: decided and queued inside the shipment upsert's transaction.
//!
//! The store only keeps the facts (which loan changed to which status, the unique
//! `(loan_number, status)` key of `shipment_notices`, the outbox row); what a notice says is
//! the [`ShipmentNotifier`]'s business (templates and composing live in `notify`).

use std::collections::BTreeMap;

use crate::domain::{Partner, Shipment, ShipmentStatus};

use super::NewOutbox;

/// One loan of a notice.
#[derive(Debug, Clone)]
pub struct NoticeLoan {
    pub shipment: Shipment,
    /// The status before the change; `None` for a loan new to trialdesk.
    pub previous: Option<ShipmentStatus>,
    /// Message-IDs of the earlier notices about this loan, oldest first (its thread).
    pub thread: Vec<String>,
}

/// Composes the notices the upsert decided on. Pure (no I/O): it runs inside the transaction.
pub trait ShipmentNotifier: Send + Sync + std::fmt::Debug {
    /// The statuses a change to which is announced.
    fn statuses(&self) -> &[ShipmentStatus];
    /// One mail to the partner's admins listing `loans` (all of one partner, in file order).
    /// Err describes why it cannot be composed; the upsert then fails and writes nothing.
    fn compose(
        &self,
        partner: &Partner,
        loans: &[NoticeLoan],
        now_ms: i64,
    ) -> Result<NewOutbox, String>;
}

/// A changed loan and its status before the change (`None`: new to trialdesk).
pub(super) type Change<'a> = (&'a Shipment, Option<ShipmentStatus>);

/// The changes of one upsert worth announcing: loans whose status is new or changed to one of
/// `statuses`, grouped by partner (partners and loans in input order).
pub(super) fn announced_changes<'a>(
    shipments: &'a [Shipment],
    before: &BTreeMap<String, ShipmentStatus>,
    statuses: &[ShipmentStatus],
) -> Vec<(&'a str, Vec<Change<'a>>)> {
    let mut out: Vec<(&str, Vec<Change<'_>>)> = Vec::new();
    for s in shipments {
        let previous = before.get(s.loan_number.as_str()).copied();
        if previous == Some(s.status) || !statuses.contains(&s.status) {
            continue;
        }
        match out.iter_mut().find(|(p, _)| *p == s.partner_id) {
            Some((_, loans)) => loans.push((s, previous)),
            None => out.push((s.partner_id.as_str(), vec![(s, previous)])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LoanNumber;

    fn ship(n: &str, p: &str, status: ShipmentStatus) -> Shipment {
        Shipment {
            status,
            ..Shipment::minimal(LoanNumber::from_normalized(n.into()), p)
        }
    }

    #[test]
    fn only_new_or_changed_listed_statuses_are_announced() {
        use ShipmentStatus::*;
        let rows = vec![
            ship("D1", "P1", Shipped),   // changed in_transit -> shipped: yes
            ship("D2", "P1", Shipped),   // unchanged: no
            ship("D3", "P2", Delivered), // new loan: yes
            ship("D4", "P1", InTransit), // not a listed status: no
            ship("D5", "P1", Exception), // changed: yes, same partner as D1
        ];
        let before = BTreeMap::from([
            ("D1".to_string(), InTransit),
            ("D2".to_string(), Shipped),
            ("D4".to_string(), Shipped),
            ("D5".to_string(), Shipped),
        ]);
        let got = announced_changes(&rows, &before, &[Shipped, Delivered, Exception]);
        type Shown<'a> = Vec<(&'a str, Vec<(&'a str, Option<ShipmentStatus>)>)>;
        let shown: Shown<'_> = got
            .iter()
            .map(|(p, l)| {
                (
                    *p,
                    l.iter()
                        .map(|(s, prev)| (s.loan_number.as_str(), *prev))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                ("P1", vec![("D1", Some(InTransit)), ("D5", Some(Shipped))]),
                ("P2", vec![("D3", None)]),
            ]
        );
        assert!(announced_changes(&rows, &before, &[]).is_empty());
    }
}
