//! The connection: connect and log in, select the mailbox and reconcile its UIDVALIDITY with
//! the store, make sure the outcome folders exist, stand by without the lease, and wait for
//! new mail (IDLE push or polling).

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_imap::imap_proto::{MailboxDatum, Response};
use async_imap::types::UnsolicitedResponse;

use super::conn::{self, collect_within, Caps, ConnectError, Session};
use super::{imap_err, now_ms, quote, store_err, timed, utf7, ImapSource, Live};
use crate::config::AfterProcessing;
use crate::inbound::SourceError;
use crate::lease::LeaseHandle;

impl ImapSource {
    /// Without the lease: log out (if connected) and say so once.
    pub(super) async fn stand_by(&mut self) {
        let had_session = self.live.is_some() || self.status.connected.load(Ordering::Relaxed);
        self.scan = None;
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

    /// Connects and selects when there is no live connection.
    pub(super) async fn ensure_connected(&mut self) -> Result<&mut Live, SourceError> {
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
    pub(super) fn lost(&mut self, e: &SourceError) {
        if matches!(e, SourceError::Store(_)) {
            return;
        }
        self.live = None;
        self.scan = None;
        // `connected` rather than `live`: during IDLE the session is out of `live`.
        if self.status.connected.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %e, "IMAP connection lost; reconnecting");
        }
        self.status.push.store(false, Ordering::Relaxed);
        self.status.set_error(&e.to_string());
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

    /// Returns when new mail may be there: IDLE push, or the poll interval.
    pub(super) async fn wait_for_mail(&mut self) {
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
