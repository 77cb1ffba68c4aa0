//! `trialdesk users …`: staff accounts for the review pages.

use std::io::{BufRead, IsTerminal};

use clap::Subcommand;

use crate::app::App;
use crate::review::users;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create an account. Asks for the password twice (hidden) on a terminal; reads one line
    /// from standard input otherwise (for scripts).
    Add {
        /// The account name (lower-cased; letters, digits, `.`, `-`, `_`, `@`).
        name: String,
    },
    /// Set a new password (the user is signed out everywhere).
    Passwd {
        /// The account name.
        name: String,
    },
    /// Disable an account (signs it out; its name stays in the audit log).
    Disable {
        /// The account name.
        name: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// The account name.
        name: String,
    },
    /// List the accounts.
    List {
        /// One JSON array on stdout instead of a table.
        #[arg(long, display_order = 90)]
        json: bool,
    },
}

pub async fn run(app: &App, command: UsersCommand) -> anyhow::Result<()> {
    let now = app.clock.now().as_millisecond();
    let operator = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    match command {
        UsersCommand::Add { name } => {
            let name = users::normalize_name(&name)?;
            if app.store.user_by_name(&name).await?.is_some() {
                anyhow::bail!("a user named {name:?} already exists (use `users passwd`)");
            }
            let password = read_password(&name)?;
            let name = users::add_user(&app.store, &name, &password, &operator, now).await?;
            println!(
                "user {name} added; sign in at http://{}/",
                app.config.web.listen
            );
        }
        UsersCommand::Passwd { name } => {
            let name = users::normalize_name(&name)?;
            let password = read_password(&name)?;
            users::set_password(&app.store, &name, &password, &operator, now).await?;
            println!("new password set for {name}; their sessions were ended");
        }
        UsersCommand::Disable { name } => {
            let name = users::set_disabled(&app.store, &name, true, &operator, now).await?;
            println!("user {name} disabled");
        }
        UsersCommand::Enable { name } => {
            let name = users::set_disabled(&app.store, &name, false, &operator, now).await?;
            println!("user {name} enabled");
        }
        UsersCommand::List { json } => {
            let list = app.store.users().await?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else if list.is_empty() {
                println!("no users yet: add one with `trialdesk users add NAME`");
            } else {
                for u in list {
                    println!(
                        "{:<24} {}",
                        u.name,
                        if u.disabled { "disabled" } else { "active" }
                    );
                }
            }
        }
    }
    Ok(())
}

/// Twice without echo on a terminal; one line from stdin otherwise.
fn read_password(name: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))?;
        users::check_password(&first)?;
        let second = rpassword::prompt_password("again: ")?;
        if first != second {
            anyhow::bail!("the passwords differ; nothing was changed");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    users::check_password(&password)?;
    Ok(password)
}
