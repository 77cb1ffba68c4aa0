use serde::Deserialize;

use super::{invalid, ConfigError};

/// `[database]`: where decisions, the outbox and partner data live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH?mode=rwc` (embedded default; a relative PATH is relative to the config
    /// file) or `postgres://user:pass@host:port/db` (several instances sharing the work).
    pub url: String,
    /// Connections in the pool. SQLite serialises writers anyway; PostgreSQL benefits from more.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long to wait for a connection (and, on SQLite, for the write lock).
    #[serde(default = "default_acquire_timeout", with = "humantime_serde")]
    pub acquire_timeout: std::time::Duration,
}

fn default_max_connections() -> u32 {
    5
}

fn default_acquire_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(self.url.starts_with("sqlite:")
            || self.url.starts_with("postgres://")
            || self.url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database.url",
                "must start with sqlite: or postgres:// (e.g. sqlite://data/trialdesk.db?mode=rwc)",
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        Ok(())
    }

    /// The URL with secrets masked, for logs and `check` output.
    pub fn redacted_url(&self) -> String {
        redact_url_password(&self.url)
    }
}

/// Replaces the password in `scheme://user:password@host` with `***`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}://{}:***{}",
            &url[..scheme_end],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            redact_url_password("postgres://td:s3cret@db:5432/td"),
            "postgres://td:***@db:5432/td"
        );
        assert_eq!(
            redact_url_password("postgres://td@db/td"),
            "postgres://td@db/td"
        );
        assert_eq!(redact_url_password("sqlite://x.db"), "sqlite://x.db");
    }
}
