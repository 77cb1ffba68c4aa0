//! The filing plan: which handled mails go to which outcome folder, whether they must be
//! remembered as handled, and which are left alone after a UIDVALIDITY change. Separate from
//! the fetch planning in `plan.rs`: it runs after the pipeline, on what was acknowledged.

use super::super::conn::Caps;
use super::super::disposition_index;
use crate::config::AfterProcessing;
use crate::inbound::Disposition;

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
