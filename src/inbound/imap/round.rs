//! One round: list the mailbox from the floor up, plan and fetch a batch; file handled mail.
//! The decisions ([`plan_fetch`], [`plan_filing`]) are pure functions, table-tested below;
//! the methods around them only talk IMAP and the store.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;

use super::conn::{collect_map_within, collect_within, Caps};
use super::{
    add_flags, disposition_code, disposition_index, imap_err, now_ms, parse_handle, store_err,
    timed, uid_set, ImapSource, DISPOSITIONS,
};
use crate::config::AfterProcessing;
use crate::inbound::{Disposition, RawMail, SourceError};

/// Header bytes read of an oversize mail at most.
pub const MAX_HEADER_BYTES: u64 = 256 * 1024;

impl ImapSource {
    pub(super) async fn fetch_inner(
        &mut self,
        max: usize,
        skip: &HashSet<String>,
    ) -> Result<Vec<RawMail>, SourceError> {
        let limit = self.config.command_timeout;
        let limits = FetchLimits {
            max_mails: max.min(self.config.batch_size),
            batch_bytes: self.config.batch_bytes,
            max_message_bytes: self.max_message_bytes,
        };
        let account = self.account.clone();
        let mailbox = self.mailbox.clone();
        let store = self.store.clone();
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
        let listing: Vec<(u32, u64)> = timed(limit, "UID FETCH (list)", async {
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
        let done: HashSet<u32> = store
            .imap_done_uids(&account, &mailbox, uidvalidity.into(), floor)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter_map(|uid| u32::try_from(uid).ok())
            .collect();
        let set_aside: HashSet<u32> = skip
            .iter()
            .filter_map(|h| parse_handle(h))
            .filter(|(v, _)| *v == uidvalidity)
            .map(|(_, uid)| uid)
            .collect();
        let plan = plan_fetch(&listing, &done, &set_aside, floor, limits);
        // 2. Raise the floor to the first unhandled UID (or past everything listed).
        if plan.new_floor > floor {
            store
                .imap_advance_floor(
                    &account,
                    &mailbox,
                    uidvalidity.into(),
                    plan.new_floor,
                    now_ms(),
                )
                .await
                .map_err(store_err)?;
        }
        let sizes: HashMap<u32, u64> = plan
            .whole
            .iter()
            .chain(&plan.headers_only)
            .copied()
            .collect();
        let whole: Vec<u32> = plan.whole.iter().map(|(uid, _)| *uid).collect();
        let headers_only: Vec<u32> = plan.headers_only.iter().map(|(uid, _)| *uid).collect();
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

/// The limits of one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Mails per round at most (at least one is always taken).
    pub max_mails: usize,
    /// Bytes per round at most (the first mail is taken whatever it costs).
    pub batch_bytes: u64,
    /// A mail above this size is fetched as its header section only.
    pub max_message_bytes: u64,
}

/// What one round does, decided from the listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchPlan {
    /// The floor after this round: the first UID not handled (a set-aside one included), or
    /// past everything listed. Never below the floor given.
    pub new_floor: i64,
    /// `(uid, size)` of the mails fetched whole, ascending.
    pub whole: Vec<(u32, u64)>,
    /// `(uid, size)` of the oversize mails, fetched as headers only, ascending.
    pub headers_only: Vec<(u32, u64)>,
}

/// Plans a round from `listed` (`(uid, RFC822.SIZE)` from the floor up, in any order, possibly
/// with repeats or UIDs below the floor — a server answers `n:*` with the last UID even when
/// it is below `n`), the UIDs recorded as handled (`done`), and those the caller set aside.
///
/// - The floor rises to the first UID not handled; a set-aside UID is not handled, so the
///   floor stays at or below it and the mail is read again once it is no longer set aside.
/// - Set-aside mails are left out before the batch is chosen: they neither fill it nor cost
///   bytes.
/// - The batch takes mails in UID order within `max_mails` and `batch_bytes`, but always at
///   least one; an oversize mail costs only [`MAX_HEADER_BYTES`].
pub fn plan_fetch(
    listed: &[(u32, u64)],
    done: &HashSet<u32>,
    set_aside: &HashSet<u32>,
    floor: i64,
    limits: FetchLimits,
) -> FetchPlan {
    let mut listed: Vec<(u32, u64)> = listed
        .iter()
        .copied()
        .filter(|(uid, _)| i64::from(*uid) >= floor)
        .collect();
    listed.sort_unstable();
    listed.dedup_by_key(|(uid, _)| *uid);
    let mut todo = listed
        .iter()
        .copied()
        .filter(|(uid, _)| !done.contains(uid));
    let new_floor = match (todo.clone().next(), listed.last()) {
        (Some((uid, _)), _) => i64::from(uid),
        (None, Some((last, _))) => i64::from(*last) + 1,
        (None, None) => floor,
    };
    let max = limits.max_mails.max(1);
    let mut budget = limits.batch_bytes;
    let mut plan = FetchPlan {
        new_floor,
        ..FetchPlan::default()
    };
    for (uid, size) in todo.by_ref().filter(|(uid, _)| !set_aside.contains(uid)) {
        let taken = plan.whole.len() + plan.headers_only.len();
        if taken >= max {
            break;
        }
        let oversize = size > limits.max_message_bytes;
        let cost = if oversize { MAX_HEADER_BYTES } else { size };
        if taken > 0 && cost > budget {
            break;
        }
        budget = budget.saturating_sub(cost);
        if oversize {
            plan.headers_only.push((uid, size));
        } else {
            plan.whole.push((uid, size));
        }
    }
    plan
}

/// How handled mails are filed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilingPlan {
    /// UIDs per outcome folder (in the order of `DISPOSITIONS`), ascending, without repeats.
    pub groups: [Vec<u32>; 3],
    /// Whether the filed UIDs must be recorded as handled: only when they stay in the mailbox
    /// (`flag_seen`, or COPY + `\Deleted` without UIDPLUS to expunge them). A moved mail is
    /// gone; not writing keeps SQLite's single writer free for the pipeline and the sender.
    pub remember: bool,
    /// Indexes (into `acks`) of mails fetched under another UIDVALIDITY: their UID may name
    /// another mail now, so they are left alone (read again under the new UIDVALIDITY and
    /// recognised by their key).
    pub stale: Vec<usize>,
}

/// Plans the filing of `acks` (`(uidvalidity, uid, disposition)` per handled mail) on a
/// connection whose mailbox has `uidvalidity`.
pub fn plan_filing(
    acks: &[(u32, u32, Disposition)],
    uidvalidity: u32,
    mode: AfterProcessing,
    caps: &Caps,
) -> FilingPlan {
    let mut plan = FilingPlan {
        remember: mode == AfterProcessing::FlagSeen || !(caps.move_ || caps.uidplus),
        ..FilingPlan::default()
    };
    for (i, &(validity, uid, disposition)) in acks.iter().enumerate() {
        if validity != uidvalidity {
            plan.stale.push(i);
            continue;
        }
        plan.groups[disposition_index(disposition)].push(uid);
    }
    for uids in &mut plan.groups {
        uids.sort_unstable();
        uids.dedup();
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1024 * 1024;

    fn limits(max_mails: usize, batch_bytes: u64, max_message_bytes: u64) -> FetchLimits {
        FetchLimits {
            max_mails,
            batch_bytes,
            max_message_bytes,
        }
    }

    fn uids(pairs: &[(u32, u64)]) -> Vec<u32> {
        pairs.iter().map(|(u, _)| *u).collect()
    }

    #[test]
    fn fetch_plans() {
        let roomy = limits(10, 100 * MB, 10 * MB);
        // (name, listed, done, set aside, floor, limits, new floor, whole, headers only)
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &str,
            &[(u32, u64)],
            &[u32],
            &[u32],
            i64,
            FetchLimits,
            i64,
            &[u32],
            &[u32],
        )] = &[
            (
                "empty mailbox keeps the floor",
                &[],
                &[],
                &[],
                5,
                roomy,
                5,
                &[],
                &[],
            ),
            (
                "all new",
                &[(5, 10), (6, 10)],
                &[],
                &[],
                5,
                roomy,
                5,
                &[5, 6],
                &[],
            ),
            (
                "unsorted, repeated listing",
                &[(6, 10), (5, 10), (6, 10)],
                &[],
                &[],
                5,
                roomy,
                5,
                &[5, 6],
                &[],
            ),
            (
                "a UID below the floor is ignored",
                &[(3, 10)],
                &[],
                &[],
                5,
                roomy,
                5,
                &[],
                &[],
            ),
            (
                "handled prefix raises the floor",
                &[(5, 10), (6, 10), (7, 10)],
                &[5, 6],
                &[],
                5,
                roomy,
                7,
                &[7],
                &[],
            ),
            (
                "handled in the middle stays handled",
                &[(5, 10), (6, 10), (7, 10)],
                &[6],
                &[],
                5,
                roomy,
                5,
                &[5, 7],
                &[],
            ),
            (
                "all handled: floor past the last",
                &[(5, 10), (9, 10)],
                &[5, 9],
                &[],
                5,
                roomy,
                10,
                &[],
                &[],
            ),
            (
                "floor never passes a set-aside UID",
                &[(5, 10), (6, 10), (7, 10)],
                &[5],
                &[6],
                5,
                roomy,
                6,
                &[7],
                &[],
            ),
            (
                "only set-aside mail: nothing fetched, floor stays",
                &[(5, 10)],
                &[],
                &[5],
                5,
                roomy,
                5,
                &[],
                &[],
            ),
            (
                "set-aside mail does not fill the batch",
                &[(5, 10), (6, 10), (7, 10)],
                &[],
                &[5],
                5,
                limits(1, MB, MB),
                5,
                &[6],
                &[],
            ),
            (
                "count limit",
                &[(1, 10), (2, 10), (3, 10)],
                &[],
                &[],
                1,
                limits(2, MB, MB),
                1,
                &[1, 2],
                &[],
            ),
            (
                "a zero count still takes one mail",
                &[(1, 10), (2, 10)],
                &[],
                &[],
                1,
                limits(0, MB, MB),
                1,
                &[1],
                &[],
            ),
            (
                "byte limit",
                &[(1, 400), (2, 400), (3, 400)],
                &[],
                &[],
                1,
                limits(10, 1000, MB),
                1,
                &[1, 2],
                &[],
            ),
            (
                "one mail above the byte budget is still taken",
                &[(1, 5000), (2, 10)],
                &[],
                &[],
                1,
                limits(10, 1000, MB),
                1,
                &[1],
                &[],
            ),
            (
                "oversize costs only headers",
                &[(1, 50 * MB), (2, MB)],
                &[],
                &[],
                1,
                limits(10, 2 * MB, 10 * MB),
                1,
                &[2],
                &[1],
            ),
            (
                "oversize first, then the budget is spent",
                &[(1, 50 * MB), (2, 2 * MB)],
                &[],
                &[],
                1,
                limits(10, 2 * MB, 10 * MB),
                1,
                &[],
                &[1],
            ),
            (
                "exactly the size limit is whole",
                &[(1, 10 * MB)],
                &[],
                &[],
                1,
                roomy,
                1,
                &[1],
                &[],
            ),
        ];
        for (name, listed, done, aside, floor, limits, new_floor, whole, headers) in cases {
            let plan = plan_fetch(
                listed,
                &done.iter().copied().collect(),
                &aside.iter().copied().collect(),
                *floor,
                *limits,
            );
            assert_eq!(plan.new_floor, *new_floor, "{name}: floor");
            assert_eq!(uids(&plan.whole), *whole, "{name}: whole");
            assert_eq!(uids(&plan.headers_only), *headers, "{name}: headers only");
        }
    }

    #[test]
    fn fetch_plan_keeps_sizes() {
        let plan = plan_fetch(
            &[(1, 50 * MB), (2, 7)],
            &HashSet::new(),
            &HashSet::new(),
            1,
            limits(10, MB, MB),
        );
        assert_eq!(plan.whole, vec![(2, 7)]);
        assert_eq!(plan.headers_only, vec![(1, 50 * MB)]);
    }

    #[test]
    fn filing_plans() {
        use Disposition::{Answered as A, Ignored as I, Review as R};
        let caps = |move_, uidplus| Caps {
            move_,
            uidplus,
            ..Caps::default()
        };
        let (mv, fs) = (AfterProcessing::Move, AfterProcessing::FlagSeen);
        // (name, acks, uidvalidity, mode, caps, groups, remember, stale)
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &str,
            &[(u32, u32, Disposition)],
            u32,
            AfterProcessing,
            Caps,
            [&[u32]; 3],
            bool,
            &[usize],
        )] = &[
            (
                "nothing",
                &[],
                7,
                mv,
                caps(true, true),
                [&[], &[], &[]],
                false,
                &[],
            ),
            (
                "grouped by outcome, sorted, no repeats",
                &[(7, 9, A), (7, 3, R), (7, 4, A), (7, 9, A), (7, 1, I)],
                7,
                mv,
                caps(true, true),
                [&[4, 9], &[3], &[1]],
                false,
                &[],
            ),
            (
                "a UIDVALIDITY change is left alone",
                &[(6, 3, A), (7, 4, A)],
                7,
                mv,
                caps(true, true),
                [&[4], &[], &[]],
                false,
                &[0],
            ),
            (
                "MOVE: not remembered",
                &[(7, 1, A)],
                7,
                mv,
                caps(true, false),
                [&[1], &[], &[]],
                false,
                &[],
            ),
            (
                "COPY + UID EXPUNGE: not remembered",
                &[(7, 1, A)],
                7,
                mv,
                caps(false, true),
                [&[1], &[], &[]],
                false,
                &[],
            ),
            (
                "COPY without UIDPLUS: copies stay, remembered",
                &[(7, 1, A)],
                7,
                mv,
                caps(false, false),
                [&[1], &[], &[]],
                true,
                &[],
            ),
            (
                "flag_seen: mail stays, remembered",
                &[(7, 1, R)],
                7,
                fs,
                caps(true, true),
                [&[], &[1], &[]],
                true,
                &[],
            ),
        ];
        for (name, acks, validity, mode, caps, groups, remember, stale) in cases {
            let plan = plan_filing(acks, *validity, *mode, caps);
            let want: [Vec<u32>; 3] = groups.map(<[u32]>::to_vec);
            assert_eq!(plan.groups, want, "{name}: groups");
            assert_eq!(plan.remember, *remember, "{name}: remember");
            assert_eq!(plan.stale, *stale, "{name}: stale");
        }
    }
}
