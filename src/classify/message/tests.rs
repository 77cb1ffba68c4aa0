//! Unit tests of `classify::message`: number sources, people and machine fixtures, details
//! of an inspection, mangled input. Moved out of `message.rs` to keep that file one concept;
//! the size and structure limits are in `tests/limits.rs`.

use super::super::mime::{MimeShape, MAX_REFERENCES};
use super::*;
use crate::classify::{decide, Action, Decision, Kind, Lookup, ReviewReason};
use crate::config::Config;
use crate::domain::{Language, LoanNumber, Partner, Shipment};

mod limits;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mail");

fn rules_with(max_message_bytes: usize) -> Rules {
    let cfg = Config::from_toml_str(
            "[database]\nurl = \"sqlite://t.db\"\n[security]\ntrusted_authserv_ids = [\"mx.helpdesk.example\"]\n\
             [mail]\nfrom = \"trial-helpdesk@helpdesk.example.com\"\nown_addresses = [\"trial-helpdesk-alias@helpdesk.example.com\"]\n",
            std::path::Path::new("t.toml"),
            ".".into(),
            &[],
        )
        .expect("test config");
    let mut rules = Rules::from_config(&cfg).expect("rules");
    rules.max_message_bytes = max_message_bytes;
    rules
}

fn rules() -> Rules {
    rules_with(25 * 1024 * 1024)
}

fn partners() -> Vec<Partner> {
    let p = |id: &str, domains: &[&str], language| Partner {
        partner_id: id.into(),
        name: id.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        admin_emails: vec![],
        language,
        notify_shipment_updates: false,
    };
    vec![
        p(
            "P01",
            &["huadong.example.cn", "hd-tech.example.com"],
            Language::Zh,
        ),
        p("P02", &["nordwind.example.de"], Language::En),
        p("P03", &["sakura-net.example.jp"], Language::En),
        p("P04", &["formosa.example.tw"], Language::En),
    ]
}

/// Every number is a known loan of the partner whose fixtures use it, except D20261011
/// (asked for by P04 but owned by P01).
fn shipment_owner(n: &str) -> Option<&'static str> {
    match n.get(..2) {
        Some("D1") | Some("D2") => Some("P01"),
        Some("D3") => Some("P02"),
        Some("D4") => Some("P03"),
        _ => None,
    }
}

/// What the store does between `inspect` and `decide`, naively.
fn lookup_for(ins: &Inspection) -> Lookup {
    let domain = ins
        .from
        .as_ref()
        .and_then(|m| sender::address_domain(&m.address))
        .unwrap_or("");
    Lookup {
        partner: partners().into_iter().find(|p| p.owns_domain(domain)),
        shipments: ins
            .loan_numbers
            .iter()
            .filter_map(|n| {
                shipment_owner(n.as_str()).map(|owner| Shipment::minimal(n.clone(), owner))
            })
            .collect(),
        ..Lookup::default()
    }
}

const HEAD: &str = "From: Wang Wei <wangwei@huadong.example.cn>\r\n\
                        Subject: =?UTF-8?B?6K+V55So57uI56uv6L+96Liq6K+35rGC?=\r\n\
                        Message-ID: <limits@huadong.example.cn>\r\nMIME-Version: 1.0\r\n";

/// `depth` multiparts, each the only child of the one before, around a text part.
fn nested_multipart(depth: usize) -> Vec<u8> {
    let mut m = HEAD.to_string();
    for i in 1..depth {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n请查 D20261001\r\n");
    for i in (1..depth).rev() {
        m.push_str(&format!("--b{i}--\r\n"));
    }
    m.into_bytes()
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn run_raw(rules: &Rules, raw: &[u8]) -> (Inspection, Decision) {
    let ins = inspect(rules, raw);
    let d = decide(&ins, &lookup_for(&ins));
    (ins, d)
}

fn run(name: &str) -> (Inspection, Decision) {
    run_raw(&rules(), &load(name))
}

fn nums(ins: &Inspection) -> Vec<&str> {
    ins.loan_numbers.iter().map(LoanNumber::as_str).collect()
}

use Action::{Ignore, Reply, Review};
use Kind::{Automated, Other, TrackingRequest as Tracking};

#[test]
fn numbers_come_from_the_first_text_that_names_one() {
    use NumberSource::{FreshText, Quotes, Subject};
    let loans = LoanExtractor::new(
        crate::config::ClassifyConfig::default()
            .loan_number_pattern
            .as_str(),
        2,
    )
    .unwrap();
    // (name, fresh, main, nested, html alternative, subject, numbers, truncated, source)
    #[allow(clippy::type_complexity)]
    let cases: &[(&str, [&str; 5], &[&str], bool, NumberSource)] = &[
        (
            "fresh text wins",
            [
                "see D50261001",
                "see D50261001\n> D50261002",
                "D50261003",
                "D50261004",
                "D50261005",
            ],
            &["D50261001"],
            false,
            FreshText,
        ),
        (
            "quoted text when the fresh text names none",
            [
                "where is it?",
                "where is it?\n> D50261002",
                "",
                "",
                "D50261005",
            ],
            &["D50261002"],
            false,
            Quotes,
        ),
        (
            "whole body, then attached, then HTML, together",
            ["", "D50261002", "D50261003", "D50261004", ""],
            &["D50261002", "D50261003"],
            true,
            Quotes,
        ),
        (
            "attached message only",
            ["fyi", "fyi", "Subject: x\nD50261003", "", ""],
            &["D50261003"],
            false,
            Quotes,
        ),
        (
            "HTML alternative only",
            ["", "", "", "D50261004", ""],
            &["D50261004"],
            false,
            Quotes,
        ),
        (
            "subject as the last resort",
            ["where?", "where?", "", "", "Re: D50261005"],
            &["D50261005"],
            false,
            Subject,
        ),
        (
            "the subject is not read when the body names one",
            ["", "> D50261002", "", "", "D50261005"],
            &["D50261002"],
            false,
            Quotes,
        ),
        (
            "nothing anywhere",
            ["hello", "hello", "", "", "hello"],
            &[],
            false,
            Subject,
        ),
        (
            "too many in the fresh text stops there",
            ["D50261001 D50261002 D50261003", "", "", "", "D50261005"],
            &["D50261001", "D50261002"],
            true,
            FreshText,
        ),
        (
            "repeats count once",
            ["D50261001 and D50261001", "", "", "", ""],
            &["D50261001"],
            false,
            FreshText,
        ),
    ];
    for (name, [fresh, main, nested, html, subject], numbers, truncated, source) in cases {
        let texts = NumberTexts {
            fresh,
            main,
            nested,
            html_alternative: html,
            subject,
        };
        let (ex, from) = numbers_from(&loans, &texts);
        let got: Vec<&str> = ex.numbers.iter().map(LoanNumber::as_str).collect();
        assert_eq!(got, *numbers, "{name}: numbers");
        assert_eq!(ex.truncated, *truncated, "{name}: truncated");
        assert_eq!(from, *source, "{name}: source");
    }
}

#[test]
fn people_fixtures() {
    for (file, kind, action, numbers) in [
        (
            "outlook_gb2312_reply.eml",
            Tracking,
            Reply,
            &["D20261002"][..],
        ),
        (
            "foxmail_gbk_glued.eml",
            Tracking,
            Reply,
            &["D1234567", "D20261003"],
        ),
        ("gmail_utf8_reply.eml", Tracking, Reply, &["D20261001"]),
        ("apple_mail_qp.eml", Tracking, Reply, &["D30261002"]),
        (
            "html_only_table.eml",
            Tracking,
            Reply,
            &["D30261003", "D30261004", "D30261005"],
        ),
        ("gb18030_body.eml", Tracking, Reply, &["D20261010"]),
        ("big5_outlook_tw.eml", Tracking, Reply, &["D20261011"]),
        ("iso2022jp_reply.eml", Tracking, Reply, &["D40261004"]),
        ("outlook_de_latin1.eml", Tracking, Reply, &["D30261014"]),
        ("forward_as_attachment.eml", Tracking, Reply, &["D30261011"]),
        (
            "human_forward_of_bounce.eml",
            Tracking,
            Reply,
            &["D20261013"],
        ),
        (
            "forwarded_bounce_attachment.eml",
            Tracking,
            Reply,
            &["D20261014"],
        ),
        ("prose_from_line.eml", Tracking, Reply, &["D30261006"]),
        ("reply_to_outside.eml", Tracking, Reply, &["D40261001"]),
        ("subject_number_only.eml", Tracking, Reply, &["D40261003"]),
        ("split_encoded_word.eml", Tracking, Reply, &["D20261009"]),
        ("gbk_unlabelled_8bit.eml", Tracking, Reply, &["D20261016"]),
        ("long_cjk_plain.eml", Tracking, Reply, &["D20261015"]),
        ("dmarc_fail_trusted.eml", Tracking, Review, &["D30261001"]),
        (
            "malformed_missing_boundary.eml",
            Tracking,
            Reply,
            &["D30261013"],
        ),
        ("malformed_bad_base64.eml", Tracking, Reply, &["D20261018"]),
        (
            "malformed_nul_mixed_eol.eml",
            Tracking,
            Reply,
            &["D20261019"],
        ),
        (
            "malformed_header_no_colon.eml",
            Tracking,
            Reply,
            &["D40261002"],
        ),
        ("malformed_headers_only.eml", Tracking, Reply, &[]),
        (
            "malformed_nested_rfc822.eml",
            Tracking,
            Reply,
            &["D30261011"],
        ),
    ] {
        let (ins, d) = run(file);
        assert_eq!(ins.automated, None, "{file}");
        assert_eq!(
            (d.kind, d.action),
            (kind, action),
            "{file}: {:?}",
            d.reasons
        );
        assert_eq!(nums(&ins), numbers, "{file}: {:?}", ins.text);
    }
}

#[test]
fn machine_fixtures() {
    for (file, reason) in [
        ("bounce_postfix_dsn.eml", "own_mail_returned"),
        ("bounce_exim_plain.eml", "own_mail_returned"),
        ("bounce_qmail_bare.eml", "bounce_subject"),
        (
            "bounce_text_only.eml",
            "bounce_text:this is the mail system at host",
        ),
        ("bounce_exchange_ndr.eml", "auto_submitted"),
        ("bounce_gmail.eml", "own_mail_returned"),
        ("bounce_ses.eml", "sender:mailer-daemon"),
        ("ses_sns_notification.eml", "bounce_subject"),
        ("bounce_domino.eml", "bounce_subject"),
        ("bounce_coremail_zh.eml", "bounce_subject"),
        (
            "autoreply_outlook_en.eml",
            "auto_reply:x-auto-response-suppress",
        ),
        ("autoreply_zh_netease.eml", "header:x-autorespond"),
        ("autoreply_ja.eml", "header:x-autoreply"),
        ("autoreply_de_subject_only.eml", "auto_reply_subject"),
        ("read_receipt_mdn.eml", "report:disposition-notification"),
        ("read_receipt_plain.eml", "read_receipt_subject"),
        ("arf_feedback_report.eml", "report:feedback-report"),
        ("mailing_list_copy.eml", "list:list-id"),
        ("own_reply_looped.eml", "own_mail_header"),
        ("own_reply_bounced_bare.eml", "own_mail_returned"),
    ] {
        let (ins, d) = run(file);
        assert_eq!(ins.automated.as_deref(), Some(reason), "{file}");
        assert_eq!((d.kind, d.action), (Automated, Ignore), "{file}");
        assert!(d.reply_to.is_none() && d.loans.is_empty(), "{file}");
        assert_eq!(d.reasons.first(), Some(&format!("automated:{reason}")));
    }
}

/// Real bounces often lack some markers; each one alone must still do.
#[test]
fn bounces_survive_losing_header_markers() {
    let strip = [
        "return-path:",
        "auto-submitted:",
        "x-failed-recipients:",
        "x-ms-exchange-message-is-ndr:",
    ];
    for file in [
        "bounce_postfix_dsn.eml",
        "bounce_exim_plain.eml",
        "bounce_exchange_ndr.eml",
        "bounce_gmail.eml",
        "bounce_ses.eml",
    ] {
        let raw = String::from_utf8(load(file)).unwrap();
        let stripped: String = raw
            .split_inclusive('\n')
            .filter(|l| !strip.iter().any(|s| l.to_ascii_lowercase().starts_with(s)))
            .map(|l| {
                if l.starts_with("From:") {
                    "From: Postal Service <notices@relay.example.net>\r\n"
                } else {
                    l
                }
            })
            .collect();
        let (ins, _) = run_raw(&rules(), stripped.as_bytes());
        assert!(ins.automated.is_some(), "{file} without header markers");
    }
}

#[test]
fn details_of_inspection() {
    let (ins, d) = run("gmail_utf8_reply.eml");
    assert_eq!(
        ins.message_key,
        "mid:CAJ9x7Lq0Wm3uXp1Hd2k=bT5@mail.gmail.example.com"
    );
    assert_eq!(ins.references, ["reply-7781@helpdesk.example.com"]);
    assert_eq!(ins.date, Some(1_795_138_200));
    assert_eq!(ins.subject, "Re: 试用终端追踪请求");
    assert_eq!(ins.from.as_ref().unwrap().name.as_deref(), Some("王伟"));
    assert_eq!(d.language, Language::Zh);
    assert!(ins.text.contains("请查一下 D20261001"));

    let (ins, d) = run("iso2022jp_reply.eml");
    assert_eq!(
        ins.subject,
        "返信: トライアル用エンドポイントのトラッキング リクエスト"
    );
    assert_eq!(d.language, Language::Ja);
    let (_, d) = run("outlook_de_latin1.eml");
    assert_eq!(d.language, Language::De);

    let (ins, _) = run("gb18030_body.eml");
    assert!(ins.subject.contains('𠀀') && ins.text.contains('𠀀'));

    let (ins, _) = run("forward_as_attachment.eml");
    assert!(ins.findings.contains(&"numbers:from_quotes".to_string()));
    let (ins, _) = run("subject_number_only.eml");
    assert!(ins.findings.contains(&"numbers:from_subject".to_string()));

    let (ins, d) = run("malformed_encoded_words.eml");
    assert!(
        ins.message_key.starts_with("sha256:"),
        "{}",
        ins.message_key
    );
    assert_eq!(ins.message_key.len(), "sha256:".len() + 64);
    assert_eq!(ins.date, None);
    assert!(ins.notes.iter().any(|n| n.contains("Date")));
    assert!(ins.notes.iter().any(|n| n.contains("Message-ID")));
    assert_eq!(d.kind, Tracking);
    assert!(ins.notes.iter().any(|n| n.contains("unknown charset")));
}

#[test]
fn header_end_and_message_ids() {
    assert_eq!(header_end(b"a: b\r\n\r\nbody"), 8);
    assert_eq!(header_end(b"a: b\n\nbody"), 6);
    assert_eq!(header_end(b"a: b"), 4);
    assert_eq!(sane_message_id("<a@b>").as_deref(), Some("a@b"));
    assert_eq!(sane_message_id("a b@c"), None);
    assert_eq!(sane_message_id(&"x".repeat(501)), None);
    assert_eq!(sane_message_id("<>"), None);
}

#[test]
fn review_and_flag_cases() {
    let (ins, d) = run("too_many_numbers.eml");
    assert_eq!(ins.loan_numbers.len(), 50);
    assert!(ins.loan_numbers_truncated);
    assert_eq!(d.review, [ReviewReason::TooManyNumbers]);

    let (_, d) = run("dmarc_fail_trusted.eml");
    assert_eq!(d.review, [ReviewReason::DmarcFail]);
    assert!(d
        .reasons
        .contains(&"dmarc:fail:mx.helpdesk.example".to_string()));

    // P04 asks about a P01 loan: answered as not found, flagged, still a reply.
    let (_, d) = run("big5_outlook_tw.eml");
    assert_eq!(d.action, Reply);
    assert_eq!(d.review, [ReviewReason::LoanOfOtherPartner]);
    assert!(d.loans.iter().all(|l| l.shipment.is_none()));

    let (_, d) = run("reply_to_outside.eml");
    assert_eq!(d.reply_to.unwrap().address, "k.sato@sakura-net.example.jp");

    let (_, d) = run("malformed_binary_garbage.eml");
    assert_eq!((d.kind, d.action), (Other, Review));
}

/// Found by the fuzzer: a From domain with a trailing dot was the partner's (same DNS
/// name) but the reply went to the dotted form, a second rate-limit key for one sender.
#[test]
fn trailing_dot_of_the_domain_is_dropped() {
    let raw = "From: Wang <WangWei@Huadong.Example.CN.>\r\n\
                   Reply-To: <ops@huadong.example.cn.>\r\n\
                   Subject: =?UTF-8?B?6K+V55So57uI56uv6L+96Liq6K+35rGC?=\r\n\r\nD20261001\r\n";
    let (ins, d) = run_raw(&rules(), raw.as_bytes());
    assert_eq!(ins.from.unwrap().address, "wangwei@huadong.example.cn");
    assert_eq!(d.reply_to.unwrap().address, "ops@huadong.example.cn");
    assert_eq!(d.action, Reply);
    let (ins, _) = run_raw(&rules(), b"From: <a@.>\r\nSubject: x\r\n\r\nx");
    assert_eq!(ins.from, None);
}

#[test]
fn parsed_message_drops_flat() {
    let shape_of = |raw: &[u8]| {
        let msg = Parsed(MessageParser::new().parse(raw).unwrap());
        mime_shape(&msg, 1000)
    };
    assert_eq!(
        shape_of(b"Subject: x\r\n\r\nbody"),
        MimeShape { depth: 1, parts: 1 }
    );
    assert_eq!(
        shape_of(&nested_multipart(5)),
        MimeShape { depth: 5, parts: 5 }
    );
    assert_eq!(shape_of(&load("forward_as_attachment.eml")).depth, 3);
}

/// Hostile bytes: truncations and byte flips of every fixture must neither panic inside
/// (which `inspect` would turn into a note) nor loop.
#[test]
fn mangled_fixtures_never_panic() {
    let rules = rules();
    let mut files: Vec<_> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    files.sort();
    assert!(files.len() >= 40);
    for path in files {
        let raw = std::fs::read(&path).unwrap();
        let mut variants = vec![raw.clone()];
        let step = (raw.len() / 40).max(1);
        for cut in (0..raw.len()).step_by(step) {
            variants.push(raw.get(..cut).unwrap_or_default().to_vec());
            let mut flipped = raw.clone();
            if let Some(b) = flipped.get_mut(cut) {
                *b ^= 0xa5;
            }
            variants.push(flipped);
        }
        for v in variants {
            let ins = inspect(&rules, &v);
            assert!(
                !ins.notes.iter().any(|n| n.starts_with("internal error")),
                "{}: {:?}",
                path.display(),
                String::from_utf8_lossy(&v)
            );
            let _ = decide(&ins, &lookup_for(&ins));
        }
    }
    for raw in [
        &b""[..],
        b"\n",
        b"\r\n\r\n",
        b":",
        b"From:",
        b"Subject: =?",
        b"\xff\xfe\x00",
    ] {
        let ins = inspect(&rules, raw);
        assert!(ins.message_key.starts_with("sha256:"));
    }
}

/// Issue 13 §3: classic Mac mail (bare CR line ends) is read like any other: a tracking
/// request from a partner is answered.
#[test]
fn bare_cr_line_endings_are_normalised() {
    let crlf = "From: Jonas <admin@nordwind.example.de>\r\nTo: helpdesk@example.test\r\n\
                    Subject: Trial Endpoint Tracking Request\r\nMessage-ID: <mac-1@pacrim.example.com>\r\n\
                    \r\nPlease check D50261001.\r\n";
    let mac = crlf.replace("\r\n", "\r");
    let (ins, d) = run_raw(&rules(), mac.as_bytes());
    assert_eq!(ins.subject, "Trial Endpoint Tracking Request");
    assert_eq!(
        ins.from.as_ref().unwrap().address,
        "admin@nordwind.example.de"
    );
    assert_eq!(nums(&ins), vec!["D50261001"]);
    assert_eq!(d.kind, Kind::TrackingRequest);
    assert_eq!(d.action, Action::Reply, "{:?}", d.review);
    let table: &[(&[u8], &[u8])] = &[
        (b"a\rb\r", b"a\r\nb\r\n"),
        (b"a\r\nb\rc", b"a\r\nb\rc"), // first line ends in CRLF: left alone
        (b"a\nb\r", b"a\nb\r"),
        (b"", b""),
        (b"\r", b"\r\n"),
    ];
    for (input, want) in table {
        assert_eq!(&*normalize_bare_cr(input), *want, "{input:?}");
    }
}
