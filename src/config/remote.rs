//! `[imap]` and `[smtp]`: the production mailbox and relay, and how to log in to them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::secret::{resolve_secret, Secret};
use super::{invalid, ConfigError};

/// Transport security for IMAP and SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text; only for loopback test servers.
    None,
    /// Plain connect, then STARTTLS (IMAP 143, SMTP 587).
    Starttls,
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Starttls => "starttls",
            TlsMode::Implicit => "implicit",
        }
    }
}

/// How trialdesk proves who it is to the IMAP or SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMechanism {
    /// IMAP `LOGIN` command / SMTP `AUTH LOGIN`, with the password.
    Login,
    /// SASL `PLAIN` (IMAP `AUTHENTICATE PLAIN`, SMTP `AUTH PLAIN`), with the password.
    Plain,
    /// SASL `XOAUTH2` with an OAuth 2.0 access token (Microsoft 365, Gmail). The token comes
    /// from `oauth2_token_command` or `oauth2_token_file` and is fetched again at every
    /// (re)connect, so an external refresher keeps it fresh.
    Xoauth2,
}

impl AuthMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMechanism::Login => "LOGIN",
            AuthMechanism::Plain => "PLAIN",
            AuthMechanism::Xoauth2 => "XOAUTH2",
        }
    }
}

/// Where the credential for a login comes from, resolved from a `[imap]`/`[smtp]` section.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A password (LOGIN / PLAIN), read once at start.
    Password(Secret),
    /// An OAuth 2.0 access token, fetched at each connect: the first line printed by a shell
    /// command, or the content of a file another program keeps fresh.
    TokenCommand(String),
    TokenFile(PathBuf),
}

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

/// `[smtp]`: the relay replies and reminders leave through (`mail.transport = "smtp"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay name or IP address.
    #[serde(default = "default_host")]
    pub host: String,
    /// 587 for STARTTLS submission, 465 for implicit TLS, 25 for a plain relay.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls`, `implicit`, or `none` (plain text: loopback relays only).
    #[serde(default = "default_smtp_tls")]
    pub tls: TlsMode,
    /// PEM file of extra CA certificates (a private CA); relative to the config file.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name the relay's certificate must be valid for; defaults to `host`.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Login name; without it trialdesk sends without AUTH (a relay that trusts its network).
    #[serde(default)]
    pub username: Option<String>,
    /// `plain` (default), `login` or `xoauth2`.
    #[serde(default = "default_smtp_auth")]
    pub auth: AuthMechanism,
    /// The password for `plain`/`login`. Prefer `password_env` or `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// For `xoauth2`: shell command printing a current access token (see `[imap]`).
    #[serde(default)]
    pub oauth2_token_command: Option<String>,
    /// For `xoauth2`: file holding a current access token (see `[imap]`).
    #[serde(default)]
    pub oauth2_token_file: Option<PathBuf>,
    /// For `xoauth2`: the token is fetched again when older than this (and after the relay
    /// refuses it), so pooled connections never log in with an expired one.
    #[serde(default = "default_token_refresh", with = "humantime_serde")]
    pub oauth2_token_refresh: Duration,
    /// Limit for connecting and for each SMTP command.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Limit for sending the message and hearing the reply to its final dot (RFC 5321
    /// §4.5.3.2 suggests 10 minutes: the relay may scan the message first). A timeout here
    /// means the outcome is unknown; see `outbox.unknown_outcome_delay`.
    #[serde(default = "default_data_timeout", with = "humantime_serde")]
    pub data_timeout: Duration,
    /// Open connections kept to the relay and reused across mails.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// A pooled connection unused this long is closed.
    #[serde(default = "default_pool_idle", with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Name sent with EHLO; defaults to this machine's host name.
    #[serde(default)]
    pub hello_name: Option<String>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: default_host(),
            port: default_smtp_port(),
            tls: default_smtp_tls(),
            ca_file: None,
            tls_server_name: None,
            username: None,
            auth: default_smtp_auth(),
            password: None,
            password_env: None,
            password_file: None,
            oauth2_token_command: None,
            oauth2_token_file: None,
            oauth2_token_refresh: default_token_refresh(),
            timeout: default_connect_timeout(),
            data_timeout: default_data_timeout(),
            pool_size: default_pool_size(),
            pool_idle_timeout: default_pool_idle(),
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

fn validate_auth(
    section: &str,
    auth: AuthMechanism,
    password_forms: [bool; 3],
    token_command: bool,
    token_file: bool,
) -> Result<(), ConfigError> {
    let passwords = password_forms.iter().filter(|x| **x).count();
    match auth {
        AuthMechanism::Login | AuthMechanism::Plain => {
            if token_command || token_file {
                return Err(invalid(
                    &format!("{section}.auth"),
                    "oauth2_token_command / oauth2_token_file need auth = \"xoauth2\"",
                ));
            }
            if passwords == 0 {
                return Err(invalid(
                    &format!("{section}.password"),
                    "set one of password, password_env, password_file",
                ));
            }
        }
        AuthMechanism::Xoauth2 => {
            if passwords > 0 {
                return Err(invalid(
                    &format!("{section}.auth"),
                    "xoauth2 takes a token (oauth2_token_command or oauth2_token_file), not a password",
                ));
            }
            if token_command == token_file {
                return Err(invalid(
                    &format!("{section}.oauth2_token_command"),
                    "with auth = \"xoauth2\" set exactly one of oauth2_token_command and oauth2_token_file",
                ));
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn credential(
    section: &str,
    auth: AuthMechanism,
    password: Option<&str>,
    password_env: Option<&str>,
    password_file: Option<&Path>,
    token_command: Option<&str>,
    token_file: Option<&Path>,
    base_dir: &Path,
) -> Result<Credential, ConfigError> {
    if auth == AuthMechanism::Xoauth2 {
        return match (token_command, token_file) {
            (Some(c), None) => Ok(Credential::TokenCommand(c.to_string())),
            (None, Some(f)) => Ok(Credential::TokenFile(base_dir.join(f))),
            _ => Err(invalid(
                &format!("{section}.oauth2_token_command"),
                "set exactly one of oauth2_token_command and oauth2_token_file",
            )),
        };
    }
    let key = format!("{section}.password");
    match resolve_secret(&key, password, password_env, password_file, base_dir)? {
        Some(s) => Ok(Credential::Password(s)),
        None => Err(invalid(
            &key,
            "set one of password, password_env, password_file",
        )),
    }
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_imap_port() -> u16 {
    993
}
fn default_smtp_port() -> u16 {
    587
}
fn default_tls() -> TlsMode {
    TlsMode::Implicit
}
fn default_smtp_tls() -> TlsMode {
    TlsMode::Starttls
}
fn default_imap_auth() -> AuthMechanism {
    AuthMechanism::Login
}
fn default_smtp_auth() -> AuthMechanism {
    AuthMechanism::Plain
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
fn default_connect_timeout() -> Duration {
    Duration::from_secs(30)
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
fn default_token_refresh() -> Duration {
    Duration::from_secs(600)
}
fn default_data_timeout() -> Duration {
    Duration::from_secs(600)
}
fn default_pool_size() -> u32 {
    4
}
fn default_pool_idle() -> Duration {
    Duration::from_secs(60)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::{AfterProcessing, AuthMechanism, Config, ConfigError, TlsMode};

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        let text = format!("[database]\nurl = \"sqlite://x\"\n{extra}");
        Config::from_toml_str(&text, Path::new("t.toml"), PathBuf::from("/etc/td"), &[])
    }

    fn err(extra: &str) -> String {
        parse(extra).unwrap_err().to_string()
    }

    const IMAP: &str = "[mail]\nsource = \"imap\"\n";

    #[test]
    fn imap_defaults_are_production_ones() {
        let c = parse(&format!("{IMAP}[imap]\nhost = \"imap.example.com\"\nusername = \"h@example.com\"\npassword_env = \"X\"\n")).unwrap();
        assert_eq!((c.imap.port, c.imap.tls), (993, TlsMode::Implicit));
        assert_eq!(c.imap.auth, AuthMechanism::Login);
        assert_eq!(c.imap.after_processing, AfterProcessing::Move);
        assert_eq!(c.imap.folder_answered, "trialdesk/answered");
        assert!(c.imap.idle);
        assert_eq!((c.smtp.port, c.smtp.tls), (587, TlsMode::Starttls));
    }

    #[test]
    fn imap_is_checked_only_when_used() {
        // A Maildir setup needs no IMAP login.
        parse("[imap]\nport = 1\n").unwrap();
        assert!(err(IMAP).contains("imap.username"));
        assert!(err(&format!("{IMAP}[imap]\nusername = \"u\"\n")).contains("imap.password"));
    }

    #[test]
    fn xoauth2_takes_exactly_one_token_source_and_no_password() {
        let base = format!("{IMAP}[imap]\nusername = \"u\"\nauth = \"xoauth2\"\n");
        assert!(err(&base).contains("imap.oauth2_token_command"));
        assert!(err(&format!(
            "{base}password = \"p\"\noauth2_token_file = \"t\"\n"
        ))
        .contains("imap.auth"));
        assert!(err(&format!(
            "{base}oauth2_token_file = \"t\"\noauth2_token_command = \"c\"\n"
        ))
        .contains("exactly one"));
        let c = parse(&format!("{base}oauth2_token_file = \"tok\"\n")).unwrap();
        match c.imap.credential(&c.base_dir).unwrap() {
            crate::config::Credential::TokenFile(p) => assert_eq!(p, PathBuf::from("/etc/td/tok")),
            other => panic!("{other:?}"),
        }
        let pw = format!(
            "{IMAP}[imap]\nusername = \"u\"\npassword = \"p\"\noauth2_token_file = \"t\"\n"
        );
        assert!(err(&pw).contains("need auth = \"xoauth2\""));
    }

    #[test]
    fn idle_renewal_stays_under_the_rfc_limit() {
        let e = err(&format!(
            "{IMAP}[imap]\nusername = \"u\"\npassword = \"p\"\nidle_renew = \"30m\"\n"
        ));
        assert!(e.contains("imap.idle_renew"), "{e}");
    }

    #[test]
    fn smtp_credentials_need_a_username() {
        let e = err("[mail]\ntransport = \"smtp\"\n[smtp]\npassword = \"p\"\n");
        assert!(e.contains("smtp.username"), "{e}");
        parse("[mail]\ntransport = \"smtp\"\n[smtp]\nhost = \"relay\"\nport = 25\n").unwrap();
    }

    #[test]
    fn health_silence_must_exceed_the_fetch_interval() {
        let e = err(&format!(
            "{IMAP}[imap]\nusername = \"u\"\npassword = \"p\"\nsafety_poll_interval = \"5m\"\n[health]\nmax_fetch_silence = \"2m\"\n"
        ));
        assert!(e.contains("health.max_fetch_silence"), "{e}");
    }

    #[test]
    fn unknown_imap_key_is_named() {
        assert!(err("[imap]\nafter_processing = \"delete\"\n").contains("imap.after_processing"));
    }
}
