//! The SMTP conversation phase by phase — `MAIL`, `RCPT`, `DATA` within `smtp.timeout`, the
//! message and its final reply within `smtp.data_timeout` — and what a lettre error seen in a
//! phase means ([`Failure`]). Separate from connection set-up and from the outbox-facing send
//! logic: this is where "where did it fail" is decided.

use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};

use super::SmtpTransport;
use crate::outbound::smtp_failure::{self, Phase, Seen, Verdict};

/// A failure with its meaning (see [`super::smtp_failure`]) and a description for the outbox
/// and the logs.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub(super) phase: Phase,
    pub(super) seen: Seen,
    pub(super) verdict: Verdict,
    pub(super) text: String,
}

impl Failure {
    pub(super) fn new(phase: Phase, seen: Seen, text: String) -> Failure {
        Failure {
            phase,
            seen,
            verdict: smtp_failure::classify(phase, seen),
            text,
        }
    }

    pub(super) fn from_lettre(phase: Phase, e: &lettre::transport::smtp::Error) -> Failure {
        Failure::new(phase, seen_in(e), describe(e))
    }

    pub(super) fn timeout(phase: Phase, text: String) -> Failure {
        Failure::new(phase, Seen::Timeout, text)
    }

    /// Broke before any reply was read (a stale pooled connection looks like this).
    pub(super) fn network(&self) -> bool {
        matches!(self.seen, Seen::Network)
    }
}

impl SmtpTransport {
    /// `MAIL`, `RCPT`, `DATA` (each within `smtp.timeout`), then the message and the reply to
    /// its final dot (within `smtp.data_timeout`, plus time for the size on a slow link).
    /// What lettre's `send` does, phase by phase, so a failure says where it happened.
    pub(super) async fn exchange(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<(), Failure> {
        let mut options = Vec::new();
        let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
        let non_ascii =
            envelope.from().is_some_and(|a| !ascii(a)) || envelope.to().iter().any(|a| !ascii(a));
        if non_ascii {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(Failure::new(
                    Phase::Envelope,
                    Seen::ClientRefusal,
                    "non-ascii address and the relay does not support SMTPUTF8".into(),
                ));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !body.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err(Failure::new(
                    Phase::Envelope,
                    Seen::ClientRefusal,
                    "non-ascii message and the relay does not support 8BITMIME".into(),
                ));
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let step = self.config.timeout;
        let late = |what: &str, limit: Duration| {
            format!(
                "{}: no answer to {what} within {}",
                self.relay(),
                humantime::format_duration(limit)
            )
        };
        let command = |r: Result<
            Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error>,
            tokio::time::error::Elapsed,
        >,
                       what: &str| match r {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Failure::from_lettre(Phase::Envelope, &e)),
            Err(_) => Err(Failure::timeout(Phase::Envelope, late(what, step))),
        };
        let mail = Mail::new(envelope.from().cloned(), options);
        command(
            tokio::time::timeout(step, conn.command(mail)).await,
            "MAIL FROM",
        )?;
        for to in envelope.to() {
            let rcpt = Rcpt::new(to.clone(), vec![]);
            command(
                tokio::time::timeout(step, conn.command(rcpt)).await,
                "RCPT TO",
            )?;
        }
        command(tokio::time::timeout(step, conn.command(Data)).await, "DATA")?;
        // Size-aware limit: a large body on a slow link is not a dead relay.
        let limit = self.config.data_timeout + Duration::from_millis(body.len() as u64 / 100);
        match tokio::time::timeout(limit, conn.message(body)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Failure::from_lettre(Phase::Body, &e)),
            Err(_) => Err(Failure::timeout(
                Phase::Body,
                format!("{} (smtp.data_timeout)", late("the message", limit)),
            )),
        }
    }
}

/// What a lettre error saw: a reply (with its enhanced status code), a timeout, a broken
/// connection, or a refusal on our side.
fn seen_in(e: &lettre::transport::smtp::Error) -> Seen {
    if let Some(code) = e.status() {
        let text = std::error::Error::source(e)
            .map(|s| s.to_string())
            .unwrap_or_default();
        return Seen::Reply {
            code: u16::from(code),
            enhanced: smtp_failure::enhanced_code(&text),
        };
    }
    if e.is_timeout() {
        return Seen::Timeout;
    }
    if e.is_client() {
        // lettre's own refusals: the mail needs an extension the relay lacks, or no AUTH
        // mechanism in common (the relay set-up).
        return if e.to_string().contains("authentication mechanism") {
            Seen::Setup
        } else {
            Seen::ClientRefusal
        };
    }
    // Network and TLS errors, and a reply cut short ("incomplete response": the relay closed).
    Seen::Network
}

/// The error with its cause chain (lettre keeps the server's answer in the source).
fn describe(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
