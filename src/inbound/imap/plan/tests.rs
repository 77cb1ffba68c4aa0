//! Unit tests of `inbound::imap::plan`'s fetch planning: listing windows, fetch plans,
//! rounds over a large sparse mailbox. Moved out of `plan.rs` to keep that file one concept.

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
    for (name, listed, done, aside, floor, window, last, limits, new_floor, whole, headers, then) in
        cases
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
