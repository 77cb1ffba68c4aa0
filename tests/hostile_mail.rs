//! Crafted mail through the whole `run --once` path (the binary): issue 13's hostile inputs.

mod common;

use common::{mail, TestEnv};

fn run_once(env: &TestEnv) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .args([
            "--config",
            env.config_path.to_str().unwrap(),
            "run",
            "--once",
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A line break encoded in the From display name used to make lettre panic while composing
/// the reply: `run --once` exited 101 with the batch unfiled. Now the name is folded to one
/// line, the reply goes out, and nothing of the name becomes a header of its own.
#[tokio::test]
async fn a_crlf_in_the_display_name_is_answered_without_header_injection() {
    let env = TestEnv::new("").await;
    env.deliver(
        "2001.a.host",
        &mail(
            "Wang =?UTF-8?Q?Wei=0D=0ABcc:_evil@evil.example?= <wangwei@huadong.example.cn>",
            "试用终端追踪请求",
            "crlf-1@huadong.example.cn",
            "",
            "请查询 D20261001\r\n",
        ),
    );
    env.deliver(
        "2002.b.host",
        &mail(
            "Dana Ortiz <ops@pacrim.example.com>",
            "Trial Endpoint Tracking Request",
            "crlf-2@pacrim.example.com",
            "",
            "Please check D50261001.\r\n",
        ),
    );
    let (ok, out) = run_once(&env);
    assert!(ok, "{out}");
    assert!(out.contains("answered 2"), "{out}");
    let replies = env.replies();
    assert_eq!(replies.len(), 2, "{out}");
    let wang = replies
        .iter()
        .find(|r| r.to == "wangwei@huadong.example.cn")
        .expect("reply to the crafted name");
    let raw = String::from_utf8_lossy(&wang.raw);
    let head = raw.split("\r\n\r\n").next().unwrap();
    assert!(
        !head
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
        "{head}"
    );
    assert!(!raw.contains("evil@evil.example>"), "{head}");
    assert!(wang.text.contains("D20261001"), "{}", wang.text);
}
