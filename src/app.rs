//! Wiring: builds the parts from the config and runs them together.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::classify::Rules;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, SourceKind, TransportKind};
use crate::inbound::imap::ImapSource;
use crate::inbound::maildir::MaildirSource;
use crate::inbound::MailSource;
use crate::lease::{imap_lease_name, Lease, LeaseSettings};
use crate::outbound::file::FileTransport;
use crate::outbound::smtp::SmtpTransport;
use crate::outbound::{Composer, Sender, Templates, Transport};
use crate::pipeline::{Evaluator, InboundWorker, Pipeline};
use crate::reminders::{ReminderSettings, Scheduler};
use crate::store::Store;

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
            metrics: Arc::new(crate::metrics::Metrics::new()),
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

    /// `run --once`: drain the source, then send what is due, and report.
    pub async fn run_once(&self) -> anyhow::Result<RunSummary> {
        let queued = Arc::new(Notify::new());
        let pipeline = Arc::new(self.pipeline(queued.clone())?);
        let sender = self.sender(queued)?;
        let (source, inbound) = match self.config.mail.source {
            SourceKind::Maildir => {
                let source = self.maildir_source()?;
                let description = crate::inbound::MailSource::describe(&source);
                let mut worker = InboundWorker::new(source, pipeline);
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
                let mut worker = InboundWorker::new(source, pipeline);
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
        let open_reviews = self
            .store
            .review_counts()
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum();
        use std::sync::atomic::Ordering::Relaxed;
        Ok(RunSummary {
            source,
            transport: sender.describe_transport(),
            fetched: inbound.fetched.load(Relaxed),
            replied: inbound.replied.load(Relaxed),
            review: inbound.review.load(Relaxed),
            ignored: inbound.ignored.load(Relaxed),
            duplicates: inbound.duplicates.load(Relaxed),
            failed: inbound.failed.load(Relaxed),
            sent: stats.sent.load(Relaxed),
            retrying: stats.retried.load(Relaxed),
            dead: stats.dead.load(Relaxed),
            open_reviews,
        })
    }

    /// `run`: every worker until SIGINT/SIGTERM, then a graceful stop.
    pub async fn run_forever(&self, cancel: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(version = crate::VERSION, "trialdesk starting");
        let queued = Arc::new(Notify::new());
        let queued_for_web = queued.clone();
        let pipeline = Arc::new(self.pipeline(queued.clone())?);
        let sender = Arc::new(self.sender(queued.clone())?);
        let scheduler = match self.config.reminders.enabled {
            true => Some(self.scheduler(queued)?),
            false => None,
        };
        // Bound first: a port in use is a config error, reported before anything runs (so is
        // a metrics token that cannot be read).
        if self.config.web.enabled && self.config.metrics.enabled {
            self.config.metrics.token(&self.config.base_dir)?;
        }
        let listener = match self.config.web.enabled {
            true => Some(self.web_listener().await?),
            false => None,
        };
        let tracker = TaskTracker::new();
        let started_ms = self.clock.now().as_millisecond();
        let (source, inbound, imap) = match self.config.mail.source {
            SourceKind::Maildir => {
                let source = self.maildir_source()?;
                let description = source.describe();
                tracing::info!(source = %description, "reading mail");
                let worker = InboundWorker::new(source, pipeline);
                let stats = worker.stats();
                tracker.spawn(worker.run(cancel.clone()));
                (description, stats, None)
            }
            SourceKind::Imap => {
                // One instance at a time reads the mailbox: the one holding the lease. The
                // lease is given up only after the reader has stopped.
                let lease = Arc::new(self.imap_lease());
                let source = self.imap_source()?.with_lease(lease.handle());
                let description = source.describe();
                let status = source.status();
                tracing::info!(source = %description, lease = %lease.handle().name(), "reading mail whenever this instance holds the mailbox lease");
                let imap = &self.config.imap;
                let worker = InboundWorker::new(source, pipeline)
                    .with_backoff(imap.reconnect_min, imap.reconnect_max);
                let stats = worker.stats();
                let lease_stop = CancellationToken::new();
                tracker.spawn({
                    let (lease, stop) = (lease.clone(), lease_stop.clone());
                    async move { lease.run(stop).await }
                });
                tracker.spawn({
                    let cancel = cancel.clone();
                    async move {
                        worker.run(cancel).await;
                        lease_stop.cancel();
                    }
                });
                (description, stats, Some(status))
            }
        };
        let health = crate::health::HealthState {
            config: self.config.health.clone(),
            inbound,
            sender: sender.stats(),
            imap,
            started_ms,
            source,
            transport: sender.describe_transport(),
        };
        if let Some(listener) = listener {
            // The review pages and, outside their sign-in guard, /healthz and /metrics.
            let mut router = self.web_router_with(queued_for_web, Some(health.clone()))?;
            if let Some(metrics) = self.metrics_router(Some(health.clone()))? {
                router = router.merge(metrics);
            }
            let router = router.merge(crate::health::router(health));
            tracing::info!(listen = %self.config.web.listen, metrics = self.config.metrics.enabled, "serving the review pages, /healthz and /metrics");
            let cancel = cancel.clone();
            tracker.spawn(async move {
                if let Err(e) = crate::review::web::serve(listener, router, cancel.clone()).await {
                    tracing::error!(error = %e, "web listener stopped; shutting down");
                    cancel.cancel();
                }
            });
        }
        {
            let sender = sender.clone();
            let cancel = cancel.clone();
            tracker.spawn(async move { sender.run(cancel).await });
        }
        if let Some(scheduler) = scheduler {
            let cancel = cancel.clone();
            tracker.spawn(async move { scheduler.run(cancel).await });
        }
        if let Some(retention) = self.retention() {
            let cancel = cancel.clone();
            tracker.spawn(async move { retention.run(cancel).await });
        }
        tracker.close();
        tracker.wait().await;
        self.store.close().await;
        Ok(())
    }
}

impl App {
    /// The review pages' router. Other parts add their routes here with `.merge(…)` (they
    /// stay outside the sign-in guard, e.g. `/healthz`). `queued` wakes this process's sender
    /// when staff queue mail.
    pub fn web_router(&self, queued: Arc<Notify>) -> anyhow::Result<axum::Router> {
        self.web_router_with(queued, None)
    }

    /// [`App::web_router`] for pages served beside the workers (`health`: their state, for
    /// the pages' banners).
    pub fn web_router_with(
        &self,
        queued: Arc<Notify>,
        health: Option<crate::health::HealthState>,
    ) -> anyhow::Result<axum::Router> {
        let actions = Arc::new(crate::review::Actions::from_app(self, queued)?);
        let state = Arc::new(crate::review::web::WebState::new(self, actions)?.with_health(health));
        Ok(crate::review::web::router(state))
    }

    /// `GET /metrics` (None when `[metrics] enabled = false`). `health` is the workers'
    /// state; without it only the counters and the database figures are shown.
    pub fn metrics_router(
        &self,
        health: Option<crate::health::HealthState>,
    ) -> anyhow::Result<Option<axum::Router>> {
        if !self.config.metrics.enabled {
            return Ok(None);
        }
        let token = self.config.metrics.token(&self.config.base_dir)?;
        Ok(Some(crate::metrics::router(crate::metrics::MetricsState {
            metrics: self.metrics.clone(),
            store: self.store.clone(),
            health,
            access: crate::metrics::Access::new(token.as_ref()),
        })))
    }

    /// Binds `web.listen`.
    pub async fn web_listener(&self) -> anyhow::Result<tokio::net::TcpListener> {
        let addr = self.config.web.listen;
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("config key `web.listen`: cannot listen on {addr}"))
    }

    /// `web`: the review pages alone, until `cancel`.
    pub async fn serve_web(
        &self,
        queued: Arc<Notify>,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        let listener = self.web_listener().await?;
        let router = self.web_router(queued)?;
        crate::review::web::serve(listener, router, cancel).await?;
        Ok(())
    }
}

/// What `run --once` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunSummary {
    pub source: String,
    pub transport: String,
    pub fetched: u64,
    pub replied: u64,
    pub review: u64,
    pub ignored: u64,
    pub duplicates: u64,
    pub failed: u64,
    pub sent: u64,
    pub retrying: u64,
    pub dead: u64,
    pub open_reviews: i64,
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "read {} mail(s) from {}", self.fetched, self.source)?;
        writeln!(
            f,
            "  answered {}, to review {}, ignored {}, already handled {}, failed {}",
            self.replied, self.review, self.ignored, self.duplicates, self.failed
        )?;
        writeln!(
            f,
            "sent {} mail(s) via {} ({} to retry later, {} dead-lettered)",
            self.sent, self.transport, self.retrying, self.dead
        )?;
        write!(
            f,
            "review queue: {} open (see `trialdesk queue list`)",
            self.open_reviews
        )
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
