//! `[health]`: when `/healthz` reports trialdesk unhealthy.

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// Unhealthy when no fetch from the mail source has succeeded for this long (failing, or
    /// silently stuck). Must be longer than the source's poll / safety-net interval.
    #[serde(with = "humantime_serde")]
    pub max_fetch_silence: Duration,
    /// Unhealthy when sends have been failing, without one success, for this long.
    #[serde(with = "humantime_serde")]
    pub max_send_failure: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            max_fetch_silence: Duration::from_secs(600),
            max_send_failure: Duration::from_secs(1800),
        }
    }
}

impl HealthConfig {
    /// `fetch_interval`: the longest normal gap between two fetches of the configured source.
    pub(super) fn validate(&self, fetch_interval: Duration) -> Result<(), ConfigError> {
        if self.max_fetch_silence <= fetch_interval {
            return Err(invalid(
                "health.max_fetch_silence",
                format!(
                    "must be longer than the source's fetch interval ({}), or health flaps",
                    humantime::format_duration(fetch_interval)
                ),
            ));
        }
        if self.max_send_failure.is_zero() {
            return Err(invalid("health.max_send_failure", "must be positive"));
        }
        Ok(())
    }
}
