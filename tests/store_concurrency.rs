//! Several senders claiming from one outbox at once never get the same row (SQLite's single
//! writer; PostgreSQL's `FOR UPDATE SKIP LOCKED`), and recording the same mail concurrently
//! stores it once.

mod common;

use std::collections::HashSet;

use common::TestEnv;
use trialdesk::store::{NewDecision, NewInbound, NewOutbox, RecordOutcome};

fn inbound(key: &str) -> NewInbound {
    NewInbound {
        message_key: key.into(),
        message_id: Some(key.into()),
        source: "test".into(),
        received_at: 0,
        sender: Some("ops@pacrim.example.com".into()),
        sender_name: None,
        subject: "Trial Endpoint Tracking Request".into(),
        size_bytes: 10,
        raw: Some(b"x".to_vec()),
        body_text: String::new(),
    }
}

fn decision() -> NewDecision {
    NewDecision {
        decided_by: "test".into(),
        kind: "tracking_request".into(),
        action: "reply".into(),
        language: "en".into(),
        partner_id: Some("P04".into()),
        loan_numbers: vec![],
        reasons: vec![],
        review: vec![],
    }
}

fn reply(key: &str) -> NewOutbox {
    NewOutbox {
        purpose: "reply".into(),
        message_id: format!("out-{key}"),
        envelope_from: "helpdesk@example.test".into(),
        recipients: vec!["ops@pacrim.example.com".into()],
        rate_key: "ops@pacrim.example.com".into(),
        subject: "Re: x".into(),
        body: b"body".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_are_disjoint() {
    let env = TestEnv::new("").await;
    for i in 0..200 {
        let key = format!("k{i}");
        env.app
            .store
            .record_inbound(&inbound(&key), &decision(), &[reply(&key)], None, 0)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = env.app.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let rows = store
                    .claim_outbox(&format!("w{w}"), 1, 3_600_000, 7)
                    .await
                    .unwrap();
                if rows.is_empty() {
                    break;
                }
                for r in rows {
                    assert!(store.mark_sent(r.id, &format!("w{w}"), 2).await.unwrap());
                    mine.push(r.id);
                }
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 200, "every row claimed");
    assert_eq!(unique.len(), 200, "no row claimed twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_mail_recorded_concurrently_is_stored_once() {
    let env = TestEnv::new("").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = env.app.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .record_inbound(&inbound("same"), &decision(), &[reply("same")], None, 0)
                .await
                .unwrap()
        }));
    }
    let mut recorded = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), RecordOutcome::Recorded { .. }) {
            recorded += 1;
        }
    }
    assert_eq!(recorded, 1);
    assert_eq!(
        env.app.store.outbox_counts().await.unwrap(),
        vec![("queued".to_string(), 1)]
    );
}
