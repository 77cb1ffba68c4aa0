//! The command line: parsing and one function per command. Output for people goes to stdout,
//! logs to stderr, so `--json` output can be piped.

mod check;
mod explain;
mod ops;
mod queue;
mod reminders;
mod report;
mod users;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::Config;
use crate::import::ImportKind;

#[derive(Debug, Parser)]
#[command(
    name = "trialdesk",
    version = crate::VERSION,
    about = "Answers partner tracking requests for hardware trials and sends trial reminders"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        default_value = "config/trialdesk.toml",
        env = "TRIALDESK_CONFIG"
    )]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read new mail, decide, answer, and send queued mail.
    Run {
        /// Handle what is there now, send what is due, print a summary and exit.
        #[arg(long)]
        once: bool,
    },
    /// Show what trialdesk would do with one mail, as JSON (reads the database, changes nothing).
    Explain {
        /// An RFC 5322 message (.eml).
        file: PathBuf,
    },
    /// Import partners, shipments or trials from CSV (all-or-nothing, upsert by id), or a
    /// whole database from a dump written by `export` (into an empty database).
    Import {
        #[arg(value_enum)]
        kind: ImportWhat,
        file: PathBuf,
    },
    /// Write every table to FILE (`-`: standard output), to move to another database (SQLite
    /// ⇄ PostgreSQL) with `import dump`. Reads one consistent snapshot; safe while running.
    Export { file: PathBuf },
    /// The review queue.
    Queue {
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// The helpdesk's figures for a range of days: mails per day by outcome, automation
    /// rate, time to first action and to resolution, dead letters, per partner.
    Report {
        /// First day (YYYY-MM-DD, in `[web] time_zone`).
        #[arg(long)]
        from: String,
        /// Last day, included.
        #[arg(long)]
        to: String,
        /// The whole report as JSON.
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Days and partners as CSV (what the reports page downloads).
        #[arg(long)]
        csv: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Connect to the database, the mail source and the transport with the configured
    /// settings and say what works (sends nothing, changes nothing).
    Check,
    /// Trial-lifecycle reminders: the plan for a date, or queue what is due.
    Reminders {
        #[command(subcommand)]
        command: reminders::RemindersCommand,
    },
    /// Trials: extend one once by 30 days.
    Trials {
        #[command(subcommand)]
        command: reminders::TrialsCommand,
    },
    /// Copy the SQLite database to FILE while the service runs (never overwrites).
    Backup {
        /// The new backup file; must not exist.
        file: PathBuf,
    },
    /// Raw-mail retention (`[retention] raw_mail_days`).
    Retention {
        #[command(subcommand)]
        command: ops::RetentionCommand,
    },
    /// Serve the review pages only (no mail is fetched or sent), until SIGINT/SIGTERM.
    Web,
    /// Staff accounts for the review pages.
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
}

/// Runs a parsed command. Returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(&cli.config)?;
    match cli.command {
        Command::Run { once } => {
            // `--once` prints a summary; per-mail logs only when RUST_LOG asks for them.
            if once {
                crate::telemetry::init_quiet(&config.logging);
            } else {
                crate::telemetry::init(&config.logging);
            }
            let app = App::open(config).await?;
            if once {
                let summary = app.run_once().await?;
                println!("{summary}");
            } else {
                let cancel = tokio_util::sync::CancellationToken::new();
                let on_signal = cancel.clone();
                tokio::spawn(async move {
                    crate::app::shutdown_signal().await;
                    tracing::info!("shutting down: finishing the work in hand");
                    on_signal.cancel();
                });
                app.run_forever(cancel).await?;
            }
        }
        Command::Explain { file } => {
            crate::telemetry::init_quiet(&config.logging);
            let app = App::open(config).await?;
            explain::run(&app, &file).await?;
        }
        Command::Import { kind, file } => {
            crate::telemetry::init_quiet(&config.logging);
            match kind.csv() {
                Some(kind) => {
                    let app = App::open(config).await?;
                    import(&app, kind, &file).await?;
                }
                None => import_dump(&config, &file).await?,
            }
        }
        Command::Export { file } => {
            crate::telemetry::init_quiet(&config.logging);
            let store = crate::store::Store::connect(&config.database, &config.base_dir).await?;
            let result = crate::dump::export(&store, &file).await;
            store.close().await;
            let summary = result?;
            if file != std::path::Path::new("-") {
                println!(
                    "exported {} rows in {} tables from {} to {}",
                    summary.rows(),
                    summary.tables.len(),
                    config.database.redacted_url(),
                    file.display()
                );
            }
        }
        Command::Report {
            from,
            to,
            json,
            csv,
        } => {
            crate::telemetry::init_quiet(&config.logging);
            let app = App::open(config).await?;
            report::run(&app, &from, &to, json, csv).await?;
        }
        Command::Queue { command } => {
            crate::telemetry::init_quiet(&config.logging);
            let app = App::open(config).await?;
            queue::run(&app, command).await?;
        }
        Command::Check => {
            crate::telemetry::init_quiet(&config.logging);
            let failed = check::run(&config, &mut std::io::stdout().lock()).await?;
            if failed > 0 {
                anyhow::bail!("{failed} check(s) failed");
            }
        }
        Command::Reminders { command } => {
            crate::telemetry::init_quiet(&config.logging);
            let app = App::open(config).await?;
            reminders::run(&app, command).await?;
        }
        Command::Trials { command } => {
            crate::telemetry::init_quiet(&config.logging);
            let app = App::open(config).await?;
            reminders::run_trials(&app, command).await?;
        }
        Command::Backup { file } => {
            crate::telemetry::init_quiet(&config.logging);
            let store = crate::store::Store::connect(&config.database, &config.base_dir).await?;
            ops::backup(&store, &file).await?;
            store.close().await;
        }
        Command::Retention { command } => {
            crate::telemetry::init_quiet(&config.logging);
            let app = App::open(config).await?;
            ops::retention(&app, command).await?;
        }
        Command::Web => {
            crate::telemetry::init(&config.logging);
            let app = App::open(config).await?;
            let cancel = tokio_util::sync::CancellationToken::new();
            let on_signal = cancel.clone();
            tokio::spawn(async move {
                crate::app::shutdown_signal().await;
                on_signal.cancel();
            });
            app.serve_web(std::sync::Arc::new(tokio::sync::Notify::new()), cancel)
                .await?;
            app.store.close().await;
        }
        Command::Users { command } => {
            crate::telemetry::init_quiet(&config.logging);
            let app = App::open(config).await?;
            users::run(&app, command).await?;
        }
        Command::Migrate => {
            crate::telemetry::init(&config.logging);
            let store = crate::store::Store::connect(&config.database, &config.base_dir).await?;
            store.migrate().await?;
            println!("database {} is up to date", config.database.redacted_url());
        }
    }
    Ok(())
}

/// `import dump FILE`: a whole database, into an empty one (migrated first).
async fn import_dump(config: &Config, file: &std::path::Path) -> anyhow::Result<()> {
    let store = crate::store::Store::open(&config.database, &config.base_dir).await?;
    let result = crate::dump::import(&store, file).await;
    store.close().await;
    let summary =
        result.with_context(|| format!("nothing was imported from {}", file.display()))?;
    println!(
        "imported {} rows in {} tables from {} into {}",
        summary.rows(),
        summary.tables.len(),
        file.display(),
        config.database.redacted_url()
    );
    Ok(())
}

/// What `import` reads: a CSV of one kind, or a whole-database dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportWhat {
    Partners,
    Shipments,
    Trials,
    /// A file written by `trialdesk export`.
    Dump,
}

impl ImportWhat {
    fn csv(self) -> Option<ImportKind> {
        match self {
            ImportWhat::Partners => Some(ImportKind::Partners),
            ImportWhat::Shipments => Some(ImportKind::Shipments),
            ImportWhat::Trials => Some(ImportKind::Trials),
            ImportWhat::Dump => None,
        }
    }
}

async fn import(app: &App, kind: ImportKind, file: &std::path::Path) -> anyhow::Result<()> {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("reading {}", file.display()));
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let now = app.clock.now().as_millisecond();
    let result =
        crate::import::import_file(&app.store, kind, file, &app.rules.loans, &mut progress, now)
            .await;
    bar.finish_and_clear();
    let summary = result?;
    println!(
        "imported {} {} from {}",
        summary.rows,
        kind.noun(),
        file.display()
    );
    if summary.notices > 0 {
        println!(
            "queued {} shipment notice(s) to partners that opted in (sent by `trialdesk run`)",
            summary.notices
        );
    }
    Ok(())
}
