//! The staff actions (shared by the web pages and the CLI) against a real store: each one's
//! effect, the item's state and the audit row, and what happens when two people race.

mod common;
mod review_support;

use std::sync::Arc;

use common::{Reply, TestEnv};
use review_support::{seed, seed_dead_letter, Seed};
use tokio::sync::Notify;
use trialdesk::review::{ActionError, Actions, Actor};
use trialdesk::store::{HistoryFilter, ReviewFilter, ReviewOrder};

fn actions(env: &TestEnv) -> Actions {
    env.app.review_actions(Arc::new(Notify::new())).unwrap()
}

async fn send_all(env: &TestEnv) {
    env.app
        .sender(Arc::new(Notify::new()))
        .unwrap()
        .drain()
        .await
        .unwrap();
}

#[tokio::test]
async fn template_answer_is_threaded_shows_only_own_loans_and_closes_the_item() {
    let env = TestEnv::new("").await;
    let (item, inbound) = seed(
        &env,
        Seed {
            message_id: "ask-1@huadong.example.cn",
            body: "请查询 D20261001 和 D30261002",
            loans: &["D20261001", "D30261002"],
            reason: "loan_of_other_partner",
            ..Default::default()
        },
    )
    .await;
    let a = actions(&env);
    let alice = Actor::web("alice");
    let outbox_id = a
        .answer_template(item, &["d20261001, D30261002".into()], &alice)
        .await
        .unwrap();

    let it = env.app.store.review_item(item).await.unwrap().unwrap();
    assert_eq!(it.state, "resolved");
    assert_eq!(it.resolved_by.as_deref(), Some("alice"));
    assert!(it.note.unwrap().contains("D20261001, D30261002"));
    let row = env.app.store.outbox_row(outbox_id).await.unwrap().unwrap();
    assert_eq!(
        (row.purpose.as_str(), row.state.as_str()),
        ("staff_reply", "queued")
    );
    assert_eq!(row.inbound_id, Some(inbound));
    let entries = env.audit_of("answer_template").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].actor, "alice");
    assert_eq!(entries[0].via, "web");
    assert_eq!(entries[0].review_id, Some(item));
    assert_eq!(entries[0].outbox_id, Some(outbox_id));

    send_all(&env).await;
    let replies = env.replies();
    assert_eq!(replies.len(), 1);
    let r: &Reply = &replies[0];
    assert_eq!(r.to, "wangwei@huadong.example.cn");
    assert_eq!(r.subject, "Re: 试用终端追踪请求");
    assert_eq!(r.in_reply_to.as_deref(), Some("ask-1@huadong.example.cn"));
    assert_eq!(r.references, vec!["ask-1@huadong.example.cn".to_string()]);
    assert_eq!(r.header("X-Trialdesk").as_deref(), Some("staff-reply"));
    assert_eq!(r.header("Auto-Submitted"), None, "a person wrote it");
    // P01's own loan is shown; P02's is "not found", exactly as an automatic reply says it.
    assert!(
        r.text.contains("D20261001") && r.text.contains("EA920049643CN"),
        "{}",
        r.text
    );
    assert!(r.text.contains("D30261002"), "{}", r.text);
    assert!(
        !r.text.contains("Stadtwerke Lindau"),
        "another partner's customer leaked: {}",
        r.text
    );
    assert!(r.text.contains("Test Helpdesk"));

    // A second answer to the same item is refused: it is closed.
    let again = a.answer_template(item, &["D20261001".into()], &alice).await;
    assert!(matches!(again, Err(ActionError::Conflict(_))), "{again:?}");
}

#[tokio::test]
async fn template_answer_needs_a_partner_and_valid_numbers() {
    let env = TestEnv::new("").await;
    let (unknown, _) = seed(
        &env,
        Seed {
            from: "Mallory <mallory@evil.example.org>",
            message_id: "ask-2@evil.example.org",
            reason: "unknown_sender",
            partner_id: None,
            ..Default::default()
        },
    )
    .await;
    let a = actions(&env);
    let bob = Actor::cli("bob");
    let err = a
        .answer_template(unknown, &["D20261001".into()], &bob)
        .await;
    assert!(matches!(err, Err(ActionError::NotApplicable(_))), "{err:?}");
    let (item, _) = seed(
        &env,
        Seed {
            message_id: "ask-3@huadong.example.cn",
            ..Default::default()
        },
    )
    .await;
    for bad in [vec![], vec!["".to_string()], vec!["X123".to_string()]] {
        let err = a.answer_template(item, &bad, &bob).await;
        assert!(
            matches!(err, Err(ActionError::Invalid(_))),
            "{bad:?}: {err:?}"
        );
    }
    // Nothing was written by the refused attempts.
    assert_eq!(
        env.app
            .store
            .review_item(item)
            .await
            .unwrap()
            .unwrap()
            .state,
        "open"
    );
    assert!(env.audit_of("answer_template").await.is_empty());
    assert_eq!(env.app.store.outbox_counts().await.unwrap(), vec![]);
    assert!(matches!(
        a.answer_template(9999, &["D1".into()], &bob).await,
        Err(ActionError::NotFound(9999))
    ));
}

#[tokio::test]
async fn free_text_answer_escapes_quotes_and_signs() {
    let env = TestEnv::new("").await;
    let (item, _) = seed(
        &env,
        Seed {
            from: "Mallory <mallory@evil.example.org>",
            subject: "RMA label lost",
            message_id: "rma-1@evil.example.org",
            body: "Where is my <b>label</b>?",
            reason: "unknown_sender",
            partner_id: None,
            ..Default::default()
        },
    )
    .await;
    let a = actions(&env);
    assert!(matches!(
        a.answer_text(item, "  \n ", &Actor::cli("carol")).await,
        Err(ActionError::Invalid(_))
    ));
    a.answer_text(
        item,
        "Hello <Mallory>,\n\nwe sent a new label & a note.",
        &Actor::cli("carol"),
    )
    .await
    .unwrap();
    send_all(&env).await;
    let r = &env.replies()[0];
    assert_eq!(r.to, "mallory@evil.example.org");
    assert_eq!(r.subject, "Re: RMA label lost");
    assert_eq!(r.in_reply_to.as_deref(), Some("rma-1@evil.example.org"));
    assert!(r.text.starts_with("Hello <Mallory>,"), "{}", r.text);
    assert!(r.text.contains("Test Helpdesk"));
    assert!(r.text.contains("> Where is my <b>label</b>?"), "{}", r.text);
    assert!(r.html.contains("Hello &lt;Mallory&gt;,"), "{}", r.html);
    assert!(r.html.contains("label &amp; a note"), "{}", r.html);
    assert!(
        !r.html.contains("<b>label</b>"),
        "quoted mail must be escaped: {}",
        r.html
    );
    let e = env.audit_of("answer_text").await;
    assert_eq!((e[0].actor.as_str(), e[0].via.as_str()), ("carol", "cli"));
}

/// When the stored mail cannot be read again (an unprocessable mail's bytes, empty here), the
/// answer goes to the sender recorded with it, after the same check and canonical form a
/// parsed From gets (an unprocessable mail's sender is raw header text): the fully qualified
/// domain's dot goes, and an encoded word as an address is no one to answer.
#[tokio::test]
async fn the_recorded_sender_of_an_unreadable_mail_passes_the_address_check() {
    let env = TestEnv::new("").await;
    let a = actions(&env);
    let (fine, _) = seed(
        &env,
        Seed {
            from: "Mallory <mallory@evil.example.org.>",
            message_id: "unreadable-1@evil.example.org",
            raw: Some(Vec::new()),
            reason: "unprocessable",
            partner_id: None,
            ..Default::default()
        },
    )
    .await;
    a.answer_text(fine, "We could not read your mail.", &Actor::cli("carol"))
        .await
        .unwrap();
    let (encoded, _) = seed(
        &env,
        Seed {
            from: "=?utf-8?B?broken?=@sakura-net.example.jp",
            message_id: "unreadable-2@sakura-net.example.jp",
            raw: Some(Vec::new()),
            reason: "unprocessable",
            partner_id: None,
            ..Default::default()
        },
    )
    .await;
    assert!(matches!(
        a.answer_text(
            encoded,
            "We could not read your mail.",
            &Actor::cli("carol")
        )
        .await,
        Err(ActionError::NotApplicable(_))
    ));
    send_all(&env).await;
    let to: Vec<String> = env.replies().iter().map(|r| r.to.clone()).collect();
    assert_eq!(to, ["mallory@evil.example.org"]);
}

#[tokio::test]
async fn resolve_needs_a_note_and_happens_once() {
    let env = TestEnv::new("").await;
    let (item, _) = seed(&env, Seed::default()).await;
    let a = actions(&env);
    let dave = Actor::web("dave");
    assert!(matches!(
        a.resolve(item, " ", &dave).await,
        Err(ActionError::Invalid(_))
    ));
    a.resolve(item, "answered by phone", &dave).await.unwrap();
    let it = env.app.store.review_item(item).await.unwrap().unwrap();
    assert_eq!(
        (it.state.as_str(), it.note.as_deref()),
        ("resolved", Some("answered by phone"))
    );
    assert!(matches!(
        a.resolve(item, "again", &dave).await,
        Err(ActionError::Conflict(_))
    ));
    let e = env.audit_of("resolve").await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].detail, "answered by phone");
}

#[tokio::test]
async fn dead_letters_are_retried_or_discarded() {
    let env = TestEnv::new("").await;
    let (retry_item, retry_mail) = seed_dead_letter(&env, "dl-1@huadong.example.cn").await;
    let (discard_item, discard_mail) = seed_dead_letter(&env, "dl-2@huadong.example.cn").await;
    let (plain_item, _) = seed(
        &env,
        Seed {
            message_id: "plain@huadong.example.cn",
            ..Default::default()
        },
    )
    .await;
    let a = actions(&env);
    let erin = Actor::web("erin");
    assert!(matches!(
        a.retry(plain_item, &erin).await,
        Err(ActionError::NotApplicable(_))
    ));

    assert_eq!(a.retry(retry_item, &erin).await.unwrap(), retry_mail);
    let row = env.app.store.outbox_row(retry_mail).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.attempts), ("queued", 0));
    assert_eq!(a.discard(discard_item, &erin).await.unwrap(), discard_mail);
    assert_eq!(
        env.app
            .store
            .outbox_row(discard_mail)
            .await
            .unwrap()
            .unwrap()
            .state,
        "discarded"
    );
    // Both items are closed; retrying a closed one is a conflict, not a second send.
    assert!(matches!(
        a.retry(retry_item, &erin).await,
        Err(ActionError::Conflict(_))
    ));
    send_all(&env).await;
    let replies = env.replies();
    assert_eq!(replies.len(), 1, "only the retried mail is sent");
    assert!(replies[0].text.contains("status of D20261001"));
    assert_eq!(
        env.app
            .store
            .outbox_row(retry_mail)
            .await
            .unwrap()
            .unwrap()
            .state,
        "sent"
    );
    assert_eq!(env.audit_of("retry").await[0].outbox_id, Some(retry_mail));
    assert_eq!(
        env.audit_of("discard").await[0].outbox_id,
        Some(discard_mail)
    );
}

#[tokio::test]
async fn two_people_answering_at_once_send_one_answer() {
    let env = TestEnv::new("").await;
    let (item, inbound) = seed(
        &env,
        Seed {
            message_id: "race@huadong.example.cn",
            ..Default::default()
        },
    )
    .await;
    let a = actions(&env);
    let b = actions(&env);
    let (alice, bob) = (Actor::web("alice"), Actor::web("bob"));
    let loans = ["D20261001".to_string()];
    let (x, y) = tokio::join!(
        a.answer_template(item, &loans, &alice),
        b.answer_text(item, "I'll check.", &bob),
    );
    assert_eq!(
        [x.is_ok(), y.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{x:?} {y:?}"
    );
    let failed = match (x, y) {
        (Err(e), _) | (_, Err(e)) => e,
        _ => unreachable!("exactly one failed"),
    };
    assert!(matches!(failed, ActionError::Conflict(_)), "{failed:?}");
    assert_eq!(
        env.app.store.sent_for_inbound(inbound).await.unwrap().len(),
        1
    );
    let answers =
        env.audit_of("answer_template").await.len() + env.audit_of("answer_text").await.len();
    assert_eq!(answers, 1);
}

#[tokio::test]
async fn queue_pages_filters_and_searches_in_sql() {
    let env = TestEnv::new("").await;
    let base = jiff::Timestamp::now().as_millisecond() - 100_000;
    let mut ids = Vec::new();
    for i in 0..7 {
        let mid = format!("p{i}@huadong.example.cn");
        let loan = format!("D2026100{i}");
        let (id, _) = seed(
            &env,
            Seed {
                message_id: &mid,
                subject: if i == 3 {
                    "Frage zu Leihgerät"
                } else {
                    "试用终端追踪请求"
                },
                loans: &[&loan],
                reason: if i % 2 == 0 {
                    "unknown_sender"
                } else {
                    "other_subject"
                },
                // Two items share a timestamp: the id breaks the tie.
                received_at: base + (i.min(5) as i64) * 1000,
                ..Default::default()
            },
        )
        .await;
        ids.push(id);
    }
    let store = &env.app.store;
    for order in [ReviewOrder::NewestFirst, ReviewOrder::OldestFirst] {
        let mut seen = Vec::new();
        let mut filter = ReviewFilter {
            limit: 3,
            order,
            ..Default::default()
        };
        let mut previous: Option<Vec<i64>> = None;
        loop {
            let page = store.review_page(&filter).await.unwrap();
            let here: Vec<i64> = page.items.iter().map(|i| i.id).collect();
            assert_eq!(page.has_prev, previous.is_some());
            if let Some(prev) = &previous {
                // Going back from this page gives the previous page again.
                let back = store
                    .review_page(&ReviewFilter {
                        after: None,
                        before: Some(page.items[0].cursor()),
                        ..filter.clone()
                    })
                    .await
                    .unwrap();
                let back_ids: Vec<i64> = back.items.iter().map(|i| i.id).collect();
                assert_eq!(&back_ids, prev);
                assert!(back.has_next);
                assert_eq!(back.has_prev, seen.len() > 3);
            }
            seen.extend(here.iter().copied());
            if !page.has_next {
                break;
            }
            filter.after = Some(page.items.last().unwrap().cursor());
            previous = Some(here);
        }
        let mut expected = ids.clone();
        if order == ReviewOrder::NewestFirst {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{order:?}");
    }
    let search = |s: &str| ReviewFilter {
        search: Some(s.into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .review_items(&search("d20261004"))
            .await
            .unwrap()
            .len(),
        1,
        "loan numbers, any case"
    );
    assert_eq!(
        store
            .review_items(&search("leihgerät"))
            .await
            .unwrap()
            .len(),
        1,
        "subject"
    );
    assert_eq!(
        store.review_items(&search("WANGWEI@")).await.unwrap().len(),
        7,
        "sender"
    );
    assert_eq!(
        store.review_items(&search("100%")).await.unwrap().len(),
        0,
        "% is literal"
    );
    let count = |s: &'static str| {
        let f = search(s);
        async move { store.review_items(&f).await.unwrap().len() }
    };
    assert_eq!(count("d2").await, 7, "short: scanned");
    assert_eq!(count("终端追踪").await, 6, "CJK");
    assert_eq!(count("终端").await, 6, "short CJK");
    assert_eq!(count("a\"b OR c").await, 0, "quotes are text");
    assert_eq!(count("D20261004\"]").await, 1);
    let reason = ReviewFilter {
        reason: Some("unknown_sender".into()),
        ..Default::default()
    };
    assert_eq!(store.review_items(&reason).await.unwrap().len(), 4);
    assert_eq!(
        store.review_counts().await.unwrap(),
        vec![("other_subject".into(), 3), ("unknown_sender".into(), 4)]
    );
}

#[tokio::test]
async fn history_answers_did_we_reply_to_partner_x_about_a_loan() {
    let env = TestEnv::new("").await;
    let (item, _) = seed(
        &env,
        Seed {
            message_id: "h1@huadong.example.cn",
            loans: &["D20261003"],
            ..Default::default()
        },
    )
    .await;
    seed(
        &env,
        Seed {
            from: "ops@pacrim.example.com",
            message_id: "h2@pacrim.example.com",
            partner_id: Some("P04"),
            answered: true,
            loans: &["D50261001"],
            ..Default::default()
        },
    )
    .await;
    actions(&env)
        .answer_template(item, &["D20261003".into()], &Actor::web("alice"))
        .await
        .unwrap();
    let store = &env.app.store;
    let find = |search: &str, partner: Option<&str>| HistoryFilter {
        search: Some(search.into()),
        partner_id: partner.map(str::to_string),
        limit: 50,
        ..Default::default()
    };
    let (rows, more) = store
        .history(&find("D20261003", Some("P01")))
        .await
        .unwrap();
    assert!(!more);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].purpose, "staff_reply");
    assert_eq!(
        rows[0].partner_name.as_deref(),
        Some("华东智联科技有限公司")
    );
    assert!(store
        .history(&find("D20261003", Some("P04")))
        .await
        .unwrap()
        .0
        .is_empty());
    let (rows, _) = store.history(&find("pacrim", None)).await.unwrap();
    assert_eq!((rows.len(), rows[0].purpose.as_str()), (1, "reply"));
    let all = store
        .history(&HistoryFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(all.1, "two rows, one per page");
}

/// A term matching thousands of sent mails is answered by walking the history's ordered index
/// (see `Search::is_common`); the pages must be the same rows, order and "more" flags as the
/// plain filter-and-sort, with ties on the time, with a purpose, and across cursors.
#[tokio::test]
async fn history_pages_for_a_common_term_are_the_filtered_sorted_rows() {
    let env = TestEnv::new("").await;
    let store = &env.app.store;
    // (id, purpose, created_at, matches "commonterm"): 2,400 of 2,700 match; times repeat.
    let rows: Vec<(i64, &str, i64, bool)> = (1..=2700i64)
        .map(|i| {
            let purpose = if i % 3 == 0 { "reminder" } else { "reply" };
            (i, purpose, 1_000 + (i * 7919) % 900, i % 9 != 0)
        })
        .collect();
    macro_rules! insert {
        ($pool:expr) => {{
            let mut tx = $pool.begin().await.unwrap();
            for (id, purpose, at, hit) in &rows {
                let to = if *hit {
                    format!("[\"a{id}@commonterm.example\"]")
                } else {
                    format!("[\"b{id}@other.example\"]")
                };
                sqlx::query(
                    "INSERT INTO outbox (id, purpose, message_id, envelope_from, recipients, \
                     rate_key, subject, body, state, next_attempt_at, created_at) \
                     VALUES ($1, $2, $3, 'helpdesk@example.test', $4, 'k', 'Re: loan', $5, \
                     'sent', 0, $6)",
                )
                .bind(*id)
                .bind(*purpose)
                .bind(format!("m{id}@example.test"))
                .bind(to)
                .bind(b"x".to_vec())
                .bind(*at)
                .execute(&mut *tx)
                .await
                .unwrap();
            }
            tx.commit().await.unwrap();
        }};
    }
    match store.backend() {
        trialdesk::store::Backend::Sqlite(pool) => insert!(pool),
        trialdesk::store::Backend::Postgres(pool) => insert!(pool),
    }
    for purpose in [None, Some("reminder")] {
        let mut expected: Vec<(i64, i64)> = rows
            .iter()
            .filter(|r| r.3 && purpose.is_none_or(|p| p == r.1))
            .map(|r| (r.2, r.0))
            .collect();
        expected.sort_by(|a, b| b.cmp(a));
        let mut got = Vec::new();
        let mut after = None;
        loop {
            let (page, more) = store
                .history(&HistoryFilter {
                    purpose: purpose.map(str::to_string),
                    search: Some("COMMONTERM".into()),
                    after,
                    limit: 50,
                    ..Default::default()
                })
                .await
                .unwrap();
            got.extend(page.iter().map(|r| (r.created_at, r.id)));
            assert_eq!(
                more,
                got.len() < expected.len(),
                "{purpose:?} at {}",
                got.len()
            );
            if !more {
                break;
            }
            let last = page.last().unwrap();
            after = Some(trialdesk::store::Cursor {
                at: last.created_at,
                id: last.id,
            });
        }
        assert_eq!(got, expected, "{purpose:?}");
    }
}
