//! Getting an authenticated IMAP session: TCP, TLS (implicit or STARTTLS, rustls with the
//! built-in public roots plus an optional private CA), greeting, login, capabilities. Each
//! failure names the stage it happened in, so `check` and the logs can say what to fix.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{AuthMechanism, Credential, ImapConfig, TlsMode};
use crate::mailauth::{current_secret, xoauth2_response};

pub type Session = async_imap::Session<ImapStream>;
type Client = async_imap::Client<ImapStream>;

/// The byte stream under the IMAP session: plain TCP (loopback tests) or TLS.
#[derive(Debug)]
pub enum ImapStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for ImapStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The stage a connection attempt reached; failures name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Connect,
    Greeting,
    Tls,
    Login,
}

impl Stage {
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Connect => "TCP connect",
            Stage::Greeting => "server greeting",
            Stage::Tls => "TLS",
            Stage::Login => "login",
        }
    }
}

/// A failed connection attempt.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {message}", stage.describe())]
pub struct ConnectError {
    pub stage: Stage,
    pub message: String,
    /// The server (or the token source) refused the credentials: retrying will not help
    /// until someone fixes them, so it is reported loudly.
    pub auth: bool,
}

impl ConnectError {
    fn new(stage: Stage, message: impl Into<String>) -> Self {
        ConnectError {
            stage,
            message: message.into(),
            auth: false,
        }
    }
}

/// What the server offers that trialdesk cares about.
#[derive(Debug, Clone, Default)]
pub struct Caps {
    pub idle: bool,
    pub move_: bool,
    pub uidplus: bool,
    /// Every capability, for `check` and the logs.
    pub all: Vec<String>,
}

impl Caps {
    /// What the server offers, less what `imap.ignore_capabilities` names.
    fn from(caps: &async_imap::types::Capabilities, ignored: &[String]) -> Caps {
        use async_imap::types::Capability;
        let mut all: Vec<String> = caps
            .iter()
            .map(|c| match c {
                Capability::Imap4rev1 => "IMAP4rev1".to_string(),
                Capability::Auth(a) => format!("AUTH={a}"),
                Capability::Atom(a) => a.to_string(),
            })
            .collect();
        all.sort();
        let has = |name: &str| {
            all.iter().any(|c| c.eq_ignore_ascii_case(name))
                && !ignored.iter().any(|i| i.eq_ignore_ascii_case(name))
        };
        Caps {
            idle: has("IDLE"),
            move_: has("MOVE"),
            uidplus: has("UIDPLUS"),
            all,
        }
    }

    /// `IDLE MOVE UIDPLUS` (or `-IDLE` for a missing one), for logs.
    pub fn summary(&self) -> String {
        [
            ("IDLE", self.idle),
            ("MOVE", self.move_),
            ("UIDPLUS", self.uidplus),
        ]
        .iter()
        .map(|(n, on)| {
            if *on {
                n.to_string()
            } else {
                format!("no {n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
    }
}

struct Plain {
    user: String,
    password: String,
}

impl async_imap::Authenticator for &Plain {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        format!("\0{}\0{}", self.user, self.password).into_bytes()
    }
}

/// XOAUTH2: the first answer carries the token; when the server refuses it, it sends a JSON
/// error as a challenge, which must be answered with an empty line before the final NO.
struct XOAuth2 {
    response: String,
    sent: bool,
}

impl async_imap::Authenticator for &mut XOAuth2 {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        if self.sent {
            return Vec::new();
        }
        self.sent = true;
        self.response.clone().into_bytes()
    }
}

/// Connects, secures, reads the greeting and logs in, within `connect_timeout`.
pub async fn connect(
    config: &ImapConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
    credential: &Credential,
) -> Result<(Session, Caps), ConnectError> {
    let limit = config.connect_timeout;
    match tokio::time::timeout(limit, connect_inner(config, tls, credential)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::new(
            Stage::Connect,
            format!(
                "no complete answer from {}:{} within {} (imap.connect_timeout)",
                config.host,
                config.port,
                humantime::format_duration(limit)
            ),
        )),
    }
}

async fn connect_inner(
    config: &ImapConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
    credential: &Credential,
) -> Result<(Session, Caps), ConnectError> {
    let addr = format!("{}:{}", config.host, config.port);
    let tcp = TcpStream::connect((config.host.as_str(), config.port))
        .await
        .map_err(|e| ConnectError::new(Stage::Connect, format!("cannot connect to {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let tls_config = || {
        tls.cloned().ok_or_else(|| {
            ConnectError::new(
                Stage::Tls,
                "TLS requested but no TLS configuration was built",
            )
        })
    };
    let client = match config.tls {
        TlsMode::None => {
            let mut client = Client::new(ImapStream::Plain(tcp));
            read_greeting(&mut client).await?;
            client
        }
        TlsMode::Implicit => {
            let stream = handshake(tcp, tls_config()?, config.server_name()).await?;
            let mut client = Client::new(stream);
            read_greeting(&mut client).await?;
            client
        }
        TlsMode::Starttls => {
            let mut client = Client::new(ImapStream::Plain(tcp));
            read_greeting(&mut client).await?;
            client
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .map_err(|e| {
                    ConnectError::new(
                        Stage::Tls,
                        format!(
                            "server refused STARTTLS ({e}); is `imap.tls` right for port {}?",
                            config.port
                        ),
                    )
                })?;
            let ImapStream::Plain(tcp) = client.into_inner() else {
                unreachable!("the stream before STARTTLS is plain")
            };
            // No greeting after STARTTLS (RFC 3501 §6.2.1).
            Client::new(handshake(tcp, tls_config()?, config.server_name()).await?)
        }
    };
    let session = login(client, config, credential).await?;
    let mut session = session;
    let caps = session
        .capabilities()
        .await
        .map_err(|e| ConnectError::new(Stage::Login, format!("CAPABILITY failed: {e}")))?;
    Ok((session, Caps::from(&caps, &config.ignore_capabilities)))
}

async fn read_greeting(client: &mut Client) -> Result<(), ConnectError> {
    use async_imap::imap_proto::{Response, Status};
    let greeting = client
        .read_response()
        .await
        .map_err(|e| ConnectError::new(Stage::Greeting, format!("reading the greeting: {e}")))?
        .ok_or_else(|| {
            ConnectError::new(
                Stage::Greeting,
                "connection closed before the greeting (TLS port spoken to in plain text, or the other way round?)",
            )
        })?;
    match greeting.parsed() {
        Response::Data {
            status: Status::Ok | Status::PreAuth,
            ..
        } => Ok(()),
        Response::Data {
            status: Status::Bye,
            outcome,
        } => Err(ConnectError::new(
            Stage::Greeting,
            format!(
                "server said BYE: {}",
                outcome.information.as_deref().unwrap_or("(no text)")
            ),
        )),
        other => Err(ConnectError::new(
            Stage::Greeting,
            format!("unexpected greeting {other:?}"),
        )),
    }
}

async fn handshake(
    tcp: TcpStream,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Result<ImapStream, ConnectError> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(|e| {
        ConnectError::new(
            Stage::Tls,
            format!("{server_name:?} is not a valid TLS server name: {e}"),
        )
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let stream = connector.connect(name, tcp).await.map_err(|e| {
        ConnectError::new(
            Stage::Tls,
            crate::tls::explain_error(&e, server_name, "imap"),
        )
    })?;
    Ok(ImapStream::Tls(Box::new(stream)))
}

async fn login(
    client: Client,
    config: &ImapConfig,
    credential: &Credential,
) -> Result<Session, ConnectError> {
    let secret = current_secret(credential, config.connect_timeout)
        .await
        .map_err(|e| ConnectError {
            stage: Stage::Login,
            message: e.to_string(),
            auth: true,
        })?;
    let user = config.username.as_str();
    let result = match config.auth {
        AuthMechanism::Login => client.login(user, secret.expose()).await,
        AuthMechanism::Plain => {
            let plain = Plain {
                user: user.to_string(),
                password: secret.expose().to_string(),
            };
            client.authenticate("PLAIN", &plain).await
        }
        AuthMechanism::Xoauth2 => {
            let mut auth = XOAuth2 {
                response: xoauth2_response(user, &secret),
                sent: false,
            };
            client.authenticate("XOAUTH2", &mut auth).await
        }
    };
    result.map_err(|(e, _client)| {
        let refused = matches!(
            e,
            async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_)
        );
        ConnectError {
            stage: Stage::Login,
            message: if refused {
                format!(
                    "{} as {user} refused: {} (check imap.username and the {})",
                    config.auth.as_str(),
                    server_text(&e),
                    if config.auth == AuthMechanism::Xoauth2 {
                        "token"
                    } else {
                        "password"
                    }
                )
            } else {
                format!("{} as {user} failed: {e}", config.auth.as_str())
            },
            auth: refused,
        }
    })
}

/// The server's own words in an async-imap error (`NO [AUTHENTICATIONFAILED] Authentication
/// failed.`), instead of the crate's debug rendering of the response.
pub fn server_text(e: &async_imap::error::Error) -> String {
    use async_imap::error::Error as E;
    let (kind, m) = match e {
        E::No(m) => ("NO", m),
        E::Bad(m) => ("BAD", m),
        other => return other.to_string(),
    };
    // async-imap renders the response with Debug: `... info: Some("text")` or
    // `... information: Some("text") }`.
    let info = ["information: Some(\"", "info: Some(\""]
        .iter()
        .find_map(|marker| m.split_once(marker))
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map(|(text, _)| text.replace("\\\"", "\""));
    match info {
        Some(text) => format!("{kind} {text}"),
        None => format!("{kind} {m}"),
    }
}

/// Drains a stream of IMAP results, each item within `limit`.
pub async fn collect_within<S, T>(stream: S, limit: Duration) -> Result<Vec<T>, String>
where
    S: futures::Stream<Item = async_imap::error::Result<T>>,
{
    collect_map_within(stream, limit, Some).await
}

/// Like [`collect_within`], keeping only what `keep` extracts from each item as it arrives.
/// For long listings: every response of async-imap holds on to the whole read block it was
/// decoded from (4 KB and more), so 10,000 `FETCH (UID RFC822.SIZE)` lines collected as they
/// come would pin over 100 MB.
pub async fn collect_map_within<S, T, U>(
    stream: S,
    limit: Duration,
    mut keep: impl FnMut(T) -> Option<U>,
) -> Result<Vec<U>, String>
where
    S: futures::Stream<Item = async_imap::error::Result<T>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut out = Vec::new();
    loop {
        match tokio::time::timeout(limit, stream.try_next()).await {
            Err(_) => {
                return Err(format!(
                    "no answer within {}",
                    humantime::format_duration(limit)
                ))
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(None)) => return Ok(out),
            Ok(Ok(Some(item))) => out.extend(keep(item)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_keeps_the_servers_words() {
        use async_imap::error::Error as E;
        let e = E::No(
            "code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed.\")".into(),
        );
        assert_eq!(
            server_text(&e),
            "NO [AUTHENTICATIONFAILED] Authentication failed."
        );
        let e = E::Bad(
            "outcome: Outcome { code: None, information: Some(\"Say \\\"what\\\"\") }".into(),
        );
        assert_eq!(server_text(&e), "BAD Say \"what\"");
        assert_eq!(server_text(&E::No("odd".into())), "NO odd");
        assert_eq!(server_text(&E::ConnectionLost), "connection lost");
    }

    #[test]
    fn capability_summary_names_what_is_missing() {
        let caps = Caps {
            idle: true,
            move_: false,
            uidplus: true,
            all: vec![],
        };
        assert_eq!(caps.summary(), "IDLE, no MOVE, UIDPLUS");
    }
}
