//! Reminder store and scheduler behaviour: the exactly-once key under concurrency (two
//! instances on one database), rows written only for the trial as it is, unrenderable mail in
//! review, audiences without addresses, `planned_since`, the worker's sleep, and `run` wiring.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::TestEnv;
use jiff::civil::{date, Date};
use jiff::Timestamp;
use tokio::sync::Notify;
use trialdesk::app::App;
use trialdesk::clock::{Clock, ManualClock};
use trialdesk::import::ImportKind;
use trialdesk::reminders::{self, At};
use trialdesk::store::{Backend, NewOutbox, NewReminder, ReminderOutcome, Store};

const HEADER: &str = "trial_id,partner_id,customer,customer_admin_emails,services,starts_on,expires_on,extended,converted,timezone,language\n";

async fn import_trials(store: &Store, rows: &str, now_ms: i64) {
    let loans = trialdesk::classify::loan_numbers::LoanExtractor::new("D[0-9]{6,10}", 50).unwrap();
    trialdesk::import::import_bytes(
        store,
        ImportKind::Trials,
        format!("{HEADER}{rows}").as_bytes(),
        &loans,
        &mut |_, _| {},
        now_ms,
    )
    .await
    .expect("trial import");
}

/// Runs one statement on whichever backend the test uses.
async fn exec(store: &Store, sql: &'static str) {
    match store.backend() {
        Backend::Sqlite(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
        Backend::Postgres(p) => {
            sqlx::query(sql).execute(p).await.unwrap();
        }
    }
}

fn reminder(trial: &str, expires_on: Date) -> NewReminder {
    NewReminder {
        trial_id: trial.into(),
        kind: "expires_today".into(),
        audience: "customer_admins".into(),
        expires_on,
        due_on: expires_on,
        recipients: vec!["a@x.example".into()],
        language: "en".into(),
    }
}

fn mail(n: u32) -> NewOutbox {
    NewOutbox {
        purpose: "reminder".into(),
        message_id: format!("m{n}.{}@example.test", rand::random::<u64>()),
        envelope_from: "helpdesk@example.test".into(),
        recipients: vec!["a@x.example".into()],
        rate_key: "a@x.example".into(),
        subject: "s".into(),
        body: b"x".to_vec(),
    }
}

async fn reminder_outbox_count(store: &Store) -> usize {
    let rows = store.reminders(None).await.unwrap();
    let mut n = 0;
    for r in rows {
        if let Some(id) = r.outbox_id {
            assert!(store.outbox_row(id).await.unwrap().is_some());
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn the_key_admits_one_row_and_only_for_the_trial_as_it_is() {
    let env = TestEnv::new("").await;
    let store = &env.app.store;
    // T-1001 expires 2026-12-03 (fixtures).
    let first = store
        .queue_reminder(&reminder("T-1001", date(2026, 12, 3)), &mail(1), 1)
        .await
        .unwrap();
    assert!(matches!(first, ReminderOutcome::Recorded { .. }));
    let again = store
        .queue_reminder(&reminder("T-1001", date(2026, 12, 3)), &mail(2), 2)
        .await
        .unwrap();
    assert_eq!(again, ReminderOutcome::Skipped);
    // A stale expiry date (the trial was extended meanwhile) or a converted trial: nothing.
    let stale = store
        .queue_reminder(&reminder("T-1001", date(2026, 11, 3)), &mail(3), 3)
        .await
        .unwrap();
    assert_eq!(stale, ReminderOutcome::Skipped);
    let converted = store
        .queue_reminder(&reminder("T-4001", date(2026, 12, 1)), &mail(4), 4)
        .await
        .unwrap();
    assert_eq!(converted, ReminderOutcome::Skipped);
    // A missed record for a key already queued writes neither row nor review item.
    let review = trialdesk::store::NewReview {
        reason: "missed_reminder".into(),
        reasons: vec!["missed_reminder".into()],
        detail: "x".into(),
    };
    let missed = store
        .record_unsent_reminder(&reminder("T-1001", date(2026, 12, 3)), "missed", &review, 5)
        .await
        .unwrap();
    assert_eq!(missed, ReminderOutcome::Skipped);
    assert_eq!(store.reminders(None).await.unwrap().len(), 1);
    assert_eq!(reminder_outbox_count(store).await, 1);
    assert!(store.review_counts().await.unwrap().is_empty());
}

#[tokio::test]
async fn planned_since_moves_only_when_the_expiry_date_does() {
    let env = TestEnv::new("").await;
    let store = &env.app.store;
    let row = |e: &str, ext: &str| {
        format!("R-1,P02,Kunde,it@kunde.example.de,meeting,2026-11-01,{e},{ext},false,Europe/Berlin,de\n")
    };
    let since = |store: &Store| {
        let store = store.clone();
        async move {
            let c = store
                .reminder_candidates("expires_today", date(2026, 1, 1), date(2028, 1, 1), false)
                .await
                .unwrap();
            c.iter()
                .find(|c| c.trial_id == "R-1")
                .unwrap()
                .planned_since
        }
    };
    import_trials(store, &row("2026-12-10", "false"), 1_000).await;
    assert_eq!(since(store).await, 1_000);
    import_trials(store, &row("2026-12-10", "false"), 2_000).await;
    assert_eq!(since(store).await, 1_000, "same date: unchanged");
    import_trials(store, &row("2027-01-09", "true"), 3_000).await;
    assert_eq!(since(store).await, 3_000, "new date: known from now on");
    let refused = reminders::extend_trial(store, "R-1", 4_000).await;
    assert!(
        matches!(refused, Err(reminders::ExtendError::AlreadyExtended { .. })),
        "{refused:?}"
    );
}

/// 150 trials due today, two instances with their own connection pools stepping at the same
/// instant: every (trial, kind, audience) is queued exactly once between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_never_send_twice() {
    let mut env = TestEnv::new("").await;
    let clock = ManualClock::new("2027-03-01T02:00:00Z".parse().unwrap()); // 10:00 Shanghai
    env.app.clock = Arc::new(clock.clone());
    let mut rows = String::new();
    for i in 0..150 {
        // E − 7 = 2027-03-01 for half, E = 2027-03-01 for the other half.
        let e = if i % 2 == 0 {
            "2027-03-08"
        } else {
            "2027-03-01"
        };
        rows.push_str(&format!(
            "M-{i:03},P01,客户{i},it{i}@c{i}.example.cn,meeting;calling,2027-01-01,{e},false,false,Asia/Shanghai,zh\n"
        ));
    }
    // Imported today: the week-before reminders of the trials expiring today are not misses.
    import_trials(&env.app.store, &rows, clock.now().as_millisecond()).await;
    let other_store = Store::open(&env.app.config.database, &env.app.config.base_dir)
        .await
        .unwrap();
    let other = App {
        store: other_store,
        ..env.app.clone()
    };
    let a = env.app.scheduler(Arc::new(Notify::new())).unwrap();
    let b = other.scheduler(Arc::new(Notify::new())).unwrap();
    let now = At::Instant(clock.now());
    let (ra, rb) = tokio::join!(a.run_until_done(now), b.run_until_done(now));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    // The fixtures' own reminders may be due (or missed) as well; count ours from the rows.
    let rows = env.app.store.reminders(None).await.unwrap();
    let queued = rows.iter().filter(|r| r.state == "queued").count();
    let ours: Vec<_> = rows
        .iter()
        .filter(|r| r.trial_id.starts_with("M-"))
        .collect();
    assert_eq!(ours.len(), 300);
    let mut keys: Vec<_> = ours
        .iter()
        .map(|r| (&r.trial_id, &r.kind, &r.audience, &r.expires_on))
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 300);
    assert!(ours
        .iter()
        .all(|r| r.state == "queued" && r.outbox_id.is_some()));
    assert_eq!(ra.queued + rb.queued, queued, "{ra:?} {rb:?}");
    assert_eq!(reminder_outbox_count(&env.app.store).await, queued);
    // And again, from both: nothing.
    let (ra, rb) = tokio::join!(a.run_until_done(now), b.run_until_done(now));
    assert_eq!(ra.unwrap().queued + rb.unwrap().queued, 0);
}

#[tokio::test]
async fn an_unrenderable_reminder_goes_to_review_once_and_the_other_audience_is_sent() {
    // A helpdesk edit dropped the Subject line of the English customer template.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("reminder_customer_admins.en.txt"),
        "Hello,\nyour trial expires on {{ expires_on }}.\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("reminder_customer_admins.en.html"),
        "<p>your trial expires on {{ expires_on }}</p>",
    )
    .unwrap();
    let mut env = TestEnv::new("").await;
    let mut config = (*env.app.config).clone();
    config.templates.dir = dir.path().to_path_buf();
    env.app.config = Arc::new(config);
    import_trials(
        &env.app.store,
        "F-1,P04,Broken Template Co,it@broken.example.com,meeting,2027-01-01,2027-03-08,false,false,UTC,en\n",
        0,
    )
    .await;
    let scheduler = env.app.scheduler(Arc::new(Notify::new())).unwrap();
    let report = scheduler
        .run_until_done(At::Date(date(2027, 3, 1)))
        .await
        .unwrap();
    assert_eq!((report.queued, report.failed), (1, 1), "{report:?}");
    let rows = env.app.store.reminders(Some("F-1")).await.unwrap();
    let state = |aud: &str| {
        rows.iter()
            .find(|r| r.audience == aud)
            .unwrap()
            .state
            .clone()
    };
    assert_eq!(state("customer_admins"), "failed");
    assert_eq!(state("partner_admins"), "queued");
    let items = env
        .app
        .store
        .review_items(&trialdesk::store::ReviewFilter {
            reason: Some("reminder_failed".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert!(
        items[0].detail.contains("Subject") && items[0].detail.contains("F-1"),
        "{}",
        items[0].detail
    );
    let again = scheduler
        .run_until_done(At::Date(date(2027, 3, 2)))
        .await
        .unwrap();
    assert_eq!((again.queued, again.failed), (0, 0));
}

#[tokio::test]
async fn an_audience_without_addresses_is_skipped() {
    let env = TestEnv::new("").await;
    import_trials(
        &env.app.store,
        "S-1,P03,Silent Partner KK,it@silent.example.jp,meeting,2027-01-01,2027-03-08,false,false,Asia/Tokyo,ja\n",
        0,
    )
    .await;
    exec(
        &env.app.store,
        "UPDATE partners SET admin_emails = '[]' WHERE partner_id = 'P03'",
    )
    .await;
    let plan = reminders::plan(&env.app.store, date(2027, 3, 1))
        .await
        .unwrap();
    let ours: Vec<_> = plan.iter().filter(|p| p.trial_id == "S-1").collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].audience, reminders::Audience::CustomerAdmins);
}

#[tokio::test]
async fn the_worker_sleeps_until_poked_instead_of_polling() {
    let env = TestEnv::new("").await;
    // Nothing due near this instant: the fixtures expire in 2026.
    let clock = ManualClock::new("2030-06-01T00:00:00Z".parse().unwrap());
    let app = App {
        clock: Arc::new(clock),
        ..env.app.clone()
    };
    let scheduler = Arc::new(app.scheduler(Arc::new(Notify::new())).unwrap());
    assert_eq!(
        scheduler
            .next_due("2030-06-01T00:00:00Z".parse().unwrap())
            .await
            .unwrap(),
        None
    );
    // It does not come back on its own within a second…
    let idle = tokio::time::timeout(Duration::from_millis(1500), scheduler.wait()).await;
    assert!(idle.is_err(), "wait returned without cause");
    // …but at once when trials change.
    let waiting = tokio::spawn({
        let s = scheduler.clone();
        async move { s.wait().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.reminders_changed.notify_one();
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("a data change wakes the scheduler")
        .unwrap();
}

/// `trialdesk run` (the real clock): a trial whose 7-day reminder is due today in UTC goes out
/// through the file transport while the inbound pipeline runs beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_forever_sends_due_reminders_beside_the_pipeline() {
    // The real clock: no fixture trials (fixed dates), only this test's own, dated from today.
    let env = TestEnv::with_fixtures(
        "[reminders]\nsend_at = \"00:00\"\n",
        &["partners", "shipments"],
    )
    .await;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let e = today.checked_add(jiff::Span::new().days(7)).unwrap();
    import_trials(
        &env.app.store,
        &format!(
            "W-1,P04,Wired Up LLC,it@wired.example.com,meeting,2026-01-01,{e},false,false,UTC,en\n"
        ),
        Timestamp::now().as_millisecond(),
    )
    .await;
    std::fs::create_dir_all(env.maildir()).unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let app = env.app.clone();
    let running = tokio::spawn({
        let cancel = cancel.clone();
        async move { app.run_forever(cancel).await }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut found = Vec::new();
    while std::time::Instant::now() < deadline {
        found = env
            .replies()
            .into_iter()
            .filter(|r| r.subject.contains("Wired Up LLC"))
            .map(|r| r.to)
            .collect();
        if found.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("run stops on cancel")
        .unwrap()
        .unwrap();
    found.sort();
    assert_eq!(
        found,
        vec!["it@wired.example.com", "ops@pacrim.example.com"]
    );
    assert!(Path::new(&env.outbox()).exists());
}
