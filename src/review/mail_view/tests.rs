//! Unit tests of `review::mail_view`: parsing, sanitising and the limits of the mail view.
//! Moved out of `mail_view.rs` to keep that file one concept.

use super::*;

#[test]
fn percent_encoding_keeps_only_unreserved_characters() {
    assert_eq!(
        percent_encode("EA920049643CN-x_y.z~"),
        "EA920049643CN-x_y.z~"
    );
    assert_eq!(percent_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
}

fn opts(remote: bool) -> SanitizeOptions {
    SanitizeOptions {
        remote_images: remote,
        inline_base: "/messages/7/inline/".into(),
    }
}

#[test]
fn script_handlers_styles_and_forms_are_removed() {
    let dirty = r#"<p onclick="x()">Hi <b>there</b></p><script>window.__pwned=1</script>
            <img src="x" onerror="window.__pwned=1"><a href="javascript:alert(1)">j</a>
            <style>body{display:none}</style><form action="https://evil"><input name=p></form>
            <iframe src="https://evil"></iframe><a href="https://ok.example/">ok</a>
            <svg><script>alert(1)</script></svg><p style="background:url(https://t.example/x)">s</p>"#;
    let (clean, _) = sanitize_html(dirty, &opts(false));
    for bad in [
        "script",
        "onclick",
        "onerror",
        "javascript",
        "<style",
        "<form",
        "<input",
        "iframe",
        "style=",
        "__pwned",
    ] {
        assert!(!clean.contains(bad), "{bad} survived: {clean}");
    }
    assert!(clean.contains("<b>there</b>"), "{clean}");
    assert!(
        clean.contains(r#"<a href="https://ok.example/" rel="noopener noreferrer nofollow">"#),
        "{clean}"
    );
}

#[test]
fn remote_images_are_blocked_unless_allowed_and_cid_is_rewritten() {
    let html = r#"<img src="https://track.example/p.gif" alt="t"><img src="cid:logo@x">"#;
    let (clean, blocked) = sanitize_html(html, &opts(false));
    assert_eq!(blocked, 1);
    assert!(!clean.contains("track.example"), "{clean}");
    assert!(
        clean.contains(r#"src="/messages/7/inline/logo%40x""#),
        "{clean}"
    );
    let (clean, blocked) = sanitize_html(html, &opts(true));
    assert_eq!(blocked, 0);
    assert!(clean.contains("https://track.example/p.gif"), "{clean}");
}

const MULTIPART: &[u8] = b"From: =?UTF-8?B?546L5Lyf?= <wangwei@huadong.example.cn>\r\n\
To: helpdesk@example.test\r\nSubject: =?UTF-8?B?6K+V55So?=\r\nMessage-ID: <m1@x>\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: multipart/alternative; boundary=\"b2\"\r\n\r\n\
--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain D1234567\r\n\
--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html <script>bad()</script><img src=\"cid:pic1\"></p>\r\n\
--b2--\r\n\
--b1\r\nContent-Type: image/png\r\nContent-ID: <pic1>\r\nContent-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n\
--b1\r\nContent-Type: application/pdf; name=\"=?UTF-8?B?5Y2V5o2uLnBkZg==?=\"\r\nContent-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n\
--b1--\r\n";

#[test]
fn a_multipart_mail_is_viewed_and_its_parts_fetched() {
    let v = view(MULTIPART, &opts(false), &ViewLimits::default()).unwrap();
    let from = v.summary.iter().find(|h| h.name == "From").unwrap();
    assert_eq!(from.value, "王伟 <wangwei@huadong.example.cn>");
    let html = v.html.unwrap();
    assert!(html.contains("html") && !html.contains("script"), "{html}");
    assert!(html.contains("/messages/7/inline/pic1"), "{html}");
    let pdf = v
        .attachments
        .iter()
        .find(|a| a.content_type == "application/pdf")
        .expect("pdf listed");
    assert_eq!(pdf.name, "单据.pdf");
    let data = attachment(MULTIPART, pdf.index, &ViewLimits::default()).unwrap();
    assert!(data.bytes.starts_with(b"%PDF-1.4"));
    let img = inline_image(MULTIPART, "pic1", &ViewLimits::default()).unwrap();
    assert_eq!(img.content_type, "image/png");
    assert!(inline_image(MULTIPART, "nope", &ViewLimits::default()).is_none());
    assert!(v.headers.iter().any(|h| h.name == "Subject"));
}

#[test]
fn text_only_mail_has_no_html() {
    let raw = b"From: a@b.c\r\nSubject: x\r\n\r\nhello <b>not html</b>\r\n";
    let v = view(raw, &opts(false), &ViewLimits::default()).unwrap();
    assert!(v.html.is_none());
    assert!(v.attachments.is_empty());
}

/// `levels` `message/rfc822` parts, each holding the next (the crafted mail of issue 13).
pub(crate) fn nested_rfc822(levels: usize) -> Vec<u8> {
    let mut raw = b"From: a@b.example\r\nSubject: nested\r\nMessage-ID: <n@b.example>\r\n".to_vec();
    for _ in 0..levels {
        raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
    }
    raw.extend_from_slice(b"Subject: inner\r\n\r\nbody\r\n");
    raw
}

#[test]
fn a_mail_over_a_limit_shows_headers_and_a_note_only() {
    let limits = ViewLimits::default();
    // 200,000 nested message/rfc822 headers: aborted the process with a stack overflow.
    let deep = nested_rfc822(200_000);
    let v = view(&deep, &opts(false), &limits).expect("viewed");
    let note = v.limit_note.expect("note");
    assert!(note.contains("too deep"), "{note}");
    assert!(v
        .summary
        .iter()
        .any(|h| h.name == "Subject" && h.value == "nested"));
    assert!(v.html.is_none() && v.attachments.is_empty());
    assert!(attachment(&deep, 0, &limits).is_none());
    assert!(inline_image(&deep, "x", &limits).is_none());

    // A million header fields: the page lists the first 1000, each value capped.
    let mut many = Vec::new();
    for i in 0..1_000_000 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\nbody\r\n");
    let v = view(&many, &opts(false), &limits).expect("viewed");
    assert_eq!(v.headers.len(), limits.max_header_fields);
    assert!(v.limit_note.unwrap().contains("header fields"));

    // One huge header value is cut for display.
    let long = format!(
        "Subject: {}\r\nX-Long: {}\r\n\r\nb\r\n",
        "s".repeat(50_000),
        "v".repeat(50_000)
    );
    let v = view(long.as_bytes(), &opts(false), &limits).unwrap();
    assert!(v
        .headers
        .iter()
        .all(|h| h.value.chars().count() <= limits.max_header_value_chars));
    assert!(v
        .summary
        .iter()
        .all(|h| h.value.chars().count() <= limits.max_header_value_chars));

    // Over the size limit (as configured): headers only.
    let small = ViewLimits {
        max_message_bytes: 100,
        ..ViewLimits::default()
    };
    let v = view(MULTIPART, &opts(false), &small).unwrap();
    assert!(v.limit_note.unwrap().contains("too large"));
    assert!(v.attachments.is_empty());
    // Too many parts.
    let few = ViewLimits {
        max_mime_parts: 2,
        ..ViewLimits::default()
    };
    assert!(view(MULTIPART, &opts(false), &few)
        .unwrap()
        .limit_note
        .is_some());
    assert!(attachment(MULTIPART, 0, &few).is_none());
}

#[test]
fn html_over_the_budget_is_not_sanitised() {
    let limits = ViewLimits::default();
    let table: &[(String, bool)] = &[
        ("<p>hi</p>".into(), false),
        ("<div>x".repeat(limits.max_html_depth), false),
        ("<div>x".repeat(limits.max_html_depth + 1), true),
        ("<div>x</div>".repeat(100_000), true), // over the byte cap
        ("<div>x</div>".repeat(10_000), false),
        ("<p>x<br><img src=a>".repeat(5_000), false),
        ("<li>x<td>y".repeat(5_000), false),
        ("<b><i>".repeat(300), true),
    ];
    for (html, over) in table {
        assert_eq!(
            html_over_budget(html, &limits).is_some(),
            *over,
            "{}…",
            html.get(..40).unwrap_or(html)
        );
    }
    // The quadratic case of issue 13: 1 MB of unclosed <div>s.
    let body = "<div>x".repeat(170_000);
    let raw =
        format!("From: a@b.example\r\nSubject: d\r\nContent-Type: text/html\r\n\r\n{body}\r\n");
    let started = std::time::Instant::now();
    let v = view(raw.as_bytes(), &opts(false), &limits).unwrap();
    assert!(v.html.is_none() && v.html_note.is_some());
    // Generous: the estimate is one linear pass (milliseconds), sanitising took minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn display_text_is_capped_on_a_character_boundary() {
    let mut t = "长".repeat(MAX_DISPLAY_TEXT_BYTES);
    cap_display_text(&mut t);
    assert!(t.len() < MAX_DISPLAY_TEXT_BYTES + 200);
    assert!(t.ends_with("download the original]"));
    let mut short = "short".to_string();
    cap_display_text(&mut short);
    assert_eq!(short, "short");
}
