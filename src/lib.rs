//! trialdesk runs a partner helpdesk's mailbox for hardware trials.
//!
//! Partners mail the helpdesk a *tracking request* (subject `试用终端追踪请求` or its
//! en/ja/de alias) with the demo-loan numbers from their shipping notice; trialdesk answers
//! with the status of each loan the sender's company owns. Everything it must not answer by
//! itself waits in a review queue for helpdesk staff.
//!
//! # The flow
//!
//! ```text
//!  inbound/         classify/             store/                 outbound/
//!  MailSource ──▶ inspect ─▶ decide ──▶ ONE transaction: ──▶ Sender ──▶ Transport
//!  (Maildir,      (pure rules:          inbound message,     (claims     (file, SMTP)
//!   IMAP)          subject, numbers,    decision, outbox     with a
//!    ▲             quotes, automated,   row, review item     lease,
//!    │             sender, DMARC)            │               retries,
//!    └──── ack only after the commit ◀───────┘               dead-letters
//!                                                            to review)
//! ```
//!
//! 1. [`inbound`] hands out raw mails ([`inbound::MailSource`]) and acknowledges them only
//!    after their decision is committed, so a crash never loses a mail.
//! 2. [`classify`] turns bytes into an [`classify::Inspection`] (what the mail says) and,
//!    with what the store knows about the sender and the loans, a [`classify::Decision`]
//!    (`tracking_request` / `other` / `automated` × `reply` / `review` / `ignore`). These rules
//!    are pure functions, table-tested without a database.
//! 3. [`pipeline`] runs one mail through the rules, renders and composes the reply
//!    ([`outbound::templates`], [`outbound::compose`]) and records everything keyed by the
//!    mail's Message-ID (or content hash): a mail is answered once, however often it is
//!    delivered or re-read. A round's mails are inspected side by side, the store's facts
//!    about them read once per chunk ([`pipeline::RoundFacts`]), decided in order and recorded
//!    in one transaction (group commit); the source files them in batches during later rounds
//!    (a Maildir server rescans the folder after each change).
//! 4. [`store`] holds every SQL statement, for SQLite (embedded default) and PostgreSQL
//!    (several instances), behind one API.
//! 5. [`outbound::Sender`] delivers the outbox through a [`outbound::Transport`], retrying
//!    transient failures with backoff and dead-lettering permanent ones into the review queue.
//!
//! Reminders: [`reminders`] plans the trial-lifecycle mail in each trial's time zone and queues
//! each reminder exactly once (a unique key inserted in the transaction that fills the outbox);
//! its scheduler sleeps until the next send moment, beside the inbound worker and the sender.
//!
//! Several instances: on PostgreSQL two or more `trialdesk run` share one database. Every
//! instance sends (outbox rows are claimed with `FOR UPDATE SKIP LOCKED` and a lease), schedules
//! reminders (unique key) and serves the pages; one at a time reads the IMAP mailbox, under the
//! [`lease`] in the database. Correctness never depends on that exclusivity (the message-key
//! transaction above); it saves work and keeps two sessions from filing the same mail.
//! [`dump`] moves all data between SQLite and PostgreSQL (`export` / `import dump`).
//!
//! The review queue: [`review`] keeps what trialdesk must not answer by itself (unknown
//! senders, other questions, limits hit, dead letters) and serves the staff's pages and actions
//! (answer with loans or text, resolve, retry, discard, reprocess), shared with the `queue` CLI.
//! [`retention`] clears raw mail past its age; decisions and review history stay.
//!
//! Beside the flow: [`import`] loads partners, shipments and trials from CSV; [`config`] is the
//! one typed configuration tree (a file per section: `[imap]`, `[smtp]` and the login they
//! share are three); [`worker`] is the one loop every background task runs
//! ([`worker::Worker`]: a step, an idle wait, backoff, cancellation between steps); [`app`]
//! wires the parts (it alone builds the review actions and the pages' state); [`cli`] is the
//! command line. `main.rs` only parses arguments and maps errors to exit codes.
//! [`health`] computes `/healthz` (and the lines of `trialdesk check`, [`probe`]) from the
//! workers' state; [`counters`] is what the workers count into (depending on no worker),
//! [`metrics`] renders it with the database's queue figures for Prometheus at `/metrics`;
//! [`telemetry`] sets up the logs; [`tls`] and [`mailauth`] give the IMAP source and the SMTP
//! transport their TLS trust and their login secrets (passwords, XOAUTH2 tokens fetched at
//! each connect). [`offload`] runs CPU-heavy work on untrusted mail (parsing, HTML
//! sanitising) off the async threads; [`private_file`] creates files only their owner reads.
//!
//! # The shape of the code
//!
//! - **Decisions are pure functions, adapters are thin.** Every rule that decides something
//!   takes plain values and returns plain values, with a table test beside it:
//!   [`classify`] (subject, numbers and where they come from — [`classify::message::numbers_from`] —,
//!   quotes, automated mail, sender), the IMAP round ([`inbound::imap::list_window`],
//!   [`inbound::imap::plan_fetch`], [`inbound::imap::Scan`], [`inbound::imap::plan_filing`]), the rate-limit ladder ([`pipeline::ladder`]), the
//!   reminder schedule. Around them, adapters only translate: `inbound::imap::{session, round}`
//!   talk IMAP, `classify::mime` talks mail-parser, `store/` talks SQL, `outbound/` talks SMTP.
//! - **Protocols stay at their edge**: no `sqlx` outside [`store`], no `async_imap` outside
//!   [`inbound`], no `lettre` outside [`outbound`].
//! - **Dependencies point one way.** No top-level module reaches itself through another
//!   (`tests/architecture.rs` fails `cargo test` on a cycle): `app` wires everything and
//!   nothing uses `app`; `review` uses `pipeline`, never the reverse; `health` and `metrics`
//!   read the workers, the workers count into `counters`; `domain` and `clock` use nothing.
//!
//! More in `docs/design.md`.

pub mod access;
pub mod api;
pub mod app;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod counters;
pub mod domain;
pub mod dump;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod import;
pub mod inbound;
pub mod lease;
pub mod mailauth;
pub mod metrics;
pub mod notify;
pub mod offload;
pub mod outbound;
pub mod pipeline;
pub mod private_file;
pub mod probe;
pub mod reminders;
pub mod retention;
pub mod review;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod worker;

/// The git revision this binary was built from (`unknown` outside a git checkout; `-dirty`
/// with uncommitted changes), embedded by `build.rs`.
pub const GIT_REVISION: &str = env!("TRIALDESK_GIT_REV");

/// `0.1.0 (git 1a2b3c4d5e6f)`: shown by `--version`, logged at start, in `/healthz`, the
/// metrics (`trialdesk_build_info`) and the review pages' footer.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("TRIALDESK_GIT_REV"),
    ")"
);
