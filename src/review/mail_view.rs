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

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use serde::Serialize;

use crate::classify::message::normalize_bare_cr;
use crate::classify::mime::{header_fields_cut, mime_shape, Parsed, MAX_HEADER_FIELDS};
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
    /// Every header as received (unfolded, not decoded), at most
    /// [`ViewLimits::max_header_fields`], each value cut at
    /// [`ViewLimits::max_header_value_chars`].
    pub headers: Vec<HeaderLine>,
    /// The first text/html part, sanitised.
    pub html: Option<String>,
    /// Why the HTML part is not shown although there is one (too large or too deeply nested
    /// to sanitise within the budget).
    pub html_note: Option<String>,
    /// Remote images removed from `html`.
    pub blocked_images: usize,
    pub attachments: Vec<AttachmentInfo>,
    /// Set when the mail is over a limit: only its headers are shown (with this note) and the
    /// original can be downloaded.
    pub limit_note: Option<String>,
}

/// A part to download.
#[derive(Debug, Clone)]
pub struct AttachmentData {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The bounds a stored mail is read under for display: the classification's own limits
/// (size, MIME depth and parts, header fields) plus what a page shows at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewLimits {
    /// `mail.max_message_bytes`.
    pub max_message_bytes: usize,
    /// `mail.max_mime_depth`.
    pub max_mime_depth: usize,
    /// `mail.max_mime_parts`.
    pub max_mime_parts: usize,
    /// Header fields read at the top of a mail (as classification).
    pub max_header_fields: usize,
    /// Characters of one header value shown.
    pub max_header_value_chars: usize,
    /// Largest HTML part (decoded bytes) handed to the sanitiser.
    pub max_html_bytes: usize,
    /// Deepest element nesting handed to the sanitiser (the HTML parser's cost grows with the
    /// square of the nesting).
    pub max_html_depth: usize,
}

impl ViewLimits {
    /// Largest HTML part sanitised for display.
    pub const MAX_HTML_BYTES: usize = 512 * 1024;
    /// Deepest HTML nesting sanitised for display.
    pub const MAX_HTML_DEPTH: usize = 400;
    /// Characters of one header value shown.
    pub const MAX_HEADER_VALUE_CHARS: usize = 2000;

    /// The classification's limits, with the display caps above.
    pub fn from_rules(rules: &crate::classify::Rules) -> ViewLimits {
        ViewLimits {
            max_message_bytes: rules.max_message_bytes,
            max_mime_depth: rules.max_mime_depth,
            max_mime_parts: rules.max_mime_parts,
            ..ViewLimits::default()
        }
    }
}

impl Default for ViewLimits {
    /// The shipped defaults of `[mail]` (10 MiB, depth 20, 500 parts).
    fn default() -> Self {
        ViewLimits {
            max_message_bytes: 10 * 1024 * 1024,
            max_mime_depth: 20,
            max_mime_parts: 500,
            max_header_fields: MAX_HEADER_FIELDS,
            max_header_value_chars: Self::MAX_HEADER_VALUE_CHARS,
            max_html_bytes: Self::MAX_HTML_BYTES,
            max_html_depth: Self::MAX_HTML_DEPTH,
        }
    }
}

/// A stored mail parsed under [`ViewLimits`].
enum Bounded<'x> {
    /// Within every limit: the whole MIME tree.
    Whole(Parsed<'x>),
    /// Over a limit: only the header section, and why.
    HeadersOnly(Parsed<'x>, String),
}

impl<'x> Bounded<'x> {
    fn message(&self) -> &Message<'x> {
        match self {
            Bounded::Whole(m) | Bounded::HeadersOnly(m, _) => m,
        }
    }
}

/// Parses `raw` as classification does: a header section of more than
/// `max_header_fields` fields is cut there, a mail over the size limit is read headers-only,
/// and a MIME tree deeper or wider than allowed is kept for its headers only. The parsed
/// message drops without recursion ([`Parsed`]). None when it is not a mail at all.
fn parse_bounded<'x>(raw: &'x [u8], limits: &ViewLimits) -> Option<Bounded<'x>> {
    let parser = MessageParser::default();
    if let Some(cut) = header_fields_cut(raw, limits.max_header_fields) {
        let m = parser.parse_headers(raw.get(..cut).unwrap_or(raw))?;
        return Some(Bounded::HeadersOnly(
            Parsed(m),
            format!(
                "This mail has more than {} header fields: too large to display. Only the first \
                 {} are shown; download the original to see it all.",
                limits.max_header_fields, limits.max_header_fields
            ),
        ));
    }
    if raw.len() > limits.max_message_bytes {
        let m = parser.parse_headers(raw)?;
        return Some(Bounded::HeadersOnly(
            Parsed(m),
            format!(
                "This mail of {} bytes is over the {}-byte limit: too large to display. Only its \
                 headers are shown; download the original to see it all.",
                raw.len(),
                limits.max_message_bytes
            ),
        ));
    }
    let m = Parsed(parser.parse(raw)?);
    let shape = mime_shape(&m, limits.max_mime_parts);
    let why = if shape.depth > limits.max_mime_depth {
        Some(format!(
            "This mail's MIME structure is nested more than {} levels deep: too deep to \
             display. Only its headers are shown; download the original to see it all.",
            limits.max_mime_depth
        ))
    } else if shape.parts > limits.max_mime_parts {
        Some(format!(
            "This mail has more than {} MIME parts: too large to display. Only its headers are \
             shown; download the original to see it all.",
            limits.max_mime_parts
        ))
    } else {
        None
    };
    Some(match why {
        Some(why) => Bounded::HeadersOnly(m, why),
        None => Bounded::Whole(m),
    })
}

/// Parses a raw mail for display under `limits`. None when it is not a mail at all.
///
/// CPU-bound on untrusted data: pages call it through [`view_off_thread`].
pub fn view(raw: &[u8], opts: &SanitizeOptions, limits: &ViewLimits) -> Option<MailView> {
    // Bare-CR (classic Mac) mail, normalised as classification does.
    let raw = normalize_bare_cr(raw);
    let bounded = parse_bounded(&raw, limits)?;
    let message = bounded.message();
    let cap = |s: &str| cap_chars(clean_line(s), limits.max_header_value_chars);
    let mut summary = Vec::new();
    let mut push = |name: &str, value: Option<String>| {
        if let Some(v) = value.filter(|v| !v.trim().is_empty()) {
            summary.push(HeaderLine {
                name: name.to_string(),
                value: cap(&v),
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
        .take(limits.max_header_fields)
        .map(|(name, value)| HeaderLine {
            name: cap(name),
            value: cap(value),
        })
        .collect();
    let message = match &bounded {
        Bounded::Whole(m) => m,
        Bounded::HeadersOnly(_, why) => {
            return Some(MailView {
                summary,
                headers,
                html: None,
                html_note: None,
                blocked_images: 0,
                attachments: Vec::new(),
                limit_note: Some(why.clone()),
            })
        }
    };
    let (html, html_note, blocked_images) = match message
        .html_bodies()
        .find(|part| matches!(part.body, PartType::Html(_)))
    {
        Some(part) => {
            let source = part.text_contents().unwrap_or_default();
            match html_over_budget(source, limits) {
                Some(note) => (None, Some(note), 0),
                None => {
                    let (clean, blocked) = sanitize_html(source, opts);
                    (Some(clean), None, blocked)
                }
            }
        }
        None => (None, None, 0),
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
        html_note,
        blocked_images,
        attachments,
        limit_note: None,
    })
}

/// Why an HTML part is not sanitised for display, if it is over the budget: more than
/// `max_html_bytes`, or nested deeper than `max_html_depth` (html5ever's tree builder checks
/// the stack of open elements for each new tag, so a mail of unclosed `<div>`s costs the square
/// of its length: minutes for 1 MB).
pub fn html_over_budget(html: &str, limits: &ViewLimits) -> Option<String> {
    if html.len() > limits.max_html_bytes {
        return Some(format!(
            "The HTML part ({} bytes) is too large to display safely; the text above was read \
             from the mail, and the original can be downloaded.",
            html.len()
        ));
    }
    if html_nesting_exceeds(html, limits.max_html_depth) {
        return Some(format!(
            "The HTML part is nested more than {} elements deep: too deep to display safely; the \
             text above was read from the mail, and the original can be downloaded.",
            limits.max_html_depth
        ));
    }
    None
}

/// Elements that never hold content (no end tag) or that the next sibling closes by itself:
/// they do not deepen the tree.
const FLAT_ELEMENTS: [&str; 22] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "param", "p", "li", "dt", "dd", "tr", "td", "th", "option",
];

/// Whether the element nesting of `html` (estimated in one linear pass: start tags open, end
/// tags close) goes deeper than `max`.
pub fn html_nesting_exceeds(html: &str, max: usize) -> bool {
    let bytes = html.as_bytes();
    let mut depth: usize = 0;
    let mut i = 0;
    while let Some(off) = bytes
        .get(i..)
        .and_then(|rest| rest.iter().position(|&b| b == b'<'))
    {
        i += off + 1;
        match bytes.get(i) {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(b) if b.is_ascii_alphabetic() => {
                let len = bytes
                    .get(i..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric())
                    .count();
                let name = html.get(i..i + len).unwrap_or("").to_ascii_lowercase();
                if !FLAT_ELEMENTS.contains(&name.as_str()) {
                    depth += 1;
                    if depth > max {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// [`view`] on the blocking pool ([`crate::offload::PAGE_WORK`]); None when the mail cannot be
/// shown (not a mail, or the work failed).
pub async fn view_off_thread(
    raw: Vec<u8>,
    opts: SanitizeOptions,
    limits: ViewLimits,
) -> Option<MailView> {
    crate::offload::run(Some(&crate::offload::PAGE_WORK), move || {
        view(&raw, &opts, &limits)
    })
    .await
    .ok()
    .flatten()
}

/// [`attachment`] on the blocking pool.
pub async fn attachment_off_thread(
    raw: Vec<u8>,
    index: usize,
    limits: ViewLimits,
) -> Option<AttachmentData> {
    crate::offload::run(Some(&crate::offload::PAGE_WORK), move || {
        attachment(&raw, index, &limits)
    })
    .await
    .ok()
    .flatten()
}

/// [`inline_image`] on the blocking pool.
pub async fn inline_image_off_thread(
    raw: Vec<u8>,
    content_id: String,
    limits: ViewLimits,
) -> Option<AttachmentData> {
    crate::offload::run(Some(&crate::offload::PAGE_WORK), move || {
        inline_image(&raw, &content_id, &limits)
    })
    .await
    .ok()
    .flatten()
}

/// The `index`-th attachment of a raw mail (None over the limits, as the page lists none).
pub fn attachment(raw: &[u8], index: usize, limits: &ViewLimits) -> Option<AttachmentData> {
    let raw = normalize_bare_cr(raw);
    let Bounded::Whole(message) = parse_bounded(&raw, limits)? else {
        return None;
    };
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
pub fn inline_image(raw: &[u8], content_id: &str, limits: &ViewLimits) -> Option<AttachmentData> {
    let raw = normalize_bare_cr(raw);
    let Bounded::Whole(message) = parse_bounded(&raw, limits)? else {
        return None;
    };
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

/// Most bytes of a mail's text shown on a page.
pub const MAX_DISPLAY_TEXT_BYTES: usize = 256 * 1024;

/// Cuts a mail's stored text for display at [`MAX_DISPLAY_TEXT_BYTES`] (on a character
/// boundary), saying how much was left out.
pub fn cap_display_text(text: &mut String) {
    if text.len() <= MAX_DISPLAY_TEXT_BYTES {
        return;
    }
    let mut end = MAX_DISPLAY_TEXT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let left = text.len() - end;
    text.truncate(end);
    text.push_str(&format!(
        "\n\n[… {left} more bytes not shown: too large to display; download the original]"
    ));
}

/// `s` cut to at most `max` characters (the last one `…` when cut).
fn cap_chars(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
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
        let mut raw =
            b"From: a@b.example\r\nSubject: nested\r\nMessage-ID: <n@b.example>\r\n".to_vec();
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
}
