//! The mailbox lease (one IMAP reader among several instances), on SQLite and PostgreSQL:
//! taken, renewed, refused while held, taken over when expired, released, taken at once from a
//! dead holder on this machine, and given up locally before it ends when renewals fail.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestEnv;
use tokio_util::sync::CancellationToken;
use trialdesk::lease::{Lease, LeaseSettings};
use trialdesk::store::LeaseClaim;

fn claim<'a>(token: &'a str, process: Option<&'a str>, ttl_ms: i64) -> LeaseClaim<'a> {
    LeaseClaim {
        name: "imap:test",
        holder: token,
        token,
        process,
        ttl_ms,
    }
}

#[tokio::test]
async fn one_holder_at_a_time_on_the_database_clock() {
    let env = TestEnv::new("").await;
    let store = &env.app.store;
    let a = store
        .lease_acquire(&claim("a", None, 400))
        .await
        .unwrap()
        .expect("free lease is taken");
    let local = jiff::Timestamp::now().as_millisecond();
    assert!(
        (a.db_now - local).abs() < 5_000,
        "database clock in ms: {} vs {local}",
        a.db_now
    );
    assert_eq!(a.expires_at - a.renewed_at, 400);
    assert!(store
        .lease_acquire(&claim("b", None, 400))
        .await
        .unwrap()
        .is_none());
    // Renewing moves the expiry on as soon as the database clock has moved on (≥ 1 ms).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let renewed = loop {
        let renewed = store
            .lease_acquire(&claim("a", None, 400))
            .await
            .unwrap()
            .expect("holder renews");
        if renewed.expires_at > a.expires_at || std::time::Instant::now() > deadline {
            break renewed;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(
        renewed.acquired_at, a.acquired_at,
        "renewal keeps acquired_at"
    );
    assert!(renewed.expires_at > a.expires_at);

    // Not renewed any more: expired once 400 ms have passed on the database clock.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let row = loop {
        let row = store.lease("imap:test").await.unwrap().unwrap();
        if row.expired() || std::time::Instant::now() > deadline {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(row.expired());
    let b = store
        .lease_acquire(&claim("b", None, 10_000))
        .await
        .unwrap()
        .expect("expired lease is taken over");
    assert!(b.acquired_at > a.acquired_at);
    assert!(
        store
            .lease_acquire(&claim("a", None, 400))
            .await
            .unwrap()
            .is_none(),
        "the old holder cannot renew a lease it lost"
    );
    // Take-over is a compare-and-swap on the holder named.
    assert!(store
        .lease_take_over(&claim("c", None, 1000), "a")
        .await
        .unwrap()
        .is_none());
    assert!(!store.lease_release("imap:test", "a").await.unwrap());
    assert!(store.lease_release("imap:test", "b").await.unwrap());
    assert!(store.lease("imap:test").await.unwrap().is_none());
}

fn settings(ttl_ms: u64, renew_ms: u64) -> LeaseSettings {
    LeaseSettings {
        ttl: Duration::from_millis(ttl_ms),
        renew_every: Duration::from_millis(renew_ms),
    }
}

#[tokio::test]
async fn instances_stand_by_and_take_over_when_the_holder_releases() {
    let env = TestEnv::new("").await;
    let first = Arc::new(Lease::new(
        env.app.store.clone(),
        "imap:x".into(),
        settings(10_000, 200),
    ));
    let second = Lease::new(
        env.app.store.clone(),
        "imap:x".into(),
        settings(10_000, 200),
    );
    first.round().await;
    second.round().await;
    let (h1, h2) = (first.handle(), second.handle());
    assert!(h1.is_held());
    assert!(
        !h2.is_held(),
        "a live holder on this machine is not taken over"
    );
    assert_eq!(h2.holder(), h1.snapshot().holder);
    assert_eq!(
        h2.snapshot().holder.as_deref(),
        Some(h1.snapshot().me.as_str())
    );

    // The holder runs (renewing) and stops: it releases, and the other takes over at once.
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (first, stop) = (first.clone(), stop.clone());
        async move { first.run(stop).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(h1.is_held());
    stop.cancel();
    task.await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), h1.lost())
        .await
        .expect("lost() resolves after release");
    second.round().await;
    assert!(h2.is_held());
    tokio::time::timeout(Duration::from_secs(1), h2.held())
        .await
        .expect("held() resolves");
}

#[tokio::test]
async fn a_dead_holder_on_this_machine_is_replaced_at_once() {
    let Some(me) = trialdesk::lease::process_key() else {
        panic!("this test needs Linux /proc (boot id, PID namespace)");
    };
    let env = TestEnv::new("").await;
    // A holder that was a process on this machine and has exited (reaped).
    let mut child = std::process::Command::new("sleep")
        .arg("0")
        .spawn()
        .unwrap();
    let pid = child.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    child.wait().unwrap();
    let start: u64 = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(19)?.parse().ok())
        .unwrap_or(0);
    let parts: Vec<&str> = me.split('/').collect();
    let dead = format!("{}/{}/{pid}/{start}", parts[0], parts[1]);
    env.app
        .store
        .lease_acquire(&LeaseClaim {
            name: "imap:y",
            holder: "crashed:1",
            token: "dead-token",
            process: Some(&dead),
            ttl_ms: 60_000,
        })
        .await
        .unwrap()
        .unwrap();
    let lease = Lease::new(
        env.app.store.clone(),
        "imap:y".into(),
        settings(60_000, 1_000),
    );
    lease.round().await;
    assert!(lease.handle().is_held(), "not waited out for a minute");

    // A holder whose process is alive (this test process, another token) is waited out.
    env.app
        .store
        .lease_acquire(&LeaseClaim {
            name: "imap:z",
            holder: "alive:1",
            token: "alive-token",
            process: Some(&me),
            ttl_ms: 60_000,
        })
        .await
        .unwrap()
        .unwrap();
    let lease = Lease::new(
        env.app.store.clone(),
        "imap:z".into(),
        settings(60_000, 1_000),
    );
    lease.round().await;
    assert!(!lease.handle().is_held());
}

#[tokio::test]
async fn a_holder_that_cannot_renew_gives_up_before_its_lease_ends() {
    let env = TestEnv::new("").await;
    let lease = Lease::new(
        env.app.store.clone(),
        "imap:w".into(),
        settings(3_000, 1_000),
    );
    let handle = lease.handle();
    let started = tokio::time::Instant::now();
    lease.round().await;
    assert!(handle.is_held());
    // No more renewals (as if the database were unreachable): the local count ends at
    // ttl − renew_every, before anyone else may take the lease.
    tokio::time::timeout(Duration::from_secs(5), handle.lost())
        .await
        .expect("lost() fires when the local count ends");
    let given_up = started.elapsed();
    assert!(given_up >= Duration::from_millis(1_900), "{given_up:?}");
    assert!(!handle.is_held());
    let row = env.app.store.lease("imap:w").await.unwrap().unwrap();
    assert!(
        !row.expired(),
        "given up locally while the row still says held: nobody else had it yet"
    );
}
