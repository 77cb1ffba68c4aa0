use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// `[logging]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `RUST_LOG`-style filter; the `RUST_LOG` environment variable wins when set.
    pub filter: String,
    /// `human` for a terminal, `json` for a log collector.
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
            filter: "info".into(),
            format: LogFormat::Human,
        }
    }
}

/// `[web]`: the review pages.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Whether `trialdesk run` serves the review pages beside the workers.
    pub enabled: bool,
    /// Loopback by default: put a TLS-terminating proxy in front to expose it.
    pub listen: SocketAddr,
    /// Mark cookies `Secure` (and name the session cookie `__Host-…`): set it when the pages
    /// are reached over HTTPS (through a TLS-terminating proxy). Browsers then never send the
    /// session over plain HTTP.
    pub secure_cookies: bool,
    /// A session ends this long after sign-in, however active.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
    /// A session ends after this long without a request.
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    /// Load remote images in received HTML mail by default. Off: images from the web are
    /// blocked (they tell the sender the mail was opened) until staff click "load images".
    pub remote_images: bool,
    /// Time zone the pages show times in (IANA name, e.g. `Asia/Shanghai`), unless a user
    /// chose their own on the settings page.
    pub time_zone: String,
    /// Language of the pages (`zh` or `en`) for users without a setting whose browser asks
    /// for neither.
    pub default_language: String,
    /// How long an open item may wait before the queue marks it overdue.
    #[serde(with = "humantime_serde")]
    pub sla: Duration,
    /// Failed sign-ins allowed per account name within `login_window`; more are refused
    /// until the window has passed.
    pub login_max_failures: u32,
    /// Failed sign-ins allowed per client address within `login_window` (any account names).
    pub login_max_failures_per_address: u32,
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    /// Take the client address for sign-in rate limits from the last `X-Forwarded-For` entry
    /// (only behind a proxy that sets it; otherwise clients could pick their own address).
    pub trust_forwarded_for: bool,
    /// Rows per page in the queue, history and audit log.
    pub page_size: u32,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            secure_cookies: false,
            session_lifetime: Duration::from_secs(12 * 3600),
            session_idle_timeout: Duration::from_secs(2 * 3600),
            remote_images: false,
            time_zone: "Asia/Shanghai".into(),
            default_language: "zh".into(),
            sla: Duration::from_secs(4 * 3600),
            login_max_failures: 5,
            login_max_failures_per_address: 20,
            login_window: Duration::from_secs(15 * 60),
            trust_forwarded_for: false,
            page_size: 50,
        }
    }
}

impl WebConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.tz()?;
        if !(1..=1000).contains(&self.page_size) {
            return Err(invalid("web.page_size", "must be between 1 and 1000"));
        }
        if self.login_max_failures == 0 || self.login_max_failures_per_address == 0 {
            return Err(invalid(
                "web.login_max_failures",
                "must be at least 1 (per account and per address)",
            ));
        }
        if !["zh", "en"].contains(&self.default_language.as_str()) {
            return Err(invalid("web.default_language", "must be \"zh\" or \"en\""));
        }
        if self.sla.is_zero() {
            return Err(invalid("web.sla", "must be longer than zero"));
        }
        if self.session_lifetime.is_zero() || self.session_idle_timeout.is_zero() {
            return Err(invalid("web.session_lifetime", "must be longer than zero"));
        }
        Ok(())
    }

    /// The configured time zone.
    pub fn tz(&self) -> Result<jiff::tz::TimeZone, ConfigError> {
        jiff::tz::TimeZone::get(&self.time_zone)
            .map_err(|e| invalid("web.time_zone", format!("unknown time zone: {e}")))
    }
}

/// `[reminders]`: the trial-lifecycle mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemindersConfig {
    /// Whether `trialdesk run` runs the reminder scheduler.
    pub enabled: bool,
    /// Local time of day (in each trial's time zone) from which a due reminder is sent.
    pub send_at: String,
    /// Where customer admins buy or convert their trial.
    pub purchase_url: String,
}

impl Default for RemindersConfig {
    fn default() -> Self {
        RemindersConfig {
            enabled: true,
            send_at: "09:00".into(),
            purchase_url: "https://www.example.com/buy".into(),
        }
    }
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
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Raw bytes of inbound mail older than this many days are deleted (the decision, the
    /// extracted text and the metadata stay, so history and review still work). 0 keeps raw
    /// mail forever.
    pub raw_mail_days: u32,
    /// How often `trialdesk run` looks for raw mail to delete.
    #[serde(with = "humantime_serde")]
    pub interval: std::time::Duration,
    /// Rows cleared per transaction, so the job never holds the database for long.
    pub batch: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            raw_mail_days: 0,
            interval: Duration::from_secs(24 * 3600),
            batch: 500,
        }
    }
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
