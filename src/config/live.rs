//! `[notify]`, `[tracking]` and `[rma]`: proactive shipment notices, how tracking answers
//! treat lists and late loans, RMA label requests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::domain::{Language, ShipmentStatus};

/// `[notify]`: proactive shipment notices to partners that opted in
/// (partners CSV column `notify_shipment_updates`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// A shipment changing to one of these statuses (CSV import, web upload, API, drop folder)
    /// queues a notice to the partner's `admin_emails`, once per (loan, status).
    pub shipment_statuses: Vec<ShipmentStatus>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            shipment_statuses: vec![
                ShipmentStatus::Shipped,
                ShipmentStatus::Delivered,
                ShipmentStatus::Exception,
            ],
        }
    }
}

/// `[tracking]`: what tracking answers list and how they treat late loans.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackingConfig {
    /// A request without loan numbers is answered with the partner's active loans (not
    /// `returned`), most recent first, at most this many (a line says how many more exist).
    pub max_listed: usize,
    /// A loan not delivered this long after its ETA is overdue: the answer says so and a
    /// `shipment_attention` review item is opened (as for a loan in `exception`).
    #[serde(with = "humantime_serde")]
    pub overdue_after: Duration,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        TrackingConfig {
            max_listed: 20,
            overdue_after: Duration::from_secs(3 * 86_400),
        }
    }
}

impl TrackingConfig {
    /// Whole days of `overdue_after` (rounded up: "36h" waits two days).
    pub fn overdue_days(&self) -> i64 {
        let secs = self.overdue_after.as_secs() as i64;
        (secs + 86_399) / 86_400
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_listed == 0 || self.max_listed > 200 {
            return Err(invalid("tracking.max_listed", "must be between 1 and 200"));
        }
        if self.overdue_after > Duration::from_secs(365 * 86_400) {
            return Err(invalid("tracking.overdue_after", "must be at most a year"));
        }
        Ok(())
    }
}

/// `[rma]`: return labels and the mails that ask for them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RmaConfig {
    /// Folder of return labels, one `LOAN.pdf` per loan (e.g. `D20261007.pdf`), relative to
    /// the config file (default `rma-labels`). Filled by hand or by
    /// `PUT /api/v1/shipments/{loan}/rma-label`; a loan without a file there has no label, so
    /// its label requests go to review.
    pub labels_dir: Option<PathBuf>,
    /// Phrases that make a mail an RMA label request when its subject or fresh text names
    /// one, per reply language. Matching folds case, width and white space.
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Largest label file attached (bytes); a larger one counts as missing.
    pub max_label_bytes: u64,
}

impl Default for RmaConfig {
    fn default() -> Self {
        RmaConfig {
            labels_dir: Some(PathBuf::from("rma-labels")),
            aliases: super::classify::phrases(&[
                ("zh", &["RMA 标签", "退货标签", "退回标签"]),
                ("en", &["RMA label", "return label"]),
                ("ja", &["返送ラベル", "RMAラベル"]),
                ("de", &["Rücksendeetikett", "RMA-Etikett"]),
            ]),
            max_label_bytes: 5 << 20,
        }
    }
}

impl RmaConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (lang, phrases) in &self.aliases {
            if lang.parse::<Language>().is_err() {
                return Err(invalid(
                    &format!("rma.aliases.{lang}"),
                    "language must be zh, en, ja or de",
                ));
            }
            if phrases.iter().any(|p| p.trim().is_empty()) {
                return Err(invalid(
                    &format!("rma.aliases.{lang}"),
                    "phrases must not be empty",
                ));
            }
        }
        if self.max_label_bytes == 0 {
            return Err(invalid("rma.max_label_bytes", "must be more than 0"));
        }
        Ok(())
    }

    /// Aliases as (language, phrase) pairs.
    pub fn alias_pairs(&self) -> Vec<(Language, String)> {
        self.aliases
            .iter()
            .filter_map(|(l, ps)| l.parse::<Language>().ok().map(|l| (l, ps)))
            .flat_map(|(l, ps)| ps.iter().map(move |p| (l, p.clone())))
            .collect()
    }
}
