//! Subject and text heuristics (tiers 2 and 3): read-receipt, auto-reply and bounce subjects,
//! subject tags, MTA bounce phrases and SMTP status codes in the fresh text, and the
//! two-pieces-of-evidence rule for circumstantial markers. Separate from `headers` because it
//! reads what people could also write, so it carries the reply/forward exceptions.

use std::sync::OnceLock;

use regex::Regex;

use super::phrases::{
    AUTO_REPLY_WORDS, BOUNCE_SUBJECTS_WHOLE, BOUNCE_TEXT_STRONG, BOUNCE_TEXT_WEAK, BOUNCE_WORDS,
    BOUNCE_WORDS_CJK, BOUNCE_WORDS_WEAK, DAEMON_NAMES, READ_RECEIPT_PREFIXES,
};
use super::Signals;
use crate::classify::subject::{has_forward_prefix, has_reply_or_forward_prefix};

/// The subject without leading tags like `[SPAM]`, `***SPAM***`, `{Spam?}`, `【外部】`,
/// lower-cased, full-width colons as ASCII.
pub(super) fn clean_subject(subject: &str) -> String {
    split_tags(subject).0
}

/// (subject without leading tags, the tags' inner texts), both lower-cased, `：` as `:`.
fn split_tags(subject: &str) -> (String, Vec<String>) {
    static TAGS: OnceLock<Regex> = OnceLock::new();
    let re = TAGS.get_or_init(|| {
        Regex::new(
            r"^[\s\u{3000}]*(?:\[([^\]]{0,40})\]|\*{1,5}([^*]{0,20})\*{1,5}|\{([^}]{0,20})\}|【([^】]{0,20})】)",
        )
        .expect("static regex")
    });
    let mut s = subject.trim();
    let mut tags = Vec::new();
    while let Some(c) = re.captures(s) {
        let Some(m) = c.get(0).filter(|m| m.end() > 0) else {
            break;
        };
        if let Some(inner) = c.iter().skip(1).flatten().next() {
            tags.push(inner.as_str().trim().to_lowercase().replace('：', ":"));
        }
        s = s.get(m.end()..).unwrap_or("").trim_start();
    }
    (s.to_lowercase().replace('：', ":"), tags)
}

pub(super) fn has_phrase(text: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| text.contains(p))
}

fn starts_with_any(text: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| text.starts_with(p))
}

/// The subject starts with `phrase` followed by nothing, a colon, a dash or a parenthesis.
fn starts_with_delimited(text: &str, phrase: &str) -> bool {
    let Some(rest) = text.strip_prefix(phrase) else {
        return false;
    };
    let mut rest = rest.trim_start_matches([' ', '\t', '\u{3000}']);
    // "Undeliverable mail: …", "Nondeliverable message", "Delivery failure notice".
    for noun in ["mail", "message", "notification", "notice", "report"] {
        if let Some(r) = rest.strip_prefix(noun) {
            rest = r.trim_start_matches([' ', '\t']);
            break;
        }
    }
    // CJK phrases need no delimiter: the language writes none.
    !phrase.is_ascii()
        || rest.is_empty()
        || rest.starts_with([':', '-', '–', '—', '(', '[', '!', '_', '/', '|'])
        || phrase.ends_with(':')
}

/// One literal alternation per (lower-case) phrase list: a single pass over the text instead
/// of one substring search per phrase.
fn phrase_regex(phrases: &[&str]) -> Regex {
    let alt: Vec<String> = phrases.iter().map(|p| regex::escape(p)).collect();
    Regex::new(&alt.join("|")).expect("static regex")
}

fn bounce_text_strong() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| phrase_regex(BOUNCE_TEXT_STRONG))
}

fn bounce_text_weak() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| phrase_regex(BOUNCE_TEXT_WEAK))
}

fn smtp_status() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?:^|[^0-9.])(?:[45][0-9]{2}[ -]#?)?[45]\.[0-9]{1,3}\.[0-9]{1,3}(?:[^0-9.]|$)")
            .expect("static regex")
    })
}

pub(super) fn subject_and_body_markers(s: &Signals<'_>) -> Option<String> {
    let (subject, tags) = split_tags(s.subject);
    if starts_with_any(&subject, READ_RECEIPT_PREFIXES) {
        return Some("read_receipt_subject".into());
    }
    // "[Auto-Reply] …", "【自动回复】…", "[Undeliverable] …"
    for tag in &tags {
        if AUTO_REPLY_WORDS
            .iter()
            .any(|w| tag.starts_with(w.trim_end_matches(':')))
        {
            return Some("auto_reply_subject".into());
        }
        if BOUNCE_WORDS.iter().any(|w| tag.starts_with(w)) {
            return Some("bounce_subject".into());
        }
    }
    if AUTO_REPLY_WORDS.iter().any(|w| {
        starts_with_delimited(&subject, w)
            || subject.strip_prefix(w).is_some_and(|rest| {
                // "Out of Office AutoReply: …"
                let rest = rest.trim_start();
                AUTO_REPLY_WORDS.iter().any(|w2| rest.starts_with(w2))
            })
    }) {
        return Some("auto_reply_subject".into());
    }
    // A complaint report that is not ARF: "Complaint about message from 192.0.2.1" with the
    // offending message attached.
    if subject.starts_with("complaint about message from")
        && s.part_types
            .iter()
            .any(|t| t == "message/rfc822" || t == "message/global")
    {
        return Some("complaint_report".into());
    }
    // A person forwarding a bounce pastes its text: a forward prefix switches the subject and
    // body heuristics off. A reply prefix switches off the subject checks only: bounces from
    // `post_master@…` come as `Re: <your subject>`, and the body still tells them.
    if has_forward_prefix(s.subject) {
        return None;
    }
    let reply = has_reply_or_forward_prefix(s.subject);
    if !reply
        && (starts_with_any(&subject, BOUNCE_SUBJECTS_WHOLE)
            || BOUNCE_WORDS
                .iter()
                .any(|w| starts_with_delimited(&subject, w))
            || has_phrase(&subject, BOUNCE_WORDS_CJK))
    {
        return Some("bounce_subject".into());
    }
    // ASCII lower-casing keeps byte offsets and lets the phrase lists run as plain literal
    // alternations (SIMD prefilter) instead of case-insensitive automata.
    let fresh = s.fresh_text.to_ascii_lowercase();
    if let Some(m) = bounce_text_strong().find(&fresh) {
        return Some(format!(
            "bounce_text:{}",
            m.as_str().trim_matches([' ', '-'])
        ));
    }
    let mut evidence = Vec::new();
    if !reply && (has_phrase(&subject, BOUNCE_WORDS) || has_phrase(&subject, BOUNCE_WORDS_WEAK)) {
        evidence.push("subject");
    }
    if s.from
        .and_then(|f| f.name.as_deref())
        .is_some_and(|n| has_phrase(&n.to_lowercase(), DAEMON_NAMES))
    {
        evidence.push("sender_name");
    }
    if s.part_types
        .iter()
        .any(|t| t == "message/rfc822" || t == "message/global")
    {
        evidence.push("attached_message");
    }
    // The text checks are the expensive ones: the SMTP status scan only runs when it can
    // still decide (exactly one piece of evidence so far).
    if bounce_text_weak().is_match(&fresh) {
        evidence.push("text");
    }
    if evidence.len() == 1 && smtp_status().is_match(&fresh) {
        evidence.push("smtp_status");
    }
    if evidence.len() >= 2 {
        return Some(format!("bounce_markers:{}", evidence.join("+")));
    }
    None
}
