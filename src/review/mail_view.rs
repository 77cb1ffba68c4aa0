//! A received mail, made safe to show to staff: headers, text, the HTML part sanitised,
//! attachments listed.
//!
//! Mail content is untrusted. The HTML goes through ammonia (an allow-list HTML sanitiser
//! built on html5ever, the browser-grade parser): no script, no event handlers, no styles, no
//! forms, no frames, links get `rel="noopener noreferrer"`. Images from the web are dropped
//! unless asked for (they tell the sender the mail was read); `cid:` images are pointed at
//! our own inline-image route. The pages add a Content-Security-Policy without any script
//! source on top, so even a sanitiser bug could not run script.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde::Serialize;

pub use crate::outbound::percent_encode;

/// How to sanitise a mail's HTML.
#[derive(Debug, Clone)]
pub struct SanitizeOptions {
    /// Keep `http(s)` image sources.
    pub remote_images: bool,
    /// Prefix for `cid:` images, e.g. `/messages/12/inline/` (the content id is appended,
    /// percent-encoded).
    pub inline_base: String,
}

/// One header line, unfolded.
#[derive(Debug, Clone, Serialize)]
pub struct HeaderLine {
    pub name: String,
    pub value: String,
}

/// An attachment (or inline part) of a mail.
#[derive(Debug, Clone, Serialize)]
pub struct AttachmentInfo {
    /// Position among the mail's attachments (the download route's index).
    pub index: usize,
    pub name: String,
    pub content_type: String,
    pub size: usize,
}

/// What the message page shows of a raw mail.
#[derive(Debug, Clone, Serialize)]
pub struct MailView {
    /// The usual headers, decoded (From, To, Cc, Reply-To, Date, Subject, Message-ID, …).
    pub summary: Vec<HeaderLine>,
    /// Every header as received (unfolded, not decoded).
    pub headers: Vec<HeaderLine>,
    /// The first text/html part, sanitised.
    pub html: Option<String>,
    /// Remote images removed from `html`.
    pub blocked_images: usize,
    pub attachments: Vec<AttachmentInfo>,
}

/// A part to download.
#[derive(Debug, Clone)]
pub struct AttachmentData {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Parses a raw mail for display. None when it is not a mail at all.
pub fn view(raw: &[u8], opts: &SanitizeOptions) -> Option<MailView> {
    let message = MessageParser::default().parse(raw)?;
    let mut summary = Vec::new();
    let mut push = |name: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            summary.push(HeaderLine {
                name: name.to_string(),
                value: clean_line(&v),
            });
        }
    };
    push("From", message.from().map(format_address));
    push("Sender", message.sender().map(format_address));
    push("Reply-To", message.reply_to().map(format_address));
    push("To", message.to().map(format_address));
    push("Cc", message.cc().map(format_address));
    push("Date", message.date().map(|d| d.to_rfc3339()));
    push("Subject", message.subject().map(str::to_string));
    push(
        "Message-ID",
        message.message_id().map(|id| format!("<{id}>")),
    );
    push(
        "In-Reply-To",
        message.in_reply_to().as_text().map(|id| format!("<{id}>")),
    );
    for name in [
        "Authentication-Results",
        "Auto-Submitted",
        "Precedence",
        "List-Id",
    ] {
        push(name, message.header_raw(name).map(str::to_string));
    }
    let headers = message
        .headers_raw()
        .map(|(name, value)| HeaderLine {
            name: clean_line(name),
            value: clean_line(value),
        })
        .collect();
    let (html, blocked_images) = match message
        .html_bodies()
        .find(|part| matches!(part.body, PartType::Html(_)))
    {
        Some(part) => {
            let source = part.text_contents().unwrap_or_default();
            let (clean, blocked) = sanitize_html(source, opts);
            (Some(clean), blocked)
        }
        None => (None, 0),
    };
    let attachments = message
        .attachments()
        .enumerate()
        .map(|(index, part)| AttachmentInfo {
            index,
            name: attachment_name(part, index),
            content_type: content_type(part),
            size: part.contents().len(),
        })
        .collect();
    Some(MailView {
        summary,
        headers,
        html,
        blocked_images,
        attachments,
    })
}

/// The `index`-th attachment of a raw mail.
pub fn attachment(raw: &[u8], index: usize) -> Option<AttachmentData> {
    let message = MessageParser::default().parse(raw)?;
    let part = message.attachments().nth(index)?;
    Some(AttachmentData {
        name: attachment_name(part, index),
        content_type: content_type(part),
        bytes: part.contents().to_vec(),
    })
}

/// Image types shown inline (`cid:`). Not SVG: it is a document that can carry script.
const INLINE_IMAGE_TYPES: [&str; 5] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
];

/// The part a `cid:` URL names, if it is a raster image.
pub fn inline_image(raw: &[u8], content_id: &str) -> Option<AttachmentData> {
    let message = MessageParser::default().parse(raw)?;
    let wanted = content_id.trim().trim_matches(['<', '>']);
    message.parts.iter().enumerate().find_map(|(i, part)| {
        let id = part.content_id()?.trim().trim_matches(['<', '>']);
        if !id.eq_ignore_ascii_case(wanted) {
            return None;
        }
        let ct = content_type(part);
        if !INLINE_IMAGE_TYPES.contains(&ct.as_str()) {
            return None;
        }
        Some(AttachmentData {
            name: attachment_name(part, i),
            content_type: ct,
            bytes: part.contents().to_vec(),
        })
    })
}

/// Sanitises mail HTML. Returns the clean HTML and how many remote images were removed.
pub fn sanitize_html(html: &str, opts: &SanitizeOptions) -> (String, usize) {
    let blocked = Arc::new(AtomicUsize::new(0));
    let counter = blocked.clone();
    let remote_images = opts.remote_images;
    let inline_base = opts.inline_base.clone();
    let clean = ammonia::Builder::default()
        // `cid:` must survive the scheme check to be rewritten below.
        .add_url_schemes(["cid"])
        .link_rel(Some("noopener noreferrer nofollow"))
        .attribute_filter(move |element, attribute, value| {
            let lower = value.trim().to_ascii_lowercase();
            match (element, attribute) {
                ("img", "src") => {
                    if lower.starts_with("cid:") {
                        // "cid:" is ASCII, so the original keeps the same byte offsets.
                        let id = &value.trim()[4..];
                        Some(Cow::Owned(format!("{inline_base}{}", percent_encode(id))))
                    } else if lower.starts_with("http:") || lower.starts_with("https:") {
                        if remote_images {
                            Some(Cow::Borrowed(value))
                        } else {
                            counter.fetch_add(1, Ordering::Relaxed);
                            None
                        }
                    } else {
                        // Relative or other schemes: nothing sensible to load.
                        None
                    }
                }
                // A link to a part of the mail means nothing outside it.
                (_, "href") if lower.starts_with("cid:") => None,
                _ => Some(Cow::Borrowed(value)),
            }
        })
        .clean(html)
        .to_string();
    let blocked = blocked.load(Ordering::Relaxed);
    (clean, blocked)
}

fn format_address(address: &mail_parser::Address<'_>) -> String {
    address
        .iter()
        .map(|a| match (a.name(), a.address()) {
            (Some(n), Some(addr)) => format!("{n} <{addr}>"),
            (None, Some(addr)) => addr.to_string(),
            (Some(n), None) => n.to_string(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

fn attachment_name(part: &mail_parser::MessagePart<'_>, index: usize) -> String {
    part.attachment_name()
        .map(clean_line)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("attachment-{}", index + 1))
}

fn content_type(part: &mail_parser::MessagePart<'_>) -> String {
    match part.content_type() {
        Some(ct) => match &ct.c_subtype {
            Some(sub) => format!("{}/{}", ct.c_type, sub),
            None => ct.c_type.to_string(),
        }
        .to_ascii_lowercase(),
        None => "application/octet-stream".into(),
    }
}

/// One line: folding undone, control characters replaced.
fn clean_line(s: &str) -> String {
    let unfolded: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    unfolded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
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
        let v = view(MULTIPART, &opts(false)).unwrap();
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
        let data = attachment(MULTIPART, pdf.index).unwrap();
        assert!(data.bytes.starts_with(b"%PDF-1.4"));
        let img = inline_image(MULTIPART, "pic1").unwrap();
        assert_eq!(img.content_type, "image/png");
        assert!(inline_image(MULTIPART, "nope").is_none());
        assert!(v.headers.iter().any(|h| h.name == "Subject"));
    }

    #[test]
    fn text_only_mail_has_no_html() {
        let raw = b"From: a@b.c\r\nSubject: x\r\n\r\nhello <b>not html</b>\r\n";
        let v = view(raw, &opts(false)).unwrap();
        assert!(v.html.is_none());
        assert!(v.attachments.is_empty());
    }
}
