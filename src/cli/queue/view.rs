//! What `queue list` and `queue show` print: the table of items (with the per-reason counts
//! and the next page's cursor) and one item in full, as text or as [`json_view`] JSON.

use super::json_view;
use crate::app::App;
use crate::store::ReviewFilter;

/// Prints one page of the queue.
pub(super) async fn list(app: &App, filter: &ReviewFilter, json: bool) -> anyhow::Result<()> {
    let page = app.store.review_page(filter).await?;
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
    Ok(())
}

/// Prints everything about one item.
pub(super) async fn show(app: &App, id: i64, json: bool) -> anyhow::Result<()> {
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
    Ok(())
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
