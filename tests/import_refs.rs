//! CSV imports that parse cleanly but name a partner the database does not know: refused
//! with the line, and nothing written — through the library and through `trialdesk import`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::TestEnv;
use trialdesk::import::{import_file, ImportError, ImportKind, RowError};

const SHIPMENTS: &str = "loan_number,partner_id,customer,status,carrier,tracking_number,shipped_on,eta,delivered_on,items\n\
    D20261001,P01,苏州工业园管委会,delivered,EMS,EA920049643CN,2026-11-03,2026-11-08,2026-11-07,Webex Desk Camera\n\
    D20269001,P99,Nobody Ltd,shipped,EMS,EE000000001CN,2026-11-20,2026-11-27,,Webex Desk Pro\n\
    D20269002,P01,苏州工业园管委会,shipped,EMS,EE000000002CN,2026-11-20,2026-11-27,,Webex Desk Pro\n";

const TRIALS: &str = "trial_id,partner_id,customer,customer_admin_emails,services,starts_on,expires_on,extended,converted,timezone,language\n\
    T-1001,P01,Renamed Customer,it@pujiang-bank.example.cn,meeting,2026-11-03,2026-12-03,false,false,Asia/Shanghai,zh\n\
    T-9001,P01,New Customer,it@new.example.cn,meeting,2026-11-03,2026-12-03,false,false,Asia/Shanghai,zh\n\
    T-9002,P77,Orphan Customer,it@orphan.example.cn,meeting,2026-11-03,2026-12-03,false,false,Asia/Shanghai,zh\n";

async fn import(env: &TestEnv, kind: ImportKind, path: &Path) -> Result<usize, ImportError> {
    import_file(
        &env.app.store,
        kind,
        path,
        &env.app.rules.loans,
        &mut |_, _| {},
        0,
    )
    .await
    .map(|s| s.rows)
}

fn rows(result: Result<usize, ImportError>) -> Vec<RowError> {
    match result {
        Err(ImportError::Rows(rows)) => rows,
        other => panic!("expected row errors, got {other:?}"),
    }
}

async fn shipment(env: &TestEnv, loan: &str) -> Option<trialdesk::domain::Shipment> {
    env.app
        .store
        .shipments_by_loan(&[env.app.rules.loans.parse_one(loan).unwrap()])
        .await
        .unwrap()
        .pop()
}

#[tokio::test]
async fn shipments_naming_an_unknown_partner_are_refused_whole() {
    let env = TestEnv::new("").await;
    let store = &env.app.store;
    let before = store.shipment_count().await.unwrap();
    let status_before = shipment(&env, "D20261001").await.unwrap().status;
    let path = env.dir.path().join("shipments-bad.csv");
    std::fs::write(&path, SHIPMENTS).unwrap();

    let errors = rows(import(&env, ImportKind::Shipments, &path).await);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 3);
    assert_eq!(errors[0].column.as_deref(), Some("partner_id"));
    assert!(errors[0].message.contains("P99"), "{}", errors[0].message);

    // Neither the new rows nor the change to an existing one were written.
    assert_eq!(store.shipment_count().await.unwrap(), before);
    assert!(shipment(&env, "D20269002").await.is_none());
    assert_eq!(
        shipment(&env, "D20261001").await.unwrap().status,
        status_before
    );
}

#[tokio::test]
async fn trials_naming_an_unknown_partner_are_refused_whole() {
    let env = TestEnv::new("").await;
    let store = &env.app.store;
    let before = store.trial_count().await.unwrap();
    let customer_before = store.trial("T-1001").await.unwrap().unwrap().customer;
    let path = env.dir.path().join("trials-bad.csv");
    std::fs::write(&path, TRIALS).unwrap();

    let errors = rows(import(&env, ImportKind::Trials, &path).await);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 4);
    assert_eq!(errors[0].column.as_deref(), Some("partner_id"));
    assert!(errors[0].message.contains("P77"), "{}", errors[0].message);

    assert_eq!(store.trial_count().await.unwrap(), before);
    assert!(store.trial("T-9001").await.unwrap().is_none());
    assert_eq!(
        store.trial("T-1001").await.unwrap().unwrap().customer,
        customer_before
    );
}

#[tokio::test]
async fn the_import_command_fails_on_an_unknown_partner_and_writes_nothing() {
    let env = TestEnv::new("").await;
    let before = env.app.store.shipment_count().await.unwrap();
    let path = env.dir.path().join("BAD.csv");
    std::fs::write(&path, SHIPMENTS).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .arg("--config")
        .arg(&env.config_path)
        .args(["import", "shipments"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("line 3"), "{text}");
    assert!(text.contains("P99"), "{text}");
    assert!(text.contains("nothing was imported"), "{text}");

    assert_eq!(env.app.store.shipment_count().await.unwrap(), before);
    assert!(shipment(&env, "D20269002").await.is_none());
}
