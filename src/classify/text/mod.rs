//! Text helpers: HTML → text (`html`), charsets and RFC 2047 header decoding
//! (`charset`), and folding for matching (here).
//!
//! Everything here works on untrusted input and never panics: no indexing on input-derived
//! positions except on char boundaries found by the iteration itself.

mod charset;
mod html;

pub use charset::{base64_lenient, decode_charset, decode_header};
pub use html::{find_ignore_ascii_case, html_to_text};

use unicode_normalization::UnicodeNormalization;

/// Folds a phrase for tolerant comparison: NFKC (full-width → ASCII, half-width kana →
/// full-width), lower case, and *all* white space and invisible format characters removed,
/// so "Ｔｒｉａｌ　Endpoint\r\n Tracking" and "trialendpointtracking" compare equal.
pub fn fold_for_match(s: &str) -> String {
    let keep = |c: &char| !c.is_whitespace() && !is_invisible(*c);
    if s.is_ascii() {
        return s
            .chars()
            .filter(keep)
            .map(|c| c.to_ascii_lowercase())
            .collect();
    }
    s.nfkc().flat_map(char::to_lowercase).filter(keep).collect()
}

/// Zero-width and format characters that mail clients sprinkle into subjects.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{ad}' | '\u{202a}'..='\u{202e}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(
            fold_for_match("Ｔｒｉａｌ　Endpoint\r\n Tracking\u{200b}"),
            "trialendpointtracking"
        );
        assert_eq!(fold_for_match("ﾄﾗｲｱﾙ"), "トライアル");
    }
}
