//! Raw bytes → `classify::inspect` → `classify::decide` with a fixed partner and lookup: the
//! whole inbound decision, as `explain` and the pipeline run it. Besides "never panics" it
//! checks the invariants the rest of the system relies on.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use trialdesk::classify::{self, Action, Kind, Lookup, Rules};
use trialdesk::config::Config;
use trialdesk::domain::{Language, Partner, Shipment, ShipmentStatus};

fn rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        // mail-parser has `debug_assert!(false, …)`s on some hostile structures; fuzz builds
        // enable debug assertions (for our overflow checks), release builds do not. `inspect`
        // catches such a panic and re-reads the mail; only panics elsewhere are crashes here.
        let abort_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_mail_parser = info
                .location()
                .is_some_and(|l| l.file().contains("/mail-parser-"));
            if !in_mail_parser {
                abort_hook(info);
            }
        }));
        let cfg = Config::from_toml_str(
            "[database]\nurl = \"sqlite://fuzz.db\"\n\
             [security]\ntrusted_authserv_ids = [\"mx.helpdesk.example\"]\n\
             [mail]\nfrom = \"trial-helpdesk@helpdesk.example.com\"\n",
            std::path::Path::new("fuzz.toml"),
            ".".into(),
            &[],
        )
        .expect("fuzz config");
        Rules::from_config(&cfg).expect("rules")
    })
}

fn partner() -> Partner {
    Partner {
        partner_id: "P01".into(),
        name: "Huadong".into(),
        domains: vec!["huadong.example.cn".into(), "hd-tech.example.com".into()],
        admin_emails: vec!["it@huadong.example.cn".into()],
        language: Language::Zh,
    }
}

fuzz_target!(|raw: &[u8]| {
    let rules = rules();
    let ins = classify::inspect(rules, raw);
    assert!(
        !ins.notes.iter().any(|n| n.starts_with("internal error")),
        "inspect caught a panic: {:?}",
        ins.notes
    );
    assert!(ins.loan_numbers.len() <= rules.loans.max());
    // Any partner: the store would return the one owning the From domain; decide must still
    // refuse one that does not own it. Loans alternate between P01 and another partner.
    let shipments = ins
        .loan_numbers
        .iter()
        .enumerate()
        .map(|(i, n)| Shipment {
            loan_number: n.clone(),
            partner_id: if i % 2 == 0 { "P01".into() } else { "P02".into() },
            customer: "c".into(),
            status: ShipmentStatus::Shipped,
            carrier: None,
            tracking_number: None,
            shipped_on: None,
            eta: None,
            delivered_on: None,
            items: vec![],
        })
        .collect();
    let lookup = Lookup {
        partner: Some(partner()),
        shipments,
    };
    let d = classify::decide(&ins, &lookup);
    match d.action {
        Action::Reply => {
            assert_eq!(d.kind, Kind::TrackingRequest);
            assert!(d.partner_id.is_some() && d.reply_to.is_some());
            let to = d.reply_to.as_ref().map(|m| m.address.as_str()).unwrap_or("");
            let domain = classify::address_domain(to).unwrap_or("");
            assert!(partner().owns_domain(domain), "reply to {to} outside the partner");
        }
        Action::Review => assert!(!d.review.is_empty()),
        Action::Ignore => assert_eq!(d.kind, Kind::Automated),
    }
    if ins.automated.is_none() {
        assert_eq!(d.loans.len(), ins.loan_numbers.len());
        // Another partner's loan is never shown.
        assert!(d
            .loans
            .iter()
            .all(|l| l.shipment.as_ref().is_none_or(|s| s.partner_id == "P01")));
    }
    serde_json::to_string(&d).expect("decision serialises");
});
