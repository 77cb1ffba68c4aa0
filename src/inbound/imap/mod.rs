//! The production source: the helpdesk mailbox over IMAP (async-imap on tokio, TLS by rustls).
//!
//! # Exactly once
//! trialdesk never relies on `\Seen` (people and other clients set it). Per mailbox the store
//! keeps the UIDVALIDITY and a *floor*: every UID below it is handled or gone. A mail is
//! handled in [`MailSource::ack`], which runs only after its decision and reply are committed:
//! it is moved out of the mailbox (or, with `flag_seen`, flagged and its UID recorded as
//! handled, since it stays). Each round lists the UIDs from the floor up and raises the floor
//! to the first one not handled. So:
//! - a crash before the commit: the mail is still there and offered again;
//! - a crash after the commit but before filing: offered again, the pipeline recognises its
//!   message key (`Duplicate`), and it is filed then, into the folder of its recorded outcome;
//! - a new UIDVALIDITY: the mailbox is read again from the start and the pipeline dedupes.
//!
//! # Several instances
//! With [`ImapSource::with_lease`] (what `trialdesk run` does) the mailbox is read only while
//! this process holds the mailbox lease ([`crate::lease`]): without it the source logs out,
//! `fetch` returns nothing and `wait` returns when the lease is ours; an IDLE is abandoned the
//! moment the lease is lost, and a mail processed meanwhile is not filed (the new holder sees it
//! again, knows its key, and files it).
//!
//! # Push
//! With IDLE (RFC 2177) [`MailSource::wait`] returns as soon as the server reports new mail
//! (`EXISTS`), and in any case after `safety_poll_interval` (a lost notification, or a
//! connection that died without a word, cannot stall the helpdesk). Without IDLE it sleeps
//! `poll_interval`. Any error drops the connection; the next call reconnects, and the worker
//! around the source backs off exponentially with jitter while that fails.
//!
//! # Fetching
//! Each round asks for the last UID (`UID FETCH * (UID)`), then lists `UID RFC822.SIZE` in
//! windows of `imap.list_window` UIDs (`UID FETCH from:to`, never past the last UID), from the
//! floor (or from where the previous round stopped listing) up, until a window holds mail to
//! fetch — at most [`MAX_WINDOWS_PER_ROUND`] windows, so neither one answer nor one round grows
//! with the mailbox; when the budget runs out with UIDs above unlisted, the next round follows
//! at once ([`MailSource::more_to_list`]). It then fetches a batch from that window, bounded by
//! `batch_size` and `batch_bytes`, with `BODY.PEEK[]` (never setting `\Seen`). A mail above
//! `mail.max_message_bytes` is never loaded: only its header section is (`BODY.PEEK[HEADER]`,
//! itself capped), and the pipeline sends it to review.

pub mod conn;
mod plan;
mod probe;
mod round;
mod session;
mod status;
pub mod utf7;

pub use plan::{
    list_window, plan_fetch, plan_filing, FetchLimits, FetchPlan, FilingPlan, Scan, Then, Window,
    MAX_HEADER_BYTES, MAX_WINDOWS_PER_ROUND,
};
pub use probe::probe;
pub use status::{ImapStatus, ImapStatusSnapshot};

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use self::conn::{collect_within, Caps, Session};
use super::{Disposition, MailSource, RawMail, SourceError};
use crate::config::{Credential, ImapConfig, TlsMode};
use crate::lease::LeaseHandle;
use crate::store::Store;
use crate::worker::Backoff;

/// What is known about the live connection.
struct Live {
    session: Session,
    caps: Caps,
    uidvalidity: u32,
    /// Wire names (modified UTF-7, server delimiter) of the three outcome folders.
    folders: [String; 3],
}

pub struct ImapSource {
    config: ImapConfig,
    credential: Credential,
    tls: Option<Arc<rustls::ClientConfig>>,
    store: Store,
    /// Key of this mailbox's bookkeeping rows (`username@host`).
    account: String,
    /// Wire name of the mailbox.
    mailbox: String,
    max_message_bytes: u64,
    live: Option<Live>,
    status: Arc<ImapStatus>,
    /// Paces IDLE attempts that fail at once, so a server that drops every IDLE cannot make
    /// the source spin.
    idle_backoff: Backoff,
    /// When set, the mailbox is read only while this process holds the lease (several
    /// instances on one database); otherwise always.
    lease: Option<LeaseHandle>,
    /// Whether the source is standing by (lease held elsewhere), so that is said once.
    standing_by: bool,
    /// Where the listing stands between rounds, for the UIDVALIDITY it was made under.
    /// Dropped with the connection.
    scan: Option<(u32, Scan)>,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl ImapSource {
    /// Builds the source; reads the CA file and the password now, so a bad config fails at
    /// start. Connects lazily, on the first fetch.
    pub fn new(
        config: &ImapConfig,
        base_dir: &Path,
        store: Store,
        max_message_bytes: u64,
    ) -> Result<ImapSource, crate::config::ConfigError> {
        let credential = config.credential(base_dir)?;
        let tls = match config.tls {
            TlsMode::None => None,
            _ => {
                let ca = config.ca_file.as_ref().map(|p| base_dir.join(p));
                Some(
                    crate::tls::client_config(ca.as_deref())
                        .map_err(|e| crate::config::invalid("imap.ca_file", e))?,
                )
            }
        };
        Ok(ImapSource {
            account: format!("{}@{}", config.username, config.host),
            mailbox: utf7::encode(&config.mailbox),
            config: config.clone(),
            credential,
            tls,
            store,
            max_message_bytes,
            live: None,
            status: Arc::new(ImapStatus::default()),
            idle_backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            lease: None,
            standing_by: false,
            scan: None,
        })
    }

    /// Reads the mailbox only while `lease` is held: without it the source logs out and
    /// `fetch` returns nothing, and `wait` returns when the lease is ours. An IDLE in progress
    /// is abandoned (the connection dropped) the moment the lease is lost.
    pub fn with_lease(mut self, lease: LeaseHandle) -> ImapSource {
        self.status.set_lease(lease.clone());
        self.lease = Some(lease);
        self
    }

    /// Whether this process may use the mailbox now.
    fn may_read(&self) -> bool {
        self.lease.as_ref().is_none_or(LeaseHandle::is_held)
    }

    pub fn status(&self) -> Arc<ImapStatus> {
        self.status.clone()
    }
}

impl MailSource for ImapSource {
    #[tracing::instrument(name = "imap_fetch", skip_all, fields(
        account = %self.account,
        mailbox = %self.config.mailbox,
        mails = tracing::field::Empty,
    ))]
    async fn fetch(
        &mut self,
        max: usize,
        skip: &HashSet<String>,
    ) -> Result<Vec<RawMail>, SourceError> {
        if !self.may_read() {
            self.stand_by().await;
            return Ok(Vec::new());
        }
        self.standing_by = false;
        let result = self.fetch_inner(max, skip).await;
        match &result {
            Ok(mails) => {
                tracing::Span::current().record("mails", mails.len());
            }
            Err(e) => self.lost(e),
        }
        result
    }

    #[tracing::instrument(name = "imap_ack", skip_all, fields(
        origin = %mail.origin,
        disposition = disposition_code(disposition),
    ))]
    async fn ack(&mut self, mail: &RawMail, disposition: Disposition) -> Result<(), SourceError> {
        self.ack_all(&[(mail, disposition)]).await
    }

    async fn ack_all(&mut self, acks: &[(&RawMail, Disposition)]) -> Result<(), SourceError> {
        if !self.may_read() {
            self.stand_by().await;
            // Recorded but not filed: the instance holding the lease now sees them again, finds
            // their keys, and files them.
            let first = acks.first().map(|(m, _)| m.origin.as_str()).unwrap_or("");
            return Err(SourceError::Unavailable(format!(
                "the mailbox lease ended before {} mail(s) were filed (first: {first})",
                acks.len()
            )));
        }
        let result = self.ack_inner(acks).await;
        if let Err(e) = &result {
            self.lost(e);
        }
        result
    }

    fn more_to_list(&self) -> bool {
        self.scan.as_ref().is_some_and(|(_, scan)| scan.more) && self.may_read()
    }

    async fn wait(&mut self) {
        let Some(lease) = self.lease.clone() else {
            return self.wait_for_mail().await;
        };
        if !lease.is_held() {
            self.stand_by().await;
            return lease.held().await;
        }
        tokio::select! {
            _ = self.wait_for_mail() => {}
            _ = lease.lost() => {}
        }
    }

    async fn close(&mut self) {
        if let Some(mut live) = self.live.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), live.session.logout()).await;
        }
        self.status.connected.store(false, Ordering::Relaxed);
    }

    fn describe(&self) -> String {
        format!(
            "imap://{}@{}:{}/{} (tls: {})",
            self.config.username,
            self.config.host,
            self.config.port,
            self.config.mailbox,
            self.config.tls.as_str()
        )
    }
}
/// Outcome folders in the order of `Live::folders`.
const DISPOSITIONS: [Disposition; 3] = [
    Disposition::Answered,
    Disposition::Review,
    Disposition::Ignored,
];

fn disposition_index(d: Disposition) -> usize {
    match d {
        Disposition::Answered => 0,
        Disposition::Review => 1,
        Disposition::Ignored => 2,
    }
}

fn disposition_code(d: Disposition) -> &'static str {
    match d {
        Disposition::Answered => "answered",
        Disposition::Review => "review",
        Disposition::Ignored => "ignored",
    }
}

fn parse_handle(handle: &str) -> Option<(u32, u32)> {
    let (v, u) = handle.split_once(':')?;
    Some((v.parse().ok()?, u.parse().ok()?))
}

/// `1,2,3,7,9,10` → `1:3,7,9:10` (input sorted ascending).
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end + 1 {
            i += 1;
            end = uids[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// An IMAP quoted string (mailbox names with spaces, `%`, `*`).
pub(crate) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn store_err(e: crate::store::StoreError) -> SourceError {
    SourceError::Store(e.to_string())
}

fn imap_err(what: &'static str) -> impl Fn(async_imap::error::Error) -> SourceError {
    move |e| {
        use async_imap::error::Error as E;
        match &e {
            E::No(_) | E::Bad(_) => {
                SourceError::Protocol(format!("{what}: {}", conn::server_text(&e)))
            }
            other => SourceError::Unavailable(format!("{what}: {other}")),
        }
    }
}

/// Runs one IMAP command within `limit`; a timeout is a connection failure.
/// `UID STORE set +FLAGS.SILENT flags`, its (silent) responses drained within `limit`.
async fn add_flags(
    session: &mut Session,
    set: &str,
    flags: &str,
    limit: Duration,
) -> async_imap::error::Result<()> {
    let s = session
        .uid_store(set, format!("+FLAGS.SILENT {flags}"))
        .await?;
    collect_within(s, limit)
        .await
        .map_err(async_imap::error::Error::Bad)?;
    Ok(())
}

async fn timed<T>(
    limit: Duration,
    what: &'static str,
    fut: impl std::future::Future<Output = async_imap::error::Result<T>>,
) -> Result<T, SourceError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(imap_err(what)),
        Err(_) => Err(SourceError::Unavailable(format!(
            "{what}: no answer within {} (imap.command_timeout)",
            humantime::format_duration(limit)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact() {
        assert_eq!(uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn handles_round_trip() {
        assert_eq!(parse_handle("1700:42"), Some((1700, 42)));
        assert_eq!(parse_handle("new/1.a"), None);
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quote("a \"b\"\\c"), "\"a \\\"b\\\"\\\\c\"");
    }
}
