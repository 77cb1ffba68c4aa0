//! The production transport: SMTP through a relay. lettre speaks the protocol (EHLO,
//! STARTTLS, AUTH, MAIL/RCPT/DATA, dot-stuffing); this module owns the connections, so that
//! they are opened with `TCP_NODELAY` and reused from a small pool.
//!
//! Why own the connections: lettre writes the message and its terminating `.` in two writes.
//! Without `TCP_NODELAY`, Nagle's algorithm holds the `.` back until the relay acknowledges
//! the body — up to 40 ms of delayed ACK per mail — and if trialdesk dies in that moment the
//! kernel still sends the `.`, the relay delivers, and the outbox, which never heard the
//! `250`, sends the mail again. With the `.` on the wire at once, that window shrinks to the
//! relay's own processing time, and sending is an order of magnitude faster.
//!
//! What a failure means decides what the outbox does, so the mapping is one pure rule,
//! [`super::smtp_failure::classify`], over the phase of the conversation and the reply (or
//! connection event) seen there:
//! - connection, TLS and login failures, `421`, and timeouts before the message was handed
//!   over → [`SendError::Relay`]: the sender backs off as a whole, no attempt is counted (a
//!   refused login also drops the cached XOAUTH2 token);
//! - other `4xx` → [`SendError::Transient`]: this message is retried with backoff;
//! - other `5xx` → [`SendError::Permanent`] with the server's full answer, which lands in the
//!   review queue. With several recipients a 5xx may concern only one, so the mail is then sent
//!   recipient by recipient: the others still get it, and the review item says who did and who
//!   did not;
//! - a timeout or a dropped connection while the message is sent or its final `250` awaited →
//!   [`SendError::Unknown`]: the relay may have it; never resent at once on another connection.
//!
//! The phases are driven here (`MAIL`, `RCPT`, `DATA` within `smtp.timeout` each, the message
//! and the reply to its final dot within `smtp.data_timeout`, RFC 5321 §4.5.3.2) rather than by
//! lettre's one-call `send`, so a failure knows where it happened. lettre writes the message and
//! its final dot together inside one call, so a connection dropped while the body is still
//! being written is also reported as "outcome unknown": that costs a delay, never a duplicate.

mod connect;
mod phases;
mod probe;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};

use super::file::envelope;
use super::smtp_failure::{Phase, Seen, Verdict};
use super::{Outgoing, SendError, SendFuture, Transport};
use crate::config::{Credential, Secret, SmtpConfig};
use crate::mailauth::current_secret;
use connect::tls_setup;
use phases::Failure;

/// A pooled connection unused longer than this is checked with NOOP before reuse.
const CHECK_AFTER: Duration = Duration::from_secs(2);

pub struct SmtpTransport {
    config: SmtpConfig,
    credential: Option<Credential>,
    /// For implicit TLS (our own rustls stream) and STARTTLS (lettre's upgrade).
    rustls: Option<Arc<rustls::ClientConfig>>,
    starttls: Option<TlsParameters>,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    /// The last login secret and when it was fetched (XOAUTH2 tokens are refreshed).
    secret: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

impl SmtpTransport {
    /// Reads the CA file and the password now, so a bad config fails at start.
    pub fn new(config: &SmtpConfig, base_dir: &Path) -> anyhow::Result<SmtpTransport> {
        let credential = config.credential(base_dir)?;
        let (rustls, starttls) = tls_setup(config, base_dir)?;
        Ok(SmtpTransport {
            config: config.clone(),
            credential,
            rustls,
            starttls,
            idle: Mutex::new(Vec::new()),
            secret: tokio::sync::Mutex::new(None),
        })
    }

    fn relay(&self) -> String {
        format!("{}:{}", self.config.host, self.config.port)
    }

    /// The secret to log in with, fetched again when a token is older than the refresh time.
    async fn login_secret(&self) -> Result<Option<Secret>, Failure> {
        let Some(credential) = &self.credential else {
            return Ok(None);
        };
        let mut cached = self.secret.lock().await;
        let fresh = match (&*cached, credential) {
            (Some(_), Credential::Password(_)) => true,
            (Some((_, at)), _) => at.elapsed() < self.config.oauth2_token_refresh,
            (None, _) => false,
        };
        if !fresh {
            let s = current_secret(credential, self.config.timeout)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "cannot get the SMTP login secret");
                    Failure::new(Phase::Auth, Seen::Setup, format!("SMTP login secret: {e}"))
                })?;
            *cached = Some((s, Instant::now()));
        }
        Ok(cached.as_ref().map(|(s, _)| s.clone()))
    }

    /// A connection from the pool (checked with NOOP when it sat idle), or a new one.
    async fn checkout(&self) -> Result<(AsyncSmtpConnection, bool), Failure> {
        loop {
            let candidate = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
            let Some((mut conn, since)) = candidate else {
                break;
            };
            let polite = Duration::from_secs(1);
            if since.elapsed() > self.config.pool_idle_timeout {
                let _ = tokio::time::timeout(polite, conn.abort()).await;
                continue;
            }
            if since.elapsed() > CHECK_AFTER {
                let alive = tokio::time::timeout(self.config.timeout, conn.test_connected()).await;
                if alive != Ok(true) {
                    continue;
                }
            }
            return Ok((conn, true));
        }
        self.checkout_fresh().await
    }

    /// Closes a connection after a failure: politely (QUIT) after a reply, within a second; a
    /// silent or broken relay would never answer the QUIT, so then it is just dropped.
    async fn discard(&self, mut conn: AsyncSmtpConnection, failure: &Failure) {
        if matches!(failure.seen, Seen::Reply { .. }) {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.abort()).await;
        }
    }

    async fn checkout_fresh(&self) -> Result<(AsyncSmtpConnection, bool), Failure> {
        self.open().await.map(|c| (c, false)).map_err(|(_, f)| f)
    }

    fn checkin(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.config.pool_size as usize {
                idle.push((conn, Instant::now()));
            }
        }
    }

    /// One SMTP transaction for `envelope`.
    async fn transaction(&self, envelope: &Envelope, body: &[u8]) -> Result<(), Failure> {
        let (mut conn, reused) = self.checkout().await?;
        let failure = match self.exchange(&mut conn, envelope, body).await {
            Ok(()) => {
                self.checkin(conn);
                return Ok(());
            }
            Err(f) => {
                self.discard(conn, &f).await;
                f
            }
        };
        // A pooled connection the relay had closed meanwhile: once more on a fresh one. Only
        // before the message was handed over: after it, the relay may have it already.
        if reused && failure.phase == Phase::Envelope && failure.network() {
            let (mut fresh, _) = self.checkout_fresh().await?;
            return match self.exchange(&mut fresh, envelope, body).await {
                Ok(()) => {
                    self.checkin(fresh);
                    Ok(())
                }
                Err(f) => {
                    self.discard(fresh, &f).await;
                    Err(f)
                }
            };
        }
        Err(failure)
    }

    async fn send_mail(&self, mail: Outgoing<'_>) -> Result<(), SendError> {
        let env = envelope(&mail)?;
        let Err(f) = self.transaction(&env, mail.body).await else {
            return Ok(());
        };
        match f.verdict {
            Verdict::Relay => {
                if f.phase == Phase::Auth
                    || matches!(f.seen, Seen::Reply { code, .. } if matches!(code, 530 | 534 | 535 | 538))
                {
                    tracing::error!(error = %f.text, relay = %self.relay(), "SMTP relay refused the login; check smtp.username and the password or token");
                    *self.secret.lock().await = None;
                }
                Err(SendError::Relay(f.text))
            }
            Verdict::OutcomeUnknown => Err(SendError::Unknown(f.text)),
            Verdict::MessageTransient => Err(SendError::Transient(f.text)),
            Verdict::MessagePermanent if mail.recipients.len() > 1 => {
                self.send_one_by_one(&mail).await
            }
            Verdict::MessagePermanent => Err(SendError::Permanent(format!(
                "{} refused the mail to {}: {}",
                self.relay(),
                mail.recipients.join(", "),
                f.text
            ))),
        }
    }

    /// After a 5xx with several recipients: one envelope per recipient, so a refused address
    /// does not keep the mail from the others.
    async fn send_one_by_one(&self, mail: &Outgoing<'_>) -> Result<(), SendError> {
        let mut delivered = Vec::new();
        let mut refused = Vec::new();
        let mut deferred = Vec::new();
        let mut unknown = false;
        for rcpt in mail.recipients {
            let env = envelope(&Outgoing {
                envelope_from: mail.envelope_from,
                recipients: std::slice::from_ref(rcpt),
                body: mail.body,
            })?;
            match self.transaction(&env, mail.body).await {
                Ok(()) => delivered.push(rcpt.clone()),
                Err(f) if f.verdict == Verdict::MessagePermanent => {
                    refused.push(format!("{rcpt}: {}", f.text))
                }
                Err(f) => {
                    unknown |= f.verdict == Verdict::OutcomeUnknown;
                    deferred.push(format!("{rcpt}: {}", f.text))
                }
            }
        }
        if refused.is_empty() && deferred.is_empty() {
            return Ok(());
        }
        if delivered.is_empty() && refused.is_empty() {
            // Nobody has it for sure: retrying the whole mail later duplicates nothing (or,
            // when an outcome is unknown, only after the unknown-outcome delay).
            let text = deferred.join("; ");
            return Err(if unknown {
                SendError::Unknown(text)
            } else {
                SendError::Transient(text)
            });
        }
        // Someone has it, or someone never will: a person decides what to resend.
        let mut parts = Vec::new();
        if !delivered.is_empty() {
            parts.push(format!("delivered to {}", delivered.join(", ")));
        }
        if !refused.is_empty() {
            parts.push(format!("refused for {}", refused.join("; ")));
        }
        if !deferred.is_empty() {
            parts.push(format!(
                "not delivered (temporary error) for {}",
                deferred.join("; ")
            ));
        }
        Err(SendError::Permanent(format!(
            "{}: {}",
            self.relay(),
            parts.join("; ")
        )))
    }
}

impl Transport for SmtpTransport {
    fn send<'a>(&'a self, mail: Outgoing<'a>) -> SendFuture<'a> {
        Box::pin(self.send_mail(mail))
    }

    fn describe(&self) -> String {
        format!(
            "smtp://{}:{} (tls: {})",
            self.config.host,
            self.config.port,
            self.config.tls.as_str()
        )
    }
}
