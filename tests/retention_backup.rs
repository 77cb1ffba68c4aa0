//! Data safety: raw-mail retention (store, worker, CLI) and `trialdesk backup` — on SQLite, and
//! on PostgreSQL when `TRIALDESK_TEST_PG_URL` is set.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{mail, TestEnv};
use trialdesk::app::App;
use trialdesk::clock::ManualClock;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn is_pg() -> bool {
    std::env::var("TRIALDESK_TEST_PG_URL").is_ok_and(|u| !u.is_empty())
}

fn request(n: usize) -> Vec<u8> {
    mail(
        "王伟 <wangwei@huadong.example.cn>",
        "试用终端追踪请求",
        &format!("ret-{n}@huadong.example.cn"),
        "",
        "请查询 D20261001。\r\n",
    )
}

/// Three mails received on day 0, one on day 31, with `raw_mail_days = 30`.
async fn aged_env(extra: &str) -> (TestEnv, App, ManualClock) {
    let env = TestEnv::new(extra).await;
    let clock = ManualClock::new("2026-11-01T08:00:00Z".parse().unwrap());
    let mut app = env.app.clone();
    app.clock = Arc::new(clock.clone());
    for n in 1..=3 {
        env.deliver(&format!("100{n}.x.host"), &request(n));
    }
    let summary = app.run_once().await.unwrap();
    assert_eq!(summary.fetched, 3);
    clock.advance(31 * DAY);
    env.deliver("2001.x.host", &request(4));
    app.run_once().await.unwrap();
    (env, app, clock)
}

async fn raw_kept(app: &App) -> Vec<bool> {
    let mut kept = Vec::new();
    for id in 1..=4 {
        let record = app.store.inbound(id).await.unwrap().expect("inbound row");
        assert!(record.body_text.contains("D20261001"), "text stays");
        assert_eq!(record.kind, "tracking_request", "decision stays");
        kept.push(app.store.inbound_raw(id).await.unwrap().is_some());
    }
    kept
}

#[tokio::test]
async fn sweep_clears_only_old_raw_mail_in_batches() {
    let (_env, app, _clock) = aged_env("[retention]\nraw_mail_days = 30\nbatch = 2\n").await;
    assert_eq!(raw_kept(&app).await, [true, true, true, true]);
    let retention = app.retention().expect("enabled");
    let sweep = retention.sweep().await.unwrap();
    assert_eq!(sweep.cleared, 3, "two batches of at most 2");
    assert_eq!(raw_kept(&app).await, [false, false, false, true]);
    assert_eq!(retention.sweep().await.unwrap().cleared, 0, "idempotent");
    let counts = app.store.inbound_counts().await.unwrap();
    assert_eq!(counts.iter().map(|(_, _, n)| n).sum::<i64>(), 4);
}

#[tokio::test]
async fn background_task_sweeps_at_start_and_stops_on_cancel() {
    let (_env, app, _clock) = aged_env("[retention]\nraw_mail_days = 30\nbatch = 1\n").await;
    let retention = app.retention().expect("enabled");
    let cutoff = retention.cutoff_ms();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(retention.run(cancel.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while app.store.raw_kept_before(cutoff).await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention task did not sweep"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(raw_kept(&app).await, [false, false, false, true]);
    // Now idle for a day: cancellation ends the wait at once.
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("stops on cancel")
        .unwrap();
}

#[tokio::test]
async fn zero_days_keeps_raw_mail_forever() {
    let (_env, app, _clock) = aged_env("").await;
    assert!(app.config.retention.raw_mail_days == 0 && app.retention().is_none());
    assert_eq!(raw_kept(&app).await, [true, true, true, true]);
}

#[tokio::test]
async fn retention_cli() {
    let env = TestEnv::new("[retention]\nraw_mail_days = 30\n").await;
    env.deliver("1001.x.host", &request(1));
    env.app.run_once().await.unwrap();
    let out = env.cli(&["retention", "run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("deleted the raw bytes of 0 mail(s)"),
        "{stdout}"
    );
    assert!(env.app.store.inbound_raw(1).await.unwrap().is_some());

    let forever = TestEnv::new("").await;
    let out = forever.cli(&["retention", "run"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("kept forever"));
}

#[tokio::test]
async fn backup_copies_sqlite_and_never_overwrites() {
    let env = TestEnv::new("").await;
    env.deliver("1001.x.host", &request(1));
    env.app.run_once().await.unwrap();
    // A quote and spaces in the name: the path is bound as a parameter, not spliced into SQL.
    let target = env.dir.path().join("it's a backup.db");
    let out = env.cli(&["backup", target.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if is_pg() {
        assert!(!out.status.success());
        assert!(stderr.contains("pg_dump"), "{stderr}");
        assert!(!target.exists());
        return;
    }
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("integrity ok"));
    let copy = trialdesk::store::Store::connect(
        &trialdesk::config::DatabaseConfig {
            url: format!("sqlite://{}?mode=rw", target.display()),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(5),
        },
        env.dir.path(),
    )
    .await
    .unwrap();
    assert_eq!(
        copy.partners().await.unwrap().len(),
        env.app.store.partners().await.unwrap().len()
    );
    assert!(copy.inbound_raw(1).await.unwrap().is_some());
    copy.close().await;
    let _ = std::fs::remove_file(format!("{}-wal", target.display()));
    let _ = std::fs::remove_file(format!("{}-shm", target.display()));

    let before = std::fs::read(&target).unwrap();
    let out = env.cli(&["backup", target.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(std::fs::read(&target).unwrap(), before, "untouched");

    // An empty file someone created is refused too (SQLite would fill it).
    let empty = env.dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert!(!env
        .cli(&["backup", empty.to_str().unwrap()])
        .status
        .success());
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}
