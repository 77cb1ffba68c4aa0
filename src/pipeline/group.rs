//! Group commit: the mails of a round are decided one after the other and recorded together
//! in one write transaction (one disk flush instead of one per mail). A decided mail waits
//! here until its group is committed; only then is it acknowledged to its source.

use std::collections::{HashMap, HashSet};

use super::facts::RoundFacts;
use super::Processed;
use crate::classify::{Action, Kind};
use crate::store::NewRecord;

/// What [`super::Pipeline::prepare`] made of a mail.
pub enum Prepared {
    /// Recorded earlier (a redelivery, or re-read after a crash): nothing to write.
    Duplicate(Processed),
    /// Decided, its reply composed: to be recorded with its group.
    Ready(Box<Ready>),
}

/// A decided mail: what the group commit writes for it, and what is logged and counted once
/// it is committed.
pub struct Ready {
    pub(super) record: NewRecord,
    pub(super) kind: Kind,
    pub(super) action: Action,
    pub(super) flagged: bool,
    pub(super) partner: Option<String>,
    pub(super) review_codes: Vec<&'static str>,
    /// The Message-ID key as inspected (before a reused id gets its fingerprint).
    pub(super) group_key: String,
    /// The reply's recipient, when a reply is queued (the rate limit's key).
    pub(super) rate_key: Option<String>,
    pub(super) now_ms: i64,
    pub(super) span: tracing::Span,
    pub(super) started: std::time::Instant,
}

/// The mails decided and not yet committed, with what later mails of the round must see of
/// them before the commit; and the store's facts about the round, read once.
#[derive(Default)]
pub struct Group {
    ready: Vec<Ready>,
    keys: HashSet<String>,
    replies: HashMap<String, Vec<i64>>,
    facts: RoundFacts,
}

impl Group {
    /// The facts the next mails are decided with (read after what this group recorded, or
    /// while it waits: the mails waiting here are seen through [`Group::holds`] and
    /// [`Group::replies_to`], not through the facts).
    pub fn set_facts(&mut self, facts: RoundFacts) {
        self.facts = facts;
    }

    pub fn facts(&self) -> &RoundFacts {
        &self.facts
    }
    /// Whether a mail with this Message-ID key waits here. A second mail with the same key
    /// must be decided against the committed first one (duplicate, or a reused id), so the
    /// group is committed before it.
    pub fn holds(&self, message_key: &str) -> bool {
        self.keys.contains(message_key)
    }

    /// When replies to `address` were queued in this group (the rate limit counts them as if
    /// they were recorded).
    pub fn replies_to(&self, address: &str) -> impl Iterator<Item = i64> + '_ {
        self.replies.get(address).into_iter().flatten().copied()
    }

    pub fn push(&mut self, ready: Ready) {
        self.keys.insert(ready.group_key.clone());
        if let Some(to) = &ready.rate_key {
            self.replies
                .entry(to.clone())
                .or_default()
                .push(ready.now_ms);
        }
        self.ready.push(ready);
    }

    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// Empties the group for its commit, handing out its mails in the order they were
    /// decided. The round's facts learn what the commit records: its keys are asked of the
    /// store again, its replies count on. (Should a mail of it be set aside instead, its reply
    /// still counts for the rest of the round: the rate limit errs on the side of review.)
    pub fn take(&mut self) -> Vec<Ready> {
        let ready = std::mem::take(&mut self.ready);
        let replies = std::mem::take(&mut self.replies);
        self.facts.committed(
            ready.iter().map(|r| r.group_key.as_str()),
            replies
                .iter()
                .flat_map(|(to, times)| times.iter().map(move |t| (to.as_str(), *t))),
        );
        self.keys.clear();
        ready
    }
}
