//! `config/trialdesk.example.toml` is the reference for every option: it must load, and it
//! must mention every key the config accepts (set, or shown commented out). The accepted keys
//! are read from the config types themselves (serde names them when it meets an unknown key),
//! so a key added to the code without documentation here fails this test.

use std::path::{Path, PathBuf};

use trialdesk::config::Config;

const EXAMPLE: &str = include_str!("../config/trialdesk.example.toml");

fn parse(text: &str) -> Result<Config, String> {
    Config::from_toml_str(
        text,
        Path::new("example.toml"),
        PathBuf::from("/etc/td"),
        &[],
    )
    .map_err(|e| e.to_string())
}

/// The keys `section` accepts, from serde's "unknown field ..., expected one of ..." message.
fn accepted_keys(section: Option<&str>) -> Vec<String> {
    let text = match section {
        None => "zz_probe = 1\n[database]\nurl = \"sqlite://x\"\n".to_string(),
        Some("database") => "[database]\nurl = \"sqlite://x\"\nzz_probe = 1\n".to_string(),
        Some(s) => format!("[database]\nurl = \"sqlite://x\"\n[{s}]\nzz_probe = 1\n"),
    };
    let err = parse(&text).expect_err("probe key must be refused");
    let list = err
        .split_once("expected one of ")
        .or_else(|| err.split_once("expected "))
        .unwrap_or_else(|| panic!("unexpected error text: {err}"))
        .1;
    // "`a`, `b` or `c`", possibly followed by a line naming the section.
    let list = list.lines().next().unwrap_or_default();
    list.split(',')
        .flat_map(|k| k.split(" or "))
        .map(|k| k.trim().trim_matches('`').to_string())
        .filter(|k| !k.is_empty())
        .collect()
}

/// The lines of `[section]` in the example (up to the next header of another section).
fn section_text(section: &str) -> String {
    let header = format!("[{section}]");
    let mut out = String::new();
    let mut inside = false;
    for line in EXAMPLE.lines() {
        let t = line.trim();
        if t.starts_with('[') && !t.starts_with("[[") && t.ends_with(']') {
            inside = t == header;
            continue;
        }
        if inside {
            out.push_str(t);
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_example_loads() {
    let c = parse(EXAMPLE).unwrap();
    assert_eq!(c.imap.host, "outlook.office365.com");
    assert_eq!(c.outbox.rate_limits.len(), 2);
}

#[test]
fn the_example_mentions_every_key() {
    let sections = accepted_keys(None);
    assert!(sections.contains(&"imap".to_string()), "{sections:?}");
    let mut missing = Vec::new();
    for section in &sections {
        if section == "carriers" {
            // A map of carrier names: shown with examples.
            assert!(!section_text("carriers").is_empty());
            continue;
        }
        assert!(
            EXAMPLE.contains(&format!("[{section}]")),
            "no [{section}] section in the example"
        );
        let text = section_text(section);
        for key in accepted_keys(Some(section)) {
            let set = text.lines().any(|l| {
                let l = l.trim_start_matches('#').trim_start();
                l.starts_with(&format!("{key} =")) || l.starts_with(&format!("{key}="))
            });
            // Tables of their own ([classify.subject_aliases]).
            let table = EXAMPLE.contains(&format!("[{section}.{key}]"));
            if !set && !table {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys missing from config/trialdesk.example.toml: {missing:?}"
    );
    // The fields of a rate-limit step.
    assert!(
        section_text("outbox").contains("window =") && section_text("outbox").contains("max =")
    );
}
