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
use super::{quotes, sender, text, Inspection, Mailbox, Rules, OWN_MAIL_HEADER};

/// Longest Message-ID used as idempotency key; longer (or odd) ones fall back to a hash.
const MAX_MESSAGE_ID_BYTES: usize = 500;

pub fn inspect(rules: &Rules, raw: &[u8]) -> Inspection {
    match catch_unwind(AssertUnwindSafe(|| inspect_parsed(rules, raw))) {
        Ok(inspection) => inspection,
        Err(_) => {
            let mut i = empty_inspection(raw, rules);
            i.message_key = hash_key(raw);
            i.notes
                .push("internal error while parsing; sent to review".into());
            i
        }
    }
}

fn empty_inspection(raw: &[u8], rules: &Rules) -> Inspection {
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
        loan_numbers: Vec::new(),
        loan_numbers_truncated: false,
        dmarc_fail: false,
        oversize: raw.len() > rules.max_message_bytes,
        text: String::new(),
        notes: Vec::new(),
        findings: Vec::new(),
    }
}

fn hash_key(raw: &[u8]) -> String {
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
    /// A nested message is one of ours (bounce or auto-reply quoting our reply).
    nested_own_mail: bool,
    notes: Vec<String>,
}

fn inspect_parsed(rules: &Rules, raw: &[u8]) -> Inspection {
    let mut ins = empty_inspection(raw, rules);
    let parser = MessageParser::new();
    let parsed = if ins.oversize {
        parser.parse_headers(raw)
    } else {
        parser.parse(raw)
    };
    let Some(msg) = parsed else {
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
            raw.len(),
            rules.max_message_bytes
        ));
        ins.findings.push("oversize".into());
    }

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
    let bodies = if ins.oversize {
        Bodies {
            part_types: vec![type_of(root_ct)],
            ..Bodies::default()
        }
    } else {
        collect_bodies(rules, &msg, 0)
    };
    ins.notes.extend(bodies.notes.iter().cloned());
    let fresh = quotes::fresh_part(&bodies.main);

    let root_type = type_of(root_ct);
    let report_type = root_ct
        .and_then(|ct| ct.attribute("report-type"))
        .map(|r| r.trim().to_ascii_lowercase());
    let full_text = if bodies.nested.is_empty() {
        bodies.main.clone()
    } else {
        format!("{}\n\n{}", bodies.main, bodies.nested)
    };
    let signals = Signals {
        headers: &headers,
        subject: &ins.subject,
        from: ins.from.as_ref(),
        message_id: msg.message_id(),
        root_type: &root_type,
        report_type: report_type.as_deref(),
        part_types: &bodies.part_types,
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

/// Depth limit for nested messages (mail-parser itself stops at a few levels).
const MAX_NESTING: usize = 4;

fn collect_bodies(rules: &Rules, msg: &Message<'_>, depth: usize) -> Bodies {
    let mut b = Bodies::default();
    let mut main_parts = Vec::new();
    for id in &msg.text_body {
        if let Some(part) = msg.parts.get(*id as usize) {
            match &part.body {
                PartType::Text(t) => main_parts.push(clean_text(t)),
                PartType::Html(h) => main_parts.push(clean_text(&text::html_to_text(h))),
                _ => {}
            }
        }
    }
    let mut html_parts = Vec::new();
    for id in &msg.html_body {
        if msg.text_body.contains(id) {
            continue;
        }
        if let Some(PartType::Html(h)) = msg.parts.get(*id as usize).map(|p| &p.body) {
            html_parts.push(clean_text(&text::html_to_text(h)));
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
                b.part_types.extend(inner.part_types);
                b.nested_own_mail |= inner.nested_own_mail;
            }
        }
    }
    b
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

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    let list: Vec<&str> = match value {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(l) => l.iter().map(|s| s.as_ref()).collect(),
        _ => Vec::new(),
    };
    let mut out: Vec<String> = Vec::new();
    for id in list.into_iter().filter_map(sane_message_id) {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

fn mailbox(name: Option<&str>, address: Option<&str>) -> Option<Mailbox> {
    let address = address?.trim().trim_matches(['<', '>']).trim();
    if sender::address_domain(address).is_none() || address.chars().any(char::is_whitespace) {
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
