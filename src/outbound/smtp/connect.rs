//! Opening a relay connection: TCP without Nagle, implicit TLS (our own rustls stream) or
//! STARTTLS, the greeting and AUTH, each step named for `check`. Separate from the pool and
//! the send logic in `smtp.rs`, which only ever asks for an open, logged-in connection.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::phases::Failure;
use super::SmtpTransport;
use crate::config::{AuthMechanism, Secret, SmtpConfig, TlsMode};
use crate::outbound::smtp_failure::{Phase, Seen};

/// Connection steps, for `check` and for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Connect,
    Tls,
    Greeting,
    Starttls,
    Auth,
}

impl SmtpTransport {
    /// Opens a connection: TCP (no Nagle), TLS, greeting, STARTTLS, AUTH.
    pub(super) async fn open(&self) -> Result<AsyncSmtpConnection, (Step, Failure)> {
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
pub(super) fn tls_setup(
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
