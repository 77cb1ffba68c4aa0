//! What staff can do with a review item, shared by the web pages and the CLI.
//!
//! Every action writes its effect, the item's new state and an audit row (who, via what,
//! when, what) in ONE transaction (`store::review`): an answer is queued exactly when its item
//! is closed, and the log never disagrees with the data. Two people acting on the same item
//! at once: the first wins, the second gets [`ActionError::Conflict`].
//!
//! Staff replies are composed like automatic ones — `Re:` subject, `In-Reply-To` and
//! `References` from the stored mail, both body parts — but marked `staff-reply` instead of
//! `Auto-Submitted`, and go through the outbox (`purpose = staff_reply`).

mod answer;
mod lifecycle;

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Notify;

use crate::classify;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::outbound::Composer;
use crate::pipeline::{Pipeline, PipelineError};
use crate::store::{
    Closing, NewAudit, NewOutbox, ReprocessOutcome, ReviewItem, Store, StoreError, Via,
};

/// Who acts: a signed-in user (web) or a named operator (CLI: `--as` or `$USER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub via: Via,
}

impl Actor {
    pub fn web(name: &str) -> Actor {
        Actor {
            name: name.to_string(),
            via: Via::Web,
        }
    }

    pub fn cli(name: &str) -> Actor {
        Actor {
            name: name.to_string(),
            via: Via::Cli,
        }
    }

    /// How this actor's action closes its item: the note kept on it and its audit row.
    fn closing<'a>(&'a self, note: &'a str, audit: &'a NewAudit) -> Closing<'a> {
        Closing {
            by: &self.name,
            note,
            audit,
        }
    }
}

/// Why an action was refused. Web pages map these to status codes, the CLI to messages.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("review item {0} does not exist")]
    NotFound(i64),
    /// The item changed meanwhile (already resolved, the mail is no longer dead).
    #[error("{0}")]
    Conflict(String),
    /// The action does not fit this item (retrying an item that is not a dead letter, …).
    #[error("{0}")]
    NotApplicable(String),
    /// The input is unusable (no loan number, empty text, …).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ActionError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ActionError::Conflict(m),
            other => ActionError::Store(other),
        }
    }
}

impl From<PipelineError> for ActionError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Store(s) => s.into(),
            PipelineError::Failed(m) => ActionError::NotApplicable(m),
        }
    }
}

/// A staff reply, composed and ready to queue (also shown as a preview).
#[derive(Debug, Clone, Serialize)]
pub struct PreparedReply {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// The loan numbers it reports on (template answers).
    pub loan_numbers: Vec<String>,
    #[serde(skip)]
    outbox: NewOutbox,
}

/// What a reprocess found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Reprocessed {
    pub kind: String,
    pub action: String,
    pub review: Vec<String>,
    #[serde(flatten)]
    pub outcome: ReprocessOutcome,
}

/// The longest free-text answer or note accepted.
const MAX_TEXT_CHARS: usize = 50_000;

/// The staff actions. Cheap to share behind an `Arc`.
pub struct Actions {
    store: Store,
    pipeline: Arc<Pipeline>,
    rules: Arc<classify::Rules>,
    composer: Composer,
    max_loan_numbers: usize,
    clock: SharedClock,
    /// Wakes a sender in this process when mail is queued.
    queued: Arc<Notify>,
}

impl Actions {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &Config,
        store: Store,
        pipeline: Arc<Pipeline>,
        rules: Arc<classify::Rules>,
        composer: Composer,
        clock: SharedClock,
        queued: Arc<Notify>,
    ) -> Actions {
        Actions {
            store,
            pipeline,
            rules,
            composer,
            max_loan_numbers: config.classify.max_loan_numbers,
            clock,
            queued,
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now().as_millisecond()
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) async fn item(&self, id: i64) -> Result<ReviewItem, ActionError> {
        self.store
            .review_item(id)
            .await?
            .ok_or(ActionError::NotFound(id))
    }

    fn open_item(item: &ReviewItem) -> Result<(), ActionError> {
        if item.state == "open" {
            Ok(())
        } else {
            Err(ActionError::Conflict(format!(
                "review item {} is already resolved{}",
                item.id,
                item.resolved_by
                    .as_deref()
                    .map(|b| format!(" (by {b})"))
                    .unwrap_or_default()
            )))
        }
    }
}
