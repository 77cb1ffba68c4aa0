//! `trialdesk queue …`: the review queue from the command line. The actions are the web
//! pages' (`review::actions`), audited as `--as NAME` (default `$USER`) via `cli`.
//!
//! This file holds the commands and runs the actions; `view` prints the list and one item,
//! `json` is the `--json` shape both share.

mod json;
mod view;

use std::sync::Arc;

use clap::Subcommand;

use crate::app::App;
use crate::review::team::{self, BulkAction};
use crate::review::{Actions, Actor};
use crate::store::{Assignee, Cursor, ReviewFilter, ReviewOrder};

pub use json::json_view;

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List what waits for review (newest first).
    List {
        /// One JSON array of items on stdout instead of a table (shape: docs/command-line.md).
        #[arg(long, display_order = 90)]
        json: bool,
        /// Only this reason (e.g. unknown_sender, other_subject, dead_letter); an unknown
        /// reason is an error that lists the known ones.
        #[arg(long)]
        reason: Option<String>,
        /// Sender, subject or loan number contains this text.
        #[arg(long)]
        search: Option<String>,
        /// Oldest first.
        #[arg(long)]
        oldest: bool,
        /// List resolved items instead of open ones.
        #[arg(long)]
        resolved: bool,
        /// At most this many items (1–10000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Skip this many items first (prefer --after for paging through a changing queue).
        #[arg(long, default_value_t = 0)]
        offset: i64,
        /// Continue after this cursor (printed at the end of a page).
        #[arg(long)]
        after: Option<Cursor>,
        /// Only items assigned to this user.
        #[arg(long, conflicts_with = "unassigned")]
        assignee: Option<String>,
        /// Only items assigned to nobody.
        #[arg(long)]
        unassigned: bool,
    },
    /// Everything about one item: the mail, why it waits, decisions, replies, activity.
    Show {
        /// The review item's id (the ID column of `queue list`).
        id: i64,
        /// One JSON object on stdout instead of text (shape: docs/command-line.md).
        #[arg(long, display_order = 90)]
        json: bool,
    },
    /// Close an item without answering; the note says why. With --reason: every open item
    /// of that reason (each audited on its own).
    Resolve {
        /// The review item's id.
        #[arg(required_unless_present = "reason", conflicts_with = "reason")]
        id: Option<i64>,
        /// Why it is closed (recorded in the audit log).
        #[arg(long)]
        note: String,
        /// Every open item whose reason is this (e.g. other_subject).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Give an item to a staff member (--to NAME), or to nobody (--nobody). With --reason:
    /// every open item of that reason.
    Assign {
        /// The review item's id.
        #[arg(required_unless_present = "reason", conflicts_with = "reason")]
        id: Option<i64>,
        /// The staff account to give it to.
        #[arg(long, required_unless_present = "nobody", conflicts_with = "nobody")]
        to: Option<String>,
        /// Unassign.
        #[arg(long)]
        nobody: bool,
        /// Every open item whose reason is this.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Add an internal note to an item (kept in its activity, never sent).
    Note {
        /// The review item's id.
        id: i64,
        /// The note (staff only; never sent).
        text: String,
        #[command(flatten)]
        who: Who,
    },
    /// Put a dead-lettered mail back in the outbox (attempts start over).
    Retry {
        /// The review item's id.
        #[arg(required_unless_present = "all_dead_letters")]
        id: Option<i64>,
        /// Every open dead letter (after a relay problem is fixed), each audited.
        #[arg(long, conflicts_with = "id")]
        all_dead_letters: bool,
        #[command(flatten)]
        who: Who,
    },
    /// Give up on a dead-lettered mail.
    Discard {
        /// The review item's id.
        id: i64,
        #[command(flatten)]
        who: Who,
    },
    /// Run the stored mail through the rules again (e.g. after importing shipments). With
    /// --reason: every open item of that reason (each audited on its own).
    Reprocess {
        /// The review item's id.
        #[arg(required_unless_present = "reason", conflicts_with = "reason")]
        id: Option<i64>,
        /// Every open item whose reason is this (e.g. unknown_sender after a partner import).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Answer an item's mail: with the tracking template for --loans, or with --text.
    Answer {
        /// The review item's id.
        id: i64,
        /// Loan numbers for the tracking template (space or comma separated).
        #[arg(long, conflicts_with = "text")]
        loans: Option<String>,
        /// Free text (the signature and the quoted original are added).
        #[arg(long)]
        text: Option<String>,
        #[command(flatten)]
        who: Who,
    },
}

/// Who the audit log names for a CLI action.
#[derive(Debug, clap::Args)]
pub struct Who {
    /// Name recorded in the audit log: a staff account (`trialdesk users list`); without
    /// --as, $USER.
    #[arg(long = "as", value_name = "NAME", display_order = 95)]
    name: Option<String>,
}

impl Who {
    /// The actor to audit. A name given with `--as` must be a staff account: the audit log
    /// names people, not typos.
    async fn actor(&self, app: &App) -> anyhow::Result<Actor> {
        if let Some(given) = &self.name {
            let name = crate::review::users::normalize_name(given)
                .map_err(|e| anyhow::anyhow!("--as {given:?}: {e}"))?;
            let name = name.as_str();
            let user = app.store.user_by_name(name).await?;
            if user.as_ref().is_some_and(|u| u.disabled) {
                anyhow::bail!("--as {given:?}: that staff account is disabled");
            }
            if user.is_none() {
                let known: Vec<String> = app
                    .store
                    .users()
                    .await?
                    .into_iter()
                    .map(|u| u.name)
                    .collect();
                anyhow::bail!(
                    "--as {given:?}: no staff account has that name (known: {}; add one with \
                     `trialdesk users add`)",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
            return Ok(Actor::cli(name));
        }
        let name = std::env::var("USER")
            .ok()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| "cli".into());
        Ok(Actor::cli(name.trim()))
    }
}

/// Reason codes `queue list --reason` accepts: every code trialdesk writes, and any found in
/// the database.
/// Refuses a `--reason` that is no review reason (a typo would otherwise match nothing and
/// look like an empty queue).
async fn check_reason(app: &App, reason: &str) -> anyhow::Result<()> {
    let known = known_reasons(app).await?;
    if !known.iter().any(|k| k == reason) {
        anyhow::bail!(
            "--reason {reason:?} is not a review reason; one of: {}",
            known.join(", ")
        );
    }
    Ok(())
}

async fn known_reasons(app: &App) -> anyhow::Result<Vec<String>> {
    let mut codes: Vec<String> = crate::classify::ReviewReason::ALL
        .iter()
        .map(|r| r.code().to_string())
        .chain(["reminder_failed", "unprocessable", "relay_down"].map(String::from))
        .chain(app.store.review_reasons_used().await?)
        .collect();
    codes.sort();
    codes.dedup();
    Ok(codes)
}

pub async fn run(app: &App, command: QueueCommand) -> anyhow::Result<()> {
    match command {
        QueueCommand::List {
            json,
            reason,
            search,
            oldest,
            resolved,
            limit,
            offset,
            after,
            assignee,
            unassigned,
        } => {
            if let Some(r) = &reason {
                check_reason(app, r).await?;
            }
            let filter = ReviewFilter {
                state: if resolved { "resolved" } else { "open" }.into(),
                reason,
                search,
                order: if oldest {
                    ReviewOrder::OldestFirst
                } else {
                    ReviewOrder::NewestFirst
                },
                limit: limit.clamp(1, 10_000),
                offset: offset.max(0),
                after,
                before: None,
                assignee: match (assignee, unassigned) {
                    (Some(name), _) => Some(Assignee::User(name.trim().to_lowercase())),
                    (None, true) => Some(Assignee::Nobody),
                    (None, false) => None,
                },
                from: None,
                until: None,
            };
            view::list(app, &filter, json).await?;
        }
        QueueCommand::Show { id, json } => view::show(app, id, json).await?,
        QueueCommand::Resolve {
            id,
            note,
            reason,
            who,
        } => {
            let actions = actions(app)?;
            match (id, reason) {
                (Some(id), _) => {
                    actions.resolve(id, &note, &who.actor(app).await?).await?;
                    println!("item {id} resolved");
                }
                (None, Some(reason)) => {
                    let action = BulkAction::Resolve(note);
                    bulk_of_reason(app, &actions, &reason, &action, &who, "resolved").await?;
                }
                (None, None) => anyhow::bail!("give an item id or --reason"),
            }
        }
        QueueCommand::Assign {
            id,
            to,
            nobody: _,
            reason,
            who,
        } => {
            let actions = actions(app)?;
            match (id, reason) {
                (Some(id), _) => {
                    let to =
                        team::assign(&actions, id, to.as_deref(), &who.actor(app).await?).await?;
                    match &to {
                        Some(to) => println!("item {id} assigned to {to}"),
                        None => println!("item {id} unassigned"),
                    }
                }
                (None, Some(reason)) => {
                    let action = BulkAction::Assign(to);
                    bulk_of_reason(app, &actions, &reason, &action, &who, "assigned").await?;
                }
                (None, None) => anyhow::bail!("give an item id or --reason"),
            }
        }
        QueueCommand::Note { id, text, who } => {
            team::note(&actions(app)?, id, &text, &who.actor(app).await?).await?;
            println!("note added to item {id}");
        }
        QueueCommand::Retry {
            id: Some(id), who, ..
        } => {
            let outbox = actions(app)?.retry(id, &who.actor(app).await?).await?;
            println!("item {id}: mail {outbox} queued again (a running `trialdesk run` sends it)");
        }
        QueueCommand::Retry { id: None, who, .. } => {
            // The page's "retry all dead letters" too: one library function, audited per item.
            let actions = actions(app)?;
            let results = team::retry_all_dead_letters(&actions, &who.actor(app).await?).await?;
            let mut queued = 0;
            for r in &results {
                match &r.error {
                    None => {
                        queued += 1;
                        println!("item {}: queued again", r.id);
                    }
                    Some(e) => eprintln!("item {}: {e}", r.id),
                }
            }
            println!("{queued} dead letters queued again (a running `trialdesk run` sends them)");
        }
        QueueCommand::Discard { id, who } => {
            let outbox = actions(app)?.discard(id, &who.actor(app).await?).await?;
            println!("item {id}: mail {outbox} discarded");
        }
        QueueCommand::Reprocess {
            id: None,
            reason: Some(reason),
            who,
        } => {
            let actions = actions(app)?;
            let action = BulkAction::Reprocess;
            bulk_of_reason(app, &actions, &reason, &action, &who, "reprocessed").await?;
        }
        QueueCommand::Reprocess { id: None, .. } => anyhow::bail!("give an item id or --reason"),
        QueueCommand::Reprocess {
            id: Some(id), who, ..
        } => {
            let r = actions(app)?.reprocess(id, &who.actor(app).await?).await?;
            let what = match (r.outcome.queued, r.outcome.already_answered) {
                (Some(o), _) => format!("reply queued as mail {o}"),
                (None, true) => "already answered: no second reply".to_string(),
                (None, false) => "no reply".to_string(),
            };
            println!(
                "item {id}: now {} / {}; {what}; {}",
                r.kind,
                r.action,
                if r.outcome.resolved {
                    "resolved".to_string()
                } else {
                    format!("still open ({})", r.review.join(", "))
                }
            );
        }
        QueueCommand::Answer {
            id,
            loans,
            text,
            who,
        } => {
            let actions = actions(app)?;
            let outbox = match (loans, text) {
                (Some(loans), _) => {
                    actions
                        .answer_template(id, &[loans], &who.actor(app).await?)
                        .await?
                }
                (None, Some(text)) => {
                    actions
                        .answer_text(id, &text, &who.actor(app).await?)
                        .await?
                }
                (None, None) => anyhow::bail!(
                    "say how to answer: --text TEXT (free text) or --loans NUMBERS (the tracking \
                     template)"
                ),
            };
            println!("item {id} answered: mail {outbox} queued");
        }
    }
    Ok(())
}

/// `--reason`: does `action` to every open item of that reason (each audited on its own) and
/// reports how it went.
async fn bulk_of_reason(
    app: &App,
    actions: &Actions,
    reason: &str,
    action: &BulkAction,
    who: &Who,
    done: &str,
) -> anyhow::Result<()> {
    check_reason(app, reason).await?;
    let ids = team::items_of_reason(actions, reason).await?;
    let results = team::bulk(actions, &ids, action, &who.actor(app).await?).await;
    report_bulk(done, &results)
}

/// Prints how a bulk action went; fails (exit status) when some item could not be done.
fn report_bulk(done: &str, results: &[team::BulkResult]) -> anyhow::Result<()> {
    let mut failed = 0;
    for r in results {
        match &r.error {
            None => println!("item {}: {done}", r.id),
            Some(e) => {
                failed += 1;
                eprintln!("item {}: {e}", r.id);
            }
        }
    }
    println!("{} item(s) {done}, {failed} failed", results.len() - failed);
    if failed > 0 {
        anyhow::bail!("{failed} item(s) could not be {done}");
    }
    Ok(())
}

fn actions(app: &App) -> anyhow::Result<Actions> {
    app.review_actions(Arc::new(tokio::sync::Notify::new()))
}
