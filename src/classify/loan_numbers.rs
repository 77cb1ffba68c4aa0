//! Loan-number extraction: `D` + digits (pattern from config), normalised, de-duplicated.
//!
//! Boundaries are checked by hand: the `regex` crate's `\b` is Unicode-aware, so
//! `编号D1234567请查收` would not match `\bD\d+\b` (CJK letters are word characters). Here a
//! number counts unless the character right before or after it is an ASCII letter, digit or
//! underscore (`ID12345678`, `D1234567X`, `D12345678901` do not count).

use std::borrow::Cow;

use unicode_normalization::char::decompose_compatible;

use crate::domain::LoanNumber;

#[derive(Debug, Clone)]
pub struct LoanExtractor {
    re: regex::Regex,
    /// The same pattern anchored at both ends, for [`parse_one`](Self::parse_one).
    whole: regex::Regex,
    max: usize,
}

/// Numbers found in a text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extraction {
    pub numbers: Vec<LoanNumber>,
    /// More distinct numbers were present than the extractor's `max`.
    pub truncated: bool,
}

impl LoanExtractor {
    /// `pattern` matches one number in upper-cased, compatibility-folded text; do not put
    /// `\b` in it (see the module docs).
    pub fn new(pattern: &str, max: usize) -> Result<Self, regex::Error> {
        Ok(LoanExtractor {
            re: regex::Regex::new(pattern)?,
            whole: regex::Regex::new(&format!("^(?:{pattern})$"))?,
            max,
        })
    }

    /// The configured pattern, as given to [`new`](Self::new).
    pub fn pattern(&self) -> &str {
        self.re.as_str()
    }

    /// One number typed by staff or found in a CSV cell: trimmed and folded as mail text is
    /// (see [`fold_for_scan`]), then the whole of it must match the pattern.
    pub fn parse_one(&self, s: &str) -> Option<LoanNumber> {
        let folded = fold_for_scan(s.trim());
        let n = folded.as_ref();
        if n.is_empty() || !self.whole.is_match(n) {
            return None;
        }
        Some(LoanNumber::from_normalized(n.to_string()))
    }

    /// The most numbers taken from one mail.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Numbers in order of first appearance, de-duplicated, at most `max`.
    pub fn extract(&self, text: &str) -> Extraction {
        let mut ex = Extraction::default();
        self.extract_into(text, &mut ex);
        ex
    }

    /// Like [`extract`](Self::extract) but appends to `ex` (numbers already there are kept and
    /// not repeated), so several texts can be searched as one.
    pub fn extract_into(&self, text: &str, ex: &mut Extraction) {
        if ex.truncated {
            return;
        }
        let folded = fold_for_scan(text);
        let hay = folded.as_ref();
        let mut start = 0;
        while let Some(m) = self.re.find_at(hay, start) {
            if m.as_str().is_empty() {
                // A pattern that matches the empty string would loop forever.
                start = next_char_boundary(hay, m.end() + 1);
                if start >= hay.len() {
                    break;
                }
                continue;
            }
            let before = hay.get(..m.start()).and_then(|s| s.chars().next_back());
            let after = hay.get(m.end()..).and_then(|s| s.chars().next());
            if is_glue(before) || is_glue(after) {
                // Retry one character later: with a custom pattern a valid number may start
                // inside the rejected match.
                start = next_char_boundary(hay, m.start() + 1);
                continue;
            }
            start = m.end();
            let n = LoanNumber::from_normalized(m.as_str().to_string());
            if ex.numbers.contains(&n) {
                continue;
            }
            if ex.numbers.len() >= self.max {
                ex.truncated = true;
                return;
            }
            ex.numbers.push(n);
        }
    }
}

fn is_glue(c: Option<char>) -> bool {
    matches!(c, Some(c) if c.is_ascii_alphanumeric() || c == '_')
}

fn next_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i.min(s.len())
}

/// Text prepared for scanning: compatibility-folded (`Ｄ１２３` → `D123`) and ASCII upper-cased.
///
/// Pure-ASCII text (most mail) skips normalisation entirely. Otherwise the common scripts that
/// NFKC leaves alone (CJK ideographs, kana, Hangul) are copied as they are and only the rest
/// goes through compatibility decomposition — a full NFKC pass over every CJK mail would
/// dominate the classification time. For ASCII-only patterns this finds exactly what NFKC
/// would: only the ASCII letters and digits produced matter.
pub fn fold_for_scan(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        if text.bytes().any(|b| b.is_ascii_lowercase()) {
            return Cow::Owned(text.to_ascii_uppercase());
        }
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(&lead) = bytes.get(i) {
        if lead < 0x80 {
            out.push(char::from(lead.to_ascii_uppercase()));
            i += 1;
            continue;
        }
        if (0xE4..=0xE9).contains(&lead) {
            // U+4000..U+9FFF (CJK ideographs and neighbours): NFKC-stable, copied as is.
            if let Some(s) = text.get(i..i + 3) {
                out.push_str(s);
                i += 3;
                continue;
            }
        }
        let Some(c) = text.get(i..).and_then(|s| s.chars().next()) else {
            break;
        };
        i += c.len_utf8();
        let u = c as u32;
        if super::text::is_invisible(c) {
            // Zero-width spaces and soft hyphens pasted into a number do not split it.
            continue;
        }
        if (0xFF01..=0xFF5E).contains(&u) {
            // Full-width ASCII: the bulk of what matters, mapped directly.
            let a = char::from_u32(u - 0xFEE0).unwrap_or(c);
            out.push(a.to_ascii_uppercase());
        } else if (0x4E00..=0x9FFF).contains(&u)
            || (0x3400..=0x4DBF).contains(&u)
            || (0x3041..=0x3096).contains(&u)
            || (0x30A1..=0x30FA).contains(&u)
            || (0xAC00..=0xD7A3).contains(&u)
            || (0x3001..=0x3035).contains(&u)
        {
            out.push(c);
        } else {
            decompose_compatible(c, |d| out.push(d.to_ascii_uppercase()));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(max: usize) -> LoanExtractor {
        LoanExtractor::new(r"D[0-9]{6,10}", max).unwrap()
    }

    fn nums(text: &str) -> Vec<String> {
        ex(50)
            .extract(text)
            .numbers
            .iter()
            .map(|n| n.as_str().to_string())
            .collect()
    }

    #[test]
    fn boundaries_and_normalisation() {
        for (text, want) in [
            ("loan D1234567 please", vec!["D1234567"]),
            ("编号D1234567请查收", vec!["D1234567"]),
            ("ＤＤ１２３４５６７", vec![]),
            (
                "Ｄ１２３４５６７、d7654321，D1234567",
                vec!["D1234567", "D7654321"],
            ),
            (
                "ID12345678 AD1234567 DX80 D12345 D12345678901 D1234567X _D1234567",
                vec![],
            ),
            (
                "D123456 D1234567890 (D2222222) D3333333. D4444444-1",
                vec!["D123456", "D1234567890", "D2222222", "D3333333", "D4444444"],
            ),
            ("D1234567_", vec![]),
            (
                "x\u{ff24}\u{ff11}\u{ff12}\u{ff13}\u{ff14}\u{ff15}\u{ff16}y",
                vec![],
            ),
            ("番号：Ｄ１２３４５６７です", vec!["D1234567"]),
            ("𝐃1234567 circled ①", vec!["D1234567"]),
            ("D1234567\u{0301}", vec!["D1234567"]),
            (
                "D3026\u{200b}1003 D30\u{ad}261004",
                vec!["D30261003", "D30261004"],
            ),
            ("", vec![]),
        ] {
            assert_eq!(nums(text), want, "{text}");
        }
    }

    #[test]
    fn order_dedup_and_truncation() {
        let e = ex(2);
        let r = e.extract("D1111111 D2222222 D1111111");
        assert_eq!(r.numbers.len(), 2);
        assert!(!r.truncated);
        let r = e.extract("D1111111 D2222222 D1111111 D3333333");
        assert_eq!(
            r.numbers.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            ["D1111111", "D2222222"]
        );
        assert!(r.truncated);
    }

    #[test]
    fn extract_into_accumulates() {
        let e = ex(5);
        let mut acc = Extraction::default();
        e.extract_into("D1111111", &mut acc);
        e.extract_into("D2222222 D1111111", &mut acc);
        assert_eq!(acc.numbers.len(), 2);
    }

    #[test]
    fn parse_one_folds_and_needs_a_whole_match() {
        let e = ex(50);
        for (input, want) in [
            ("D1234567", Some("D1234567")),
            ("d1234567", Some("D1234567")),
            ("Ｄ１２３４５６７", Some("D1234567")),
            (" D1234567 ", Some("D1234567")),
            ("D3026\u{200b}1003", Some("D30261003")),
            ("X1234567", None),
            ("D", None),
            ("D123", None),
            ("D12345678901", None),
            ("D1234567X", None),
            ("loan D1234567", None),
            ("", None),
        ] {
            assert_eq!(
                e.parse_one(input).as_ref().map(LoanNumber::as_str),
                want,
                "{input}"
            );
        }
        // An alternation is anchored as a whole, not just its first branch.
        let e = LoanExtractor::new(r"D[0-9]{7}|L[0-9]{8}", 50).unwrap();
        assert!(e.parse_one("l12345678").is_some());
        assert!(e.parse_one("L12345678X").is_none());
        let e = LoanExtractor::new(r"x*", 50).unwrap();
        assert!(e.parse_one("").is_none());
    }

    /// The assertions of the former `LoanNumber::parse` (`D` + 1 to 20 digits), now a pattern.
    #[test]
    fn parse_one_with_the_former_built_in_rule() {
        let e = LoanExtractor::new(r"D[0-9]{1,20}", 50).unwrap();
        for (input, want) in [
            ("D1234567", Some("D1234567")),
            ("d1234567", Some("D1234567")),
            ("Ｄ１２３４５６７", Some("D1234567")),
            (" D123 ", Some("D123")),
            ("X1234567", None),
            ("D", None),
            ("D12a", None),
        ] {
            assert_eq!(
                e.parse_one(input).as_ref().map(LoanNumber::as_str),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn custom_pattern_and_degenerate_patterns() {
        let e = LoanExtractor::new(r"[A-Z]?[0-9]{3}", 10).unwrap();
        // "X1234" is rejected, then "1234"… is glued too; "A123" alone is fine.
        let got: Vec<_> = e.extract("X1234 A123 b456").numbers;
        assert_eq!(
            got.iter().map(|n| n.as_str()).collect::<Vec<_>>(),
            ["A123", "B456"]
        );
        let e = LoanExtractor::new(r"x*", 10).unwrap();
        assert!(e.extract("ab中c").numbers.is_empty());
    }
}
