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

use mail_parser::{HeaderName, MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

use super::automated::{self, Signals};
use super::loan_numbers::{Extraction, LoanExtractor};
use super::mime::{
    all_mailboxes, clean_text, collect_bodies, first_mailbox, header_end, header_fields_cut, ids,
    mime_shape, raw_headers, sane_message_id, type_of, Bodies, Parsed, MAX_HEADER_FIELDS,
};
use super::{quotes, sender, subject, text, Inspection, Rules};

pub fn inspect(rules: &Rules, raw: &[u8]) -> Inspection {
    inspect_sized(rules, raw, raw.len() as u64)
}

/// `full_size`: the mail's size at its source. Sources hand over only the header section of
/// a mail over `mail.max_message_bytes`, so `raw` alone cannot tell that it is oversize.
pub fn inspect_sized(rules: &Rules, raw: &[u8], full_size: u64) -> Inspection {
    let full_size = full_size.max(raw.len() as u64);
    let normalized = normalize_bare_cr(raw);
    let raw: &[u8] = &normalized;
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
    unreadable(rules, raw, full_size)
}

/// The inspection of a mail that could not be read at all: keyed by its hash, sent to review.
pub(crate) fn unreadable(rules: &Rules, raw: &[u8], full_size: u64) -> Inspection {
    let mut i = empty_inspection(full_size.max(raw.len() as u64), rules);
    i.message_key = hash_key(raw);
    i.notes
        .push("internal error while parsing; sent to review".into());
    i
}

/// Classic Mac mail ends its lines with a bare CR, which mail-parser does not take as a line
/// end (no header at all would be read). When the mail's first line ends in a bare CR, every
/// bare CR becomes CRLF; other mail is left as it is.
pub(crate) fn normalize_bare_cr(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let first_end = raw.iter().position(|&b| b == b'\r' || b == b'\n');
    let bare_first =
        first_end.is_some_and(|i| raw.get(i) == Some(&b'\r') && raw.get(i + 1) != Some(&b'\n'));
    if !bare_first {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32);
    for (i, &b) in raw.iter().enumerate() {
        out.push(b);
        if b == b'\r' && raw.get(i + 1) != Some(&b'\n') {
            out.push(b'\n');
        }
    }
    std::borrow::Cow::Owned(out)
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
        dmarc: None,
        sender_ambiguous: false,
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
            apply_numbers(&mut ins, ex, NumberSource::Body);
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
    let from_fields = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("from"))
        .count();
    let from_addresses = msg.from().map_or(0, |a| a.iter().count());
    if from_fields > 1 || from_addresses > 1 {
        ins.sender_ambiguous = true;
        ins.findings.push(format!(
            "sender:from_fields:{from_fields}:addresses:{from_addresses}"
        ));
    }
    if let Some((id, result)) = sender::trusted_dmarc(auth_values, &rules.trusted_authserv_ids) {
        if result == "fail" {
            ins.dmarc_fail = true;
            ins.findings.push(format!("dmarc:fail:{id}"));
        }
        ins.dmarc = Some(result);
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

    let (ex, source) = numbers_from(
        &rules.loans,
        &NumberTexts {
            fresh: &fresh,
            main: &bodies.main,
            nested: &bodies.nested,
            html_alternative: &bodies.html_alternative,
            subject: &ins.subject,
        },
    );
    apply_numbers(&mut ins, ex, source);

    ins.text = full_text;
    ins
}

/// Where a mail's loan numbers were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberSource {
    /// The text the sender wrote (quotes and signatures cut off): the usual case.
    FreshText,
    /// Quoted text, attached (forwarded) messages, or an unused HTML alternative.
    Quotes,
    /// The subject line.
    Subject,
    /// The raw body of a mail without readable headers.
    Body,
}

impl NumberSource {
    /// The finding recorded for staff (`numbers:from_*`).
    pub fn finding(self) -> &'static str {
        match self {
            NumberSource::FreshText => "numbers:from_fresh_text",
            NumberSource::Quotes => "numbers:from_quotes",
            NumberSource::Subject => "numbers:from_subject",
            NumberSource::Body => "numbers:from_body",
        }
    }
}

/// The texts of a mail the numbers may come from.
#[derive(Debug, Clone, Copy, Default)]
pub struct NumberTexts<'a> {
    /// What the sender wrote, quotes cut off.
    pub fresh: &'a str,
    /// The whole main body, quotes included.
    pub main: &'a str,
    /// Attached (forwarded) messages.
    pub nested: &'a str,
    /// An HTML alternative not used as the main body, reduced to text.
    pub html_alternative: &'a str,
    pub subject: &'a str,
}

/// Which text the loan numbers come from: the fresh text; if it names none, the whole body,
/// then attached messages, then an unused HTML alternative (together, in that order); if
/// still none, the subject. A truncated extraction (more numbers than allowed) stops the
/// search where it is: those numbers go to review as they are.
pub fn numbers_from(loans: &LoanExtractor, texts: &NumberTexts<'_>) -> (Extraction, NumberSource) {
    let mut ex = loans.extract(texts.fresh);
    if !ex.numbers.is_empty() || ex.truncated {
        return (ex, NumberSource::FreshText);
    }
    loans.extract_into(texts.main, &mut ex);
    loans.extract_into(texts.nested, &mut ex);
    loans.extract_into(texts.html_alternative, &mut ex);
    if !ex.numbers.is_empty() || ex.truncated {
        return (ex, NumberSource::Quotes);
    }
    (loans.extract(texts.subject), NumberSource::Subject)
}

fn apply_numbers(ins: &mut Inspection, ex: Extraction, source: NumberSource) {
    if ex.numbers.is_empty() {
        ins.findings.push("numbers:none".into());
    } else if source != NumberSource::FreshText {
        ins.findings.push(source.finding().into());
    }
    if ex.truncated {
        ins.findings.push("numbers:truncated".into());
    }
    ins.loan_numbers = ex.numbers;
    ins.loan_numbers_truncated = ex.truncated;
}

#[cfg(test)]
mod tests;
