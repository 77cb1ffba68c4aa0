//! Wiring: builds the parts from the config and runs them together.
//!
//! The parts: this file opens the [`App`] and builds each worker from it; `once` is
//! `run --once` and its [`RunSummary`], `forever` is `run` (every worker until a signal),
//! `web` builds the review pages, the API and `/metrics` over the same parts.

mod forever;
mod once;
mod web;

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Notify;

use crate::classify::Rules;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, TransportKind};
use crate::inbound::imap::ImapSource;
use crate::inbound::maildir::MaildirSource;
use crate::lease::{imap_lease_name, Lease, LeaseSettings};
use crate::outbound::file::FileTransport;
use crate::outbound::smtp::SmtpTransport;
use crate::outbound::{Composer, Sender, Templates, Transport};
use crate::pipeline::{Evaluator, Pipeline};
use crate::reminders::{ReminderSettings, Scheduler};
use crate::store::Store;

pub use once::RunSummary;

/// The shared parts every command builds on.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub rules: Arc<Rules>,
    pub clock: SharedClock,
    /// Poke (`notify_one`) after changing trials in this process: the reminder scheduler
    /// re-plans at once instead of at its next wake-up.
    pub reminders_changed: Arc<Notify>,
    /// This process's counters and histograms, served at `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Loaded at first use and shared, so replies, reminders and staff answers render from
    /// one set (one reload check) and commands that send nothing never read them.
    pub templates_loaded: Arc<std::sync::Mutex<Option<Arc<Templates>>>>,
}

impl App {
    /// Opens the store (applying migrations) and compiles the rules.
    pub async fn open(config: Config) -> anyhow::Result<App> {
        let rules = Rules::from_config(&config)?;
        if let Some(warning) = crate::config::security_warning(&config.security) {
            tracing::warn!("{warning}");
        }
        let templates_loaded: crate::notify::TemplateSlot = Arc::default();
        // Every shipment upsert through this store queues the proactive notices.
        let notices = crate::notify::ShipmentNotices::new(&config, templates_loaded.clone());
        let store = Store::open(&config.database, &config.base_dir)
            .await?
            .with_notifier(Arc::new(notices));
        Ok(App {
            config: Arc::new(config),
            store,
            rules: Arc::new(rules),
            clock: Arc::new(SystemClock),
            reminders_changed: Arc::new(Notify::new()),
            metrics: {
                let metrics = crate::counters::Metrics::new();
                metrics.declare_reminder_kinds(
                    &crate::reminders::Kind::ALL.map(crate::reminders::Kind::code),
                );
                Arc::new(metrics)
            },
            templates_loaded,
        })
    }

    pub fn evaluator(&self) -> Evaluator {
        Evaluator::new(self.store.clone(), self.rules.clone())
    }

    pub fn composer(&self) -> anyhow::Result<Composer> {
        let mail = &self.config.mail;
        Composer::new(&mail.from_name, &mail.from, &mail.message_id_domain())
            .context("config key `mail.from`")
    }

    pub fn templates(&self) -> anyhow::Result<Arc<Templates>> {
        let mut slot = self
            .templates_loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(templates) = slot.as_ref() {
            return Ok(templates.clone());
        }
        let dir = self.config.resolve_path(&self.config.templates.dir);
        let templates = Arc::new(Templates::load(&dir)?);
        *slot = Some(templates.clone());
        Ok(templates)
    }

    pub fn pipeline(&self, queued: Arc<Notify>) -> anyhow::Result<Pipeline> {
        Ok(Pipeline::new(
            &self.config,
            self.store.clone(),
            self.rules.clone(),
            self.templates()?,
            self.composer()?,
            self.clock.clone(),
            queued,
        )
        .with_metrics(self.metrics.clone()))
    }

    pub fn transport(&self) -> anyhow::Result<Arc<dyn Transport>> {
        match self.config.mail.transport {
            TransportKind::File => {
                let dir = self.config.resolve_path(&self.config.outbox.dir);
                let t = FileTransport::new(&dir).with_context(|| {
                    format!("config key `outbox.dir`: cannot create {}", dir.display())
                })?;
                Ok(Arc::new(t))
            }
            TransportKind::Smtp => Ok(Arc::new(SmtpTransport::new(
                &self.config.smtp,
                &self.config.base_dir,
            )?)),
        }
    }

    pub fn sender(&self, queued: Arc<Notify>) -> anyhow::Result<Sender> {
        Ok(Sender::new(
            self.store.clone(),
            self.transport()?,
            self.config.outbox.clone(),
            worker_id(),
            self.clock.clone(),
            queued,
        )
        .with_metrics(self.metrics.clone()))
    }

    /// The reminder scheduler; `queued` wakes the sender when a reminder is queued.
    pub fn scheduler(&self, queued: Arc<Notify>) -> anyhow::Result<Scheduler> {
        Ok(Scheduler::new(
            self.store.clone(),
            self.templates()?,
            self.composer()?,
            self.clock.clone(),
            ReminderSettings::from_config(&self.config)?,
            queued,
            self.reminders_changed.clone(),
        )
        .with_metrics(self.metrics.clone()))
    }

    /// Raw-mail retention; `None` when raw mail is kept forever.
    pub fn retention(&self) -> Option<crate::retention::Retention> {
        crate::retention::Retention::new(
            &self.config.retention,
            self.store.clone(),
            self.clock.clone(),
        )
    }

    fn maildir_source(&self) -> anyhow::Result<MaildirSource> {
        let path = self.config.resolve_path(&self.config.maildir.path);
        MaildirSource::open(
            &path,
            self.config.maildir.poll_interval,
            self.config.mail.max_message_bytes as u64,
        )
        .with_context(|| format!("config key `maildir.path` ({})", path.display()))
    }

    /// The lease deciding which instance reads the configured mailbox.
    pub fn imap_lease(&self) -> Lease {
        Lease::new(
            self.store.clone(),
            imap_lease_name(&self.config.imap),
            LeaseSettings::imap(&self.config.cluster),
        )
    }

    fn imap_source(&self) -> anyhow::Result<ImapSource> {
        ImapSource::new(
            &self.config.imap,
            &self.config.base_dir,
            self.store.clone(),
            self.config.mail.max_message_bytes as u64,
        )
        .context("config section `[imap]`")
    }

    /// The configured drop folder (`[import] watch_dir`), if any; its folders are created.
    pub fn drop_folder(&self) -> anyhow::Result<Option<crate::import::watch::DropFolder>> {
        let Some(dir) = &self.config.import.watch_dir else {
            return Ok(None);
        };
        let dir = self.config.resolve_path(dir);
        for sub in ["", "done", "failed"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| {
                anyhow::anyhow!(
                    "config key `import.watch_dir`: cannot create {}: {e}",
                    dir.join(sub).display()
                )
            })?;
        }
        Ok(Some(crate::import::watch::DropFolder::new(
            self.store.clone(),
            self.rules.loans.clone(),
            dir,
            self.config.import.poll_interval,
            self.clock.clone(),
            self.reminders_changed.clone(),
        )))
    }

    /// The staff actions (answer, resolve, reprocess, retry…) over this app's parts; `queued`
    /// is the sender's wake-up. Built here so `review` need not know `App`.
    pub fn review_actions(&self, queued: Arc<Notify>) -> anyhow::Result<crate::review::Actions> {
        Ok(crate::review::Actions::new(
            &self.config,
            self.store.clone(),
            Arc::new(self.pipeline(queued.clone())?),
            self.rules.clone(),
            self.composer()?,
            self.clock.clone(),
            queued,
        ))
    }
}

/// Identifies this process in outbox leases.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
