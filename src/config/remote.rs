//! How trialdesk reaches and logs in to its mail servers, shared by `[imap]` ([`super::imap`])
//! and `[smtp]` ([`super::smtp`]): transport security, the login mechanism and where its
//! credential comes from. The tests of both sections live here.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::secret::{resolve_secret, Secret};
use super::{invalid, ConfigError};

/// Transport security for IMAP and SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text; only for loopback test servers.
    None,
    /// Plain connect, then STARTTLS (IMAP 143, SMTP 587).
    Starttls,
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::Starttls => "starttls",
            TlsMode::Implicit => "implicit",
        }
    }
}

/// How trialdesk proves who it is to the IMAP or SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMechanism {
    /// IMAP `LOGIN` command / SMTP `AUTH LOGIN`, with the password.
    Login,
    /// SASL `PLAIN` (IMAP `AUTHENTICATE PLAIN`, SMTP `AUTH PLAIN`), with the password.
    Plain,
    /// SASL `XOAUTH2` with an OAuth 2.0 access token (Microsoft 365, Gmail). The token comes
    /// from `oauth2_token_command` or `oauth2_token_file` and is fetched again at every
    /// (re)connect, so an external refresher keeps it fresh.
    Xoauth2,
}

impl AuthMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMechanism::Login => "LOGIN",
            AuthMechanism::Plain => "PLAIN",
            AuthMechanism::Xoauth2 => "XOAUTH2",
        }
    }
}

/// Where the credential for a login comes from, resolved from a `[imap]`/`[smtp]` section.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A password (LOGIN / PLAIN), read once at start.
    Password(Secret),
    /// An OAuth 2.0 access token, fetched at each connect: the first line printed by a shell
    /// command, or the content of a file another program keeps fresh.
    TokenCommand(String),
    TokenFile(PathBuf),
}

pub(super) fn validate_auth(
    section: &str,
    auth: AuthMechanism,
    password_forms: [bool; 3],
    token_command: bool,
    token_file: bool,
) -> Result<(), ConfigError> {
    let passwords = password_forms.iter().filter(|x| **x).count();
    match auth {
        AuthMechanism::Login | AuthMechanism::Plain => {
            if token_command || token_file {
                return Err(invalid(
                    &format!("{section}.auth"),
                    "oauth2_token_command / oauth2_token_file need auth = \"xoauth2\"",
                ));
            }
            if passwords == 0 {
                return Err(invalid(
                    &format!("{section}.password"),
                    "set one of password, password_env, password_file",
                ));
            }
        }
        AuthMechanism::Xoauth2 => {
            if passwords > 0 {
                return Err(invalid(
                    &format!("{section}.auth"),
                    "xoauth2 takes a token (oauth2_token_command or oauth2_token_file), not a password",
                ));
            }
            if token_command == token_file {
                return Err(invalid(
                    &format!("{section}.oauth2_token_command"),
                    "with auth = \"xoauth2\" set exactly one of oauth2_token_command and oauth2_token_file",
                ));
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn credential(
    section: &str,
    auth: AuthMechanism,
    password: Option<&str>,
    password_env: Option<&str>,
    password_file: Option<&Path>,
    token_command: Option<&str>,
    token_file: Option<&Path>,
    base_dir: &Path,
) -> Result<Credential, ConfigError> {
    if auth == AuthMechanism::Xoauth2 {
        return match (token_command, token_file) {
            (Some(c), None) => Ok(Credential::TokenCommand(c.to_string())),
            (None, Some(f)) => Ok(Credential::TokenFile(base_dir.join(f))),
            _ => Err(invalid(
                &format!("{section}.oauth2_token_command"),
                "set exactly one of oauth2_token_command and oauth2_token_file",
            )),
        };
    }
    let key = format!("{section}.password");
    match resolve_secret(&key, password, password_env, password_file, base_dir)? {
        Some(s) => Ok(Credential::Password(s)),
        None => Err(invalid(
            &key,
            "set one of password, password_env, password_file",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::{AfterProcessing, AuthMechanism, Config, ConfigError, TlsMode};

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        let text = format!("[database]\nurl = \"sqlite://x\"\n{extra}");
        Config::from_toml_str(&text, Path::new("t.toml"), PathBuf::from("/etc/td"), &[])
    }

    fn err(extra: &str) -> String {
        parse(extra).unwrap_err().to_string()
    }

    const IMAP: &str = "[mail]\nsource = \"imap\"\n";

    #[test]
    fn imap_defaults_are_production_ones() {
        let c = parse(&format!("{IMAP}[imap]\nhost = \"imap.example.com\"\nusername = \"h@example.com\"\npassword_env = \"X\"\n")).unwrap();
        assert_eq!((c.imap.port, c.imap.tls), (993, TlsMode::Implicit));
        assert_eq!(c.imap.auth, AuthMechanism::Login);
        assert_eq!(c.imap.after_processing, AfterProcessing::Move);
        assert_eq!(c.imap.folder_answered, "trialdesk/answered");
        assert!(c.imap.idle);
        assert_eq!((c.smtp.port, c.smtp.tls), (587, TlsMode::Starttls));
    }

    #[test]
    fn imap_is_checked_only_when_used() {
        // A Maildir setup needs no IMAP login.
        parse("[imap]\nport = 1\n").unwrap();
        assert!(err(IMAP).contains("imap.username"));
        assert!(err(&format!("{IMAP}[imap]\nusername = \"u\"\n")).contains("imap.password"));
    }

    #[test]
    fn xoauth2_takes_exactly_one_token_source_and_no_password() {
        let base = format!("{IMAP}[imap]\nusername = \"u\"\nauth = \"xoauth2\"\n");
        assert!(err(&base).contains("imap.oauth2_token_command"));
        assert!(err(&format!(
            "{base}password = \"p\"\noauth2_token_file = \"t\"\n"
        ))
        .contains("imap.auth"));
        assert!(err(&format!(
            "{base}oauth2_token_file = \"t\"\noauth2_token_command = \"c\"\n"
        ))
        .contains("exactly one"));
        let c = parse(&format!("{base}oauth2_token_file = \"tok\"\n")).unwrap();
        match c.imap.credential(&c.base_dir).unwrap() {
            crate::config::Credential::TokenFile(p) => assert_eq!(p, PathBuf::from("/etc/td/tok")),
            other => panic!("{other:?}"),
        }
        let pw = format!(
            "{IMAP}[imap]\nusername = \"u\"\npassword = \"p\"\noauth2_token_file = \"t\"\n"
        );
        assert!(err(&pw).contains("need auth = \"xoauth2\""));
    }

    #[test]
    fn idle_renewal_stays_under_the_rfc_limit() {
        let e = err(&format!(
            "{IMAP}[imap]\nusername = \"u\"\npassword = \"p\"\nidle_renew = \"30m\"\n"
        ));
        assert!(e.contains("imap.idle_renew"), "{e}");
    }

    #[test]
    fn smtp_credentials_need_a_username() {
        let e = err("[mail]\ntransport = \"smtp\"\n[smtp]\npassword = \"p\"\n");
        assert!(e.contains("smtp.username"), "{e}");
        parse("[mail]\ntransport = \"smtp\"\n[smtp]\nhost = \"relay\"\nport = 25\n").unwrap();
    }

    #[test]
    fn health_silence_must_exceed_the_fetch_interval() {
        let e = err(&format!(
            "{IMAP}[imap]\nusername = \"u\"\npassword = \"p\"\nsafety_poll_interval = \"5m\"\n[health]\nmax_fetch_silence = \"2m\"\n"
        ));
        assert!(e.contains("health.max_fetch_silence"), "{e}");
    }

    #[test]
    fn unknown_imap_key_is_named() {
        assert!(err("[imap]\nafter_processing = \"delete\"\n").contains("imap.after_processing"));
    }
}
