//! The workspace actions on the command line (`queue assign`, `queue note`, the bulk forms
//! with `--reason`), run as the real binary: the same audit rows as the pages.

mod common;
mod review_support;

use common::{ok, TestEnv};
use review_support::{add_user, seed, Seed};

#[tokio::test]
async fn assign_note_and_list_mine_from_the_cli() {
    let env = TestEnv::new("").await;
    let (item, _) = seed(&env, Seed::default()).await;
    let (other, _) = seed(
        &env,
        Seed {
            message_id: "cli-2@huadong.example.cn",
            ..Default::default()
        },
    )
    .await;
    add_user(&env, "bob").await;
    // `--as` names a staff account (first-hour rule): carol writes the note below.
    add_user(&env, "carol").await;
    let out = ok(&env.cli(&["queue", "assign", &item.to_string(), "--to", "Bob"]));
    assert!(out.contains("assigned to bob"), "{out}");
    let refused = env.cli(&["queue", "assign", &item.to_string(), "--to", "nobody-here"]);
    assert!(!refused.status.success());
    let mine: serde_json::Value = serde_json::from_str(&ok(&env.cli(&[
        "queue",
        "list",
        "--json",
        "--assignee",
        "bob",
    ])))
    .unwrap();
    let ids: Vec<i64> = mine
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![item]);
    let free: serde_json::Value =
        serde_json::from_str(&ok(&env.cli(&["queue", "list", "--json", "--unassigned"]))).unwrap();
    assert_eq!(free.as_array().unwrap()[0]["id"].as_i64(), Some(other));
    ok(&env.cli(&["queue", "assign", &item.to_string(), "--nobody"]));
    ok(&env.cli(&[
        "queue",
        "note",
        &item.to_string(),
        "called the partner",
        "--as",
        "carol",
    ]));
    let a = env.audit_of("assign").await;
    assert_eq!(
        (a[0].actor.as_str(), a[0].via.as_str()),
        ("operator", "cli")
    );
    assert_eq!(a[0].detail, "assigned to bob");
    assert_eq!(
        env.audit_of("unassign").await[0].detail,
        "unassigned (was bob)"
    );
    let n = env.audit_of("note").await;
    assert_eq!(
        (n[0].actor.as_str(), n[0].detail.as_str(), n[0].review_id),
        ("carol", "called the partner", Some(item))
    );
    let show = ok(&env.cli(&["queue", "show", &item.to_string()]));
    assert!(show.contains("note: called the partner"), "{show}");
}

#[tokio::test]
async fn bulk_forms_with_reason_audit_every_item() {
    let env = TestEnv::new("").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let mid = format!("bulk-{n}@huadong.example.cn");
        ids.push(
            seed(
                &env,
                Seed {
                    message_id: &mid,
                    ..Default::default()
                },
            )
            .await
            .0,
        );
    }
    let (unknown, _) = seed(
        &env,
        Seed {
            from: "x@newco.example.net",
            message_id: "bulk-u@newco.example.net",
            reason: "unknown_sender",
            partner_id: None,
            ..Default::default()
        },
    )
    .await;
    add_user(&env, "bob").await;
    let out = ok(&env.cli(&[
        "queue",
        "assign",
        "--reason",
        "other_subject",
        "--to",
        "bob",
    ]));
    assert!(out.contains("3 item(s) assigned"), "{out}");
    let out = ok(&env.cli(&[
        "queue",
        "resolve",
        "--reason",
        "other_subject",
        "--note",
        "newsletter",
    ]));
    assert!(out.contains("3 item(s) resolved, 0 failed"), "{out}");
    let resolved: Vec<Option<i64>> = env
        .audit_of("resolve")
        .await
        .iter()
        .map(|a| a.review_id)
        .collect();
    assert_eq!(resolved.len(), 3);
    assert!(ids.iter().all(|id| resolved.contains(&Some(*id))));
    let out = ok(&env.cli(&["queue", "reprocess", "--reason", "unknown_sender"]));
    assert!(out.contains("1 item(s) reprocessed"), "{out}");
    assert_eq!(env.audit_of("reprocess").await[0].review_id, Some(unknown));
    let bad = env.cli(&["queue", "reprocess", "--reason", "nonsense"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("is not a review reason"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
