//! Outbound: composing replies, the outbox sender, and the transports mail leaves through.
//!
//! Replies are rendered and composed into complete RFC 5322 bytes *before* they are queued
//! (`compose`, `templates`), so a retry resends exactly the same message. The [`sender`]
//! claims due rows from the outbox and hands them to a [`Transport`]: `file` for the embedded
//! default, SMTP in production. Only the transports know lettre's transport types.

pub mod compose;
pub mod file;
pub mod headers;
pub mod sender;
pub mod smtp;
pub mod smtp_failure;
pub mod templates;

use std::future::Future;
use std::pin::Pin;

/// Why a send failed, which decides what the outbox does next.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    /// Worth retrying later: network trouble, 4xx replies, a full disk.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// Retrying cannot help (5xx replies, a rejected recipient): goes to review as is.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The relay cannot take any mail now (connection refused, TLS or login failure, 421, a
    /// timeout before DATA): the sender backs off as a whole and counts no attempt.
    #[error("relay unavailable: {0}")]
    Relay(String),
    /// The message was handed over but no reply to its final dot came (timeout, dropped
    /// connection): it may have been delivered. Retried only after
    /// `outbox.unknown_outcome_delay`.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// A mail ready to go: envelope plus the exact bytes to transmit.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub envelope_from: &'a str,
    pub recipients: &'a [String],
    pub body: &'a [u8],
}

pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// Something that delivers a composed mail. Object-safe so tests can plug in fakes.
pub trait Transport: Send + Sync {
    fn send<'a>(&'a self, mail: Outgoing<'a>) -> SendFuture<'a>;

    /// A short name for logs ("file:/var/outbox", "smtp:relay:587").
    fn describe(&self) -> String;
}

pub use compose::{ComposeError, Composer};
pub use sender::{Sender, SenderStats};
pub use templates::{TemplateError, Templates};

/// RFC 3986 percent-encoding of everything but unreserved characters (for URL parts built
/// from data: query values, tracking numbers, attachment names).
pub fn percent_encode(s: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, RESERVED).to_string()
}
