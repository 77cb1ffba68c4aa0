//! The checks behind the fuzz targets (`fuzz/`), shared with the replay of past findings in
//! `tests/fuzz_regressions.rs`. Each function takes arbitrary bytes and panics when an
//! invariant breaks; "never panics" is the first invariant of all of them.

use std::sync::OnceLock;

use crate::classify::loan_numbers::LoanExtractor;
use crate::classify::{self, quotes, text, Action, Kind, Lookup, Rules};
use crate::config::Config;
use crate::domain::{Language, Partner, Shipment};
use crate::import;

/// The rules with default limits, built once.
pub fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let cfg = Config::from_toml_str(
            "[database]\nurl = \"sqlite://fuzz.db\"\n\
             [security]\ntrusted_authserv_ids = [\"mx.helpdesk.example\"]\n\
             [mail]\nfrom = \"trial-helpdesk@helpdesk.example.com\"\n",
            std::path::Path::new("fuzz.toml"),
            ".".into(),
            &[],
        )
        .expect("fuzz config");
        Rules::from_config(&cfg).expect("rules")
    })
}

fn partner() -> Partner {
    Partner {
        partner_id: "P01".into(),
        name: "Huadong".into(),
        domains: vec!["huadong.example.cn".into(), "hd-tech.example.com".into()],
        admin_emails: vec!["it@huadong.example.cn".into()],
        language: Language::Zh,
        notify_shipment_updates: false,
    }
}

/// Raw bytes → `inspect` → `decide` with a fixed partner (whatever the From domain: `decide`
/// must refuse one that does not own it) and loans alternating between that partner and
/// another. Returns the decision for callers with expectations of their own.
pub fn inbound(raw: &[u8]) -> (classify::Inspection, classify::Decision) {
    let rules = rules();
    let ins = classify::inspect(rules, raw);
    assert!(
        !ins.notes.iter().any(|n| n.starts_with("internal error")),
        "inspect caught a panic: {:?}",
        ins.notes
    );
    assert!(ins.loan_numbers.len() <= rules.loans.max());
    assert!(
        ins.references.len() <= 200,
        "{} references",
        ins.references.len()
    );
    let shipments = ins
        .loan_numbers
        .iter()
        .enumerate()
        .map(|(i, n)| Shipment::minimal(n.clone(), if i % 2 == 0 { "P01" } else { "P02" }))
        .collect();
    let lookup = Lookup {
        partner: Some(partner()),
        shipments,
        ..Lookup::default()
    };
    let d = classify::decide(&ins, &lookup);
    match d.action {
        Action::Reply => {
            assert_eq!(d.kind, Kind::TrackingRequest);
            let to = d
                .reply_to
                .as_ref()
                .map(|m| m.address.as_str())
                .unwrap_or("");
            let domain = classify::address_domain(to).unwrap_or("");
            assert!(
                partner().owns_domain(domain),
                "reply to {to:?} outside the partner"
            );
        }
        Action::Review => assert!(!d.review.is_empty(), "review without a reason"),
        Action::Ignore => assert_eq!(d.kind, Kind::Automated),
    }
    if ins.automated.is_none() {
        assert_eq!(d.loans.len(), ins.loan_numbers.len());
        assert!(
            d.loans
                .iter()
                .all(|l| l.shipment.as_ref().is_none_or(|s| s.partner_id == "P01")),
            "another partner's loan shown"
        );
    }
    serde_json::to_string(&d).expect("decision serialises");
    (ins, d)
}

/// Everything the extractor returns is a distinct number the pattern matches whole.
pub fn loan_numbers(data: &[u8]) {
    static EX: OnceLock<(LoanExtractor, regex::Regex)> = OnceLock::new();
    let (ex, whole) = EX.get_or_init(|| {
        (
            LoanExtractor::new(r"D[0-9]{6,10}", 50).expect("pattern"),
            regex::Regex::new(r"^D[0-9]{6,10}$").expect("pattern"),
        )
    });
    let found = ex.extract(&String::from_utf8_lossy(data));
    assert!(found.numbers.len() <= 50);
    let mut seen = std::collections::HashSet::new();
    for n in &found.numbers {
        assert!(whole.is_match(n.as_str()), "{n}");
        assert!(seen.insert(n.clone()), "{n} twice");
    }
}

/// The fresh part is made of input lines, in order: quote stripping only drops.
pub fn quotes(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let fresh = quotes::fresh_part(&text);
    // `lines()` keeps a lone trailing `\r`; the fresh part ends each line with `\n`.
    let mut input = text.lines().map(|l| l.trim_end_matches('\r'));
    for line in fresh.lines().map(|l| l.trim_end_matches('\r')) {
        assert!(
            input.any(|l| l == line),
            "fresh line {line:?} is not an input line in order"
        );
    }
}

/// Text stays proportional to the HTML (nesting must not multiply it).
pub fn html_to_text(data: &[u8]) {
    let html = String::from_utf8_lossy(data);
    let out = text::html_to_text(&html);
    assert!(
        out.len() <= 64 * html.len() + 64,
        "{} bytes of text from {} bytes of HTML",
        out.len(),
        html.len()
    );
}

/// First byte picks the importer (partners, shipments, trials), the rest is the file. Every
/// error names a line of the file; progress never passes the total.
pub fn csv_import(data: &[u8]) {
    let loans = &rules().loans;
    let Some((&which, csv)) = data.split_first() else {
        return;
    };
    let mut progress = |done: u64, total: u64| assert!(done <= total, "{done} > {total}");
    let errors = match which % 3 {
        0 => import::parse_partners(csv, &mut progress).err(),
        1 => import::parse_shipments(csv, loans, &mut progress).err(),
        _ => import::parse_trials(csv, &mut progress).err(),
    };
    let lines = csv.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
    for e in errors.unwrap_or_default() {
        assert!(
            e.line >= 1 && e.line <= lines,
            "line {} of {lines}: {e}",
            e.line
        );
        assert!(
            e.message.len() <= 20_000,
            "error message of {} bytes",
            e.message.len()
        );
    }
}

/// Raw mail → decision → the composed automatic reply: composing never fails on a header value
/// (the sanitiser in `outbound::headers` sees to that), and the bytes are one mail to exactly
/// the decided address, no line over RFC 5322's 998 octets, no `Bcc`/`Cc` of the sender's
/// making.
pub fn reply(raw: &[u8]) {
    use crate::pipeline::reply::{compose_tracking_reply, TrackingReplies};
    static PARTS: OnceLock<(TrackingReplies, crate::outbound::Composer)> = OnceLock::new();
    let (replies, composer) = PARTS.get_or_init(|| {
        let cfg = Config::from_toml_str(
            "[database]\nurl = \"sqlite://fuzz.db\"\n[mail]\nfrom = \"trial-helpdesk@helpdesk.example.com\"\n",
            std::path::Path::new("fuzz.toml"),
            ".".into(),
            &[],
        )
        .expect("fuzz config");
        let templates = crate::outbound::Templates::load(std::path::Path::new(
            "/nonexistent/trialdesk-fuzz-templates",
        ))
        .expect("built-in templates");
        (
            TrackingReplies::new(&cfg, std::sync::Arc::new(templates)),
            crate::outbound::Composer::new("Trial Helpdesk", "trial-helpdesk@helpdesk.example.com", "helpdesk.example.com")
                .expect("composer"),
        )
    });
    let (ins, d) = inbound(raw);
    // Compose whatever the decision (a staff answer may go to any sender).
    let Some(to) = d.reply_to.clone().or_else(|| ins.from.clone()) else {
        return;
    };
    let composed = compose_tracking_reply(
        replies,
        composer,
        &ins,
        &d,
        &partner(),
        &to,
        jiff::Timestamp::UNIX_EPOCH,
    );
    let mail = match composed {
        Ok(mail) => mail,
        // Only an address lettre refuses may fail; never a display name or subject.
        Err(e) => {
            assert!(e.contains("cannot be used"), "{e}");
            return;
        }
    };
    for line in mail.body.split(|&b| b == b'\n') {
        assert!(line.len() <= 998, "line of {} octets", line.len());
    }
    let head_end = mail
        .body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header section");
    let head = String::from_utf8_lossy(mail.body.get(..head_end).unwrap_or_default());
    let names: Vec<String> = head
        .split("\r\n")
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_ascii_lowercase()))
        .collect();
    assert_eq!(names.iter().filter(|n| *n == "to").count(), 1, "{head}");
    assert!(!names.iter().any(|n| n == "bcc" || n == "cc"), "{head}");
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.body)
        .expect("our reply parses");
    let got: Vec<&str> = parsed
        .to()
        .map(|a| a.iter().filter_map(|m| m.address()).collect())
        .unwrap_or_default();
    assert_eq!(got.len(), 1, "{head}");
    assert!(
        got[0].eq_ignore_ascii_case(&to.address),
        "{got:?} vs {}",
        to.address
    );
    assert!(
        parsed.subject().unwrap_or("").chars().count()
            <= crate::outbound::headers::MAX_SUBJECT_CHARS
    );
}

/// The attribute values of serialised HTML. Text has `<` escaped and ammonia writes every
/// attribute double-quoted, so a value is a `="…"` inside a tag: the same characters in text
/// (a fuzzer's `="javascript:` in a table cell) are not one.
fn attribute_values(html: &str) -> impl Iterator<Item = &str> {
    let mut values = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        loop {
            let quote = rest.find('"');
            let close = rest.find('>');
            match (quote, close) {
                (Some(q), c) if c.is_none_or(|c| q < c) => {
                    let after = &rest[q + 1..];
                    let end = after.find('"').unwrap_or(after.len());
                    values.push(&after[..end]);
                    rest = after.get(end + 1..).unwrap_or("");
                }
                (_, Some(c)) => {
                    rest = &rest[c + 1..];
                    break;
                }
                _ => {
                    rest = "";
                    break;
                }
            }
        }
    }
    values.into_iter()
}

/// Stored mail → what every review page shows of it (message and item pages, attachment and
/// inline-image downloads): never a panic, output bounded by the display limits, sanitised
/// HTML without script, every listed attachment downloadable.
pub fn review_pages(raw: &[u8]) {
    use crate::review::mail_view::{self, SanitizeOptions, ViewLimits};
    let limits = ViewLimits::default();
    let opts = SanitizeOptions {
        remote_images: false,
        inline_base: "/messages/1/inline/".into(),
    };
    if let Some(v) = mail_view::view(raw, &opts, &limits) {
        assert!(v.headers.len() <= limits.max_header_fields);
        for h in v.summary.iter().chain(&v.headers) {
            assert!(h.value.chars().count() <= limits.max_header_value_chars);
            assert!(!h.value.contains(['\r', '\n']), "{:?}", h.value);
        }
        if let Some(html) = &v.html {
            let lower = html.to_ascii_lowercase();
            assert!(!lower.contains("<script"), "script survived");
            assert!(
                !attribute_values(html).any(|v| v
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("javascript:")),
                "a javascript: URL survived"
            );
        }
        if v.limit_note.is_some() {
            assert!(v.html.is_none() && v.attachments.is_empty());
        }
        for a in v.attachments.iter().take(20) {
            assert!(
                mail_view::attachment(raw, a.index, &limits).is_some(),
                "listed attachment {} cannot be downloaded",
                a.index
            );
        }
        serde_json::to_string(&v).expect("view serialises");
    }
    let _ = mail_view::inline_image(raw, "x@y", &limits);
    let mut text = String::from_utf8_lossy(raw).into_owned();
    mail_view::cap_display_text(&mut text);
    assert!(text.len() <= mail_view::MAX_DISPLAY_TEXT_BYTES + 200);
}

#[cfg(test)]
mod tests {
    use super::attribute_values;

    #[test]
    fn attribute_values_are_read_inside_tags_only() {
        let html = r#"<p title="a>b" class="x">="javascript:no</p><a href="javascript:yes">t</a>"#;
        let values: Vec<&str> = attribute_values(html).collect();
        assert_eq!(values, ["a>b", "x", "javascript:yes"]);
    }
}
