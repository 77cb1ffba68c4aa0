//! `trialdesk queue …`: the review queue from the command line.

use clap::Subcommand;

use crate::app::App;
use crate::store::{ReviewFilter, ReviewOrder};

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List what waits for review (newest first).
    List {
        /// One JSON array on stdout instead of a table.
        #[arg(long)]
        json: bool,
        /// Only this reason (e.g. unknown_sender, other_subject, dead_letter).
        #[arg(long)]
        reason: Option<String>,
        /// Sender, subject or loan number contains this text.
        #[arg(long)]
        search: Option<String>,
        /// Oldest first.
        #[arg(long)]
        oldest: bool,
        /// Also list resolved items.
        #[arg(long)]
        resolved: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
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
        } => {
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
            };
            let items = app.store.review_items(&filter).await?;
            if json {
                println!("{}", serde_json::to_string(&items)?);
                return Ok(());
            }
            if items.is_empty() {
                println!("the review queue is empty");
                return Ok(());
            }
            let now = app.clock.now().as_millisecond();
            println!(
                "{:>6}  {:<22} {:<8} {:<32} SUBJECT",
                "ID", "REASON", "AGE", "SENDER"
            );
            for item in &items {
                println!(
                    "{:>6}  {:<22} {:<8} {:<32} {}",
                    item.id,
                    item.reason,
                    age(now - item.created_at),
                    truncate(item.sender.as_deref().unwrap_or("-"), 32),
                    truncate(item.subject.as_deref().unwrap_or(""), 60)
                );
            }
            let counts = app.store.review_counts().await?;
            let total: i64 = counts.iter().map(|(_, n)| n).sum();
            let by_reason: Vec<String> = counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
            println!("{total} open: {}", by_reason.join(", "));
        }
    }
    Ok(())
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
