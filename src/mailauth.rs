//! Login secrets for IMAP and SMTP at connect time: the password read at start, or an OAuth 2.0
//! access token fetched fresh for every connection (XOAUTH2 for Microsoft 365 and Gmail).
//!
//! trialdesk does not run the OAuth flow itself: tenants differ (client credentials for an
//! Exchange Online app registration, a refresh token for a Google Workspace account), and
//! well-kept helpers exist. A token *command* is run at each connect and prints a current
//! access token; a token *file* is re-read at each connect and kept fresh by another program.

use std::process::Stdio;
use std::time::Duration;

use crate::config::{Credential, Secret};

/// Why no secret could be produced. Messages never contain the secret.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    #[error("oauth2 token command failed: {0}")]
    Command(String),
    #[error("cannot read oauth2 token file {path}: {message}")]
    File { path: String, message: String },
    #[error("oauth2 token source produced an empty token")]
    Empty,
}

/// The secret to log in with right now.
pub async fn current_secret(
    credential: &Credential,
    timeout: Duration,
) -> Result<Secret, CredentialError> {
    let token = match credential {
        Credential::Password(secret) => return Ok(secret.clone()),
        Credential::TokenCommand(command) => run_token_command(command, timeout).await?,
        Credential::TokenFile(path) => {
            tokio::fs::read_to_string(path)
                .await
                .map_err(|e| CredentialError::File {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?
        }
    };
    let first = token.lines().map(str::trim).find(|l| !l.is_empty());
    match first {
        Some(t) => Ok(Secret::new(t)),
        None => Err(CredentialError::Empty),
    }
}

async fn run_token_command(command: &str, timeout: Duration) -> Result<String, CredentialError> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| CredentialError::Command(format!("cannot start sh: {e}")))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(CredentialError::Command(e.to_string())),
        Err(_) => {
            return Err(CredentialError::Command(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            )))
        }
    };
    if !output.status.success() {
        // stderr helps the operator; it is cut short so a chatty helper cannot flood the log.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut detail: String = stderr.trim().chars().take(300).collect();
        if detail.is_empty() {
            detail = "(no message on stderr)".into();
        }
        return Err(CredentialError::Command(format!(
            "{}: {detail}",
            output.status
        )));
    }
    String::from_utf8(output.stdout)
        .map_err(|_| CredentialError::Command("token is not UTF-8".into()))
}

/// The SASL XOAUTH2 initial response (before base64): Google's and Microsoft's format.
pub fn xoauth2_response(user: &str, token: &Secret) -> String {
    format!("user={user}\x01auth=Bearer {}\x01\x01", token.expose())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn token_command_first_line_is_the_token() {
        let c = Credential::TokenCommand("printf '\\n  tok-123  \\nrest\\n'".into());
        let s = current_secret(&c, Duration::from_secs(5)).await.unwrap();
        assert_eq!(s.expose(), "tok-123");
    }

    #[tokio::test]
    async fn failing_command_reports_stderr_not_stdout() {
        let c = Credential::TokenCommand(
            "echo secret-ish; echo 'refresh token revoked' >&2; exit 3".into(),
        );
        let e = current_secret(&c, Duration::from_secs(5))
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("refresh token revoked"), "{msg}");
        assert!(!msg.contains("secret-ish"), "{msg}");
    }

    #[tokio::test]
    async fn slow_command_times_out_and_empty_file_is_an_error() {
        let c = Credential::TokenCommand("sleep 5".into());
        let e = current_secret(&c, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no answer"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tok");
        std::fs::write(&f, "\n\n").unwrap();
        let e = current_secret(&Credential::TokenFile(f.clone()), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, CredentialError::Empty));
        std::fs::write(&f, "abc\n").unwrap();
        let s = current_secret(&Credential::TokenFile(f), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(s.expose(), "abc");
    }

    #[test]
    fn xoauth2_format() {
        assert_eq!(
            xoauth2_response("a@b.c", &Secret::new("T")),
            "user=a@b.c\x01auth=Bearer T\x01\x01"
        );
    }
}
