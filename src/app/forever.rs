//! `run`: every worker (mail reader, sender, reminders, retention, drop folder) and the web
//! listener, spawned together and watched until cancelled, then stopped gracefully.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::App;
use crate::config::SourceKind;
use crate::inbound::MailSource;
use crate::pipeline::InboundWorker;

impl App {
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
