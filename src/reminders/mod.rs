//! Trial-lifecycle reminders, each sent exactly once.
//!
//! Every non-converted trial gets, counted from its current expiry date `E` (a calendar date in
//! the trial's own time zone), four reminders, each to the customer's admins and to the
//! partner's admins:
//!
//! | kind | due on |
//! |---|---|
//! | `expires_in_7_days` | E − 7 |
//! | `expires_today` | E |
//! | `grace_period_ended` | E + 30 |
//! | `calling_numbers_released` | E + 45, only with the `calling` service |
//!
//! - [`schedule`]: the pure rules (due dates, the 7-day catch-up window, the local send time,
//!   DST), table-tested with fixed instants.
//! - [`plan()`]: what is due on a date and not yet recorded (`reminders plan`), read-only.
//! - [`Scheduler`]: queues what is sendable now, records what was missed, and sleeps until the
//!   next send moment (or a data change) — beside the inbound pipeline in `trialdesk run`.
//! - [`extend_trial`]: `trials extend ID`, once per trial.
//!
//! Exactly once: a reminder row keyed by (trial, kind, audience, E) is inserted with
//! `ON CONFLICT DO NOTHING` in the same transaction that queues its mail in the outbox, so ticks,
//! restarts and instances never duplicate; an extension changes E and so plans anew.

mod extend;
mod message;
mod plan;
pub mod schedule;
mod scheduler;

pub use extend::{extend_trial, ExtendError, Extended, EXTENSION_DAYS};
pub use message::{render, ReminderContext, Rendered};
pub use plan::{open_audiences, plan, PlannedReminder};
pub use schedule::{At, Audience, Kind};
pub use scheduler::{ByKind, ReminderSettings, Scheduler, StepReport, LOOKBACK_DAYS, MAX_SLEEP};
