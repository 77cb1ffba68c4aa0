//! `[metrics]`: the Prometheus endpoint `/metrics` on the web listener.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::secret::{resolve_secret, Secret};
use super::ConfigError;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether `trialdesk run` serves `GET /metrics` (beside `/healthz`, outside the sign-in).
    pub enabled: bool,
    /// Bearer token a scraper must send (`Authorization: Bearer …`). Without one, `/metrics`
    /// answers only clients connected straight from a loopback address (not through a proxy).
    /// Prefer `token_env` or `token_file`.
    pub token: Option<super::secret::Secret>,
    /// Environment variable holding the token.
    pub token_env: Option<String>,
    /// File holding the token (trailing newline ignored).
    pub token_file: Option<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            token: None,
            token_env: None,
            token_file: None,
        }
    }
}

impl MetricsConfig {
    /// The token, read from wherever it is given; an empty token is refused (it would let
    /// anyone in who sends `Bearer `).
    pub fn token(&self, base_dir: &Path) -> Result<Option<Secret>, ConfigError> {
        let token = resolve_secret(
            "metrics.token",
            self.token.as_ref().map(super::secret::Secret::expose),
            self.token_env.as_deref(),
            self.token_file.as_deref(),
            base_dir,
        )?;
        if token.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
            return Err(super::invalid("metrics.token", "must not be empty"));
        }
        Ok(token)
    }
}
