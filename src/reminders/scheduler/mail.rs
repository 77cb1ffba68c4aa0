//! One reminder's mail: render it in the audience's language, compose it, and queue it with
//! its reminder row in one transaction — or record why it cannot be sent. Separate from the
//! scheduling loop in `scheduler.rs`, which only decides which reminders are due.

use std::collections::HashMap;

use jiff::civil::Date;
use jiff::Timestamp;

use super::super::message::{self, ReminderContext};
use super::super::schedule::{self, Audience, Kind};
use super::{Scheduler, StepReport};
use crate::classify::Mailbox;
use crate::domain::{Partner, Trial};
use crate::outbound::compose::{Notice, OwnMailKind};
use crate::store::{
    NewOutbox, NewReminder, NewReview, ReminderCandidate, ReminderOutcome, StoreError,
};

impl Scheduler {
    /// Renders, composes and queues one reminder.
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(skip_all, fields(trial_id = %c.trial_id, kind = %kind, audience = %audience))]
    pub(super) async fn send(
        &self,
        c: &ReminderCandidate,
        trial: &Trial,
        kind: Kind,
        audience: Audience,
        recipients: Vec<String>,
        today: Date,
        partners: &mut HashMap<String, Option<Partner>>,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        // A re-import may have moved or converted the trial since it was planned.
        if trial.converted || trial.expires_on != c.expires_on {
            report.skipped += 1;
            return Ok(());
        }
        if !partners.contains_key(&trial.partner_id) {
            let p = self.store.partner(&trial.partner_id).await?;
            partners.insert(trial.partner_id.clone(), p);
        }
        let Some(Some(partner)) = partners.get(&trial.partner_id) else {
            report.skipped += 1;
            return Ok(());
        };
        let language = match audience {
            Audience::CustomerAdmins => trial.language,
            Audience::PartnerAdmins => partner.language,
        };
        let mut reminder = NewReminder {
            trial_id: trial.trial_id.clone(),
            kind: kind.code().into(),
            audience: audience.code().into(),
            expires_on: trial.expires_on,
            due_on: schedule::due_on(trial.expires_on, kind),
            recipients,
            language: language.code().into(),
        };
        let now = self.clock.now();
        let context = ReminderContext::new(
            kind,
            audience,
            trial,
            partner,
            today,
            &self.settings.purchase_url,
            &self.settings.signature,
        );
        match self.compose(audience, language, &context, &reminder.recipients, now) {
            Ok((mail, used)) => {
                reminder.language = used.code().into();
                match self
                    .store
                    .queue_reminder(&reminder, &mail, now.as_millisecond())
                    .await?
                {
                    ReminderOutcome::Recorded { reminder_id } => {
                        report.queued += 1;
                        report.queued_by_kind.add(kind);
                        self.metrics
                            .reminder(kind.code(), crate::counters::ReminderOutcome::Queued);
                        self.queued.notify_waiters();
                        tracing::info!(
                            reminder_id,
                            to = ?reminder.recipients,
                            expires_on = %trial.expires_on,
                            "reminder queued"
                        );
                    }
                    ReminderOutcome::Skipped => {
                        report.skipped += 1;
                        tracing::debug!("already recorded elsewhere");
                    }
                }
            }
            Err(problem) => {
                let review = NewReview {
                    reason: "reminder_failed".into(),
                    reasons: vec!["reminder_failed".into()],
                    detail: format!(
                        "reminder {kind} for trial {} to {audience} ({}) due on {}: {problem}",
                        trial.trial_id,
                        reminder.recipients.join(", "),
                        reminder.due_on
                    ),
                };
                match self
                    .store
                    .record_unsent_reminder(&reminder, "failed", &review, now.as_millisecond())
                    .await?
                {
                    ReminderOutcome::Recorded { reminder_id } => {
                        report.failed += 1;
                        self.metrics
                            .reminder(kind.code(), crate::counters::ReminderOutcome::Failed);
                        tracing::error!(reminder_id, error = %problem, "reminder cannot be sent; moved to the review queue");
                    }
                    ReminderOutcome::Skipped => report.skipped += 1,
                }
            }
        }
        Ok(())
    }

    /// The queued mail for one reminder, and the language actually used.
    fn compose(
        &self,
        audience: Audience,
        language: crate::domain::Language,
        context: &ReminderContext,
        recipients: &[String],
        now: Timestamp,
    ) -> Result<(NewOutbox, crate::domain::Language), String> {
        let rendered = message::render(&self.templates, audience, language, context)?;
        let to: Vec<Mailbox> = recipients
            .iter()
            .map(|a| Mailbox {
                name: None,
                address: a.clone(),
            })
            .collect();
        let composed = self
            .composer
            .compose_notice(&Notice {
                to: &to,
                subject: &rendered.subject,
                text: &rendered.text,
                html: &rendered.html,
                kind: OwnMailKind::Reminder,
                date: now,
            })
            .map_err(|e| format!("reminder could not be composed: {e}"))?;
        Ok((
            NewOutbox {
                purpose: "reminder".into(),
                message_id: composed.message_id,
                envelope_from: self.composer.from_address(),
                recipients: recipients.to_vec(),
                rate_key: recipients.first().cloned().unwrap_or_default(),
                subject: rendered.subject,
                body: composed.bytes,
            },
            rendered.language,
        ))
    }
}
