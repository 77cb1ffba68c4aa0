//! `[smtp]`: the production relay.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::remote::{credential, validate_auth, AuthMechanism, Credential, TlsMode};
use super::secret::Secret;
use super::{invalid, ConfigError};

/// `[smtp]`: the relay replies and reminders leave through (`mail.transport = "smtp"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay name or IP address.
    pub host: String,
    /// 587 for STARTTLS submission, 465 for implicit TLS, 25 for a plain relay.
    pub port: u16,
    /// `starttls`, `implicit`, or `none` (plain text: loopback relays only).
    pub tls: TlsMode,
    /// PEM file of extra CA certificates (a private CA); relative to the config file.
    pub ca_file: Option<PathBuf>,
    /// Name the relay's certificate must be valid for; defaults to `host`.
    pub tls_server_name: Option<String>,
    /// Login name; without it trialdesk sends without AUTH (a relay that trusts its network).
    pub username: Option<String>,
    /// `plain` (default), `login` or `xoauth2`.
    pub auth: AuthMechanism,
    /// The password for `plain`/`login`. Prefer `password_env` or `password_file`.
    pub password: Option<Secret>,
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// For `xoauth2`: shell command printing a current access token (see `[imap]`).
    pub oauth2_token_command: Option<String>,
    /// For `xoauth2`: file holding a current access token (see `[imap]`).
    pub oauth2_token_file: Option<PathBuf>,
    /// For `xoauth2`: the token is fetched again when older than this (and after the relay
    /// refuses it), so pooled connections never log in with an expired one.
    #[serde(with = "humantime_serde")]
    pub oauth2_token_refresh: Duration,
    /// Limit for connecting and for each SMTP command.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Limit for sending the message and hearing the reply to its final dot (RFC 5321
    /// §4.5.3.2 suggests 10 minutes: the relay may scan the message first). A timeout here
    /// means the outcome is unknown; see `outbox.unknown_outcome_delay`.
    #[serde(with = "humantime_serde")]
    pub data_timeout: Duration,
    /// Open connections kept to the relay and reused across mails.
    pub pool_size: u32,
    /// A pooled connection unused this long is closed.
    #[serde(with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Name sent with EHLO; defaults to this machine's host name.
    pub hello_name: Option<String>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: 587,
            tls: TlsMode::Starttls,
            ca_file: None,
            tls_server_name: None,
            username: None,
            auth: AuthMechanism::Plain,
            password: None,
            password_env: None,
            password_file: None,
            oauth2_token_command: None,
            oauth2_token_file: None,
            oauth2_token_refresh: Duration::from_secs(600),
            timeout: Duration::from_secs(30),
            data_timeout: Duration::from_secs(600),
            pool_size: 4,
            pool_idle_timeout: Duration::from_secs(60),
            hello_name: None,
        }
    }
}

impl SmtpConfig {
    /// Only called when `mail.transport = "smtp"`.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.host.trim().is_empty() {
            return Err(invalid("smtp.host", "must not be empty"));
        }
        let password_forms = [
            self.password.is_some(),
            self.password_env.is_some(),
            self.password_file.is_some(),
        ];
        let token = self.oauth2_token_command.is_some() || self.oauth2_token_file.is_some();
        if self.username.is_none() {
            if password_forms.iter().any(|x| *x) || token {
                return Err(invalid(
                    "smtp.username",
                    "must be set when a password or token is given",
                ));
            }
        } else {
            validate_auth(
                "smtp",
                self.auth,
                password_forms,
                self.oauth2_token_command.is_some(),
                self.oauth2_token_file.is_some(),
            )?;
        }
        if self.timeout.is_zero() {
            return Err(invalid("smtp.timeout", "must be positive"));
        }
        if self.data_timeout.is_zero() {
            return Err(invalid("smtp.data_timeout", "must be positive"));
        }
        if self.pool_size == 0 {
            return Err(invalid("smtp.pool_size", "must be at least 1"));
        }
        if self.oauth2_token_refresh.is_zero() {
            return Err(invalid("smtp.oauth2_token_refresh", "must be positive"));
        }
        Ok(())
    }

    /// The login secret (None: no AUTH).
    pub fn credential(&self, base_dir: &Path) -> Result<Option<Credential>, ConfigError> {
        if self.username.is_none() {
            return Ok(None);
        }
        credential(
            "smtp",
            self.auth,
            self.password.as_ref().map(Secret::expose),
            self.password_env.as_deref(),
            self.password_file.as_deref(),
            self.oauth2_token_command.as_deref(),
            self.oauth2_token_file.as_deref(),
            base_dir,
        )
        .map(Some)
    }

    pub fn server_name(&self) -> &str {
        self.tls_server_name.as_deref().unwrap_or(&self.host)
    }
}
