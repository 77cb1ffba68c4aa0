//! One round: list the mailbox in bounded windows from the floor up, plan and fetch a batch;
//! file handled mail. The decisions are pure functions in `plan` ([`list_window`],
//! [`plan_fetch`], [`Scan`], [`plan_filing`]), table-tested there; the methods here only talk
//! IMAP and the store.

use std::collections::{HashMap, HashSet};

use async_imap::error::Error as ImapError;
use futures::StreamExt;

use super::conn::{collect_map_within, collect_within};
use super::plan::{list_window, plan_fetch, plan_filing, FetchLimits, Scan, MAX_HEADER_BYTES};
use super::{
    add_flags, disposition_code, imap_err, now_ms, parse_handle, store_err, timed, uid_set,
    ImapSource, DISPOSITIONS,
};
use crate::config::AfterProcessing;
use crate::inbound::{Disposition, RawMail, SourceError};

impl ImapSource {
    pub(super) async fn fetch_inner(
        &mut self,
        max: usize,
        skip: &HashSet<String>,
    ) -> Result<Vec<RawMail>, SourceError> {
        let limit = self.config.command_timeout;
        let width = self.config.list_window;
        let limits = FetchLimits {
            max_mails: max.min(self.config.batch_size),
            batch_bytes: self.config.batch_bytes,
            max_message_bytes: self.max_message_bytes,
        };
        let account = self.account.clone();
        let mailbox = self.mailbox.clone();
        let store = self.store.clone();
        let mailbox_name = self.config.mailbox.clone();
        // Kept again once this round has listed; dropped if it fails.
        let previous_scan = self.scan.take();
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
        let set_aside: HashSet<u32> = skip
            .iter()
            .filter_map(|h| parse_handle(h))
            .filter(|(v, _)| *v == uidvalidity)
            .map(|(_, uid)| uid)
            .collect();
        // 1. The last UID: windows are listed up to it and no further (one line; nothing for
        // an empty mailbox, where a server may also refuse `*` with NO or BAD).
        let mut last: Option<u32> = None;
        let mut stream = timed(
            limit,
            "UID FETCH (last)",
            live.session.uid_fetch("*", "(UID)"),
        )
        .await?;
        loop {
            match tokio::time::timeout(limit, stream.next()).await {
                Err(_) => {
                    return Err(SourceError::Unavailable(format!(
                        "UID FETCH (last): no answer within {} (imap.command_timeout)",
                        humantime::format_duration(limit)
                    )))
                }
                Ok(None) => break,
                Ok(Some(Ok(item))) => last = last.max(item.uid),
                Ok(Some(Err(e @ (ImapError::No(_) | ImapError::Bad(_))))) => {
                    tracing::debug!(answer = %e, "UID FETCH * refused: taken as an empty mailbox");
                    last = None;
                    break;
                }
                Ok(Some(Err(e))) => return Err(imap_err("UID FETCH (last)")(e)),
            }
        }
        drop(stream);
        // 2. Windows of UIDs with their sizes, from the floor (or where the last round stopped)
        // up, until one holds mail to fetch; at most MAX_WINDOWS_PER_ROUND of them.
        let mut scan = match previous_scan {
            Some((validity, scan)) if validity == uidvalidity => scan,
            _ => Scan::default(),
        };
        let mut from = scan.start(floor, &set_aside);
        let mut new_floor = floor;
        let mut listed_windows = 0;
        let mut plan = None;
        while let Some(window) = list_window(from, last, width) {
            let set = format!("{}:{}", window.from, window.to);
            let listing: Vec<(u32, u64)> = timed(limit, "UID FETCH (list)", async {
                let listed = collect_map_within(
                    live.session.uid_fetch(&set, "(UID RFC822.SIZE)").await?,
                    limit,
                    |f| Some((f.uid?, u64::from(f.size?))),
                )
                .await
                .map_err(async_imap::error::Error::Bad)?;
                Ok(listed)
            })
            .await?;
            let done: HashSet<u32> = store
                .imap_done_uids(
                    &account,
                    &mailbox,
                    uidvalidity.into(),
                    window.from,
                    window.to,
                )
                .await
                .map_err(store_err)?
                .into_iter()
                .filter_map(|uid| u32::try_from(uid).ok())
                .collect();
            listed_windows += 1;
            let window_plan = plan_fetch(
                &listing,
                &done,
                &set_aside,
                new_floor,
                window,
                last.unwrap_or(0),
                limits,
            );
            new_floor = window_plan.new_floor;
            let next = scan.after(window, &window_plan, listed_windows);
            plan = Some(window_plan);
            match next {
                Some(next) => from = next,
                None => break,
            }
        }
        if plan.is_none() {
            scan.nothing_listed();
        }
        if scan.more {
            tracing::debug!(
                windows = listed_windows,
                next = scan.mark,
                "listing window budget spent; the next round goes on from there"
            );
        }
        // 3. Raise the floor to the first unhandled UID (or past every window handled).
        if new_floor > floor {
            store
                .imap_advance_floor(&account, &mailbox, uidvalidity.into(), new_floor, now_ms())
                .await
                .map_err(store_err)?;
        }
        let Some(plan) = plan else {
            self.scan = Some((uidvalidity, scan));
            return Ok(Vec::new());
        };
        let sizes: HashMap<u32, u64> = plan
            .whole
            .iter()
            .chain(&plan.headers_only)
            .copied()
            .collect();
        let whole: Vec<u32> = plan.whole.iter().map(|(uid, _)| *uid).collect();
        let headers_only: Vec<u32> = plan.headers_only.iter().map(|(uid, _)| *uid).collect();
        // 4. Fetch them, one mail at a time off the wire.
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
        self.scan = Some((uidvalidity, scan));
        Ok(mails.into_iter().map(|(_, m)| m).collect())
    }

    /// Files handled mails: one `UID MOVE` (or COPY + STORE + EXPUNGE, or STORE) per outcome
    /// folder for the whole set, so a backlog costs a round trip (and Dovecot's index update)
    /// per batch rather than per mail.
    pub(super) async fn ack_inner(
        &mut self,
        acks: &[(&RawMail, Disposition)],
    ) -> Result<(), SourceError> {
        let limit = self.config.command_timeout;
        let mode = self.config.after_processing;
        let account = self.account.clone();
        let mailbox = self.mailbox.clone();
        let store = self.store.clone();
        let live = self.ensure_connected().await?;
        let mut parsed = Vec::with_capacity(acks.len());
        for (mail, disposition) in acks {
            let (uidvalidity, uid) = parse_handle(&mail.handle).ok_or_else(|| {
                SourceError::Protocol(format!("not an IMAP handle: {}", mail.handle))
            })?;
            parsed.push((uidvalidity, uid, *disposition));
        }
        let uidvalidity = live.uidvalidity;
        let plan = plan_filing(&parsed, uidvalidity, mode, &live.caps);
        for &i in &plan.stale {
            // The UID may name another mail now. This one is read again under the new
            // UIDVALIDITY and recognised by its key; leave it alone.
            tracing::info!(origin = %acks[i].0.origin, "UIDVALIDITY changed since fetch; not filing by old UID");
        }
        for (index, uids) in plan.groups.iter().enumerate() {
            if uids.is_empty() {
                continue;
            }
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
            if !plan.remember {
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
}
