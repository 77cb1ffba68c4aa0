//! `[cluster]`: several instances on one database (PostgreSQL).

use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};

/// How instances share the work. Sending, reminders and the review pages need nothing here
/// (rows are claimed, reminders keyed); only the IMAP session is held by one instance at a
/// time, under a lease in the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// How long the instance reading the mailbox holds it without renewing. An instance that
    /// dies is replaced after at most this (at once by another instance on the same machine,
    /// which can see that its process is gone); one that cannot renew stops reading
    /// `imap_lease_renew` before its lease ends.
    #[serde(with = "humantime_serde")]
    pub imap_lease: Duration,
    /// How often the holder renews its lease and the other instances look for a free one.
    /// At most a third of `imap_lease`, so a renewal can fail twice without losing it.
    #[serde(with = "humantime_serde")]
    pub imap_lease_renew: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            imap_lease: Duration::from_secs(10),
            imap_lease_renew: Duration::from_secs(2),
        }
    }
}

impl ClusterConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.imap_lease_renew < Duration::from_millis(100) {
            return Err(invalid(
                "cluster.imap_lease_renew",
                "must be at least 100ms",
            ));
        }
        if self.imap_lease < self.imap_lease_renew * 3 {
            return Err(invalid(
                "cluster.imap_lease",
                format!(
                    "must be at least three times cluster.imap_lease_renew ({})",
                    humantime::format_duration(self.imap_lease_renew)
                ),
            ));
        }
        Ok(())
    }
}
