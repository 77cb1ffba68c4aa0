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
