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

/// `work` on the blocking pool ([`crate::offload::PAGE_WORK`]); None when it finds nothing
/// or the work failed.
async fn on_page_pool<T: Send + 'static>(
    work: impl FnOnce() -> Option<T> + Send + 'static,
) -> Option<T> {
    crate::offload::run(Some(&crate::offload::PAGE_WORK), work)
        .await
        .ok()
        .flatten()
}

/// [`view`] on the blocking pool ([`crate::offload::PAGE_WORK`]); None when the mail cannot be
/// shown (not a mail, or the work failed).
pub async fn view_off_thread(
    raw: Vec<u8>,
    opts: SanitizeOptions,
    limits: ViewLimits,
) -> Option<MailView> {
    on_page_pool(move || view(&raw, &opts, &limits)).await
}

/// [`attachment`] on the blocking pool.
pub async fn attachment_off_thread(
    raw: Vec<u8>,
    index: usize,
    limits: ViewLimits,
) -> Option<AttachmentData> {
    on_page_pool(move || attachment(&raw, index, &limits)).await
}

/// [`inline_image`] on the blocking pool.
pub async fn inline_image_off_thread(
    raw: Vec<u8>,
    content_id: String,
    limits: ViewLimits,
) -> Option<AttachmentData> {
    on_page_pool(move || inline_image(&raw, &content_id, &limits)).await
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
mod tests;
