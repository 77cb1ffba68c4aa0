//! Unit tests of `classify::decision`: the decision tables for tracking, RMA and review
//! cases. Moved out of `decision.rs` to keep that file one concept.

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
        dmarc: None,
        sender_ambiguous: false,
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
        let d = decide(&c.ins, &c.lookup, &SenderPolicy::default());
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
        &SenderPolicy::default(),
    );
    let shown: Vec<_> = d.loans.iter().map(|l| l.shipment.is_some()).collect();
    assert_eq!(shown, [true, false, false]);
    assert!(d.reasons.contains(&"loan:D1:found".to_string()));
    assert!(d.reasons.contains(&"loan:D2:other_partner".to_string()));
    assert!(d.reasons.contains(&"loan:D3:not_found".to_string()));
    // Unknown sender: nothing is shown.
    let d = decide(
        &i,
        &lookup(None, vec![shipment("D1", "P01")]),
        &SenderPolicy::default(),
    );
    assert!(d.loans.iter().all(|l| l.shipment.is_none()));
    assert!(d.reasons.contains(&"loan:D1:exists".to_string()));
}

#[test]
fn language_and_reasons() {
    let d = decide(
        &ins(),
        &lookup(Some(p01()), vec![]),
        &SenderPolicy::default(),
    );
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
        &SenderPolicy::default(),
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
        &SenderPolicy::default(),
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
    let d = decide(&none, &active, &SenderPolicy::default());
    assert_eq!((d.kind, d.action), (Kind::TrackingRequest, Action::Reply));
    assert!(d.loans.is_empty(), "loan_numbers stay []");
    let listed: Vec<&str> = d.listed.iter().map(|s| s.loan_number.as_str()).collect();
    assert_eq!(listed, ["D1000002"]);
    assert_eq!(d.listed_more, 4);
    // With numbers, or from an unknown sender, nothing is listed.
    assert!(decide(&ins(), &active, &SenderPolicy::default())
        .listed
        .is_empty());
    let stranger = Lookup {
        partner: None,
        ..active.clone()
    };
    let d = decide(&none, &stranger, &SenderPolicy::default());
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
        let d = decide(&c.ins, &c.lookup, &SenderPolicy::default());
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
        &SenderPolicy::default(),
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
        &SenderPolicy::default(),
    );
    assert_eq!(d.reply_to.unwrap().address, "boss@huadong.example.cn");
    let d = decide(
        &with_rt("thief@evil.example"),
        &lookup(Some(p01()), vec![]),
        &SenderPolicy::default(),
    );
    assert_eq!(d.reply_to.unwrap().address, "wangwei@huadong.example.cn");
    assert!(d
        .reasons
        .contains(&"reply_to:ignored_outside_partner".to_string()));
}
