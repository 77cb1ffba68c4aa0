//! Group commit: a round's mails are decided one after the other and recorded together in one
//! write transaction. What a later mail must see of an earlier one in the same round (its
//! Message-ID here; its reply against the rate limit in `limits.rs`, whose three requests
//! share one round) it sees before the commit, and one mail whose rows the database refuses
//! does not hold back the others.

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use common::{mail, TestEnv};
use trialdesk::pipeline::InboundStats;
use trialdesk::store::Backend;

const FROM: &str = "ops@pacrim.example.com";
const SUBJECT: &str = "Trial Endpoint Tracking Request";

/// The worker until the Maildir is done: one round (the batch holds every mail delivered),
/// then the step that files it.
async fn one_round(env: &TestEnv) -> Arc<InboundStats> {
    env.drain_inbox().await
}

async fn queued_replies(env: &TestEnv) -> i64 {
    match env.app.store.backend() {
        Backend::Sqlite(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE purpose = 'reply'")
                .fetch_one(pool)
                .await
                .unwrap()
        }
        Backend::Postgres(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM outbox WHERE purpose = 'reply'")
                .fetch_one(pool)
                .await
                .unwrap()
        }
    }
}

/// The same Message-ID three times in one round: a request, another request under the same
/// id (an ERP notifier's constant id), and a byte-for-byte redelivery of the first. The group
/// is committed before each repeat is decided, so the second is answered under the reused id
/// and the copy is a duplicate: two replies, no mail lost, none answered twice.
#[tokio::test]
async fn a_repeated_message_id_in_one_round_is_decided_against_the_committed_first() {
    let env = TestEnv::new("").await;
    let request = |loan: &str| mail(FROM, SUBJECT, "constant@erp.pacrim.example.com", "", loan);
    env.deliver("1.a.host", &request("D50261001"));
    env.deliver("2.a.host", &request("D50261002"));
    env.deliver("3.a.host", &request("D50261001"));
    let stats = one_round(&env).await;
    assert_eq!(stats.fetched.load(SeqCst), 3);
    assert_eq!(stats.replied.load(SeqCst), 2, "both requests answered");
    assert_eq!(stats.duplicates.load(SeqCst), 1, "the copy is a duplicate");
    assert_eq!(queued_replies(&env).await, 2);
}

/// A mail whose rows the database refuses (here a trigger; in life a constraint) fails the
/// group's transaction: the others are recorded one by one and answered, the refused one is
/// set aside to be retried, and nothing of it is recorded or acknowledged.
#[tokio::test]
async fn one_refused_mail_does_not_hold_back_its_group() {
    let env = TestEnv::new("").await;
    match env.app.store.backend() {
        Backend::Sqlite(pool) => {
            sqlx::query(
                "CREATE TRIGGER poison BEFORE INSERT ON inbound_messages \
                 WHEN NEW.body_text LIKE '%POISON%' BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        Backend::Postgres(pool) => {
            sqlx::query(
                "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
                 IF NEW.body_text LIKE '%POISON%' THEN RAISE EXCEPTION 'poisoned'; END IF; \
                 RETURN NEW; END $$ LANGUAGE plpgsql",
            )
            .execute(pool)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER poison BEFORE INSERT ON inbound_messages \
                 FOR EACH ROW EXECUTE FUNCTION poison()",
            )
            .execute(pool)
            .await
            .unwrap();
        }
    }
    env.deliver(
        "1.a.host",
        &mail(FROM, SUBJECT, "g1@pacrim.example.com", "", "D50261001"),
    );
    env.deliver(
        "2.a.host",
        &mail(
            FROM,
            SUBJECT,
            "g2@pacrim.example.com",
            "",
            "D50261002 POISON",
        ),
    );
    env.deliver(
        "3.a.host",
        &mail(FROM, SUBJECT, "g3@pacrim.example.com", "", "D50261002"),
    );
    let stats = one_round(&env).await;
    assert_eq!(
        stats.replied.load(SeqCst),
        2,
        "the two healthy mails answered"
    );
    assert_eq!(stats.failed.load(SeqCst), 1, "the refused one set aside");
    assert_eq!(queued_replies(&env).await, 2);
    let left: Vec<_> = std::fs::read_dir(env.maildir().join("new"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        left,
        ["2.a.host"],
        "only the refused mail is still in the inbox"
    );
}

/// What `record_group` reports, mail by mail, when a group mixes a mail known before, new mails
/// with none, one and two queued replies, review and attention items, and the same key twice:
/// every id names the row written for that mail (the rows are written a few statements for the
/// whole group and matched back by their keys).
#[tokio::test]
async fn a_groups_outcomes_name_each_mails_own_rows() {
    use trialdesk::store::{
        NewAttention, NewDecision, NewInbound, NewOutbox, NewRecord, NewReview, RecordOutcome,
    };
    let env = TestEnv::new("").await;
    let store = &env.app.store;
    let record = |key: &str, replies: &[&str], review: bool| NewRecord {
        inbound: NewInbound {
            message_key: format!("mid:{key}"),
            message_id: Some(key.to_string()),
            source: "test".into(),
            received_at: 1_000,
            sender: Some(FROM.into()),
            sender_name: None,
            subject: format!("about {key}"),
            size_bytes: 1,
            raw: Some(key.as_bytes().to_vec()),
            body_text: key.to_string(),
        },
        decision: NewDecision {
            decided_by: "pipeline".into(),
            kind: "tracking_request".into(),
            action: "reply".into(),
            language: "en".into(),
            partner_id: None,
            loan_numbers: vec![],
            reasons: vec![],
            review: vec![],
        },
        outbox: replies
            .iter()
            .map(|r| NewOutbox {
                purpose: "reply".into(),
                message_id: format!("{r}@helpdesk.example.test"),
                envelope_from: "helpdesk@example.test".into(),
                recipients: vec![FROM.into()],
                rate_key: FROM.into(),
                subject: format!("Re: {key}"),
                body: format!("Subject: {r}\r\n\r\n{r}\r\n").into_bytes(),
            })
            .collect(),
        review: review.then(|| NewReview {
            reason: "other_subject".into(),
            reasons: vec!["other_subject".into()],
            detail: format!("review {key}"),
        }),
        attention: if review {
            vec![NewAttention {
                key: format!("attention:{key}"),
                reason: "shipment_attention".into(),
                detail: format!("attention {key}"),
            }]
        } else {
            vec![]
        },
    };
    let before = record("before", &["r0"], false);
    let RecordOutcome::Recorded {
        inbound_id: before_id,
        ..
    } = store.record_group(&[&before], 1_000).await.unwrap()[0]
    else {
        panic!("first recording");
    };
    let none = record("none", &[], true);
    let one = record("one", &["r1"], false);
    let two = record("two", &["r2a", "r2b"], true);
    let again = record("one", &["r1-again"], false);
    let outcomes = store
        .record_group(&[&none, &before, &one, &two, &again], 2_000)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 5);
    assert_eq!(
        outcomes[1],
        RecordOutcome::Duplicate {
            inbound_id: before_id
        }
    );
    let RecordOutcome::Recorded {
        inbound_id: one_id, ..
    } = &outcomes[2]
    else {
        panic!("{:?}", outcomes[2]);
    };
    assert_eq!(
        outcomes[4],
        RecordOutcome::Duplicate {
            inbound_id: *one_id
        },
        "the second mail under a key in the same group is a duplicate of the first"
    );
    for (outcome, rec, replies) in [
        (&outcomes[0], &none, vec![]),
        (&outcomes[2], &one, vec!["r1"]),
        (&outcomes[3], &two, vec!["r2a", "r2b"]),
    ] {
        let RecordOutcome::Recorded {
            inbound_id,
            outbox_ids,
        } = outcome
        else {
            panic!("{outcome:?}");
        };
        let stored = store.inbound(*inbound_id).await.unwrap().unwrap();
        assert_eq!(stored.subject, rec.inbound.subject);
        assert_eq!(outbox_ids.len(), replies.len());
        for (id, r) in outbox_ids.iter().zip(replies) {
            let row = store.outbox_row(*id).await.unwrap().unwrap();
            assert_eq!(row.inbound_id, Some(*inbound_id));
            assert_eq!(row.message_id, format!("{r}@helpdesk.example.test"));
        }
        let items = store.review_items_for_inbound(*inbound_id).await.unwrap();
        assert_eq!(items.len(), if rec.review.is_some() { 2 } else { 0 });
    }
}
