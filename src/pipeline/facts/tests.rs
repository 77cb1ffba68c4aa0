use super::*;
use crate::app::App;
use crate::import::{import_file, ImportKind};
use crate::store::{NewDecision, NewInbound, NewOutbox};

async fn app() -> App {
    let text = "[database]\nurl = \"sqlite::memory:\"\nmax_connections = 1\n\
         [mail]\nfrom = \"helpdesk@example.test\"\n";
    let mut config =
        crate::config::Config::from_toml_str(text, std::path::Path::new("t.toml"), ".".into(), &[])
            .unwrap();
    config.templates.dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates").into();
    let app = App::open(config).await.unwrap();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/data");
    for kind in [ImportKind::Partners, ImportKind::Shipments] {
        let path = std::path::Path::new(data).join(format!("{}.csv", kind.noun()));
        import_file(&app.store, kind, &path, &app.rules.loans, &mut |_, _| {}, 0)
            .await
            .unwrap();
    }
    app
}

fn inspect(app: &App, from: &str, message_id: &str, body: &str) -> Inspection {
    let raw = format!(
        "From: {from}\r\nTo: helpdesk@example.test\r\nMessage-ID: <{message_id}>\r\n\
         Subject: 试用终端追踪请求\r\n\r\n{body}\r\n"
    );
    crate::classify::inspect(&app.rules, raw.as_bytes())
}

/// Records `inspection` as the pipeline would, with one reply to its sender at `at`.
async fn record(app: &App, inspection: &Inspection, at: i64) {
    let to = inspection.from.as_ref().unwrap().address.clone();
    app.store
        .record_inbound(
            &NewInbound {
                message_key: inspection.message_key.clone(),
                message_id: inspection.message_id.clone(),
                source: "test".into(),
                received_at: at,
                sender: Some(to.clone()),
                sender_name: None,
                subject: inspection.subject.clone(),
                size_bytes: 1,
                raw: None,
                body_text: inspection.text.clone(),
            },
            &NewDecision {
                decided_by: "pipeline".into(),
                kind: "tracking_request".into(),
                action: "reply".into(),
                language: "zh".into(),
                partner_id: None,
                loan_numbers: vec![],
                reasons: vec![],
                review: vec![],
            },
            &[NewOutbox {
                purpose: "reply".into(),
                message_id: format!("r.{}", inspection.message_key),
                envelope_from: "helpdesk@example.test".into(),
                recipients: vec![to.clone()],
                rate_key: to,
                subject: "Re".into(),
                body: b"x".to_vec(),
            }],
            None,
            at,
        )
        .await
        .unwrap();
}

/// What the round reads at once is what each mail would have read on its own.
#[tokio::test]
async fn a_rounds_facts_agree_with_the_lookups_of_each_mail() {
    let app = app().await;
    let store = &app.store;
    let known = inspect(&app, "wangwei@huadong.example.cn", "a@x", "D20261001");
    record(&app, &known, 1_000).await;
    let round = [
        known.clone(),
        inspect(
            &app,
            "Li <li@HD-Tech.example.com>",
            "b@x",
            "D20261001 D20261003 D20269999",
        ),
        inspect(&app, "x@nowhere.example.net", "c@x", "D20261003"),
        inspect(&app, "wangwei@huadong.example.cn", "d@x", "nothing"),
    ];
    let refs: Vec<&Inspection> = round.iter().collect();
    let facts = RoundFacts::read(store, &refs, 500).await.unwrap();
    for i in &round {
        assert_eq!(
            facts.recorded(&i.message_key).unwrap().cloned(),
            store.inbound_by_key(&i.message_key).await.unwrap(),
            "{}",
            i.message_key
        );
        let domain = sender_domain(i).unwrap();
        assert_eq!(
            facts.partner(&domain).unwrap().cloned(),
            store.partner_by_domain(&domain).await.unwrap(),
            "{domain}"
        );
        let mut one_by_one = store.shipments_by_loan(&i.loan_numbers).await.unwrap();
        let mut read = facts.shipments(&i.loan_numbers).unwrap();
        one_by_one.sort_by(|a, b| a.loan_number.cmp(&b.loan_number));
        read.sort_by(|a, b| a.loan_number.cmp(&b.loan_number));
        assert_eq!(read, one_by_one);
        let address = &i.from.as_ref().unwrap().address;
        assert_eq!(
            facts.reply_times(address, 500).unwrap(),
            store.recent_reply_times(address, 500).await.unwrap()
        );
    }
    assert!(facts.recorded(&known.message_key).unwrap().is_some());
    assert_eq!(
        facts
            .partner("hd-tech.example.com")
            .unwrap()
            .map(|p| p.partner_id.as_str()),
        Some("P01")
    );
    // Reply times are kept for the window read, not a wider one.
    assert_eq!(
        facts.reply_times("wangwei@huadong.example.cn", 1_001),
        Some(vec![])
    );
    assert_eq!(facts.reply_times("wangwei@huadong.example.cn", 499), None);
    // What the round did not read, it does not answer.
    assert_eq!(facts.recorded("mid:other@x"), None);
    assert!(facts.partner("nordwind.example.de").is_none());
    let unread = app.rules.loans.parse_one("D20260042").unwrap();
    assert!(facts.shipments(&[unread]).is_none());
}

/// After a group is recorded, its keys are asked of the store again (a second copy of a mail
/// in the same round must be found recorded) and its replies count toward the rate limit.
#[tokio::test]
async fn a_commit_forgets_its_keys_and_counts_its_replies() {
    let app = app().await;
    let mail = inspect(&app, "wangwei@huadong.example.cn", "a@x", "D20261001");
    let facts = RoundFacts::read(&app.store, &[&mail], 0).await.unwrap();
    let mut facts = facts;
    assert_eq!(facts.recorded(&mail.message_key), Some(None));
    facts.committed(
        [mail.message_key.as_str()],
        [("wangwei@huadong.example.cn", 7), ("unread@x.example", 8)],
    );
    assert_eq!(
        facts.recorded(&mail.message_key),
        None,
        "asks the store again"
    );
    assert_eq!(
        facts.reply_times("wangwei@huadong.example.cn", 0),
        Some(vec![7])
    );
    assert_eq!(facts.reply_times("unread@x.example", 0), None);
}

/// No facts at all: every lookup goes to the store.
#[test]
fn empty_facts_answer_nothing() {
    let facts = RoundFacts::default();
    assert!(facts.recorded("k").is_none());
    assert!(facts.partner("d.example").is_none());
    assert!(facts.reply_times("a@d.example", 0).is_none());
    assert_eq!(facts.shipments(&[]), Some(vec![]));
}
