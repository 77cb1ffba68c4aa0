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
//! Each round lists `UID RFC822.SIZE` from the floor up, then fetches a batch bounded by
//! `batch_size` and `batch_bytes` with `BODY.PEEK[]` (never setting `\Seen`). A mail above
//! `mail.max_message_bytes` is never loaded: only its header section is (`BODY.PEEK[HEADER]`,
//! itself capped), and the pipeline sends it to review.

pub mod conn;
mod probe;
pub mod utf7;

pub use probe::probe;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_imap::imap_proto::{MailboxDatum, Response};
use async_imap::types::UnsolicitedResponse;
use futures::StreamExt;

use self::conn::{collect_map_within, collect_within, Caps, ConnectError, Session};
use super::{Disposition, MailSource, RawMail, SourceError};
use crate::config::{AfterProcessing, Credential, ImapConfig, TlsMode};
use crate::lease::{LeaseHandle, LeaseSnapshot};
use crate::store::Store;
use crate::worker::Backoff;

/// Header bytes read of an oversize mail at most.
const MAX_HEADER_BYTES: u64 = 256 * 1024;

/// Connection state shared with health and `check`.
#[derive(Debug, Default)]
pub struct ImapStatus {
    connected: AtomicBool,
    /// Unix ms of the last successful connect (0 = never).
    connected_since_ms: AtomicI64,
    /// Connection attempts failed since the last success.
    failures: AtomicU32,
    /// Whether IDLE push is in use on the current connection.
    push: AtomicBool,
    last_error: Mutex<Option<(i64, String)>>,
    capabilities: Mutex<String>,
    /// The lease that decides which instance reads the mailbox, when there is one.
    lease: Mutex<Option<LeaseHandle>>,
}

/// A copy of [`ImapStatus`] for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImapStatusSnapshot {
    pub connected: bool,
    pub connected_since_ms: Option<i64>,
    pub consecutive_failures: u32,
    pub push: bool,
    pub last_error_ms: Option<i64>,
    pub last_error: Option<String>,
    pub capabilities: String,
    /// Which instance reads the mailbox (present when reading is leased).
    pub lease: Option<LeaseSnapshot>,
}

impl ImapStatus {
    pub fn snapshot(&self) -> ImapStatusSnapshot {
        let err = self.last_error.lock().map(|e| e.clone()).unwrap_or(None);
        let since = self.connected_since_ms.load(Ordering::Relaxed);
        ImapStatusSnapshot {
            connected: self.connected.load(Ordering::Relaxed),
            connected_since_ms: (since > 0).then_some(since),
            consecutive_failures: self.failures.load(Ordering::Relaxed),
            push: self.push.load(Ordering::Relaxed),
            last_error_ms: err.as_ref().map(|(t, _)| *t),
            last_error: err.map(|(_, e)| e),
            capabilities: self
                .capabilities
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default(),
            lease: self
                .lease
                .lock()
                .ok()
                .and_then(|l| l.as_ref().map(LeaseHandle::snapshot)),
        }
    }

    /// Reports `lease` (the one deciding whether this instance reads the mailbox).
    pub fn set_lease(&self, lease: LeaseHandle) {
        if let Ok(mut l) = self.lease.lock() {
            *l = Some(lease);
        }
    }

    fn set_error(&self, message: &str) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some((now_ms(), message.to_string()));
        }
    }
}

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

    /// Without the lease: log out (if connected) and say so once.
    async fn stand_by(&mut self) {
        let had_session = self.live.is_some() || self.status.connected.load(Ordering::Relaxed);
        if let Some(mut live) = self.live.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), live.session.logout()).await;
        }
        self.status.connected.store(false, Ordering::Relaxed);
        self.status.push.store(false, Ordering::Relaxed);
        let decided = self.lease.as_ref().is_some_and(LeaseHandle::decided);
        if !self.standing_by && decided {
            self.standing_by = true;
            let holder = self
                .lease
                .as_ref()
                .and_then(LeaseHandle::holder)
                .unwrap_or_else(|| "nobody yet".into());
            if had_session {
                tracing::warn!(holder = %holder, "mailbox lease no longer ours: stopped reading the mailbox");
            } else {
                tracing::debug!(holder = %holder, "mailbox lease held elsewhere: standing by");
            }
        }
    }

    pub fn status(&self) -> Arc<ImapStatus> {
        self.status.clone()
    }

    /// Connects and selects when there is no live connection.
    async fn ensure_connected(&mut self) -> Result<&mut Live, SourceError> {
        if self.live.is_none() {
            let live = self.connect().await?;
            self.live = Some(live);
        }
        Ok(self.live.as_mut().expect("just connected"))
    }

    #[tracing::instrument(name = "imap_connect", skip_all, fields(
        server = %format!("{}:{}", self.config.host, self.config.port),
        user = %self.config.username,
    ))]
    async fn connect(&mut self) -> Result<Live, SourceError> {
        let result = conn::connect(&self.config, self.tls.as_ref(), &self.credential).await;
        let (mut session, caps) = match result {
            Ok(ok) => ok,
            Err(e) => return Err(self.connect_failed(e)),
        };
        match self.prepare(&mut session, &caps).await {
            Ok((uidvalidity, folders, exists)) => {
                let failures = self.status.failures.swap(0, Ordering::Relaxed);
                self.status.connected.store(true, Ordering::Relaxed);
                self.status
                    .connected_since_ms
                    .store(now_ms(), Ordering::Relaxed);
                let push = self.config.idle && caps.idle;
                self.status.push.store(push, Ordering::Relaxed);
                if let Ok(mut c) = self.status.capabilities.lock() {
                    *c = caps.all.join(" ");
                }
                tracing::info!(
                    server = %format!("{}:{}", self.config.host, self.config.port),
                    tls = self.config.tls.as_str(),
                    user = %self.config.username,
                    mailbox = %self.config.mailbox,
                    messages = exists,
                    uidvalidity,
                    capabilities = %caps.summary(),
                    mode = if push { "IDLE push" } else { "polling" },
                    "IMAP connected{}",
                    if failures > 0 { format!(" after {failures} failed attempt(s)") } else { String::new() }
                );
                Ok(Live {
                    session,
                    caps,
                    uidvalidity,
                    folders,
                })
            }
            Err(e) => {
                let _ = tokio::time::timeout(Duration::from_secs(2), session.logout()).await;
                self.status.failures.fetch_add(1, Ordering::Relaxed);
                self.status.set_error(&e.to_string());
                Err(e)
            }
        }
    }

    fn connect_failed(&self, e: ConnectError) -> SourceError {
        self.status.connected.store(false, Ordering::Relaxed);
        let failures = self.status.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let message = format!("{}:{}: {e}", self.config.host, self.config.port);
        self.status.set_error(&message);
        if e.auth {
            // Retried with backoff like any failure, but said at error level: someone must act.
            tracing::error!(failures, "IMAP login failed: {message}");
            SourceError::Auth(message)
        } else {
            SourceError::Unavailable(message)
        }
    }

    /// After login: selects the mailbox, reconciles UIDVALIDITY with the store, and makes sure
    /// the outcome folders exist. Returns (UIDVALIDITY, folder wire names, message count).
    async fn prepare(
        &self,
        session: &mut Session,
        caps: &Caps,
    ) -> Result<(u32, [String; 3], u32), SourceError> {
        let limit = self.config.command_timeout;
        let folders = if self.config.after_processing == AfterProcessing::Move {
            let delimiter = timed(limit, "LIST", async {
                let names = collect_within(session.list(Some(""), Some("\"\"")).await?, limit)
                    .await
                    .map_err(async_imap::error::Error::Bad)?;
                Ok(names
                    .first()
                    .and_then(|n| n.delimiter().map(str::to_string)))
            })
            .await?;
            let wire = |name: &str| {
                let translated = match delimiter.as_deref() {
                    Some(d) if d != "/" => name.replace('/', d),
                    _ => name.to_string(),
                };
                utf7::encode(&translated)
            };
            let folders = [
                wire(&self.config.folder_answered),
                wire(&self.config.folder_review),
                wire(&self.config.folder_ignored),
            ];
            for folder in &folders {
                self.ensure_folder(session, folder).await?;
            }
            if !caps.move_ {
                tracing::warn!(
                    "no MOVE (not offered, or hidden by imap.ignore_capabilities): filing mail with COPY + \\Deleted{}",
                    if caps.uidplus {
                        " + UID EXPUNGE"
                    } else {
                        " (no UIDPLUS either: the copies left behind are expunged by the next client that expunges)"
                    }
                );
            }
            folders
        } else {
            Default::default()
        };
        let mailbox = timed(limit, "SELECT", session.select(&self.mailbox))
            .await
            .map_err(|e| {
                SourceError::Protocol(format!(
                    "cannot select mailbox {:?}: {e} (check imap.mailbox)",
                    self.config.mailbox
                ))
            })?;
        let uidvalidity = mailbox.uid_validity.ok_or_else(|| {
            SourceError::Protocol(format!(
                "server sent no UIDVALIDITY for {:?}",
                self.config.mailbox
            ))
        })?;
        let stored = self
            .store
            .imap_mailbox_state(&self.account, &self.mailbox)
            .await
            .map_err(store_err)?;
        match stored {
            Some(s) if s.uidvalidity == i64::from(uidvalidity) => {}
            Some(s) => {
                tracing::warn!(
                    mailbox = %self.config.mailbox,
                    old = s.uidvalidity,
                    new = uidvalidity,
                    "UIDVALIDITY changed: reading the whole mailbox again; mail already handled is \
                     recognised by its message key and not answered twice"
                );
                self.store
                    .imap_reset_mailbox(&self.account, &self.mailbox, uidvalidity.into(), now_ms())
                    .await
                    .map_err(store_err)?;
            }
            None => {
                self.store
                    .imap_reset_mailbox(&self.account, &self.mailbox, uidvalidity.into(), now_ms())
                    .await
                    .map_err(store_err)?;
            }
        }
        Ok((uidvalidity, folders, mailbox.exists))
    }

    /// Creates (and subscribes) a folder unless it exists.
    async fn ensure_folder(&self, session: &mut Session, wire: &str) -> Result<(), SourceError> {
        let limit = self.config.command_timeout;
        let quoted = quote(wire);
        let exists = timed(limit, "LIST", async {
            let names = collect_within(session.list(Some(""), Some(&quoted)).await?, limit)
                .await
                .map_err(async_imap::error::Error::Bad)?;
            Ok(!names.is_empty())
        })
        .await?;
        if exists {
            return Ok(());
        }
        match timed(limit, "CREATE", session.create(wire)).await {
            Ok(()) => {
                tracing::info!(folder = %wire, "created IMAP folder");
                // So people see it in their mail clients; failure here changes nothing for us.
                let _ = timed(limit, "SUBSCRIBE", session.subscribe(wire)).await;
                Ok(())
            }
            // Created by another instance in between.
            Err(SourceError::Protocol(m))
                if m.contains("ALREADYEXISTS") || m.contains("exists") =>
            {
                Ok(())
            }
            Err(e) => Err(SourceError::Protocol(format!(
                "cannot create folder {wire:?}: {e} (check the imap.folder_* keys)"
            ))),
        }
    }

    /// Handles an error from an established connection: drops it so the next call reconnects.
    fn lost(&mut self, e: &SourceError) {
        if matches!(e, SourceError::Store(_)) {
            return;
        }
        self.live = None;
        // `connected` rather than `live`: during IDLE the session is out of `live`.
        if self.status.connected.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %e, "IMAP connection lost; reconnecting");
        }
        self.status.push.store(false, Ordering::Relaxed);
        self.status.set_error(&e.to_string());
    }

    async fn fetch_inner(
        &mut self,
        max: usize,
        skip: &HashSet<String>,
    ) -> Result<Vec<RawMail>, SourceError> {
        let limit = self.config.command_timeout;
        let max = max.min(self.config.batch_size).max(1);
        let account = self.account.clone();
        let mailbox = self.mailbox.clone();
        let store = self.store.clone();
        let max_bytes = self.max_message_bytes;
        let batch_bytes = self.config.batch_bytes;
        let mailbox_name = self.config.mailbox.clone();
        let live = self.ensure_connected().await?;
        let uidvalidity = live.uidvalidity;
        // Announcements so far are about to be covered by this listing; dropping them keeps
        // the (bounded) channel free for those that arrive after it.
        while live.session.unsolicited_responses.try_recv().is_ok() {}
        let state = store
            .imap_mailbox_state(&account, &mailbox)
            .await
            .map_err(store_err)?;
        let floor = match state {
            Some(s) if s.uidvalidity == i64::from(uidvalidity) => s.uid_floor.max(1),
            // Reset by another instance that saw a newer UIDVALIDITY: reconnect to follow.
            _ => {
                return Err(SourceError::Protocol(
                    "mailbox bookkeeping changed under this connection".into(),
                ))
            }
        };
        // 1. What is there from the floor up, with sizes.
        let listing = timed(limit, "UID FETCH (list)", async {
            let listed = collect_map_within(
                live.session
                    .uid_fetch(format!("{floor}:*"), "(UID RFC822.SIZE)")
                    .await?,
                limit,
                |f| Some((f.uid?, u64::from(f.size?))),
            )
            .await
            .map_err(async_imap::error::Error::Bad)?;
            Ok(listed)
        })
        .await?;
        let mut listed: Vec<(u32, u64)> = listing
            .into_iter()
            .filter(|(uid, _)| i64::from(*uid) >= floor)
            .collect();
        listed.sort_unstable();
        listed.dedup_by_key(|(uid, _)| *uid);
        let done: HashSet<i64> = store
            .imap_done_uids(&account, &mailbox, uidvalidity.into(), floor)
            .await
            .map_err(store_err)?
            .into_iter()
            .collect();
        let todo: Vec<(u32, u64)> = listed
            .iter()
            .copied()
            .filter(|(uid, _)| !done.contains(&i64::from(*uid)))
            .collect();
        // 2. Raise the floor to the first unhandled UID (or past everything listed).
        let new_floor = match (todo.first(), listed.last()) {
            (Some((uid, _)), _) => i64::from(*uid),
            (None, Some((last, _))) => i64::from(*last) + 1,
            (None, None) => floor,
        };
        if new_floor > floor {
            store
                .imap_advance_floor(&account, &mailbox, uidvalidity.into(), new_floor, now_ms())
                .await
                .map_err(store_err)?;
        }
        // 3. Leave out what the caller set aside. Only now, after the floor: it must stay
        //    below them so they are read again once they are no longer skipped. Left out
        //    before the batch is chosen, they neither fill it nor are downloaded again.
        let skipped: HashSet<u32> = skip
            .iter()
            .filter_map(|h| parse_handle(h))
            .filter(|(v, _)| *v == uidvalidity)
            .map(|(_, uid)| uid)
            .collect();
        // 4. Choose a batch within the count and byte limits (always at least one mail).
        let mut budget = batch_bytes;
        let mut whole: Vec<u32> = Vec::new();
        let mut headers_only: Vec<u32> = Vec::new();
        let mut sizes = std::collections::HashMap::new();
        for (uid, size) in todo
            .iter()
            .copied()
            .filter(|(uid, _)| !skipped.contains(uid))
        {
            if whole.len() + headers_only.len() >= max {
                break;
            }
            let oversize = size > max_bytes;
            let cost = if oversize { MAX_HEADER_BYTES } else { size };
            if !(whole.is_empty() && headers_only.is_empty()) && cost > budget {
                break;
            }
            budget = budget.saturating_sub(cost);
            sizes.insert(uid, size);
            if oversize {
                headers_only.push(uid);
            } else {
                whole.push(uid);
            }
        }
        // 5. Fetch them, one mail at a time off the wire.
        let mut mails: Vec<(u32, RawMail)> = Vec::new();
        for (uids, query, is_header) in [
            (&whole, "(UID BODY.PEEK[])".to_string(), false),
            (
                &headers_only,
                format!("(UID BODY.PEEK[HEADER]<0.{MAX_HEADER_BYTES}>)"),
                true,
            ),
        ] {
            if uids.is_empty() {
                continue;
            }
            let set = uid_set(uids);
            let wanted: HashSet<u32> = uids.iter().copied().collect();
            let mut stream =
                timed(limit, "UID FETCH", live.session.uid_fetch(&set, &query)).await?;
            loop {
                let item = match tokio::time::timeout(limit, stream.next()).await {
                    Err(_) => {
                        return Err(SourceError::Unavailable(format!(
                            "UID FETCH: no data within {}",
                            humantime::format_duration(limit)
                        )))
                    }
                    Ok(None) => break,
                    Ok(Some(item)) => item.map_err(imap_err("UID FETCH"))?,
                };
                let Some(uid) = item.uid.filter(|u| wanted.contains(u)) else {
                    // A flag update about another message, sent along unasked.
                    continue;
                };
                let bytes = if is_header {
                    item.header()
                } else {
                    item.body()
                };
                let Some(bytes) = bytes else { continue };
                let size = sizes.get(&uid).copied().unwrap_or(bytes.len() as u64);
                mails.push((
                    uid,
                    RawMail {
                        origin: format!("imap:{mailbox_name}/{uidvalidity}/{uid}"),
                        bytes: bytes.to_vec(),
                        size: size.max(bytes.len() as u64),
                        handle: format!("{uidvalidity}:{uid}"),
                    },
                ));
            }
        }
        mails.sort_by_key(|(uid, _)| *uid);
        mails.dedup_by_key(|(uid, _)| *uid);
        Ok(mails.into_iter().map(|(_, m)| m).collect())
    }

    /// Files handled mails: one `UID MOVE` (or COPY + STORE + EXPUNGE, or STORE) per outcome
    /// folder for the whole set, so a backlog costs a round trip (and Dovecot's index update)
    /// per batch rather than per mail.
    async fn ack_inner(&mut self, acks: &[(&RawMail, Disposition)]) -> Result<(), SourceError> {
        let limit = self.config.command_timeout;
        let mode = self.config.after_processing;
        let account = self.account.clone();
        let mailbox = self.mailbox.clone();
        let store = self.store.clone();
        let live = self.ensure_connected().await?;
        let mut groups: [Vec<u32>; 3] = Default::default();
        for (mail, disposition) in acks {
            let (uidvalidity, uid) = parse_handle(&mail.handle).ok_or_else(|| {
                SourceError::Protocol(format!("not an IMAP handle: {}", mail.handle))
            })?;
            if live.uidvalidity != uidvalidity {
                // The UID may name another mail now. This one is read again under the new
                // UIDVALIDITY and recognised by its key; leave it alone.
                tracing::info!(origin = %mail.origin, "UIDVALIDITY changed since fetch; not filing by old UID");
                continue;
            }
            groups[disposition_index(*disposition)].push(uid);
        }
        let uidvalidity = live.uidvalidity;
        // A moved mail is gone from the mailbox; only a mail that stays (flag_seen, or a
        // \Deleted copy left behind without UIDPLUS) must be remembered as handled. Skipping
        // the write keeps SQLite's single writer free for the pipeline and the sender.
        let remember = mode == AfterProcessing::FlagSeen || !(live.caps.move_ || live.caps.uidplus);
        for (index, uids) in groups.iter_mut().enumerate() {
            if uids.is_empty() {
                continue;
            }
            uids.sort_unstable();
            uids.dedup();
            let set = uid_set(uids);
            match mode {
                AfterProcessing::FlagSeen => {
                    timed(
                        limit,
                        "UID STORE",
                        add_flags(&mut live.session, &set, "(\\Seen)", limit),
                    )
                    .await?;
                }
                AfterProcessing::Move => {
                    let folder = live.folders[index].clone();
                    if live.caps.move_ {
                        timed(limit, "UID MOVE", live.session.uid_mv(&set, &folder)).await?;
                    } else {
                        timed(limit, "UID COPY", live.session.uid_copy(&set, &folder)).await?;
                        timed(
                            limit,
                            "UID STORE",
                            add_flags(&mut live.session, &set, "(\\Seen \\Deleted)", limit),
                        )
                        .await?;
                        if live.caps.uidplus {
                            timed(limit, "UID EXPUNGE", async {
                                let s = live.session.uid_expunge(&set).await?;
                                collect_within(s, limit)
                                    .await
                                    .map_err(async_imap::error::Error::Bad)?;
                                Ok(())
                            })
                            .await?;
                        }
                    }
                    tracing::debug!(uids = %set, folder = %folder, "filed");
                }
            }
            if !remember {
                continue;
            }
            let disposition = DISPOSITIONS[index];
            let uids: Vec<i64> = uids.iter().copied().map(i64::from).collect();
            store
                .imap_mark_done_many(
                    &account,
                    &mailbox,
                    uidvalidity.into(),
                    &uids,
                    disposition_code(disposition),
                    now_ms(),
                )
                .await
                .map_err(store_err)?;
        }
        Ok(())
    }

    /// One IDLE period; Ok(()) when it ended normally (new mail, deadline), Err when the
    /// connection failed.
    async fn idle_once(&mut self) -> Result<(), SourceError> {
        let limit = self.config.command_timeout;
        let period = self.config.idle_renew.min(self.config.safety_poll_interval);
        let Some(live) = self.live.take() else {
            return Ok(());
        };
        // Mail announced while we were busy with other commands: no need to wait.
        let mut announced = false;
        while let Ok(r) = live.session.unsolicited_responses.try_recv() {
            if matches!(
                r,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            ) {
                announced = true;
            }
        }
        if announced {
            self.live = Some(live);
            return Ok(());
        }
        let Live {
            session,
            caps,
            uidvalidity,
            folders,
        } = live;
        let mut handle = session.idle();
        timed(limit, "IDLE", handle.init()).await?;
        let deadline = tokio::time::Instant::now() + period;
        let outcome: Result<&str, SourceError> = loop {
            let (wait, _stop) = handle.wait_with_timeout(period);
            match tokio::time::timeout_at(deadline, wait).await {
                Err(_) => break Ok("renew"),
                Ok(Err(e)) => break Err(imap_err("IDLE")(e)),
                Ok(Ok(async_imap::extensions::idle::IdleResponse::NewData(data))) => {
                    match data.parsed() {
                        Response::MailboxData(MailboxDatum::Exists(_))
                        | Response::MailboxData(MailboxDatum::Recent(_)) => break Ok("new mail"),
                        // Expunges and flag changes by other clients: keep waiting.
                        _ => continue,
                    }
                }
                Ok(Ok(_)) => break Ok("renew"),
            }
        };
        let why = outcome?;
        let session = timed(limit, "DONE", handle.done()).await?;
        tracing::debug!(why, "IDLE ended");
        self.live = Some(Live {
            session,
            caps,
            uidvalidity,
            folders,
        });
        Ok(())
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

impl ImapSource {
    /// Returns when new mail may be there: IDLE push, or the poll interval.
    async fn wait_for_mail(&mut self) {
        let push = self.config.idle && self.live.as_ref().is_some_and(|l| l.caps.idle);
        if !push {
            let pause = if self.live.is_some() {
                self.config.poll_interval
            } else {
                self.config.reconnect_min
            };
            tokio::time::sleep(pause).await;
            return;
        }
        let started = tokio::time::Instant::now();
        match self.idle_once().await {
            Ok(()) => self.idle_backoff.reset(),
            Err(e) => {
                self.lost(&e);
                // A connection that dies right after IDLE is retried later, not at once.
                if started.elapsed() < Duration::from_secs(5) {
                    tokio::time::sleep(self.idle_backoff.next_delay()).await;
                } else {
                    self.idle_backoff.reset();
                }
            }
        }
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
