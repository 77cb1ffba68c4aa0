//! The command line: parsing and one function per command. Output for people goes to stdout,
//! logs to stderr, so `--json` output can be piped.

mod check;
mod explain;
mod ops;
mod queue;
mod reminders;
mod report;
mod tokens;
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
        value_name = "FILE",
        display_order = 100,
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
    /// Show what trialdesk would do with one mail, as JSON (changes nothing).
    #[command(
        after_help = "Reads the database to decide as `run` would; writes nothing and sends nothing."
    )]
    Explain {
        /// An RFC 5322 message (.eml).
        file: PathBuf,
    },
    /// Import partners, shipments or trials from CSV, or a database dump.
    #[command(
        after_help = "CSV: all-or-nothing, upsert by id, every problem reported with its line in one pass. Dump: a whole database written by `export`, into an empty database."
    )]
    Import {
        /// What FILE holds: a CSV of partners, shipments or trials, or a dump.
        #[arg(value_enum)]
        kind: ImportWhat,
        /// The CSV file (comma-, semicolon- or tab-separated, UTF-8, header row first) or the
        /// dump written by `trialdesk export`.
        file: PathBuf,
    },
    /// Write every table to FILE (`-`: standard output) for `import dump`.
    #[command(
        after_help = "Moves a database between SQLite and PostgreSQL. Reads one consistent snapshot; safe while running."
    )]
    Export {
        /// The dump file to write, or `-` for standard output.
        file: PathBuf,
    },
    /// The review queue.
    Queue {
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// The helpdesk's figures for a range of days.
    #[command(
        after_help = "Mails per day by outcome, the automation rate, review items' time to first action and to resolution (median, p90), dead letters, per partner; the reports page shows the same. E.g. `trialdesk report --from 2026-11-01 --to 2026-11-30 --csv > november.csv`."
    )]
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
    /// Try the database, the mail source and the transport; say what works.
    #[command(
        after_help = "Uses the configured settings; sends nothing and changes nothing (an SQLite file is opened read-only, no folder is created). Exit status 1 when a check failed."
    )]
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
    /// Bearer tokens for the HTTP API (`/api/v1`, see docs/api.md).
    Tokens {
        #[command(subcommand)]
        command: tokens::TokensCommand,
    },
    /// Print a shell completion script (bash, zsh or fish).
    #[command(
        after_help = "E.g. `trialdesk completions bash > /etc/bash_completion.d/trialdesk`. Reads no configuration."
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the manual page of trialdesk and every command (roff).
    #[command(after_help = "E.g. `trialdesk man | man -l -`. Reads no configuration.")]
    Man,
}

/// Shells `completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the completion script for `shell`, generated from the command definitions.
pub fn write_completions(shell: Shell, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Generated into memory first: clap_complete panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "trialdesk", &mut script);
    out.write_all(&script)
}

/// A closed pipe (`trialdesk man | head`) is the reader's choice, not an error.
fn ignore_broken_pipe(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes one roff manual page: the top-level command, then each subcommand as a section.
pub fn write_man(out: &mut dyn std::io::Write) -> std::io::Result<()> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    fn sub(cmd: &clap::Command, path: &str, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        for s in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let name = format!("{path} {}", s.get_name());
            writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
            let page = clap_mangen::Man::new(s.clone().bin_name(name.clone()));
            page.render_description_section(out)?;
            page.render_synopsis_section(out)?;
            page.render_options_section(out)?;
            sub(s, &name, out)?;
        }
        Ok(())
    }
    sub(&cmd, "trialdesk", out)
}

/// An error as printed by the binary: `error: ` and each cause of the chain once (a cause a
/// wrapper already quotes is not repeated), then a `hint: ` line for the mistakes a new
/// operator makes (no config file, an SQLite file that does not exist yet).
pub fn error_report(e: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    let mut out = format!("error: {message}");
    for hint in hints(e) {
        out.push_str("\nhint: ");
        out.push_str(&hint);
    }
    out
}

fn hints(e: &anyhow::Error) -> Vec<String> {
    let mut out = Vec::new();
    for cause in e.chain() {
        if let Some(crate::config::ConfigError::Read { source, .. }) = cause.downcast_ref() {
            if source.kind() == std::io::ErrorKind::NotFound {
                out.push(
                    "choose the configuration file with --config FILE or the environment \
                     variable TRIALDESK_CONFIG=FILE (default: config/trialdesk.toml, relative to \
                     the current folder); config/trialdesk.example.toml is a commented example \
                     to copy"
                        .into(),
                );
            }
        }
        if let Some(crate::store::StoreError::Connect { url, source }) = cause.downcast_ref() {
            let missing_file = source
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "14");
            if url.starts_with("sqlite:") && missing_file {
                out.push(if url.contains("mode=") {
                    "check that the database file's folder exists and is writable".to_string()
                } else {
                    format!(
                        "SQLite opens an existing file only: add ?mode=rwc to database.url to \
                         create it ({url}?mode=rwc), or check the path"
                    )
                });
            }
        }
    }
    out
}

/// Runs a parsed command. Returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // These need no configuration (a fresh checkout has none).
    match cli.command {
        Command::Completions { shell } => {
            ignore_broken_pipe(write_completions(shell, &mut std::io::stdout().lock()))?;
            return Ok(());
        }
        Command::Man => {
            ignore_broken_pipe(write_man(&mut std::io::stdout().lock()))?;
            return Ok(());
        }
        _ => {}
    }
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
        // Printed above, before the configuration is read.
        Command::Completions { .. } | Command::Man => {}
        Command::Tokens { command } => {
            crate::telemetry::init_quiet(&config.logging);
            let app = App::open(config).await?;
            tokens::run(&app, command).await?;
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
    let separated = match summary.delimiter {
        b',' => String::new(),
        d => format!(
            " (read as {}-separated: the header is)",
            crate::import::delimiter_name(d)
        ),
    };
    println!(
        "imported {} {} from {}{separated}",
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command and argument of every subcommand, with its path.
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for a in cmd.get_arguments() {
            out.push((path.to_string(), a.clone()));
        }
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_argument_and_command_has_a_help_line() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut args = Vec::new();
        walk(&cmd, "trialdesk", &mut args);
        let missing: Vec<String> = args
            .iter()
            .filter(|(_, a)| !matches!(a.get_id().as_str(), "help" | "version"))
            .filter(|(_, a)| a.get_help().is_none())
            .map(|(p, a)| format!("{p}: {}", a.get_id()))
            .collect();
        assert!(missing.is_empty(), "no help line: {missing:#?}");
        fn commands(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    out.push(format!("{path} {}", sub.get_name()));
                }
                commands(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut bare = Vec::new();
        commands(&cmd, "trialdesk", &mut bare);
        assert!(bare.is_empty(), "no about line: {bare:?}");
        // One help style everywhere: a long description or a long argument help would switch
        // `--help` to clap's other layout (details go to `after_help` instead).
        fn long(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
            if cmd.get_long_about().is_some() {
                out.push(path.to_string());
            }
            for a in cmd.get_arguments() {
                if a.get_long_help().is_some() {
                    out.push(format!("{path} {}", a.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                long(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let mut long_help = Vec::new();
        long(&cmd, "trialdesk", &mut long_help);
        assert!(long_help.is_empty(), "long help: {long_help:?}");
    }

    #[test]
    fn an_error_report_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone (os error 2)");
        let e = anyhow::Error::new(crate::config::ConfigError::Read {
            path: "x.toml".into(),
            source: io,
        });
        let report = error_report(&e);
        assert_eq!(report.matches("gone (os error 2)").count(), 1, "{report}");
        assert!(report.starts_with("error: cannot read config file x.toml: gone"));
        assert!(report.contains("\nhint: ") && report.contains("TRIALDESK_CONFIG"));
        // Causes that are not quoted by their wrapper are kept, in order.
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(error_report(&e), "error: outer: middle: inner");
    }
}
