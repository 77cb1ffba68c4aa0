//! `scripts/demo` on the day the suite runs: the sample data is moved to today, so the demo
//! shows both halves of the job whatever the date — answered requests and every reminder
//! kind — and no reminder is recorded as missed.
//!
//! The demo runs in a copy of the files it reads (script, config, sample data, templates), so
//! the test never touches the checkout's own `demo-out/`.

use std::path::Path;
use std::process::Command;

use sqlx::Row;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn demo_answers_requests_and_sends_each_reminder_kind_today() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for sub in ["scripts", "config", "examples", "templates"] {
        copy_dir(&root.join(sub), &dir.path().join(sub));
    }
    let out = Command::new("bash")
        .arg(dir.path().join("scripts/demo"))
        .env("TRIALDESK_BIN", env!("CARGO_BIN_EXE_trialdesk"))
        .env_remove("DEMO_TODAY")
        .output()
        .expect("run scripts/demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("reminder missed"), "{stderr}");
    // Issue 17: the binary's own summaries say what went out, by kind.
    assert!(
        stdout.contains(
            "\n  expires_in_7_days 2, expires_today 2, grace_period_ended 2, calling_numbers_released 2\n"
        ),
        "reminders run lists the kinds queued:\n{stdout}"
    );
    assert!(
        stdout.contains(
            " reminder expires_in_7_days 2, reminder expires_today 2, reminder grace_period_ended 2, \
             reminder calling_numbers_released 2, rma_label 1, shipment_notice 1\n"
        ) && stdout.contains("\n  reply "),
        "run --once lists what was sent, by kind:\n{stdout}"
    );
    assert!(
        stdout.contains("review queue: ") && stdout.contains("of them also flagged for review"),
        "{stdout}"
    );

    let db = dir.path().join("demo-out/trialdesk.db");
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows = sqlx::query(
        "SELECT r.kind, COUNT(*) AS n FROM reminders r JOIN outbox o ON o.id = r.outbox_id \
         WHERE o.sent_at IS NOT NULL GROUP BY r.kind ORDER BY r.kind",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let sent: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (r.get::<String, _>("kind"), r.get::<i64, _>("n")))
        .collect();
    // One trial per kind, each to its customer admins and its partner admins.
    assert_eq!(
        sent,
        vec![
            ("calling_numbers_released".to_string(), 2),
            ("expires_in_7_days".to_string(), 2),
            ("expires_today".to_string(), 2),
            ("grace_period_ended".to_string(), 2),
        ],
        "{stdout}"
    );
    let missed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reminders WHERE outbox_id IS NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(missed, 0, "{stdout}");
    let replies = std::fs::read_dir(dir.path().join("demo-out/outbox"))
        .unwrap()
        .count();
    assert!(
        replies > 8,
        "replies and reminders written: {replies}\n{stdout}"
    );
    pool.close().await;
}
