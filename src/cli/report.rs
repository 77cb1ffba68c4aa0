//! `trialdesk report --from D --to D [--json]`: the helpdesk's figures for a range of days
//! (in `[web] time_zone`), as the reports page shows them.

use crate::app::App;
use crate::review::report::{self, human, Outcomes};

pub async fn run(app: &App, from: &str, to: &str, json: bool, csv: bool) -> anyhow::Result<()> {
    let from = crate::domain::parse_iso_date(from).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    let to = crate::domain::parse_iso_date(to).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let r = report::load(&app.store, from, to, &app.config.web.time_zone).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    if csv {
        print!("{}", report::to_csv(&r));
        return Ok(());
    }
    let rate = |v: Option<f64>| v.map(|v| format!("{v:.1}%")).unwrap_or_else(|| "—".into());
    println!("{} .. {} ({})", r.from, r.to, r.time_zone);
    // One line of the day table: a label, the counts and the rate.
    let line = |label: &str, o: &Outcomes, automated: Option<f64>| {
        println!(
            "{:<12} {:>6} {:>10} {:>9} {:>8} {:>10}",
            label,
            o.total,
            o.answered_automatically,
            o.reviewed,
            o.ignored,
            rate(automated)
        );
    };
    println!(
        "{:<12} {:>6} {:>10} {:>9} {:>8} {:>10}",
        "DAY", "MAILS", "AUTOMATIC", "REVIEWED", "IGNORED", "AUTOMATED"
    );
    for d in &r.days {
        line(&d.date, &d.outcomes, d.outcomes.automation_rate());
    }
    line("total", &r.totals, r.automation_rate);
    println!(
        "time to first action: median {}, p90 {} ({} items)",
        human(r.first_action.median_ms),
        human(r.first_action.p90_ms),
        r.first_action.count
    );
    println!(
        "time to resolution:   median {}, p90 {} ({} items)",
        human(r.resolution.median_ms),
        human(r.resolution.p90_ms),
        r.resolution.count
    );
    println!("dead letters: {}", r.dead_letters);
    for p in &r.partners {
        println!(
            "partner {:<8} {:<32} {:>5} mails, {} automated",
            p.partner_id.as_deref().unwrap_or("-"),
            p.name.as_deref().unwrap_or("(no partner)"),
            p.outcomes.total,
            rate(p.automation_rate)
        );
    }
    Ok(())
}
