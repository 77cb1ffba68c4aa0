//! Unit tests of `classify::automated`: header, sender, subject and body tables, own mail
//! coming back. Moved out of `automated.rs` to keep that file one concept.

use super::*;
use crate::classify::{loan_numbers::LoanExtractor, subject::SubjectMatcher};

fn rules() -> Rules {
    Rules {
        subject: SubjectMatcher::new(&[]),
        rma: SubjectMatcher::new(&[]),
        loans: LoanExtractor::new("D[0-9]{6,10}", 50).unwrap(),
        trusted_authserv_ids: vec![],
        own_addresses: vec!["trial-helpdesk@helpdesk.example.com".into()],
        own_message_id_domain: "helpdesk.example.com".into(),
        max_message_bytes: 1 << 20,
        max_mime_depth: 20,
        max_mime_parts: 500,
        sender_policy: Default::default(),
        rma_labels_dir: None,
        rma_max_label_bytes: 1 << 20,
        max_listed: 20,
    }
}

fn mb(name: Option<&str>, a: &str) -> Mailbox {
    Mailbox {
        name: name.map(String::from),
        address: a.into(),
    }
}

fn hdrs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn run(headers: &[(&str, &str)], subject: &str, from: &str, text: &str) -> Option<String> {
    let h = hdrs(headers);
    let from = mb(None, from);
    let s = Signals {
        headers: &h,
        subject,
        from: Some(&from),
        root_type: "text/plain",
        fresh_text: text,
        full_text: text,
        ..Default::default()
    };
    detect(&rules(), &s)
}

#[test]
fn header_table() {
    let person = "a@partner.example";
    for (headers, want) in [
        (
            vec![("Auto-Submitted", "auto-replied")],
            Some("auto_submitted"),
        ),
        (
            vec![("Auto-Submitted", "auto-generated (failure)")],
            Some("auto_submitted"),
        ),
        (vec![("Auto-Submitted", "No")], None),
        (vec![("Auto-Submitted", "no (human)")], None),
        (vec![("Precedence", "bulk")], Some("precedence:bulk")),
        (vec![("Precedence", "List")], Some("precedence:list")),
        (vec![("Precedence", "junk")], Some("precedence:junk")),
        (
            vec![("Precedence", "auto_reply")],
            Some("precedence:auto_reply"),
        ),
        (vec![("Precedence", "first-class")], None),
        (vec![("X-Autoreply", "yes")], Some("header:x-autoreply")),
        (vec![("X-Autorespond", "")], Some("header:x-autorespond")),
        (
            vec![("X-AutoResponder", "x")],
            Some("header:x-autoresponder"),
        ),
        (vec![("X-Auto-Reply", "x")], Some("header:x-auto-reply")),
        (vec![("X-Loop", "yes")], Some("header:x-loop")),
        (
            vec![("X-Apple-Action", "Vacation")],
            Some("header:x-apple-action"),
        ),
        (vec![("List-Id", "<a.b>")], Some("list:list-id")),
        (
            vec![("List-Unsubscribe", "<mailto:x>")],
            Some("list:list-unsubscribe"),
        ),
        (
            vec![("X-Failed-Recipients", "x@y")],
            Some("bounce:x-failed-recipients"),
        ),
        (
            vec![("X-MS-Exchange-Message-Is-Ndr", "")],
            Some("bounce:exchange-ndr"),
        ),
        (vec![("Return-Path", "<>")], Some("null_return_path")),
        (vec![("Return-Path", " < > ")], Some("null_return_path")),
        (
            vec![("Return-Path", "<MAILER-DAEMON@x.example>")],
            Some("return_path:mailer-daemon"),
        ),
        (vec![("Return-Path", "<a@partner.example>")], None),
        (
            vec![("Sender", "hd-support-bounces@lists.example")],
            Some("sender:list"),
        ),
        (
            vec![("Sender", "owner-hd@lists.example")],
            Some("sender:list"),
        ),
        (vec![("X-Trialdesk", "reply")], Some("own_mail_header")),
        (vec![("X-Auto-Response-Suppress", "All")], None),
        (vec![("Received", "from x"), ("X-Mailer", "Outlook")], None),
    ] {
        assert_eq!(
            run(&headers, "hello", person, "").as_deref(),
            want,
            "{headers:?}"
        );
    }
    assert_eq!(
        run(
            &[("X-Auto-Response-Suppress", "All")],
            "Out of Office: Re: x",
            person,
            ""
        )
        .as_deref(),
        Some("auto_reply:x-auto-response-suppress")
    );
    assert_eq!(
        run(
            &[("X-Auto-Response-Suppress", "All")],
            "Nordwind: Abwesenheit bis Montag",
            person,
            ""
        )
        .as_deref(),
        Some("auto_reply:x-auto-response-suppress")
    );
}

#[test]
fn sender_table() {
    for (from, want) in [
        ("MAILER-DAEMON@mx1.example.cn", Some("sender:mailer-daemon")),
        ("postmaster@example.org", Some("sender:postmaster")),
        ("PostMaster@example.org", Some("sender:postmaster")),
        ("trial-helpdesk@helpdesk.example.com", Some("own_address")),
        ("TRIAL-HELPDESK@helpdesk.example.com", Some("own_address")),
        ("postmasters-team@example.org", None),
        ("daemon.fan@example.org", None),
    ] {
        assert_eq!(run(&[], "x", from, "").as_deref(), want, "{from}");
    }
    // No parsable mailbox, only the raw header.
    for (raw, want) in [
        (
            "MAILER-DAEMON (Mail Delivery System)",
            Some("sender:mailer-daemon"),
        ),
        (
            "\"Postmaster\" <Postmaster@notes.example.jp>",
            Some("sender:postmaster"),
        ),
        ("\"postmaster\" <john@example.org>", None),
    ] {
        assert_eq!(
            run(&[("From", raw)], "x", "a@partner.example", "").as_deref(),
            want,
            "{raw}"
        );
    }
}

#[test]
fn subject_table() {
    let p = "a@partner.example";
    for (subject, want) in [
        ("自动回复: 试用终端追踪请求", Some("auto_reply_subject")),
        ("自動回覆：試用", Some("auto_reply_subject")),
        (
            "Automatic reply: Trial Endpoint Tracking Request",
            Some("auto_reply_subject"),
        ),
        ("Auto-Reply: x", Some("auto_reply_subject")),
        ("AutoReply: x", Some("auto_reply_subject")),
        ("Out of Office: x", Some("auto_reply_subject")),
        ("Out of Office AutoReply: x", Some("auto_reply_subject")),
        ("自動応答: トライアル", Some("auto_reply_subject")),
        ("Abwesenheitsnotiz: Anfrage", Some("auto_reply_subject")),
        ("Automatische Antwort: Anfrage", Some("auto_reply_subject")),
        ("[SPAM] Automatic reply: x", Some("auto_reply_subject")),
        ("已读: 试用终端追踪请求", Some("read_receipt_subject")),
        (
            "Read: Trial Endpoint Tracking Request",
            Some("read_receipt_subject"),
        ),
        ("Gelesen: Anfrage", Some("read_receipt_subject")),
        ("開封済み: トライアル", Some("read_receipt_subject")),
        (
            "Undeliverable: Re: 试用终端追踪请求",
            Some("bounce_subject"),
        ),
        (
            "Undelivered Mail Returned to Sender",
            Some("bounce_subject"),
        ),
        (
            "Returned mail: see transcript for details",
            Some("bounce_subject"),
        ),
        ("failure notice", Some("bounce_subject")),
        (
            "Mail delivery failed: returning message to sender",
            Some("bounce_subject"),
        ),
        (
            "Delivery Status Notification (Failure)",
            Some("bounce_subject"),
        ),
        (
            "DELIVERY FAILURE: User x not listed",
            Some("bounce_subject"),
        ),
        ("Mail System Error - Returned Mail", Some("bounce_subject")),
        (
            "Warning: could not send message for past 4 hours",
            Some("bounce_subject"),
        ),
        ("系统退信", Some("bounce_subject")),
        ("退信：试用终端追踪请求", Some("bounce_subject")),
        ("Unzustellbar: Anfrage", Some("bounce_subject")),
        ("配信不能: トライアル", Some("bounce_subject")),
        ("Non remis : x", Some("bounce_subject")),
        (
            "[Auto-Reply] Trial Endpoint Tracking Request",
            Some("auto_reply_subject"),
        ),
        ("【自动回复】试用终端追踪请求", Some("auto_reply_subject")),
        ("[Undeliverable] x", Some("bounce_subject")),
        ("Undeliverable mail: x", Some("bounce_subject")),
        ("Undeliverable message", Some("bounce_subject")),
        ("Nondeliverable mail", Some("bounce_subject")),
        ("Delivery Failure Notice", Some("bounce_subject")),
        ("【系统退信】试用终端追踪请求", Some("bounce_subject")),
        ("无法传递: 试用终端追踪请求", Some("bounce_subject")),
        (
            "Benachrichtigung zum Übermittlungsstatus (Fehler)",
            Some("bounce_subject"),
        ),
        ("NOTICE: mail delivery status.", Some("bounce_subject")),
        ("AWS Notification Message", Some("bounce_subject")),
        ("[hd-support] 试用终端追踪请求", None),
        ("[EXTERNAL] Trial Endpoint Tracking Request", None),
        ("Delivery of D1234567 failed at the customer", None),
        // People.
        ("Fwd: Undeliverable: Trial Endpoint Tracking Request", None),
        ("Re: Out of office next week", None),
        ("Fwd: Shipping notice D1234567", None),
        ("Trial Endpoint Tracking Request - auto parts", None),
        ("Automobile trial D1234567", None),
        ("Autohaus Kessler: Trial Endpoint Tracking Request", None),
        ("Delivery failure of D1234567 at the customer site", None),
        ("Reading list", None),
        ("Ready: x", None),
        ("试用终端追踪请求", None),
        ("", None),
    ] {
        assert_eq!(run(&[], subject, p, "hello").as_deref(), want, "{subject}");
    }
}

#[test]
fn body_markers() {
    let p = "a@partner.example";
    for (subject, text, want) in [
        (
            "Notice",
            "Hi. This is the qmail-send program at mx.example.\nI'm afraid",
            true,
        ),
        (
            "Mail",
            "This message was created automatically by mail delivery software.\n",
            true,
        ),
        (
            "x",
            "Reporting-MTA: dns; mx\nFinal-Recipient: rfc822; a@b",
            true,
        ),
        (
            "Delivery problem",
            "550 5.1.1 <a@b>: Recipient address rejected: User unknown",
            true,
        ),
        (
            "Delivery problem",
            "The truck broke down, D1234567 is late.",
            false,
        ),
        (
            "Problem",
            "Your mail could not be delivered.\n550 5.1.1 user unknown",
            true,
        ),
        ("Problem", "Your mail could not be delivered.", false),
        (
            "Where is D1234567?",
            "The courier said 5.1.1 is the version of the firmware",
            false,
        ),
        ("Fwd: bounce", "This is the mail system at host mx.", false),
    ] {
        assert_eq!(
            run(&[], subject, p, text).is_some(),
            want,
            "{subject} / {text}"
        );
    }
}

#[test]
fn own_mail_returned() {
    let p = "a@partner.example";
    let text = "Original message headers:\nFrom: helpdesk\nX-Trialdesk: reply\n";
    assert_eq!(
        run(&[], "Notice", p, text).as_deref(),
        Some("own_mail_returned")
    );
    assert_eq!(run(&[], "FW: Notice", p, text), None);
    assert!(is_own_message_id(
        &rules(),
        "td.1764118800000.0123456789abcdef@helpdesk.example.com"
    ));
    assert!(is_own_message_id(
        &rules(),
        "<td.1764118800000.0123456789abcdef@HELPDESK.example.com>"
    ));
    // Other shapes, and subdomains (another host), are not ours.
    assert!(!is_own_message_id(&rules(), "reply-1@helpdesk.example.com"));
    assert!(!is_own_message_id(
        &rules(),
        "td.1764118800000.0123456789abcdef@mx.helpdesk.example.com"
    ));
    assert!(!is_own_message_id(
        &rules(),
        "reply-1@evilhelpdesk.example.com"
    ));
    assert!(!is_own_message_id(&rules(), "no-at-sign"));
}

#[test]
fn structure_table() {
    let h = hdrs(&[]);
    let types = vec![
        "text/plain".to_string(),
        "message/delivery-status".to_string(),
    ];
    let s = Signals {
        headers: &h,
        subject: "x",
        root_type: "multipart/mixed",
        part_types: &types,
        ..Default::default()
    };
    assert_eq!(
        detect(&rules(), &s).as_deref(),
        Some("part:message/delivery-status")
    );
    let s = Signals {
        headers: &h,
        subject: "x",
        root_type: "multipart/report",
        report_type: Some("disposition-notification"),
        ..Default::default()
    };
    assert_eq!(
        detect(&rules(), &s).as_deref(),
        Some("report:disposition-notification")
    );
    let types = vec!["text/plain".to_string(), "message/rfc822".to_string()];
    let from = mb(Some("Mail Delivery System"), "mds@x.example");
    let s = Signals {
        headers: &h,
        subject: "Your message",
        from: Some(&from),
        root_type: "multipart/mixed",
        part_types: &types,
        ..Default::default()
    };
    assert!(detect(&rules(), &s).is_some());
    let s = Signals {
        headers: &h,
        subject: "FW: Your message",
        from: Some(&from),
        root_type: "multipart/mixed",
        part_types: &types,
        ..Default::default()
    };
    assert!(detect(&rules(), &s).is_none());
}

/// Issue 13 §3: machine mail seen in public bounce collections that used to be missed.
#[test]
fn outside_corpus_machine_mail_is_automated() {
    let rfc822 = vec!["text/plain".to_string(), "message/rfc822".to_string()];
    let plain = vec!["text/plain".to_string()];
    // (from, subject, text, part types, automated?)
    let table: &[(&str, &str, &str, &Vec<String>, bool)] = &[
        // Bounces with a reply prefix from post_master / postmaster / mailer-daemon variants.
        (
            "post_master@mx.example.org",
            "Re: Test message",
            "Hello",
            &plain,
            true,
        ),
        (
            "Post_Master@mx.example.org",
            "Re: Test message",
            "Hello",
            &plain,
            true,
        ),
        (
            "\"post\\_master\"@mx.example.org",
            "RE: Test",
            "Hello",
            &plain,
            true,
        ),
        (
            "MAILER_DAEMON@mx.example.org",
            "Re: x",
            "Hello",
            &plain,
            true,
        ),
        (
            "mailer.daemon@mx.example.org",
            "Re: x",
            "Hello",
            &plain,
            true,
        ),
        ("Postmaster@mx.example.org", "Fwd: x", "Hello", &plain, true),
        // A reply prefix does not switch off the body checks.
        (
            "admin@mx.example.org",
            "Re: Test message",
            "This is the mail system at host mx.example.org. I'm sorry to have to inform you",
            &plain,
            true,
        ),
        // Delivery-delay warnings without DSN structure.
        (
            "admin@mx.example.org",
            "Mail Delivery Warning",
            "Hello",
            &plain,
            true,
        ),
        (
            "Mail Delivery System <admin@mx.example.org>",
            "Your message",
            "This is an advisory-only message. The mail system will keep trying.",
            &plain,
            true,
        ),
        (
            "admin@mx.example.org",
            "Message status",
            "Delivery of your message has been delayed. We will keep trying.",
            &plain,
            true,
        ),
        (
            "Mail Administrator <admin@mx.example.org>",
            "Notice",
            "Your message has been postponed; message has been delayed. Will keep trying.",
            &plain,
            true,
        ),
        // Non-ARF complaint reports.
        (
            "abuse@isp.example",
            "Complaint about message from 192.0.2.7",
            "A user complained about the attached message.",
            &rfc822,
            true,
        ),
        // People stay people.
        (
            "ops@pacrim.example.com",
            "Re: Trial Endpoint Tracking Request",
            "The delivery is delayed, will keep trying to reach the courier. D50261001",
            &plain,
            false,
        ),
        (
            "ops@pacrim.example.com",
            "Complaint about message from your helpdesk",
            "I did not get an answer",
            &plain,
            false,
        ),
        (
            "postmasterfan@pacrim.example.com",
            "Re: x",
            "Hello",
            &plain,
            false,
        ),
        (
            "ops@pacrim.example.com",
            "Re: Test message",
            "no action is required on your part",
            &plain,
            false,
        ),
    ];
    for (from, subject, text, parts, want) in table {
        let h = hdrs(&[("From", from)]);
        let addr = from
            .rsplit_once('<')
            .map_or(*from, |(_, a)| a.trim_end_matches('>'));
        let name = from.split_once(" <").map(|(n, _)| n);
        let mb = mb(name, addr);
        let s = Signals {
            headers: &h,
            subject,
            from: Some(&mb),
            root_type: "multipart/mixed",
            part_types: parts,
            fresh_text: text,
            full_text: text,
            ..Default::default()
        };
        let got = detect(&rules(), &s);
        assert_eq!(got.is_some(), *want, "{from} / {subject}: {got:?}");
    }
}
