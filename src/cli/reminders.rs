//! `trialdesk reminders …` and `trialdesk trials …`: the reminder plan, a manual run, and the
//! one-time extension of a trial.

use std::sync::Arc;

use clap::Subcommand;
use jiff::civil::Date;
use tokio::sync::Notify;

use crate::app::App;
use crate::domain::parse_iso_date;
use crate::reminders::{self, At};

#[derive(Debug, Subcommand)]
pub enum RemindersCommand {
    /// List the reminders not yet sent that are due on a date or up to 6 days before it
    /// (catch-up), each with its due date (each trial's local date). Changes nothing.
    Plan {
        /// The date, YYYY-MM-DD.
        #[arg(long, value_parser = parse_iso_date)]
        date: Date,
        /// Exactly one JSON array on stdout: {trial_id, kind, audience, recipients, due_on}.
        #[arg(long, display_order = 90)]
        json: bool,
    },
    /// Queue the reminders due now (sent by `trialdesk run`), and record the missed ones.
    Run {
        /// Act as on this date, at or after the send time, in every time zone (catch-up, tests).
        #[arg(long, value_parser = parse_iso_date)]
        date: Option<Date>,
        /// Print the summary as one JSON object.
        #[arg(long, display_order = 90)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrialsCommand {
    /// Extend a trial once by 30 days (refused if already extended or converted).
    Extend {
        /// The trial id.
        id: String,
    },
}

pub async fn run(app: &App, command: RemindersCommand) -> anyhow::Result<()> {
    match command {
        RemindersCommand::Plan { date, json } => {
            let planned = reminders::plan(&app.store, date).await?;
            if json {
                println!("{}", serde_json::to_string(&planned)?);
                return Ok(());
            }
            let window = format!(
                "due on or before {date}, with catch-up from {}",
                reminders::schedule::add_days(date, 1 - reminders::schedule::WINDOW_DAYS)
            );
            if planned.is_empty() {
                println!("no reminders {window}");
                return Ok(());
            }
            println!("{} reminder(s) {window}:", planned.len());
            println!(
                "  {:<10}  {:<12} {:<26} {:<16} recipients",
                "due on", "trial", "kind", "audience"
            );
            for p in &planned {
                println!(
                    "  {}  {:<12} {:<26} {:<16} {}",
                    p.due_on,
                    p.trial_id,
                    p.kind.code(),
                    p.audience.code(),
                    p.recipients.join(", ")
                );
            }
        }
        RemindersCommand::Run { date, json } => {
            let scheduler = app.scheduler(Arc::new(Notify::new()))?;
            let at = match date {
                Some(d) => At::Date(d),
                None => At::Instant(app.clock.now()),
            };
            let report = scheduler.run_until_done(at).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!(
                    "queued {} reminder mail(s); {} missed, {} failed (see `trialdesk queue list`), \
                     {} already recorded",
                    report.queued, report.missed, report.failed, report.skipped
                );
                let by_kind = report.queued_by_kind.nonzero();
                if !by_kind.is_empty() {
                    let list: Vec<String> =
                        by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
                    println!("  {}", list.join(", "));
                }
                if report.queued > 0 {
                    println!("`trialdesk run` delivers them");
                }
            }
        }
    }
    Ok(())
}

pub async fn run_trials(app: &App, command: TrialsCommand) -> anyhow::Result<()> {
    match command {
        TrialsCommand::Extend { id } => {
            let now = app.clock.now().as_millisecond();
            let done = reminders::extend_trial(&app.store, &id, now).await?;
            println!(
                "trial {} extended by {} days: expires on {} (was {})",
                done.trial_id,
                reminders::EXTENSION_DAYS,
                done.new_expires_on,
                done.old_expires_on
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_must_be_plain_iso_dates() {
        assert_eq!(
            parse_iso_date("2028-02-29"),
            Ok(jiff::civil::date(2028, 2, 29))
        );
        for bad in [
            "2027-02-29",
            "2027-2-01",
            "20270201",
            "2027-02-01T00:00",
            "tomorrow",
        ] {
            assert!(parse_iso_date(bad).is_err(), "{bad}");
        }
    }
}
