//! Machine-generated mail detection: such mail is never answered (answering a bounce or an
//! out-of-office reply starts a mail loop; answering a list copy leaks partner data).
//!
//! Three tiers, first match wins:
//! 1. **Our own mail** coming back (`X-Trialdesk` header, our address, our Message-ID domain,
//!    our headers quoted inside a bounce).
//! 2. **Unambiguous markers**: RFC 3834 `Auto-Submitted`, `Precedence`, autoresponder and list
//!    headers, `MAILER-DAEMON`/`postmaster`, `Return-Path: <>`, `multipart/report` and
//!    DSN/MDN/ARF parts, Exchange NDR headers, well-known bounce / auto-reply / read-receipt
//!    subjects at the start of the subject.
//! 3. **Circumstantial markers** (two needed): a bounce word somewhere in the subject, bounce
//!    phrases or SMTP status codes in the fresh text, a "Mail Delivery System" display name, an
//!    attached original message. Many MTAs (qmail, Exim, Notes, carriers) send bounces with no
//!    DSN structure at all, so structure alone is not enough.
//!
//! Subject heuristics are skipped when the subject starts with a reply or forward prefix: a
//! person forwarding a bounce or a shipping notice is a person. The sender and body checks
//! still run (bounces from `post_master@…` arrive as `Re: <your subject>`).
//!
//! Sender local parts are compared after folding case and dropping quotes, backslash escapes
//! and `-`/`_`/`.` (`"Post\_Master"@…`, `MAILER_DAEMON@…`, `mailer.daemon@…`).

mod headers;
mod phrases;
mod subject_body;

use super::{Mailbox, Rules, OWN_MAIL_HEADER};
use headers::{header_markers, structure_markers};
use subject_body::subject_and_body_markers;

/// What the detector looks at, gathered by `message`.
#[derive(Debug, Default, Clone)]
pub struct Signals<'a> {
    /// Top-level headers: (name, raw unfolded value), in order.
    pub headers: &'a [(String, String)],
    pub subject: &'a str,
    pub from: Option<&'a Mailbox>,
    pub message_id: Option<&'a str>,
    /// Lower-cased `type/subtype` of the root part.
    pub root_type: &'a str,
    /// Lower-cased `report-type` parameter of the root part, when present.
    pub report_type: Option<&'a str>,
    /// Lower-cased `type/subtype` of every part, nested messages included.
    pub part_types: &'a [String],
    /// Fresh part of the main text (see `quotes`).
    pub fresh_text: &'a str,
    /// The whole readable text, nested messages included.
    pub full_text: &'a str,
    /// A nested message carries our `X-Trialdesk` header or Message-ID.
    pub nested_own_mail: bool,
}

impl Signals<'_> {
    fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_header(&self, name: &str) -> bool {
        self.header_values(name).next().is_some()
    }
}

/// Why the mail is machine-generated, or `None` for mail written by a person.
pub fn detect(rules: &Rules, s: &Signals<'_>) -> Option<String> {
    own_mail(rules, s)
        .or_else(|| header_markers(s))
        .or_else(|| structure_markers(s))
        .or_else(|| subject_and_body_markers(s))
}

/// Our own mail coming back (never answer ourselves).
fn own_mail(rules: &Rules, s: &Signals<'_>) -> Option<String> {
    if s.has_header(OWN_MAIL_HEADER) {
        return Some("own_mail_header".into());
    }
    if let Some(from) = s.from {
        if rules
            .own_addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&from.address))
        {
            return Some("own_address".into());
        }
    }
    if let Some(id) = s.message_id {
        if is_own_message_id(rules, id) {
            return Some("own_message_id".into());
        }
    }
    let forwarded_by_person = super::subject::has_forward_prefix(s.subject);
    if !forwarded_by_person {
        if s.nested_own_mail {
            return Some("own_mail_returned".into());
        }
        let needle = OWN_MAIL_HEADER.len();
        if s.full_text.lines().any(|l| {
            let l = l.trim_start();
            l.get(..needle)
                .is_some_and(|h| h.eq_ignore_ascii_case(OWN_MAIL_HEADER))
                && l.get(needle..)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
        }) {
            return Some("own_mail_returned".into());
        }
    }
    None
}

/// Is this Message-ID (without brackets) one trialdesk generated?
/// Whether a Message-ID is one trialdesk generated: exactly our domain (a subdomain is
/// somebody else's host) and the shape of `outbound::compose` ids, `td.<millis>.<16 hex>`.
pub fn is_own_message_id(rules: &Rules, id: &str) -> bool {
    let domain = rules.own_message_id_domain.trim();
    if domain.is_empty() {
        return false;
    }
    let Some((left, right)) = id.trim().trim_matches(['<', '>']).rsplit_once('@') else {
        return false;
    };
    if !right.eq_ignore_ascii_case(domain) {
        return false;
    }
    let mut parts = left.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(prefix), Some(millis), Some(random), None)
            if prefix == super::OWN_MESSAGE_ID_PREFIX.trim_end_matches('.')
                && !millis.is_empty()
                && millis.bytes().all(|b| b.is_ascii_digit())
                && random.len() == 16
                && random.bytes().all(|b| b.is_ascii_hexdigit())
    )
}

#[cfg(test)]
mod tests;
