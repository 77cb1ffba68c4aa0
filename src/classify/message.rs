//! mail-parser adapter: raw bytes → [`Inspection`].
//!
//! mail-parser does the MIME work (transfer encodings, charsets including GBK/Big5/ISO-2022-JP,
//! malformed structure). On top of it this module decodes the subject itself (to join
//! encoded-words that split a character, and to guess raw 8-bit charsets), reduces HTML-only
//! bodies to text, and gathers the signals for the rules in the sibling modules.
//!
//! `inspect` never panics: the whole run sits behind `catch_unwind`, so even a parser bug on
//! hostile bytes degrades to "send to review" instead of killing the pipeline.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::{
    Address, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType,
};
use sha2::{Digest, Sha256};

use super::automated::{self, Signals};
use super::loan_numbers::Extraction;
use super::{quotes, sender, subject, text, Inspection, Mailbox, Rules, OWN_MAIL_HEADER};

/// Longest Message-ID used as idempotency key; longer (or odd) ones fall back to a hash.
const MAX_MESSAGE_ID_BYTES: usize = 500;

pub fn inspect(rules: &Rules, raw: &[u8]) -> Inspection {
    inspect_sized(rules, raw, raw.len() as u64)
}

/// `full_size`: the mail's size at its source. Sources hand over only the header section of
/// a mail over `mail.max_message_bytes`, so `raw` alone cannot tell that it is oversize.
pub fn inspect_sized(rules: &Rules, raw: &[u8], full_size: u64) -> Inspection {
    let full_size = full_size.max(raw.len() as u64);
    if let Ok(inspection) = catch_unwind(AssertUnwindSafe(|| {
        inspect_parsed(rules, raw, full_size, Mode::Mime)
    })) {
        return inspection;
    }
    // The MIME walk failed (mail-parser asserts on some hostile structures in debug builds):
    // read the headers and take the body as one plain text.
    if let Ok(mut inspection) = catch_unwind(AssertUnwindSafe(|| {
        inspect_parsed(rules, raw, full_size, Mode::RawBody)
    })) {
        inspection
            .notes
            .push("MIME structure unreadable; body read as plain text".into());
        return inspection;
    }
    let mut i = empty_inspection(full_size, rules);
    i.message_key = hash_key(raw);
    i.notes
        .push("internal error while parsing; sent to review".into());
    i
}

/// How much of the message to parse.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Full MIME parse (headers only when oversize).
    Mime,
    /// Headers parsed, the rest taken as one text: the fallback for unparsable MIME.
    RawBody,
}

fn empty_inspection(full_size: u64, rules: &Rules) -> Inspection {
    Inspection {
        message_id: None,
        message_key: String::new(),
        subject: String::new(),
        from: None,
        reply_to: Vec::new(),
        references: Vec::new(),
        date: None,
        automated: None,
        request_language: None,
        rma_language: None,
        loan_numbers: Vec::new(),
        loan_numbers_truncated: false,
        dmarc_fail: false,
        oversize: full_size > rules.max_message_bytes as u64,
        mime_too_deep: false,
        too_many_parts: false,
        too_many_headers: false,
        text: String::new(),
        notes: Vec::new(),
        findings: Vec::new(),
    }
}

/// `sha256:<hex>` of raw bytes: the message key of a mail without a usable Message-ID.
pub(crate) fn hash_key(raw: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(raw)))
}

/// Body texts of one (possibly nested) message.
#[derive(Default)]
struct Bodies {
    /// text/plain parts (or HTML reduced to text when there is no plain alternative).
    main: String,
    /// HTML alternatives not used for `main`, reduced to text: a last resort for numbers.
    html_alternative: String,
    /// Forwarded / attached messages (`message/rfc822`), with their subject line.
    nested: String,
    /// `type/subtype` of every part, nested ones included.
    part_types: Vec<String>,
    /// `type/subtype` of the parts inside nested messages.
    nested_part_types: Vec<String>,
    /// A nested message is one of ours (bounce or auto-reply quoting our reply).
    nested_own_mail: bool,
    notes: Vec<String>,
}

fn inspect_parsed(rules: &Rules, raw: &[u8], full_size: u64, mode: Mode) -> Inspection {
    let mut ins = empty_inspection(full_size, rules);
    let parser = MessageParser::new();
    let header_cut = header_fields_cut(raw, MAX_HEADER_FIELDS);
    let parsed = if let Some(cut) = header_cut {
        ins.too_many_headers = true;
        ins.notes.push(format!(
            "more than {MAX_HEADER_FIELDS} header fields: only the first {MAX_HEADER_FIELDS} read, \
             no body"
        ));
        ins.findings.push("headers:too_many".into());
        parser.parse_headers(raw.get(..cut).unwrap_or(raw))
    } else if ins.oversize || mode == Mode::RawBody {
        parser.parse_headers(raw)
    } else {
        parser.parse(raw)
    };
    let Some(msg) = parsed.map(Parsed) else {
        ins.message_key = hash_key(raw);
        ins.notes.push("no header fields found".into());
        if !ins.oversize {
            ins.text = clean_text(&String::from_utf8_lossy(raw));
            let ex = rules.loans.extract(&ins.text);
            apply_numbers(&mut ins, ex, "numbers:from_body");
        }
        return ins;
    };
    if ins.oversize {
        ins.notes.push(format!(
            "message of {} bytes exceeds the {}-byte limit: only headers read",
            full_size, rules.max_message_bytes
        ));
        ins.findings.push("oversize".into());
    } else if mode == Mode::Mime && !ins.too_many_headers {
        let shape = mime_shape(&msg, rules.max_mime_parts);
        if shape.depth > rules.max_mime_depth {
            ins.mime_too_deep = true;
            ins.notes.push(format!(
                "MIME nesting of {} levels exceeds the limit of {}: only headers read",
                shape.depth, rules.max_mime_depth
            ));
            ins.findings.push(format!("mime:too_deep:{}", shape.depth));
        }
        if shape.parts > rules.max_mime_parts {
            ins.too_many_parts = true;
            ins.notes.push(format!(
                "more than {} MIME parts: only headers read",
                rules.max_mime_parts
            ));
            ins.findings.push("mime:too_many_parts".into());
        }
    }
    let headers_only =
        ins.oversize || ins.mime_too_deep || ins.too_many_parts || ins.too_many_headers;

    let headers = raw_headers(&msg);
    let root_ct = msg.root_part().content_type();
    let body_charset = root_ct
        .and_then(|ct| ct.attribute("charset"))
        .map(str::to_string)
        .or_else(|| {
            msg.text_body
                .first()
                .and_then(|id| msg.parts.get(*id as usize))
                .and_then(|p| p.content_type())
                .and_then(|ct| ct.attribute("charset"))
                .map(str::to_string)
        });

    // Threading and identity.
    ins.message_id = msg.message_id().and_then(sane_message_id);
    ins.message_key = match &ins.message_id {
        Some(id) => format!("mid:{id}"),
        None => hash_key(raw),
    };
    ins.references = ids(msg.references());
    for id in ids(msg.in_reply_to()) {
        if !ins.references.contains(&id) {
            ins.references.push(id);
        }
    }
    ins.date = msg
        .date()
        .filter(|d| d.is_valid())
        .map(|d| d.to_timestamp());

    // Subject: own decoding of the raw bytes (see `text::decode_header`).
    ins.subject = msg
        .root_part()
        .headers
        .iter()
        .find(|h| h.name == HeaderName::Subject)
        .and_then(|h| raw.get(h.offset_start() as usize..h.offset_end() as usize))
        .map(|bytes| text::decode_header(bytes, body_charset.as_deref()))
        .or_else(|| msg.subject().map(str::to_string))
        .unwrap_or_default();
    ins.request_language = rules.subject.matches(&ins.subject);
    let has_header = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if ins.subject.contains('\u{fffd}') {
        ins.notes.push("subject not fully decodable".into());
    }
    if ins.date.is_none() && has_header("date") {
        ins.notes.push("unparsable Date header".into());
    }
    if ins.message_id.is_none() && has_header("message-id") {
        ins.notes
            .push("unusable Message-ID; key is the content hash".into());
    }

    // Sender.
    ins.from = msg.from().and_then(first_mailbox);
    if ins.from.is_none() {
        ins.notes.push("no usable From address".into());
    }
    ins.reply_to = msg.reply_to().map(all_mailboxes).unwrap_or_default();

    let auth_values: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("authentication-results"))
        .map(|(_, v)| v.as_str())
        .collect();
    if let Some(id) = sender::trusted_dmarc_fail(auth_values, &rules.trusted_authserv_ids) {
        ins.dmarc_fail = true;
        ins.findings.push(format!("dmarc:fail:{id}"));
    }

    // Bodies.
    let bodies = if headers_only {
        Bodies {
            part_types: vec![type_of(root_ct)],
            ..Bodies::default()
        }
    } else if mode == Mode::RawBody {
        let body = raw.get(header_end(raw)..).unwrap_or_default();
        Bodies {
            main: clean_text(&text::decode_charset(body, body_charset.as_deref())),
            part_types: vec![type_of(root_ct)],
            ..Bodies::default()
        }
    } else {
        collect_bodies(rules, &msg, 0)
    };
    ins.notes.extend(bodies.notes.iter().cloned());
    let fresh = quotes::fresh_part(&bodies.main);
    ins.rma_language = rules
        .rma
        .matches(&ins.subject)
        .or_else(|| rules.rma.matches(&fresh));
    if let Some(l) = ins.rma_language {
        ins.findings.push(format!("rma:alias:{l}"));
    }

    let root_type = type_of(root_ct);
    let report_type = root_ct
        .and_then(|ct| ct.attribute("report-type"))
        .map(|r| r.trim().to_ascii_lowercase());
    let full_text = if bodies.nested.is_empty() {
        bodies.main.clone()
    } else {
        format!("{}\n\n{}", bodies.main, bodies.nested)
    };
    // A report inside a message a person forwarded as an attachment is not a report to us.
    let mut part_types = bodies.part_types.clone();
    if !subject::has_forward_prefix(&ins.subject) {
        part_types.extend(bodies.nested_part_types.iter().cloned());
    }
    let signals = Signals {
        headers: &headers,
        subject: &ins.subject,
        from: ins.from.as_ref(),
        message_id: msg.message_id(),
        root_type: &root_type,
        report_type: report_type.as_deref(),
        part_types: &part_types,
        fresh_text: &fresh,
        full_text: &full_text,
        nested_own_mail: bodies.nested_own_mail,
    };
    ins.automated = automated::detect(rules, &signals);
    if let Some(reason) = &ins.automated {
        ins.findings.insert(0, format!("automated:{reason}"));
    }

    // Numbers: fresh text, else the whole body, else the subject.
    let mut ex = rules.loans.extract(&fresh);
    let mut source = "numbers:from_fresh_text";
    if ex.numbers.is_empty() && !ex.truncated {
        rules.loans.extract_into(&bodies.main, &mut ex);
        rules.loans.extract_into(&bodies.nested, &mut ex);
        rules.loans.extract_into(&bodies.html_alternative, &mut ex);
        source = "numbers:from_quotes";
    }
    if ex.numbers.is_empty() && !ex.truncated {
        ex = rules.loans.extract(&ins.subject);
        source = "numbers:from_subject";
    }
    apply_numbers(&mut ins, ex, source);

    ins.text = full_text;
    ins
}

fn apply_numbers(ins: &mut Inspection, ex: Extraction, source: &str) {
    if ex.numbers.is_empty() {
        ins.findings.push("numbers:none".into());
    } else if source != "numbers:from_fresh_text" {
        ins.findings.push(source.into());
    }
    if ex.truncated {
        ins.findings.push("numbers:truncated".into());
    }
    ins.loan_numbers = ex.numbers;
    ins.loan_numbers_truncated = ex.truncated;
}

/// Top-level headers as (name, unfolded raw value). Raw bytes rather than mail-parser's typed
/// values: the automated and DMARC rules need exact header text (`Return-Path: <>`,
/// RFC 8601 comments) whatever type mail-parser gives the field.
fn raw_headers(msg: &Message<'_>) -> Vec<(String, String)> {
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

fn type_of(ct: Option<&mail_parser::ContentType<'_>>) -> String {
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
struct Parsed<'x>(Message<'x>);

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

fn detach_nested<'x>(msg: &mut Message<'x>, pending: &mut Vec<Message<'x>>) {
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
struct MimeShape {
    /// 1 for a single-part mail; each multipart or attached message adds a level.
    depth: usize,
    /// Parts counted, attached messages' parts included; the walk stops after `max_parts + 1`.
    parts: usize,
}

/// Walks the tree without recursion (see [`Parsed`]) and with bounded work.
fn mime_shape(msg: &Message<'_>, max_parts: usize) -> MimeShape {
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
const MAX_NESTING: usize = 4;

fn collect_bodies(rules: &Rules, msg: &Message<'_>, depth: usize) -> Bodies {
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
fn redecode_if_garbled<'t>(
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
const MAX_HEADER_FIELDS: usize = 1000;

/// Where the header field after the first `max` starts, when the top-level header section
/// has more than `max` fields (continuation lines belong to their field).
fn header_fields_cut(raw: &[u8], max: usize) -> Option<usize> {
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
fn header_end(raw: &[u8]) -> usize {
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
fn recover_text(part: &mail_parser::MessagePart<'_>) -> Option<String> {
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
fn clean_text(s: &str) -> String {
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

fn sane_message_id(id: &str) -> Option<String> {
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
const MAX_REFERENCES: usize = 100;

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
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
fn mailbox(name: Option<&str>, address: Option<&str>) -> Option<Mailbox> {
    let address = address?.trim().trim_matches(['<', '>']).trim();
    let address = match address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.trim_end_matches('.')),
        None => address.to_string(),
    };
    if sender::address_domain(&address).is_none() || address.chars().any(char::is_whitespace) {
        return None;
    }
    Some(Mailbox {
        name: name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()),
        address: address.to_lowercase(),
    })
}

fn first_mailbox(addr: &Address<'_>) -> Option<Mailbox> {
    addr.iter().find_map(|a| mailbox(a.name(), a.address()))
}

fn all_mailboxes(addr: &Address<'_>) -> Vec<Mailbox> {
    addr.iter()
        .filter_map(|a| mailbox(a.name(), a.address()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{decide, Action, Decision, Kind, Lookup, ReviewReason};
    use crate::config::Config;
    use crate::domain::{Language, LoanNumber, Partner, Shipment};

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
}
