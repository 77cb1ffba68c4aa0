//! Sender authorisation: may this mail's sender be answered with its partner's data?
//!
//! One function, [`authorise`], used by the pipeline's decision and by staff actions, so both
//! agree on who the sender is and which partner they speak for. The sender is identified as an
//! MTA sees it:
//!
//! - exactly one `From` header field with exactly one address; two fields or several
//!   addresses are ambiguous (which one would a person's mail client show?) → review
//!   `sender:ambiguous`;
//! - the domain compared in canonical form: ASCII case-folding, a trailing dot dropped, and a
//!   non-ASCII domain converted to its IDNA A-label (`xn--…`) *only if it is already in
//!   canonical Unicode form*. Unicode case-folding is never used: the Kelvin sign `K` (U+212A)
//!   lower-cases to `k`, so `sa\u{212A}ura-net.example.jp` would otherwise pass for
//!   `sakura-net.example.jp`; such a domain (which UTS 46 would silently remap) is no domain of
//!   any partner;
//! - subdomains do not count;
//! - DMARC, as reported by a trusted authserv-id ([`super::Rules::trusted_authserv_ids`]):
//!   `dmarc=fail` → review `dmarc_fail`; with `security.require_dmarc_pass = true`, anything
//!   but a trusted `dmarc=pass` (none, temperror, permerror, policy, no trusted header at all)
//!   → review `dmarc_not_pass`. Without that setting a mail without a trusted
//!   Authentication-Results header is judged by its From domain alone.

use super::{sender::address_domain, Mailbox, ReviewReason};
use crate::domain::Partner;

/// How strict sender authorisation is (`[security]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderPolicy {
    /// Only a trusted `dmarc=pass` is answered automatically.
    pub require_dmarc_pass: bool,
}

/// Who sent the mail, as read from its header.
#[derive(Debug, Clone, Copy)]
pub struct SenderIdentity<'a> {
    /// The (first) From address.
    pub from: Option<&'a Mailbox>,
    /// More than one From header field, or more than one address in it.
    pub ambiguous: bool,
}

/// What the trusted authserv-ids said about the mail.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthVerdict<'a> {
    /// The DMARC result of a trusted `Authentication-Results` header (lower-case), if any.
    pub dmarc: Option<&'a str>,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorisation<'p> {
    /// The partner the sender speaks for (the candidate owns the sender's canonical domain).
    pub partner: Option<&'p Partner>,
    /// The sender's canonical domain (None when missing or not a usable domain).
    pub domain: Option<String>,
    /// Why a person must look before anything is sent automatically (empty: authorised).
    pub review: Vec<ReviewReason>,
    /// Machine-readable reasons for the decision log (`sender:partner:P01`, …).
    pub reasons: Vec<String>,
}

impl Authorisation<'_> {
    /// Nothing stands in the way of an automatic answer.
    pub fn authorised(&self) -> bool {
        self.partner.is_some() && self.review.is_empty()
    }
}

/// Canonical form of a domain for comparison: ASCII lower-case without a trailing dot; a
/// non-ASCII domain as its IDNA A-label, provided IDNA maps it to itself (apart from ASCII
/// case). None for anything else.
pub fn canonical_domain(domain: &str) -> Option<String> {
    let d = domain.trim().trim_end_matches('.');
    if d.is_empty() || d.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let lower = d.to_ascii_lowercase();
    if lower.is_ascii() {
        return Some(lower);
    }
    let ascii = idna::domain_to_ascii(&lower).ok()?;
    let (unicode, result) = idna::domain_to_unicode(&ascii);
    // A domain that IDNA would remap (Kelvin sign → k, full-width letters, …) is not the
    // domain it maps to.
    (result.is_ok() && unicode == lower).then_some(ascii)
}

/// Whether `partner` owns `domain` (both compared canonically; subdomains do not count).
pub fn partner_owns_domain(partner: &Partner, domain: &str) -> bool {
    let Some(wanted) = canonical_domain(domain) else {
        return false;
    };
    partner
        .domains
        .iter()
        .any(|d| canonical_domain(d).as_deref() == Some(wanted.as_str()))
}

/// Decides whether the sender may be answered for `candidate` (the partner the store found for
/// the sender's domain, if any).
pub fn authorise<'p>(
    sender: SenderIdentity<'_>,
    candidate: Option<&'p Partner>,
    auth: AuthVerdict<'_>,
    policy: &SenderPolicy,
) -> Authorisation<'p> {
    let mut review = Vec::new();
    let mut reasons = Vec::new();
    let raw_domain = sender.from.and_then(|m| address_domain(&m.address));
    let domain = raw_domain.and_then(canonical_domain);
    // Defence in depth: only believe the store's partner if it really owns the domain.
    let partner =
        candidate.filter(|p| domain.as_deref().is_some_and(|d| partner_owns_domain(p, d)));
    match (partner, raw_domain) {
        (Some(p), _) => reasons.push(format!("sender:partner:{}", p.partner_id)),
        (None, Some(d)) => reasons.push(format!(
            "sender:unknown_domain:{}",
            domain
                .clone()
                .unwrap_or_else(|| d.escape_default().to_string())
        )),
        (None, None) => reasons.push("sender:missing".to_string()),
    }
    if partner.is_none() {
        review.push(ReviewReason::UnknownSender);
    }
    if sender.ambiguous {
        reasons.push("sender:ambiguous".into());
        review.push(ReviewReason::SenderAmbiguous);
    }
    match auth.dmarc {
        Some("fail") => review.push(ReviewReason::DmarcFail),
        Some("pass") => {}
        other if policy.require_dmarc_pass => {
            reasons.push(format!("dmarc:not_pass:{}", other.unwrap_or("absent")));
            review.push(ReviewReason::DmarcNotPass);
        }
        _ => {}
    }
    Authorisation {
        partner,
        domain,
        review,
        reasons,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::Language;

    /// A partner `id` (also its name) owning `domains` (fixture, shared with `sender`'s tests).
    pub(in crate::classify) fn partner(id: &str, domains: &[&str]) -> Partner {
        Partner {
            partner_id: id.into(),
            name: id.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            admin_emails: vec![],
            language: Language::En,
            notify_shipment_updates: false,
        }
    }

    /// The address `a` without a display name.
    pub(in crate::classify) fn mb(a: &str) -> Mailbox {
        Mailbox {
            name: None,
            address: a.into(),
        }
    }

    #[test]
    fn canonical_domains() {
        let table: &[(&str, Option<&str>)] = &[
            ("Example.COM", Some("example.com")),
            ("example.com.", Some("example.com")),
            ("sakura-net.example.jp", Some("sakura-net.example.jp")),
            // Kelvin sign: Unicode lower-cases it to `k`, IDNA would remap it: neither.
            ("sa\u{212A}ura-net.example.jp", None),
            // Full-width letters are remapped by IDNA: not canonical.
            ("ｅxample.com", None),
            ("münchen.example", Some("xn--mnchen-3ya.example")),
            ("MÜNCHEN.example", None),
            ("xn--mnchen-3ya.example", Some("xn--mnchen-3ya.example")),
            ("", None),
            ("a b.example", None),
        ];
        for (d, want) in table {
            assert_eq!(canonical_domain(d).as_deref(), *want, "{d:?}");
        }
    }

    #[test]
    fn authorisation_table() {
        let p01 = partner("P01", &["huadong.example.cn", "münchen.example"]);
        let p03 = partner("P03", &["sakura-net.example.jp"]);
        let loose = SenderPolicy::default();
        let strict = SenderPolicy {
            require_dmarc_pass: true,
        };
        use ReviewReason::*;
        struct Row<'a> {
            name: &'a str,
            from: Option<&'a str>,
            ambiguous: bool,
            candidate: Option<&'a Partner>,
            dmarc: Option<&'a str>,
            policy: &'a SenderPolicy,
            partner: Option<&'a str>,
            review: &'a [ReviewReason],
        }
        let rows = [
            Row {
                name: "partner domain",
                from: Some("wangwei@huadong.example.cn"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: None,
                policy: &loose,
                partner: Some("P01"),
                review: &[],
            },
            Row {
                name: "upper-case domain",
                from: Some("wangwei@HUADONG.example.cn"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: None,
                policy: &loose,
                partner: Some("P01"),
                review: &[],
            },
            Row {
                name: "A-label of a Unicode partner domain",
                from: Some("a@xn--mnchen-3ya.example"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: None,
                policy: &loose,
                partner: Some("P01"),
                review: &[],
            },
            Row {
                name: "Kelvin sign",
                from: Some("admin@sa\u{212A}ura-net.example.jp"),
                ambiguous: false,
                candidate: Some(&p03),
                dmarc: None,
                policy: &loose,
                partner: None,
                review: &[UnknownSender],
            },
            Row {
                name: "subdomain",
                from: Some("a@mail.huadong.example.cn"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: None,
                policy: &loose,
                partner: None,
                review: &[UnknownSender],
            },
            Row {
                name: "store's partner does not own it",
                from: Some("a@evil.example"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: None,
                policy: &loose,
                partner: None,
                review: &[UnknownSender],
            },
            Row {
                name: "no sender",
                from: None,
                ambiguous: false,
                candidate: None,
                dmarc: None,
                policy: &loose,
                partner: None,
                review: &[UnknownSender],
            },
            Row {
                name: "two From",
                from: Some("wangwei@huadong.example.cn"),
                ambiguous: true,
                candidate: Some(&p01),
                dmarc: Some("pass"),
                policy: &loose,
                partner: Some("P01"),
                review: &[SenderAmbiguous],
            },
            Row {
                name: "dmarc fail",
                from: Some("wangwei@huadong.example.cn"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: Some("fail"),
                policy: &loose,
                partner: Some("P01"),
                review: &[DmarcFail],
            },
            Row {
                name: "dmarc none, loose",
                from: Some("wangwei@huadong.example.cn"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: Some("none"),
                policy: &loose,
                partner: Some("P01"),
                review: &[],
            },
            Row {
                name: "strict, pass",
                from: Some("wangwei@huadong.example.cn"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: Some("pass"),
                policy: &strict,
                partner: Some("P01"),
                review: &[],
            },
            Row {
                name: "strict, none",
                from: Some("wangwei@huadong.example.cn"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: Some("none"),
                policy: &strict,
                partner: Some("P01"),
                review: &[DmarcNotPass],
            },
            Row {
                name: "strict, temperror",
                from: Some("wangwei@huadong.example.cn"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: Some("temperror"),
                policy: &strict,
                partner: Some("P01"),
                review: &[DmarcNotPass],
            },
            Row {
                name: "strict, permerror",
                from: Some("wangwei@huadong.example.cn"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: Some("permerror"),
                policy: &strict,
                partner: Some("P01"),
                review: &[DmarcNotPass],
            },
            Row {
                name: "strict, absent",
                from: Some("wangwei@huadong.example.cn"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: None,
                policy: &strict,
                partner: Some("P01"),
                review: &[DmarcNotPass],
            },
            Row {
                name: "strict, fail",
                from: Some("wangwei@huadong.example.cn"),
                ambiguous: false,
                candidate: Some(&p01),
                dmarc: Some("fail"),
                policy: &strict,
                partner: Some("P01"),
                review: &[DmarcFail],
            },
        ];
        for row in rows {
            let from = row.from.map(mb);
            let a = authorise(
                SenderIdentity {
                    from: from.as_ref(),
                    ambiguous: row.ambiguous,
                },
                row.candidate,
                AuthVerdict { dmarc: row.dmarc },
                row.policy,
            );
            assert_eq!(
                a.partner.map(|p| p.partner_id.as_str()),
                row.partner,
                "{}",
                row.name
            );
            assert_eq!(a.review, row.review, "{}", row.name);
            assert_eq!(
                a.authorised(),
                row.partner.is_some() && row.review.is_empty(),
                "{}",
                row.name
            );
        }
    }
}
