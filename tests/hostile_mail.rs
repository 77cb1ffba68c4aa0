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
            "\"Visit https://evil.example/x or www.evil.example\" <ops@pacrim.example.com>",
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
    // A display name echoed into the reply cannot become a link (HTML or text).
    let dana = replies
        .iter()
        .find(|r| r.to == "ops@pacrim.example.com")
        .unwrap();
    for part in [&dana.html, &dana.text] {
        assert!(part.contains("Visit"), "{part}");
        for link in ["https://evil", "www.evil", "evil.example"] {
            assert!(!part.contains(link), "{link} in {part}");
        }
    }
}

/// Review reasons (JSON lists) of every open item, by sender.
async fn review_reasons(env: &TestEnv) -> Vec<(String, String)> {
    env.app
        .store
        .review_items(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.sender.unwrap_or_default(), i.reasons))
        .collect()
}

/// Sender identity as an MTA sees it: two From fields, two addresses in one From, a Kelvin
/// sign (U+212A) in place of `k` in a partner's domain: none is answered automatically.
#[tokio::test]
async fn ambiguous_or_lookalike_senders_are_not_answered() {
    let env = TestEnv::new("").await;
    let request = |from: &str, mid: &str| {
        mail(
            from,
            "Trial Endpoint Tracking Request",
            mid,
            "",
            "D50261001\r\n",
        )
    };
    // Two From header fields: the first a partner's, the second not.
    let mut two_fields = b"From: Mallory <mallory@evil.example.org>\r\n".to_vec();
    two_fields.extend(request(
        "Dana <ops@pacrim.example.com>",
        "amb-1@pacrim.example.com",
    ));
    env.deliver("3001.a.host", &two_fields);
    env.deliver(
        "3002.b.host",
        &request(
            "ops@pacrim.example.com, mallory@evil.example.org",
            "amb-2@pacrim.example.com",
        ),
    );
    env.deliver(
        "3003.c.host",
        &mail(
            "Admin <admin@sa\u{212A}ura-net.example.jp>",
            "Trial Endpoint Tracking Request",
            "kelvin-1@example.org",
            "",
            "D30261001\r\n",
        ),
    );
    // Control: the same request, plainly from the partner, is answered.
    env.deliver(
        "3004.d.host",
        &request("ops@pacrim.example.com", "ok-1@pacrim.example.com"),
    );
    let summary = env.app.run_once().await.unwrap();
    assert_eq!(summary.fetched, 4, "{summary}");
    assert_eq!(summary.replied, 1, "{summary}");
    assert_eq!(summary.review, 3, "{summary}");
    let replies = env.replies();
    assert_eq!(replies.len(), 1);
    assert_eq!(
        replies[0].in_reply_to.as_deref(),
        Some("ok-1@pacrim.example.com")
    );
    let reasons = review_reasons(&env).await;
    let ambiguous = reasons
        .iter()
        .filter(|(_, r)| r.contains("sender:ambiguous"))
        .count();
    assert_eq!(ambiguous, 2, "{reasons:?}");
    let kelvin = reasons
        .iter()
        .find(|(s, _)| s.contains('\u{212A}'))
        .expect("the Kelvin mail is kept as sent, not lower-cased to k");
    assert!(kelvin.1.contains("unknown_sender"), "{kelvin:?}");
}

/// `security.require_dmarc_pass = true`: only a trusted `dmarc=pass` is answered; `none`,
/// `temperror`, a `pass` from an untrusted authserv-id and no header at all go to review.
#[tokio::test]
async fn require_dmarc_pass_answers_only_a_trusted_pass() {
    let env = TestEnv::new("").await;
    // The test config already has [security]; turn the policy on for this app.
    let text = std::fs::read_to_string(&env.config_path)
        .unwrap()
        .replace("[security]\n", "[security]\nrequire_dmarc_pass = true\n");
    std::fs::write(&env.config_path, text).unwrap();
    let config = trialdesk::config::Config::load(&env.config_path).unwrap();
    assert!(config.security.require_dmarc_pass);
    let app = trialdesk::app::App::open(config).await.unwrap();
    let ar = |result: &str, id: &str| {
        format!("Authentication-Results: {id}; spf=pass smtp.mailfrom=pacrim.example.com; dmarc={result} header.from=pacrim.example.com\r\n")
    };
    let cases = [
        ("4001", ar("pass", "mx.helpdesk.example.test"), true),
        ("4002", ar("none", "mx.helpdesk.example.test"), false),
        ("4003", ar("temperror", "mx.helpdesk.example.test"), false),
        ("4004", ar("pass", "forged.example.org"), false),
        ("4005", String::new(), false),
    ];
    for (n, header, _) in &cases {
        env.deliver(
            &format!("{n}.x.host"),
            &mail(
                "ops@pacrim.example.com",
                "Trial Endpoint Tracking Request",
                &format!("dmarc-{n}@pacrim.example.com"),
                header,
                "D50261001\r\n",
            ),
        );
    }
    let summary = app.run_once().await.unwrap();
    assert_eq!(summary.replied, 1, "{summary}");
    assert_eq!(summary.review, 4, "{summary}");
    let replies = env.replies();
    assert_eq!(
        replies[0].in_reply_to.as_deref(),
        Some("dmarc-4001@pacrim.example.com")
    );
    let reasons = review_reasons(&env).await;
    assert_eq!(
        reasons
            .iter()
            .filter(|(_, r)| r.contains("dmarc_not_pass"))
            .count(),
        4,
        "{reasons:?}"
    );
}

#[test]
fn an_empty_trusted_authserv_list_is_warned_about() {
    let mut security = trialdesk::config::SecurityConfig::default();
    assert!(trialdesk::config::security_warning(&security)
        .unwrap()
        .contains("trusted_authserv_ids is empty"));
    security.trusted_authserv_ids = vec!["mx.example".into()];
    assert!(trialdesk::config::security_warning(&security).is_none());
}

/// `trialdesk ARGS` under umask 000 (every file would be world-writable).
fn under_open_umask(env: &TestEnv, args: &str) -> (bool, String) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000; exec '{}' --config '{}' {args}",
            env!("CARGO_BIN_EXE_trialdesk"),
            env.config_path.display()
        ))
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

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The database (with its WAL and SHM files), the outbox files, an export dump and a backup
/// are created 0600 even under umask 000.
#[cfg(unix)]
#[tokio::test]
async fn files_trialdesk_writes_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let scratch = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("scratch.db").display()
    );
    let env = TestEnv::open(dir, &scratch, "").await;
    // Point the config at a database file that does not exist yet, created by the binary.
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    let start = text.find("url = \"").unwrap() + 7;
    let end = start + text[start..].find('"').unwrap();
    let text = format!(
        "{}sqlite://{}?mode=rwc{}",
        &text[..start],
        db.display(),
        &text[end..]
    );
    std::fs::write(&env.config_path, text).unwrap();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/data");
    let (ok, out) = under_open_umask(&env, &format!("import partners '{data}/partners.csv'"));
    assert!(ok, "{out}");
    let (ok, out) = under_open_umask(&env, &format!("import shipments '{data}/shipments.csv'"));
    assert!(ok, "{out}");
    env.deliver(
        "5001.a.host",
        &mail(
            "Dana <ops@pacrim.example.com>",
            "Trial Endpoint Tracking Request",
            "umask-1@pacrim.example.com",
            "",
            "D50261001\r\n",
        ),
    );
    let (ok, out) = under_open_umask(&env, "run --once");
    assert!(ok && out.contains("answered 1"), "{out}");
    let dump = env.dir.path().join("all.dump");
    let backup = env.dir.path().join("copy.db");
    let (ok, out) = under_open_umask(&env, &format!("export '{}'", dump.display()));
    assert!(ok, "{out}");
    let (ok, out) = under_open_umask(&env, &format!("backup '{}'", backup.display()));
    assert!(ok, "{out}");
    let mut files = vec![db.clone(), dump, backup];
    for suffix in ["-wal", "-shm"] {
        let p = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            files.push(p);
        }
    }
    let replies: Vec<_> = std::fs::read_dir(env.outbox())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    files.extend(replies);
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}
