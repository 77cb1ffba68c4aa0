//! Which build is running is visible everywhere an operator looks: `trialdesk --version`, the
//! review pages' footer (signed in only), and `/healthz`.

mod common;
mod review_support;

use axum::http::StatusCode;
use common::TestEnv;
use review_support::{add_user, Browser, PASSWORD};

#[test]
fn version_flag_names_the_git_revision() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim(), format!("trialdesk {}", trialdesk::VERSION));
    // Built inside the git checkout: a real revision, not the fallback.
    assert_ne!(trialdesk::GIT_REVISION, "unknown");
    assert!(
        trialdesk::GIT_REVISION
            .trim_end_matches("-dirty")
            .bytes()
            .all(|b| b.is_ascii_hexdigit()),
        "{}",
        trialdesk::GIT_REVISION
    );
    assert!(text.contains(trialdesk::GIT_REVISION), "{text}");
}

#[tokio::test]
async fn the_footer_shows_the_version_to_staff_only() {
    let env = TestEnv::new("").await;
    let mut b = Browser::new(&env);
    let login = b.get("/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        !login.body.contains(trialdesk::GIT_REVISION),
        "{}",
        login.body
    );
    add_user(&env, "alice").await;
    b.login("alice", PASSWORD).await;
    let queue = b.get("/queue").await;
    assert_eq!(queue.status, StatusCode::OK);
    assert!(
        queue.body.contains(&format!(
            "<footer class=\"muted\">trialdesk {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        queue.body
    );
    assert!(
        queue.body.contains(trialdesk::GIT_REVISION),
        "{}",
        queue.body
    );
}
