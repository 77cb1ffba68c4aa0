//! The drop folder (`[import] watch_dir`): files renamed in are imported all or nothing and
//! moved to done/ or failed/ (with a `.errors.txt`); `run` picks them up within seconds; a
//! crash mid-import or between the commit and the move neither half-imports nor imports twice.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestEnv;
use trialdesk::import::watch::DropOutcome;
use trialdesk::store::AuditFilter;

const SHIPMENTS_HEADER: &str =
    "loan_number,partner_id,customer,status,carrier,tracking_number,shipped_on,eta,delivered_on,items\n";

async fn env() -> TestEnv {
    TestEnv::new("[import]\nwatch_dir = \"drop\"\npoll_interval = \"100ms\"\n").await
}

fn drop_dir(env: &TestEnv) -> PathBuf {
    env.dir.path().join("drop")
}

/// Written beside the folder, then renamed in: the convention feeds follow.
fn deliver(env: &TestEnv, name: &str, text: &str) {
    let dir = drop_dir(env);
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = env.dir.path().join(format!("{name}.part"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

async fn drop_audits(env: &TestEnv) -> Vec<trialdesk::store::AuditEntry> {
    let all = env
        .app
        .store
        .audit_entries(&AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    all.into_iter().filter(|a| a.via == "drop").collect()
}

fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn good_files_land_in_done_and_bad_ones_in_failed_with_their_errors() {
    let env = env().await;
    let folder = env.app.drop_folder().unwrap().unwrap();
    let before = env.app.store.shipment_count().await.unwrap();
    deliver(
        &env,
        "shipments-2026-12-04.csv",
        &format!("{SHIPMENTS_HEADER}D20269001,P07,Kyoto Clinic,shipped,Yamato,4455,2026-12-01,,,Webex Desk\n"),
    );
    // Partners go first, whatever the names: the shipments file refers to P07.
    deliver(
        &env,
        "partners-new.csv",
        "partner_id,name,domains,admin_emails,language\nP07,Sakura,sakura.example.jp,it@sakura.example.jp,ja\n",
    );
    deliver(
        &env,
        "shipments-broken.csv",
        &format!(
            "{SHIPMENTS_HEADER}D20269002,P01,A,shipped,,,,,,\nD20269003,P01,B,lost,,,,,,\nD20269004,P01,,ordered,,,2026-13-01,,,\n"
        ),
    );
    deliver(&env, "notes.txt", "left alone");
    deliver(&env, "shipments.csv.tmp", "left alone");

    let outcomes = folder.drain().await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            DropOutcome::Imported {
                file: "partners-new.csv".into(),
                rows: 1
            },
            DropOutcome::Imported {
                file: "shipments-2026-12-04.csv".into(),
                rows: 1
            },
            DropOutcome::Failed {
                file: "shipments-broken.csv".into(),
                errors: 3
            },
        ]
    );
    let dir = drop_dir(&env);
    assert!(dir.join("done/partners-new.csv").is_file());
    assert!(dir.join("done/shipments-2026-12-04.csv").is_file());
    assert!(dir.join("failed/shipments-broken.csv").is_file());
    let report =
        std::fs::read_to_string(dir.join("failed/shipments-broken.csv.errors.txt")).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert!(lines[0].starts_with("line 3, column status:"), "{report}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("line 4, column customer:")),
        "{report}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("line 4, column shipped_on:")),
        "{report}"
    );
    assert!(dir.join("notes.txt").is_file() && dir.join("shipments.csv.tmp").is_file());
    // All or nothing: the good row of the broken file was not imported.
    assert_eq!(env.app.store.shipment_count().await.unwrap(), before + 1);
    let audits = drop_audits(&env).await;
    assert_eq!(audits.len(), 2);
    assert!(audits
        .iter()
        .any(|a| a.actor == "drop:shipments-2026-12-04.csv"));

    // The same name with the same bytes again: already imported, only moved (numbered).
    deliver(
        &env,
        "partners-new.csv",
        "partner_id,name,domains,admin_emails,language\nP07,Sakura,sakura.example.jp,it@sakura.example.jp,ja\n",
    );
    assert_eq!(
        folder.drain().await.unwrap(),
        vec![DropOutcome::AlreadyImported {
            file: "partners-new.csv".into()
        }]
    );
    assert!(dir.join("done/partners-new.csv.1").is_file());
    assert_eq!(drop_audits(&env).await.len(), 2);
}

/// `trialdesk run` with the test's config; stderr is read line by line into a channel.
fn spawn_run(
    env: &TestEnv,
    fault_after_commit: bool,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trialdesk"));
    cmd.arg("--config")
        .arg(&env.config_path)
        .arg("run")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if fault_after_commit {
        cmd.env("TRIALDESK_FAULT_DROP_AFTER_COMMIT", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_for_line(
    rx: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    deadline: Duration,
) -> Vec<String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!(
                "no log line with {needle:?} in time; saw:\n{}",
                seen.join("\n")
            ),
        }
    }
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.wait();
}

fn exists(p: &Path) -> bool {
    p.is_file()
}

#[tokio::test]
async fn run_imports_within_seconds_and_a_crash_after_the_commit_does_not_import_twice() {
    let env = env().await;
    let before = env.app.store.shipment_count().await.unwrap();
    let dir = drop_dir(&env);

    // A process that dies right after the commit, before moving the file.
    let (mut child, _log) = spawn_run(&env, true);
    deliver(
        &env,
        "shipments-a.csv",
        &format!(
            "{SHIPMENTS_HEADER}D20269101,P01,A,shipped,,,,,,\nD20269102,P01,B,ordered,,,,,,\n"
        ),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "run did not crash"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "the fault hook aborts the process");
    assert!(
        exists(&dir.join("shipments-a.csv")),
        "crashed before the move"
    );
    assert_eq!(env.app.store.shipment_count().await.unwrap(), before + 2);
    assert_eq!(drop_audits(&env).await.len(), 1);

    // Restarted: the file is recognised and moved, not imported again; a new file is
    // imported within seconds.
    let (child, log) = spawn_run(&env, false);
    wait_for("the crashed file in done/", Duration::from_secs(20), || {
        exists(&dir.join("done/shipments-a.csv"))
    });
    deliver(
        &env,
        "shipments-b.csv",
        &format!("{SHIPMENTS_HEADER}D20269103,P01,C,delivered,,,,,,\n"),
    );
    wait_for("the new file in done/", Duration::from_secs(10), || {
        exists(&dir.join("done/shipments-b.csv"))
    });
    deliver(&env, "trials-x.csv", "trial_id,partner_id\nT-1,P01\n");
    wait_for("the bad file in failed/", Duration::from_secs(10), || {
        exists(&dir.join("failed/trials-x.csv.errors.txt"))
    });
    let report = std::fs::read_to_string(dir.join("failed/trials-x.csv.errors.txt")).unwrap();
    assert!(
        report.starts_with("line 1: missing column(s) customer"),
        "{report}"
    );
    stop(child);
    drop(log);
    assert_eq!(env.app.store.shipment_count().await.unwrap(), before + 3);
    let audits = drop_audits(&env).await;
    assert_eq!(audits.len(), 2, "{audits:?}");
}

#[tokio::test]
async fn a_kill_mid_import_leaves_nothing_half_imported_and_the_file_is_imported_again() {
    let env = env().await;
    let before = env.app.store.shipment_count().await.unwrap();
    let dir = drop_dir(&env);
    const ROWS: i64 = 60_000;
    let mut text = String::from(SHIPMENTS_HEADER);
    for i in 0..ROWS {
        text.push_str(&format!(
            "D{},P01,Customer {i},in_transit,EMS,EA{i}CN,2026-11-03,2026-11-08,,Webex Desk;Webex Room Bar\n",
            3_000_000_000i64 + i
        ));
    }
    let (mut child, log) = spawn_run(&env, false);
    wait_for_line(&log, "watching the drop folder", Duration::from_secs(30));
    deliver(&env, "shipments-big.csv", &text);
    wait_for_line(
        &log,
        "importing from the drop folder",
        Duration::from_secs(30),
    );
    child.kill().unwrap(); // SIGKILL: no chance to finish anything
    child.wait().unwrap();
    let after_kill = env.app.store.shipment_count().await.unwrap();
    eprintln!("after the kill: {after_kill} rows (before {before})");
    assert!(
        after_kill == before || after_kill == before + ROWS,
        "half imported: {after_kill} rows (before {before}, file {ROWS})"
    );
    if after_kill == before {
        assert!(
            exists(&dir.join("shipments-big.csv")),
            "the file waits to be imported again"
        );
    }

    let (child, log) = spawn_run(&env, false);
    wait_for("the big file in done/", Duration::from_secs(120), || {
        exists(&dir.join("done/shipments-big.csv"))
    });
    stop(child);
    drop(log);
    assert_eq!(env.app.store.shipment_count().await.unwrap(), before + ROWS);
    assert_eq!(drop_audits(&env).await.len(), 1, "imported exactly once");
    assert!(!exists(&dir.join("failed/shipments-big.csv")));
}
