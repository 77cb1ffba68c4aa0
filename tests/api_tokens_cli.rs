//! `trialdesk tokens add/list/revoke` through the real binary, and the tokens it makes used
//! against the API over HTTP.

mod api_support;
mod common;

use api_support::{serve, Api};
use common::{ok, TestEnv};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn tokens_are_printed_once_stored_hashed_listed_and_revoked() {
    let env = TestEnv::new("").await;
    let stdout = ok(&env.cli(&["tokens", "add", "erp"]));
    // The token and nothing else on stdout.
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let token = stdout.trim_end_matches('\n').to_string();
    assert!(
        token.len() >= 40 && !token.contains(char::is_whitespace),
        "{token:?}"
    );
    let ro = ok(&env.cli(&["tokens", "add", "viewer", "--read-only"]))
        .trim()
        .to_string();
    assert_ne!(token, ro);

    // Only the SHA-256 is stored.
    let hash = hex::encode(Sha256::digest(token.as_bytes()));
    let found = env
        .app
        .store
        .api_token_by_hash(&hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.name.as_str(), found.read_only), ("erp", false));
    assert!(env
        .app
        .store
        .api_token_by_hash(&token)
        .await
        .unwrap()
        .is_none());

    // A second token under a name in force is refused.
    let again = env.cli(&["tokens", "add", "erp"]);
    assert!(!again.status.success());
    assert!(again.stdout.is_empty());

    let list = ok(&env.cli(&["tokens", "list", "--json"]));
    assert!(!list.contains(&token) && !list.contains(&hash), "{list}");
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let names: Vec<(&str, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["read_only"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(names, [("erp", false), ("viewer", true)]);
    let human = ok(&env.cli(&["tokens", "list"]));
    assert!(human.contains("erp") && human.contains("read-only") && human.contains("active"));

    let addr = serve(&env).await;
    let path = "/api/v1/shipments/D20261001";
    assert_eq!(Api::new(addr, Some(&token)).get(path).await.status, 200);
    assert_eq!(Api::new(addr, Some(&ro)).get(path).await.status, 200);

    ok(&env.cli(&["tokens", "revoke", "erp"]));
    assert_eq!(Api::new(addr, Some(&token)).get(path).await.status, 401);
    assert_eq!(Api::new(addr, Some(&ro)).get(path).await.status, 200);
    assert!(!env.cli(&["tokens", "revoke", "erp"]).status.success());
    let list: serde_json::Value =
        serde_json::from_str(&ok(&env.cli(&["tokens", "list", "--json"]))).unwrap();
    assert!(
        list[0]["revoked_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{list}"
    );
    assert!(list[1]["revoked_at"].is_null(), "{list}");
    // The name is free again after revoking.
    let fresh = ok(&env.cli(&["tokens", "add", "erp"])).trim().to_string();
    assert_eq!(Api::new(addr, Some(&fresh)).get(path).await.status, 200);
    assert!(!env.cli(&["tokens", "add", "bad name"]).status.success());
}
