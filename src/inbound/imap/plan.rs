//! The decisions of a round, as pure functions with table tests: what to fetch
//! ([`plan_fetch`]) and how to file what was handled ([`plan_filing`]).

use std::collections::HashSet;

use super::conn::Caps;
use super::disposition_index;
use crate::config::AfterProcessing;
use crate::inbound::Disposition;

/// Header bytes read of an oversize mail at most.
pub const MAX_HEADER_BYTES: u64 = 256 * 1024;

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
