use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// `[outbox]`: how queued mail is delivered and retried.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxConfig {
    /// For `mail.transport = "file"`: the folder each outgoing mail is written to as `.eml`.
    pub dir: PathBuf,
    /// A mail the relay keeps refusing for now (4xx) is dead-lettered to the review queue once
    /// it is this old. Relay outages (connection refused, login refused, 421) never count:
    /// the sender waits for the relay as a whole.
    #[serde(with = "humantime_serde")]
    pub give_up_after: Duration,
    /// Kept for old configs: when set, a mail is also dead-lettered after this many attempts
    /// that reached the relay and were refused for now. Unset (the default): only
    /// `give_up_after` bounds retries.
    pub max_attempts: Option<u32>,
    /// A mail handed to the relay without hearing its final reply (timeout, dropped
    /// connection) may have been delivered: it is tried again only after this delay.
    #[serde(with = "humantime_serde")]
    pub unknown_outcome_delay: Duration,
    /// First retry delay; doubles per attempt (with jitter) up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// How long a sender owns a claimed row; a crashed sender's rows are retried after it.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// Rows claimed per round.
    pub batch: u32,
    /// Per-recipient ladder for automatic mail: each step allows at most `max` mails to one
    /// address within `window`. Mail over any step goes to review instead, so two robots
    /// answering each other stop quickly.
    pub rate_limits: Vec<RateLimitStep>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitStep {
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    pub max: u32,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            dir: PathBuf::from("outbox"),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
            max_attempts: None,
            unknown_outcome_delay: Duration::from_secs(600),
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            lease: Duration::from_secs(120),
            batch: 50,
            rate_limits: vec![
                RateLimitStep {
                    window: Duration::from_secs(600),
                    max: 10,
                },
                RateLimitStep {
                    window: Duration::from_secs(3600),
                    max: 25,
                },
            ],
        }
    }
}

impl OutboxConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == Some(0) {
            return Err(invalid("outbox.max_attempts", "must be at least 1"));
        }
        if self.give_up_after.is_zero() {
            return Err(invalid("outbox.give_up_after", "must be positive"));
        }
        if self.retry_base.is_zero() || self.retry_max < self.retry_base {
            return Err(invalid(
                "outbox.retry_base",
                "must be positive and not above outbox.retry_max",
            ));
        }
        if self.lease < Duration::from_secs(5) {
            return Err(invalid("outbox.lease", "must be at least 5s"));
        }
        if self.batch == 0 {
            return Err(invalid("outbox.batch", "must be at least 1"));
        }
        for (i, step) in self.rate_limits.iter().enumerate() {
            if step.window.is_zero() || step.max == 0 {
                return Err(invalid(
                    &format!("outbox.rate_limits[{i}]"),
                    "window and max must be positive",
                ));
            }
        }
        Ok(())
    }
}

/// `[templates]`: reply and reminder templates, read at run time so the helpdesk can edit them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplatesConfig {
    /// Folder of minijinja templates; relative to the config file. A template missing there
    /// falls back to the copy built into the binary.
    pub dir: PathBuf,
    /// Signature block appended by the templates (`{{ signature }}`).
    pub signature: String,
}

impl Default for TemplatesConfig {
    fn default() -> Self {
        TemplatesConfig {
            dir: PathBuf::from("templates"),
            signature: "Partner Trial Helpdesk".into(),
        }
    }
}
