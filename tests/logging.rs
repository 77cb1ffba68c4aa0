//! JSON logs as a collector sees them: each line of a mail's processing and of its send
//! carries the ids it is about (message id, sender, loans, inbound and outbox ids).

mod common;

use common::{mail, TestEnv};

#[tokio::test]
async fn json_lines_carry_the_ids_of_the_mail_they_are_about() {
    let env = TestEnv::new("[logging]\nformat = \"json\"\n").await;
    env.deliver(
        "1.a.host",
        &mail(
            "Dana Ortiz <ops@pacrim.example.com>",
            "Trial Endpoint Tracking Request",
            "log-1@pacrim.example.com",
            "",
            "Please check D50261001 and D50261002.\r\n",
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .arg("--config")
        .arg(&env.config_path)
        .args(["run", "--once"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in:\n{stderr}"))
            .clone()
    };
    // The decision, inside the span of the mail it is about.
    let decided = find("decided");
    assert_eq!(decided["fields"]["kind"], "tracking_request");
    assert_eq!(decided["fields"]["action"], "reply");
    let span = decided["spans"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "process"))
        .unwrap_or_else(|| panic!("no process span: {decided}"));
    assert_eq!(span["message_id"], "log-1@pacrim.example.com");
    assert_eq!(span["sender"], "ops@pacrim.example.com");
    assert_eq!(span["loans"], "D50261001 D50261002");
    assert!(span["inbound_id"].as_i64().is_some(), "{span}");
    // The send, inside the span of the outbox row, naming the inbound mail it answers.
    let sent = find("sent");
    let span = sent["spans"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "send_one"))
        .unwrap_or_else(|| panic!("no send_one span: {sent}"));
    assert_eq!(span["purpose"], "reply");
    assert_eq!(span["to"], "ops@pacrim.example.com");
    assert!(
        span["message_id"]
            .as_str()
            .unwrap()
            .ends_with("@example.test"),
        "{span}"
    );
    assert_eq!(
        span["inbound_id"], decided["spans"][0]["inbound_id"],
        "{span}"
    );
}
