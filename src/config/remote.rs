use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

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

/// `[imap]`: the helpdesk mailbox in production (`mail.source = "imap"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_imap_port")]
    pub port: u16,
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    /// PEM file of extra CA certificates (a private CA); the system roots stay trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_mailbox")]
    pub mailbox: String,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            host: default_host(),
            port: default_imap_port(),
            tls: default_tls(),
            ca_file: None,
            username: String::new(),
            password: None,
            password_env: None,
            password_file: None,
            mailbox: default_mailbox(),
            connect_timeout: default_connect_timeout(),
        }
    }
}

/// `[smtp]`: the relay replies and reminders leave through (`mail.transport = "smtp"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: default_host(),
            port: default_smtp_port(),
            tls: default_tls(),
            ca_file: None,
            username: None,
            password: None,
            password_env: None,
            password_file: None,
            timeout: default_connect_timeout(),
        }
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
fn default_mailbox() -> String {
    "INBOX".into()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(30)
}
