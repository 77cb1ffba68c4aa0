//! Operations: `backup FILE` and `retention run`.

use std::path::Path;

use anyhow::Context;
use clap::Subcommand;

use crate::app::App;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Delete raw mail older than `retention.raw_mail_days` now (decisions and text stay).
    Run,
}

/// `trialdesk backup FILE`: a consistent copy of the SQLite database, taken while the service
/// may be running. Never overwrites; does not migrate the database first.
pub async fn backup(store: &Store, file: &Path) -> anyhow::Result<()> {
    let target = std::path::absolute(file)
        .with_context(|| format!("cannot resolve backup path {}", file.display()))?;
    let size = store.backup_to(&target).await?;
    println!(
        "backup written to {} ({size} bytes, integrity ok)",
        target.display()
    );
    Ok(())
}

pub async fn retention(app: &App, command: RetentionCommand) -> anyhow::Result<()> {
    match command {
        RetentionCommand::Run => {
            let Some(retention) = app.retention() else {
                println!("retention.raw_mail_days is 0: raw mail is kept forever, nothing deleted");
                return Ok(());
            };
            let sweep = retention.sweep().await?;
            let cutoff = jiff::Timestamp::from_millisecond(sweep.cutoff_ms)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| sweep.cutoff_ms.to_string());
            println!(
                "deleted the raw bytes of {} mail(s) received before {cutoff} (decisions and text kept)",
                sweep.cleared
            );
        }
    }
    Ok(())
}
