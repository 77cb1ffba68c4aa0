//! The decision table: inspection + store facts → kind, action, answers.
//!
//! | situation                                   | kind             | action             |
//! |---------------------------------------------|------------------|--------------------|
//! | machine-generated (wins over everything)    | automated        | ignore             |
//! | over `max_message_bytes`                    | (by subject)     | review `oversize`  |
//! | MIME deeper than `max_mime_depth`           | (by subject)     | review `mime_too_deep` |
//! | more parts than `max_mime_parts`            | (by subject)     | review `too_many_parts` |
//! | more than 1000 top-level header fields      | (by subject)     | review `too_many_headers` |
//! | sender domain belongs to no partner         | (by subject)     | review             |
//! | trusted `dmarc=fail`                        | (by subject)     | review             |
//! | subject is no tracking request              | other            | review             |
//! | more numbers than `max_loan_numbers`        | (by subject)     | review             |
//! | tracking request from the partner's domain  | tracking_request | reply              |
//! | RMA label request, every loan its partner's,   | rma_label_request | reply (labels    |
//! |   `return_requested`, label on file         |                  |   attached)        |
//! | RMA label request, anything else            | rma_label_request | review `rma_label_missing` |
//!
//! A mail naming an RMA label phrase (`[rma] aliases`) in its subject or fresh text is an RMA
//! label request even under a tracking subject (our tracking answers tell partners to reply
//! with "RMA label" and the loan number).
//!
//! A loan owned by another partner is answered as "not found" (the sender cannot tell it
//! from an unknown number) and flagged for staff, but the reply still goes out.

use super::sender::{address_domain, reply_target};
use super::{Action, Decision, Inspection, Kind, LoanAnswer, Lookup, ReviewReason};
use crate::domain::{Language, Partner, ShipmentStatus};

pub fn decide(inspection: &Inspection, lookup: &Lookup) -> Decision {
    let kind = if inspection.automated.is_some() {
        Kind::Automated
    } else if inspection.rma_language.is_some() {
        Kind::RmaLabelRequest
    } else if inspection.request_language.is_some() {
        Kind::TrackingRequest
    } else {
        Kind::Other
    };
    let from_domain = inspection
        .from
        .as_ref()
        .and_then(|m| address_domain(&m.address))
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase());
    // Defence in depth: only believe the store's partner if it really owns the From domain.
    let partner: Option<&Partner> = lookup
        .partner
        .as_ref()
        .filter(|p| from_domain.as_deref().is_some_and(|d| p.owns_domain(d)));
    let language = inspection
        .rma_language
        .filter(|_| kind == Kind::RmaLabelRequest)
        .or(inspection.request_language)
        .or(partner.map(|p| p.language))
        .unwrap_or(Language::En);

    let mut reasons: Vec<String> = inspection
        .findings
        .iter()
        .filter(|f| f.starts_with("automated:"))
        .cloned()
        .collect();
    reasons.push(match inspection.request_language {
        Some(l) => format!("subject:alias:{l}"),
        None if inspection.subject.trim().is_empty() => "subject:empty".to_string(),
        None => "subject:not_tracking".to_string(),
    });
    match (partner, &from_domain) {
        (Some(p), _) => reasons.push(format!("sender:partner:{}", p.partner_id)),
        (None, Some(d)) => reasons.push(format!("sender:unknown_domain:{d}")),
        (None, None) => reasons.push("sender:missing".to_string()),
    }
    reasons.extend(
        inspection
            .findings
            .iter()
            .filter(|f| !f.starts_with("automated:"))
            .cloned(),
    );

    if kind == Kind::Automated {
        return Decision {
            kind,
            action: Action::Ignore,
            language,
            partner_id: partner.map(|p| p.partner_id.clone()),
            reasons,
            review: Vec::new(),
            loans: Vec::new(),
            reply_to: None,
            listed: Vec::new(),
            listed_more: 0,
        };
    }

    let mut review = Vec::new();
    if inspection.oversize {
        review.push(ReviewReason::Oversize);
    }
    if inspection.mime_too_deep {
        review.push(ReviewReason::MimeTooDeep);
    }
    if inspection.too_many_parts {
        review.push(ReviewReason::TooManyParts);
    }
    if inspection.too_many_headers {
        review.push(ReviewReason::TooManyHeaders);
    }
    if partner.is_none() {
        review.push(ReviewReason::UnknownSender);
    }
    if inspection.dmarc_fail {
        review.push(ReviewReason::DmarcFail);
    }
    if kind == Kind::Other {
        review.push(ReviewReason::OtherSubject);
    }
    if inspection.loan_numbers_truncated {
        review.push(ReviewReason::TooManyNumbers);
    }

    let mut loans = Vec::with_capacity(inspection.loan_numbers.len());
    for n in &inspection.loan_numbers {
        let shipment = lookup.shipments.iter().find(|s| &s.loan_number == n);
        let (visible, status) = match (partner, shipment) {
            (Some(p), Some(s)) if s.partner_id == p.partner_id => (Some(s.clone()), "found"),
            (Some(_), Some(_)) => {
                if !review.contains(&ReviewReason::LoanOfOtherPartner) {
                    review.push(ReviewReason::LoanOfOtherPartner);
                }
                (None, "other_partner")
            }
            (None, Some(_)) => (None, "exists"),
            (_, None) => (None, "not_found"),
        };
        reasons.push(format!("loan:{n}:{status}"));
        if kind == Kind::RmaLabelRequest {
            let problem = match visible.as_ref() {
                None => Some("not_found"),
                Some(s) if s.status != ShipmentStatus::ReturnRequested => {
                    Some("not_return_requested")
                }
                Some(_) if !lookup.rma_labels.contains(n) => Some("no_label"),
                Some(_) => None,
            };
            match problem {
                Some(p) => {
                    reasons.push(format!("rma:{n}:{p}"));
                    if !review.contains(&ReviewReason::RmaLabelMissing) {
                        review.push(ReviewReason::RmaLabelMissing);
                    }
                }
                None => reasons.push(format!("rma:{n}:label")),
            }
        }
        loans.push(LoanAnswer {
            loan_number: n.clone(),
            shipment: visible,
        });
    }

    if kind == Kind::RmaLabelRequest
        && inspection.loan_numbers.is_empty()
        && !review.contains(&ReviewReason::RmaLabelMissing)
    {
        reasons.push("rma:no_numbers".to_string());
        review.push(ReviewReason::RmaLabelMissing);
    }
    let action = if review
        .iter()
        .any(|r| *r != ReviewReason::LoanOfOtherPartner)
    {
        Action::Review
    } else {
        Action::Reply
    };

    // No number from an authorised sender: answer from its identity (its active loans).
    let (listed, listed_more) = match partner {
        Some(p)
            if kind == Kind::TrackingRequest
                && inspection.loan_numbers.is_empty()
                && action == Action::Reply =>
        {
            let listed: Vec<_> = lookup
                .active_loans
                .iter()
                .filter(|s| s.partner_id == p.partner_id && s.status != ShipmentStatus::Returned)
                .cloned()
                .collect();
            let more = (lookup.active_total - listed.len() as i64).max(0);
            if !listed.is_empty() {
                reasons.push(format!("listed:active:{}", listed.len()));
            }
            (listed, more)
        }
        _ => (Vec::new(), 0),
    };

    let reply_to = reply_target(inspection.from.as_ref(), &inspection.reply_to, partner);
    if !inspection.reply_to.is_empty() {
        let used = reply_to.as_ref() != inspection.from.as_ref();
        reasons.push(if used {
            "reply_to:partner_domain".to_string()
        } else {
            "reply_to:ignored_outside_partner".to_string()
        });
    }

    Decision {
        kind,
        action,
        language,
        partner_id: partner.map(|p| p.partner_id.clone()),
        reasons,
        review,
        loans,
        reply_to,
        listed,
        listed_more,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Mailbox;
    use crate::domain::{LoanNumber, Shipment};

    fn ins() -> Inspection {
        Inspection {
            message_id: Some("m@x".into()),
            message_key: "mid:m@x".into(),
            subject: "试用终端追踪请求".into(),
            from: Some(mb("wangwei@huadong.example.cn")),
            reply_to: vec![],
            references: vec![],
            date: None,
            automated: None,
            request_language: Some(Language::Zh),
            rma_language: None,
            loan_numbers: vec![ln("D20261001")],
            loan_numbers_truncated: false,
            dmarc_fail: false,
            oversize: false,
            mime_too_deep: false,
            too_many_parts: false,
            too_many_headers: false,
            text: String::new(),
            notes: vec![],
            findings: vec![],
        }
    }

    fn mb(a: &str) -> Mailbox {
        Mailbox {
            name: None,
            address: a.into(),
        }
    }

    fn ln(s: &str) -> LoanNumber {
        LoanNumber::from_normalized(s.into())
    }

    fn partner(id: &str, domain: &str, language: Language) -> Partner {
        Partner {
            partner_id: id.into(),
            name: id.into(),
            domains: vec![domain.into()],
            admin_emails: vec![],
            language,
            notify_shipment_updates: false,
        }
    }

    fn p01() -> Partner {
        partner("P01", "huadong.example.cn", Language::Zh)
    }

    fn shipment(n: &str, partner_id: &str) -> Shipment {
        Shipment::minimal(ln(n), partner_id)
    }

    fn lookup(partner: Option<Partner>, shipments: Vec<Shipment>) -> Lookup {
        Lookup {
            partner,
            shipments,
            ..Lookup::default()
        }
    }

    #[test]
    fn decision_table() {
        struct Case {
            name: &'static str,
            ins: Inspection,
            lookup: Lookup,
            kind: Kind,
            action: Action,
            review: Vec<ReviewReason>,
        }
        let ok = lookup(Some(p01()), vec![shipment("D20261001", "P01")]);
        let cases = vec![
            Case {
                name: "authorised tracking request",
                ins: ins(),
                lookup: ok.clone(),
                kind: Kind::TrackingRequest,
                action: Action::Reply,
                review: vec![],
            },
            Case {
                name: "no numbers still replies",
                ins: Inspection {
                    loan_numbers: vec![],
                    ..ins()
                },
                lookup: ok.clone(),
                kind: Kind::TrackingRequest,
                action: Action::Reply,
                review: vec![],
            },
            Case {
                name: "automated wins",
                ins: Inspection {
                    automated: Some("auto_submitted".into()),
                    oversize: true,
                    dmarc_fail: true,
                    ..ins()
                },
                lookup: lookup(None, vec![]),
                kind: Kind::Automated,
                action: Action::Ignore,
                review: vec![],
            },
            Case {
                name: "unknown sender",
                ins: ins(),
                lookup: lookup(None, vec![shipment("D20261001", "P01")]),
                kind: Kind::TrackingRequest,
                action: Action::Review,
                review: vec![ReviewReason::UnknownSender],
            },
            Case {
                name: "store partner not owning the domain is not believed",
                ins: Inspection {
                    from: Some(mb("ops@mail.huadong.example.cn")),
                    ..ins()
                },
                lookup: ok.clone(),
                kind: Kind::TrackingRequest,
                action: Action::Review,
                review: vec![ReviewReason::UnknownSender],
            },
            Case {
                name: "dmarc fail",
                ins: Inspection {
                    dmarc_fail: true,
                    ..ins()
                },
                lookup: ok.clone(),
                kind: Kind::TrackingRequest,
                action: Action::Review,
                review: vec![ReviewReason::DmarcFail],
            },
            Case {
                name: "other subject",
                ins: Inspection {
                    request_language: None,
                    subject: "发票问题".into(),
                    ..ins()
                },
                lookup: ok.clone(),
                kind: Kind::Other,
                action: Action::Review,
                review: vec![ReviewReason::OtherSubject],
            },
            Case {
                name: "too many numbers",
                ins: Inspection {
                    loan_numbers_truncated: true,
                    ..ins()
                },
                lookup: ok.clone(),
                kind: Kind::TrackingRequest,
                action: Action::Review,
                review: vec![ReviewReason::TooManyNumbers],
            },
            Case {
                name: "oversize",
                ins: Inspection {
                    oversize: true,
                    ..ins()
                },
                lookup: ok.clone(),
                kind: Kind::TrackingRequest,
                action: Action::Review,
                review: vec![ReviewReason::Oversize],
            },
            Case {
                name: "mime too deep",
                ins: Inspection {
                    mime_too_deep: true,
                    ..ins()
                },
                lookup: ok.clone(),
                kind: Kind::TrackingRequest,
                action: Action::Review,
                review: vec![ReviewReason::MimeTooDeep],
            },
            Case {
                name: "too many parts",
                ins: Inspection {
                    too_many_parts: true,
                    ..ins()
                },
                lookup: ok.clone(),
                kind: Kind::TrackingRequest,
                action: Action::Review,
                review: vec![ReviewReason::TooManyParts],
            },
            Case {
                name: "loan of other partner: reply and flag",
                ins: ins(),
                lookup: lookup(Some(p01()), vec![shipment("D20261001", "P02")]),
                kind: Kind::TrackingRequest,
                action: Action::Reply,
                review: vec![ReviewReason::LoanOfOtherPartner],
            },
            Case {
                name: "no From at all",
                ins: Inspection {
                    from: None,
                    ..ins()
                },
                lookup: lookup(None, vec![]),
                kind: Kind::TrackingRequest,
                action: Action::Review,
                review: vec![ReviewReason::UnknownSender],
            },
        ];
        for c in cases {
            let d = decide(&c.ins, &c.lookup);
            assert_eq!(d.kind, c.kind, "{}", c.name);
            assert_eq!(d.action, c.action, "{}", c.name);
            assert_eq!(d.review, c.review, "{}", c.name);
            if d.action == Action::Review {
                assert!(!d.review.is_empty(), "{}", c.name);
            }
        }
    }

    #[test]
    fn other_partner_data_never_shown() {
        let i = Inspection {
            loan_numbers: vec![ln("D1"), ln("D2"), ln("D3")],
            ..ins()
        };
        let d = decide(
            &i,
            &lookup(
                Some(p01()),
                vec![shipment("D1", "P01"), shipment("D2", "P02")],
            ),
        );
        let shown: Vec<_> = d.loans.iter().map(|l| l.shipment.is_some()).collect();
        assert_eq!(shown, [true, false, false]);
        assert!(d.reasons.contains(&"loan:D1:found".to_string()));
        assert!(d.reasons.contains(&"loan:D2:other_partner".to_string()));
        assert!(d.reasons.contains(&"loan:D3:not_found".to_string()));
        // Unknown sender: nothing is shown.
        let d = decide(&i, &lookup(None, vec![shipment("D1", "P01")]));
        assert!(d.loans.iter().all(|l| l.shipment.is_none()));
        assert!(d.reasons.contains(&"loan:D1:exists".to_string()));
    }

    #[test]
    fn language_and_reasons() {
        let d = decide(&ins(), &lookup(Some(p01()), vec![]));
        assert_eq!(d.language, Language::Zh);
        assert_eq!(d.partner_id.as_deref(), Some("P01"));
        assert!(d.reasons.contains(&"subject:alias:zh".to_string()));
        assert!(d.reasons.contains(&"sender:partner:P01".to_string()));

        let other = Inspection {
            request_language: None,
            subject: String::new(),
            from: Some(mb("x@nordwind.example.de")),
            ..ins()
        };
        let d = decide(
            &other,
            &lookup(
                Some(partner("P02", "nordwind.example.de", Language::De)),
                vec![],
            ),
        );
        assert_eq!(d.language, Language::De);
        assert!(d.reasons.contains(&"subject:empty".to_string()));

        let d = decide(
            &Inspection {
                request_language: None,
                from: Some(mb("x@unknown.example")),
                findings: vec!["automated:auto_submitted".into(), "numbers:none".into()],
                automated: Some("auto_submitted".into()),
                ..ins()
            },
            &lookup(None, vec![]),
        );
        assert_eq!(d.language, Language::En);
        assert_eq!(
            d.reasons.first().map(String::as_str),
            Some("automated:auto_submitted")
        );
        assert!(d
            .reasons
            .contains(&"sender:unknown_domain:unknown.example".to_string()));
        assert!(d.reply_to.is_none());
        assert!(d.loans.is_empty());
    }

    #[test]
    fn no_number_requests_list_the_partners_active_loans() {
        use crate::domain::ShipmentStatus::{Returned, Shipped};
        let ship = |n: &str, p: &str, status| Shipment {
            status,
            ..shipment(n, p)
        };
        let active = Lookup {
            partner: Some(p01()),
            active_loans: vec![
                ship("D1000002", "P01", Shipped),
                // Defence in depth: never another partner's, never a returned loan.
                ship("D1000003", "P02", Shipped),
                ship("D1000004", "P01", Returned),
            ],
            active_total: 5,
            ..Lookup::default()
        };
        let none = Inspection {
            loan_numbers: vec![],
            ..ins()
        };
        let d = decide(&none, &active);
        assert_eq!((d.kind, d.action), (Kind::TrackingRequest, Action::Reply));
        assert!(d.loans.is_empty(), "loan_numbers stay []");
        let listed: Vec<&str> = d.listed.iter().map(|s| s.loan_number.as_str()).collect();
        assert_eq!(listed, ["D1000002"]);
        assert_eq!(d.listed_more, 4);
        // With numbers, or from an unknown sender, nothing is listed.
        assert!(decide(&ins(), &active).listed.is_empty());
        let stranger = Lookup {
            partner: None,
            ..active.clone()
        };
        let d = decide(&none, &stranger);
        assert!(d.listed.is_empty());
        assert_eq!(d.action, Action::Review);
    }

    #[test]
    fn rma_label_requests() {
        use crate::domain::ShipmentStatus::{ReturnRequested, Shipped};
        let rma = |numbers: &[&str]| Inspection {
            subject: "RMA 标签丢失".into(),
            request_language: None,
            rma_language: Some(Language::Zh),
            loan_numbers: numbers.iter().map(|n| ln(n)).collect(),
            ..ins()
        };
        let ship = |n: &str, p: &str, status| Shipment {
            status,
            ..shipment(n, p)
        };
        let with_labels = |partner: Option<Partner>, shipments, labels: &[&str]| Lookup {
            partner,
            shipments,
            rma_labels: labels.iter().map(|n| ln(n)).collect(),
            ..Lookup::default()
        };
        struct Case {
            name: &'static str,
            ins: Inspection,
            lookup: Lookup,
            action: Action,
            review: Vec<ReviewReason>,
            reason: &'static str,
        }
        let ready = || {
            with_labels(
                Some(p01()),
                vec![ship("D1000001", "P01", ReturnRequested)],
                &["D1000001"],
            )
        };
        let cases = vec![
            Case {
                name: "own loan, return requested, label on file",
                ins: rma(&["D1000001"]),
                lookup: ready(),
                action: Action::Reply,
                review: vec![],
                reason: "rma:D1000001:label",
            },
            Case {
                name: "no label on file",
                ins: rma(&["D1000001"]),
                lookup: with_labels(
                    Some(p01()),
                    vec![ship("D1000001", "P01", ReturnRequested)],
                    &[],
                ),
                action: Action::Review,
                review: vec![ReviewReason::RmaLabelMissing],
                reason: "rma:D1000001:no_label",
            },
            Case {
                name: "other status",
                ins: rma(&["D1000001"]),
                lookup: with_labels(
                    Some(p01()),
                    vec![ship("D1000001", "P01", Shipped)],
                    &["D1000001"],
                ),
                action: Action::Review,
                review: vec![ReviewReason::RmaLabelMissing],
                reason: "rma:D1000001:not_return_requested",
            },
            Case {
                name: "unknown loan",
                ins: rma(&["D1000002"]),
                lookup: ready(),
                action: Action::Review,
                review: vec![ReviewReason::RmaLabelMissing],
                reason: "rma:D1000002:not_found",
            },
            Case {
                name: "another partner's loan: isolation as for tracking",
                ins: rma(&["D1000001"]),
                lookup: with_labels(
                    Some(p01()),
                    vec![ship("D1000001", "P02", ReturnRequested)],
                    &["D1000001"],
                ),
                action: Action::Review,
                review: vec![
                    ReviewReason::LoanOfOtherPartner,
                    ReviewReason::RmaLabelMissing,
                ],
                reason: "rma:D1000001:not_found",
            },
            Case {
                name: "unknown sender",
                ins: rma(&["D1000001"]),
                lookup: Lookup {
                    partner: None,
                    ..ready()
                },
                action: Action::Review,
                review: vec![ReviewReason::UnknownSender, ReviewReason::RmaLabelMissing],
                reason: "rma:D1000001:not_found",
            },
            Case {
                name: "no number",
                ins: rma(&[]),
                lookup: ready(),
                action: Action::Review,
                review: vec![ReviewReason::RmaLabelMissing],
                reason: "rma:no_numbers",
            },
            Case {
                name: "one of two not ready: all to review",
                ins: rma(&["D1000001", "D1000003"]),
                lookup: with_labels(
                    Some(p01()),
                    vec![
                        ship("D1000001", "P01", ReturnRequested),
                        ship("D1000003", "P01", ReturnRequested),
                    ],
                    &["D1000001"],
                ),
                action: Action::Review,
                review: vec![ReviewReason::RmaLabelMissing],
                reason: "rma:D1000003:no_label",
            },
            Case {
                name: "RMA phrase wins over a tracking subject",
                ins: Inspection {
                    request_language: Some(Language::En),
                    rma_language: Some(Language::En),
                    ..rma(&["D1000001"])
                },
                lookup: ready(),
                action: Action::Reply,
                review: vec![],
                reason: "rma:D1000001:label",
            },
        ];
        for c in cases {
            let d = decide(&c.ins, &c.lookup);
            assert_eq!(d.kind, Kind::RmaLabelRequest, "{}", c.name);
            assert_eq!(d.action, c.action, "{}", c.name);
            assert_eq!(d.review, c.review, "{}", c.name);
            assert!(
                d.reasons.iter().any(|r| r == c.reason),
                "{}: {:?}",
                c.name,
                d.reasons
            );
        }
        // Automated mail stays automated, whatever it names.
        let d = decide(
            &Inspection {
                automated: Some("auto_submitted".into()),
                ..rma(&["D1000001"])
            },
            &ready(),
        );
        assert_eq!((d.kind, d.action), (Kind::Automated, Action::Ignore));
    }

    #[test]
    fn reply_to_rules() {
        let with_rt = |rt: &str| Inspection {
            reply_to: vec![mb(rt)],
            ..ins()
        };
        let d = decide(
            &with_rt("boss@huadong.example.cn"),
            &lookup(Some(p01()), vec![]),
        );
        assert_eq!(d.reply_to.unwrap().address, "boss@huadong.example.cn");
        let d = decide(&with_rt("thief@evil.example"), &lookup(Some(p01()), vec![]));
        assert_eq!(d.reply_to.unwrap().address, "wangwei@huadong.example.cn");
        assert!(d
            .reasons
            .contains(&"reply_to:ignored_outside_partner".to_string()));
    }
}
