//! The outbox sender against a fake transport: retries with backoff, dead letters in review,
//! leases taken over after a crash.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{mail, TestEnv};
use tokio::sync::Notify;
use trialdesk::clock::ManualClock;
use trialdesk::outbound::{Outgoing, SendError, SendFuture, Sender, Transport};

/// Answers each send with the next scripted result (then Ok), recording what it got.
struct Scripted {
    script: Mutex<Vec<Result<(), SendError>>>,
    calls: AtomicUsize,
    delivered: Mutex<Vec<Vec<u8>>>,
}

impl Scripted {
    fn new(script: Vec<Result<(), SendError>>) -> Arc<Self> {
        Arc::new(Scripted {
            script: Mutex::new(script),
            calls: AtomicUsize::new(0),
            delivered: Mutex::new(vec![]),
        })
    }
}

impl Transport for Scripted {
    fn send<'a>(&'a self, mail: Outgoing<'a>) -> SendFuture<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let next = {
            let mut s = self.script.lock().unwrap();
            if s.is_empty() {
                Ok(())
            } else {
                s.remove(0)
            }
        };
        if next.is_ok() {
            self.delivered.lock().unwrap().push(mail.body.to_vec());
        }
        Box::pin(async move { next })
    }
    fn describe(&self) -> String {
        "scripted".into()
    }
}

async fn queue_one_reply(env: &TestEnv) {
    env.deliver(
        "1.a.host",
        &mail(
            "ops@pacrim.example.com",
            "Trial Endpoint Tracking Request",
            "q-1@pacrim.example.com",
            "",
            "D50261001",
        ),
    );
    env.drain_inbox().await;
}

fn sender(env: &TestEnv, transport: Arc<Scripted>, clock: &ManualClock, worker: &str) -> Sender {
    let mut config = env.app.config.outbox.clone();
    config.max_attempts = Some(3);
    Sender::new(
        env.app.store.clone(),
        transport,
        config,
        worker.into(),
        Arc::new(clock.clone()),
        Arc::new(Notify::new()),
    )
}

#[tokio::test]
async fn transient_failures_retry_with_backoff_then_succeed() {
    let env = TestEnv::new("").await;
    queue_one_reply(&env).await;
    let clock = ManualClock::new(jiff::Timestamp::now());
    let t = Scripted::new(vec![Err(SendError::Transient("421 try later".into()))]);
    let s = sender(&env, t.clone(), &clock, "w1");
    s.drain().await.unwrap();
    assert_eq!(t.calls.load(Ordering::SeqCst), 1);
    // Not due yet: nothing is sent before the backoff has passed.
    s.drain().await.unwrap();
    assert_eq!(t.calls.load(Ordering::SeqCst), 1);
    clock.advance(Duration::from_secs(3600));
    s.drain().await.unwrap();
    assert_eq!(t.calls.load(Ordering::SeqCst), 2);
    assert_eq!(t.delivered.lock().unwrap().len(), 1);
    let counts = env.app.store.outbox_counts().await.unwrap();
    assert_eq!(counts, vec![("sent".to_string(), 1)]);
}

#[tokio::test]
async fn permanent_failure_goes_to_review_with_the_server_answer() {
    let env = TestEnv::new("").await;
    queue_one_reply(&env).await;
    let clock = ManualClock::new(jiff::Timestamp::now());
    let t = Scripted::new(vec![Err(SendError::Permanent(
        "550 5.1.1 mailbox unknown".into(),
    ))]);
    sender(&env, t.clone(), &clock, "w1").drain().await.unwrap();
    let items = env
        .app
        .store
        .review_items(&Default::default())
        .await
        .unwrap();
    // (The answered loan may also have its own shipment_attention item: not this test's.)
    let items: Vec<_> = items
        .into_iter()
        .filter(|i| i.reason != "shipment_attention")
        .collect();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].reason, "dead_letter");
    assert!(items[0].detail.contains("550 5.1.1"), "{:?}", items[0]);
    assert_eq!(
        env.app.store.outbox_counts().await.unwrap(),
        vec![("dead".to_string(), 1)]
    );
}

#[tokio::test]
async fn too_many_transient_failures_dead_letter() {
    let env = TestEnv::new("").await;
    queue_one_reply(&env).await;
    let clock = ManualClock::new(jiff::Timestamp::now());
    let t = Scripted::new(
        (0..5)
            .map(|_| Err(SendError::Transient("connection refused".into())))
            .collect(),
    );
    let s = sender(&env, t.clone(), &clock, "w1");
    for _ in 0..5 {
        s.drain().await.unwrap();
        clock.advance(Duration::from_secs(7200));
    }
    assert_eq!(t.calls.load(Ordering::SeqCst), 3, "max_attempts = 3");
    let items = env
        .app
        .store
        .review_items(&Default::default())
        .await
        .unwrap();
    assert_eq!(items[0].reason, "dead_letter");
    assert!(
        items[0].detail.contains("gave up after 3 attempts"),
        "{:?}",
        items[0]
    );
}

#[tokio::test]
async fn a_crashed_senders_lease_expires_and_another_sends() {
    let env = TestEnv::new("").await;
    queue_one_reply(&env).await;
    let now = jiff::Timestamp::now().as_millisecond();
    // Worker "dead" claims the row for 1.5 s of the database's clock and never reports back.
    let claimed = env
        .app
        .store
        .claim_outbox("dead", now, 1_500, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let clock = ManualClock::new(jiff::Timestamp::from_millisecond(now).unwrap());
    let t = Scripted::new(vec![]);
    let s = sender(&env, t.clone(), &clock, "alive");
    s.drain().await.unwrap();
    assert_eq!(
        t.calls.load(Ordering::SeqCst),
        0,
        "leased rows are not taken"
    );
    // The lease ends on the database's clock (real time), whatever the instances' clocks say.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while t.calls.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.drain().await.unwrap();
    }
    assert_eq!(t.calls.load(Ordering::SeqCst), 1);
    // The dead worker cannot mark it afterwards.
    assert!(!env
        .app
        .store
        .mark_sent(claimed[0].id, "dead", now)
        .await
        .unwrap());
}

/// Issue 13: lease times come from the database's clock, not each instance's. An instance
/// whose clock runs a day ahead must not take a row another instance holds.
#[tokio::test]
async fn an_instance_whose_clock_runs_ahead_does_not_take_a_leased_row() {
    let env = TestEnv::new("").await;
    queue_one_reply(&env).await;
    let now = jiff::Timestamp::now().as_millisecond();
    let claimed = env
        .app
        .store
        .claim_outbox("slow-clock", now, 120_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let ahead = ManualClock::new(jiff::Timestamp::from_millisecond(now).unwrap());
    ahead.advance(Duration::from_secs(24 * 3600));
    let t = Scripted::new(vec![]);
    let s = sender(&env, t.clone(), &ahead, "fast-clock");
    s.drain().await.unwrap();
    assert_eq!(
        t.calls.load(Ordering::SeqCst),
        0,
        "the lease holds on the database's clock"
    );
    assert!(env
        .app
        .store
        .mark_sent(claimed[0].id, "slow-clock", now)
        .await
        .unwrap());
}
