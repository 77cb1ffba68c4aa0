//! `trialdesk tokens …`: bearer tokens for the HTTP API (`/api/v1`).

use clap::Subcommand;

use crate::app::App;
use crate::store::{NewAudit, Via};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token and print it (only here, only once: the database keeps its SHA-256).
    Add {
        /// Who uses it (the audit log shows `token:NAME`): letters, digits, `.`, `_`, `-`, `@`.
        name: String,
        /// May read (GET) but not change anything.
        #[arg(long)]
        read_only: bool,
    },
    /// List the tokens (never the tokens themselves).
    List {
        /// A JSON array on stdout instead of text (times in RFC 3339).
        #[arg(long, display_order = 90)]
        json: bool,
    },
    /// Revoke the token of NAME: it is refused (401) from now on.
    Revoke {
        /// The token's name (as given to `tokens add`).
        name: String,
    },
}

/// A token name: 1–64 of ASCII letters, digits, `.`, `_`, `-`, `@`.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if !ok {
        anyhow::bail!(
            "token name {name:?}: use 1 to 64 ASCII letters, digits, '.', '_', '-' or '@'"
        );
    }
    Ok(())
}

pub async fn run(app: &App, command: TokensCommand) -> anyhow::Result<()> {
    let now = app.clock.now().as_millisecond();
    let operator = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let audit = |action: &'static str, detail: String| {
        NewAudit::unlinked(operator.clone(), Via::Cli, action, detail)
    };
    match command {
        TokensCommand::Add { name, read_only } => {
            check_name(&name)?;
            let token = crate::api::new_token();
            app.store
                .add_api_token(&name, &crate::api::token_hash(&token), read_only, now)
                .await?;
            let kind = if read_only { "read-only" } else { "read-write" };
            app.store
                .audit(&audit("token_add", format!("{kind} API token {name}")), now)
                .await?;
            // The token and nothing else on stdout, so scripts can capture it.
            println!("{token}");
            eprintln!("{kind} API token {name} added; it is shown only this once");
        }
        TokensCommand::List { json } => {
            let list = app.store.api_tokens().await?;
            if json {
                let value = super::queue::json_view(serde_json::to_value(&list)?);
                println!("{}", serde_json::to_string(&value)?);
            } else if list.is_empty() {
                println!("no API tokens yet: add one with `trialdesk tokens add NAME`");
            } else {
                let tz = app.config.web.tz()?;
                for t in list {
                    let when = |ms: i64| {
                        jiff::Timestamp::from_millisecond(ms)
                            .map(|ts| {
                                ts.to_zoned(tz.clone())
                                    .strftime("%Y-%m-%d %H:%M")
                                    .to_string()
                            })
                            .unwrap_or_default()
                    };
                    let state = match t.revoked_at {
                        Some(at) => format!("revoked {}", when(at)),
                        None => "active".into(),
                    };
                    println!(
                        "{:<24} {:<10} created {}  {state}",
                        t.name,
                        if t.read_only {
                            "read-only"
                        } else {
                            "read-write"
                        },
                        when(t.created_at)
                    );
                }
            }
        }
        TokensCommand::Revoke { name } => {
            if !app.store.revoke_api_token(&name, now).await? {
                anyhow::bail!("no active API token named {name:?}");
            }
            app.store
                .audit(&audit("token_revoke", format!("API token {name}")), now)
                .await?;
            println!("API token {name} revoked");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_names() {
        for ok in ["erp", "logistics-feed", "sap.prod_1", "ops@example"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "名字", "x:y", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
