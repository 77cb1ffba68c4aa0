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

/// Listing windows one round lists at most. With `imap.list_window` UIDs per window, a round
/// lists at most `MAX_WINDOWS_PER_ROUND * list_window` UIDs however large the mailbox is;
/// what lies above is listed by the next round, which the source asks for at once
/// ([`crate::inbound::MailSource::more_to_list`]).
pub const MAX_WINDOWS_PER_ROUND: u32 = 16;

/// One listing window: the UIDs `from..=to` (`UID FETCH from:to (UID RFC822.SIZE)`). An
/// explicit upper bound: a server answers `n:*` with the last UID even when it is below `n`,
/// and the whole answer to `n:*` could be the entire mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: i64,
    pub to: i64,
}

/// The window that starts at `from`: at most `width` UIDs, and never past `last`, the highest
/// UID in the mailbox (`UID FETCH * (UID)`). `None` when there is nothing to list: an empty
/// mailbox, or nothing at or above `from`.
pub fn list_window(from: i64, last: Option<u32>, width: u32) -> Option<Window> {
    let last = i64::from(last?);
    let from = from.max(1);
    (from <= last).then(|| Window {
        from,
        to: (from + i64::from(width.max(1)) - 1).min(last),
    })
}

/// Where the listing goes after a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// There are mails to fetch: the next round lists this window again (from its start).
    Fetch,
    /// Nothing to do in the window and the mailbox goes higher: list on from this UID, in
    /// this round while its window budget lasts, else in the next.
    Continue(i64),
    /// Nothing to do up to the last UID: the next round lists from this UID, where new mail
    /// arrives.
    Top(i64),
}

/// What one window of a round does, decided from its listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPlan {
    /// The floor after this window: the first UID not handled (a set-aside one included), or
    /// past the window when everything in it is handled. It rises only when the window starts
    /// at the floor (every UID below it is handled), and never falls.
    pub new_floor: i64,
    /// `(uid, size)` of the mails fetched whole, ascending.
    pub whole: Vec<(u32, u64)>,
    /// `(uid, size)` of the oversize mails, fetched as headers only, ascending.
    pub headers_only: Vec<(u32, u64)>,
    /// The set-aside UIDs met in the window (not handled), ascending.
    pub set_aside: Vec<u32>,
    /// Where the listing goes on.
    pub then: Then,
}

/// Plans one window from `listed` (`(uid, RFC822.SIZE)` of the window, in any order, possibly
/// with repeats or UIDs outside it, which are ignored), the UIDs recorded as handled (`done`),
/// and those the caller set aside.
///
/// - The floor rises to the first UID not handled; a set-aside UID is not handled, so the
///   floor stays at or below it and the mail is read again once it is no longer set aside.
///   A window is listed only up to the last UID, so when everything in it is handled, the
///   UIDs it covers are settled (new mail gets higher UIDs) and the floor passes the window
///   even across a gap of expunged UIDs.
/// - Set-aside mails are left out before the batch is chosen: they neither fill it nor cost
///   bytes, and a window holding only set-aside and handled mail is passed ([`Then::Continue`]).
/// - The batch takes mails in UID order within `max_mails` and `batch_bytes`, but always at
///   least one; an oversize mail costs only [`MAX_HEADER_BYTES`].
pub fn plan_fetch(
    listed: &[(u32, u64)],
    done: &HashSet<u32>,
    set_aside: &HashSet<u32>,
    floor: i64,
    window: Window,
    last: u32,
    limits: FetchLimits,
) -> FetchPlan {
    let mut listed: Vec<(u32, u64)> = listed
        .iter()
        .copied()
        .filter(|(uid, _)| (window.from..=window.to).contains(&i64::from(*uid)))
        .collect();
    listed.sort_unstable();
    listed.dedup_by_key(|(uid, _)| *uid);
    let mut todo = listed
        .iter()
        .copied()
        .filter(|(uid, _)| !done.contains(uid));
    let new_floor = if floor < window.from {
        // Something below the window is not handled yet.
        floor
    } else {
        match todo.clone().next() {
            Some((uid, _)) => i64::from(uid),
            None => window.to + 1,
        }
        .max(floor)
    };
    let max = limits.max_mails.max(1);
    let mut budget = limits.batch_bytes;
    let mut whole = Vec::new();
    let mut headers_only = Vec::new();
    for (uid, size) in todo.by_ref().filter(|(uid, _)| !set_aside.contains(uid)) {
        let taken = whole.len() + headers_only.len();
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
            headers_only.push((uid, size));
        } else {
            whole.push((uid, size));
        }
    }
    let met_aside = listed
        .iter()
        .map(|(uid, _)| *uid)
        .filter(|uid| set_aside.contains(uid) && !done.contains(uid))
        .collect();
    let then = if !whole.is_empty() || !headers_only.is_empty() {
        Then::Fetch
    } else if window.to < i64::from(last) {
        Then::Continue(window.to + 1)
    } else {
        Then::Top(window.to + 1)
    };
    FetchPlan {
        new_floor,
        whole,
        headers_only,
        set_aside: met_aside,
        then,
    }
}

/// Where the listing stands between rounds (kept in memory for one mailbox and UIDVALIDITY).
/// A round lists from `mark` rather than from the floor, so a floor held down by a set-aside
/// mail, or a long run of handled mail left in the mailbox (`flag_seen`), is not listed again
/// every round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Where the next round starts listing. Every UID from the floor up to it was, when
    /// listed, handled (for good) or set aside; UIDs of new mail are higher.
    pub mark: i64,
    /// The set-aside UIDs passed below `mark`. Once one of them is no longer set aside, the
    /// next round starts at the floor again, so it is read.
    pub passed_aside: Vec<u32>,
    /// The last round spent its window budget with UIDs above still unlisted: the caller
    /// should run the next round at once instead of waiting for new mail.
    pub more: bool,
}

impl Scan {
    /// Where this round's first window starts: at the mark, or at the floor when the mark is
    /// not above it or a mail passed while set aside no longer is.
    pub fn start(&mut self, floor: i64, set_aside: &HashSet<u32>) -> i64 {
        let released = self.passed_aside.iter().any(|uid| !set_aside.contains(uid));
        if self.mark <= floor || released {
            self.mark = floor;
            self.passed_aside.clear();
        }
        self.more = false;
        self.mark
    }

    /// Nothing to list at or above the mark (an empty mailbox, or no mail above it).
    pub fn nothing_listed(&mut self) {
        self.more = false;
    }

    /// Takes in the plan of this round's `listed`-th window; returns where the next window of
    /// this round starts, or `None` when the round stops listing here (mails to fetch, the
    /// top reached, or [`MAX_WINDOWS_PER_ROUND`] windows listed).
    pub fn after(&mut self, window: Window, plan: &FetchPlan, listed: u32) -> Option<i64> {
        match plan.then {
            Then::Fetch => {
                self.mark = window.from;
                self.more = false;
                None
            }
            Then::Top(next) => {
                self.pass(next, &plan.set_aside);
                self.more = false;
                None
            }
            Then::Continue(next) => {
                self.pass(next, &plan.set_aside);
                self.more = listed >= MAX_WINDOWS_PER_ROUND;
                (!self.more).then_some(next)
            }
        }
    }

    fn pass(&mut self, next: i64, set_aside: &[u32]) {
        self.mark = next;
        self.passed_aside.extend_from_slice(set_aside);
    }
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

    fn w(from: i64, to: i64) -> Window {
        Window { from, to }
    }

    #[test]
    fn listing_windows() {
        // (name, from, last, width, window)
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, i64, Option<u32>, u32, Option<Window>)] = &[
            ("empty mailbox: nothing to list", 1, None, 100, None),
            ("nothing at or above the floor", 8, Some(7), 100, None),
            ("the last UID alone", 7, Some(7), 100, Some(w(7, 7))),
            ("a full window", 1, Some(5000), 100, Some(w(1, 100))),
            (
                "never past the last UID",
                90,
                Some(120),
                100,
                Some(w(90, 120)),
            ),
            ("a floor of 0 starts at 1", 0, Some(3), 100, Some(w(1, 3))),
            ("a zero width lists one UID", 4, Some(9), 0, Some(w(4, 4))),
            (
                "never past the largest UID",
                i64::from(u32::MAX) - 1,
                Some(u32::MAX),
                1000,
                Some(w(i64::from(u32::MAX) - 1, i64::from(u32::MAX))),
            ),
        ];
        for (name, from, last, width, want) in cases {
            assert_eq!(list_window(*from, *last, *width), *want, "{name}");
        }
    }

    #[test]
    fn fetch_plans() {
        let roomy = limits(10, 100 * MB, 10 * MB);
        // (name, listed, done, set aside, floor, window, last UID, limits,
        //  new floor, whole, headers only, then)
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &str,
            &[(u32, u64)],
            &[u32],
            &[u32],
            i64,
            Window,
            u32,
            FetchLimits,
            i64,
            &[u32],
            &[u32],
            Then,
        )] = &[
            (
                "all new",
                &[(5, 10), (6, 10)],
                &[],
                &[],
                5,
                w(5, 6),
                6,
                roomy,
                5,
                &[5, 6],
                &[],
                Then::Fetch,
            ),
            (
                "unsorted, repeated listing",
                &[(6, 10), (5, 10), (6, 10)],
                &[],
                &[],
                5,
                w(5, 6),
                6,
                roomy,
                5,
                &[5, 6],
                &[],
                Then::Fetch,
            ),
            (
                "UIDs outside the window are ignored",
                &[(3, 10), (9, 10)],
                &[],
                &[],
                5,
                w(5, 8),
                9,
                roomy,
                9,
                &[],
                &[],
                Then::Continue(9),
            ),
            (
                "handled prefix raises the floor",
                &[(5, 10), (6, 10), (7, 10)],
                &[5, 6],
                &[],
                5,
                w(5, 7),
                7,
                roomy,
                7,
                &[7],
                &[],
                Then::Fetch,
            ),
            (
                "handled in the middle stays handled",
                &[(5, 10), (6, 10), (7, 10)],
                &[6],
                &[],
                5,
                w(5, 7),
                7,
                roomy,
                5,
                &[5, 7],
                &[],
                Then::Fetch,
            ),
            (
                "all handled up to the last: floor past it, the top reached",
                &[(5, 10), (9, 10)],
                &[5, 9],
                &[],
                5,
                w(5, 9),
                9,
                roomy,
                10,
                &[],
                &[],
                Then::Top(10),
            ),
            (
                "all handled, more above: floor past the window, go on",
                &[(5, 10), (9, 10)],
                &[5, 9],
                &[],
                5,
                w(5, 14),
                4000,
                roomy,
                15,
                &[],
                &[],
                Then::Continue(15),
            ),
            (
                "an empty window below the last UID (expunged): the floor crosses the gap",
                &[],
                &[],
                &[],
                5,
                w(5, 1004),
                90_000,
                roomy,
                1005,
                &[],
                &[],
                Then::Continue(1005),
            ),
            (
                "a window above the floor never moves it",
                &[(2000, 10)],
                &[2000],
                &[],
                5,
                w(1005, 2004),
                2000,
                roomy,
                5,
                &[],
                &[],
                Then::Top(2005),
            ),
            (
                "a window above the floor: its mails are fetched, the floor stays",
                &[(2000, 10)],
                &[],
                &[],
                5,
                w(1005, 2004),
                2000,
                roomy,
                5,
                &[2000],
                &[],
                Then::Fetch,
            ),
            (
                "floor never passes a set-aside UID",
                &[(5, 10), (6, 10), (7, 10)],
                &[5],
                &[6],
                5,
                w(5, 7),
                7,
                roomy,
                6,
                &[7],
                &[],
                Then::Fetch,
            ),
            (
                "only set-aside mail: nothing fetched, floor stays, top reached",
                &[(5, 10)],
                &[],
                &[5],
                5,
                w(5, 5),
                5,
                roomy,
                5,
                &[],
                &[],
                Then::Top(6),
            ),
            (
                "set-aside and handled only, more above: floor stays, the listing goes on",
                &[(5, 10), (6, 10)],
                &[6],
                &[5],
                5,
                w(5, 6),
                500,
                roomy,
                5,
                &[],
                &[],
                Then::Continue(7),
            ),
            (
                "set-aside mail does not fill the batch",
                &[(5, 10), (6, 10), (7, 10)],
                &[],
                &[5],
                5,
                w(5, 7),
                7,
                limits(1, MB, MB),
                5,
                &[6],
                &[],
                Then::Fetch,
            ),
            (
                "count limit",
                &[(1, 10), (2, 10), (3, 10)],
                &[],
                &[],
                1,
                w(1, 3),
                3,
                limits(2, MB, MB),
                1,
                &[1, 2],
                &[],
                Then::Fetch,
            ),
            (
                "a zero count still takes one mail",
                &[(1, 10), (2, 10)],
                &[],
                &[],
                1,
                w(1, 2),
                2,
                limits(0, MB, MB),
                1,
                &[1],
                &[],
                Then::Fetch,
            ),
            (
                "byte limit",
                &[(1, 400), (2, 400), (3, 400)],
                &[],
                &[],
                1,
                w(1, 3),
                3,
                limits(10, 1000, MB),
                1,
                &[1, 2],
                &[],
                Then::Fetch,
            ),
            (
                "one mail above the byte budget is still taken",
                &[(1, 5000), (2, 10)],
                &[],
                &[],
                1,
                w(1, 2),
                2,
                limits(10, 1000, MB),
                1,
                &[1],
                &[],
                Then::Fetch,
            ),
            (
                "oversize costs only headers",
                &[(1, 50 * MB), (2, MB)],
                &[],
                &[],
                1,
                w(1, 2),
                2,
                limits(10, 2 * MB, 10 * MB),
                1,
                &[2],
                &[1],
                Then::Fetch,
            ),
            (
                "oversize first, then the budget is spent",
                &[(1, 50 * MB), (2, 2 * MB)],
                &[],
                &[],
                1,
                w(1, 2),
                2,
                limits(10, 2 * MB, 10 * MB),
                1,
                &[],
                &[1],
                Then::Fetch,
            ),
            (
                "exactly the size limit is whole",
                &[(1, 10 * MB)],
                &[],
                &[],
                1,
                w(1, 1),
                1,
                roomy,
                1,
                &[1],
                &[],
                Then::Fetch,
            ),
        ];
        for (
            name,
            listed,
            done,
            aside,
            floor,
            window,
            last,
            limits,
            new_floor,
            whole,
            headers,
            then,
        ) in cases
        {
            let plan = plan_fetch(
                listed,
                &done.iter().copied().collect(),
                &aside.iter().copied().collect(),
                *floor,
                *window,
                *last,
                *limits,
            );
            assert_eq!(plan.new_floor, *new_floor, "{name}: floor");
            assert_eq!(uids(&plan.whole), *whole, "{name}: whole");
            assert_eq!(uids(&plan.headers_only), *headers, "{name}: headers only");
            assert_eq!(plan.then, *then, "{name}: then");
        }
    }

    #[test]
    fn fetch_plan_keeps_sizes() {
        let plan = plan_fetch(
            &[(1, 50 * MB), (2, 7)],
            &HashSet::new(),
            &HashSet::new(),
            1,
            w(1, 2),
            2,
            limits(10, MB, MB),
        );
        assert_eq!(plan.whole, vec![(2, 7)]);
        assert_eq!(plan.headers_only, vec![(1, 50 * MB)]);
    }

    /// A fake mailbox read round after round the way `round.rs` does: every mail is fetched
    /// exactly once, across gaps of expunged UIDs wider than a round's windows, with a mail
    /// set aside for a while, and no round lists more than its window budget.
    #[test]
    fn rounds_over_a_large_sparse_mailbox_fetch_every_mail_once() {
        use std::collections::{BTreeMap, HashMap};
        const WIDTH: u32 = 10;
        for keep_handled in [false, true] {
            // 1..=3000 with a gap of expunged UIDs (400..=900) wider than a round's windows,
            // and only every third UID above 2000 (sparse).
            let mut mailbox: BTreeMap<u32, u64> = (1..=3000u32)
                .filter(|u| !(400..=900).contains(u) && (*u <= 2000 || u % 3 == 0))
                .map(|u| (u, 100))
                .collect();
            let expected = mailbox.len();
            let mut done: HashSet<u32> = HashSet::new();
            let mut set_aside: HashSet<u32> = [7u32].into_iter().collect();
            let mut fetched: HashMap<u32, usize> = HashMap::new();
            let mut floor = 1i64;
            let mut scan = Scan::default();
            let lim = limits(25, MB, MB);
            let mut rounds = 0;
            let mut continued = 0;
            loop {
                rounds += 1;
                assert!(rounds < 2000, "keep_handled={keep_handled}: no end");
                if rounds == 50 {
                    // Released: read again although the mark passed it long ago.
                    set_aside.clear();
                }
                let last = mailbox.keys().next_back().copied();
                let mut from = scan.start(floor, &set_aside);
                let mut windows = 0;
                let mut plan = None;
                while let Some(window) = list_window(from, last, WIDTH) {
                    windows += 1;
                    let listed: Vec<(u32, u64)> = mailbox
                        .range(window.from as u32..=window.to as u32)
                        .map(|(u, s)| (*u, *s))
                        .collect();
                    assert!(listed.len() <= WIDTH as usize);
                    let p = plan_fetch(
                        &listed,
                        &done,
                        &set_aside,
                        floor,
                        window,
                        last.unwrap(),
                        lim,
                    );
                    assert!(p.new_floor >= floor, "the floor never falls");
                    floor = p.new_floor;
                    let next = scan.after(window, &p, windows);
                    plan = Some(p);
                    match next {
                        Some(n) => from = n,
                        None => break,
                    }
                }
                if plan.is_none() {
                    scan.nothing_listed();
                }
                assert!(windows <= MAX_WINDOWS_PER_ROUND);
                continued += usize::from(scan.more);
                for (uid, _) in plan
                    .iter()
                    .flat_map(|p| p.whole.iter().chain(&p.headers_only))
                {
                    *fetched.entry(*uid).or_default() += 1;
                    if keep_handled {
                        done.insert(*uid);
                    } else {
                        mailbox.remove(uid);
                    }
                }
                let fetched_any = plan.as_ref().is_some_and(|p| !p.whole.is_empty());
                if !fetched_any && !scan.more && set_aside.is_empty() {
                    break;
                }
            }
            assert!(continued > 0, "the gap is wider than a round's windows");
            assert_eq!(fetched.len(), expected, "keep_handled={keep_handled}");
            assert!(
                fetched.values().all(|n| *n == 1),
                "keep_handled={keep_handled}: a mail fetched twice"
            );
            if keep_handled {
                // Everything stays, handled: the floor passes it all, gaps included.
                assert_eq!(floor, 3001);
            }
        }
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
