//! The per-recipient rate-limit ladder (`outbox.rate_limits`): a pure decision over the times
//! of the automatic replies a recipient already got.

use std::time::Duration;

use crate::config::RateLimitStep;

/// A step of the ladder the recipient has reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    /// Replies within the step's window.
    pub count: usize,
    /// The step's window.
    pub window: Duration,
}

/// The widest window of the ladder: the replies older than this never matter (`None` for an
/// empty ladder, which limits nothing).
pub fn widest(steps: &[RateLimitStep]) -> Option<Duration> {
    steps.iter().map(|s| s.window).max()
}

/// The first step (in the configured order) whose window, ending at `now`, already holds
/// `max` or more of `recent_times` (Unix ms of the replies sent to the recipient; a reply at
/// exactly `now - window` still counts). `None`: another reply is allowed.
pub fn ladder(steps: &[RateLimitStep], recent_times: &[i64], now: i64) -> Option<Reached> {
    steps.iter().find_map(|step| {
        let since = now - step.window.as_millis() as i64;
        let count = recent_times.iter().filter(|t| **t >= since).count();
        (count >= step.max as usize).then_some(Reached {
            count,
            window: step.window,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(secs: u64, max: u32) -> RateLimitStep {
        RateLimitStep {
            window: Duration::from_secs(secs),
            max,
        }
    }

    #[test]
    fn ladder_table() {
        // The e2e_loop scenario's ladder: 3 per 15 s, 5 per 60 s. Times in seconds.
        let steps = [step(15, 3), step(60, 5)];
        // (name, reply times, now, reached: (count, window secs))
        #[allow(clippy::type_complexity)]
        let cases: &[(&str, &[i64], i64, Option<(usize, u64)>)] = &[
            ("no replies yet", &[], 100, None),
            ("two in 15 s: allowed", &[98, 99], 100, None),
            (
                "three in 15 s: the first step",
                &[90, 95, 99],
                100,
                Some((3, 15)),
            ),
            (
                "at exactly the window edge still counts",
                &[85, 95, 99],
                100,
                Some((3, 15)),
            ),
            (
                "just past the edge no longer counts",
                &[84, 95, 99],
                100,
                None,
            ),
            (
                "15 s later: allowed again (4 in 60 s)",
                &[60, 61, 62, 80],
                100,
                None,
            ),
            (
                "five in 60 s: the second step",
                &[41, 42, 43, 90, 91],
                100,
                Some((5, 60)),
            ),
            (
                "both reached: the first step is named",
                &[50, 60, 96, 97, 99],
                100,
                Some((3, 15)),
            ),
            (
                "once older than 60 s: allowed again",
                &[10, 11, 12, 50, 51],
                112,
                None,
            ),
            (
                "the phase-3 moment: first three out of the 60 s window",
                &[0, 1, 2, 20, 21],
                63,
                None,
            ),
            (
                "future times (clock skew) count as recent",
                &[101, 102, 103],
                100,
                Some((3, 15)),
            ),
        ];
        for (name, times, now, want) in cases {
            let ms: Vec<i64> = times.iter().map(|t| t * 1000).collect();
            let got = ladder(&steps, &ms, now * 1000);
            let want = want.map(|(count, secs)| Reached {
                count,
                window: Duration::from_secs(secs),
            });
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn empty_ladder_and_zero_max() {
        assert_eq!(ladder(&[], &[1, 2, 3], 3), None);
        assert_eq!(widest(&[]), None);
        assert_eq!(
            widest(&[step(15, 3), step(60, 5), step(30, 4)]),
            Some(Duration::from_secs(60))
        );
        // max = 0 forbids every automatic reply.
        assert_eq!(
            ladder(&[step(60, 0)], &[], 0),
            Some(Reached {
                count: 0,
                window: Duration::from_secs(60)
            })
        );
    }
}
