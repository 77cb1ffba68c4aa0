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

    /// `run`: every worker until SIGINT/SIGTERM, then a graceful stop.
    pub async fn run_forever(&self, cancel: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(version = crate::VERSION, "trialdesk starting");
        match self.store.durability().await.map(|d| d.warning()) {
            Ok(Some(warning)) => tracing::warn!("{warning}"),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the database's commit durability"),
        }
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
        let workers = Arc::new(crate::health::Workers::default());
        let started_ms = self.clock.now().as_millisecond();
        let (source, inbound, imap) = match self.config.mail.source {
            SourceKind::Maildir => {
                let source = self.maildir_source()?;
                let description = source.describe();
                tracing::info!(source = %description, "reading mail");
                let worker = InboundWorker::new(source, pipeline)
                    .with_max_failures(self.config.mail.max_processing_failures);
                let stats = worker.stats();
                tracker.spawn(workers.watch("inbound", cancel.clone(), worker.run(cancel.clone())));
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
                    .with_max_failures(self.config.mail.max_processing_failures)
                    .with_backoff(imap.reconnect_min, imap.reconnect_max);
                let stats = worker.stats();
                let lease_stop = CancellationToken::new();
                tracker.spawn({
                    let (lease, stop) = (lease.clone(), lease_stop.clone());
                    async move { lease.run(stop).await }
                });
                let reader = workers.watch("inbound", cancel.clone(), worker.run(cancel.clone()));
                tracker.spawn(async move {
                    reader.await;
                    lease_stop.cancel();
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
            gate: Some(crate::health::DetailGate {
                access: crate::access::Access::new(
                    self.config.metrics.token(&self.config.base_dir)?.as_ref(),
                ),
                sessions: Some(Arc::new(crate::review::web::auth::SessionCheck {
                    store: self.store.clone(),
                    secure_cookies: self.config.web.secure_cookies,
                    idle_timeout_ms: self.config.web.session_idle_timeout.as_millis() as i64,
                    clock: self.clock.clone(),
                })),
            }),
            workers: workers.clone(),
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
            tracker.spawn(workers.watch("sender", cancel.clone(), async move {
                sender.run(cancel).await
            }));
        }
        if let Some(scheduler) = scheduler {
            let cancel = cancel.clone();
            tracker.spawn(workers.watch("reminders", cancel.clone(), async move {
                scheduler.run(cancel).await
            }));
        }
        if let Some(retention) = self.retention() {
            let cancel = cancel.clone();
            tracker.spawn(workers.watch("retention", cancel.clone(), async move {
                retention.run(cancel).await
            }));
        }
        if let Some(drop_folder) = self.drop_folder()? {
            let cancel = cancel.clone();
            tracker.spawn(workers.watch("drop_folder", cancel.clone(), async move {
                drop_folder.run(cancel).await
            }));
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
        let actions = Arc::new(self.review_actions(queued.clone())?);
        let state = Arc::new(self.web_state(actions)?.with_health(health));
        let router = crate::review::web::router(state);
        Ok(match self.config.api.enabled {
            true => router.merge(crate::api::router(Arc::new(self.api_state(queued)))),
            false => router,
        })
    }

    /// What the API handlers share; `queued` wakes this process's sender.
    pub fn api_state(&self, queued: Arc<Notify>) -> crate::api::ApiState {
        let config = &self.config;
        crate::api::ApiState {
            store: self.store.clone(),
            loans: self.rules.loans.clone(),
            clock: self.clock.clone(),
            max_body_bytes: config.api.max_body_bytes,
            labels_dir: config
                .rma
                .labels_dir
                .as_ref()
                .map(|d| config.resolve_path(d)),
            max_label_bytes: config.rma.max_label_bytes,
            data_changed: self.reminders_changed.clone(),
            queued,
        }
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

    /// What the review pages' handlers share.
    pub fn web_state(
        &self,
        actions: Arc<crate::review::Actions>,
    ) -> anyhow::Result<crate::review::web::WebState> {
        self.config.web.tz()?;
        Ok(crate::review::web::WebState {
            store: self.store.clone(),
            actions,
            config: self.config.web.clone(),
            clock: self.clock.clone(),
            rules: self.rules.clone(),
            data_changed: self.reminders_changed.clone(),
            carriers: self
                .config
                .carriers
                .iter()
                .map(|(k, v)| (k.trim().to_lowercase(), v.clone()))
                .collect(),
            health: None,
            snippets_dir: self
                .config
                .resolve_path(&self.config.templates.dir)
                .join("snippets"),
        })
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
            access: crate::access::Access::new(token.as_ref()),
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
