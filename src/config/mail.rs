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
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// `imap` in production, `maildir` for the embedded default.
    pub source: SourceKind,
    /// `smtp` in production, `file` writes each outgoing mail into `outbox.dir`.
    pub transport: TransportKind,
    /// The helpdesk address replies come from. Mail from it is never answered.
    pub from: String,
    /// Display name on outgoing mail.
    pub from_name: String,
    /// Domain of the Message-IDs trialdesk generates; defaults to the domain of `from`.
    /// Inbound mail whose own Message-ID is under it is our own mail coming back.
    pub message_id_domain: Option<String>,
    /// Further addresses that are ours (aliases of the helpdesk); never answered.
    pub own_addresses: Vec<String>,
    /// Mails larger than this are not parsed whole: they go to review with their headers.
    pub max_message_bytes: usize,
    /// Deepest MIME nesting read (each multipart or attached message is one level; a plain
    /// mail is 1, a forwarded mail with attachments about 4). Deeper mail goes to review with
    /// its headers: very deep structures cost stack and time for nothing a person writes.
    pub max_mime_depth: usize,
    /// Most MIME parts read, attached messages' parts included. Mail with more goes to review
    /// with its headers.
    pub max_mime_parts: usize,
    /// A mail whose processing fails this many times for a reason retrying does not fix (or
    /// panics once) is set aside for review as `unprocessable`, so it cannot stall the rest.
    pub max_processing_failures: u32,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            source: SourceKind::Maildir,
            transport: TransportKind::File,
            from: "helpdesk@example.test".into(),
            from_name: "Trial Helpdesk".into(),
            message_id_domain: None,
            own_addresses: Vec::new(),
            max_message_bytes: 25 * 1024 * 1024,
            max_mime_depth: 20,
            max_mime_parts: 500,
            max_processing_failures: 3,
        }
    }
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
#[serde(default, deny_unknown_fields)]
pub struct MaildirConfig {
    /// The Maildir (with `new/`, `cur/`, `tmp/`); relative to the config file.
    pub path: PathBuf,
    /// How often `run` looks into `new/` when it has nothing to do.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for MaildirConfig {
    fn default() -> Self {
        MaildirConfig {
            path: PathBuf::from("maildir"),
            poll_interval: Duration::from_secs(1),
        }
    }
}
