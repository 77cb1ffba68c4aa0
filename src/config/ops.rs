use std::net::SocketAddr;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// `[logging]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `RUST_LOG`-style filter; the `RUST_LOG` environment variable wins when set.
    #[serde(default = "default_filter")]
    pub filter: String,
    /// `human` for a terminal, `json` for a log collector.
    #[serde(default)]
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            filter: default_filter(),
            format: LogFormat::Human,
        }
    }
}

fn default_filter() -> String {
    "info".into()
}

/// `[web]`: the review pages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Whether `trialdesk run` serves the review pages beside the workers.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Loopback by default: put a TLS-terminating proxy in front to expose it.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            listen: default_listen(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// `[reminders]`: the trial-lifecycle mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemindersConfig {
    /// Whether `trialdesk run` runs the reminder scheduler.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Local time of day (in each trial's time zone) from which a due reminder is sent.
    #[serde(default = "default_send_at")]
    pub send_at: String,
    /// Where customer admins buy or convert their trial.
    #[serde(default = "default_purchase_url")]
    pub purchase_url: String,
}

impl Default for RemindersConfig {
    fn default() -> Self {
        RemindersConfig {
            enabled: true,
            send_at: default_send_at(),
            purchase_url: default_purchase_url(),
        }
    }
}

fn default_send_at() -> String {
    "09:00".into()
}
fn default_purchase_url() -> String {
    "https://www.example.com/buy".into()
}

impl RemindersConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.send_at_time()?;
        Ok(())
    }

    pub fn send_at_time(&self) -> Result<jiff::civil::Time, ConfigError> {
        self.send_at
            .parse::<jiff::civil::Time>()
            .map_err(|e| invalid("reminders.send_at", format!("expected HH:MM: {e}")))
    }
}

/// `[retention]`: how long raw mail is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Raw bytes of inbound mail older than this many days are deleted (the decision, the
    /// extracted text and the metadata stay, so history and review still work). 0 keeps raw
    /// mail forever.
    #[serde(default)]
    pub raw_mail_days: u32,
    /// How often `trialdesk run` looks for raw mail to delete.
    #[serde(default = "default_retention_interval", with = "humantime_serde")]
    pub interval: std::time::Duration,
    /// Rows cleared per transaction, so the job never holds the database for long.
    #[serde(default = "default_retention_batch")]
    pub batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            raw_mail_days: 0,
            interval: default_retention_interval(),
            batch: default_retention_batch(),
        }
    }
}

fn default_retention_interval() -> std::time::Duration {
    std::time::Duration::from_secs(24 * 3600)
}
fn default_retention_batch() -> u32 {
    500
}

impl RetentionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.interval < std::time::Duration::from_secs(60) {
            return Err(invalid("retention.interval", "must be at least 1 minute"));
        }
        if !(1..=100_000).contains(&self.batch) {
            return Err(invalid("retention.batch", "must be between 1 and 100000"));
        }
        if self.raw_mail_days > 100 * 366 {
            return Err(invalid(
                "retention.raw_mail_days",
                "must be at most 36600 (use 0 to keep raw mail forever)",
            ));
        }
        Ok(())
    }
}
