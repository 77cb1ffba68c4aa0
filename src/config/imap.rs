//! `[imap]`: the production mailbox.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::remote::{
    credential, default_connect_timeout, default_host, validate_auth, AuthMechanism, Credential,
    TlsMode,
};
use super::secret::Secret;
use super::{invalid, ConfigError};

/// What happens to a mail in the IMAP mailbox once its decision is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterProcessing {
    /// Move it into the folder for its outcome (`folder_answered`, `folder_review`,
    /// `folder_ignored`): the inbox holds only what is not yet handled.
    Move,
    /// Only set `\Seen`; the mail stays where it is (trialdesk still tracks UIDs itself, so
    /// another client marking mail read never hides it).
    FlagSeen,
}

/// `[imap]`: the helpdesk mailbox in production (`mail.source = "imap"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    /// Server name or IP address.
    #[serde(default = "default_host")]
    pub host: String,
    /// 993 for implicit TLS, 143 for STARTTLS.
    #[serde(default = "default_imap_port")]
    pub port: u16,
    /// `implicit` (IMAPS), `starttls`, or `none` (plain text: loopback test servers only).
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    /// PEM file of extra CA certificates (a private CA); the built-in public roots stay
    /// trusted. Relative to the config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name the server certificate must be valid for; defaults to `host`. Set it when you
    /// connect by IP address or through a tunnel.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Login name (usually the mailbox address).
    #[serde(default)]
    pub username: String,
    /// `login` (IMAP LOGIN, default), `plain` (SASL PLAIN) or `xoauth2` (OAuth 2.0 token).
    #[serde(default = "default_imap_auth")]
    pub auth: AuthMechanism,
    /// The password for `login`/`plain`. Prefer `password_env` or `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (trailing newline ignored); relative to the config file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// For `xoauth2`: a shell command (`sh -c`) printing a current access token on its first
    /// line, run at every connect (e.g. a refresh-token helper).
    #[serde(default)]
    pub oauth2_token_command: Option<String>,
    /// For `xoauth2`: a file holding a current access token, re-read at every connect (kept
    /// fresh by another program).
    #[serde(default)]
    pub oauth2_token_file: Option<PathBuf>,
    /// The mailbox requests arrive in.
    #[serde(default = "default_mailbox")]
    pub mailbox: String,
    /// Use IMAP IDLE (push) when the server offers it; otherwise poll every `poll_interval`.
    #[serde(default = "default_true")]
    pub idle: bool,
    /// IDLE is ended and re-issued at least this often (RFC 2177: servers may drop an IDLE
    /// older than 30 minutes). At most 29m.
    #[serde(default = "default_idle_renew", with = "humantime_serde")]
    pub idle_renew: Duration,
    /// How often to look for new mail when the server has no IDLE (or `idle = false`).
    #[serde(default = "default_imap_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Even with IDLE, look for new mail at least this often: a safety net against a lost
    /// notification or a connection that died silently.
    #[serde(default = "default_safety_poll", with = "humantime_serde")]
    pub safety_poll_interval: Duration,
    /// Mails fetched per `UID FETCH` round.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Upper bound on the bytes of one fetch round (at least one mail is always fetched).
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: u64,
    /// `move` (default): file each handled mail into the folder for its outcome, with
    /// `UID MOVE` (or COPY + `\Deleted` + `UID EXPUNGE` when MOVE is missing).
    /// `flag_seen`: only set `\Seen`.
    #[serde(default = "default_after_processing")]
    pub after_processing: AfterProcessing,
    /// Folder for mail that was answered automatically. `/` separates levels; it is
    /// translated to the server's hierarchy delimiter. Created when missing.
    #[serde(default = "default_folder_answered")]
    pub folder_answered: String,
    /// Folder for mail waiting in the review queue.
    #[serde(default = "default_folder_review")]
    pub folder_review: String,
    /// Folder for mail deliberately not answered (auto-replies, bounces, our own mail).
    #[serde(default = "default_folder_ignored")]
    pub folder_ignored: String,
    /// Capabilities to treat as absent although the server offers them: `MOVE`, `UIDPLUS`,
    /// `IDLE`. A workaround for a server whose implementation misbehaves; trialdesk then files
    /// with COPY + `\Deleted` (+ `UID EXPUNGE`), or polls.
    #[serde(default)]
    pub ignore_capabilities: Vec<String>,
    /// Limit for TCP connect, TLS handshake, greeting and login together.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Limit for one command (and, while fetching, for the gap between two mails).
    #[serde(default = "default_command_timeout", with = "humantime_serde")]
    pub command_timeout: Duration,
    /// First delay before reconnecting after a failure; doubles (with jitter) per failure.
    #[serde(default = "default_reconnect_min", with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Longest delay between reconnect attempts.
    #[serde(default = "default_reconnect_max", with = "humantime_serde")]
    pub reconnect_max: Duration,
}

/// What `imap.ignore_capabilities` may name: the capabilities trialdesk uses.
pub const IGNORABLE_CAPABILITIES: [&str; 3] = ["MOVE", "UIDPLUS", "IDLE"];

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            host: default_host(),
            port: default_imap_port(),
            tls: default_tls(),
            ca_file: None,
            tls_server_name: None,
            username: String::new(),
            auth: default_imap_auth(),
            password: None,
            password_env: None,
            password_file: None,
            oauth2_token_command: None,
            oauth2_token_file: None,
            mailbox: default_mailbox(),
            idle: true,
            idle_renew: default_idle_renew(),
            poll_interval: default_imap_poll(),
            safety_poll_interval: default_safety_poll(),
            batch_size: default_batch_size(),
            batch_bytes: default_batch_bytes(),
            after_processing: default_after_processing(),
            folder_answered: default_folder_answered(),
            folder_review: default_folder_review(),
            folder_ignored: default_folder_ignored(),
            ignore_capabilities: Vec::new(),
            connect_timeout: default_connect_timeout(),
            command_timeout: default_command_timeout(),
            reconnect_min: default_reconnect_min(),
            reconnect_max: default_reconnect_max(),
        }
    }
}

impl ImapConfig {
    /// Checks what the types cannot. Only called when `mail.source = "imap"`.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.host.trim().is_empty() {
            return Err(invalid("imap.host", "must not be empty"));
        }
        if self.username.is_empty() {
            return Err(invalid("imap.username", "must be set"));
        }
        validate_auth(
            "imap",
            self.auth,
            [
                self.password.is_some(),
                self.password_env.is_some(),
                self.password_file.is_some(),
            ],
            self.oauth2_token_command.is_some(),
            self.oauth2_token_file.is_some(),
        )?;
        if let Some(unknown) = self
            .ignore_capabilities
            .iter()
            .find(|c| !IGNORABLE_CAPABILITIES.contains(&c.to_ascii_uppercase().as_str()))
        {
            return Err(invalid(
                "imap.ignore_capabilities",
                format!("{unknown:?} is not one of MOVE, UIDPLUS, IDLE"),
            ));
        }
        if self.idle_renew > Duration::from_secs(29 * 60) || self.idle_renew.is_zero() {
            return Err(invalid("imap.idle_renew", "must be between 1s and 29m"));
        }
        for (key, d) in [
            ("imap.poll_interval", self.poll_interval),
            ("imap.safety_poll_interval", self.safety_poll_interval),
            ("imap.connect_timeout", self.connect_timeout),
            ("imap.command_timeout", self.command_timeout),
            ("imap.reconnect_min", self.reconnect_min),
        ] {
            if d.is_zero() {
                return Err(invalid(key, "must be positive"));
            }
        }
        if self.reconnect_max < self.reconnect_min {
            return Err(invalid(
                "imap.reconnect_max",
                "must not be below imap.reconnect_min",
            ));
        }
        if self.batch_size == 0 {
            return Err(invalid("imap.batch_size", "must be at least 1"));
        }
        if self.batch_bytes == 0 {
            return Err(invalid("imap.batch_bytes", "must be positive"));
        }
        for (key, name) in [
            ("imap.mailbox", &self.mailbox),
            ("imap.folder_answered", &self.folder_answered),
            ("imap.folder_review", &self.folder_review),
            ("imap.folder_ignored", &self.folder_ignored),
        ] {
            if name.trim().is_empty() || name.chars().any(|c| c.is_control() || c == '"') {
                return Err(invalid(
                    key,
                    "must be a non-empty mailbox name without quotes or control characters",
                ));
            }
        }
        Ok(())
    }

    /// The login secret, resolved from the config (password forms, or the token source).
    pub fn credential(&self, base_dir: &Path) -> Result<Credential, ConfigError> {
        credential(
            "imap",
            self.auth,
            self.password.as_ref().map(Secret::expose),
            self.password_env.as_deref(),
            self.password_file.as_deref(),
            self.oauth2_token_command.as_deref(),
            self.oauth2_token_file.as_deref(),
            base_dir,
        )
    }

    /// The name the server certificate is checked against.
    pub fn server_name(&self) -> &str {
        self.tls_server_name.as_deref().unwrap_or(&self.host)
    }
}

fn default_imap_port() -> u16 {
    993
}
fn default_tls() -> TlsMode {
    TlsMode::Implicit
}
fn default_imap_auth() -> AuthMechanism {
    AuthMechanism::Login
}
fn default_mailbox() -> String {
    "INBOX".into()
}
fn default_true() -> bool {
    true
}
fn default_idle_renew() -> Duration {
    Duration::from_secs(25 * 60)
}
fn default_imap_poll() -> Duration {
    Duration::from_secs(30)
}
fn default_safety_poll() -> Duration {
    Duration::from_secs(180)
}
fn default_batch_size() -> usize {
    50
}
fn default_batch_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_after_processing() -> AfterProcessing {
    AfterProcessing::Move
}
fn default_folder_answered() -> String {
    "trialdesk/answered".into()
}
fn default_folder_review() -> String {
    "trialdesk/review".into()
}
fn default_folder_ignored() -> String {
    "trialdesk/ignored".into()
}
fn default_command_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_reconnect_min() -> Duration {
    Duration::from_secs(1)
}
fn default_reconnect_max() -> Duration {
    Duration::from_secs(300)
}
