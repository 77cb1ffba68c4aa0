//! Subject rules: is this a tracking request, in which language; reply subjects.
use std::sync::OnceLock;

use regex::Regex;

use super::text::fold_for_match;
use crate::domain::Language;

/// Matches tracking-request aliases inside a subject.
///
/// Both sides are folded (NFKC, lower case, all white space removed), so prefixes
/// (`Re:`, `回复：`, `AW:` …), surrounding words, full-width or doubled spaces and header
/// folding do not matter: the alias only has to occur somewhere in the subject.
#[derive(Debug, Clone)]
pub struct SubjectMatcher {
    /// (language, folded alias), empty aliases dropped.
    aliases: Vec<(Language, String)>,
}

impl SubjectMatcher {
    pub fn new(aliases: &[(Language, String)]) -> Self {
        SubjectMatcher {
            aliases: aliases
                .iter()
                .map(|(l, a)| (*l, fold_for_match(a)))
                .filter(|(_, a)| !a.is_empty())
                .collect(),
        }
    }

    /// The language of the alias the subject contains, if any. When several aliases occur,
    /// the one appearing first wins (then the longer one).
    pub fn matches(&self, subject: &str) -> Option<Language> {
        if subject.trim().is_empty() {
            return None;
        }
        let folded = fold_for_match(subject);
        self.aliases
            .iter()
            .filter_map(|(l, a)| folded.find(a.as_str()).map(|pos| (pos, a.len(), *l)))
            .min_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)))
            .map(|(_, _, l)| l)
    }
}

/// Reply prefixes in the languages our partners write (`Re[2]:`, `RE :`, `回复：`, `AW:` …).
fn reply_prefix() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)^[\s\u{3000}]*(?:re|aw|antw|antwort|sv|vs|odp|rif|réf|ref|r|回复|回覆|答复|答覆|返信|返覆|отв|ynt|ατ)[\s\u{3000}]*(?:\[\d+\]|\(\d+\)|\^\d+)?[\s\u{3000}]*[:：][\s\u{3000}]*",
        )
        .expect("static regex")
    })
}

/// Forward prefixes (`Fwd:`, `FW:`, `WG:`, `转发：`, `転送:` …).
fn forward_prefix() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)^[\s\u{3000}]*(?:fwd?|wg|tr|enc|rv|i|fs|vb|doorst|转发|轉寄|转寄|轉發|転送|pd)[\s\u{3000}]*(?:\[\d+\]|\(\d+\))?[\s\u{3000}]*[:：][\s\u{3000}]*",
        )
        .expect("static regex")
    })
}

/// The subject without its leading reply prefixes (repeated, any colon form).
pub fn strip_reply_prefixes(subject: &str) -> &str {
    let mut s = subject;
    while let Some(m) = reply_prefix().find(s) {
        if m.end() == 0 {
            break;
        }
        s = s.get(m.end()..).unwrap_or("");
    }
    s.trim_start_matches(|c: char| c.is_whitespace())
}

/// Does the subject start with a reply or forward prefix (a person answering or passing
/// something on, as opposed to a machine-generated notice)?
pub fn has_reply_or_forward_prefix(subject: &str) -> bool {
    reply_prefix().is_match(subject) || forward_prefix().is_match(subject)
}

/// Does the subject start with a forward prefix?
pub fn has_forward_prefix(subject: &str) -> bool {
    forward_prefix().is_match(subject)
}

/// `Re: <original>` without doubled reply prefixes; forward prefixes stay (`Re: Fwd: X`).
/// Line breaks and control characters are flattened so the result is safe as a header.
pub fn reply_subject(original: &str) -> String {
    let flat: String = original
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let rest = strip_reply_prefixes(&flat);
    let rest = rest
        .split(|c: char| c.is_whitespace() && c != '\u{3000}')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if rest.is_empty() {
        "Re:".to_string()
    } else {
        format!("Re: {rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher() -> SubjectMatcher {
        SubjectMatcher::new(&crate::config::ClassifyConfig::default().aliases())
    }

    #[test]
    fn aliases_match_with_prefixes_spaces_and_case() {
        let m = matcher();
        for (subject, want) in [
            ("试用终端追踪请求", Some(Language::Zh)),
            ("回复：试用终端追踪请求", Some(Language::Zh)),
            (
                "Re: 回复: 答复：转发: 试用终端追踪请求（王喆）",
                Some(Language::Zh),
            ),
            (
                "\u{3000}试用终端追踪请求\u{3000}\u{3000}",
                Some(Language::Zh),
            ),
            ("试用 终端\r\n 追踪请求", Some(Language::Zh)),
            (
                "RE:   Trial Endpoint Tracking Request  ",
                Some(Language::En),
            ),
            (
                "Fwd: trial endpoint tracking request - Nordwind",
                Some(Language::En),
            ),
            (
                "ＴＲＩＡＬ　ＥＮＤＰＯＩＮＴ　ＴＲＡＣＫＩＮＧ　ＲＥＱＵＥＳＴ",
                Some(Language::En),
            ),
            ("TrialEndpointTrackingRequest", Some(Language::En)),
            (
                "返信: トライアル用エンドポイントのトラッキング リクエスト",
                Some(Language::Ja),
            ),
            (
                "ﾄﾗｲｱﾙ用エンドポイントのトラッキングリクエスト",
                Some(Language::Ja),
            ),
            (
                "AW: WG: Anfrage zur Nachverfolgung der Endpunkte der Testversion",
                Some(Language::De),
            ),
            (
                "anfrage zur nachverfolgung der endpunkte  der testversion",
                Some(Language::De),
            ),
            ("Trial Endpoint Request", None),
            ("RMA 标签丢失", None),
            ("", None),
            ("   ", None),
            ("试用终端追踪", None),
        ] {
            assert_eq!(m.matches(subject), want, "{subject}");
        }
    }

    #[test]
    fn first_alias_in_subject_wins() {
        let m = matcher();
        assert_eq!(
            m.matches("Trial Endpoint Tracking Request / 试用终端追踪请求"),
            Some(Language::En)
        );
        assert_eq!(
            m.matches("试用终端追踪请求 / Trial Endpoint Tracking Request"),
            Some(Language::Zh)
        );
    }

    #[test]
    fn reply_subjects() {
        for (original, want) in [
            ("试用终端追踪请求", "Re: 试用终端追踪请求"),
            ("Re: X", "Re: X"),
            ("RE: Re: re:X", "Re: X"),
            ("回复：试用终端追踪请求", "Re: 试用终端追踪请求"),
            ("回复: 答复： Re[2]: X", "Re: X"),
            ("AW: Antw: SV: Réf. : X", "Re: Réf. : X"),
            ("Réf : X", "Re: X"),
            ("返信: トライアル", "Re: トライアル"),
            ("Re(3): X", "Re: X"),
            ("Fwd: X", "Re: Fwd: X"),
            ("Re: Fwd: X", "Re: Fwd: X"),
            ("转发: X", "Re: 转发: X"),
            ("Regarding X", "Re: Regarding X"),
            ("Rechnung: X", "Re: Rechnung: X"),
            ("", "Re:"),
            ("Re:", "Re:"),
            (
                "Re: X\r\nBcc: evil@example.org",
                "Re: X Bcc: evil@example.org",
            ),
        ] {
            assert_eq!(reply_subject(original), want, "{original}");
        }
    }

    #[test]
    fn prefix_predicates() {
        assert!(has_reply_or_forward_prefix("Fwd: Undeliverable: X"));
        assert!(has_reply_or_forward_prefix("回复：X"));
        assert!(has_forward_prefix("FW: X"));
        assert!(has_forward_prefix("转发：X"));
        assert!(!has_forward_prefix("Re: X"));
        assert!(!has_reply_or_forward_prefix("Undeliverable: X"));
        assert!(!has_reply_or_forward_prefix("Information"));
    }
}
