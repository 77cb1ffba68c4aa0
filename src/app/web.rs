//! The web side built over the app's parts: the review pages' router and state, the JSON
//! API's state, `/metrics`, and the listener.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::App;

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
