//! Unit tests of `outbound::compose`: composed replies and notices, threading headers,
//! attachments. Moved out of `compose.rs` to keep that file one concept.

use super::*;
use crate::classify::Mailbox;

fn composer() -> Composer {
    Composer::new("Trial Helpdesk", "helpdesk@example.test", "example.test").unwrap()
}

fn parse(bytes: &[u8]) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default().parse(bytes).unwrap()
}

#[test]
fn auto_reply_is_threaded_and_marked() {
    let to = Mailbox {
        name: Some("王伟".into()),
        address: "wangwei@huadong.example.cn".into(),
    };
    let refs = vec!["root@x".to_string()];
    let c = composer()
        .compose(&Draft {
            to: &to,
            subject: "Re: 试用终端追踪请求",
            text: "文本 D1234567",
            html: "<p>文本 D1234567</p>",
            in_reply_to: Some("abc@mail.huadong.example.cn"),
            references: &refs,
            kind: OwnMailKind::AutoReply,
            date: "2026-11-26T08:00:00Z".parse().unwrap(),
        })
        .unwrap();
    let m = parse(&c.bytes);
    assert_eq!(m.subject(), Some("Re: 试用终端追踪请求"));
    assert_eq!(m.message_id(), Some(c.message_id.as_str()));
    assert!(c.message_id.ends_with("@example.test"));
    assert_eq!(
        m.in_reply_to().as_text(),
        Some("abc@mail.huadong.example.cn")
    );
    let refs: Vec<&str> = m
        .references()
        .as_text_list()
        .unwrap()
        .iter()
        .map(|s| s.as_ref())
        .collect();
    assert_eq!(refs, vec!["root@x", "abc@mail.huadong.example.cn"]);
    assert_eq!(
        m.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-replied")
    );
    assert_eq!(
        m.header_raw("X-Auto-Response-Suppress").map(str::trim),
        Some("All")
    );
    assert_eq!(
        m.header_raw("Precedence").map(str::trim),
        Some("auto_reply")
    );
    assert_eq!(
        m.header_raw(OWN_MAIL_HEADER).map(str::trim),
        Some("auto-reply")
    );
    assert_eq!(
        m.body_text(0).as_deref().map(str::trim_end),
        Some("文本 D1234567")
    );
    assert!(m.body_html(0).unwrap().contains("<p>文本 D1234567</p>"));
    assert_eq!(
        m.to().unwrap().first().unwrap().address(),
        Some("wangwei@huadong.example.cn")
    );
}

#[test]
fn references_are_deduplicated_and_capped() {
    let many: Vec<String> = (0..40).map(|i| format!("m{i}@x")).collect();
    let refs = thread_references(&many, "parent@x");
    assert_eq!(refs.len(), MAX_REFERENCES);
    assert_eq!(refs[0], "m0@x");
    assert_eq!(refs.last().unwrap(), "parent@x");
    let dup = thread_references(&["a@x".into(), "a@x".into(), "bad id".into()], "a@x");
    assert_eq!(dup, vec!["a@x"]);
}

#[test]
fn attachments_are_base64_and_come_back_byte_for_byte() {
    use mail_parser::MimeHeaders;
    let to = Mailbox {
        name: None,
        address: "lager@nordwind.example.de".into(),
    };
    let pdf = b"%PDF-1.4\n1 0 obj\n<< >>\nendobj\n%%EOF\n";
    let c = composer()
        .compose_with_attachments(
            &Draft {
                to: &to,
                subject: "Re: RMA-Etikett",
                text: "anbei",
                html: "<p>anbei</p>",
                in_reply_to: Some("req@nordwind.example.de"),
                references: &[],
                kind: OwnMailKind::AutoReply,
                date: "2026-11-26T01:00:00Z".parse().unwrap(),
            },
            &[Attachment {
                file_name: "D30261002.pdf",
                content_type: "application/pdf",
                bytes: pdf,
            }],
        )
        .unwrap();
    let m = parse(&c.bytes);
    let files: Vec<_> = m.attachments().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].attachment_name(), Some("D30261002.pdf"));
    assert!(files[0].is_content_type("application", "pdf"));
    assert_eq!(
        files[0]
            .content_transfer_encoding()
            .map(|e| e.to_ascii_lowercase()),
        Some("base64".into())
    );
    assert_eq!(files[0].contents(), pdf);
    assert_eq!(m.body_text(0).as_deref(), Some("anbei"));
    assert_eq!(m.in_reply_to().as_text(), Some("req@nordwind.example.de"));
}

#[test]
fn a_shipment_notice_continues_its_loans_thread() {
    let to = [Mailbox {
        name: None,
        address: "admin@x.example".into(),
    }];
    let notice = Notice {
        to: &to,
        subject: "Trial endpoint status update: D1",
        text: "t",
        html: "<p>t</p>",
        kind: OwnMailKind::ShipmentNotice,
        date: "2026-11-26T01:00:00Z".parse().unwrap(),
    };
    let first = composer()
        .compose_notice_in_thread(&notice, None, &[])
        .unwrap();
    let m = parse(&first.bytes);
    assert!(m.in_reply_to().is_empty());
    assert_eq!(
        m.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    assert_eq!(
        m.header_raw(OWN_MAIL_HEADER).map(str::trim),
        Some("shipment-notice")
    );
    let older = vec!["n0@example.test".to_string()];
    let next = composer()
        .compose_notice_in_thread(&notice, Some(&first.message_id), &older)
        .unwrap();
    let m = parse(&next.bytes);
    assert_eq!(m.in_reply_to().as_text(), Some(first.message_id.as_str()));
    let refs: Vec<String> = match m.references() {
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|s| s.to_string()).collect(),
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        _ => vec![],
    };
    assert_eq!(refs, vec!["n0@example.test".to_string(), first.message_id]);
}

#[test]
fn notice_goes_to_every_recipient_and_is_marked_as_a_reminder() {
    let to = [
        Mailbox {
            name: None,
            address: "a@x.example".into(),
        },
        Mailbox {
            name: None,
            address: "b@x.example".into(),
        },
    ];
    let c = composer()
        .compose_notice(&Notice {
            to: &to,
            subject: "试用将于 2026-12-03 到期",
            text: "t",
            html: "<p>t</p>",
            kind: OwnMailKind::Reminder,
            date: "2026-11-26T01:00:00Z".parse().unwrap(),
        })
        .unwrap();
    let m = parse(&c.bytes);
    let got: Vec<&str> = m.to().unwrap().iter().filter_map(|a| a.address()).collect();
    assert_eq!(got, vec!["a@x.example", "b@x.example"]);
    assert_eq!(m.subject(), Some("试用将于 2026-12-03 到期"));
    assert_eq!(
        m.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    assert_eq!(
        m.header_raw(OWN_MAIL_HEADER).map(str::trim),
        Some("reminder")
    );
    assert!(m.in_reply_to().is_empty() && m.header_raw("Precedence").is_none());
    let empty = Notice {
        to: &[],
        subject: "s",
        text: "t",
        html: "h",
        kind: OwnMailKind::Reminder,
        date: jiff::Timestamp::UNIX_EPOCH,
    };
    assert!(composer().compose_notice(&empty).is_err());
}

#[test]
fn unusable_recipient_is_an_error_not_a_panic() {
    let to = Mailbox {
        name: None,
        address: "not an address".into(),
    };
    let err = composer()
        .compose(&Draft {
            to: &to,
            subject: "x",
            text: "x",
            html: "x",
            in_reply_to: None,
            references: &[],
            kind: OwnMailKind::Reminder,
            date: jiff::Timestamp::UNIX_EPOCH,
        })
        .unwrap_err();
    assert!(matches!(err, ComposeError::Address { .. }));
}

fn reply_to(name: &str, subject: &str, parent: Option<&str>, refs: &[String]) -> Composed {
    let to = Mailbox {
        name: Some(name.into()),
        address: "wangwei@huadong.example.cn".into(),
    };
    composer()
        .compose(&Draft {
            to: &to,
            subject,
            text: "t",
            html: "<p>t</p>",
            in_reply_to: parent,
            references: refs,
            kind: OwnMailKind::AutoReply,
            date: "2026-11-26T08:00:00Z".parse().unwrap(),
        })
        .expect("composed")
}

fn header_block(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.split("\r\n\r\n").next().unwrap().to_string()
}

/// Hostile names and subjects: never a panic, never a header line of our own making
/// (`Bcc:`), every line within RFC 5322's 998 octets.
#[test]
fn hostile_header_values_are_folded_capped_or_dropped() {
    let long_id = format!("{}@x.example", "i".repeat(480));
    let many: Vec<String> = (0..40).map(|i| format!("{i}-{long_id}")).collect();
    let table: &[(&str, &str, Option<&str>, &[String])] = &[
        ("Wang Wei\r\nBcc: evil@evil.example", "Re: x", None, &[]),
        ("a\rb", "Re: a\r\nBcc: evil@evil.example", Some("p@x"), &[]),
        ("a\nb", "Re: \u{0}\u{7f}", Some("bad id\r\nBcc: x@y"), &[]),
        ("x\u{0}y", &"长".repeat(3000), None, &[]),
        ("\"q\\", &"s ".repeat(5000), Some(&long_id), &many),
        ("\u{2028}\u{85}", "\u{2029}", Some("p@x"), &many),
    ];
    for (name, subject, parent, refs) in table {
        let c = reply_to(name, subject, *parent, refs);
        let head = header_block(&c.bytes);
        for line in c.bytes.split(|&b| b == b'\n') {
            assert!(line.len() <= 998, "line of {} octets", line.len());
        }
        assert!(
            !head
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "{head}"
        );
        let m = parse(&c.bytes);
        assert_eq!(
            m.to().unwrap().first().unwrap().address(),
            Some("wangwei@huadong.example.cn")
        );
        let got = m.subject().unwrap_or("");
        assert!(got.chars().count() <= headers::MAX_SUBJECT_CHARS, "{got}");
        assert!(!got.contains(['\r', '\n', '\u{0}']), "{got:?}");
    }
    // The reported mail: the name is kept, on one line.
    let c = reply_to("Wang Wei\r\nBcc: evil@evil.example", "Re: x", None, &[]);
    let m = parse(&c.bytes);
    assert_eq!(
        m.to().unwrap().first().unwrap().name(),
        Some("Wang Wei Bcc: evil@evil.example")
    );
    // A broken parent id is not echoed: no In-Reply-To at all.
    let c = reply_to("n", "s", Some("bad id\r\nBcc: x@y"), &[]);
    assert!(parse(&c.bytes).in_reply_to().is_empty());
}

#[test]
fn a_message_id_domain_that_cannot_be_a_header_is_refused() {
    assert!(Composer::new("H", "helpdesk@example.test", "example.test\r\nX: y").is_err());
    assert!(Composer::new("H\r\nBcc: a@b", "helpdesk@example.test", "example.test").is_ok());
}

/// Whatever transfer encoding lettre chooses for a part (7bit, quoted-printable, base64), it
/// decodes to the text that went in (line endings as CRLF), including a line too long for
/// 7bit, mixed scripts and text that looks like encoding syntax.
#[test]
fn every_chosen_encoding_decodes_to_the_text() {
    let to = Mailbox {
        name: None,
        address: "ops@pacrim.example.com".into(),
    };
    let long = format!("{}\nend", "D1234567 ".repeat(150));
    for text in [
        "plain ASCII\nsecond line",
        "Grüße aus München\nD1234567",
        "您的试用设备已发货\nD1234567 — 顺丰 SF1234567890",
        long.as_str(),
        "=?utf-8?q?not_a_header?= =3D =\n.\n..\nFrom the start",
    ] {
        let c = composer()
            .compose(&Draft {
                to: &to,
                subject: "Re: tracking",
                text,
                html: &format!("<p>{text}</p>"),
                in_reply_to: None,
                references: &[],
                kind: OwnMailKind::AutoReply,
                date: "2026-11-26T08:00:00Z".parse().unwrap(),
            })
            .unwrap();
        assert!(c.bytes.is_ascii(), "7bit on the wire for {text:.20}");
        let m = parse(&c.bytes);
        assert_eq!(
            m.body_text(0).as_deref().map(|t| t.replace("\r\n", "\n")),
            Some(text.to_string()),
        );
        assert!(m.body_html(0).unwrap().replace("\r\n", "\n").contains(text));
    }
}
