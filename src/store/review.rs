//! The review queue: listing (keyset-paged, filtered and searched in SQL), the facts behind
//! one item, the history of what was sent, and the staff actions — each action's effect,
//! the item's new state and its audit row in ONE transaction.
//!
//! - [`queue`]: the items, their filters and pages, and the per-reason counts;
//! - [`lifecycle`]: the staff actions' writes (resolve, answer, dead letters, reprocess);
//! - [`history`]: what was sent and decided, per mail and as a searchable list;
//! - [`search`]: the substring search both lists share.

mod history;
mod lifecycle;
mod queue;
mod search;

pub use history::{DecisionRow, HistoryFilter, SentMail};
pub(super) use lifecycle::not_open;
pub use lifecycle::{Closing, ReprocessOutcome, ReprocessRecord};
pub use queue::{Assignee, Cursor, ReviewFilter, ReviewItem, ReviewOrder, ReviewPage};
