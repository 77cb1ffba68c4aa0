//! `run --once` over a Maildir of mixed mail: every reply file, the review queue, and
//! idempotency across runs and redeliveries.

mod common;

use common::{mail, TestEnv};

fn mixed_mail(env: &TestEnv) {
    env.deliver(
        "1001.a.host",
        &mail(
            "=?UTF-8?B?546L5Lyf?= <wangwei@huadong.example.cn>",
            "回复：试用终端追踪请求",
            "zh-1@huadong.example.cn",
            "References: <root@huadong.example.cn>\r\n",
            "请查询 D20261001 和编号D20261003请查收，还有 D29999999。\r\n\r\n------------------ 原始邮件 ------------------\r\n旧编号 D20261009\r\n",
        ),
    );
    env.deliver(
        "1002.b.host",
        &mail(
            "Dana Ortiz <ops@pacrim.example.com>",
            "Trial Endpoint Tracking Request",
            "en-1@pacrim.example.com",
            "Reply-To: Dana <dana@pacrim.example.com>\r\n",
            "Please check D50261001 and also D20261001.\r\n",
        ),
    );
    env.deliver(
        "1003.c.host",
        &mail(
            "Mallory <mallory@evil.example.org>",
            "Trial Endpoint Tracking Request",
            "x-1@evil.example.org",
            "Reply-To: <collect@evil.example.org>\r\n",
            "D20261001\r\n",
        ),
    );
    env.deliver(
        "1004.d.host",
        &mail(
            "王伟 <wangwei@huadong.example.cn>",
            "RMA 标签丢失",
            "zh-2@huadong.example.cn",
            "",
            "D20261003 的 RMA 标签丢了。\r\n",
        ),
    );
    env.deliver(
        "1005.e.host",
        &mail(
            "it-admin@huadong.example.cn",
            "自动回复: 试用终端追踪请求",
            "auto-1@huadong.example.cn",
            "Auto-Submitted: auto-replied\r\n",
            "休假中 D20261001\r\n",
        ),
    );
    env.deliver(
        "1006.f.host",
        &mail(
            "Jonas <admin@nordwind.example.de>",
            "AW: Anfrage zur Nachverfolgung der Endpunkte der Testversion",
            "de-1@nordwind.example.de",
            "Reply-To: <jonas@gmail.example.com>\r\n",
            "Keine Nummer hier.\r\n",
        ),
    );
}

#[tokio::test]
async fn run_once_answers_reviews_and_ignores_then_sends_nothing_twice() {
    let env = TestEnv::new("").await;
    mixed_mail(&env);
    let summary = env.app.run_once().await.unwrap();
    assert_eq!(summary.fetched, 6, "{summary}");
    assert_eq!(summary.replied, 3, "{summary}");
    assert_eq!(summary.review, 2, "{summary}");
    assert_eq!(summary.ignored, 1, "{summary}");
    assert_eq!(summary.sent, 3, "{summary}");
    // Issue 17: the Pacific Rim mail asks for another partner's loan: answered AND flagged.
    // It is counted once (among the answered), and the review queue adds up.
    assert_eq!(summary.replied_flagged, 1, "{summary}");
    // Items about shipments (one per loan in exception or overdue) are not per mail.
    let per_loan: i64 = summary
        .open_by_reason
        .iter()
        .filter(|(r, _)| r == "shipment_attention")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        (summary.open_reviews - per_loan) as u64,
        summary.review + summary.replied_flagged,
        "{summary}"
    );
    assert_eq!(summary.sent_by_kind, vec![("reply".to_string(), 3)]);
    let text = summary.to_string();
    assert!(
        text.contains(
            "answered 3 (1 of them also flagged for review), set aside for review 2, ignored 1"
        ),
        "{text}"
    );
    assert!(text.contains("\n  reply 3\n"), "{text}");
    assert!(text.contains("review queue: 5 open"), "{text}");
    assert!(text.contains("shipment_attention 2"), "{text}");
    assert!(text.contains("loan_of_other_partner 1"), "{text}");

    let replies = env.replies();
    assert_eq!(replies.len(), 3, "{replies:#?}");
    for r in &replies {
        assert_eq!(r.from, "helpdesk@example.test");
        assert!(r.message_id.ends_with("@example.test"), "{}", r.message_id);
        assert_eq!(r.header("Auto-Submitted").as_deref(), Some("auto-replied"));
        assert_eq!(r.header("X-Auto-Response-Suppress").as_deref(), Some("All"));
        assert_eq!(r.header("X-Trialdesk").as_deref(), Some("auto-reply"));
        assert!(
            !r.text.is_empty() && !r.html.is_empty(),
            "both parts: {r:#?}"
        );
        assert!(r
            .header("Content-Type")
            .unwrap()
            .contains("multipart/alternative"));
    }

    // German partner, no number, Reply-To outside the partner's domains → to From, in German,
    // answered from its identity: its active loans.
    let de = &replies[0];
    assert_eq!(de.to, "admin@nordwind.example.de");
    assert_eq!(
        de.subject,
        "Re: Anfrage zur Nachverfolgung der Endpunkte der Testversion"
    );
    assert_eq!(de.in_reply_to.as_deref(), Some("de-1@nordwind.example.de"));
    assert!(
        de.text.contains("aktuell ausgeliehenen") && de.text.contains("D30261002"),
        "{}",
        de.text
    );

    // Reply-To inside the partner's domain is honoured; another partner's loan is "not found".
    let en = &replies[1];
    assert_eq!(en.to, "dana@pacrim.example.com");
    assert_eq!(en.subject, "Re: Trial Endpoint Tracking Request");
    assert!(
        en.text.contains("D50261001") && en.text.contains("Delivery problem"),
        "{}",
        en.text
    );
    assert!(en.text.contains("Not found: D20261001"), "{}", en.text);
    assert!(
        !en.text.contains("苏州") && !en.html.contains("苏州"),
        "no other partner's data"
    );

    // Chinese: fresh numbers only, glued number found, unknown listed, quote ignored; threaded.
    let zh = &replies[2];
    assert_eq!(zh.to, "wangwei@huadong.example.cn");
    assert_eq!(zh.subject, "Re: 试用终端追踪请求");
    assert_eq!(zh.in_reply_to.as_deref(), Some("zh-1@huadong.example.cn"));
    assert_eq!(
        zh.references,
        vec!["root@huadong.example.cn", "zh-1@huadong.example.cn"]
    );
    assert!(zh.text.starts_with("王伟，您好"), "{}", zh.text);
    assert!(
        zh.text.contains("D20261001（客户：苏州工业园管委会）"),
        "{}",
        zh.text
    );
    assert!(zh.text.contains("状态：运输中"), "{}", zh.text);
    assert!(
        zh.text
            .contains("物流跟踪：https://ems.example/t?no=EA920049643CN"),
        "{}",
        zh.text
    );
    assert!(zh.text.contains("签收日期：2026-11-11"), "{}", zh.text);
    assert!(zh.text.contains("以下编号未找到：D29999999"), "{}", zh.text);
    assert!(
        !zh.text.contains("D20261009"),
        "quoted number must not be answered"
    );
    // minijinja escapes `/` as `&#x2f;` in HTML, which every client decodes.
    let html = zh.html.replace("&#x2f;", "/");
    assert!(
        html.contains("<a href=\"https://ems.example/t?no=EA920049643CN\">EA920049643CN</a>"),
        "{html}"
    );

    // The review queue holds the unknown sender and the RMA label request (no label on file),
    // the loan of another partner, and the loans that need a person (D50261001 is in
    // exception; the fixture's D20261001 is overdue by the wall clock, so not asserted).
    let items = env
        .app
        .store
        .review_items(&Default::default())
        .await
        .unwrap();
    let mut reasons: Vec<(&str, &str)> = items
        .iter()
        .filter(|i| i.reason != "shipment_attention")
        .map(|i| (i.reason.as_str(), i.sender.as_deref().unwrap_or("")))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            ("loan_of_other_partner", "ops@pacrim.example.com"),
            ("rma_label_missing", "wangwei@huadong.example.cn"),
            ("unknown_sender", "mallory@evil.example.org"),
        ]
    );
    assert!(items
        .iter()
        .any(|i| i.reason == "shipment_attention" && i.detail.contains("D50261001")));

    // Every mail is acknowledged: new/ is empty, cur/ has six seen mails.
    assert_eq!(
        std::fs::read_dir(env.maildir().join("new"))
            .unwrap()
            .count(),
        0
    );
    let cur: Vec<String> = std::fs::read_dir(env.maildir().join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(cur.len(), 6);
    assert!(cur.iter().all(|n| n.ends_with(":2,S")), "{cur:?}");

    // A second run finds nothing; redelivering the same mails answers nothing twice.
    let again = env.app.run_once().await.unwrap();
    assert_eq!((again.fetched, again.sent), (0, 0), "{again}");
    mixed_mail(&env);
    let redelivered = env.app.run_once().await.unwrap();
    assert_eq!(redelivered.fetched, 6, "{redelivered}");
    assert_eq!(redelivered.duplicates, 6, "{redelivered}");
    assert_eq!(redelivered.sent, 0, "{redelivered}");
    assert_eq!(env.replies().len(), 3);
    assert_eq!(
        env.app
            .store
            .review_items(&Default::default())
            .await
            .unwrap()
            .iter()
            // Items about loans (shipment_attention) are counted in live_data.rs.
            .filter(|i| i.reason != "shipment_attention")
            .count(),
        3
    );
}

#[tokio::test]
async fn the_cli_runs_the_same_job() {
    let env = TestEnv::new("").await;
    mixed_mail(&env);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .args([
            "--config",
            env.config_path.to_str().unwrap(),
            "run",
            "--once",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "answered 3 (1 of them also flagged for review), set aside for review 2, ignored 1"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("sent 3 mail(s)"), "{stdout}");
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .args([
            "--config",
            env.config_path.to_str().unwrap(),
            "queue",
            "list",
            "--json",
        ])
        .output()
        .unwrap();
    let items: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let reasons: Vec<&str> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap_or_default())
        .collect();
    // Besides the mails' items: D50261001 is in exception (its shipment_attention item); the
    // fixture's D20261001 is overdue too, by the wall clock of this CLI run.
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r != "shipment_attention")
            .count(),
        3,
        "{reasons:?}"
    );
    assert!(reasons.contains(&"shipment_attention"), "{reasons:?}");
}

#[tokio::test]
async fn a_reused_message_id_does_not_swallow_a_different_mail() {
    let env = TestEnv::new("").await;
    let first = mail(
        "ops@pacrim.example.com",
        "Trial Endpoint Tracking Request",
        "same-id@example.org",
        "",
        "D50261001",
    );
    env.deliver("1.a.host", &first);
    env.app.run_once().await.unwrap();
    // A different mail carrying the same Message-ID (broken mailer or forgery) is still handled;
    // an exact redelivery of the first is not.
    env.deliver(
        "2.b.host",
        &mail(
            "王伟 <wangwei@huadong.example.cn>",
            "试用终端追踪请求",
            "same-id@example.org",
            "",
            "D20261001",
        ),
    );
    env.deliver("3.c.host", &first);
    let s = env.app.run_once().await.unwrap();
    assert_eq!((s.fetched, s.replied, s.duplicates), (2, 1, 1), "{s}");
    let to: Vec<String> = env.replies().into_iter().map(|r| r.to).collect();
    assert_eq!(
        to,
        vec!["ops@pacrim.example.com", "wangwei@huadong.example.cn"]
    );
}
