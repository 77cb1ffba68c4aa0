//! The README's command list is `trialdesk --help`'s, verbatim, and every example in it is a
//! command line the real definitions accept. After changing a command,
//! `TRIALDESK_UPDATE_README=1 cargo test --test readme` rewrites the list.

use std::path::Path;
use std::process::Command;

use clap::Parser;
use trialdesk::cli::Cli;

const BEGIN: &str = "<!-- commands:begin";
const END: &str = "<!-- commands:end -->";

fn readme_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")
}

/// The `Commands:` block of `trialdesk --help`, without its heading.
fn help_commands() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let block: Vec<&str> = help
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(!block.is_empty(), "{help}");
    block.join("\n")
}

/// The fenced block between two markers, and where its text starts and ends in `readme`.
fn block<'a>(readme: &'a str, begin: &str, end: &str) -> (usize, usize, &'a str) {
    let b = readme.find(begin).expect("begin marker");
    let e = readme[b..].find(end).expect("end marker") + b;
    let fence = readme[b..e].find("```").expect("opening fence") + b;
    let start = readme[fence..].find('\n').unwrap() + fence + 1;
    let stop = readme[start..e].rfind("```").expect("closing fence") + start;
    (start, stop, readme[start..stop].trim_end_matches('\n'))
}

#[test]
fn the_readme_lists_the_commands_of_help_verbatim() {
    let path = readme_path();
    let readme = std::fs::read_to_string(&path).unwrap();
    let want = help_commands();
    let (start, stop, have) = block(&readme, BEGIN, END);
    if std::env::var_os("TRIALDESK_UPDATE_README").is_some() && have != want {
        let updated = format!("{}{want}\n{}", &readme[..start], &readme[stop..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert_eq!(
        have, want,
        "README.md's command list differs from `trialdesk --help`; \
         TRIALDESK_UPDATE_README=1 cargo test --test readme rewrites it"
    );
}

/// Splits a shell line into words: whitespace separates, "…" and '…' quote, `#` starts a
/// comment, `> FILE` (a redirection) ends the command.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '#' | '>') if !in_word => break,
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[test]
fn every_readme_example_is_accepted_and_every_command_has_one() {
    let readme = std::fs::read_to_string(readme_path()).unwrap();
    let (_, _, examples) = block(&readme, "<!-- examples:begin -->", "<!-- examples:end -->");
    let mut used = std::collections::BTreeSet::new();
    for line in examples.lines().filter(|l| !l.trim().is_empty()) {
        let words = shell_words(line);
        assert_eq!(
            words.first().map(String::as_str),
            Some("trialdesk"),
            "{line}"
        );
        if let Err(e) = Cli::try_parse_from(&words) {
            panic!("README example {line:?} is not accepted:\n{e}");
        }
        if let Some(cmd) = words.iter().skip(1).find(|w| !w.starts_with('-')) {
            // `--config FILE`: the word after an option taking a value is not the command.
            let i = words.iter().position(|w| w == cmd).unwrap();
            if words[i - 1] != "--config" {
                used.insert(cmd.clone());
            } else if let Some(next) = words.get(i + 1) {
                used.insert(next.clone());
            }
        }
    }
    let commands: Vec<String> = help_commands()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect();
    let missing: Vec<&String> = commands.iter().filter(|c| !used.contains(*c)).collect();
    assert!(
        missing.is_empty(),
        "commands without a README example: {missing:?}"
    );
}

#[test]
fn shell_words_split_like_a_shell() {
    assert_eq!(
        shell_words(r#"trialdesk queue answer 12 --loans "D1 D2" --as a   # note"#),
        [
            "trialdesk",
            "queue",
            "answer",
            "12",
            "--loans",
            "D1 D2",
            "--as",
            "a"
        ]
    );
    assert_eq!(
        shell_words("trialdesk completions bash > /etc/x"),
        ["trialdesk", "completions", "bash"]
    );
}
