//! Live data out (issue 14 §3–§6, mail side): proactive shipment notices, answers from
//! identity for requests without numbers, exception/overdue loans handed to a person, RMA
//! label requests. Runs on SQLite, or on PostgreSQL when `TRIALDESK_TEST_PG_URL` is set.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{mail, TestEnv};
use mail_parser::MimeHeaders;
use trialdesk::app::App;
use trialdesk::clock::ManualClock;
use trialdesk::config::Config;
use trialdesk::import::{import_bytes, ImportKind};
use trialdesk::store::{HistoryFilter, ReviewFilter, SentMail};

const PARTNERS_OPTED_IN: &str = "partner_id,name,domains,admin_emails,language,notify_shipment_updates\n\
    P01,华东智联科技有限公司,huadong.example.cn;hd-tech.example.com,it-admin@huadong.example.cn;wangwei@huadong.example.cn,zh,true\n\
    P02,Nordwind Systemhaus GmbH,nordwind.example.de,admin@nordwind.example.de,de,false\n";

const SHIPMENTS_HEADER: &str =
    "loan_number,partner_id,customer,status,carrier,tracking_number,shipped_on,eta,delivered_on,items\n";

/// A minimal valid PDF (one empty page).
fn tiny_pdf() -> Vec<u8> {
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >>",
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for off in offsets {
        out.extend_from_slice(format!("{off:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

async fn import(app: &App, kind: ImportKind, csv: &str) -> usize {
    import_bytes(
        &app.store,
        kind,
        csv.as_bytes(),
        &app.rules.loans,
        &mut |_, _| {},
        app.clock.now().as_millisecond(),
    )
    .await
    .expect("import")
    .rows
}

async fn notices(app: &App) -> Vec<SentMail> {
    let (rows, _) = app
        .store
        .history(&HistoryFilter {
            purpose: Some("shipment_notice".into()),
            limit: 100,
            ..HistoryFilter::default()
        })
        .await
        .unwrap();
    rows
}

fn with_clock(app: &App, day: &str) -> App {
    let mut app = app.clone();
    let t: jiff::Timestamp = format!("{day}T04:00:00Z").parse().unwrap();
    app.clock = Arc::new(ManualClock::new(t));
    app
}

async fn open_items(app: &App, reason: &str) -> Vec<trialdesk::store::ReviewItem> {
    app.store
        .review_items(&ReviewFilter {
            reason: Some(reason.into()),
            ..ReviewFilter::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn notices_go_out_once_per_loan_and_status_in_one_mail_per_partner() {
    let env = TestEnv::new("").await;
    let app = with_clock(&env.app, "2026-11-20");
    import(&app, ImportKind::Partners, PARTNERS_OPTED_IN).await;
    // Re-importing unchanged data announces nothing: nothing changed.
    env.import(
        "shipments",
        &Path::new(common::FIXTURES).join("data/shipments.csv"),
    )
    .await;
    assert!(notices(&app).await.is_empty());

    // Two loans of P01 change to listed statuses, one to a status not listed, and one loan of
    // P02 (not opted in) changes too: one mail, to P01's admins, listing the two.
    let changes = format!(
        "{SHIPMENTS_HEADER}\
         D20261001,P01,苏州工业园管委会,delivered,EMS,EA920049643CN,2026-11-03,2026-11-08,2026-11-09,Webex Desk Camera\n\
         D20261005,P01,南京钟山大学,shipped,EMS,EA510846882CN,2026-11-19,2026-11-22,,Webex Room Kit Mini\n\
         D20261006,P01,南京钟山大学,processing,,,,,,Webex Room Kit\n\
         D30261002,P02,Stadtwerke Lindau,returned,DHL,00340434161094042601,2026-10-01,2026-10-03,2026-10-03,Webex Room Bar\n\
         D30261003,P02,Stadtwerke Lindau,shipped,DHL,003404341610940426,2026-11-19,2026-11-21,,Webex Room Bar\n"
    );
    import(&app, ImportKind::Shipments, &changes).await;
    let sent = notices(&app).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let first = &sent[0];
    assert_eq!(
        first.recipients,
        r#"["it-admin@huadong.example.cn","wangwei@huadong.example.cn"]"#
    );
    assert_eq!(
        first.loan_numbers.as_deref(),
        Some(r#"["D20261001","D20261005"]"#)
    );
    assert!(first.subject.starts_with("试用终端状态更新"), "{first:?}");

    // The same import again, and the same data through a second import: nothing new.
    import(&app, ImportKind::Shipments, &changes).await;
    import(&app, ImportKind::Shipments, &changes).await;
    assert_eq!(notices(&app).await.len(), 1);

    // A later change of one of them continues that loan's thread.
    let later = format!(
        "{SHIPMENTS_HEADER}\
         D20261005,P01,南京钟山大学,exception,EMS,EA510846882CN,2026-11-19,2026-11-22,,Webex Room Kit Mini\n"
    );
    import(&app, ImportKind::Shipments, &later).await;
    assert_eq!(notices(&app).await.len(), 2);

    // What went out: marked auto-generated, in the partner's language, threaded per loan.
    let summary = app.run_once().await.unwrap();
    assert_eq!(summary.sent, 2, "{summary}");
    let mails = env.replies();
    assert_eq!(mails.len(), 2);
    let (a, b) = if mails[0].text.contains("D20261001") {
        (&mails[0], &mails[1])
    } else {
        (&mails[1], &mails[0])
    };
    for m in [a, b] {
        assert_eq!(
            m.header("Auto-Submitted").as_deref(),
            Some("auto-generated")
        );
        assert_eq!(m.header("X-Trialdesk").as_deref(), Some("shipment-notice"));
        assert!(m.text.contains("状态"), "{}", m.text);
    }
    assert!(a.text.contains("D20261001") && a.text.contains("D20261005"));
    assert!(
        a.text.contains("已签收") && a.text.contains("已发货"),
        "{}",
        a.text
    );
    assert!(!a.text.contains("D20261006"), "{}", a.text);
    assert!(a.in_reply_to.is_none());
    assert!(b.text.contains("D20261005") && !b.text.contains("D20261001"));
    assert_eq!(b.in_reply_to.as_deref(), Some(a.message_id.as_str()));
    assert_eq!(b.references, vec![a.message_id.clone()]);
    // The notice shows in the history like any other mail we sent.
    let (all, _) = app
        .store
        .history(&HistoryFilter {
            limit: 100,
            ..HistoryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .filter(|m| m.purpose == "shipment_notice")
            .count(),
        2
    );
}

/// Two instances import the same change at the same moment: the unique (loan, status) key
/// lets exactly one notice out. On PostgreSQL (TRIALDESK_TEST_PG_URL) the two imports really
/// overlap; on SQLite the writes serialise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_importing_the_same_change_send_one_notice() {
    let env = TestEnv::new("").await;
    import(&env.app, ImportKind::Partners, PARTNERS_OPTED_IN).await;
    let second = App::open(Config::load(&env.config_path).unwrap())
        .await
        .unwrap();
    let mut csv = SHIPMENTS_HEADER.to_string();
    for i in 0..40 {
        csv.push_str(&format!(
            "D2027{i:04},P01,客户{i},shipped,EMS,EA{i}CN,2026-11-19,2026-11-22,,Webex Desk\n"
        ));
    }
    for round in 0..3 {
        let (a, b) = tokio::join!(
            import(&env.app, ImportKind::Shipments, &csv),
            import(&second, ImportKind::Shipments, &csv)
        );
        assert_eq!((a, b), (40, 40));
        let sent = notices(&env.app).await;
        assert_eq!(sent.len(), 1, "round {round}: {sent:?}");
        let listed: Vec<String> =
            serde_json::from_str(sent[0].loan_numbers.as_deref().unwrap()).unwrap();
        assert_eq!(listed.len(), 40, "one mail lists every loan");
    }
}

#[tokio::test]
async fn partners_that_did_not_opt_in_and_unlisted_statuses_get_nothing() {
    let env = TestEnv::new("[notify]\nshipment_statuses = [\"delivered\"]\n").await;
    import(&env.app, ImportKind::Partners, PARTNERS_OPTED_IN).await;
    let csv = format!(
        "{SHIPMENTS_HEADER}\
         D20261001,P01,苏州工业园管委会,exception,EMS,EA920049643CN,2026-11-03,2026-11-08,,Webex Desk Camera\n\
         D30261003,P02,Stadtwerke Lindau,delivered,DHL,0034,2026-11-19,2026-11-21,2026-11-21,Webex Room Bar\n"
    );
    import(&env.app, ImportKind::Shipments, &csv).await;
    assert!(notices(&env.app).await.is_empty());
}

#[tokio::test]
async fn a_request_without_numbers_is_answered_with_the_partners_active_loans() {
    let env = TestEnv::new("[tracking]\nmax_listed = 2\n").await;
    let app = with_clock(&env.app, "2026-11-21");
    let csv = format!(
        "{SHIPMENTS_HEADER}\
         D20261005,P01,南京钟山大学,shipped,EMS,EA510846882CN,2026-11-19,2026-11-25,,Webex Room Kit Mini\n\
         D20261006,P01,南京钟山大学,processing,,,,,,Webex Room Kit\n\
         D20261007,P01,上海浦江银行,returned,SF Express,SF1,2026-10-01,2026-10-03,2026-10-03,Webex Board\n"
    );
    import(&app, ImportKind::Shipments, &csv).await;
    // P01 now has four active loans (D20261001, D20261003, D20261005, D20261006) and one
    // returned. P04's only loan is in exception (active); P03 asks too, P02 has none active
    // once its loan is returned.
    let returned = format!(
        "{SHIPMENTS_HEADER}D30261002,P02,Stadtwerke Lindau,returned,DHL,0034,2026-10-01,2026-10-03,2026-10-03,Webex Room Bar\n"
    );
    import(&app, ImportKind::Shipments, &returned).await;
    env.deliver(
        "1.eml",
        &mail(
            "王伟 <wangwei@huadong.example.cn>",
            "试用终端追踪请求",
            "no-number-1@huadong.example.cn",
            "",
            "请帮忙查一下我们的试用设备到哪里了。",
        ),
    );
    env.deliver(
        "2.eml",
        &mail(
            "Admin <admin@nordwind.example.de>",
            "Anfrage zur Nachverfolgung der Endpunkte der Testversion",
            "no-number-2@nordwind.example.de",
            "",
            "Wo sind unsere Geräte?",
        ),
    );
    let summary = app.run_once().await.unwrap();
    assert_eq!(summary.replied, 2, "{summary}");
    let replies = env.replies();
    let zh = replies
        .iter()
        .find(|r| r.to == "wangwei@huadong.example.cn")
        .unwrap();
    // Most recent first: the loan not shipped yet, then by shipping date.
    let pos = |n: &str| zh.text.find(n);
    assert!(
        pos("D20261006").is_some() && pos("D20261005").is_some(),
        "{}",
        zh.text
    );
    assert!(pos("D20261006") < pos("D20261005"), "{}", zh.text);
    assert!(pos("D20261001").is_none() && pos("D20261007").is_none());
    assert!(zh.text.contains("另有 2 笔"), "{}", zh.text);
    assert!(!zh.text.contains("没有找到演示借用编号"), "{}", zh.text);
    // None active: today's instructions.
    let de = replies
        .iter()
        .find(|r| r.to == "admin@nordwind.example.de")
        .unwrap();
    assert!(de.text.contains("keine Leihnummer gefunden"), "{}", de.text);
    // Recorded as a tracking request answered, with no numbers.
    let decisions = app
        .store
        .inbound_counts()
        .await
        .unwrap()
        .into_iter()
        .filter(|(k, a, _)| k == "tracking_request" && a == "reply")
        .map(|(_, _, n)| n)
        .sum::<i64>();
    assert_eq!(decisions, 2);
}

#[tokio::test]
async fn exception_and_overdue_loans_are_worded_honestly_and_open_one_item_per_loan() {
    let env = TestEnv::new("").await;
    // D20261001: in transit, ETA 2026-11-08. On 11-10 the ETA has passed (not yet overdue);
    // on 11-20 it is overdue. D50261001 (P04) is in exception.
    let early = with_clock(&env.app, "2026-11-10");
    env.deliver(
        "1.eml",
        &mail(
            "wangwei@huadong.example.cn",
            "试用终端追踪请求",
            "eta-1@huadong.example.cn",
            "",
            "D20261001",
        ),
    );
    early.run_once().await.unwrap();
    let r = &env.replies()[0];
    assert!(
        r.text.contains("预计送达：2026-11-08（已过预计日期"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("逾期"), "{}", r.text);
    assert!(open_items(&early, "shipment_attention").await.is_empty());

    let late = with_clock(&env.app, "2026-11-20");
    for i in 2..=3 {
        env.deliver(
            &format!("{i}.eml"),
            &mail(
                "wangwei@huadong.example.cn",
                "试用终端追踪请求",
                &format!("eta-{i}@huadong.example.cn"),
                "",
                "D20261001",
            ),
        );
        env.deliver(
            &format!("x{i}.eml"),
            &mail(
                "ops@pacrim.example.com",
                "Trial Endpoint Tracking Request",
                &format!("exc-{i}@pacrim.example.com"),
                "",
                "Where is D50261001?",
            ),
        );
    }
    let summary = late.run_once().await.unwrap();
    assert_eq!(summary.replied, 4, "{summary}");
    let replies = env.replies();
    let overdue: Vec<_> = replies
        .iter()
        .filter(|r| r.text.contains("D20261001") && r.text.contains("逾期"))
        .collect();
    assert_eq!(overdue.len(), 2);
    assert!(
        overdue[0]
            .text
            .contains("自 2026-11-08 起已逾期；帮助台正在与承运商核实"),
        "{}",
        overdue[0].text
    );
    let en: Vec<_> = replies
        .iter()
        .filter(|r| r.to == "ops@pacrim.example.com")
        .collect();
    assert_eq!(en.len(), 2);
    assert!(
        en[0]
            .text
            .contains("the helpdesk is checking with the carrier")
            && !en[0].text.contains("please contact us"),
        "{}",
        en[0].text
    );
    // Two mails each, one item each.
    let items = open_items(&late, "shipment_attention").await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(items
        .iter()
        .any(|i| i.detail.contains("D20261001") && i.detail.contains("overdue since 2026-11-08")));
    assert!(items
        .iter()
        .any(|i| i.detail.contains("D50261001") && i.detail.contains("exception")));

    // Resolved: the next mail about the loan opens a new one.
    let item = items
        .iter()
        .find(|i| i.detail.contains("D50261001"))
        .unwrap();
    let actions =
        trialdesk::review::Actions::from_app(&late, Arc::new(tokio::sync::Notify::new())).unwrap();
    actions
        .resolve(
            item.id,
            "FedEx says the box is in customs",
            &trialdesk::review::Actor {
                name: "staff".into(),
                via: trialdesk::store::Via::Cli,
            },
        )
        .await
        .unwrap();
    assert_eq!(open_items(&late, "shipment_attention").await.len(), 1);
    env.deliver(
        "x4.eml",
        &mail(
            "ops@pacrim.example.com",
            "Trial Endpoint Tracking Request",
            "exc-4@pacrim.example.com",
            "",
            "D50261001 again",
        ),
    );
    late.run_once().await.unwrap();
    assert_eq!(open_items(&late, "shipment_attention").await.len(), 2);
}

#[tokio::test]
async fn rma_label_requests_get_the_label_attached_or_go_to_review() {
    let env = TestEnv::new("[rma]\nlabels_dir = \"labels\"\n").await;
    let labels = env.dir.path().join("labels");
    std::fs::create_dir_all(&labels).unwrap();
    let pdf = tiny_pdf();
    std::fs::write(labels.join("D30261002.pdf"), &pdf).unwrap();
    // With a label on file (D30261002: P02's, return_requested).
    env.deliver(
        "1.eml",
        &mail(
            "Admin <admin@nordwind.example.de>",
            "RMA-Etikett verloren",
            "rma-1@nordwind.example.de",
            "",
            "Bitte senden Sie das Etikett für D30261002 erneut.",
        ),
    );
    // A tracking-reply answer naming "RMA label" in its fresh text is a label request too.
    env.deliver(
        "2.eml",
        &mail(
            "admin@nordwind.example.de",
            "Re: Trial Endpoint Tracking Request",
            "rma-2@nordwind.example.de",
            "",
            "RMA label D30261002 please\r\n\r\n> Hello,\r\n> old text",
        ),
    );
    // Without: no label for a loan in another status, another partner's loan, unknown sender.
    for (i, from, body) in [
        (3, "wangwei@huadong.example.cn", "RMA 标签 D20261001"),
        (4, "wangwei@huadong.example.cn", "退货标签 D30261002"),
        (5, "someone@unknown.example", "return label for D30261002"),
    ] {
        env.deliver(
            &format!("{i}.eml"),
            &mail(
                from,
                "Return label",
                &format!("rma-{i}@x.example"),
                "",
                body,
            ),
        );
    }
    let summary = env.app.run_once().await.unwrap();
    assert_eq!((summary.replied, summary.review), (2, 3), "{summary}");
    let replies = env.replies();
    assert_eq!(replies.len(), 2);
    for r in &replies {
        assert_eq!(r.to, "admin@nordwind.example.de");
        let m = mail_parser::MessageParser::default().parse(&r.raw).unwrap();
        let attachments: Vec<_> = m.attachments().collect();
        assert_eq!(attachments.len(), 1);
        let a = attachments[0];
        assert_eq!(a.attachment_name(), Some("D30261002.pdf"));
        assert_eq!(
            a.content_type().map(|c| (c.ctype(), c.subtype())),
            Some(("application", Some("pdf")))
        );
        assert_eq!(a.contents(), &pdf[..]);
        assert_eq!(r.header("Auto-Submitted").as_deref(), Some("auto-replied"));
    }
    let de = replies
        .iter()
        .find(|r| r.subject.contains("RMA-Etikett"))
        .unwrap();
    assert!(de.text.contains("Rücksendeetiketten"), "{}", de.text);
    let (sent, _) = env
        .app
        .store
        .history(&HistoryFilter {
            purpose: Some("rma_label".into()),
            limit: 10,
            ..HistoryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(sent.len(), 2);
    let missing = open_items(&env.app, "rma_label_missing").await;
    let unknown = open_items(&env.app, "unknown_sender").await;
    let other = open_items(&env.app, "loan_of_other_partner").await;
    assert_eq!(missing.len() + unknown.len() + other.len(), 3);
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    // Nothing of another partner's was sent.
    assert!(replies
        .iter()
        .all(|r| !r.to.ends_with("huadong.example.cn")));

    // Without any label on file the same request waits for a person.
    std::fs::remove_file(labels.join("D30261002.pdf")).unwrap();
    env.deliver(
        "6.eml",
        &mail(
            "admin@nordwind.example.de",
            "RMA label",
            "rma-6@nordwind.example.de",
            "",
            "D30261002",
        ),
    );
    let summary = env.app.run_once().await.unwrap();
    assert_eq!((summary.replied, summary.review), (0, 1), "{summary}");
    assert_eq!(env.replies().len(), 2);
}

/// A notice that cannot be composed fails the whole write: the data and its notice commit
/// together or not at all.
#[tokio::test]
async fn a_notice_that_cannot_be_composed_fails_the_import_and_writes_nothing() {
    #[derive(Debug)]
    struct Broken;
    impl trialdesk::store::ShipmentNotifier for Broken {
        fn statuses(&self) -> &[trialdesk::domain::ShipmentStatus] {
            &[trialdesk::domain::ShipmentStatus::Shipped]
        }
        fn compose(
            &self,
            _: &trialdesk::domain::Partner,
            _: &[trialdesk::store::NoticeLoan],
            _: i64,
        ) -> Result<trialdesk::store::NewOutbox, String> {
            Err("template shipment_notice.zh.txt: line 3: syntax error".into())
        }
    }
    let env = TestEnv::new("").await;
    import(&env.app, ImportKind::Partners, PARTNERS_OPTED_IN).await;
    let mut app = env.app.clone();
    app.store = app.store.clone().with_notifier(Arc::new(Broken));
    let before = app.store.shipment_count().await.unwrap();
    let csv = format!(
        "{SHIPMENTS_HEADER}\
         D20261009,P01,南京钟山大学,shipped,EMS,EA1CN,2026-11-19,2026-11-22,,Webex Room Kit Mini\n"
    );
    let err = import_bytes(
        &app.store,
        ImportKind::Shipments,
        csv.as_bytes(),
        &app.rules.loans,
        &mut |_, _| {},
        0,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("P01") && err.contains("syntax error") && err.contains("nothing was imported"),
        "{err}"
    );
    assert_eq!(app.store.shipment_count().await.unwrap(), before);
    assert!(notices(&app).await.is_empty());
    // With the working notifier the same file goes in, with its notice.
    import(&env.app, ImportKind::Shipments, &csv).await;
    assert_eq!(env.app.store.shipment_count().await.unwrap(), before + 1);
    assert_eq!(notices(&env.app).await.len(), 1);
}
