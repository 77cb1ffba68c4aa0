//! Canned replies: editable snippets in `<templates.dir>/snippets/*.txt` (first line the
//! title, the rest the text), read when a page needs them so edits show without a restart.

use std::path::Path;

use serde::Serialize;

/// The largest snippet file read (bigger ones are skipped).
const MAX_SNIPPET_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snippet {
    /// The file name without `.txt`.
    pub name: String,
    pub title: String,
    pub text: String,
}

/// Every snippet in `dir`, by file name; unreadable files are skipped.
pub fn load(dir: &Path) -> Vec<Snippet> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Snippet> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let stem = name.strip_suffix(".txt")?.to_string();
            if stem.is_empty() || stem.starts_with('.') {
                return None;
            }
            if e.metadata().ok()?.len() > MAX_SNIPPET_BYTES {
                return None;
            }
            let body = std::fs::read_to_string(e.path()).ok()?;
            parse(&stem, &body)
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A snippet file's text: first line the title, the rest the text (trimmed).
pub fn parse(name: &str, body: &str) -> Option<Snippet> {
    let body = body.replace("\r\n", "\n");
    let (title, text) = body.split_once('\n').unwrap_or((body.as_str(), ""));
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    Some(Snippet {
        name: name.to_string(),
        title: title.trim().to_string(),
        text: text.to_string(),
    })
}

/// `typed` with snippet `text` above it, unless the text is already there (inserted by the
/// page's script).
pub fn with_snippet(typed: &str, text: &str) -> String {
    if text.is_empty() || typed.contains(text) {
        typed.to_string()
    } else if typed.trim().is_empty() {
        text.to_string()
    } else {
        format!("{text}\n\n{typed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_files_have_a_title_line_and_a_text() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("Title\nBody text\n", Some(("Title", "Body text"))),
            (
                "Title\r\n\r\nTwo\r\nlines\r\n",
                Some(("Title", "Two\nlines")),
            ),
            ("Only a title\n", None),
            ("", None),
        ];
        for (body, want) in cases {
            let got = parse("x", body).map(|s| (s.title, s.text));
            assert_eq!(
                got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
                *want,
                "{body:?}"
            );
        }
    }

    #[test]
    fn a_snippet_goes_above_the_typed_text_once() {
        assert_eq!(with_snippet("", "S"), "S");
        assert_eq!(with_snippet("mine", "S"), "S\n\nmine");
        assert_eq!(with_snippet("S\n\nmine", "S"), "S\n\nmine");
        assert_eq!(with_snippet("mine", ""), "mine");
    }

    #[test]
    fn the_shipped_snippets_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/snippets");
        let all = load(&dir);
        assert!(all.len() >= 3, "{all:?}");
        assert!(all
            .iter()
            .all(|s| !s.title.is_empty() && !s.text.is_empty()));
    }
}
