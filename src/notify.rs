//! Proactive shipment notices: what a partner that opted in (`notify_shipment_updates`) is
//! told when its loans change to a `[notify] shipment_statuses` status.
//!
//! The store decides *whether* (inside the shipment upsert's transaction, once per (loan,
//! status) by a unique key, one mail per partner per upsert) and calls [`ShipmentNotices`] to
//! compose *what*: the `shipment_notice.<lang>` templates in the partner's language, to all
//! its `admin_emails`, `Auto-Submitted: auto-generated`, threaded per loan (`In-Reply-To` /
//! `References` name the earlier notices about the same loans). Outbox purpose
//! `shipment_notice`, so they show in the history and the sender delivers them like any mail.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::classify::Mailbox;
use crate::config::Config;
use crate::domain::{Language, Partner, ShipmentStatus};
use crate::outbound::compose::{Notice, OwnMailKind};
use crate::outbound::{Composer, Templates};
use crate::pipeline::reply::{loan_view, LoanView};
use crate::store::{NewOutbox, NoticeLoan, ShipmentNotifier};

/// Outbox purpose (and history kind) of shipment notices.
pub const PURPOSE: &str = "shipment_notice";

/// Templates shared with the rest of the app, loaded at first use.
pub type TemplateSlot = Arc<Mutex<Option<Arc<Templates>>>>;

/// Composes shipment notices (the store's [`ShipmentNotifier`]).
pub struct ShipmentNotices {
    statuses: Vec<ShipmentStatus>,
    composer: Result<Composer, String>,
    templates: TemplateSlot,
    templates_dir: PathBuf,
    carriers: BTreeMap<String, String>,
    signature: String,
}

impl std::fmt::Debug for ShipmentNotices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShipmentNotices")
            .field("statuses", &self.statuses)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize)]
struct NoticeContext {
    partner_name: String,
    loans: Vec<NoticeLoanView>,
    signature: String,
}

#[derive(Debug, Clone, Serialize)]
struct NoticeLoanView {
    #[serde(flatten)]
    loan: LoanView,
    /// The status before the change (None for a loan new to trialdesk).
    previous: Option<&'static str>,
}

impl ShipmentNotices {
    /// `templates` is the app's shared slot (loaded at first use from `templates.dir`).
    pub fn new(config: &Config, templates: TemplateSlot) -> ShipmentNotices {
        let mail = &config.mail;
        ShipmentNotices {
            statuses: config.notify.shipment_statuses.clone(),
            composer: Composer::new(&mail.from_name, &mail.from, &mail.message_id_domain())
                .map_err(|e| format!("config key `mail.from`: {e}")),
            templates,
            templates_dir: config.resolve_path(&config.templates.dir),
            carriers: config
                .carriers
                .iter()
                .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
                .collect(),
            signature: config.templates.signature.clone(),
        }
    }

    fn templates(&self) -> Result<Arc<Templates>, String> {
        let mut slot = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = slot.as_ref() {
            return Ok(t.clone());
        }
        let t = Arc::new(Templates::load(&self.templates_dir).map_err(|e| e.to_string())?);
        *slot = Some(t.clone());
        Ok(t)
    }
}

/// The notice's subject in the partner's language, naming the loans (at most five).
pub fn notice_subject(language: Language, loans: &[NoticeLoan]) -> String {
    let prefix = match language {
        Language::Zh => "试用终端状态更新",
        Language::En => "Trial endpoint status update",
        Language::Ja => "トライアル用エンドポイントの状況更新",
        Language::De => "Statusänderung Ihrer Test-Endpunkte",
    };
    let mut numbers: Vec<String> = loans
        .iter()
        .take(5)
        .map(|l| l.shipment.loan_number.to_string())
        .collect();
    if loans.len() > 5 {
        numbers.push("…".into());
    }
    format!("{prefix}: {}", numbers.join(", "))
}

impl ShipmentNotifier for ShipmentNotices {
    fn statuses(&self) -> &[ShipmentStatus] {
        &self.statuses
    }

    fn compose(
        &self,
        partner: &Partner,
        loans: &[NoticeLoan],
        now_ms: i64,
    ) -> Result<NewOutbox, String> {
        let composer = self.composer.as_ref().map_err(Clone::clone)?;
        let context = NoticeContext {
            partner_name: partner.name.clone(),
            loans: loans
                .iter()
                .map(|l| NoticeLoanView {
                    loan: loan_view(&l.shipment, &self.carriers),
                    previous: l.previous.map(ShipmentStatus::code),
                })
                .collect(),
            signature: self.signature.clone(),
        };
        let rendered = self
            .templates()?
            .render("shipment_notice", &[partner.language], &context)
            .map_err(|e| e.to_string())?;
        let to: Vec<Mailbox> = partner
            .admin_emails
            .iter()
            .map(|a| Mailbox {
                name: None,
                address: a.clone(),
            })
            .collect();
        // The thread: every earlier notice about these loans, oldest first; the latest is the
        // parent.
        let mut references: Vec<String> = Vec::new();
        for l in loans {
            for id in &l.thread {
                if !references.contains(id) {
                    references.push(id.clone());
                }
            }
        }
        let parent = references.pop();
        let subject = notice_subject(partner.language, loans);
        let date = jiff::Timestamp::from_millisecond(now_ms).map_err(|e| e.to_string())?;
        let composed = composer
            .compose_notice_in_thread(
                &Notice {
                    to: &to,
                    subject: &subject,
                    text: &rendered.text,
                    html: &rendered.html,
                    kind: OwnMailKind::ShipmentNotice,
                    date,
                },
                parent.as_deref(),
                &references,
            )
            .map_err(|e| e.to_string())?;
        Ok(NewOutbox {
            purpose: PURPOSE.into(),
            message_id: composed.message_id,
            envelope_from: composer.from_address(),
            recipients: partner.admin_emails.clone(),
            rate_key: partner
                .admin_emails
                .first()
                .map(|a| a.to_lowercase())
                .unwrap_or_default(),
            subject,
            body: composed.bytes,
        })
    }
}
