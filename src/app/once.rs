//! `run --once`: drain the mail source and the outbox once, then report what happened as a
//! [`RunSummary`] (which the CLI prints).

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::App;
use crate::config::SourceKind;
use crate::inbound::MailSource;
use crate::pipeline::InboundWorker;

impl App {
    /// `run --once`: drain the source, then send what is due, and report.
    pub async fn run_once(&self) -> anyhow::Result<RunSummary> {
        let started_ms = self.clock.now().as_millisecond();
        // Fresh data first: files waiting in the drop folder are imported before mail is read.
        if let Some(drop_folder) = self.drop_folder()? {
            drop_folder.drain().await?;
        }
        let queued = Arc::new(Notify::new());
        let pipeline = Arc::new(self.pipeline(queued.clone())?);
        let sender = self.sender(queued)?;
        let (source, inbound) = match self.config.mail.source {
            SourceKind::Maildir => {
                let source = self.maildir_source()?;
                let description = crate::inbound::MailSource::describe(&source);
                let mut worker = InboundWorker::new(source, pipeline)
                    .with_max_failures(self.config.mail.max_processing_failures);
                worker.drain().await?;
                (description, worker.stats())
            }
            SourceKind::Imap => {
                // Read only with the mailbox lease, renewed meanwhile; a `run` elsewhere that
                // holds it keeps reading, and this run only sends.
                let lease = Arc::new(self.imap_lease());
                lease.round().await;
                let handle = lease.handle();
                let source = self.imap_source()?.with_lease(handle.clone());
                let mut description = source.describe();
                let mut worker = InboundWorker::new(source, pipeline)
                    .with_max_failures(self.config.mail.max_processing_failures);
                if handle.is_held() {
                    let stop = CancellationToken::new();
                    let renew = tokio::spawn({
                        let (lease, stop) = (lease.clone(), stop.clone());
                        async move { lease.run(stop).await }
                    });
                    let drained = worker.drain().await;
                    worker.source_mut().close().await;
                    stop.cancel();
                    let _ = renew.await;
                    drained?;
                } else {
                    description = format!(
                        "{description} — not read: {} holds the mailbox lease",
                        handle.holder().unwrap_or_else(|| "another instance".into())
                    );
                }
                (description, worker.stats())
            }
        };
        sender.drain().await?;
        let stats = sender.stats();
        let open_by_reason = self.store.review_counts().await?;
        let open_reviews = open_by_reason.iter().map(|(_, n)| n).sum();
        let mut sent_by_kind = self.store.sent_by_kind(started_ms).await?;
        // Replies first, reminders in the order they fall due, anything else after.
        let rank = |what: &str| {
            let reminder = crate::reminders::Kind::ALL
                .iter()
                .position(|k| what == format!("reminder {k}"));
            match (what, reminder) {
                ("reply", _) => 0,
                (_, Some(i)) => 1 + i,
                _ => 10,
            }
        };
        sent_by_kind.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
        use std::sync::atomic::Ordering::Relaxed;
        let flagged = inbound.replied_flagged.load(Relaxed);
        Ok(RunSummary {
            source,
            transport: sender.describe_transport(),
            fetched: inbound.fetched.load(Relaxed),
            replied: inbound.replied.load(Relaxed),
            replied_flagged: flagged,
            review: inbound.review.load(Relaxed),
            ignored: inbound.ignored.load(Relaxed),
            duplicates: inbound.duplicates.load(Relaxed),
            failed: inbound.failed.load(Relaxed),
            sent: stats.sent.load(Relaxed),
            retrying: stats.retried.load(Relaxed),
            dead: stats.dead.load(Relaxed),
            sent_by_kind,
            open_reviews,
            open_by_reason,
        })
    }
}

/// What `run --once` did. Every mail read is counted once: `fetched` is the sum of
/// `replied`, `review`, `ignored`, `duplicates` and `failed`; `replied_flagged` is the part
/// of `replied` that opened a review item as well.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub source: String,
    pub transport: String,
    pub fetched: u64,
    /// Answered (flagged for review or not).
    pub replied: u64,
    /// Of `replied`: answered and given a review item as well (e.g. `loan_of_other_partner`).
    pub replied_flagged: u64,
    /// Not answered: set aside for staff.
    pub review: u64,
    pub ignored: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub sent: u64,
    pub retrying: u64,
    pub dead: u64,
    /// What was delivered during this run, by outbox purpose (`reply`, …) and reminder kind
    /// (`reminder expires_today`, …).
    pub sent_by_kind: Vec<(String, i64)>,
    pub open_reviews: i64,
    /// The open review items (of every run so far) by reason.
    pub open_by_reason: Vec<(String, i64)>,
}

/// `a 2, b 1` (or `none`).
fn counts_line(counts: &[(String, i64)]) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(what, n)| format!("{what} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "read {} mail(s) from {}", self.fetched, self.source)?;
        let flagged = match self.replied_flagged {
            0 => String::new(),
            n => format!(" ({n} of them also flagged for review)"),
        };
        writeln!(
            f,
            "  answered {}{flagged}, set aside for review {}, ignored {}, already handled {}, \
             failed {}",
            self.replied, self.review, self.ignored, self.duplicates, self.failed
        )?;
        writeln!(
            f,
            "sent {} mail(s) via {} ({} to retry later, {} dead-lettered)",
            self.sent, self.transport, self.retrying, self.dead
        )?;
        if self.sent > 0 {
            writeln!(f, "  {}", counts_line(&self.sent_by_kind))?;
        }
        write!(
            f,
            "review queue: {} open (see `trialdesk queue list`)",
            self.open_reviews
        )?;
        if self.open_reviews > 0 {
            write!(f, "\n  {}", counts_line(&self.open_by_reason))?;
        }
        Ok(())
    }
}
