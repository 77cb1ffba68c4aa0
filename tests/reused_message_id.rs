//! Reused Message-IDs: a duplicate is the same Message-ID *and* the same content (sender,
//! subject, decoded body). Another mail under a known Message-ID (ERP notifiers sending every
//! mail with one constant id) is processed normally, with the reason `message_id:reused`;
//! an identical redelivery of either stays a duplicate.

mod common;

use std::sync::Arc;

use common::{mail, TestEnv};
use tokio::sync::Notify;

async fn drain(env: &TestEnv) -> Arc<trialdesk::pipeline::InboundStats> {
    env.drain_inbox().await
}

#[tokio::test]
async fn same_id_other_content_is_a_new_request_and_identical_redelivery_a_duplicate() {
    use std::sync::atomic::Ordering::SeqCst;
    let env = TestEnv::new("").await;
    let request = |loan: &str| {
        mail(
            "ops@pacrim.example.com",
            "Trial Endpoint Tracking Request",
            "constant@erp.pacrim.example.com",
            "",
            loan,
        )
    };
    env.deliver("1.a.host", &request("D50261001"));
    assert_eq!(drain(&env).await.replied.load(SeqCst), 1);
    // The notifier's next request, same Message-ID, other loan.
    env.deliver("2.a.host", &request("D50261002"));
    let stats = drain(&env).await;
    assert_eq!(stats.duplicates.load(SeqCst), 0, "not a duplicate");
    assert_eq!(stats.replied.load(SeqCst), 1, "answered");
    // Each delivered again, byte for byte and with another Received line: duplicates.
    env.deliver("3.a.host", &request("D50261001"));
    let mut again =
        b"Received: from relay2.example by mx; Fri, 4 Dec 2026 08:00:00 +0000\r\n".to_vec();
    again.extend(request("D50261002"));
    env.deliver("4.a.host", &again);
    let stats = drain(&env).await;
    assert_eq!(stats.duplicates.load(SeqCst), 2);
    assert_eq!(stats.replied.load(SeqCst), 0);
    env.app
        .sender(Arc::new(Notify::new()))
        .unwrap()
        .drain()
        .await
        .unwrap();
    assert_eq!(env.replies().len(), 2, "two requests, two replies");

    let first = env.app.store.inbound(1).await.unwrap().unwrap();
    let second = env.app.store.inbound(2).await.unwrap().unwrap();
    assert_eq!(first.message_key, "mid:constant@erp.pacrim.example.com");
    assert!(
        second
            .message_key
            .starts_with("mid:constant@erp.pacrim.example.com#fp:"),
        "{second:?}"
    );
    let decisions = env.app.store.decisions_for_inbound(2).await.unwrap();
    assert!(
        decisions
            .iter()
            .any(|d| d.reasons.contains("message_id:reused")),
        "{decisions:?}"
    );
}
