//! The staff workspace over HTTP (in-process router, real store): languages and time zones,
//! assignment and notes, conflicts that keep the typed text, bulk actions audited per item,
//! the item's context, search, the SLA, banners, and the CLI forms of the same actions.

mod common;
mod review_support;

use std::sync::Arc;

use axum::http::StatusCode;
use common::TestEnv;
use review_support::{add_user, seed, seed_dead_letter, Browser, Page, Seed, PASSWORD};
use tokio::sync::Notify;
use trialdesk::clock::ManualClock;
use trialdesk::store::AuditFilter;

async fn signed_in(env: &TestEnv, name: &str) -> Browser {
    add_user(env, name).await;
    let mut b = Browser::new(env);
    let res = b.login(name, PASSWORD).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    b
}

async fn audit(env: &TestEnv, action: &str) -> Vec<trialdesk::store::AuditEntry> {
    env.app
        .store
        .audit_entries(&AuditFilter {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
}

/// The `<html lang>` of a page.
fn lang(page: &Page) -> String {
    let re = regex::Regex::new(r#"<html lang="([^"]+)""#).unwrap();
    re.captures(&page.body)
        .map(|c| c[1].to_string())
        .unwrap_or_default()
}

async fn item_state(env: &TestEnv, id: i64) -> trialdesk::store::ReviewItem {
    env.app.store.review_item(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn pages_are_chinese_by_default_english_by_header_and_the_users_setting_wins() {
    let env = TestEnv::new("").await;
    seed(&env, Seed::default()).await;
    add_user(&env, "alice").await;
    // No Accept-Language: the configured default (zh).
    let mut b = Browser::new(&env).speaking(None);
    let login = b.get("/login").await;
    assert_eq!(lang(&login), "zh-CN");
    assert!(login.body.contains("登录"), "{}", login.body);
    b.login("alice", PASSWORD).await;
    let queue = b.get("/queue").await;
    assert_eq!(lang(&queue), "zh-CN");
    assert!(queue.body.contains("待审队列") && queue.body.contains("其他主题"));
    assert!(!queue.body.contains("Review queue"));
    // The browser asks for English.
    let mut b = b.speaking(Some("en-US,en;q=0.9"));
    let queue = b.get("/queue").await;
    assert_eq!(lang(&queue), "en");
    assert!(queue.body.contains("Review queue") && queue.body.contains("other subject"));
    // The user's setting beats the header; the time zone setting changes the times shown.
    let csrf = queue.csrf();
    let saved = b
        .post(
            "/settings",
            &[("csrf", &csrf), ("language", "zh"), ("time_zone", "UTC")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let settings = b.get("/settings").await;
    assert_eq!(lang(&settings), "zh-CN");
    assert!(settings.body.contains("设置已保存") || settings.body.contains("设置"));
    assert!(
        settings.body.contains("时间按 UTC 显示"),
        "{}",
        settings.body
    );
    // An unknown time zone or language is refused, in the page's language.
    let bad = b
        .post(
            "/settings",
            &[("csrf", &csrf), ("time_zone", "Mars/Olympus")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("未知的时区"), "{}", bad.body);
    // Back to "as the browser asks": English again.
    b.post(
        "/settings",
        &[("csrf", &csrf), ("language", ""), ("time_zone", "")],
    )
    .await;
    let queue = b.get("/queue").await;
    assert_eq!(lang(&queue), "en");
    assert!(
        queue.body.contains("times in Asia&#x2f;Shanghai"),
        "{}",
        queue.body
    );
}

#[tokio::test]
async fn times_are_shown_in_the_users_time_zone() {
    let env = TestEnv::new("").await;
    // 2026-12-04 05:30 UTC = 13:30 in Shanghai.
    let at = 1_796_362_200_000;
    let (item, _) = seed(
        &env,
        Seed {
            received_at: at,
            ..Default::default()
        },
    )
    .await;
    let mut b = signed_in(&env, "alice").await;
    let page = b.get(&format!("/items/{item}")).await;
    assert!(page.body.contains("2026-12-04 13:30"), "{}", page.body);
    let csrf = page.csrf();
    b.post(
        "/settings",
        &[("csrf", &csrf), ("time_zone", "Europe/Berlin")],
    )
    .await;
    let page = b.get(&format!("/items/{item}")).await;
    assert!(page.body.contains("2026-12-04 06:30"), "{}", page.body);
}

#[tokio::test]
async fn items_are_assigned_unassigned_and_listed_as_mine() {
    let env = TestEnv::new("").await;
    let (one, _) = seed(&env, Seed::default()).await;
    let (two, _) = seed(
        &env,
        Seed {
            message_id: "seed-2@huadong.example.cn",
            subject: "第二封",
            ..Default::default()
        },
    )
    .await;
    add_user(&env, "bob").await;
    let mut alice = signed_in(&env, "alice").await;
    let csrf = alice.session_csrf().await;
    let res = alice
        .post(
            &format!("/items/{one}/assign"),
            &[("csrf", &csrf), ("to", "me")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        item_state(&env, one).await.assignee.as_deref(),
        Some("alice")
    );
    let mine = alice.get("/queue?view=mine").await;
    assert!(
        mine.body.contains(&format!("/items/{one}\"")),
        "{}",
        mine.body
    );
    assert!(!mine.body.contains(&format!("/items/{two}\"")));
    let unassigned = alice.get("/queue?view=unassigned").await;
    assert!(unassigned.body.contains(&format!("/items/{two}\"")));
    assert!(!unassigned.body.contains(&format!("/items/{one}\"")));
    // The list shows who works on what.
    let all = alice.get("/queue").await;
    assert!(all
        .body
        .contains("<td class=\"assignee\" data-label=\"Assignee\">alice</td>"));
    // To another user, then to nobody; an unknown user is refused.
    alice
        .post(
            &format!("/items/{one}/assign"),
            &[("csrf", &csrf), ("to", "bob")],
        )
        .await;
    assert_eq!(item_state(&env, one).await.assignee.as_deref(), Some("bob"));
    let bad = alice
        .post(
            &format!("/items/{one}/assign"),
            &[("csrf", &csrf), ("to", "mallory")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    alice
        .post(
            &format!("/items/{one}/assign"),
            &[("csrf", &csrf), ("to", "")],
        )
        .await;
    assert_eq!(item_state(&env, one).await.assignee, None);
    let assigns: Vec<String> = audit(&env, "assign")
        .await
        .into_iter()
        .map(|a| a.detail)
        .collect();
    assert_eq!(
        assigns,
        vec!["assigned to bob (was alice)", "assigned to alice"]
    );
    let un = audit(&env, "unassign").await;
    assert_eq!(un.len(), 1);
    assert_eq!(un[0].detail, "unassigned (was bob)");
    assert_eq!(un[0].review_id, Some(one));
}

#[tokio::test]
async fn notes_stay_internal_and_show_in_the_activity() {
    let env = TestEnv::new("").await;
    let (item, _) = seed(&env, Seed::default()).await;
    let mut b = signed_in(&env, "alice").await;
    let csrf = b.session_csrf().await;
    let res = b
        .post(
            &format!("/items/{item}/note"),
            &[("csrf", &csrf), ("note", "asked 王伟 by phone <b>")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let page = b.get(&format!("/items/{item}")).await;
    assert!(
        page.body.contains("asked 王伟 by phone &lt;b&gt;"),
        "{}",
        page.body
    );
    let empty = b
        .post(
            &format!("/items/{item}/note"),
            &[("csrf", &csrf), ("note", " ")],
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    // The item stays open, nothing is queued to send.
    assert_eq!(item_state(&env, item).await.state, "open");
    let (sent, _) = env
        .app
        .store
        .history(&trialdesk::store::HistoryFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(sent.is_empty());
    assert_eq!(audit(&env, "note").await[0].actor, "alice");
}

#[tokio::test]
async fn a_conflicting_answer_keeps_the_typed_text_next_to_the_conflict() {
    let env = TestEnv::new("").await;
    let (item, _) = seed(&env, Seed::default()).await;
    let mut alice = signed_in(&env, "alice").await;
    let mut bob = signed_in(&env, "bob").await;
    let alice_csrf = alice.session_csrf().await;
    let bob_csrf = bob.session_csrf().await;
    // Both have the page open; bob answers first.
    let sent = bob
        .post(
            &format!("/items/{item}/answer"),
            &[
                ("csrf", &bob_csrf),
                ("mode", "text"),
                ("intent", "send"),
                ("text", "Bob's answer"),
            ],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    let typed = "Dear Wang,\nthe camera left our warehouse <today>.";
    let late = alice
        .post(
            &format!("/items/{item}/answer"),
            &[
                ("csrf", &alice_csrf),
                ("mode", "text"),
                ("intent", "send"),
                ("text", typed),
            ],
        )
        .await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert!(
        late.body
            .contains("Dear Wang,\nthe camera left our warehouse &lt;today&gt;."),
        "the typed text is kept: {}",
        late.body
    );
    assert!(late.body.contains("id=\"problem\""), "{}", late.body);
    assert!(late.body.contains("already resolved"), "{}", late.body);
    // Only bob's answer was queued.
    assert_eq!(audit(&env, "answer_text").await.len(), 1);
    // A refused template answer (bad number) keeps the own text and the numbers too.
    let (other, _) = seed(
        &env,
        Seed {
            message_id: "seed-3@huadong.example.cn",
            ..Default::default()
        },
    )
    .await;
    let refused = alice
        .post(
            &format!("/items/{other}/answer"),
            &[
                ("csrf", &alice_csrf),
                ("mode", "template"),
                ("intent", "send"),
                ("more_loans", "X123"),
                ("intro", "my own words"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(
        refused.body.contains("my own words</textarea>"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("value=\"X123\""), "{}", refused.body);
}

#[tokio::test]
async fn bulk_resolve_and_retry_are_audited_per_item() {
    let env = TestEnv::new("").await;
    let (a, _) = seed(&env, Seed::default()).await;
    let (b_item, _) = seed(
        &env,
        Seed {
            message_id: "seed-2@huadong.example.cn",
            ..Default::default()
        },
    )
    .await;
    let (dead1, out1) = seed_dead_letter(&env, "dead-1@huadong.example.cn").await;
    let (dead2, out2) = seed_dead_letter(&env, "dead-2@huadong.example.cn").await;
    let mut b = signed_in(&env, "alice").await;
    let csrf = b.session_csrf().await;
    let a_s = a.to_string();
    let b_s = b_item.to_string();
    let res = b
        .post(
            "/queue/bulk",
            &[
                ("csrf", &csrf),
                ("op", "resolve"),
                ("note", "spam wave"),
                ("id", &a_s),
                ("id", &b_s),
                ("back", "/queue?reason=other_subject"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let to = res.location().unwrap().to_string();
    assert!(to.starts_with("/queue?done=bulk&ok=2"), "{to}");
    assert!(to.ends_with("&reason=other_subject"), "{to}");
    for id in [a, b_item] {
        let it = item_state(&env, id).await;
        assert_eq!(
            (it.state.as_str(), it.note.as_deref()),
            ("resolved", Some("spam wave"))
        );
    }
    let resolves = audit(&env, "resolve").await;
    assert_eq!(resolves.len(), 2);
    assert!(resolves
        .iter()
        .all(|r| r.detail == "spam wave" && r.actor == "alice"));
    // Retrying a resolved item fails for that item only; the dead letter goes through.
    let d1 = dead1.to_string();
    let res = b
        .post(
            "/queue/bulk",
            &[("csrf", &csrf), ("op", "retry"), ("id", &d1), ("id", &a_s)],
        )
        .await;
    let to = res.location().unwrap().to_string();
    assert!(
        to.contains("ok=1") && to.contains(&format!("failed={a}")),
        "{to}"
    );
    let page = b.get(&to).await;
    assert!(
        page.body.contains(&format!("href=\"/items/{a}\">#{a}</a>")),
        "{}",
        page.body
    );
    // "Retry all dead letters": the one left.
    b.post("/queue/bulk", &[("csrf", &csrf), ("op", "retry_all_dead")])
        .await;
    let retries = audit(&env, "retry").await;
    let outboxes: Vec<Option<i64>> = retries.iter().map(|r| r.outbox_id).collect();
    assert_eq!(outboxes, vec![Some(out2), Some(out1)]);
    assert_eq!(item_state(&env, dead2).await.state, "resolved");
    // Nothing selected / no note: refused, nothing done.
    let none = b
        .post("/queue/bulk", &[("csrf", &csrf), ("op", "retry")])
        .await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn reprocess_all_of_a_reason_after_an_import() {
    let env = TestEnv::new("").await;
    let mut ids = Vec::new();
    for n in 0..2 {
        let mid = format!("new-{n}@newco.example.net");
        let (id, _) = seed(
            &env,
            Seed {
                from: "Li Lei <lilei@newco.example.net>",
                message_id: &mid,
                reason: "unknown_sender",
                partner_id: None,
                ..Default::default()
            },
        )
        .await;
        ids.push(id);
    }
    let mut b = signed_in(&env, "alice").await;
    let csrf = b.session_csrf().await;
    let res = b
        .post(
            "/queue/bulk",
            &[
                ("csrf", &csrf),
                ("op", "reprocess_reason"),
                ("reason", "unknown_sender"),
            ],
        )
        .await;
    assert!(
        res.location().unwrap().contains("ok=2"),
        "{:?}",
        res.location()
    );
    let audited: Vec<Option<i64>> = audit(&env, "reprocess")
        .await
        .iter()
        .map(|a| a.review_id)
        .collect();
    assert_eq!(audited.len(), 2);
    assert!(ids.iter().all(|id| audited.contains(&Some(*id))));
    let bad = b
        .post(
            "/queue/bulk",
            &[
                ("csrf", &csrf),
                ("op", "reprocess_reason"),
                ("reason", "nope"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_item_page_shows_partner_shipments_and_thread() {
    let env = TestEnv::new("").await;
    let (first, _) = seed(
        &env,
        Seed {
            message_id: "thread-1@huadong.example.cn",
            subject: "D20261001 在哪里",
            body: "请查询 D20261001",
            loans: &["D20261001"],
            ..Default::default()
        },
    )
    .await;
    let later_raw = common::mail(
        "王伟 <wangwei@huadong.example.cn>",
        "Re: 追问",
        "thread-2@huadong.example.cn",
        "In-Reply-To: <thread-1@huadong.example.cn>\r\nReferences: <thread-1@huadong.example.cn>\r\n",
        "还没有收到 D20261001 和 D30261002",
    );
    let (later, _) = seed(
        &env,
        Seed {
            message_id: "thread-2@huadong.example.cn",
            subject: "Re: 追问",
            raw: Some(later_raw),
            loans: &["D20261001", "D30261002"],
            ..Default::default()
        },
    )
    .await;
    let mut b = signed_in(&env, "alice").await;
    let page = b.get(&format!("/items/{later}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    // The partner, by the sender's domain.
    assert!(body.contains("华东智联科技有限公司") && body.contains("it-admin@huadong.example.cn"));
    // Shipments: the partner's own loan with its carrier link; not the other partner's.
    assert!(body.contains("EA920049643CN"), "{body}");
    assert!(page
        .links()
        .contains(&"https://ems.example/t?no=EA920049643CN".to_string()));
    assert!(
        !body.contains("Stadtwerke Lindau"),
        "another partner's shipment leaked"
    );
    // The thread links the earlier mail's item.
    assert!(
        body.contains(&format!("href=\"/items/{first}\">D20261001 在哪里</a>")),
        "{body}"
    );
    // The tracking template is offered.
    assert!(body.contains("name=\"mode\" value=\"template\""));
    assert!(!body.contains("id=\"template-unavailable\""));
}

/// Each of the thread's three relations on its own (a referenced mail, a mail that answered
/// one of our replies, the same partner's mail about a shared loan), and what is not related:
/// another partner's mail about the same loan, the partner's mail about another loan. After a
/// reprocess changes a mail's loans, the loan relation follows.
#[tokio::test]
async fn the_thread_finds_each_relation_by_itself() {
    let env = TestEnv::new("").await;
    let mail = |message_id: &'static str, loans: &'static [&'static str], partner| Seed {
        message_id,
        loans,
        partner_id: partner,
        subject: message_id,
        ..Default::default()
    };
    let (_, referenced) = seed(&env, mail("t-ref@huadong.example.cn", &[], Some("P01"))).await;
    let answered = Seed {
        answered: true,
        ..mail("t-ans@huadong.example.cn", &[], Some("P01"))
    };
    let (_, answered) = seed(&env, answered).await;
    let (_, same_loan) = seed(
        &env,
        mail("t-loan@huadong.example.cn", &["D20261001"], Some("P01")),
    )
    .await;
    let (_, other_partner) = seed(
        &env,
        mail("t-other@nordwind.example.de", &["D20261001"], Some("P02")),
    )
    .await;
    let (_, other_loan) = seed(
        &env,
        mail(
            "t-other-loan@huadong.example.cn",
            &["D20269999"],
            Some("P01"),
        ),
    )
    .await;
    let (_, this) = seed(
        &env,
        mail("t-this@huadong.example.cn", &["D20261001"], Some("P01")),
    )
    .await;
    let store = &env.app.store;
    let ids = |thread: Vec<trialdesk::store::ThreadMail>| {
        let mut ids: Vec<i64> = thread.into_iter().map(|m| m.id).collect();
        ids.sort();
        ids
    };
    let refs = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let loans = refs(&["D20261001"]);

    let by_reference = store
        .thread_of(this, None, &refs(&["t-ref@huadong.example.cn"]), &[], 20)
        .await
        .unwrap();
    assert_eq!(ids(by_reference), vec![referenced]);
    // A crafted mail listing 20,000 References (more than SQLite's bound parameters) still
    // has a thread: its nearest ancestors, last in the list, are looked up.
    let mut many: Vec<String> = (0..20_000).map(|i| format!("junk-{i}@x.example")).collect();
    many.push("t-ref@huadong.example.cn".into());
    let by_last_reference = store.thread_of(this, None, &many, &[], 20).await.unwrap();
    assert_eq!(ids(by_last_reference), vec![referenced]);
    let by_our_reply = store
        .thread_of(
            this,
            None,
            &refs(&["auto.t-ans@huadong.example.cn"]),
            &[],
            20,
        )
        .await
        .unwrap();
    assert_eq!(ids(by_our_reply), vec![answered]);
    let by_loan = store
        .thread_of(this, Some("P01"), &[], &loans, 20)
        .await
        .unwrap();
    assert_eq!(ids(by_loan), vec![same_loan], "never the mail itself");
    let all = store
        .thread_of(
            this,
            Some("P01"),
            &refs(&["t-ref@huadong.example.cn", "auto.t-ans@huadong.example.cn"]),
            &loans,
            20,
        )
        .await
        .unwrap();
    // Newest first: seeded in this order, one millisecond or more apart is not guaranteed,
    // so only the set is compared; the limit cuts the list.
    assert_eq!(ids(all), {
        let mut v = vec![referenced, answered, same_loan];
        v.sort();
        v
    });
    let one = store
        .thread_of(
            this,
            Some("P01"),
            &refs(&["t-ref@huadong.example.cn"]),
            &loans,
            1,
        )
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert!(!ids(store
        .thread_of(this, Some("P01"), &[], &loans, 20)
        .await
        .unwrap())
    .contains(&other_partner));

    // A reprocess that finds other loans in the mail moves it between relations.
    common::mailstack::sql_exec(
        &env.app,
        "UPDATE inbound_messages SET loan_numbers = '[\"D20261001\",\"D20260042\"]' \
         WHERE message_id = 't-other-loan@huadong.example.cn'",
    )
    .await;
    common::mailstack::sql_exec(
        &env.app,
        "UPDATE inbound_messages SET loan_numbers = '[]' \
         WHERE message_id = 't-loan@huadong.example.cn'",
    )
    .await;
    let after = store
        .thread_of(this, Some("P01"), &[], &loans, 20)
        .await
        .unwrap();
    assert_eq!(ids(after), vec![other_loan]);
}

#[tokio::test]
async fn an_unknown_sender_is_told_to_register_the_domain_instead_of_a_bare_400() {
    let env = TestEnv::new("").await;
    let (item, _) = seed(
        &env,
        Seed {
            from: "Li Lei <lilei@newco.example.net>",
            message_id: "unknown-1@newco.example.net",
            reason: "unknown_sender",
            partner_id: None,
            ..Default::default()
        },
    )
    .await;
    let mut b = signed_in(&env, "alice").await.speaking(None);
    let page = b.get(&format!("/items/{item}")).await;
    assert!(
        page.body.contains("id=\"template-unavailable\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("请先登记该域名"), "{}", page.body);
    assert!(page.body.contains("href=\"/import\""));
    assert!(page.body.contains("newco.example.net"));
    assert!(!page.body.contains("name=\"mode\" value=\"template\""));
}

#[tokio::test]
async fn staff_template_answers_carry_own_text_and_never_say_automatic() {
    let env = TestEnv::new("").await;
    let (item, _) = seed(
        &env,
        Seed {
            loans: &["D20261001"],
            ..Default::default()
        },
    )
    .await;
    let mut b = signed_in(&env, "alice").await;
    let csrf = b.session_csrf().await;
    let form = [
        ("csrf", csrf.as_str()),
        ("mode", "template"),
        ("loan", "D20261001"),
        ("intro", "王先生您好，抱歉回复晚了。"),
    ];
    let mut preview = form.to_vec();
    preview.push(("intent", "preview"));
    let p = b.post(&format!("/items/{item}/answer"), &preview).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("抱歉回复晚了"), "{}", p.body);
    let mut send = form.to_vec();
    send.push(("intent", "send"));
    b.post(&format!("/items/{item}/answer"), &send).await;
    env.app
        .sender(Arc::new(Notify::new()))
        .unwrap()
        .drain()
        .await
        .unwrap();
    let r = &env.replies()[0];
    let own = r.text.find("抱歉回复晚了").expect("own text");
    let status = r.text.find("EA920049643CN").expect("status");
    assert!(own < status, "own text above the status: {}", r.text);
    assert!(!r.text.contains("自动发送"), "{}", r.text);
    assert!(!r.html.contains("自动发送"), "{}", r.html);
    assert!(r.html.contains("抱歉回复晚了"), "{}", r.html);
}

#[tokio::test]
async fn free_text_quotes_the_original_date_and_name_in_the_threads_language() {
    let env = TestEnv::new("").await;
    let (item, _) = seed(&env, Seed::default()).await;
    let mut b = signed_in(&env, "alice").await;
    let csrf = b.session_csrf().await;
    b.post(
        &format!("/items/{item}/answer"),
        &[
            ("csrf", &csrf),
            ("mode", "text"),
            ("intent", "send"),
            ("text", "已为您查询。"),
            ("snippet", "01-checking"),
        ],
    )
    .await;
    env.app
        .sender(Arc::new(Notify::new()))
        .unwrap()
        .drain()
        .await
        .unwrap();
    let r = &env.replies()[0];
    // The seeded mail's Date header is Thu, 26 Nov 2026 09:00:00 +0800; the thread is zh.
    assert!(
        r.text.contains("2026-11-26 09:00 +08:00，王伟 写道："),
        "{}",
        r.text
    );
    assert!(r.text.contains("> 请查询 D20261001"), "{}", r.text);
    // The canned reply went above the typed text.
    let snippet = r.text.find("转给物流同事核实").expect("snippet");
    let own = r.text.find("已为您查询。").expect("own text");
    assert!(snippet < own, "{}", r.text);
    assert!(!r.text.contains("自动"), "{}", r.text);
}

#[tokio::test]
async fn search_finds_body_text_display_name_and_partner_name_within_dates() {
    let env = TestEnv::new("").await;
    let day = 86_400_000;
    let base = 1_796_300_000_000; // 2026-12-03
    let (old, _) = seed(
        &env,
        Seed {
            message_id: "s-1@huadong.example.cn",
            from: "赵敏 <zhaomin@huadong.example.cn>",
            body: "摄像头屏幕有划痕",
            received_at: base - 3 * day,
            ..Default::default()
        },
    )
    .await;
    let (new, _) = seed(
        &env,
        Seed {
            message_id: "s-2@nordwind.example.de",
            from: "Jens Berg <jens@nordwind.example.de>",
            body: "Kamera kaputt",
            partner_id: Some("P02"),
            received_at: base,
            ..Default::default()
        },
    )
    .await;
    let mut b = signed_in(&env, "alice").await;
    let has = |p: &Page, id: i64| p.body.contains(&format!("href=\"/items/{id}\""));
    for (q, want, not) in [
        ("屏幕有划痕", old, new),
        ("赵敏", old, new),
        ("Jens Berg", new, old),
        ("Nordwind", new, old),
        ("华东智联", old, new),
    ] {
        let url = format!(
            "/queue?q={}",
            trialdesk::review::mail_view::percent_encode(q)
        );
        let p = b.get(&url).await;
        assert!(has(&p, want) && !has(&p, not), "{q}: {}", p.body);
    }
    // The date range (days in the viewer's time zone) is kept in every link.
    let p = b.get("/queue?from=2026-12-02&until=2026-12-03").await;
    assert!(has(&p, new) && !has(&p, old), "{}", p.body);
    assert!(p.body.contains("value=\"2026-12-02\""));
    let bad = b.get("/queue?from=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn items_past_the_sla_are_marked_counted_and_the_title_shows_the_open_count() {
    let env = TestEnv::new("[web]\nlisten = \"127.0.0.1:0\"\nsla = \"2h\"\n").await;
    let clock = ManualClock::new(jiff::Timestamp::from_millisecond(1_796_362_200_000).unwrap());
    let now = 1_796_362_200_000;
    seed(
        &env,
        Seed {
            message_id: "old@huadong.example.cn",
            received_at: now - 3 * 3_600_000,
            ..Default::default()
        },
    )
    .await;
    seed(
        &env,
        Seed {
            message_id: "fresh@huadong.example.cn",
            received_at: now - 600_000,
            ..Default::default()
        },
    )
    .await;
    add_user(&env, "alice").await;
    let mut app = env.app.clone();
    app.clock = Arc::new(clock.clone());
    let mut b = Browser::with_router(app.web_router(Arc::new(Notify::new())).unwrap());
    b.login("alice", PASSWORD).await;
    let page = b.get("/queue").await;
    assert!(
        page.body.contains("<title>(2) Review queue"),
        "{}",
        page.body
    );
    assert!(page.body.contains("1 past the 2h target"), "{}", page.body);
    assert_eq!(page.body.matches("class=\"overdue\"").count(), 1);
    // (Less than the 2 h idle timeout of the session.)
    clock.advance(std::time::Duration::from_secs(115 * 60));
    let page = b.get("/queue").await;
    assert!(page.body.contains("2 past the 2h target"), "{}", page.body);
}

#[tokio::test]
async fn the_import_page_shows_no_result_before_an_import() {
    let env = TestEnv::new("").await;
    let mut b = signed_in(&env, "alice").await;
    let page = b.get("/import").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("Imported"), "{}", page.body);
    assert!(!page.body.contains("role=\"status\""), "{}", page.body);
}

#[tokio::test]
async fn pages_alone_warn_when_mail_waits_with_no_sender() {
    let env = TestEnv::new("").await;
    // A reply queued long ago, and nothing sends it (the router has no workers).
    seed(
        &env,
        Seed {
            answered: true,
            received_at: 1_000,
            ..Default::default()
        },
    )
    .await;
    let mut b = signed_in(&env, "alice").await;
    let page = b.get("/history").await;
    assert!(
        page.body
            .contains("mail(s) wait in the outbox, but no sender is running"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn no_page_carries_inline_styles_or_scripts() {
    let env = TestEnv::new("").await;
    let (item, inbound) = seed(&env, Seed::default()).await;
    let mut b = signed_in(&env, "alice").await;
    for path in [
        "/queue".to_string(),
        format!("/items/{item}"),
        format!("/messages/{inbound}"),
        "/history".to_string(),
        "/audit".to_string(),
        "/import".to_string(),
        "/settings".to_string(),
        "/reports".to_string(),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains("style="), "{path} has an inline style");
        assert!(!page.body.contains("<style"), "{path} has a style element");
        assert_eq!(
            page.body.matches("<script").count(),
            1,
            "{path}: only the pages' own script"
        );
        assert!(
            page.body.contains("class=\"skip\" href=\"#main\""),
            "{path}"
        );
    }
    let js = b.get("/static/app.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.body.contains("keydown"));
}

#[tokio::test]
async fn the_reports_page_and_cli_count_mails_by_outcome() {
    let env = TestEnv::new("").await;
    let day = 86_400_000;
    // 2026-12-01 00:00 Asia/Shanghai.
    let d1 = 1_796_054_400_000;
    let (item, _) = seed(
        &env,
        Seed {
            message_id: "r-1@huadong.example.cn",
            received_at: d1 + 3_600_000,
            ..Default::default()
        },
    )
    .await;
    seed(
        &env,
        Seed {
            message_id: "r-2@huadong.example.cn",
            received_at: d1 + day + 3_600_000,
            ..Default::default()
        },
    )
    .await;
    let mut b = signed_in(&env, "alice").await;
    let csrf = b.session_csrf().await;
    b.post(
        &format!("/items/{item}/resolve"),
        &[("csrf", &csrf), ("note", "done")],
    )
    .await;
    let page = b.get("/reports?from=2026-12-01&to=2026-12-02").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("<td data-label=\"Day\">2026-12-01</td>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("华东智联科技有限公司"), "{}", page.body);
    assert!(
        page.body.contains("0.0%"),
        "nothing automatic: {}",
        page.body
    );
    let csv = b.get("/reports.csv?from=2026-12-01&to=2026-12-02").await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers[axum::http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(
        csv.body.contains("day,2026-12-01,,1,0,1,0,0.0\n"),
        "{}",
        csv.body
    );
    assert!(
        csv.body.contains("day,2026-12-02,,1,0,1,0,0.0\n"),
        "{}",
        csv.body
    );
    let bad = b.get("/reports?from=2026-12-05&to=2026-12-01").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // The same figures on the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .arg("--config")
        .arg(&env.config_path)
        .args([
            "report",
            "--from",
            "2026-12-01",
            "--to",
            "2026-12-02",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["totals"]["total"], 2);
    assert_eq!(json["totals"]["reviewed"], 2);
    assert_eq!(json["resolution"]["count"], 1);
    assert_eq!(json["days"].as_array().unwrap().len(), 2);
}
