//! The one place where text from outside (received mail, CSV imports, staff input, templates)
//! is made safe to become a header of a mail we send.
//!
//! lettre writes header values as given and *panics* (a `Display` error turned into a panic
//! by `to_string`) on a display name it cannot format, e.g. one holding a line break; a line
//! break that did get through would also let a sender inject headers (`Bcc:`) into our reply.
//! [`crate::outbound::compose::Composer`] passes every header value through these functions
//! before lettre sees it:
//!
//! - control characters (C0, DEL, C1, U+2028/U+2029) become spaces, runs of white space one
//!   space, and the ends are trimmed;
//! - a subject is capped at [`MAX_SUBJECT_CHARS`] characters, a display name at
//!   [`MAX_NAME_CHARS`] (so, encoded and folded, no line comes near RFC 5322's 998 octets);
//! - a display name that lettre still cannot format is dropped: the mail goes to the bare
//!   address;
//! - Message-IDs (ours, In-Reply-To, References) are used only when they are plain printable
//!   ASCII of at most [`MAX_MESSAGE_ID_BYTES`] bytes without brackets or spaces.

use std::fmt::Write as _;

use lettre::message::Mailbox as LettreMailbox;

/// Longest subject we send, in characters (a cut subject ends in `…`).
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Longest display name we send, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest Message-ID we echo into In-Reply-To / References.
pub const MAX_MESSAGE_ID_BYTES: usize = 500;

/// A character that must not reach a header: ASCII and Unicode control characters, and the
/// Unicode line and paragraph separators.
fn is_breaking(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// One line of plain text: control characters folded to spaces, white space collapsed,
/// trimmed.
pub fn header_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if is_breaking(c) || c.is_whitespace() {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

/// `s` cut to at most `max` characters (the last one `…` when cut).
pub fn cap_chars(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

/// A subject as we send it.
pub fn subject(s: &str) -> String {
    cap_chars(header_text(s), MAX_SUBJECT_CHARS)
}

/// A display name as we send it; None when nothing is left.
pub fn display_name(name: Option<&str>) -> Option<String> {
    let clean = cap_chars(header_text(name?), MAX_NAME_CHARS);
    (!clean.is_empty()).then_some(clean)
}

/// Text from a received mail echoed into the body of our reply (the sender's display name,
/// their subject): one line of plain text ([`header_text`], at most `max` characters) in which
/// nothing can become a link. Mail clients turn `https://…`, `www.…`, `name@domain` and bare
/// `domain.tld` into links even in plain text; a zero-width space after every `.`, `:` and `@`
/// of such a word breaks the pattern without changing what a reader sees.
pub fn echo_text(s: &str, max: usize) -> String {
    let clean = cap_chars(header_text(s), max);
    clean
        .split(' ')
        .map(|word| {
            if looks_linkable(word) {
                let mut out = String::with_capacity(word.len() + 8);
                for c in word.chars() {
                    out.push(c);
                    if matches!(c, '.' | ':' | '@' | '/' | '．' | '。') {
                        out.push('\u{200B}');
                    }
                }
                out
            } else {
                word.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A word a mail client might turn into a link: a scheme, `www.`, an address, or a dot
/// between two letters or digits (`evil.example`).
fn looks_linkable(word: &str) -> bool {
    let lower = word.to_lowercase();
    if lower.contains("://") || lower.contains("www") || lower.contains('@') {
        return true;
    }
    let chars: Vec<char> = word.chars().collect();
    chars.windows(3).any(|w| {
        matches!(w[1], '.' | '．' | '。') && w[0].is_alphanumeric() && w[2].is_alphanumeric()
    }) || lower.starts_with("mailto:")
        || lower.starts_with("tel:")
}

/// A message id we can safely put between angle brackets in a header.
pub fn is_sane_message_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_MESSAGE_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

/// `address` with the sanitised `name`; the name is dropped when lettre cannot format it.
pub fn mailbox(name: Option<&str>, address: lettre::Address) -> LettreMailbox {
    if let Some(name) = display_name(name) {
        let with_name = LettreMailbox::new(Some(name), address.clone());
        if formats(&with_name) {
            return with_name;
        }
    }
    LettreMailbox::new(None, address)
}

/// Whether lettre can write this mailbox (its `Display` fails instead of encoding some names;
/// lettre turns that failure into a panic when it builds the header).
fn formats(mailbox: &LettreMailbox) -> bool {
    let mut out = String::new();
    write!(out, "{mailbox}").is_ok() && !out.contains(['\r', '\n'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_folds_controls_and_white_space() {
        let table: &[(&str, &str)] = &[
            ("Wang Wei", "Wang Wei"),
            (
                "Wang Wei\r\nBcc: evil@evil.example",
                "Wang Wei Bcc: evil@evil.example",
            ),
            ("a\rb", "a b"),
            ("a\nb", "a b"),
            ("  a\t\tb  ", "a b"),
            ("x\u{0}y", "x y"),
            ("x\u{7f}y", "x y"),
            ("x\u{85}y", "x y"),
            ("x\u{2028}y\u{2029}z", "x y z"),
            ("\r\n", ""),
            ("王伟", "王伟"),
        ];
        for (input, want) in table {
            assert_eq!(header_text(input), *want, "{input:?}");
        }
    }

    #[test]
    fn subjects_and_names_are_capped() {
        let long = "é".repeat(5000);
        let s = subject(&long);
        assert_eq!(s.chars().count(), MAX_SUBJECT_CHARS);
        assert!(s.ends_with('…'));
        assert_eq!(subject("Re: short"), "Re: short");
        assert_eq!(subject(&"x".repeat(200)), "x".repeat(200));
        let n = display_name(Some(&"n".repeat(1000))).unwrap();
        assert_eq!(n.chars().count(), MAX_NAME_CHARS);
        assert_eq!(display_name(Some(" \r\n ")), None);
        assert_eq!(display_name(None), None);
    }

    #[test]
    fn echoed_text_cannot_become_a_link() {
        let table: &[(&str, &str)] = &[
            ("Wang Wei", "Wang Wei"),
            ("J. Smith", "J. Smith"),
            ("王伟", "王伟"),
            (
                "Click https://evil.example/x now",
                "Click https:\u{200B}/\u{200B}/\u{200B}evil.\u{200B}example/\u{200B}x now",
            ),
            ("www.evil.example", "www.\u{200B}evil.\u{200B}example"),
            ("evil.example", "evil.\u{200B}example"),
            ("a@b.example", "a@\u{200B}b.\u{200B}example"),
            ("Line\r\nBreak", "Line Break"),
        ];
        for (input, want) in table {
            assert_eq!(echo_text(input, 100), *want, "{input:?}");
        }
        assert_eq!(echo_text(&"n".repeat(500), 100).chars().count(), 100);
    }

    #[test]
    fn message_ids_must_be_plain_ascii() {
        let table: &[(&str, bool)] = &[
            ("abc@x.example", true),
            ("", false),
            ("a b@x", false),
            ("a\r\nb@x", false),
            ("<a@x>", false),
            ("é@x", false),
            (&"a".repeat(MAX_MESSAGE_ID_BYTES), true),
            (&"a".repeat(MAX_MESSAGE_ID_BYTES + 1), false),
        ];
        for (id, ok) in table {
            assert_eq!(is_sane_message_id(id), *ok, "{id:?}");
        }
    }

    #[test]
    fn mailbox_keeps_a_clean_name_and_drops_what_cannot_be_written() {
        let addr: lettre::Address = "wangwei@huadong.example.cn".parse().unwrap();
        let m = mailbox(Some("Wang\r\nWei"), addr.clone());
        assert_eq!(m.name.as_deref(), Some("Wang Wei"));
        let m = mailbox(Some("\r\n"), addr.clone());
        assert_eq!(m.name, None);
        let m = mailbox(None, addr);
        assert_eq!(m.to_string(), "wangwei@huadong.example.cn");
    }
}
