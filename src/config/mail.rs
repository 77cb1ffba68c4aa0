use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// Where inbound mail comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Imap,
    Maildir,
}

/// How outbound mail leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Smtp,
    File,
}

/// `[mail]`: the helpdesk's identity and which source and transport to use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// `imap` in production, `maildir` for the embedded default.
    #[serde(default = "default_source")]
    pub source: SourceKind,
    /// `smtp` in production, `file` writes each outgoing mail into `outbox.dir`.
    #[serde(default = "default_transport")]
    pub transport: TransportKind,
    /// The helpdesk address replies come from. Mail from it is never answered.
    #[serde(default = "default_from")]
    pub from: String,
    /// Display name on outgoing mail.
    #[serde(default = "default_from_name")]
    pub from_name: String,
    /// Domain of the Message-IDs trialdesk generates; defaults to the domain of `from`.
    /// Inbound mail whose own Message-ID is under it is our own mail coming back.
    #[serde(default)]
    pub message_id_domain: Option<String>,
    /// Further addresses that are ours (aliases of the helpdesk); never answered.
    #[serde(default)]
    pub own_addresses: Vec<String>,
    /// Mails larger than this are not parsed whole: they go to review with their headers.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Deepest MIME nesting read (each multipart or attached message is one level; a plain
    /// mail is 1, a forwarded mail with attachments about 4). Deeper mail goes to review with
    /// its headers: very deep structures cost stack and time for nothing a person writes.
    #[serde(default = "default_max_mime_depth")]
    pub max_mime_depth: usize,
    /// Most MIME parts read, attached messages' parts included. Mail with more goes to review
    /// with its headers.
    #[serde(default = "default_max_mime_parts")]
    pub max_mime_parts: usize,
    /// A mail whose processing fails this many times for a reason retrying does not fix (or
    /// panics once) is set aside for review as `unprocessable`, so it cannot stall the rest.
    #[serde(default = "default_max_processing_failures")]
    pub max_processing_failures: u32,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            source: default_source(),
            transport: default_transport(),
            from: default_from(),
            from_name: default_from_name(),
            message_id_domain: None,
            own_addresses: Vec::new(),
            max_message_bytes: default_max_message_bytes(),
            max_mime_depth: default_max_mime_depth(),
            max_mime_parts: default_max_mime_parts(),
            max_processing_failures: default_max_processing_failures(),
        }
    }
}

fn default_source() -> SourceKind {
    SourceKind::Maildir
}
fn default_transport() -> TransportKind {
    TransportKind::File
}
fn default_from() -> String {
    "helpdesk@example.test".into()
}
fn default_from_name() -> String {
    "Trial Helpdesk".into()
}
fn default_max_message_bytes() -> usize {
    25 * 1024 * 1024
}
fn default_max_mime_depth() -> usize {
    20
}
fn default_max_mime_parts() -> usize {
    500
}
fn default_max_processing_failures() -> u32 {
    3
}

impl MailConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if crate::domain::address_domain(&self.from).is_none() {
            return Err(invalid(
                "mail.from",
                "must be a mail address like helpdesk@example.com",
            ));
        }
        for a in &self.own_addresses {
            if crate::domain::address_domain(a).is_none() {
                return Err(invalid(
                    "mail.own_addresses",
                    format!("{a:?} is not a mail address"),
                ));
            }
        }
        if self.max_message_bytes < 4096 {
            return Err(invalid("mail.max_message_bytes", "must be at least 4096"));
        }
        if !(1..=1000).contains(&self.max_mime_depth) {
            return Err(invalid("mail.max_mime_depth", "must be between 1 and 1000"));
        }
        if !(1..=100_000).contains(&self.max_mime_parts) {
            return Err(invalid(
                "mail.max_mime_parts",
                "must be between 1 and 100000",
            ));
        }
        Ok(())
    }

    /// Domain for generated Message-IDs.
    pub fn message_id_domain(&self) -> String {
        self.message_id_domain.clone().unwrap_or_else(|| {
            crate::domain::address_domain(&self.from)
                .unwrap_or("localhost")
                .to_ascii_lowercase()
        })
    }

    /// Every address that is ours, lower-cased.
    pub fn own_addresses(&self) -> Vec<String> {
        std::iter::once(&self.from)
            .chain(self.own_addresses.iter())
            .map(|a| a.trim().to_ascii_lowercase())
            .collect()
    }
}

/// `[maildir]`: the embedded default source, a Maildir whose `new/` holds unread mail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaildirConfig {
    /// The Maildir (with `new/`, `cur/`, `tmp/`); relative to the config file.
    #[serde(default = "default_maildir_path")]
    pub path: PathBuf,
    /// How often `run` looks into `new/` when it has nothing to do.
    #[serde(default = "default_poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for MaildirConfig {
    fn default() -> Self {
        MaildirConfig {
            path: default_maildir_path(),
            poll_interval: default_poll_interval(),
        }
    }
}

fn default_maildir_path() -> PathBuf {
    PathBuf::from("maildir")
}
fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}
