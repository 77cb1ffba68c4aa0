//! Reprocess: a queued mail runs through the real rules again after new data was imported —
//! answered automatically when it now can, and never answered twice.

mod common;
mod review_support;

use std::sync::Arc;

use common::{mail, TestEnv};
use review_support::seed_dead_letter;
use tokio::sync::Notify;
use trialdesk::review::{ActionError, Actions, Actor};
use trialdesk::store::{AuditFilter, ReviewFilter, ReviewItem};

fn actions(env: &TestEnv) -> Actions {
    env.app.review_actions(Arc::new(Notify::new())).unwrap()
}

async fn open_items(env: &TestEnv) -> Vec<ReviewItem> {
    env.app
        .store
        .review_items(&ReviewFilter::default())
        .await
        .unwrap()
}

async fn item_from(env: &TestEnv, sender: &str) -> ReviewItem {
    open_items(env)
        .await
        .into_iter()
        .find(|i| i.sender.as_deref() == Some(sender))
        .unwrap_or_else(|| panic!("no open item from {sender}"))
}

#[tokio::test]
async fn a_new_partner_imported_then_reprocessed_is_answered_and_resolved() {
    let env = TestEnv::new("").await;
    env.deliver(
        "2001.a.host",
        &mail(
            "Sales <info@new-reseller.example.net>",
            "Trial Endpoint Tracking Request",
            "new-1@new-reseller.example.net",
            "",
            "Where is D60261001?",
        ),
    );
    env.app.run_once().await.unwrap();
    let item = item_from(&env, "info@new-reseller.example.net").await;
    assert_eq!(item.reason, "unknown_sender");
    let a = actions(&env);
    let operator = Actor::web("alice");

    // Nothing changed yet: still needs review, still open, one more decision on record.
    let r = a.reprocess(item.id, &operator).await.unwrap();
    assert!(!r.outcome.resolved && r.outcome.queued.is_none(), "{r:?}");
    let inbound = item.inbound_id.unwrap();
    assert_eq!(
        env.app
            .store
            .decisions_for_inbound(inbound)
            .await
            .unwrap()
            .len(),
        2
    );

    // The helpdesk imports the new partner and its shipment, then reprocesses.
    let dir = env.dir.path();
    std::fs::write(
        dir.join("p.csv"),
        "partner_id,name,domains,admin_emails,language\n\
         P05,New Reseller Ltd,new-reseller.example.net,info@new-reseller.example.net,en\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("s.csv"),
        "loan_number,partner_id,customer,status,carrier,tracking_number,shipped_on,eta,delivered_on,items\n\
         D60261001,P05,Harbour Clinic,shipped,EMS,EE111222333CN,2026-11-20,2026-11-27,,Webex Desk Pro\n",
    )
    .unwrap();
    env.import("partners", &dir.join("p.csv")).await;
    env.import("shipments", &dir.join("s.csv")).await;
    let r = a.reprocess(item.id, &operator).await.unwrap();
    assert_eq!(
        (r.kind.as_str(), r.action.as_str()),
        ("tracking_request", "reply")
    );
    assert!(r.outcome.resolved && !r.outcome.already_answered, "{r:?}");
    let outbox_id = r.outcome.queued.expect("a reply was queued");
    let row = env.app.store.outbox_row(outbox_id).await.unwrap().unwrap();
    assert_eq!(
        (row.purpose.as_str(), row.inbound_id),
        ("reply", Some(inbound))
    );
    let stored = env.app.store.inbound(inbound).await.unwrap().unwrap();
    assert_eq!(
        (stored.action.as_str(), stored.partner_id.as_deref()),
        ("reply", Some("P05"))
    );
    let decisions = env.app.store.decisions_for_inbound(inbound).await.unwrap();
    assert_eq!(decisions.len(), 3);
    assert_eq!(decisions[2].decided_by, "reprocess:alice");
    assert!(open_items(&env).await.iter().all(|i| i.id != item.id));

    env.app.run_once().await.unwrap();
    let replies = env.replies();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].to, "info@new-reseller.example.net");
    assert_eq!(
        replies[0].in_reply_to.as_deref(),
        Some("new-1@new-reseller.example.net")
    );
    assert!(
        replies[0].text.contains("EE111222333CN"),
        "{}",
        replies[0].text
    );
    assert_eq!(
        replies[0].header("Auto-Submitted").as_deref(),
        Some("auto-replied")
    );

    // Closed: reprocessing again is refused rather than answering again.
    assert!(matches!(
        a.reprocess(item.id, &operator).await,
        Err(ActionError::Conflict(_))
    ));
    let audit = env
        .audit(AuditFilter {
            action: Some("reprocess".into()),
            limit: 10,
            ..Default::default()
        })
        .await;
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].outbox_id, Some(outbox_id));
}

#[tokio::test]
async fn an_answered_and_flagged_mail_is_not_answered_again() {
    let env = TestEnv::new("").await;
    // A partner asks about another partner's loan: answered ("not found") and flagged.
    env.deliver(
        "3001.a.host",
        &mail(
            "Dana Ortiz <ops@pacrim.example.com>",
            "Trial Endpoint Tracking Request",
            "flag-1@pacrim.example.com",
            "",
            "Status of D20261001 please.",
        ),
    );
    env.app.run_once().await.unwrap();
    assert_eq!(env.replies().len(), 1);
    let item = item_from(&env, "ops@pacrim.example.com").await;
    assert_eq!(item.reason, "loan_of_other_partner");
    let r = actions(&env)
        .reprocess(item.id, &Actor::cli("bob"))
        .await
        .unwrap();
    assert_eq!(r.action, "reply");
    assert!(r.outcome.already_answered, "{r:?}");
    assert_eq!(r.outcome.queued, None);
    assert!(!r.outcome.resolved, "still flagged for a person");
    let inbound = item.inbound_id.unwrap();
    assert_eq!(
        env.app.store.sent_for_inbound(inbound).await.unwrap().len(),
        1
    );
    env.app.run_once().await.unwrap();
    assert_eq!(env.replies().len(), 1, "no second answer");
    let audit = env
        .audit(AuditFilter {
            action: Some("reprocess".into()),
            limit: 10,
            ..Default::default()
        })
        .await;
    assert!(
        audit[0].detail.contains("already answered"),
        "{}",
        audit[0].detail
    );
}

#[tokio::test]
async fn only_received_mail_can_be_reprocessed() {
    let env = TestEnv::new("").await;
    let (dead, _) = seed_dead_letter(&env, "rp-dl@huadong.example.cn").await;
    let err = actions(&env).reprocess(dead, &Actor::cli("bob")).await;
    assert!(matches!(err, Err(ActionError::NotApplicable(_))), "{err:?}");
    assert!(matches!(
        actions(&env).reprocess(4242, &Actor::cli("bob")).await,
        Err(ActionError::NotFound(4242))
    ));
}
