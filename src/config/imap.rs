//! `[imap]`: the production mailbox.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::remote::{credential, validate_auth, AuthMechanism, Credential, TlsMode};
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
#[serde(default, deny_unknown_fields)]
pub struct ImapConfig {
    /// Server name or IP address.
    pub host: String,
    /// 993 for implicit TLS, 143 for STARTTLS.
    pub port: u16,
    /// `implicit` (IMAPS), `starttls`, or `none` (plain text: loopback test servers only).
    pub tls: TlsMode,
    /// PEM file of extra CA certificates (a private CA); the built-in public roots stay
    /// trusted. Relative to the config file.
    pub ca_file: Option<PathBuf>,
    /// Name the server certificate must be valid for; defaults to `host`. Set it when you
    /// connect by IP address or through a tunnel.
    pub tls_server_name: Option<String>,
    /// Login name (usually the mailbox address).
    pub username: String,
    /// `login` (IMAP LOGIN, default), `plain` (SASL PLAIN) or `xoauth2` (OAuth 2.0 token).
    pub auth: AuthMechanism,
    /// The password for `login`/`plain`. Prefer `password_env` or `password_file`.
    pub password: Option<Secret>,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// File holding the password (trailing newline ignored); relative to the config file.
    pub password_file: Option<PathBuf>,
    /// For `xoauth2`: a shell command (`sh -c`) printing a current access token on its first
    /// line, run at every connect (e.g. a refresh-token helper).
    pub oauth2_token_command: Option<String>,
    /// For `xoauth2`: a file holding a current access token, re-read at every connect (kept
    /// fresh by another program).
    pub oauth2_token_file: Option<PathBuf>,
    /// The mailbox requests arrive in.
    pub mailbox: String,
    /// Use IMAP IDLE (push) when the server offers it; otherwise poll every `poll_interval`.
    pub idle: bool,
    /// IDLE is ended and re-issued at least this often (RFC 2177: servers may drop an IDLE
    /// older than 30 minutes). At most 29m.
    #[serde(with = "humantime_serde")]
    pub idle_renew: Duration,
    /// How often to look for new mail when the server has no IDLE (or `idle = false`).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Even with IDLE, look for new mail at least this often: a safety net against a lost
    /// notification or a connection that died silently.
    #[serde(with = "humantime_serde")]
    pub safety_poll_interval: Duration,
    /// Mails fetched per `UID FETCH` round.
    pub batch_size: usize,
    /// Upper bound on the bytes of one fetch round (at least one mail is always fetched).
    pub batch_bytes: u64,
    /// UIDs listed per `UID FETCH from:to (UID RFC822.SIZE)`: one answer holds at most this
    /// many lines, and a round lists at most `MAX_WINDOWS_PER_ROUND` windows, however large
    /// the mailbox. Rarely worth changing (tests set it small).
    pub list_window: u32,
    /// `move` (default): file each handled mail into the folder for its outcome, with
    /// `UID MOVE` (or COPY + `\Deleted` + `UID EXPUNGE` when MOVE is missing).
    /// `flag_seen`: only set `\Seen`.
    pub after_processing: AfterProcessing,
    /// Folder for mail that was answered automatically. `/` separates levels; it is
    /// translated to the server's hierarchy delimiter. Created when missing.
    pub folder_answered: String,
    /// Folder for mail waiting in the review queue.
    pub folder_review: String,
    /// Folder for mail deliberately not answered (auto-replies, bounces, our own mail).
    pub folder_ignored: String,
    /// Capabilities to treat as absent although the server offers them: `MOVE`, `UIDPLUS`,
    /// `IDLE`. A workaround for a server whose implementation misbehaves; trialdesk then files
    /// with COPY + `\Deleted` (+ `UID EXPUNGE`), or polls.
    pub ignore_capabilities: Vec<String>,
    /// Limit for TCP connect, TLS handshake, greeting and login together.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Limit for one command (and, while fetching, for the gap between two mails).
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// First delay before reconnecting after a failure; doubles (with jitter) per failure.
    #[serde(with = "humantime_serde")]
    pub reconnect_min: Duration,
    /// Longest delay between reconnect attempts.
    #[serde(with = "humantime_serde")]
    pub reconnect_max: Duration,
}

/// The largest `imap.list_window`: one listing answer stays a few megabytes at most.
pub const MAX_LIST_WINDOW: u32 = 100_000;

/// What `imap.ignore_capabilities` may name: the capabilities trialdesk uses.
pub const IGNORABLE_CAPABILITIES: [&str; 3] = ["MOVE", "UIDPLUS", "IDLE"];

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            host: "127.0.0.1".into(),
            port: 993,
            tls: TlsMode::Implicit,
            ca_file: None,
            tls_server_name: None,
            username: String::new(),
            auth: AuthMechanism::Login,
            password: None,
            password_env: None,
            password_file: None,
            oauth2_token_command: None,
            oauth2_token_file: None,
            mailbox: "INBOX".into(),
            idle: true,
            idle_renew: Duration::from_secs(25 * 60),
            poll_interval: Duration::from_secs(30),
            safety_poll_interval: Duration::from_secs(180),
            batch_size: 50,
            batch_bytes: 64 * 1024 * 1024,
            list_window: 1000,
            after_processing: AfterProcessing::Move,
            folder_answered: "trialdesk/answered".into(),
            folder_review: "trialdesk/review".into(),
            folder_ignored: "trialdesk/ignored".into(),
            ignore_capabilities: Vec::new(),
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(120),
            reconnect_min: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(300),
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
        if !(1..=MAX_LIST_WINDOW).contains(&self.list_window) {
            return Err(invalid(
                "imap.list_window",
                format!("must be between 1 and {MAX_LIST_WINDOW}"),
            ));
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
