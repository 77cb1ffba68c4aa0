//! The evaluator: the rules' reading of a mail plus the store's facts about it, writing
//! nothing (the pipeline, `explain` and staff "reprocess" share it).

use std::sync::Arc;

use super::facts::{sender_domain, RoundFacts};
use super::{Evaluation, PipelineError};
use crate::classify::{self, Inspection, Lookup, Rules};
use crate::store::{Store, StoreError};

/// Inspects and decides, reading the store but writing nothing (also behind `explain`).
#[derive(Clone)]
pub struct Evaluator {
    store: Store,
    rules: Arc<Rules>,
}

impl Evaluator {
    pub fn new(store: Store, rules: Arc<Rules>) -> Evaluator {
        Evaluator { store, rules }
    }

    /// The partner the store has for the sender's domain in canonical form (see
    /// [`classify::authorise`], which decides whether the sender may speak for it). The one
    /// partner lookup, shared by the pipeline and staff actions.
    pub async fn partner_candidate(
        &self,
        inspection: &Inspection,
    ) -> Result<Option<crate::domain::Partner>, StoreError> {
        self.partner_candidate_in(inspection, &RoundFacts::default())
            .await
    }

    async fn partner_candidate_in(
        &self,
        inspection: &Inspection,
        facts: &RoundFacts,
    ) -> Result<Option<crate::domain::Partner>, StoreError> {
        match sender_domain(inspection) {
            Some(domain) => match facts.partner(&domain) {
                Some(known) => Ok(known.cloned()),
                None => self.store.partner_by_domain(&domain).await,
            },
            None => Ok(None),
        }
    }

    /// The rules this evaluator applies.
    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// `full_size` is the mail's size at the source (larger than `raw` when only the headers
    /// of an oversize mail were read).
    pub async fn evaluate(&self, raw: &[u8], full_size: u64) -> Result<Evaluation, PipelineError> {
        let inspection = classify::inspect_off_thread(&self.rules, raw, full_size).await;
        self.decide(inspection).await
    }

    /// The store's facts for an inspected mail, and the decision.
    pub async fn decide(&self, inspection: Inspection) -> Result<Evaluation, PipelineError> {
        self.decide_with_facts(inspection, &RoundFacts::default())
            .await
    }

    /// [`Evaluator::decide`], taking what `facts` knows from there instead of the store.
    pub async fn decide_with_facts(
        &self,
        inspection: Inspection,
        facts: &RoundFacts,
    ) -> Result<Evaluation, PipelineError> {
        let lookup = self.lookup(&inspection, facts).await?;
        let decision = classify::decide_with(&inspection, &lookup, &self.rules.sender_policy);
        Ok(Evaluation {
            inspection,
            decision,
            lookup,
        })
    }

    async fn lookup(
        &self,
        inspection: &Inspection,
        facts: &RoundFacts,
    ) -> Result<Lookup, StoreError> {
        let partner = self.partner_candidate_in(inspection, facts).await?;
        let shipments = match facts.shipments(&inspection.loan_numbers) {
            Some(known) => known,
            None => {
                self.store
                    .shipments_by_loan(&inspection.loan_numbers)
                    .await?
            }
        };
        let mut lookup = Lookup {
            partner,
            shipments,
            ..Lookup::default()
        };
        if inspection.automated.is_some() {
            return Ok(lookup);
        }
        if inspection.rma_language.is_some() {
            // Which requested loans have a usable label on file (decide() checks the rest).
            for n in &inspection.loan_numbers {
                let found = crate::store::rma::rma_label(
                    self.rules.rma_labels_dir.as_deref(),
                    n,
                    self.rules.rma_max_label_bytes,
                );
                if found.is_ok() {
                    lookup.rma_labels.push(n.clone());
                }
            }
        } else if inspection.request_language.is_some() && inspection.loan_numbers.is_empty() {
            if let Some(p) = &lookup.partner {
                let (loans, total) = self
                    .store
                    .active_loans(&p.partner_id, self.rules.max_listed)
                    .await?;
                lookup.active_loans = loans;
                lookup.active_total = total;
            }
        }
        Ok(lookup)
    }
}
