//! `trialdesk check`: connects to the database, the mail source and the transport with the
//! configured settings and says plainly what works and what does not. Sends no mail, changes
//! nothing (no migration, no folder created), never prints a secret. Exit status 1 when
//! anything failed.

use std::io::Write;

use crate::config::{Config, SourceKind, TransportKind};
use crate::health::ProbeStep;
use crate::store::Store;

/// Runs every check and prints one line per step. Returns how many failed.
pub async fn run(config: &Config, out: &mut impl Write) -> std::io::Result<usize> {
    let mut steps = database(config).await;
    steps.extend(source(config).await);
    steps.extend(transport(config).await);
    let mut failed = 0;
    for s in &steps {
        if !s.ok {
            failed += 1;
        }
        writeln!(
            out,
            "{} {}: {}",
            if s.ok { "✓" } else { "✗" },
            s.what,
            s.detail
        )?;
    }
    if failed == 0 {
        writeln!(out, "all {} checks passed", steps.len())?;
    } else {
        writeln!(out, "{failed} of {} checks failed", steps.len())?;
    }
    Ok(failed)
}

async fn database(config: &Config) -> Vec<ProbeStep> {
    let what = format!("database {}", config.database.redacted_url());
    if let Some((file, creates)) = crate::store::sqlite_file(&config.database.url, &config.base_dir)
    {
        let folder = file.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(folder) = folder.filter(|f| !f.is_dir()) {
            return vec![ProbeStep::fail(
                &what,
                format!(
                    "folder {} does not exist; create it (SQLite creates the file, not its folder)",
                    folder.display()
                ),
            )];
        }
        if !file.exists() {
            return vec![if creates {
                ProbeStep::ok(
                    &what,
                    format!(
                        "{} does not exist yet; `trialdesk migrate` or the first run creates it",
                        file.display()
                    ),
                )
            } else {
                ProbeStep::fail(
                    &what,
                    format!(
                        "{} does not exist, and without ?mode=rwc in the URL nothing creates it",
                        file.display()
                    ),
                )
            }];
        }
    }
    let store = match Store::connect_read_only(&config.database, &config.base_dir).await {
        Ok(s) => s,
        Err(e) => return vec![ProbeStep::fail(&what, e.to_string())],
    };
    let mut steps = Vec::new();
    match store.ping().await {
        Ok(()) => steps.push(ProbeStep::ok(
            &what,
            format!("reachable ({})", store.backend_name()),
        )),
        Err(e) => {
            steps.push(ProbeStep::fail(&what, e.to_string()));
            store.close().await;
            return steps;
        }
    }
    match store.migration_status().await {
        Ok(m) if m.pending.is_empty() => steps.push(ProbeStep::ok(
            "database schema",
            format!("up to date ({} migrations applied)", m.applied),
        )),
        Ok(m) => steps.push(ProbeStep::ok(
            "database schema",
            format!(
                "{} migration(s) to apply ({}); `trialdesk run` and `trialdesk migrate` apply them",
                m.pending.len(),
                m.pending.join(", ")
            ),
        )),
        Err(e) => steps.push(ProbeStep::fail("database schema", e.to_string())),
    }
    if config.mail.source == SourceKind::Imap {
        steps.push(mailbox_lease(config, &store).await);
    }
    store.close().await;
    steps
}

/// Which instance reads the mailbox (several instances on one database take turns).
async fn mailbox_lease(config: &Config, store: &Store) -> ProbeStep {
    let name = crate::lease::imap_lease_name(&config.imap);
    let what = "mailbox lease";
    let secs = |ms: i64| {
        humantime::format_duration(std::time::Duration::from_secs((ms.max(0) / 1000) as u64))
    };
    match store.lease(&name).await {
        Ok(None) => ProbeStep::ok(
            what,
            format!("{name}: free; the first `trialdesk run` takes it"),
        ),
        Ok(Some(r)) if r.expired() => ProbeStep::ok(
            what,
            format!(
                "{name}: free (last held by {}, expired {} ago); the first `trialdesk run` takes it",
                r.holder,
                secs(r.db_now - r.expires_at)
            ),
        ),
        Ok(Some(r)) => ProbeStep::ok(
            what,
            format!(
                "{name}: held by {} for {}, renewed {} ago, expires in {} unless renewed",
                r.holder,
                secs(r.db_now - r.acquired_at),
                secs(r.db_now - r.renewed_at),
                secs(r.expires_at - r.db_now)
            ),
        ),
        // An old schema: `run` or `migrate` creates the table.
        Err(e) if e.to_string().contains("leases") => {
            ProbeStep::ok(what, "not set up yet (a migration is pending)".into())
        }
        Err(e) => ProbeStep::fail(what, e.to_string()),
    }
}

async fn source(config: &Config) -> Vec<ProbeStep> {
    match config.mail.source {
        SourceKind::Imap => crate::inbound::imap::probe(&config.imap, &config.base_dir).await,
        SourceKind::Maildir => {
            let path = config.resolve_path(&config.maildir.path);
            let what = format!("maildir {}", path.display());
            if path.join("new").is_dir() {
                vec![ProbeStep::ok(&what, "present".into())]
            } else if path.exists() {
                vec![ProbeStep::fail(
                    &what,
                    "exists but has no new/ folder".into(),
                )]
            } else {
                vec![ProbeStep::ok(&what, "missing; created at first run".into())]
            }
        }
    }
}

async fn transport(config: &Config) -> Vec<ProbeStep> {
    match config.mail.transport {
        TransportKind::Smtp => {
            crate::outbound::smtp::SmtpTransport::probe(&config.smtp, &config.base_dir).await
        }
        TransportKind::File => {
            let dir = config.resolve_path(&config.outbox.dir);
            let what = format!("outbox folder {}", dir.display());
            if dir.is_dir() {
                return match tempfile_probe(&dir) {
                    Ok(()) => vec![ProbeStep::ok(&what, "writable".into())],
                    Err(e) => vec![ProbeStep::fail(&what, e.to_string())],
                };
            }
            if dir.exists() {
                return vec![ProbeStep::fail(&what, "exists but is not a folder".into())];
            }
            // Missing: created at the first run if its nearest existing ancestor is writable.
            // Nothing is created here.
            let ancestor = dir.ancestors().skip(1).find(|a| a.is_dir());
            match ancestor.map(|a| (a, tempfile_probe(a))) {
                Some((_, Ok(()))) => vec![ProbeStep::ok(
                    &what,
                    "missing; created at the first run".into(),
                )],
                Some((a, Err(e))) => vec![ProbeStep::fail(
                    &what,
                    format!("missing, and {} is not writable: {e}", a.display()),
                )],
                None => vec![ProbeStep::fail(&what, "missing".into())],
            }
        }
    }
}

fn tempfile_probe(dir: &std::path::Path) -> std::io::Result<()> {
    let p = dir.join(format!(".trialdesk-check-{}", std::process::id()));
    std::fs::write(&p, b"")?;
    std::fs::remove_file(&p)
}
