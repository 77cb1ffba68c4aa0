//! `trialdesk queue …`: the review queue from the command line. The actions are the web
//! pages' (`review::actions`), audited as `--as NAME` (default `$USER`) via `cli`.

use std::sync::Arc;

use clap::Subcommand;

use crate::app::App;
use crate::review::team::{self, BulkAction};
use crate::review::{Actions, Actor};
use crate::store::{Assignee, Cursor, ReviewFilter, ReviewOrder};

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
            let page = app.store.review_page(&filter).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&json_view(serde_json::to_value(&page.items)?))?
                );
                return Ok(());
            }
            if page.items.is_empty() {
                println!("the review queue is empty");
                return Ok(());
            }
            let now = app.clock.now().as_millisecond();
            println!(
                "{:>6}  {:<22} {:<8} {:<12} {:<32} SUBJECT",
                "ID", "REASON", "AGE", "ASSIGNEE", "SENDER"
            );
            for item in &page.items {
                println!(
                    "{:>6}  {:<22} {:<8} {:<12} {:<32} {}",
                    item.id,
                    item.reason,
                    age(now - item.created_at),
                    truncate(item.assignee.as_deref().unwrap_or("-"), 12),
                    truncate(item.sender.as_deref().unwrap_or("-"), 32),
                    truncate(item.subject.as_deref().unwrap_or(""), 60)
                );
            }
            let counts = app.store.review_counts().await?;
            let total: i64 = counts.iter().map(|(_, n)| n).sum();
            let by_reason: Vec<String> = counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
            println!("{total} open: {}", by_reason.join(", "));
            if page.has_next {
                if let Some(last) = page.items.last() {
                    println!("more: --after {}", last.cursor());
                }
            }
        }
        QueueCommand::Show { id, json } => {
            let detail = crate::review::detail::item_detail(&app.store, id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("review item {id} does not exist"))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&json_view(serde_json::to_value(&detail)?))?
                );
                return Ok(());
            }
            let item = &detail.item;
            println!("item {}  [{}]  {}", item.id, item.state, item.reason);
            for r in &detail.reasons {
                println!("  - {}: {}", r.code, r.description);
            }
            if !item.detail.is_empty() {
                println!("  {}", item.detail);
            }
            if let Some(m) = &detail.message {
                let inb = &m.inbound;
                println!();
                println!("from:     {}", inb.sender.as_deref().unwrap_or("-"));
                println!("subject:  {}", inb.subject);
                println!("received: {}", fmt_ms(inb.received_at));
                println!("decision: {} / {}", inb.kind, inb.action);
                if !m.loan_numbers.is_empty() {
                    println!("loans:    {}", m.loan_numbers.join(" "));
                }
                println!();
                for line in inb.body_text.lines().take(40) {
                    println!("  | {line}");
                }
                for r in &m.replies {
                    println!(
                        "sent #{} {} to {} [{}]",
                        r.id, r.purpose, r.recipients, r.state
                    );
                }
            }
            if let Some(o) = &detail.dead_letter {
                println!(
                    "undelivered mail #{} to {} [{}]: {}",
                    o.id,
                    o.recipients,
                    o.state,
                    o.last_error.as_deref().unwrap_or("")
                );
            }
            if item.state == "resolved" {
                println!(
                    "resolved {} by {}: {}",
                    item.resolved_at.map(fmt_ms).unwrap_or_default(),
                    item.resolved_by.as_deref().unwrap_or("?"),
                    item.note.as_deref().unwrap_or("")
                );
            }
            if let Some(who) = &item.assignee {
                println!("assigned to {who}");
            }
            for a in &detail.audit {
                println!(
                    "{}  {} ({}) {}: {}",
                    fmt_ms(a.at),
                    a.actor,
                    a.via,
                    a.action,
                    a.detail
                );
            }
        }
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
                    check_reason(app, &reason).await?;
                    let ids = team::items_of_reason(&actions, &reason).await?;
                    let results = team::bulk(
                        &actions,
                        &ids,
                        &BulkAction::Resolve(note),
                        &who.actor(app).await?,
                    )
                    .await;
                    report_bulk("resolved", &results)?;
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
                    check_reason(app, &reason).await?;
                    let ids = team::items_of_reason(&actions, &reason).await?;
                    let results = team::bulk(
                        &actions,
                        &ids,
                        &BulkAction::Assign(to),
                        &who.actor(app).await?,
                    )
                    .await;
                    report_bulk("assigned", &results)?;
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
            check_reason(app, &reason).await?;
            let ids = team::items_of_reason(&actions, &reason).await?;
            let results = team::bulk(
                &actions,
                &ids,
                &BulkAction::Reprocess,
                &who.actor(app).await?,
            )
            .await;
            report_bulk("reprocessed", &results)?;
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

/// The `--json` shape of `queue list` and `queue show`: the store's rows, with the lists it
/// keeps as JSON text (`reasons`, `loan_numbers`, `recipients`, `review`) as real arrays and
/// its times (`at`, `…_at`, Unix milliseconds) as RFC 3339 UTC strings.
pub fn json_view(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(json_view).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s)
                            if matches!(
                                k.as_str(),
                                "reasons" | "loan_numbers" | "recipients" | "review"
                            ) =>
                        {
                            match serde_json::from_str::<Value>(&s) {
                                Ok(list @ Value::Array(_)) => list,
                                _ => Value::String(s),
                            }
                        }
                        Value::Number(n) if k == "at" || k.ends_with("_at") => n
                            .as_i64()
                            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                            .map(|t| Value::String(rfc3339(t)))
                            .unwrap_or(Value::Number(n)),
                        other => json_view(other),
                    };
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// `2026-12-04T07:15:00.123Z` (milliseconds only when there are any).
fn rfc3339(t: jiff::Timestamp) -> String {
    if t.subsec_millisecond() == 0 {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
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

fn fmt_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn age(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Cuts to `max` characters (not bytes: subjects are often CJK).
fn truncate(s: &str, max: usize) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut t: String = one_line.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}
