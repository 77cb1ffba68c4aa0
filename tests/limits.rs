//! Each configurable limit, end to end through `run --once`: the mail beyond it is not
//! answered but lands in the review queue with its reason (SQLite, and PostgreSQL when
//! `TRIALDESK_TEST_PG_URL` is set).

mod common;

use common::{mail, TestEnv};
use trialdesk::app::App;

const FROM: &str = "王伟 <wangwei@huadong.example.cn>";
const SUBJECT: &str = "试用终端追踪请求";

/// The test environment with `line` added to its (already present) `[section]`.
async fn env_with(section: &str, line: &str) -> TestEnv {
    let mut env = TestEnv::new("").await;
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    let header = format!("[{section}]\n");
    let text = if text.contains(&header) {
        text.replace(&header, &format!("{header}{line}\n"))
    } else {
        format!("{text}\n{header}{line}\n")
    };
    std::fs::write(&env.config_path, text).unwrap();
    let config = trialdesk::config::Config::load(&env.config_path).unwrap();
    env.app = App::open(config).await.unwrap();
    env
}

async fn reviews(env: &TestEnv) -> Vec<(String, i64)> {
    let mut counts = env.app.store.review_counts().await.unwrap();
    // The fixture loan D20261001 is overdue by the wall clock (its own item, tested in
    // live_data.rs): not what these limits are about.
    counts.retain(|(r, n)| *n > 0 && r != "shipment_attention");
    counts.sort();
    counts
}

fn multipart(id: &str, depth: usize, extra_parts: usize) -> Vec<u8> {
    let mut m = format!(
        "From: {FROM}\r\nSubject: {SUBJECT}\r\nMessage-ID: <{id}>\r\nMIME-Version: 1.0\r\n"
    );
    for i in 1..depth {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    m.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n请查询 D20261001\r\n");
    if depth > 1 {
        for p in 0..extra_parts {
            m.push_str(&format!(
                "--b{}\r\nContent-Type: application/octet-stream\r\n\r\n{p}\r\n",
                depth - 1
            ));
        }
    }
    for i in (1..depth).rev() {
        m.push_str(&format!("--b{i}--\r\n"));
    }
    m.into_bytes()
}

#[tokio::test]
async fn message_size() {
    let env = env_with("mail", "max_message_bytes = 4096").await;
    let body = format!("请查询 D20261001\r\n{}", "填充文字。".repeat(400));
    env.deliver(
        "1.a.host",
        &mail(FROM, SUBJECT, "big@huadong.example.cn", "", &body),
    );
    env.deliver(
        "2.a.host",
        &mail(FROM, SUBJECT, "small@huadong.example.cn", "", "D20261001"),
    );
    let summary = env.app.run_once().await.unwrap();
    assert_eq!((summary.replied, summary.review), (1, 1));
    assert_eq!(reviews(&env).await, [("oversize".to_string(), 1)]);
    // Only the headers were read; the raw mail is not stored.
    let big = env.app.store.inbound(1).await.unwrap().unwrap();
    assert!(big.size_bytes > 4096);
    assert!(env.app.store.inbound_raw(1).await.unwrap().is_none());
    // The recorded decision says why, although the source handed over the headers only.
    let decisions = env.app.store.decisions_for_inbound(1).await.unwrap();
    assert!(
        decisions[0].reasons.contains("\"oversize\""),
        "{:?}",
        decisions[0].reasons
    );
}

#[tokio::test]
async fn mime_depth() {
    let env = env_with("mail", "max_mime_depth = 3").await;
    env.deliver("1.a.host", &multipart("deep@huadong.example.cn", 4, 0));
    env.deliver("2.a.host", &multipart("ok@huadong.example.cn", 3, 0));
    let summary = env.app.run_once().await.unwrap();
    assert_eq!((summary.replied, summary.review), (1, 1));
    assert_eq!(reviews(&env).await, [("mime_too_deep".to_string(), 1)]);
}

#[tokio::test]
async fn mime_parts() {
    let env = env_with("mail", "max_mime_parts = 5").await;
    // Container + text + 3 attachments = 5 parts; one more is too many.
    env.deliver("1.a.host", &multipart("many@huadong.example.cn", 2, 4));
    env.deliver("2.a.host", &multipart("ok@huadong.example.cn", 2, 3));
    let summary = env.app.run_once().await.unwrap();
    assert_eq!((summary.replied, summary.review), (1, 1));
    assert_eq!(reviews(&env).await, [("too_many_parts".to_string(), 1)]);
}

#[tokio::test]
async fn numbers_per_mail() {
    let env = env_with("classify", "max_loan_numbers = 2").await;
    env.deliver(
        "1.a.host",
        &mail(
            FROM,
            SUBJECT,
            "three@huadong.example.cn",
            "",
            "D20261001 D20261002 D20261003",
        ),
    );
    env.deliver(
        "2.a.host",
        &mail(
            FROM,
            SUBJECT,
            "two@huadong.example.cn",
            "",
            "D20261001 D20261002",
        ),
    );
    let summary = env.app.run_once().await.unwrap();
    assert_eq!((summary.replied, summary.review), (1, 1));
    assert_eq!(reviews(&env).await, [("too_many_numbers".to_string(), 1)]);
}

#[tokio::test]
async fn replies_per_sender_and_hour() {
    let env = env_with("outbox", "rate_limits = [{ window = \"1h\", max = 2 }]").await;
    for n in 1..=3 {
        env.deliver(
            &format!("{n}.a.host"),
            &mail(
                FROM,
                SUBJECT,
                &format!("rate-{n}@huadong.example.cn"),
                "",
                "D20261001",
            ),
        );
    }
    let summary = env.app.run_once().await.unwrap();
    assert_eq!((summary.replied, summary.review), (2, 1));
    assert_eq!(env.replies().len(), 2);
    assert_eq!(reviews(&env).await, [("rate_limited".to_string(), 1)]);
}

#[tokio::test]
async fn limits_are_validated_with_their_key() {
    for (toml, key) in [
        ("[mail]\nmax_mime_depth = 0\n", "mail.max_mime_depth"),
        ("[mail]\nmax_mime_parts = 0\n", "mail.max_mime_parts"),
        ("[retention]\ninterval = \"1s\"\n", "retention.interval"),
        ("[retention]\nbatch = 0\n", "retention.batch"),
    ] {
        let err = trialdesk::config::Config::from_toml_str(
            &format!("[database]\nurl = \"sqlite://x\"\n{toml}"),
            std::path::Path::new("t.toml"),
            ".".into(),
            &[],
        )
        .unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}
