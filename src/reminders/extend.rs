//! `trials extend ID`: a trial can be extended once, by 30 days.

use jiff::civil::Date;

use super::schedule::add_days;
use crate::store::{Store, StoreError};

/// How far one extension moves the expiry date.
pub const EXTENSION_DAYS: i32 = 30;

/// A successful extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extended {
    pub trial_id: String,
    pub old_expires_on: Date,
    pub new_expires_on: Date,
}

/// Why a trial was not extended.
#[derive(Debug, thiserror::Error)]
pub enum ExtendError {
    #[error("no trial {0:?}")]
    Unknown(String),
    #[error("trial {trial_id} was already extended (it expires on {expires_on}); a trial can be extended only once")]
    AlreadyExtended { trial_id: String, expires_on: Date },
    #[error("trial {0} was converted; there is nothing to extend")]
    Converted(String),
    #[error("trial {0} changed while it was being extended; try again")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adds [`EXTENSION_DAYS`] to the trial's expiry date and marks it extended. Reminders already
/// sent for the old date stay sent; the new date gets its own schedule.
pub async fn extend_trial(
    store: &Store,
    trial_id: &str,
    now_ms: i64,
) -> Result<Extended, ExtendError> {
    let trial = store
        .trial(trial_id)
        .await?
        .ok_or_else(|| ExtendError::Unknown(trial_id.to_string()))?;
    if trial.converted {
        return Err(ExtendError::Converted(trial.trial_id));
    }
    if trial.extended {
        return Err(ExtendError::AlreadyExtended {
            trial_id: trial.trial_id,
            expires_on: trial.expires_on,
        });
    }
    let new = add_days(trial.expires_on, EXTENSION_DAYS);
    if !store
        .extend_trial(&trial.trial_id, trial.expires_on, new, now_ms)
        .await?
    {
        // Someone else extended, converted or re-imported it in between.
        return Err(match store.trial(trial_id).await? {
            Some(t) if t.extended => ExtendError::AlreadyExtended {
                trial_id: t.trial_id,
                expires_on: t.expires_on,
            },
            Some(t) if t.converted => ExtendError::Converted(t.trial_id),
            Some(t) => ExtendError::Conflict(t.trial_id),
            None => ExtendError::Unknown(trial_id.to_string()),
        });
    }
    tracing::info!(trial_id, old = %trial.expires_on, new = %new, "trial extended");
    Ok(Extended {
        trial_id: trial.trial_id,
        old_expires_on: trial.expires_on,
        new_expires_on: new,
    })
}
