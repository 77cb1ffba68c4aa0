//! What the store knows about a round's mails, read once for the whole round.
//!
//! Deciding a mail reads the store four times (is it recorded already, the sender's partner,
//! the shipments of its loans, the replies its sender got lately). Each statement is a round
//! trip to the database connection's thread, and on SQLite that hand-off costs more CPU than
//! the query. A round reads each kind once for all its mails; a mail then finds its facts here
//! and goes to the store only for what was not read (a reused Message-ID's second key, an
//! address seen only after the decision).
//!
//! Stale facts are never used: the round's group commit tells the facts what it recorded
//! ([`RoundFacts::committed`]), and nothing else in the pipeline writes what is read here.

use std::collections::{HashMap, HashSet};

use crate::classify::Inspection;
use crate::domain::{LoanNumber, Partner, Shipment};
use crate::store::{RecordedMail, Store, StoreError};

/// A round's facts; an empty one (the default) answers nothing, so every lookup goes to the
/// store.
#[derive(Default)]
pub struct RoundFacts {
    /// Message keys read; the value is the recorded mail, where there is one.
    recorded: HashMap<String, Option<RecordedMail>>,
    /// Canonical sender domains read; the value is their partner, where there is one.
    partners: HashMap<String, Option<Partner>>,
    /// Loan numbers read; the value is the shipment, where there is one.
    shipments: HashMap<String, Option<Shipment>>,
    /// Addresses whose reply times were read, and the times since `replies_since`.
    reply_times: HashMap<String, Vec<i64>>,
    replies_since: i64,
}

impl RoundFacts {
    /// Reads the facts for `inspections` (four queries or fewer, whatever the round's size).
    /// `replies_since` is the start of the rate limit's widest window.
    pub async fn read(
        store: &Store,
        inspections: &[&Inspection],
        replies_since: i64,
    ) -> Result<RoundFacts, StoreError> {
        let keys: HashSet<&str> = inspections.iter().map(|i| i.message_key.as_str()).collect();
        let domains: HashSet<String> = inspections
            .iter()
            .filter_map(|i| sender_domain(i))
            .collect();
        let loans: HashSet<&LoanNumber> =
            inspections.iter().flat_map(|i| &i.loan_numbers).collect();
        // A reply goes to the sender or to the first Reply-To address (`reply_target`); a
        // hostile mail's thousand Reply-To addresses are not read.
        let addresses: HashSet<&str> = inspections
            .iter()
            .flat_map(|i| i.from.iter().chain(i.reply_to.first()))
            .map(|m| m.address.as_str())
            .collect();

        let keys: Vec<&str> = keys.into_iter().collect();
        let mut found = store.inbound_by_keys(&keys).await?;
        let recorded = keys
            .iter()
            .map(|k| (k.to_string(), found.remove(*k)))
            .collect();
        let domain_list: Vec<&str> = domains.iter().map(String::as_str).collect();
        let mut found = store.partners_by_domains(&domain_list).await?;
        let partners = domains
            .into_iter()
            .map(|d| {
                let partner = found.remove(&d);
                (d, partner)
            })
            .collect();
        let loan_list: Vec<LoanNumber> = loans.into_iter().cloned().collect();
        let mut found: HashMap<String, Shipment> = store
            .shipments_by_loan(&loan_list)
            .await?
            .into_iter()
            .map(|s| (s.loan_number.as_str().to_string(), s))
            .collect();
        let shipments = loan_list
            .iter()
            .map(|l| (l.as_str().to_string(), found.remove(l.as_str())))
            .collect();
        let address_list: Vec<&str> = addresses.into_iter().collect();
        let mut found = store
            .recent_reply_times_of(&address_list, replies_since)
            .await?;
        let reply_times = address_list
            .iter()
            .map(|a| (a.to_string(), found.remove(*a).unwrap_or_default()))
            .collect();
        Ok(RoundFacts {
            recorded,
            partners,
            shipments,
            reply_times,
            replies_since,
        })
    }

    /// The recorded mail under `message_key`: `None` when this key was not read.
    pub fn recorded(&self, message_key: &str) -> Option<Option<&RecordedMail>> {
        self.recorded.get(message_key).map(Option::as_ref)
    }

    /// The partner of `domain` (canonical form): `None` when this domain was not read.
    pub fn partner(&self, domain: &str) -> Option<Option<&Partner>> {
        self.partners.get(domain).map(Option::as_ref)
    }

    /// The shipments of `loans`, in their order: `None` when one of them was not read.
    pub fn shipments(&self, loans: &[LoanNumber]) -> Option<Vec<Shipment>> {
        let mut out = Vec::with_capacity(loans.len());
        let mut seen = HashSet::new();
        for loan in loans {
            let found = self.shipments.get(loan.as_str())?;
            if let Some(s) = found {
                if seen.insert(loan.as_str()) {
                    out.push(s.clone());
                }
            }
        }
        Some(out)
    }

    /// The times replies went to `address` since `since`: `None` when this address was not
    /// read, or was read for a shorter window.
    pub fn reply_times(&self, address: &str, since: i64) -> Option<Vec<i64>> {
        if since < self.replies_since {
            return None;
        }
        self.reply_times
            .get(address)
            .map(|times| times.iter().copied().filter(|t| *t >= since).collect())
    }

    /// A group was recorded: its mails are known now, and its replies count from here on.
    /// `keys` are the message keys it recorded, `replies` the (address, time) of each reply.
    pub fn committed<'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a str>,
        replies: impl IntoIterator<Item = (&'a str, i64)>,
    ) {
        for key in keys {
            // Forgotten rather than filled in: the next mail under this key asks the store.
            self.recorded.remove(key);
        }
        for (address, at) in replies {
            if let Some(times) = self.reply_times.get_mut(address) {
                times.push(at);
            }
        }
    }
}

/// The canonical domain of the sender, the key the partner is found by.
pub fn sender_domain(inspection: &Inspection) -> Option<String> {
    inspection
        .from
        .as_ref()
        .and_then(|f| crate::classify::address_domain(&f.address))
        .and_then(crate::classify::authorise::canonical_domain)
}

#[cfg(test)]
mod tests;
