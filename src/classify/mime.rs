//! The mail-parser adapter: what [`super::message`] needs from a parsed MIME tree — header
//! text as sent, body texts (HTML reduced, charsets repaired, nested messages with their
//! subject), the tree's shape, identities and addresses — with mail-parser's hazards (deep
//! nesting, huge header sections) bounded. What to make of it is decided in `message` and the
//! rule modules.

use mail_parser::{Address, HeaderValue, Message, MimeHeaders, PartType};

use super::{automated, sender, text, Mailbox, Rules, OWN_MAIL_HEADER};

/// Longest Message-ID used as idempotency key; longer (or odd) ones fall back to a hash.
pub(super) const MAX_MESSAGE_ID_BYTES: usize = 500;

/// Body texts of one (possibly nested) message.
#[derive(Default)]
pub(super) struct Bodies {
    /// text/plain parts (or HTML reduced to text when there is no plain alternative).
    pub(super) main: String,
    /// HTML alternatives not used for `main`, reduced to text: a last resort for numbers.
    pub(super) html_alternative: String,
    /// Forwarded / attached messages (`message/rfc822`), with their subject line.
    pub(super) nested: String,
    /// `type/subtype` of every part, nested ones included.
    pub(super) part_types: Vec<String>,
    /// `type/subtype` of the parts inside nested messages.
    pub(super) nested_part_types: Vec<String>,
    /// A nested message is one of ours (bounce or auto-reply quoting our reply).
    pub(super) nested_own_mail: bool,
    pub(super) notes: Vec<String>,
}

/// Top-level headers as (name, unfolded raw value). Raw bytes rather than mail-parser's typed
/// values: the automated and DMARC rules need exact header text (`Return-Path: <>`,
/// RFC 8601 comments) whatever type mail-parser gives the field.
pub(super) fn raw_headers(msg: &Message<'_>) -> Vec<(String, String)> {
    let raw = msg.raw_message.as_ref();
    msg.root_part()
        .headers
        .iter()
        .map(|h| {
            let bytes = raw
                .get(h.offset_start() as usize..h.offset_end() as usize)
                .unwrap_or_default();
            let value = String::from_utf8_lossy(bytes);
            let value = if value.contains(['\r', '\n', '\0']) {
                value.replace(['\r', '\n', '\0'], "")
            } else {
                value.into_owned()
            };
            (h.name().to_string(), value.trim().to_string())
        })
        .collect()
}

pub(super) fn type_of(ct: Option<&mail_parser::ContentType<'_>>) -> String {
    match ct {
        Some(ct) => format!(
            "{}/{}",
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("").to_ascii_lowercase()
        ),
        None => "text/plain".into(),
    }
}

/// A parsed message that is dropped without recursion.
///
/// mail-parser builds attached messages (`message/rfc822`, parts of a `multipart/digest`)
/// iteratively but nests them as values, so the compiler's drop glue recurses once per level:
/// a few hundred thousand nested `message/rfc822` headers (6 MB) overflow the stack and abort
/// the process — not a panic `catch_unwind` could stop. Dropping through this wrapper first
/// detaches every nested message onto a heap stack.
pub(crate) struct Parsed<'x>(pub(crate) Message<'x>);

impl<'x> std::ops::Deref for Parsed<'x> {
    type Target = Message<'x>;
    fn deref(&self) -> &Message<'x> {
        &self.0
    }
}

impl Drop for Parsed<'_> {
    fn drop(&mut self) {
        let mut pending: Vec<Message<'_>> = Vec::new();
        detach_nested(&mut self.0, &mut pending);
        while let Some(mut m) = pending.pop() {
            detach_nested(&mut m, &mut pending);
            // `m` now holds no nested message: its drop is shallow.
        }
    }
}

pub(super) fn detach_nested<'x>(msg: &mut Message<'x>, pending: &mut Vec<Message<'x>>) {
    for part in &mut msg.parts {
        if matches!(part.body, PartType::Message(_)) {
            if let PartType::Message(m) = std::mem::take(&mut part.body) {
                pending.push(m);
            }
        }
    }
}

/// Nesting depth and number of parts of a MIME tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MimeShape {
    /// 1 for a single-part mail; each multipart or attached message adds a level.
    pub(crate) depth: usize,
    /// Parts counted, attached messages' parts included; the walk stops after `max_parts + 1`.
    pub(crate) parts: usize,
}

/// Walks the tree without recursion (see [`Parsed`]) and with bounded work.
pub(crate) fn mime_shape(msg: &Message<'_>, max_parts: usize) -> MimeShape {
    let mut shape = MimeShape { depth: 0, parts: 0 };
    // (message, part id, depth of that part)
    let mut stack: Vec<(&Message<'_>, u32, usize)> = vec![(msg, 0, 1)];
    while let Some((m, id, depth)) = stack.pop() {
        let Some(part) = m.parts.get(id as usize) else {
            continue;
        };
        shape.parts += 1;
        shape.depth = shape.depth.max(depth);
        if shape.parts > max_parts {
            break;
        }
        match &part.body {
            // Sub-parts always come after their container; anything else would be a cycle.
            PartType::Multipart(children) => stack.extend(
                children
                    .iter()
                    .filter(|&&c| c > id)
                    .map(|&c| (m, c, depth + 1)),
            ),
            PartType::Message(inner) => stack.push((inner, 0, depth + 1)),
            _ => {}
        }
    }
    shape
}

/// Depth limit for nested messages (mail-parser itself stops at a few levels).
pub(super) const MAX_NESTING: usize = 4;

pub(super) fn collect_bodies(rules: &Rules, msg: &Message<'_>, depth: usize) -> Bodies {
    let mut b = Bodies::default();
    let mut main_parts = Vec::new();
    for id in &msg.text_body {
        if let Some(part) = msg.parts.get(*id as usize) {
            match &part.body {
                PartType::Text(t) => {
                    main_parts.push(clean_text(&redecode_if_garbled(msg, part, t, &mut b.notes)))
                }
                PartType::Html(h) => {
                    let h = redecode_if_garbled(msg, part, h, &mut b.notes);
                    main_parts.push(clean_text(&text::html_to_text(&h)))
                }
                _ => {}
            }
        }
    }
    let mut html_parts = Vec::new();
    for id in &msg.html_body {
        if msg.text_body.contains(id) {
            continue;
        }
        if let Some(part) = msg.parts.get(*id as usize) {
            if let PartType::Html(h) = &part.body {
                let h = redecode_if_garbled(msg, part, h, &mut b.notes);
                html_parts.push(clean_text(&text::html_to_text(&h)));
            }
        }
    }
    // Text parts mail-parser gave up on (broken base64 …) land among the attachments
    // undecoded; read them leniently rather than lose the request.
    for (i, part) in msg.parts.iter().enumerate() {
        let id = i as u32;
        if part.is_encoding_problem && !msg.text_body.contains(&id) && !msg.html_body.contains(&id)
        {
            if let Some(t) = recover_text(part) {
                b.notes.push(format!(
                    "part {i}: broken transfer encoding, decoded leniently"
                ));
                main_parts.push(clean_text(&t));
            }
        }
    }
    if main_parts.iter().all(|t| t.trim().is_empty()) && !html_parts.is_empty() {
        // An empty plain alternative next to a real HTML body: read the HTML.
        main_parts = std::mem::take(&mut html_parts);
    }
    b.main = main_parts.join("\n");
    b.html_alternative = html_parts.join("\n");

    for (i, part) in msg.parts.iter().enumerate() {
        let ct = part.content_type();
        b.part_types.push(type_of(ct));
        if let Some(cs) = ct.and_then(|ct| ct.attribute("charset")) {
            if ct.is_some_and(|ct| ct.ctype().eq_ignore_ascii_case("text"))
                && mail_parser::decoders::charsets::map::charset_decoder(cs.trim().as_bytes())
                    .is_none()
                && !cs.trim().eq_ignore_ascii_case("utf-8")
                && !cs.trim().eq_ignore_ascii_case("us-ascii")
            {
                b.notes
                    .push(format!("part {i}: unknown charset {cs:?}, read as UTF-8"));
            }
        }
        if part.is_encoding_problem {
            b.notes.push(format!(
                "part {i} ({}): malformed encoding or structure, read as is",
                type_of(ct)
            ));
        }
        if let PartType::Message(nested) = &part.body {
            if nested
                .root_part()
                .headers
                .iter()
                .any(|h| h.name().eq_ignore_ascii_case(OWN_MAIL_HEADER))
                || nested
                    .message_id()
                    .is_some_and(|id| automated::is_own_message_id(rules, id))
            {
                b.nested_own_mail = true;
            }
            if depth < MAX_NESTING {
                let inner = collect_bodies(rules, nested, depth + 1);
                let subject = nested.subject().unwrap_or("");
                b.nested
                    .push_str(&format!("Subject: {subject}\n{}\n", inner.main));
                if !inner.nested.is_empty() {
                    b.nested.push_str(&inner.nested);
                    b.nested.push('\n');
                }
                if !inner.html_alternative.is_empty() {
                    b.html_alternative.push('\n');
                    b.html_alternative.push_str(&inner.html_alternative);
                }
                b.nested_part_types.extend(inner.part_types);
                b.nested_part_types.extend(inner.nested_part_types);
                b.nested_own_mail |= inner.nested_own_mail;
            }
        }
    }
    b
}

/// A text part without a usable charset label that did not decode as UTF-8 (old Chinese
/// clients send raw GBK with no label, or a label nobody knows) is decoded again from its raw
/// bytes as GB18030; the reading with fewer replacement characters wins.
pub(super) fn redecode_if_garbled<'t>(
    msg: &Message<'_>,
    part: &mail_parser::MessagePart<'_>,
    decoded: &'t str,
    notes: &mut Vec<String>,
) -> std::borrow::Cow<'t, str> {
    use std::borrow::Cow;
    if !decoded.contains('\u{fffd}') {
        return Cow::Borrowed(decoded);
    }
    let label = part
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .map(|c| c.trim().to_ascii_lowercase());
    let trusted_label = label.as_deref().is_some_and(|l| {
        !matches!(l, "utf-8" | "utf8" | "us-ascii" | "ascii")
            && mail_parser::decoders::charsets::map::charset_decoder(l.as_bytes()).is_some()
    });
    if trusted_label {
        return Cow::Borrowed(decoded);
    }
    let Some(raw) = msg
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)
    else {
        return Cow::Borrowed(decoded);
    };
    let bytes = match part.encoding {
        mail_parser::Encoding::Base64 => text::base64_lenient(raw),
        mail_parser::Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(raw)
                .unwrap_or_else(|| raw.to_vec())
        }
        mail_parser::Encoding::None => raw.to_vec(),
    };
    let again = text::decode_charset(&bytes, Some("gb18030"));
    let bad = |s: &str| s.chars().filter(|c| *c == '\u{fffd}').count();
    if bad(&again) < bad(decoded) {
        notes.push(format!(
            "text part labelled {:?} is not UTF-8; read as GB18030",
            label.as_deref().unwrap_or("(none)")
        ));
        Cow::Owned(again)
    } else {
        Cow::Borrowed(decoded)
    }
}

/// Most header fields read at the top of a mail. Real mail has a few dozen (a long relay
/// chain perhaps a hundred); a million tiny fields would cost some twenty times their size in
/// parsed headers.
pub(crate) const MAX_HEADER_FIELDS: usize = 1000;

/// Where the header field after the first `max` starts, when the top-level header section
/// has more than `max` fields (continuation lines belong to their field).
pub(crate) fn header_fields_cut(raw: &[u8], max: usize) -> Option<usize> {
    let mut fields = 0;
    let mut pos = 0;
    while pos < raw.len() {
        let rest = raw.get(pos..).unwrap_or_default();
        let len = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = rest.get(..len).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line.first() {
            None => return None, // the blank line ending the headers
            Some(b' ' | b'\t') => {}
            Some(_) => {
                fields += 1;
                if fields > max {
                    return Some(pos);
                }
            }
        }
        pos += len + 1;
    }
    None
}

/// Offset just after the blank line ending the header block (bare LF tolerated).
pub(super) fn header_end(raw: &[u8]) -> usize {
    raw.windows(2)
        .enumerate()
        .find_map(|(i, w)| match w {
            b"\n\n" => Some(i + 2),
            b"\n\r" if raw.get(i + 2) == Some(&b'\n') => Some(i + 3),
            _ => None,
        })
        .unwrap_or(raw.len())
}

/// Lenient reading of an inline text part whose transfer encoding mail-parser rejected.
pub(super) fn recover_text(part: &mail_parser::MessagePart<'_>) -> Option<String> {
    let ct = part.content_type()?;
    if !ct.ctype().eq_ignore_ascii_case("text")
        || part
            .content_disposition()
            .is_some_and(|d| d.ctype().eq_ignore_ascii_case("attachment"))
    {
        return None;
    }
    let PartType::Text(raw) = &part.body else {
        return None;
    };
    let charset = ct.attribute("charset");
    let bytes = match part.content_transfer_encoding() {
        Some(cte) if cte.trim().eq_ignore_ascii_case("base64") => {
            text::base64_lenient(raw.as_bytes())
        }
        _ => raw.as_bytes().to_vec(),
    };
    let decoded = text::decode_charset(&bytes, charset);
    Some(
        if ct.subtype().is_some_and(|s| s.eq_ignore_ascii_case("html")) {
            text::html_to_text(&decoded)
        } else {
            decoded
        },
    )
}

/// Readable text: line endings normalised, NULs and other control characters dropped.
pub(super) fn clean_text(s: &str) -> String {
    // Byte scan: ASCII controls, or C1 controls (UTF-8 `C2 80`..`C2 9F`).
    let b = s.as_bytes();
    let suspicious = b
        .iter()
        .any(|&c| (c < 0x20 && c != b'\n' && c != b'\t') || c == 0x7f || c == 0xc2);
    let needs_work = suspicious
        && b.iter().enumerate().any(|(i, &c)| {
            (c < 0x20 && c != b'\n' && c != b'\t')
                || c == 0x7f
                || (c == 0xc2 && b.get(i + 1).is_some_and(|&n| n < 0xa0))
        });
    if !needs_work {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

pub(super) fn sane_message_id(id: &str) -> Option<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    if id.is_empty()
        || id.len() > MAX_MESSAGE_ID_BYTES
        || id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        None
    } else {
        Some(id.to_string())
    }
}

/// Most Message-IDs kept from References / In-Reply-To: the thread root and the latest ones
/// (RFC 5322 §3.6.4 lets a reply trim the middle). A hostile header with a million ids would
/// otherwise cost memory here and time wherever the list is searched.
pub(super) const MAX_REFERENCES: usize = 100;

pub(super) fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    let list: Vec<&str> = match value {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(l) => l.iter().map(|s| s.as_ref()).collect(),
        _ => Vec::new(),
    };
    let kept: Vec<&str> = if list.len() > MAX_REFERENCES {
        let tail = list
            .get(list.len() - (MAX_REFERENCES - 1)..)
            .unwrap_or_default();
        list.iter().take(1).chain(tail).copied().collect()
    } else {
        list
    };
    let mut out: Vec<String> = Vec::new();
    for id in kept.into_iter().filter_map(sane_message_id) {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// A mailbox with its address in canonical form: lower-cased, the domain without the
/// trailing dot of a fully qualified name (`a@example.cn.` is `a@example.cn`: one sender for
/// the partner check, the reply address and the per-recipient rate limit).
pub(crate) fn mailbox(name: Option<&str>, address: Option<&str>) -> Option<Mailbox> {
    let address = address?.trim().trim_matches(['<', '>']).trim();
    let address = match address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.trim_end_matches('.')),
        None => address.to_string(),
    };
    // Whitespace or control characters (a NUL, say) make no address a relay would deliver to
    // as written: such a sender is no one we can answer. Nor is an encoded word in the address
    // (`=?utf-8?B?…?=@…`, RFC 2047 §5 forbids it there): readers of our reply disagree on
    // whether to decode it, so it would not reliably name the sender.
    if sender::address_domain(&address).is_none()
        || address.chars().any(|c| c.is_whitespace() || c.is_control())
        || address.contains("=?")
    {
        return None;
    }
    Some(Mailbox {
        name: name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()),
        // ASCII only: Unicode lower-casing turns the Kelvin sign into `k` (see authorise).
        address: address.to_ascii_lowercase(),
    })
}

pub(super) fn first_mailbox(addr: &Address<'_>) -> Option<Mailbox> {
    addr.iter().find_map(|a| mailbox(a.name(), a.address()))
}

pub(super) fn all_mailboxes(addr: &Address<'_>) -> Vec<Mailbox> {
    addr.iter()
        .filter_map(|a| mailbox(a.name(), a.address()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::mailbox;

    #[test]
    fn only_an_address_a_relay_delivers_as_written_is_a_mailbox() {
        let cases = [
            ("WangWei@Partner.example.", Some("wangwei@partner.example")),
            ("<a@b.example>", Some("a@b.example")),
            ("no-domain", None),
            ("a b@c.example", None),
            ("a@c.example\0\x01", None),
            ("=?utf-8?B?broken?=@sakura-net.example.jp", None),
        ];
        for (input, expected) in cases {
            let got = mailbox(Some(" Name "), Some(input)).map(|m| m.address);
            assert_eq!(got.as_deref(), expected, "{input:?}");
        }
    }
}
