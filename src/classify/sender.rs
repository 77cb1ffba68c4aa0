//! Sender rules: domains, `Authentication-Results` (RFC 8601), where replies may go.

use super::Mailbox;
use crate::domain::Partner;

pub use crate::domain::address_domain;

/// The local part of `local@domain`.
pub fn address_local(address: &str) -> Option<&str> {
    let (local, _) = address.trim().rsplit_once('@')?;
    Some(local.trim_matches('"'))
}

/// Is `address` inside one of the partner's registered domains (exact, case-insensitive;
/// subdomains do not count)?
pub fn partner_owns_address(partner: &Partner, address: &str) -> bool {
    address_domain(address).is_some_and(|d| super::authorise::partner_owns_domain(partner, d))
}

/// Where a reply may go: the first Reply-To address when *every* Reply-To address lies in the
/// partner's own domains, else From. Partner data never goes to an outside address.
pub fn reply_target(
    from: Option<&Mailbox>,
    reply_to: &[Mailbox],
    partner: Option<&Partner>,
) -> Option<Mailbox> {
    if let Some(p) = partner {
        if !reply_to.is_empty() && reply_to.iter().all(|m| partner_owns_address(p, &m.address)) {
            return reply_to.first().cloned();
        }
    }
    from.cloned()
}

/// One parsed `Authentication-Results` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// Lower-cased authserv-id.
    pub authserv_id: String,
    /// (method, result), both lower-cased, e.g. `("dmarc", "fail")`.
    pub results: Vec<(String, String)>,
}

impl AuthResults {
    pub fn result(&self, method: &str) -> Option<&str> {
        self.results
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, r)| r.as_str())
    }
}

/// Parses an `Authentication-Results` value (RFC 8601): authserv-id, optional version, then
/// `;`-separated resinfo (`method[/version]=result` plus properties); comments in parentheses
/// (nested, escaped) and folding are ignored. Lenient about missing `;` between results, which
/// some MTAs emit: every `word=value` token whose key has no `.` is taken as a method result.
pub fn parse_authentication_results(value: &str) -> Option<AuthResults> {
    let clean = strip_comments(value);
    let mut segments = split_unquoted(&clean, ';').into_iter();
    let head = segments.next()?;
    let authserv_id = head
        .split_whitespace()
        .next()?
        .trim_matches('"')
        .to_ascii_lowercase();
    if authserv_id.is_empty() || authserv_id.contains('=') {
        return None;
    }
    let mut results = Vec::new();
    for seg in segments {
        let joined = seg.replace(" =", "=").replace("= ", "=");
        for tok in joined.split_whitespace() {
            let Some((k, v)) = tok.split_once('=') else {
                continue;
            };
            let method = k
                .split('/')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if method.is_empty()
                || method.contains('.')
                || matches!(
                    method.as_str(),
                    "reason" | "action" | "p" | "sp" | "pct" | "dis"
                )
            {
                continue;
            }
            let result = v.trim_matches('"').to_ascii_lowercase();
            results.push((method, result));
        }
    }
    Some(AuthResults {
        authserv_id,
        results,
    })
}

/// The trusted authserv-id that reported `dmarc=fail`, if any. Headers from other
/// authserv-ids are ignored: anyone can write them.
pub fn trusted_dmarc_fail<'a>(
    header_values: impl IntoIterator<Item = &'a str>,
    trusted: &[String],
) -> Option<String> {
    header_values
        .into_iter()
        .filter_map(parse_authentication_results)
        .find(|ar| {
            trusted
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&ar.authserv_id))
                && ar.results.iter().any(|(m, r)| m == "dmarc" && r == "fail")
        })
        .map(|ar| ar.authserv_id)
}

/// The DMARC result reported by a trusted authserv-id: (authserv-id, result). A `fail` from
/// any trusted header wins over other results; otherwise the first trusted result counts.
/// Headers from other authserv-ids are ignored: anyone can write them.
pub fn trusted_dmarc<'a>(
    header_values: impl IntoIterator<Item = &'a str>,
    trusted: &[String],
) -> Option<(String, String)> {
    let mut found: Option<(String, String)> = None;
    for ar in header_values
        .into_iter()
        .filter_map(parse_authentication_results)
        .filter(|ar| {
            trusted
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&ar.authserv_id))
        })
    {
        if let Some(result) = ar.result("dmarc") {
            if result == "fail" {
                return Some((ar.authserv_id.clone(), result.to_string()));
            }
            if found.is_none() {
                found = Some((ar.authserv_id.clone(), result.to_string()));
            }
        }
    }
    found
}

/// Removes RFC 5322 comments (nested, with `\` escapes), keeping quoted strings intact.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                in_quote = !in_quote;
                out.push(c);
            }
            '(' if !in_quote => {
                depth += 1;
                if depth == 1 {
                    out.push(' ');
                }
            }
            ')' if !in_quote && depth > 0 => depth -= 1,
            '\r' | '\n' | '\t' if depth == 0 => out.push(' '),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn split_unquoted(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    for c in s.chars() {
        if c == '"' {
            in_quote = !in_quote;
        }
        if c == sep && !in_quote {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::authorise::tests::{mb, partner as fixture_partner};

    fn trusted() -> Vec<String> {
        vec!["mx.helpdesk.example".to_string()]
    }

    #[test]
    fn parses_rfc8601() {
        let ar = parse_authentication_results(
            "mx.helpdesk.example 1;\r\n\tdkim=none;\r\n\tspf=fail (mx.helpdesk.example: domain of\r\n ceo@x does not (really) designate) smtp.mailfrom=ceo@x;\r\n\tdmarc=fail (p=QUARANTINE sp=QUARANTINE dis=QUARANTINE) header.from=x",
        )
        .unwrap();
        assert_eq!(ar.authserv_id, "mx.helpdesk.example");
        assert_eq!(ar.result("dkim"), Some("none"));
        assert_eq!(ar.result("spf"), Some("fail"));
        assert_eq!(ar.result("dmarc"), Some("fail"));
        assert_eq!(ar.results.len(), 3);

        let ar = parse_authentication_results("(comment) MX.Helpdesk.Example; none").unwrap();
        assert_eq!(ar.authserv_id, "mx.helpdesk.example");
        assert!(ar.results.is_empty());

        let ar = parse_authentication_results(
            "mx.helpdesk.example; spf=pass smtp.mailfrom=a@b dkim=pass header.d=b dmarc = FAIL reason=\"x=y\"",
        )
        .unwrap();
        assert_eq!(ar.result("dmarc"), Some("fail"));
        assert_eq!(ar.result("reason"), None);

        let ar = parse_authentication_results("mx; dkim/1=pass header.i=@x").unwrap();
        assert_eq!(ar.result("dkim"), Some("pass"));

        assert!(parse_authentication_results("").is_none());
        assert!(parse_authentication_results("  ;dmarc=fail").is_none());
        assert!(parse_authentication_results("dmarc=fail").is_none());
    }

    #[test]
    fn dmarc_table() {
        for (headers, want) in [
            (
                vec!["mx.helpdesk.example; dmarc=fail header.from=x"],
                Some("mx.helpdesk.example"),
            ),
            (
                vec!["MX.HELPDESK.EXAMPLE; dmarc=fail"],
                Some("mx.helpdesk.example"),
            ),
            (vec!["relay.partner.example; dmarc=fail"], None),
            (
                vec![
                    "mx.helpdesk.example; dmarc=pass",
                    "relay.partner.example; dmarc=fail",
                ],
                None,
            ),
            (vec!["mx.helpdesk.example.evil; dmarc=fail"], None),
            (
                vec!["evil.example; x=(mx.helpdesk.example; dmarc=fail)"],
                None,
            ),
            (vec!["mx.helpdesk.example; spf=fail; dmarc=none"], None),
            (
                vec!["mx.helpdesk.example; dkim=pass (dmarc=fail in comment)"],
                None,
            ),
            (
                vec![
                    "mx.helpdesk.example; dmarc=pass",
                    "mx.helpdesk.example; dmarc=fail",
                ],
                Some("mx.helpdesk.example"),
            ),
            (vec![], None),
        ] {
            assert_eq!(
                trusted_dmarc_fail(headers.iter().copied(), &trusted()).as_deref(),
                want,
                "{headers:?}"
            );
        }
    }

    fn partner() -> Partner {
        fixture_partner("P01", &["huadong.example.cn", "hd-tech.example.com"])
    }

    #[test]
    fn reply_target_table() {
        let p = partner();
        let from = mb("a@huadong.example.cn");
        for (reply_to, partner, want) in [
            (vec![], Some(&p), "a@huadong.example.cn"),
            (
                vec![mb("b@hd-tech.example.com")],
                Some(&p),
                "b@hd-tech.example.com",
            ),
            (
                vec![mb("b@HUADONG.example.cn"), mb("c@hd-tech.example.com")],
                Some(&p),
                "b@HUADONG.example.cn",
            ),
            (
                vec![mb("b@huadong.example.cn"), mb("evil@gmail.example")],
                Some(&p),
                "a@huadong.example.cn",
            ),
            (
                vec![mb("b@mail.huadong.example.cn")],
                Some(&p),
                "a@huadong.example.cn",
            ),
            (vec![mb("evil@gmail.example")], None, "a@huadong.example.cn"),
        ] {
            assert_eq!(
                reply_target(Some(&from), &reply_to, partner)
                    .unwrap()
                    .address,
                want
            );
        }
        assert!(reply_target(None, &[], Some(&p)).is_none());
    }

    #[test]
    fn addresses() {
        assert_eq!(address_domain("a@b.c"), Some("b.c"));
        assert_eq!(address_domain("a@"), None);
        assert_eq!(address_domain("@b"), None);
        assert_eq!(address_domain("ab"), None);
        assert_eq!(address_local("MAILER-DAEMON@x"), Some("MAILER-DAEMON"));
        assert!(partner_owns_address(&partner(), "x@HuaDong.Example.CN"));
        assert!(!partner_owns_address(
            &partner(),
            "x@mail.huadong.example.cn"
        ));
        assert!(!partner_owns_address(&partner(), "huadong.example.cn"));
    }
}
