//! Unit tests of the limits `classify::message` enforces: oversize mail, MIME depth and part
//! count, capped References, bounded header fields. Apart from the other message tests only
//! to keep each test file under 600 lines; the helpers come from the parent (`super::*`).

use super::*;

#[test]
fn oversize_reads_headers_only() {
    let small = rules_with(1000);
    let (ins, d) = run_raw(&small, &load("outlook_gb2312_reply.eml"));
    assert!(ins.oversize && ins.text.is_empty());
    assert_eq!((d.kind, d.action), (Tracking, Review));
    assert!(d.review.contains(&ReviewReason::Oversize));
    // Automated still wins.
    let (ins, d) = run_raw(&small, &load("bounce_postfix_dsn.eml"));
    assert!(ins.oversize);
    assert_eq!(d.action, Ignore);
}

#[test]
fn mime_depth_limit() {
    let r = rules();
    assert_eq!(r.max_mime_depth, 20, "default");
    let (ins, d) = run_raw(&r, &nested_multipart(20));
    assert!(!ins.mime_too_deep, "{:?}", ins.notes);
    assert_eq!(nums(&ins), ["D20261001"]);
    assert_eq!(d.action, Reply);
    let (ins, d) = run_raw(&r, &nested_multipart(21));
    assert!(ins.mime_too_deep && ins.text.is_empty());
    assert!(ins.findings.contains(&"mime:too_deep:21".to_string()));
    assert_eq!((d.kind, d.action), (Tracking, Review));
    assert_eq!(d.review, [ReviewReason::MimeTooDeep]);
    let mut shallow = rules();
    shallow.max_mime_depth = 2;
    let (ins, _) = run_raw(&shallow, &load("forward_as_attachment.eml"));
    assert!(ins.mime_too_deep, "{:?}", ins.findings);
}

/// 200 000 nested `message/rfc822` headers (6 MB): the drop glue of the nested values used
/// to recurse once per level and abort the process with a stack overflow.
#[test]
fn deeply_nested_messages_do_not_overflow_the_stack() {
    let mut m = HEAD.to_string();
    for _ in 0..200_000 {
        m.push_str("Content-Type: message/rfc822\r\n\r\n");
    }
    m.push_str("Content-Type: text/plain\r\n\r\nD20261001\r\n");
    // A thread with a small stack, like a runtime worker's.
    let r = rules();
    let handle = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || run_raw(&r, m.as_bytes()))
        .unwrap();
    let (ins, d) = handle.join().expect("no overflow");
    assert!(ins.mime_too_deep, "{:?}", ins.notes);
    assert_eq!(d.action, Review);
}

#[test]
fn mime_parts_limit() {
    let parts = |n: usize| {
        let mut m = HEAD.to_string();
        m.push_str("Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
        m.push_str("--b\r\nContent-Type: text/plain\r\n\r\n请查 D20261001\r\n");
        for i in 1..n {
            m.push_str(&format!(
                "--b\r\nContent-Type: application/octet-stream\r\n\r\n{i}\r\n"
            ));
        }
        m.push_str("--b--\r\n");
        m.into_bytes()
    };
    // The multipart container counts as a part.
    let (ins, d) = run_raw(&rules(), &parts(499));
    assert!(!ins.too_many_parts);
    assert_eq!((d.action, nums(&ins)), (Reply, vec!["D20261001"]));
    let (ins, d) = run_raw(&rules(), &parts(500));
    assert!(ins.too_many_parts && ins.loan_numbers.is_empty());
    assert_eq!(d.review, [ReviewReason::TooManyParts]);
    // A bounce stays a bounce, whatever its shape.
    let mut few = rules();
    few.max_mime_parts = 2;
    let (ins, d) = run_raw(&few, &load("bounce_postfix_dsn.eml"));
    assert!(ins.too_many_parts);
    assert_eq!(d.action, Ignore);
}

#[test]
fn references_are_capped_to_root_and_latest() {
    let refs: Vec<String> = (0..300_000).map(|i| format!("<r{i}@x.example>")).collect();
    let raw = format!(
        "{HEAD}References: {}\r\nIn-Reply-To: <r299999@x.example>\r\n\r\nD20261001\r\n",
        refs.join(" ")
    );
    let (ins, d) = run_raw(&rules(), raw.as_bytes());
    assert_eq!(ins.references.len(), MAX_REFERENCES);
    assert_eq!(
        ins.references.first().map(String::as_str),
        Some("r0@x.example")
    );
    assert_eq!(
        ins.references.last().map(String::as_str),
        Some("r299999@x.example")
    );
    assert_eq!(d.action, Reply);
}

#[test]
fn header_field_count_is_bounded() {
    assert_eq!(
        header_fields_cut(b"A: 1\r\n folded\r\nB: 2\r\n\r\nC: body", 2),
        None
    );
    assert_eq!(
        header_fields_cut(b"A: 1\r\n folded\r\nB: 2\r\nC: 3\r\n", 2),
        Some(21)
    );
    // HEAD has 4 fields.
    let with_junk = |n: usize| {
        let mut raw = HEAD.to_string();
        for i in 0..n {
            raw.push_str(&format!("X-Junk-{i}: x\r\n"));
        }
        raw + "\r\n请查 D20261001\r\n"
    };
    let (ins, d) = run_raw(&rules(), with_junk(MAX_HEADER_FIELDS - 3).as_bytes());
    assert!(ins.too_many_headers && ins.loan_numbers.is_empty());
    // The first fields (From, Subject, Message-ID) were still read.
    assert_eq!(ins.message_id.as_deref(), Some("limits@huadong.example.cn"));
    assert_eq!((d.kind, d.action), (Tracking, Review));
    assert_eq!(d.review, [ReviewReason::TooManyHeaders]);
    let (ins, d) = run_raw(&rules(), with_junk(MAX_HEADER_FIELDS - 4).as_bytes());
    assert!(!ins.too_many_headers, "{:?}", ins.notes);
    assert_eq!((d.action, nums(&ins)), (Reply, vec!["D20261001"]));
}
