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

use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};

use super::file::envelope;
use super::smtp_failure::{self, Phase, Seen, Verdict};
use super::{Outgoing, SendError, SendFuture, Transport};
use crate::config::{AuthMechanism, Credential, Secret, SmtpConfig, TlsMode};
use crate::mailauth::current_secret;
use crate::probe::ProbeStep;

/// A pooled connection unused longer than this is checked with NOOP before reuse.
const CHECK_AFTER: Duration = Duration::from_secs(2);

/// A failure with its meaning (see [`super::smtp_failure`]) and a description for the outbox
/// and the logs.
#[derive(Debug, Clone)]
struct Failure {
    phase: Phase,
    seen: Seen,
    verdict: Verdict,
    text: String,
}

impl Failure {
    fn new(phase: Phase, seen: Seen, text: String) -> Failure {
        Failure {
            phase,
            seen,
            verdict: smtp_failure::classify(phase, seen),
            text,
        }
    }

    fn from_lettre(phase: Phase, e: &lettre::transport::smtp::Error) -> Failure {
        Failure::new(phase, seen_in(e), describe(e))
    }

    fn timeout(phase: Phase, text: String) -> Failure {
        Failure::new(phase, Seen::Timeout, text)
    }

    /// Broke before any reply was read (a stale pooled connection looks like this).
    fn network(&self) -> bool {
        matches!(self.seen, Seen::Network)
    }
}

/// Connection steps, for `check` and for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Connect,
    Tls,
    Greeting,
    Starttls,
    Auth,
}

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

    /// Opens a connection: TCP (no Nagle), TLS, greeting, STARTTLS, AUTH.
    async fn open(&self) -> Result<AsyncSmtpConnection, (Step, Failure)> {
        let secret = self.login_secret().await.map_err(|f| (Step::Auth, f))?;
        let limit = self.config.timeout;
        match tokio::time::timeout(limit, self.open_steps(secret.as_ref())).await {
            Ok(r) => r,
            Err(_) => Err((
                Step::Connect,
                Failure::timeout(
                    Phase::Connect,
                    format!(
                        "{}: no complete answer within {} (smtp.timeout)",
                        self.relay(),
                        humantime::format_duration(limit)
                    ),
                ),
            )),
        }
    }

    async fn open_steps(
        &self,
        secret: Option<&Secret>,
    ) -> Result<AsyncSmtpConnection, (Step, Failure)> {
        let c = &self.config;
        let tcp = TcpStream::connect((c.host.as_str(), c.port))
            .await
            .map_err(|e| {
                (
                    Step::Connect,
                    Failure::new(
                        Phase::Connect,
                        Seen::Network,
                        format!("cannot connect to {}: {e}", self.relay()),
                    ),
                )
            })?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn AsyncTokioStream> = match (c.tls, &self.rustls) {
            (TlsMode::Implicit, Some(config)) => {
                let name = rustls::pki_types::ServerName::try_from(c.server_name().to_string())
                    .map_err(|e| {
                        (
                            Step::Tls,
                            Failure::new(
                                Phase::Tls,
                                Seen::Setup,
                                format!(
                                    "{:?} is not a valid TLS server name: {e}",
                                    c.server_name()
                                ),
                            ),
                        )
                    })?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| {
                        (
                            Step::Tls,
                            Failure::new(
                                Phase::Tls,
                                Seen::Network,
                                crate::tls::explain_error(&e, c.server_name(), "smtp"),
                            ),
                        )
                    })?;
                Box::new(TlsTcp(tls))
            }
            _ => Box::new(tcp),
        };
        let hello = hello_name(c);
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &hello)
            .await
            .map_err(|e| (Step::Greeting, Failure::from_lettre(Phase::Greeting, &e)))?;
        if c.tls == TlsMode::Starttls {
            let params = self.starttls.clone().ok_or_else(|| {
                (
                    Step::Starttls,
                    Failure::new(Phase::Tls, Seen::Setup, "no TLS parameters".into()),
                )
            })?;
            conn.starttls(params, &hello).await.map_err(|e| {
                let mut f = Failure::from_lettre(Phase::Tls, &e);
                f.text = explain_lettre_tls(&e, c).unwrap_or(f.text);
                (Step::Starttls, f)
            })?;
        }
        if let (Some(user), Some(secret)) = (&c.username, secret) {
            let creds = Credentials::new(user.clone(), secret.expose().to_string());
            conn.auth(&[mechanism(c.auth)], &creds).await.map_err(|e| {
                let mut f = Failure::from_lettre(Phase::Auth, &e);
                f.text = format!(
                    "{} (check smtp.username and the {})",
                    f.text,
                    if c.auth == AuthMechanism::Xoauth2 {
                        "token"
                    } else {
                        "password"
                    }
                );
                (Step::Auth, f)
            })?;
        }
        Ok(conn)
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

    /// `MAIL`, `RCPT`, `DATA` (each within `smtp.timeout`), then the message and the reply to
    /// its final dot (within `smtp.data_timeout`, plus time for the size on a slow link).
    /// What lettre's `send` does, phase by phase, so a failure says where it happened.
    async fn exchange(
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

    /// Connects, secures, greets and logs in like a send would, without sending anything (for
    /// `trialdesk check`). Each step passed, and the first failure, are reported in order.
    pub async fn probe(config: &SmtpConfig, base_dir: &Path) -> Vec<ProbeStep> {
        let relay = format!("{}:{}", config.host, config.port);
        let transport = match SmtpTransport::new(config, base_dir) {
            Ok(t) => t,
            Err(e) => return vec![ProbeStep::fail("smtp setup", format!("{e:#}"))],
        };
        let connect = format!("smtp connect to {relay} (tls: {})", config.tls.as_str());
        let tls_line = || {
            ProbeStep::ok(
                &format!("smtp TLS ({})", config.tls.as_str()),
                format!("certificate valid for {}", config.server_name()),
            )
        };
        let auth_what = match &config.username {
            Some(u) => format!("smtp AUTH {} as {u}", config.auth.as_str()),
            None => "smtp login".to_string(),
        };
        let mut steps = Vec::new();
        match transport.open().await {
            Ok(mut conn) => {
                steps.push(ProbeStep::ok(
                    &connect,
                    format!("EHLO answered by {}", conn.server_info().name()),
                ));
                if config.tls != TlsMode::None {
                    steps.push(tls_line());
                }
                steps.push(ProbeStep::ok(
                    &auth_what,
                    if config.username.is_some() {
                        "accepted".into()
                    } else {
                        "no smtp.username: sending without AUTH".into()
                    },
                ));
                let _ = conn.quit().await;
            }
            Err((step, f)) => {
                let tcp_open = ProbeStep::ok(&connect, "TCP connection open".into());
                let greeted = ProbeStep::ok(&connect, "EHLO answered".into());
                match step {
                    Step::Connect => {}
                    Step::Tls => steps.push(tcp_open),
                    Step::Greeting => {
                        steps.push(tcp_open);
                        if config.tls == TlsMode::Implicit {
                            steps.push(tls_line());
                        }
                    }
                    Step::Starttls => steps.push(greeted),
                    Step::Auth => {
                        steps.push(greeted);
                        if config.tls != TlsMode::None {
                            steps.push(tls_line());
                        }
                    }
                }
                let what = match step {
                    Step::Connect | Step::Greeting => connect.clone(),
                    Step::Tls | Step::Starttls => format!("smtp TLS ({})", config.tls.as_str()),
                    Step::Auth => auth_what,
                };
                steps.push(ProbeStep::fail(&what, f.text));
            }
        }
        steps
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

/// Implicit-TLS stream handed to lettre.
#[derive(Debug)]
struct TlsTcp(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

fn mechanism(auth: AuthMechanism) -> Mechanism {
    match auth {
        AuthMechanism::Plain => Mechanism::Plain,
        AuthMechanism::Login => Mechanism::Login,
        AuthMechanism::Xoauth2 => Mechanism::Xoauth2,
    }
}

fn hello_name(config: &SmtpConfig) -> ClientId {
    match &config.hello_name {
        Some(name) => ClientId::Domain(name.clone()),
        None => ClientId::default(),
    }
}

/// rustls for implicit TLS, lettre's parameters for STARTTLS; both trust the built-in public
/// roots plus `smtp.ca_file`.
fn tls_setup(
    config: &SmtpConfig,
    base_dir: &Path,
) -> anyhow::Result<(Option<Arc<rustls::ClientConfig>>, Option<TlsParameters>)> {
    let ca = config.ca_file.as_ref().map(|p| base_dir.join(p));
    match config.tls {
        TlsMode::None => Ok((None, None)),
        TlsMode::Implicit => {
            let c = crate::tls::client_config(ca.as_deref())
                .map_err(|e| anyhow::anyhow!("config key `smtp.ca_file`: {e}"))?;
            Ok((Some(c), None))
        }
        TlsMode::Starttls => {
            let mut builder = TlsParameters::builder(config.server_name().to_string());
            if let Some(path) = &ca {
                let pem = std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!(
                        "config key `smtp.ca_file`: cannot read {}: {e}",
                        path.display()
                    )
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    anyhow::anyhow!(
                        "config key `smtp.ca_file`: {} is not PEM: {e}",
                        path.display()
                    )
                })?;
                builder = builder.add_root_certificate(cert);
            }
            let params = builder
                .build_rustls()
                .map_err(|e| anyhow::anyhow!("config key `smtp.tls`: cannot set up TLS: {e}"))?;
            Ok((None, Some(params)))
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

/// A certificate problem inside a lettre error, in the words `check` uses for IMAP.
fn explain_lettre_tls(e: &lettre::transport::smtp::Error, config: &SmtpConfig) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<rustls::Error>() {
            let io = std::io::Error::other(r.clone());
            return Some(crate::tls::explain_error(&io, config.server_name(), "smtp"));
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some())
            {
                return Some(crate::tls::explain_error(io, config.server_name(), "smtp"));
            }
        }
        source = s.source();
    }
    None
}
