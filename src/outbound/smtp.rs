//! The production transport: SMTP through a relay (lettre on tokio, TLS by rustls), with a
//! pool of reused connections.
//!
//! What a failure means decides what the outbox does, so the mapping is deliberate:
//! - network trouble, timeouts, TLS failures, 4xx replies → [`SendError::Transient`]: retried
//!   with backoff;
//! - the relay refusing *our login* (530/534/535/538) is about the configuration, not the
//!   mail → transient too (logged as an error; an XOAUTH2 token is fetched again);
//! - any other 5xx → [`SendError::Permanent`] with the server's full answer, which lands in
//!   the review queue. With several recipients a 5xx may concern only one (lettre stops at the
//!   first refused RCPT and sends nothing), so the mail is then sent recipient by recipient:
//!   the others still get it, and the review item says who did and who did not.

use std::path::Path;
use std::time::Instant;

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::{AsyncSmtpTransport, PoolConfig};
use lettre::{AsyncTransport, Tokio1Executor};

use super::file::envelope;
use super::{Outgoing, SendError, SendFuture, Transport};
use crate::config::{AuthMechanism, Credential, Secret, SmtpConfig, TlsMode};
use crate::health::ProbeStep;
use crate::mailauth::current_secret;

type Lettre = AsyncSmtpTransport<Tokio1Executor>;

/// How a lettre error is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Transient,
    Permanent,
    /// The relay refused our credentials.
    Auth,
}

pub struct SmtpTransport {
    config: SmtpConfig,
    credential: Option<Credential>,
    tls: Option<TlsParameters>,
    state: tokio::sync::Mutex<State>,
}

struct State {
    transport: Option<Lettre>,
    /// When the credential in `transport` was fetched (token refresh).
    fetched: Option<Instant>,
}

impl SmtpTransport {
    /// Reads the CA file and the password now, so a bad config fails at start.
    pub fn new(config: &SmtpConfig, base_dir: &Path) -> anyhow::Result<SmtpTransport> {
        let credential = config.credential(base_dir)?;
        let tls = tls_parameters(config, base_dir)?;
        Ok(SmtpTransport {
            config: config.clone(),
            credential,
            tls,
            state: tokio::sync::Mutex::new(State {
                transport: None,
                fetched: None,
            }),
        })
    }

    fn build(&self, secret: Option<&Secret>) -> Lettre {
        let c = &self.config;
        let mut b = Lettre::builder_dangerous(c.host.as_str())
            .port(c.port)
            .timeout(Some(c.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(c.pool_size)
                    .idle_timeout(c.pool_idle_timeout),
            );
        b = match (&self.tls, c.tls) {
            (Some(p), TlsMode::Starttls) => b.tls(Tls::Required(p.clone())),
            (Some(p), TlsMode::Implicit) => b.tls(Tls::Wrapper(p.clone())),
            _ => b.tls(Tls::None),
        };
        if let (Some(user), Some(secret)) = (&c.username, secret) {
            b = b
                .credentials(Credentials::new(user.clone(), secret.expose().to_string()))
                .authentication(vec![mechanism(c.auth)]);
        }
        b = b.hello_name(hello_name(c));
        b.build()
    }

    /// The transport to use now, fetching a fresh token first when the old one is stale.
    async fn current(&self) -> Result<Lettre, SendError> {
        let mut state = self.state.lock().await;
        let token = matches!(
            self.credential,
            Some(Credential::TokenCommand(_) | Credential::TokenFile(_))
        );
        let stale = match (&state.transport, state.fetched) {
            (None, _) => true,
            (Some(_), Some(at)) if token => at.elapsed() >= self.config.oauth2_token_refresh,
            _ => false,
        };
        if stale {
            let secret = match &self.credential {
                Some(c) => Some(current_secret(c, self.config.timeout).await.map_err(|e| {
                    tracing::error!(error = %e, "cannot get the SMTP login secret");
                    SendError::Transient(format!("SMTP login secret: {e}"))
                })?),
                None => None,
            };
            state.transport = Some(self.build(secret.as_ref()));
            state.fetched = Some(Instant::now());
        }
        Ok(state.transport.clone().expect("built above"))
    }

    /// Forgets the transport so the next send logs in with a freshly fetched secret.
    async fn invalidate(&self) {
        let mut state = self.state.lock().await;
        state.transport = None;
        state.fetched = None;
    }

    async fn send_mail(&self, mail: Outgoing<'_>) -> Result<(), SendError> {
        let env = envelope(&mail)?;
        let transport = self.current().await?;
        let Err(e) = transport.send_raw(&env, mail.body).await else {
            return Ok(());
        };
        match classify(&e) {
            Class::Transient => Err(SendError::Transient(describe(&e))),
            Class::Auth => {
                tracing::error!(error = %describe(&e), relay = %self.relay(), "SMTP relay refused the login; check smtp.username and the password or token");
                self.invalidate().await;
                Err(SendError::Transient(format!(
                    "relay refused the login: {}",
                    describe(&e)
                )))
            }
            Class::Permanent if mail.recipients.len() > 1 => {
                self.send_one_by_one(&transport, &mail).await
            }
            Class::Permanent => Err(SendError::Permanent(format!(
                "{} refused the mail to {}: {}",
                self.relay(),
                mail.recipients.join(", "),
                describe(&e)
            ))),
        }
    }

    /// After a 5xx with several recipients: one envelope per recipient, so a refused address
    /// does not keep the mail from the others.
    async fn send_one_by_one(
        &self,
        transport: &Lettre,
        mail: &Outgoing<'_>,
    ) -> Result<(), SendError> {
        let mut delivered = Vec::new();
        let mut refused = Vec::new();
        let mut deferred = Vec::new();
        for rcpt in mail.recipients {
            let single = std::slice::from_ref(rcpt);
            let env = envelope(&Outgoing {
                envelope_from: mail.envelope_from,
                recipients: single,
                body: mail.body,
            })?;
            match transport.send_raw(&env, mail.body).await {
                Ok(_) => delivered.push(rcpt.clone()),
                Err(e) => match classify(&e) {
                    Class::Permanent => refused.push(format!("{rcpt}: {}", describe(&e))),
                    _ => deferred.push(format!("{rcpt}: {}", describe(&e))),
                },
            }
        }
        if refused.is_empty() && deferred.is_empty() {
            return Ok(());
        }
        if delivered.is_empty() && !deferred.is_empty() {
            // Nobody has it yet: retrying the whole mail later duplicates nothing.
            return Err(SendError::Transient(deferred.join("; ")));
        }
        // Someone has it: a retry would send it to them again, so a person decides.
        let mut parts = Vec::new();
        if !delivered.is_empty() {
            parts.push(format!("delivered to {}", delivered.join(", ")));
        }
        if !refused.is_empty() {
            parts.push(format!("refused for {}", refused.join("; ")));
        }
        if !deferred.is_empty() {
            parts.push(format!(
                "not delivered (temporary) for {}",
                deferred.join("; ")
            ));
        }
        Err(SendError::Permanent(format!(
            "{}: {}",
            self.relay(),
            parts.join("; ")
        )))
    }

    fn relay(&self) -> String {
        format!("{}:{}", self.config.host, self.config.port)
    }

    /// Connects, secures, greets and logs in like a send would, without sending anything (for
    /// `trialdesk check`). Each step passed or failed is reported in order.
    pub async fn probe(config: &SmtpConfig, base_dir: &Path) -> Vec<ProbeStep> {
        let mut steps = Vec::new();
        let relay = format!("{}:{}", config.host, config.port);
        let tls = match tls_parameters(config, base_dir) {
            Ok(t) => t,
            Err(e) => {
                steps.push(ProbeStep::fail("TLS setup", e.to_string()));
                return steps;
            }
        };
        let hello = hello_name(config);
        let wrapper = match config.tls {
            TlsMode::Implicit => tls.clone(),
            _ => None,
        };
        let mut conn = match AsyncSmtpConnection::connect_tokio1(
            (config.host.as_str(), config.port),
            Some(config.timeout),
            &hello,
            wrapper,
            None,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                steps.push(ProbeStep::fail(
                    &format!("connect to {relay} (tls: {})", config.tls.as_str()),
                    explain_connect(&e, config),
                ));
                return steps;
            }
        };
        steps.push(ProbeStep::ok(
            &format!("connect to {relay} (tls: {})", config.tls.as_str()),
            format!("EHLO answered by {}", conn.server_info().name()),
        ));
        if config.tls == TlsMode::Starttls {
            match tls {
                Some(params) => match conn.starttls(params, &hello).await {
                    Ok(()) => steps.push(ProbeStep::ok(
                        "STARTTLS",
                        format!("certificate valid for {}", config.server_name()),
                    )),
                    Err(e) => {
                        steps.push(ProbeStep::fail("STARTTLS", explain_connect(&e, config)));
                        return steps;
                    }
                },
                None => {
                    steps.push(ProbeStep::fail("STARTTLS", "no TLS parameters".into()));
                    return steps;
                }
            }
        }
        match config.credential(base_dir) {
            Ok(None) => steps.push(ProbeStep::ok(
                "login",
                "no smtp.username: sending without AUTH".into(),
            )),
            Ok(Some(credential)) => {
                let user = config.username.clone().unwrap_or_default();
                match current_secret(&credential, config.timeout).await {
                    Err(e) => steps.push(ProbeStep::fail("login secret", e.to_string())),
                    Ok(secret) => {
                        let creds = Credentials::new(user.clone(), secret.expose().to_string());
                        let what = format!("AUTH {} as {user}", config.auth.as_str());
                        match conn.auth(&[mechanism(config.auth)], &creds).await {
                            Ok(_) => steps.push(ProbeStep::ok(&what, "accepted".into())),
                            Err(e) => steps.push(ProbeStep::fail(&what, describe(&e))),
                        }
                    }
                }
            }
            Err(e) => steps.push(ProbeStep::fail("login secret", e.to_string())),
        }
        let _ = conn.quit().await;
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

fn tls_parameters(config: &SmtpConfig, base_dir: &Path) -> anyhow::Result<Option<TlsParameters>> {
    if config.tls == TlsMode::None {
        return Ok(None);
    }
    let mut builder = TlsParameters::builder(config.server_name().to_string());
    if let Some(ca) = &config.ca_file {
        let path = base_dir.join(ca);
        let pem = std::fs::read(&path).map_err(|e| {
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
    Ok(Some(builder.build_rustls().map_err(|e| {
        anyhow::anyhow!("config key `smtp.tls`: cannot set up TLS: {e}")
    })?))
}

fn classify(e: &lettre::transport::smtp::Error) -> Class {
    if let Some(code) = e.status() {
        let code = u16::from(code);
        return if e.is_permanent() {
            if matches!(code, 530 | 534 | 535 | 538) {
                Class::Auth
            } else {
                Class::Permanent
            }
        } else {
            Class::Transient
        };
    }
    if e.is_client() {
        // The only client-side refusals about the mail itself: the relay cannot carry it.
        let text = e.to_string();
        if text.contains("non-ascii") {
            return Class::Permanent;
        }
        if text.contains("authentication mechanism") {
            return Class::Auth;
        }
    }
    Class::Transient
}

/// The error with its whole cause chain (lettre keeps the server's answer in the source).
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

fn explain_connect(e: &lettre::transport::smtp::Error, config: &SmtpConfig) -> String {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<rustls::Error>() {
            let io = std::io::Error::other(r.clone());
            return crate::tls::explain_error(&io, config.server_name(), "smtp");
        }
        source = s.source();
    }
    describe(e)
}
