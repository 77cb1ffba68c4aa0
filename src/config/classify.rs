use std::collections::BTreeMap;

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::domain::Language;

/// `[classify]`: how tracking requests and loan numbers are recognised.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifyConfig {
    /// Regex for one loan number after NFKC and upper-casing. Boundaries are handled by
    /// trialdesk (a number glued to an ASCII letter or digit does not count), so do not add `\b`.
    pub loan_number_pattern: String,
    /// At most this many numbers are taken from one mail (the rest are ignored and the mail
    /// is flagged).
    pub max_loan_numbers: usize,
    /// Subject phrases that make a mail a tracking request, per reply language
    /// (`zh`, `en`, `ja`, `de`). Matching folds case, width and white space.
    pub subject_aliases: BTreeMap<String, Vec<String>>,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        ClassifyConfig {
            loan_number_pattern: r"D[0-9]{6,10}".into(),
            max_loan_numbers: 50,
            subject_aliases: phrases(&[
                ("zh", &["试用终端追踪请求"]),
                ("en", &["Trial Endpoint Tracking Request"]),
                (
                    "ja",
                    &["トライアル用エンドポイントのトラッキング リクエスト"],
                ),
                (
                    "de",
                    &["Anfrage zur Nachverfolgung der Endpunkte der Testversion"],
                ),
            ]),
        }
    }
}

/// A phrase list per language, as `[classify.subject_aliases]` and `[rma.aliases]` hold them.
pub(super) fn phrases(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
    entries
        .iter()
        .map(|(lang, ps)| (lang.to_string(), ps.iter().map(|p| p.to_string()).collect()))
        .collect()
}

impl ClassifyConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = regex::Regex::new(&self.loan_number_pattern) {
            return Err(invalid("classify.loan_number_pattern", e.to_string()));
        }
        if self.max_loan_numbers == 0 || self.max_loan_numbers > 1000 {
            return Err(invalid(
                "classify.max_loan_numbers",
                "must be between 1 and 1000",
            ));
        }
        for (lang, phrases) in &self.subject_aliases {
            if lang.parse::<Language>().is_err() {
                return Err(invalid(
                    &format!("classify.subject_aliases.{lang}"),
                    "language must be zh, en, ja or de",
                ));
            }
            if phrases.iter().any(|p| p.trim().is_empty()) {
                return Err(invalid(
                    &format!("classify.subject_aliases.{lang}"),
                    "phrases must not be empty",
                ));
            }
        }
        Ok(())
    }

    /// Aliases as (language, phrase) pairs.
    pub fn aliases(&self) -> Vec<(Language, String)> {
        self.subject_aliases
            .iter()
            .filter_map(|(l, ps)| l.parse::<Language>().ok().map(|l| (l, ps)))
            .flat_map(|(l, ps)| ps.iter().map(move |p| (l, p.clone())))
            .collect()
    }
}
