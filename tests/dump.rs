//! `trialdesk export` / `trialdesk import dump`: every table moves between databases intact.
//!
//! The round trip starts and ends on SQLite and passes through the database the test run
//! selects (`TRIALDESK_TEST_PG_URL`: PostgreSQL in the test command's second pass, so there it
//! is SQLite → PostgreSQL → SQLite; SQLite → SQLite → SQLite in the first).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{mail, test_database_url, TestEnv};
use trialdesk::store::dump::{DumpError, DUMP_TABLES, NOT_DUMPED};

fn td(env: &TestEnv, args: &[&str], stdin: &str) -> (bool, String, String) {
    let out = common::cli(&env.config_path, args, Some(stdin));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(r: (bool, String, String)) -> String {
    assert!(r.0, "{}\n{}", r.1, r.2);
    r.1
}

/// A SQLite database with a row in every dumped table, made by the real flows.
async fn populated() -> TestEnv {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/source.db?mode=rwc", dir.path().display());
    let env = TestEnv::open(dir, &url, "").await;
    for kind in ["partners", "shipments", "trials"] {
        env.import(
            kind,
            &Path::new(common::FIXTURES)
                .join("data")
                .join(format!("{kind}.csv")),
        )
        .await;
    }
    // A partner that opted in and a loan that changed: a shipment notice.
    let partners = env.dir.path().join("optin.csv");
    std::fs::write(
        &partners,
        "partner_id,name,domains,admin_emails,language,notify_shipment_updates\n\
         P04,Pacific Rim Networks,pacrim.example.com,ops@pacrim.example.com,en,true\n",
    )
    .unwrap();
    env.import("partners", &partners).await;
    let shipments = env.dir.path().join("change.csv");
    std::fs::write(
        &shipments,
        "loan_number,partner_id,customer,status,carrier,tracking_number,shipped_on,eta,delivered_on,items\n\
         D50261001,P04,Harbor Freight Logistics,delivered,FedEx,771234567890,2026-11-10,2026-11-15,2026-11-20,Webex Room Kit Pro\n",
    )
    .unwrap();
    env.import("shipments", &shipments).await;
    env.deliver(
        "1.request",
        &mail(
            "Wang Wei <wangwei@huadong.example.cn>",
            "Trial Endpoint Tracking Request",
            "dump-1@huadong.example.cn",
            "",
            "Please check D20261001 and D20261003.",
        ),
    );
    env.deliver(
        "2.other",
        &mail(
            "Wang Wei <wangwei@huadong.example.cn>",
            "Invoice question",
            "dump-2@huadong.example.cn",
            "",
            "Where is our invoice? 发票在哪里？",
        ),
    );
    env.deliver(
        "3.unknown",
        &mail(
            "someone@unknown.example.org",
            "Trial Endpoint Tracking Request",
            "dump-3@unknown.example.org",
            "",
            "D20261001",
        ),
    );
    env.app.run_once().await.unwrap();
    // A day of reminders (the fixture trial T-1001 expires 2026-12-03), then sent.
    ok(td(&env, &["reminders", "run", "--date", "2026-11-26"], ""));
    env.app.run_once().await.unwrap();
    // Staff: an account, a sign-in, a review action (audited).
    ok(td(
        &env,
        &["users", "add", "alice"],
        "correct horse battery\n",
    ));
    // An API token and a drop-folder import.
    ok(td(&env, &["tokens", "add", "erp"], ""));
    trialdesk::import::import_bytes_with(
        &env.app.store,
        trialdesk::import::ImportKind::Partners,
        std::fs::read(format!("{}/data/partners.csv", common::FIXTURES))
            .unwrap()
            .as_slice(),
        &env.app.rules.loans,
        &mut |_, _| {},
        1_700_000_000_000,
        &trialdesk::store::UpsertExtras {
            imported_file: Some(trialdesk::store::ImportedFile {
                file_name: "partners.csv".into(),
                sha256: "0".repeat(64),
                kind: "partners".into(),
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let store = &env.app.store;
    store
        .record_login_attempt("alice", "127.0.0.1", true, 1_700_000_000_000)
        .await
        .unwrap();
    let alice = store.user_by_name("alice").await.unwrap().unwrap();
    store
        .create_session(&trialdesk::store::NewSession {
            token_hash: "not-exported",
            user_id: alice.id,
            csrf_token: "csrf",
            now_ms: 1_700_000_000_000,
            expires_at: 4_000_000_000_000,
        })
        .await
        .unwrap();
    // Her own page settings.
    store
        .save_user_settings(
            "alice",
            &trialdesk::store::UserSettings {
                language: Some("en".into()),
                time_zone: Some("Europe/Berlin".into()),
            },
            1_700_000_000_000,
        )
        .await
        .unwrap();
    let list: serde_json::Value =
        serde_json::from_str(&ok(td(&env, &["queue", "list", "--json"], ""))).unwrap();
    let id = list[0]["id"].as_i64().expect("an open review item");
    ok(td(
        &env,
        &[
            "queue",
            "resolve",
            &id.to_string(),
            "--note",
            "called them",
            "--as",
            "alice",
        ],
        "",
    ));
    // IMAP bookkeeping.
    store
        .imap_reset_mailbox("helpdesk@mail.example.test", "INBOX", 1234, 1)
        .await
        .unwrap();
    store
        .imap_mark_done_many(
            "helpdesk@mail.example.test",
            "INBOX",
            1234,
            &[7],
            "answered",
            2,
        )
        .await
        .unwrap();
    env
}

/// A dump's lines by table (rows sorted: row order within a table may follow collation), and
/// its header.
fn tables(path: &Path) -> (serde_json::Value, BTreeMap<String, (String, Vec<String>)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String, Vec<String>)> = None;
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(t) = v.get("table") {
            current = Some((
                t.as_str().unwrap().to_string(),
                v["columns"].to_string(),
                vec![],
            ));
        } else if v.get("end_table").is_some() {
            let (name, columns, mut rows) = current.take().unwrap();
            rows.sort();
            out.insert(name, (columns, rows));
        } else if v.is_array() {
            current.as_mut().unwrap().2.push(line.to_string());
        }
    }
    (header, out)
}

#[tokio::test]
async fn round_trip_through_the_other_backend_keeps_every_row_and_id() {
    let source = populated().await;
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("first.jsonl");
    let out = ok(td(&source, &["export", first.to_str().unwrap()], ""));
    assert!(out.contains("exported"), "{out}");
    let (header, a) = tables(&first);
    assert_eq!(header["format"], "trialdesk-dump");
    assert_eq!(header["format_version"], 1);
    assert_eq!(header["backend"], "sqlite");
    assert_eq!(
        a.keys().cloned().collect::<Vec<_>>(),
        {
            let mut t: Vec<String> = DUMP_TABLES.iter().map(|(t, _)| t.to_string()).collect();
            t.sort();
            t
        },
        "every dumped table is in the file"
    );
    for (table, (_, rows)) in &a {
        assert!(
            !rows.is_empty(),
            "table {table} was not populated by the flows"
        );
    }
    let text = std::fs::read_to_string(&first).unwrap();
    assert!(!text.contains("not-exported"), "sessions are not dumped");
    // Raw mail bytes travel (base64 of the request's body text is in inbound_messages.raw).
    let raw_rows = &a["inbound_messages"].1;
    assert_eq!(raw_rows.len(), 3);

    // Into the database under test (PostgreSQL in the second pass), through the CLI.
    let mid_dir = tempfile::tempdir().unwrap();
    let mid_url = test_database_url(mid_dir.path()).await;
    let middle = TestEnv::open(mid_dir, &mid_url, "").await;
    let out = ok(td(
        &middle,
        &["import", "dump", first.to_str().unwrap()],
        "",
    ));
    let total: usize = a.values().map(|(_, r)| r.len()).sum();
    assert!(
        out.contains(&format!(
            "imported {total} rows in {} tables",
            DUMP_TABLES.len()
        )),
        "{out}"
    );
    let second = work.path().join("second.jsonl");
    trialdesk::dump::export(&middle.app.store, &second)
        .await
        .unwrap();

    // And back into a new SQLite database.
    let end_dir = tempfile::tempdir().unwrap();
    let end_url = format!("sqlite://{}/end.db?mode=rwc", end_dir.path().display());
    let end = TestEnv::open(end_dir, &end_url, "").await;
    trialdesk::dump::import(&end.app.store, &second)
        .await
        .unwrap();
    let third = work.path().join("third.jsonl");
    trialdesk::dump::export(&end.app.store, &third)
        .await
        .unwrap();

    let (h2, b) = tables(&second);
    let (_, c) = tables(&third);
    assert_eq!(h2["backend"], middle.app.store.backend_name());
    assert_eq!(h2["schema_version"], header["schema_version"]);
    for (table, (columns, rows)) in &a {
        assert_eq!(&b[table].0, columns, "{table}: columns after the first hop");
        assert_eq!(&b[table].1, rows, "{table}: rows after the first hop");
        assert_eq!(&c[table].1, rows, "{table}: rows after the round trip");
    }

    // What the pages and CLI read works on the imported data, and new rows get new ids
    // (identity sequences moved past the imported ones on PostgreSQL).
    let max_before = middle
        .app
        .store
        .inbound_counts()
        .await
        .unwrap()
        .iter()
        .map(|(_, _, n)| n)
        .sum::<i64>();
    assert_eq!(max_before, 3);
    middle.deliver(
        "4.request",
        &mail(
            "Wang Wei <wangwei@huadong.example.cn>",
            "Trial Endpoint Tracking Request",
            "dump-4@huadong.example.cn",
            "",
            "D20261001 again",
        ),
    );
    let summary = middle.app.run_once().await.unwrap();
    assert_eq!(summary.replied, 1, "{summary}");
    let list: serde_json::Value = serde_json::from_str(&ok(td(
        &middle,
        &["queue", "list", "--json", "--resolved"],
        "",
    )))
    .unwrap();
    assert!(
        list.as_array().is_some_and(|l| !l.is_empty()),
        "resolved items readable: {list}"
    );
    assert!(middle
        .app
        .store
        .user_by_name("alice")
        .await
        .unwrap()
        .is_some());
    // Already-imported reminders are not queued again.
    let again = ok(td(
        &middle,
        &["reminders", "run", "--date", "2026-11-26", "--json"],
        "",
    ));
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["queued"], 0, "{again}");
}

#[tokio::test]
async fn import_refuses_a_non_empty_database_a_schema_mismatch_and_a_cut_file() {
    let source = populated().await;
    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("dump.jsonl");
    trialdesk::dump::export(&source.app.store, &dump)
        .await
        .unwrap();

    // Not empty: the fixture data is there.
    let full = TestEnv::new("").await;
    let (okay, out, err) = td(&full, &["import", "dump", dump.to_str().unwrap()], "");
    assert!(!okay, "{out}");
    assert!(
        err.contains("not empty") && err.contains("partners"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let url = test_database_url(dir.path()).await;
    let empty = TestEnv::open(dir, &url, "").await;
    let text = std::fs::read_to_string(&dump).unwrap();

    // Another schema version.
    let version = empty.app.store.latest_schema_version();
    let other = work.path().join("other.jsonl");
    std::fs::write(
        &other,
        text.replacen(
            &format!("\"schema_version\":{version}"),
            &format!("\"schema_version\":{}", version + 1),
            1,
        ),
    )
    .unwrap();
    let (okay, _, err) = td(&empty, &["import", "dump", other.to_str().unwrap()], "");
    assert!(!okay);
    assert!(err.contains("schema version"), "{err}");

    // Cut short after some rows were inserted: nothing stays.
    let cut = work.path().join("cut.jsonl");
    let keep = text.lines().count() - 3;
    std::fs::write(
        &cut,
        text.lines().take(keep).collect::<Vec<_>>().join("\n") + "\n",
    )
    .unwrap();
    match trialdesk::dump::import(&empty.app.store, &cut).await {
        Err(DumpError::Invalid(m)) => assert!(m.contains("cut short"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(empty.app.store.partners().await.unwrap().is_empty());

    // Not a dump at all.
    let csv = Path::new(common::FIXTURES).join("data/partners.csv");
    let (okay, _, err) = td(&empty, &["import", "dump", csv.to_str().unwrap()], "");
    assert!(!okay && err.contains("not a trialdesk dump"), "{err}");

    // The intact file still imports afterwards.
    trialdesk::dump::import(&empty.app.store, &dump)
        .await
        .unwrap();
}

#[tokio::test]
async fn every_table_is_either_dumped_or_deliberately_left_out() {
    let env = TestEnv::new("").await;
    let tables = env.app.store.table_names().await.unwrap();
    for t in &tables {
        assert!(
            DUMP_TABLES.iter().any(|(d, _)| d == t) || NOT_DUMPED.contains(&t.as_str()),
            "table {t} is neither in DUMP_TABLES nor in NOT_DUMPED (src/store/dump.rs): decide \
             whether `trialdesk export` carries it"
        );
    }
    for (t, _) in DUMP_TABLES {
        assert!(tables.iter().any(|x| x == t), "{t} does not exist");
    }
}
