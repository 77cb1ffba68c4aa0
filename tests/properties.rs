//! Property tests of the classification: width/case variants of a number are found, quoted
//! history never outvotes fresh text, and `inspect` + `decide` never panic on any bytes.
//! Case counts are kept small so the whole file runs in seconds.

mod common;

use proptest::prelude::*;
use trialdesk::classify::{self, Lookup, Rules};
use trialdesk::config::Config;
use trialdesk::domain::{Language, Partner};

fn rules() -> Rules {
    let cfg = Config::from_toml_str(
        "[database]\nurl = \"sqlite://t.db\"\n[mail]\nfrom = \"helpdesk@helpdesk.example.com\"\n",
        std::path::Path::new("t.toml"),
        ".".into(),
        &[],
    )
    .unwrap();
    Rules::from_config(&cfg).unwrap()
}

fn lookup() -> Lookup {
    Lookup {
        partner: Some(Partner {
            partner_id: "P01".into(),
            name: "Huadong".into(),
            domains: vec!["huadong.example.cn".into()],
            admin_emails: vec!["it@huadong.example.cn".into()],
            language: Language::Zh,
            notify_shipment_updates: false,
        }),
        shipments: vec![],
        ..Lookup::default()
    }
}

/// A tracking request from the partner with a UTF-8 plain-text body.
fn request(body: &str) -> Vec<u8> {
    format!(
        "From: =?UTF-8?B?546L5Lyf?= <wangwei@huadong.example.cn>\r\n\
         To: helpdesk@helpdesk.example.com\r\n\
         Subject: =?UTF-8?B?6K+V55So57uI56uv6L+96Liq6K+35rGC?=\r\n\
         Message-ID: <prop@huadong.example.cn>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
        body.replace('\n', "\r\n")
    )
    .into_bytes()
}

/// `D` + 6–10 digits.
fn number() -> impl Strategy<Value = String> {
    prop::collection::vec(0u8..10, 6..=10).prop_map(|d| {
        format!(
            "D{}",
            d.iter().map(|x| char::from(b'0' + x)).collect::<String>()
        )
    })
}

/// CJK text and punctuation: nothing that glues to a number once folded.
fn cjk_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => proptest::char::range('\u{4e00}', '\u{9fa5}'),
            1 => prop::sample::select(vec!['，', '。', '：', '、', ' ', '\u{3000}', '（', '）']),
        ],
        0..16,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

/// The same number as a person might type it: `D`/`d`/`Ｄ`/`ｄ`, each digit ASCII or
/// full-width.
fn typed(number: &str, d_form: usize, wide: &[bool]) -> String {
    let mut out = String::from(["D", "d", "Ｄ", "ｄ"][d_form % 4]);
    for (i, c) in number.chars().skip(1).enumerate() {
        if wide.get(i).copied().unwrap_or(false) {
            out.push(char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap());
        } else {
            out.push(c);
        }
    }
    out
}

/// Ways quoted history starts in real mail (each followed by the quoted text).
const QUOTE_STYLES: &[&str] = &[
    "-----Original Message-----\nFrom: Helpdesk <helpdesk@helpdesk.example.com>\nSent: Monday, November 2, 2026 10:00 AM\nSubject: RE: request\n\n",
    "------------------ 原始邮件 ------------------\n发件人: \"Helpdesk\" <helpdesk@helpdesk.example.com>\n发送时间: 2026年11月2日(星期一) 上午10:00\n\n",
    "在 2026年11月2日 10:00，Helpdesk <helpdesk@helpdesk.example.com> 写道：\n> ",
    "On Mon, 2 Nov 2026 at 10:00, Helpdesk <helpdesk@helpdesk.example.com> wrote:\n> ",
    "Am 02.11.2026 um 10:00 schrieb Helpdesk <helpdesk@helpdesk.example.com>:\n> ",
    "> ",
    "> > ",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn width_and_case_variants_are_found(
        n in number(),
        d_form in 0usize..4,
        wide in prop::collection::vec(any::<bool>(), 10),
        before in cjk_text(),
        after in cjk_text(),
    ) {
        let text = format!("{before}{}{after}", typed(&n, d_form, &wide));
        let found = rules().loans.extract(&text);
        let got: Vec<&str> = found.numbers.iter().map(|x| x.as_str()).collect();
        prop_assert_eq!(got, vec![n.as_str()], "in {:?}", text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn variants_survive_the_whole_inspection(
        n in number(),
        d_form in 0usize..4,
        wide in prop::collection::vec(any::<bool>(), 10),
        before in cjk_text(),
        after in cjk_text(),
    ) {
        let raw = request(&format!("您好，\n{before}{}{after}\n谢谢", typed(&n, d_form, &wide)));
        let ins = classify::inspect(&rules(), &raw);
        let got: Vec<&str> = ins.loan_numbers.iter().map(|x| x.as_str()).collect();
        prop_assert_eq!(got, vec![n.as_str()]);
        prop_assert_eq!(classify::decide(&ins, &lookup()).action, classify::Action::Reply);
    }

    #[test]
    fn quoted_numbers_never_outvote_fresh_ones(
        fresh in number(),
        quoted in prop::collection::vec(number(), 1..4),
        style in 0..QUOTE_STYLES.len(),
        filler in cjk_text(),
        wide in prop::collection::vec(any::<bool>(), 10),
    ) {
        prop_assume!(!quoted.contains(&fresh));
        let body = format!(
            "{filler}请查询 {}。\n\n{}旧的请求：{}\n",
            typed(&fresh, 0, &wide),
            QUOTE_STYLES[style],
            quoted.join("、"),
        );
        let ins = classify::inspect(&rules(), &request(&body));
        let got: Vec<&str> = ins.loan_numbers.iter().map(|x| x.as_str()).collect();
        prop_assert_eq!(got, vec![fresh.as_str()], "body {:?}", body);
    }

    #[test]
    fn html_blockquotes_never_outvote_fresh_numbers(
        fresh in number(),
        quoted in number(),
        depth in 1usize..4,
    ) {
        prop_assume!(quoted != fresh);
        let html = format!(
            "<div>请查询 {fresh}</div>{}<div>{quoted}</div>{}",
            "<blockquote>".repeat(depth),
            "</blockquote>".repeat(depth)
        );
        let raw = String::from_utf8(request("")).unwrap().replace(
            "Content-Type: text/plain; charset=utf-8",
            "Content-Type: text/html; charset=utf-8",
        ) + &html;
        let ins = classify::inspect(&rules(), raw.as_bytes());
        let got: Vec<&str> = ins.loan_numbers.iter().map(|x| x.as_str()).collect();
        prop_assert_eq!(got, vec![fresh.as_str()]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..3000)) {
        check_never_panics(&raw)?;
    }

    #[test]
    fn mutated_real_mail_never_panics(
        file in 0usize..1000,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..6, 0usize..TOKENS.len()), 1..8),
    ) {
        let files = fixture_mails();
        let mut raw = files[file % files.len()].clone();
        for (at, kind, token) in edits {
            let i = if raw.is_empty() { 0 } else { at.index(raw.len()) };
            match kind {
                0 => { if let Some(b) = raw.get_mut(i) { *b ^= 0x5a; } }
                1 => raw.truncate(i),
                2 => { raw.splice(i..i, TOKENS[token].iter().copied()); }
                3 => { let end = (i + 64).min(raw.len()); raw.drain(i..end); }
                // Repeat a slice: deep or long structures from real ones.
                4 => { let end = (i + 200).min(raw.len()); let chunk = raw[i..end].to_vec(); for _ in 0..20 { raw.splice(end..end, chunk.iter().copied()); } }
                _ => { let tail = raw.split_off(i); raw.extend(TOKENS[token]); raw.extend(tail); }
            }
        }
        check_never_panics(&raw)?;
    }
}

/// Structure-bearing fragments inserted into real mail.
const TOKENS: &[&[u8]] = &[
    b"\r\n--",
    b"\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n=",
    b"=?utf-8?b?",
    b"=?gb2312?q?=D6=D0?=",
    b"<blockquote><br>",
    b"&#x10FFFF;&#0;&amp",
    b"\xff\xfe\x00\xc2\x80",
    "Ｄ１２３４５６７".as_bytes(),
    b"References: <a@b> <c@d>\r\n",
    b"-----Original Message-----\n",
];

fn fixture_mails() -> &'static [Vec<u8>] {
    static MAILS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    MAILS.get_or_init(|| {
        let dir = std::path::Path::new(common::FIXTURES).join("mail");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    })
}

fn check_never_panics(raw: &[u8]) -> Result<(), TestCaseError> {
    let ins = classify::inspect(&rules(), raw);
    prop_assert!(
        !ins.notes.iter().any(|n| n.starts_with("internal error")),
        "inspect caught a panic: {:?}",
        ins.notes
    );
    let d = classify::decide(&ins, &lookup());
    if d.action == classify::Action::Review {
        prop_assert!(!d.review.is_empty());
    }
    Ok(())
}
