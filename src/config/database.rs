use serde::Deserialize;

use super::{invalid, ConfigError};

/// `[database]`: where decisions, the outbox and partner data live. `Debug` shows the URL
/// with its password masked.
#[derive(Clone, Deserialize)]
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

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.redacted_url())
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
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

/// Replaces the password in `scheme://user:password@host` (and a `password=` query
/// parameter) with `***`. Errs on the side of hiding: the user information ends at the *last*
/// `@`, since an unescaped `@` or `/` inside a password is a common mistake.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    let mut out = match rest.rfind('@') {
        Some(at) => {
            let (userinfo, host) = rest.split_at(at);
            match userinfo.find(':') {
                Some(colon) => format!("{head}{}:***{host}", &userinfo[..colon]),
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    };
    // `?password=…` / `&password=…`, case-insensitive.
    let mut search = 0;
    while let Some(pos) = out
        .get(search..)
        .and_then(|s| s.to_ascii_lowercase().find("password="))
        .map(|p| p + search)
    {
        let start = pos + "password=".len();
        let preceded = pos > 0 && matches!(out.as_bytes()[pos - 1], b'?' | b'&');
        let end = out[start..].find('&').map_or(out.len(), |e| start + e);
        if preceded {
            out.replace_range(start..end, "***");
            search = start + 3;
        } else {
            search = start;
        }
    }
    out
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
        // Unescaped `@` or `/` in the password: hide up to the last `@`.
        assert_eq!(
            redact_url_password("postgres://td:S3cr3t@Canary@db:5432/td"),
            "postgres://td:***@db:5432/td"
        );
        assert_eq!(
            redact_url_password("postgres://td:ab/S3cr3t@db/td"),
            "postgres://td:***@db/td"
        );
        assert_eq!(
            redact_url_password("postgres://td@db/td?sslmode=require&password=S3cr3t&x=1"),
            "postgres://td@db/td?sslmode=require&password=***&x=1"
        );
        assert_eq!(
            redact_url_password("postgres://db/td?PASSWORD=S3cr3t"),
            "postgres://db/td?PASSWORD=***"
        );
    }
}
