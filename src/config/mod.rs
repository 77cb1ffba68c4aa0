//! One typed configuration tree, read from a TOML file (default `config/trialdesk.toml`).
//!
//! Every section has defaults except `[database]`, so a file holding only `[database]` is enough
//! for `import`, `explain`, `queue` and `reminders plan`. Unknown keys are errors, reported with
//! their dotted path. Any key can be overridden from the environment as
//! `TRIALDESK__SECTION__KEY=value` (the value is read as TOML, or as a string when it is not
//! valid TOML), which is how containers pass secrets and URLs. Relative paths are resolved
//! against the directory of the config file, not the working directory.

mod classify;
mod cluster;
mod database;
#[cfg(test)]
mod defaults_test;
mod feeds;
mod health;
mod imap;
mod live;
mod mail;
mod metrics;
mod ops;
mod outbound;
mod remote;
pub mod secret;
mod smtp;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use classify::ClassifyConfig;
pub use cluster::ClusterConfig;
pub use database::DatabaseConfig;
pub use feeds::{carrier_links, ApiConfig, ImportConfig, DEFAULT_CARRIERS};
pub use health::HealthConfig;
pub use imap::{AfterProcessing, ImapConfig};
pub use live::{NotifyConfig, RmaConfig, TrackingConfig};
pub use mail::{MailConfig, MaildirConfig, SourceKind, TransportKind};
pub use metrics::MetricsConfig;
pub use ops::{LogFormat, LoggingConfig, RemindersConfig, RetentionConfig, WebConfig};
pub use outbound::{OutboxConfig, RateLimitStep, TemplatesConfig};
pub use remote::{AuthMechanism, Credential, TlsMode};
pub use secret::Secret;
pub use smtp::SmtpConfig;

/// Errors reading or validating the configuration; each names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// The whole configuration. See `config/trialdesk.example.toml` for every key, documented.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database: DatabaseConfig,
    #[serde(default)]
    pub security: SecurityConfig,
    #[serde(default)]
    pub mail: MailConfig,
    #[serde(default)]
    pub maildir: MaildirConfig,
    #[serde(default)]
    pub imap: ImapConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub classify: ClassifyConfig,
    #[serde(default)]
    pub templates: TemplatesConfig,
    /// Carrier name → tracking URL pattern with `{tracking_number}`, e.g.
    /// `EMS = "https://www.ems.example/track?no={tracking_number}"`. Matching ignores case.
    /// Entries here override the shipped defaults ([`DEFAULT_CARRIERS`]).
    #[serde(default)]
    pub carriers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub reminders: RemindersConfig,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub retention: RetentionConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub notify: NotifyConfig,
    #[serde(default)]
    pub tracking: TrackingConfig,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub import: ImportConfig,
    #[serde(default)]
    pub rma: RmaConfig,
    /// Directory of the config file; relative paths in the config are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// Who is trusted about sender authenticity.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// authserv-ids (RFC 8601) of our own inbound MTAs. Only their `Authentication-Results`
    /// headers are believed; a `dmarc=fail` from one of them sends the mail to review. Headers
    /// from any other authserv-id can be forged by the sender and are ignored.
    pub trusted_authserv_ids: Vec<String>,
    /// Answer automatically only mail for which a trusted authserv-id reported `dmarc=pass`;
    /// `none`, `temperror`, `permerror` or no trusted result at all go to review
    /// (`dmarc_not_pass`). Off by default: then only a trusted `dmarc=fail` sends a mail to
    /// review, and mail without a trusted Authentication-Results header is judged by its From
    /// domain alone.
    pub require_dmarc_pass: bool,
}

/// What to warn about at start: with no trusted authserv-id, no Authentication-Results header
/// is believed, so a `dmarc=fail` never sends a mail to review (and with
/// `require_dmarc_pass` nothing is answered automatically).
pub fn security_warning(security: &SecurityConfig) -> Option<String> {
    if !security.trusted_authserv_ids.is_empty() {
        return None;
    }
    Some(if security.require_dmarc_pass {
        "security.trusted_authserv_ids is empty while security.require_dmarc_pass is on: no \
         DMARC result is believed, so every mail goes to review"
            .to_string()
    } else {
        "security.trusted_authserv_ids is empty: no Authentication-Results header is believed, \
         so spoofed mail failing DMARC is answered like any other; list your inbound MTAs' \
         authserv-ids"
            .to_string()
    })
}

impl Config {
    /// Reads, overrides from the environment, parses and validates the config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let vars: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TRIALDESK__"))
            .collect();
        let base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .unwrap_or_else(|| PathBuf::from("."));
        // Absolute, so paths in logs and summaries do not depend on the working directory.
        let base_dir = std::fs::canonicalize(&base_dir).unwrap_or(base_dir);
        Self::from_toml_str(&text, path, base_dir, &vars)
    }

    /// Parses config text; `overrides` are `TRIALDESK__SECTION__KEY` pairs. Split from `load`
    /// so tests need neither files nor a process-wide environment.
    pub fn from_toml_str(
        text: &str,
        path: &Path,
        base_dir: PathBuf,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut value: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: syntax_message(text, &e),
        })?;
        for (var, raw) in overrides {
            apply_override(&mut value, var, raw)?;
        }
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(value))
            .map_err(|e| {
                let key = e.path().to_string();
                // serde echoes the offending value ("invalid type: integer `1234`"): never
                // for a key that holds a secret.
                let message = if is_secret_key(&key) {
                    "invalid value (not shown: this key holds a secret)".into()
                } else {
                    e.into_inner().to_string()
                };
                ConfigError::Invalid {
                    key: if key == "." {
                        "(top level)".into()
                    } else {
                        key
                    },
                    message,
                }
            })?;
        config.base_dir = base_dir;
        config.validate()?;
        Ok(config)
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        let joined = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        };
        normalize(&joined)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.database.validate()?;
        self.mail.validate()?;
        self.classify.validate()?;
        self.outbox.validate()?;
        self.reminders.validate()?;
        self.retention.validate()?;
        self.web.validate()?;
        self.cluster.validate()?;
        self.tracking.validate()?;
        self.api.validate()?;
        self.import.validate()?;
        self.rma.validate()?;
        self.validate_remote()?;
        for (carrier, pattern) in &self.carriers {
            if !pattern.contains("{tracking_number}") {
                return Err(ConfigError::Invalid {
                    key: format!("carriers.{carrier}"),
                    message: "the URL pattern must contain {tracking_number}".into(),
                });
            }
        }
        Ok(())
    }
}

/// Where and what, without the source excerpt the TOML error would print: the offending line
/// may hold a password (`password = "unterminated…`).
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}

/// Keys whose values are secrets: `password`, `session_secret`, `…_token` (not `password_env`,
/// `password_file` or `oauth2_token_command`, which only say where a secret is).
fn is_secret_key(dotted: &str) -> bool {
    let last = dotted
        .rsplit('.')
        .next()
        .unwrap_or(dotted)
        .to_ascii_lowercase();
    ["password", "secret", "token"]
        .iter()
        .any(|w| last == *w || last.ends_with(&format!("_{w}")))
}

impl Config {
    /// `[imap]`/`[smtp]` are checked only when selected, so a Maildir setup needs neither;
    /// `[health]` against the selected source's fetch interval.
    fn validate_remote(&self) -> Result<(), ConfigError> {
        let fetch_interval = match self.mail.source {
            SourceKind::Imap => {
                self.imap.validate()?;
                // Without IDLE on the server, polling takes over even when `idle = true`.
                if self.imap.idle {
                    self.imap.safety_poll_interval.max(self.imap.poll_interval)
                } else {
                    self.imap.poll_interval
                }
            }
            SourceKind::Maildir => self.maildir.poll_interval,
        };
        if self.mail.transport == TransportKind::Smtp {
            self.smtp.validate()?;
        }
        self.health.validate(fetch_interval)
    }
}

/// Removes `.` and `name/..` lexically (no symlink resolution: the paths may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !matches!(out.components().next_back(), Some(Component::Normal(_))) || !out.pop()
                {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// `TRIALDESK__IMAP__PASSWORD=x` sets `imap.password`. Sections and keys are lower-cased.
fn apply_override(table: &mut toml::Table, var: &str, raw: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = var
        .trim_start_matches("TRIALDESK__")
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if path.iter().any(|s| s.is_empty()) {
        return Err(ConfigError::Invalid {
            key: var.to_string(),
            message: "environment override must look like TRIALDESK__SECTION__KEY".into(),
        });
    }
    let value = parse_override_value(raw);
    let mut cursor = table;
    for (i, part) in path.iter().enumerate() {
        if i + 1 == path.len() {
            cursor.insert(part.clone(), value);
            break;
        }
        let entry = cursor
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cursor = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::Invalid {
                    key: path[..=i].join("."),
                    message: format!("{var} addresses a key inside a value that is not a table"),
                })
            }
        };
    }
    Ok(())
}

fn parse_override_value(raw: &str) -> toml::Value {
    // Parse as a TOML value (numbers, booleans, arrays); anything else is a plain string.
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.into())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// A `ConfigError::Invalid` for `key`.
pub fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("t.toml"), PathBuf::from("/etc/td"), &[])
    }

    #[test]
    fn database_alone_is_enough() {
        let c = parse("[database]\nurl = \"sqlite://x.db?mode=rwc\"\n").unwrap();
        assert_eq!(c.mail.source, SourceKind::Maildir);
        assert_eq!(c.classify.max_loan_numbers, 50);
        assert!(c.classify.subject_aliases.contains_key("zh"));
    }

    #[test]
    fn ignored_imap_capabilities_are_checked() {
        let text = |caps: &str| {
            format!(
                "[database]\nurl = \"sqlite://x\"\n[mail]\nsource = \"imap\"\n\
                 [imap]\nusername = \"hd\"\npassword = \"p\"\nignore_capabilities = {caps}\n"
            )
        };
        let c = parse(&text(r#"["move", "UIDPLUS"]"#)).unwrap();
        assert_eq!(c.imap.ignore_capabilities, ["move", "UIDPLUS"]);
        let err = parse(&text(r#"["CONDSTORE"]"#)).unwrap_err().to_string();
        assert!(
            err.contains("imap.ignore_capabilities") && err.contains("CONDSTORE"),
            "{err}"
        );
    }

    #[test]
    fn the_listing_window_is_checked_by_its_key() {
        let text = |extra: &str| {
            format!(
                "[database]\nurl = \"sqlite://x\"\n[mail]\nsource = \"imap\"\n\
                 [imap]\nusername = \"hd\"\npassword = \"p\"\n{extra}"
            )
        };
        assert_eq!(parse(&text("")).unwrap().imap.list_window, 1000);
        assert_eq!(
            parse(&text("list_window = 3\n")).unwrap().imap.list_window,
            3
        );
        for bad in ["0", "100001"] {
            let err = parse(&text(&format!("list_window = {bad}\n")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("imap.list_window"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("[database]\nurl = \"sqlite://x\"\n[imap]\nhots = \"x\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("hots"), "{msg}");
    }

    #[test]
    fn bad_value_names_dotted_key() {
        let err = parse("[database]\nurl = \"sqlite://x\"\n[imap]\nport = \"abc\"\n").unwrap_err();
        assert!(err.to_string().contains("imap.port"), "{err}");
    }

    #[test]
    fn missing_database_is_reported() {
        let err = parse("[mail]\nfrom = \"a@b.c\"\n").unwrap_err();
        assert!(err.to_string().contains("database"), "{err}");
    }

    #[test]
    fn env_overrides_apply_and_parse_types() {
        let overrides = vec![
            ("TRIALDESK__IMAP__PORT".to_string(), "1993".to_string()),
            (
                "TRIALDESK__DATABASE__URL".to_string(),
                "postgres://u@h/db".to_string(),
            ),
        ];
        let c = Config::from_toml_str(
            "[database]\nurl = \"sqlite://x\"\n",
            Path::new("t.toml"),
            PathBuf::from("."),
            &overrides,
        )
        .unwrap();
        assert_eq!(c.imap.port, 1993);
        assert_eq!(c.database.url, "postgres://u@h/db");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let c = parse("[database]\nurl = \"sqlite://x\"\n").unwrap();
        assert_eq!(
            c.resolve_path(Path::new("templates")),
            PathBuf::from("/etc/td/templates")
        );
        assert_eq!(c.resolve_path(Path::new("/abs")), PathBuf::from("/abs"));
        assert_eq!(
            c.resolve_path(Path::new("../demo/./out")),
            PathBuf::from("/etc/demo/out")
        );
    }

    #[test]
    fn errors_never_show_secret_values() {
        let canary = "S3cr3t-Canary";
        for text in [
            format!("[database]\nurl = \"sqlite://x\"\n[imap]\npassword = \"{canary}\n"),
            format!("[database]\nurl = \"sqlite://x\"\n[imap]\npassword = \"{canary}\"x\n"),
            format!("[database]\nurl = \"sqlite://x\"\n[smtp]\npassword = {canary}\n"),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(!err.contains(canary), "{err}");
            assert!(err.contains("line "), "{err}");
        }
        let err = parse("[database]\nurl = \"sqlite://x\"\n[imap]\npassword = 123456789\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("imap.password") && !err.contains("123456789"),
            "{err}"
        );
        // Other keys keep serde's helpful detail.
        let err = parse("[database]\nurl = \"sqlite://x\"\n[imap]\nport = \"abc\"\n").unwrap_err();
        assert!(err.to_string().contains("abc"), "{err}");
        assert!(is_secret_key("web.session_secret") && is_secret_key("smtp.password"));
        assert!(!is_secret_key("imap.password_env") && !is_secret_key("imap.username"));
        assert!(!is_secret_key("smtp.oauth2_token_command") && !is_secret_key("x.token_refresh"));
        assert!(is_secret_key("x.access_token") && is_secret_key("imap.PASSWORD"));
    }

    /// `{config:?}` in a log line must not leak either.
    #[test]
    fn debug_output_hides_secrets() {
        let c = parse(
            "[database]\nurl = \"postgres://td:S3cr3t-Canary@db/td\"\n\
             [imap]\nusername = \"u\"\npassword = \"S3cr3t-Canary\"\n\
             [smtp]\nusername = \"u\"\npassword = \"S3cr3t-Canary\"\n\
             [metrics]\ntoken = \"S3cr3t-Canary\"\n",
        )
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("Canary"), "{debug}");
        assert!(debug.contains("postgres://td:***@db/td"), "{debug}");
        assert_eq!(
            c.imap.password.as_ref().map(Secret::expose),
            Some("S3cr3t-Canary")
        );
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = parse("[database]\nurl = \"sqlite://x\"\n[imap\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn carrier_pattern_needs_placeholder() {
        let err = parse("[database]\nurl = \"sqlite://x\"\n[carriers]\nEMS = \"https://x\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("carriers.EMS"), "{err}");
    }
}
