//! The review queue from the command line (`queue …`, `users …`, `web`), run as the real
//! binary against a throwaway database.

mod common;
mod review_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, TestEnv};
use review_support::{seed, seed_dead_letter, Seed};
use trialdesk::store::AuditFilter;

#[tokio::test]
async fn queue_list_show_and_actions_are_audited_with_the_operator() {
    let env = TestEnv::new("").await;
    let (item, _) = seed(
        &env,
        Seed {
            message_id: "cli-1@huadong.example.cn",
            loans: &["D20261001"],
            ..Default::default()
        },
    )
    .await;
    let (dead, outbox) = seed_dead_letter(&env, "cli-dl@huadong.example.cn").await;
    env.app.store.add_user("dana", "unused", 0).await.unwrap();

    let list: serde_json::Value =
        serde_json::from_str(&ok(&env.cli(&["queue", "list", "--json"]))).unwrap();
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![dead, item]);
    let filtered = ok(&env.cli(&["queue", "list", "--reason", "dead_letter"]));
    assert!(
        filtered.contains("dead_letter") && !filtered.contains("other_subject  "),
        "{filtered}"
    );
    let searched: serde_json::Value = serde_json::from_str(&ok(&env.cli(&[
        "queue",
        "list",
        "--json",
        "--search",
        "d20261001",
    ])))
    .unwrap();
    assert_eq!(
        searched.as_array().unwrap().len(),
        2,
        "both mention D20261001"
    );

    let show: serde_json::Value = serde_json::from_str(&ok(&env.cli(&[
        "queue",
        "show",
        &item.to_string(),
        "--json",
    ])))
    .unwrap();
    assert_eq!(show["item"]["id"], item);
    assert_eq!(
        show["message"]["inbound"]["sender"],
        "wangwei@huadong.example.cn"
    );
    assert_eq!(show["message"]["loan_numbers"][0], "D20261001");
    let human = ok(&env.cli(&["queue", "show", &item.to_string()]));
    assert!(human.contains("请查询 D20261001"), "{human}");

    // Issue 17: the JSON shape has real arrays and RFC 3339 times.
    let list: serde_json::Value =
        serde_json::from_str(&ok(&env.cli(&["queue", "list", "--json"]))).unwrap();
    for it in list.as_array().unwrap() {
        assert!(it["reasons"].is_array(), "{it}");
        let created = it["created_at"].as_str().unwrap_or_else(|| panic!("{it}"));
        assert!(created.parse::<jiff::Timestamp>().is_ok(), "{created}");
        assert!(created.ends_with('Z'), "{created}");
    }
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == item)
        .unwrap();
    assert_eq!(mine["loan_numbers"], serde_json::json!(["D20261001"]));
    assert!(show["item"]["reasons"].is_array(), "{show}");
    assert!(show["item"]["created_at"].is_string(), "{show}");
    assert!(
        show["message"]["inbound"]["received_at"].is_string(),
        "{show}"
    );
    for d in show["message"]["decisions"].as_array().unwrap() {
        assert!(
            d["decided_at"].is_string() && d["loan_numbers"].is_array(),
            "{d}"
        );
    }

    // An unknown reason is an error naming the known ones, not an empty queue.
    let bogus = env.cli(&["queue", "list", "--reason", "bogus"]);
    assert!(!bogus.status.success());
    let err = String::from_utf8_lossy(&bogus.stderr);
    assert!(
        err.contains("\"bogus\"") && err.contains("unknown_sender") && err.contains("dead_letter"),
        "{err}"
    );
    assert!(bogus.stdout.is_empty());

    // An answer needs --text or --loans, and says both.
    let bare = env.cli(&["queue", "answer", &item.to_string()]);
    assert!(!bare.status.success());
    let err = String::from_utf8_lossy(&bare.stderr);
    assert!(err.contains("--text") && err.contains("--loans"), "{err}");

    // `--as` must name a staff account; nothing is done or audited under a typo.
    let typo = env.cli(&[
        "queue",
        "resolve",
        &item.to_string(),
        "--note",
        "x",
        "--as",
        "Dnaa",
    ]);
    assert!(!typo.status.success());
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(err.contains("Dnaa") && err.contains("dana"), "{err}");

    // A note is required; `--as` names the operator, else $USER.
    assert!(!env
        .cli(&["queue", "resolve", &item.to_string()])
        .status
        .success());
    ok(&env.cli(&[
        "queue",
        "resolve",
        &item.to_string(),
        "--note",
        "called back",
        "--as",
        "Dana",
    ]));
    let again = env.cli(&["queue", "resolve", &item.to_string(), "--note", "x"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already resolved"));
    ok(&env.cli(&["queue", "retry", &dead.to_string()]));
    assert_eq!(
        env.app
            .store
            .outbox_row(outbox)
            .await
            .unwrap()
            .unwrap()
            .state,
        "queued"
    );
    let missing = env.cli(&["queue", "show", "999"]);
    assert!(!missing.status.success());

    let audit = env
        .audit(AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await;
    let who: Vec<(String, String, String)> = audit
        .iter()
        .map(|e| (e.action.clone(), e.actor.clone(), e.via.clone()))
        .collect();
    assert_eq!(
        who,
        vec![
            ("retry".into(), "operator".into(), "cli".into()),
            ("resolve".into(), "dana".into(), "cli".into()),
        ]
    );
}

#[tokio::test]
async fn users_are_added_from_stdin_and_listed_without_hashes() {
    let env = TestEnv::new("").await;
    let add = |name: &str, password: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_trialdesk"))
            .arg("--config")
            .arg(&env.config_path)
            .args(["users", "add", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(!add("alice", "short").status.success(), "too short");
    ok(&add("Alice", "a long enough password"));
    assert!(
        !add("alice", "another long password").status.success(),
        "taken"
    );
    let list = ok(&env.cli(&["users", "list", "--json"]));
    assert!(
        list.contains("\"alice\"") && !list.contains("argon2"),
        "{list}"
    );
    let user = env.app.store.user_by_name("alice").await.unwrap().unwrap();
    assert!(user.password_hash.starts_with("$argon2id$"));
    assert!(trialdesk::review::users::verify_password(
        "a long enough password",
        &user.password_hash
    ));
    ok(&env.cli(&["users", "disable", "alice"]));
    assert!(
        env.app
            .store
            .user_by_name("alice")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
}

#[tokio::test]
async fn web_serves_on_the_configured_address_and_stops_on_sigterm() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let env = TestEnv::new(&format!("[web]\nlisten = \"127.0.0.1:{port}\"\n")).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .arg("--config")
        .arg(&env.config_path)
        .arg("web")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let response = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET /queue HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut buf = String::new();
            s.read_to_string(&mut buf).unwrap();
            break buf;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "web did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    assert!(
        response.contains("location: /login?next=%2Fqueue"),
        "{response}"
    );
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let waited = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(10),
            "web did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn retry_all_dead_letters_requeues_each_and_audits_each() {
    let env = TestEnv::new("").await;
    let (item_a, mail_a) = seed_dead_letter(&env, "dl-a@example.test").await;
    let (item_b, mail_b) = seed_dead_letter(&env, "dl-b@example.test").await;
    let out = ok(&env.cli(&["queue", "retry", "--all-dead-letters"]));
    assert!(out.contains("2 dead letters queued again"), "{out}");
    for (item, mail) in [(item_a, mail_a), (item_b, mail_b)] {
        let row = env.app.store.outbox_row(mail).await.unwrap().unwrap();
        assert_eq!(row.state, "queued", "{row:?}");
        let audit = env
            .app
            .store
            .audit_entries(&AuditFilter {
                review_id: Some(item),
                action: Some("retry".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(audit.len(), 1, "{audit:?}");
        assert_eq!(audit[0].actor, "operator");
    }
    // Nothing left: a second run retries none.
    let out = ok(&env.cli(&["queue", "retry", "--all-dead-letters"]));
    assert!(out.contains("0 dead letters queued again"), "{out}");
    // One id or the flag, not both and not neither.
    assert!(!env.cli(&["queue", "retry"]).status.success());
    assert!(!env
        .cli(&["queue", "retry", "1", "--all-dead-letters"])
        .status
        .success());
}
