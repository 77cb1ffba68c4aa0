//! The review queue: what trialdesk did not answer by itself, for helpdesk staff.
//!
//! Items are opened by the pipeline (a mail needing a person), by the outbox sender (a dead
//! letter) and by the reminder scheduler (a missed reminder). Staff work through them on the
//! web pages ([`web`]) or the command line (`trialdesk queue …`); both call the same
//! [`actions`], which write their effect and an audit row in one transaction.
//!
//! - [`actions`]: answer (tracking template or free text), reprocess, resolve, retry, discard.
//! - [`team`]: working together: assign, internal notes, and the bulk forms of the actions
//!   (each item audited on its own).
//! - [`detail`]: everything about one item or mail, for the message page and `queue show`.
//! - [`mail_view`]: a received mail made safe to show (sanitised HTML, attachments).
//! - [`report`]: the helpdesk's figures (mails by outcome, automation rate, response times).
//! - [`snippets`]: canned replies, editable files in `<templates.dir>/snippets/`.
//! - [`users`]: staff accounts and password hashing.
//! - [`web`]: the server-rendered pages (axum), sign-in, sessions, CSRF.

pub mod actions;
pub mod detail;
pub mod mail_view;
pub mod report;
pub mod snippets;
pub mod team;
pub mod users;
pub mod web;

pub use actions::{ActionError, Actions, Actor};
