//! `config/trialdesk.example.toml` states the defaults, so the example and the `Default` impls
//! of the sections cannot drift apart.
//!
//! The convention: every key the example *sets* (an uncommented `key = value` line) holds its
//! section's default, except the keys listed in [`EXAMPLE_VALUES`], whose comment in the
//! example says "Example value" (the file is a production setup: IMAP in, SMTP out through
//! Microsoft 365), and the required `database.url`, which has no default. Commented-out lines
//! (`# key = value`) illustrate optional keys that are unset by default; they are not checked
//! here (`tests/config_example.rs` checks that every key is mentioned).
//!
//! Each key is checked on its own: a config holding only `[database] url` and that one key
//! must come out exactly like a config holding only `[database] url` (compared through
//! `Debug`, which shows every field). So a default changed in the code but not in the example,
//! or the other way round, fails here and names the key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::Config;

const EXAMPLE: &str = include_str!("../../config/trialdesk.example.toml");

/// Keys the example deliberately sets to something other than the default. Each must differ
/// from the default (otherwise drop it from this list) and be marked "Example value" in the
/// example.
const EXAMPLE_VALUES: &[&str] = &[
    "security.trusted_authserv_ids",
    "mail.source",
    "mail.transport",
    "mail.from",
    "mail.own_addresses",
    "imap.host",
    "imap.username",
    "imap.auth",
    "imap.oauth2_token_command",
    "smtp.host",
    "smtp.username",
    "smtp.auth",
    "smtp.oauth2_token_command",
];

/// Required keys: they have no default to state.
const REQUIRED: &[&str] = &["database.url"];

const URL: &str = "sqlite://data/trialdesk.db?mode=rwc";

/// `[database] url` plus `section.key = value`, parsed and validated like a config file.
fn with_key(section: &str, key: &str, value: &toml::Value) -> Result<Config, String> {
    let mut root = toml::Table::new();
    let mut database = toml::Table::new();
    database.insert("url".into(), toml::Value::String(URL.into()));
    root.insert("database".into(), toml::Value::Table(database));
    let table = root
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    table
        .as_table_mut()
        .expect("a section is a table")
        .insert(key.to_string(), value.clone());
    let text = toml::to_string(&root).map_err(|e| e.to_string())?;
    Config::from_toml_str(&text, Path::new("t.toml"), PathBuf::from("/etc/td"), &[])
        .map_err(|e| e.to_string())
}

fn defaults() -> Config {
    let text = format!("[database]\nurl = \"{URL}\"\n");
    Config::from_toml_str(&text, Path::new("t.toml"), PathBuf::from("/etc/td"), &[]).unwrap()
}

/// The `Debug` lines of `got` that the defaults do not have, and the other way round.
fn difference(default: &str, got: &str) -> String {
    let d: BTreeSet<&str> = default.lines().map(str::trim).collect();
    let g: BTreeSet<&str> = got.lines().map(str::trim).collect();
    let code: Vec<&str> = d.difference(&g).copied().collect();
    let example: Vec<&str> = g.difference(&d).copied().collect();
    format!("code default {code:?}, example {example:?}")
}

#[test]
fn the_example_states_exactly_the_defaults() {
    let example: toml::Table = toml::from_str(EXAMPLE).expect("the example is valid TOML");
    let default = format!("{:#?}", defaults());
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for (section, table) in &example {
        let table = table
            .as_table()
            .unwrap_or_else(|| panic!("top-level key {section} in the example is not a section"));
        for (key, value) in table {
            let dotted = format!("{section}.{key}");
            seen.insert(dotted.clone());
            if REQUIRED.contains(&dotted.as_str()) {
                continue;
            }
            let deliberate = EXAMPLE_VALUES.contains(&dotted.as_str());
            match with_key(section, key, value) {
                Ok(c) => {
                    let got = format!("{c:#?}");
                    if deliberate && got == default {
                        failures.push(format!(
                            "{dotted}: listed in EXAMPLE_VALUES but the example states the \
                             default; drop it from the list and its \"Example value\" mark"
                        ));
                    } else if !deliberate && got != default {
                        failures.push(format!(
                            "{dotted}: the example does not state the default: {}",
                            difference(&default, &got)
                        ));
                    }
                }
                // A value the config refuses on its own is no default either.
                Err(e) if !deliberate => failures.push(format!("{dotted}: {e}")),
                Err(_) => {}
            }
        }
    }
    for listed in EXAMPLE_VALUES.iter().chain(REQUIRED) {
        if !seen.contains(*listed) {
            failures.push(format!("{listed}: listed here but not set in the example"));
        }
    }
    assert!(
        failures.is_empty(),
        "config/trialdesk.example.toml and the Default impls in src/config disagree:\n{}",
        failures.join("\n")
    );
}

/// The example marks exactly the keys of [`EXAMPLE_VALUES`] "Example value" (in the comment
/// lines right above the key), so a reader can tell a default from an illustration.
#[test]
fn example_values_are_marked_in_the_example() {
    let lines: Vec<&str> = EXAMPLE.lines().collect();
    let mut section = String::new();
    let mut failures = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(header) = line.strip_prefix('[') {
            section = header.trim_end_matches(']').to_string();
            continue;
        }
        // Keys of sub-tables (`[classify.subject_aliases]`) belong to their parent key.
        if section.contains('.') {
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if line.starts_with([' ', '#', '{'])
            || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            continue;
        }
        let comment: Vec<&str> = lines[..i]
            .iter()
            .rev()
            .take_while(|l| l.starts_with('#'))
            .copied()
            .collect();
        let marked = comment.iter().any(|l| l.contains("Example value"));
        let dotted = format!("{section}.{key}");
        let listed = EXAMPLE_VALUES.contains(&dotted.as_str());
        if marked != listed {
            failures.push(if listed {
                format!("{dotted} sets an example value: say \"Example value\" in its comment")
            } else {
                format!("{dotted} states the default: its comment must not say \"Example value\"")
            });
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
