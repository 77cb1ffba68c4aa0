//! The decisions of a round, as pure functions with table tests: what to fetch
//! ([`plan_fetch`]) and how to file what was handled ([`plan_filing`]).

use std::collections::HashSet;

mod filing;

pub use filing::{plan_filing, FilingPlan};

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

#[cfg(test)]
mod tests;
