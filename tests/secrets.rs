//! Passwords never reach stdout or stderr: not in config errors, database connection errors,
//! mail-server connection errors, `--help`, `explain` output or trace-level logs. Each case
//! runs the real binary with `RUST_LOG=trace` and a canary password.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

const CANARY: &str = "S3cr3t-Canary";

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn trialdesk(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trialdesk"));
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "trace")
        .env("TRIALDESK_CANARY_PASSWORD", CANARY);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Runs, checks the outcome, and that the canary appears nowhere.
fn assert_hidden(what: &str, out: &Output, should_succeed: bool) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.success(), should_succeed, "{what}: {text}");
    assert!(!text.contains(CANARY), "{what} leaks the password:\n{text}");
    // A canary cut in half by some redaction would still be a leak.
    assert!(
        !text.contains("Canary"),
        "{what} leaks part of the password:\n{text}"
    );
    text
}

fn write_config(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_errors_hide_secret_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = "[database]\nurl = \"sqlite://t.db?mode=rwc\"\n";
    for (name, text) in [
        (
            "unterminated",
            format!("{db}[imap]\npassword = \"{CANARY}\n"),
        ),
        (
            "trailing junk",
            format!("{db}[smtp]\npassword = \"{CANARY}\" x\n"),
        ),
        ("bare word", format!("{db}[imap]\npassword = {CANARY}\n")),
        (
            "wrong type",
            format!("{db}[imap]\npassword = [\"{CANARY}\"]\n"),
        ),
    ] {
        let config = write_config(dir.path(), "bad.toml", &text);
        let out = trialdesk(&config, &["migrate"], &[]);
        let text = assert_hidden(name, &out, false);
        assert!(
            text.contains("line ") || text.contains("imap.password"),
            "{name}: {text}"
        );
    }
    // The same through an environment override.
    let config = write_config(dir.path(), "ok.toml", db);
    let out = trialdesk(
        &config,
        &["migrate"],
        &[("TRIALDESK__IMAP__PASSWORD", &format!("[\"{CANARY}\"]"))],
    );
    assert_hidden("env override of wrong type", &out, false);
}

#[test]
fn database_connect_errors_hide_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    for (name, url) in [
        (
            "closed port",
            format!("postgres://td:{CANARY}@127.0.0.1:{port}/td"),
        ),
        (
            "@ inside the password",
            format!("postgres://td:x@{CANARY}@127.0.0.1:{port}/td"),
        ),
        (
            "password parameter",
            format!("postgres://td@127.0.0.1:{port}/td?password={CANARY}"),
        ),
        (
            "bad port",
            format!("postgres://td:{CANARY}@127.0.0.1:notaport/td"),
        ),
    ] {
        let config = write_config(
            dir.path(),
            "pg.toml",
            &format!("[database]\nurl = \"{url}\"\nacquire_timeout = \"1s\"\n"),
        );
        for args in [&["migrate"][..], &["queue", "list"], &["backup", "b.db"]] {
            let out = trialdesk(&config, args, &[]);
            let text = assert_hidden(&format!("{name} / {args:?}"), &out, false);
            assert!(
                text.contains("***") || name == "password parameter",
                "{name}: {text}"
            );
        }
    }
}

/// Against the real PostgreSQL of the test run: the server answers, and refuses.
#[tokio::test]
async fn database_server_errors_hide_the_password() {
    let Ok(admin) = std::env::var("TRIALDESK_TEST_PG_URL") else {
        return; // the closed-port cases above run on every backend
    };
    let rest = admin.split_once("://").unwrap().1;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, url) in [
        (
            "missing database",
            format!("postgres://postgres:{CANARY}@{host}/no_such_db_td"),
        ),
        (
            "missing role",
            format!("postgres://no_such_role:{CANARY}@{host}/postgres"),
        ),
    ] {
        let config = write_config(
            dir.path(),
            "pg.toml",
            &format!("[database]\nurl = \"{url}\"\nacquire_timeout = \"5s\"\n"),
        );
        let out = trialdesk(&config, &["migrate"], &[]);
        assert_hidden(name, &out, false);
    }
}

#[test]
fn mail_server_passwords_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let secret_file = write_config(dir.path(), "imap.secret", &format!("{CANARY}\n"));
    let base = "[database]\nurl = \"sqlite://t.db?mode=rwc\"\n[web]\nenabled = false\n";
    let forms = [
        format!("password = \"{CANARY}\""),
        "password_env = \"TRIALDESK_CANARY_PASSWORD\"".to_string(),
        format!("password_file = \"{}\"", secret_file.display()),
    ];
    for form in &forms {
        let imap = format!(
            "{base}[mail]\nsource = \"imap\"\n[imap]\nhost = \"127.0.0.1\"\nport = {port}\n\
             tls = \"none\"\nusername = \"helpdesk\"\n{form}\nconnect_timeout = \"1s\"\n"
        );
        let config = write_config(dir.path(), "imap.toml", &imap);
        for args in [&["run", "--once"][..], &["check"]] {
            let out = trialdesk(&config, args, &[]);
            assert_hidden(&format!("imap {form} {args:?}"), &out, false);
        }

        let smtp = format!(
            "{base}[mail]\ntransport = \"smtp\"\n[smtp]\nhost = \"127.0.0.1\"\nport = {port}\n\
             tls = \"none\"\nusername = \"helpdesk\"\n{form}\ntimeout = \"1s\"\n"
        );
        let config = write_config(dir.path(), "smtp.toml", &smtp);
        // `check` logs in to the relay; `run --once` with an empty outbox would not connect.
        let out = trialdesk(&config, &["check"], &[]);
        assert_hidden(&format!("smtp {form}"), &out, false);
    }
}

#[test]
fn help_and_explain_never_show_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "t.toml",
        &format!(
            "[database]\nurl = \"sqlite://t.db?mode=rwc\"\n[imap]\npassword = \"{CANARY}\"\n\
             [smtp]\npassword_env = \"TRIALDESK_CANARY_PASSWORD\"\n\
             [metrics]\ntoken = \"{CANARY}\"\n"
        ),
    );
    let env = [
        ("TRIALDESK__IMAP__PASSWORD", CANARY),
        ("TRIALDESK_CONFIG", config.to_str().unwrap()),
    ];
    let help = trialdesk(&config, &["--help"], &env);
    let text = assert_hidden("--help", &help, true);
    // Every subcommand's help, as listed by the top-level help.
    let commands: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 5, "{commands:?}");
    for c in &commands {
        let out = trialdesk(&config, &[c, "--help"], &env);
        assert_hidden(&format!("{c} --help"), &out, true);
    }
    let mail = Path::new(common::FIXTURES).join("mail/gmail_utf8_reply.eml");
    let out = trialdesk(&config, &["explain", mail.to_str().unwrap()], &env);
    let text = assert_hidden("explain", &out, true);
    assert!(text.contains("\"kind\""), "{text}");
}

/// Signs in to the real Dovecot (LOGIN with a password, then AUTHENTICATE XOAUTH2 with a
/// token) with `RUST_LOG=trace`: async-imap traces every line it writes, credentials included,
/// so its wire trace is capped (`telemetry::SECRET_BEARING_TARGETS`). Neither the password,
/// nor the token, nor their base64 forms (AUTH PLAIN, XOAUTH2) may appear in any output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_logins_at_trace_level_hide_password_and_token() {
    use base64::Engine as _;
    use common::mailstack::{unique, E2e, Setup, Stack};
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let Some(stack) = Stack::or_skip() else {
        return;
    };

    // Password login.
    let env = E2e::new(&stack, Setup::plain(&stack)).await;
    let (ok, out, err) = env.cli_env(&["check"], &[("RUST_LOG", "trace")]);
    let text = format!("{out}\n{err}");
    assert!(ok, "{out}");
    // The trace really is on (or this test could not fail).
    // Verbose logging really is on (async-imap's own trace is what the cap removes).
    assert!(err.contains("DEBUG"), "{}", &err[..err.len().min(2000)]);
    let user = env.helpdesk.clone();
    let pw = stack.password.clone();
    for (what, needle) in [
        ("LOGIN line", format!("LOGIN \"{user}\" \"{pw}\"")),
        ("quoted password", format!("\"{pw}\"")),
        ("AUTH PLAIN", b64(&format!("\0{user}\0{pw}"))),
    ] {
        assert!(!text.contains(&needle), "{what} logged:\n{text}");
    }
    assert!(
        !text.lines().any(|l| l.contains("LOGIN") && l.contains(&pw)),
        "a LOGIN line with the password:\n{text}"
    );

    // XOAUTH2.
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let mut setup = Setup::plain(&stack);
    setup.imap_password = false;
    setup.imap_extra = format!(
        "auth = \"xoauth2\"\noauth2_token_file = \"{}\"",
        token_file.display()
    );
    let env = E2e::new(&stack, setup).await;
    let token = unique("trace-token");
    stack.add_oauth_token(&token, &env.helpdesk);
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let (ok, out, err) = env.cli_env(&["check"], &[("RUST_LOG", "trace")]);
    let text = format!("{out}\n{err}");
    assert!(out.contains("(XOAUTH2): accepted"), "{ok} {text}");
    let sasl = format!("user={}\x01auth=Bearer {token}\x01\x01", env.helpdesk);
    for (what, needle) in [("token", token.clone()), ("XOAUTH2 line", b64(&sasl))] {
        assert!(!text.contains(&needle), "{what} logged:\n{text}");
    }
    // Even asking for async-imap's trace by name does not bring it back.
    let (_, out, err) = env.cli_env(
        &["check"],
        &[(
            "RUST_LOG",
            "trace,async_imap=trace,async_imap::imap_stream=trace",
        )],
    );
    let text = format!("{out}\n{err}");
    assert!(
        !text.contains(&token) && !text.contains(&b64(&sasl)),
        "{text}"
    );
    let tokens = std::fs::read_to_string(&stack.oauth_tokens).unwrap();
    let kept: Vec<&str> = tokens
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(token.as_str()))
        .collect();
    std::fs::write(&stack.oauth_tokens, kept.join("\n") + "\n").unwrap();
}
