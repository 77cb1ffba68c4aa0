//! Secrets (passwords, tokens) that must never reach a log line, `--help` or an error message.

use std::fmt;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// A secret string. `Debug` and `Display` print `[redacted]`; call [`Secret::expose`] at the
/// single place that hands it to a protocol library.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Read from config as a plain string, so a config section can hold a secret without its
/// derived `Debug` ever printing it.
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// The three ways a config section may give a secret: inline, from an environment variable, or
/// from a file (trailing newline trimmed). At most one may be set; `key` names the inline key
/// (e.g. `imap.password`) so errors point at the config.
pub fn resolve_secret(
    key: &str,
    inline: Option<&str>,
    env: Option<&str>,
    file: Option<&Path>,
    base_dir: &Path,
) -> Result<Option<Secret>, ConfigError> {
    let given = [inline.is_some(), env.is_some(), file.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if given > 1 {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            message: format!("set only one of `{key}`, `{key}_env` and `{key}_file`"),
        });
    }
    if let Some(v) = inline {
        return Ok(Some(Secret::new(v)));
    }
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) => Ok(Some(Secret::new(v))),
            Err(_) => Err(ConfigError::Invalid {
                key: format!("{key}_env"),
                message: format!("environment variable {var} is not set (or not UTF-8)"),
            }),
        };
    }
    if let Some(path) = file {
        let path: PathBuf = base_dir.join(path);
        return match std::fs::read_to_string(&path) {
            Ok(v) => Ok(Some(Secret::new(v.trim_end_matches(['\r', '\n'])))),
            Err(e) => Err(ConfigError::Invalid {
                key: format!("{key}_file"),
                message: format!("cannot read {}: {e}", path.display()),
            }),
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn only_one_form_may_be_given() {
        let err = resolve_secret("imap.password", Some("a"), Some("B"), None, Path::new("."))
            .unwrap_err();
        assert!(err.to_string().contains("imap.password"));
    }

    #[test]
    fn missing_env_var_names_the_key() {
        let err = resolve_secret(
            "smtp.password",
            None,
            Some("TRIALDESK_TEST_SURELY_UNSET_VAR"),
            None,
            Path::new("."),
        )
        .unwrap_err();
        assert!(err.to_string().contains("smtp.password_env"), "{err}");
    }
}
