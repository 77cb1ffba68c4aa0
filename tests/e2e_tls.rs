//! TLS and authentication against the real servers: IMAPS/SMTPS and STARTTLS with the test
//! stack's private CA given in config; certificates that are not trusted or not for the name
//! are refused, and `check` says why; XOAUTH2 with tokens from a file and from a command,
//! fetched again at every connect.

mod common;

use std::time::Duration;

use common::mailstack::{request, unique, E2e, Setup, Stack};
use common::Reply;

/// The stack's token list is shared by the tests of this file.
static TOKENS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn deliver_request(stack: &Stack, env: &E2e, partner: &str) -> String {
    let mid = format!("{}@pacrim.example.com", unique("req"));
    stack.deliver_lmtp(
        partner,
        &env.helpdesk,
        &request(partner, &env.helpdesk, &mid, "Please check D50261001."),
    );
    mid
}

async fn assert_answered(stack: &Stack, partner: &str, mids: &[String]) {
    assert_eq!(
        stack
            .wait_count(partner, "INBOX", mids.len(), Duration::from_secs(20))
            .await,
        mids.len()
    );
    let got: Vec<String> = stack
        .messages(partner, "INBOX")
        .await
        .into_iter()
        .map(|raw| Reply::parse(raw).in_reply_to.unwrap_or_default())
        .collect();
    for mid in mids {
        assert!(got.contains(mid), "{mid} not answered: {got:?}");
    }
}

/// `[smtp]` lines: the private CA and a login as the helpdesk with `auth`.
fn smtp_login(stack: &Stack, auth: &str) -> String {
    format!(
        "{}\nusername = \"{{helpdesk}}\"\nauth = \"{auth}\"\npassword = \"{}\"",
        ca(stack),
        stack.password
    )
}

fn ca(stack: &Stack) -> String {
    format!("ca_file = \"{}\"", stack.ca_file.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaps_and_smtps_with_a_private_ca_from_config() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    let mut setup = Setup::plain(&stack);
    setup.imap_port = stack.imaps_port;
    setup.imap_tls = "implicit";
    setup.imap_extra = ca(&stack);
    setup.smtp_port = stack.smtps_port;
    setup.smtp_tls = "implicit";
    setup.smtp_extra = smtp_login(&stack, "plain");
    let env = E2e::new(&stack, setup).await;

    let (ok, out, err) = env.cli(&["check"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("✓ imap TLS (implicit): certificate valid for 127.0.0.1"),
        "{out}"
    );
    assert!(
        out.contains("✓ smtp TLS (implicit): certificate valid for 127.0.0.1"),
        "{out}"
    );
    assert!(out.contains("✓ smtp AUTH PLAIN as"), "{out}");

    let partner = format!("{}@pacrim.example.com", unique("tls"));
    let mid = deliver_request(&stack, &env, &partner);
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok && out.contains("sent 1 mail(s)"), "{out}\n{err}");
    assert_answered(&stack, &partner, &[mid]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_for_imap_and_submission_with_auth_login() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    let mut setup = Setup::plain(&stack);
    setup.imap_tls = "starttls";
    setup.imap_extra = format!("{}\nauth = \"plain\"", ca(&stack));
    setup.smtp_port = stack.submission_port;
    setup.smtp_tls = "starttls";
    setup.smtp_extra = smtp_login(&stack, "login");
    let env = E2e::new(&stack, setup).await;

    let (ok, out, err) = env.cli(&["check"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("✓ imap TLS (starttls)"), "{out}");
    assert!(out.contains("(PLAIN): accepted"), "{out}");
    assert!(out.contains("✓ smtp TLS (starttls)"), "{out}");
    assert!(out.contains("✓ smtp AUTH LOGIN as"), "{out}");

    let partner = format!("{}@pacrim.example.com", unique("stls"));
    let mid = deliver_request(&stack, &env, &partner);
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok && out.contains("sent 1 mail(s)"), "{out}\n{err}");
    assert_answered(&stack, &partner, &[mid]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_or_mismatched_certificates_are_refused_and_explained() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    // No CA in config: the stack's certificate is signed by a CA nobody trusts.
    let mut setup = Setup::plain(&stack);
    setup.imap_port = stack.imaps_port;
    setup.imap_tls = "implicit";
    setup.smtp_port = stack.smtps_port;
    setup.smtp_tls = "implicit";
    let env = E2e::new(&stack, setup).await;
    let partner = format!("{}@pacrim.example.com", unique("bad"));
    deliver_request(&stack, &env, &partner);

    let (ok, out, _) = env.cli(&["check"]);
    assert!(!ok, "{out}");
    assert!(out.contains("✗ imap TLS (implicit)"), "{out}");
    assert!(
        out.contains("UnknownIssuer") && out.contains("imap.ca_file"),
        "{out}"
    );
    assert!(out.contains("✗ smtp TLS (implicit)"), "{out}");
    assert!(out.contains("smtp.ca_file"), "{out}");
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(!ok, "run --once accepted an untrusted certificate:\n{out}");
    assert!(err.contains("certificate"), "{err}");

    // The right CA, but the certificate is not for the name we expect.
    let ca_path = stack.ca_file.display().to_string();
    let vars = [
        ("TRIALDESK__IMAP__CA_FILE", ca_path.as_str()),
        ("TRIALDESK__IMAP__TLS_SERVER_NAME", "mail.example.com"),
        ("TRIALDESK__SMTP__CA_FILE", ca_path.as_str()),
        ("TRIALDESK__SMTP__TLS_SERVER_NAME", "mail.example.com"),
    ];
    let (ok, out, _) = env.cli_env(&["check"], &vars);
    assert!(!ok, "{out}");
    assert!(out.contains("not valid for name"), "{out}");
    assert!(out.contains("mail.example.com"), "{out}");
    assert!(out.contains("✗ smtp TLS (implicit)"), "{out}");
    let (ok, out, err) = env.cli_env(&["run", "--once"], &vars);
    assert!(!ok, "{out}");
    assert!(err.contains("not valid for name"), "{err}");

    // Nothing was read past the refused handshakes: the request still waits in the inbox.
    assert_eq!(stack.count(&env.helpdesk, "INBOX").await, 1);
    assert_eq!(stack.count(&partner, "INBOX").await, 0);
    // With the CA and the right name everything works.
    let (ok, out, err) = env.cli_env(
        &["run", "--once"],
        &vars[..1]
            .iter()
            .chain(&vars[2..3])
            .copied()
            .collect::<Vec<_>>(),
    );
    assert!(ok && out.contains("sent 1 mail(s)"), "{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xoauth2_tokens_are_fetched_at_each_connect() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    let mut setup = Setup::plain(&stack);
    setup.smtp_port = stack.submission_port;
    setup.smtp_tls = "starttls";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    setup.imap_password = false;
    setup.imap_extra = format!(
        "auth = \"xoauth2\"\noauth2_token_file = \"{}\"",
        token_file.display()
    );
    setup.smtp_extra = format!(
        "{}\nusername = \"{{helpdesk}}\"\nauth = \"xoauth2\"\n\
         oauth2_token_command = \"cat '{}'\"\noauth2_token_refresh = \"1s\"",
        ca(&stack),
        token_file.display()
    );
    let env = E2e::new(&stack, setup).await;

    let _tokens = TOKENS.lock().await;
    let first = unique("tok1");
    stack.add_oauth_token(&first, &env.helpdesk);
    std::fs::write(&token_file, format!("{first}\n")).unwrap();
    let (ok, out, err) = env.cli(&["check"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("(XOAUTH2): accepted"), "{out}");
    assert!(out.contains("✓ smtp AUTH XOAUTH2 as"), "{out}");
    assert!(!out.contains(&first), "token printed:\n{out}");

    let partner = format!("{}@pacrim.example.com", unique("oauth"));
    let m1 = deliver_request(&stack, &env, &partner);
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok && out.contains("sent 1 mail(s)"), "{out}\n{err}");

    // The token expires and the refresher writes a new one: the next connect uses it.
    remove_oauth_token(&stack, &first);
    let second = unique("tok2");
    stack.add_oauth_token(&second, &env.helpdesk);
    std::fs::write(&token_file, format!("{second}\n")).unwrap();
    let m2 = deliver_request(&stack, &env, &partner);
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok && out.contains("sent 1 mail(s)"), "{out}\n{err}");
    assert_answered(&stack, &partner, &[m1, m2]).await;

    // A token the server does not accept: refused, and said so.
    std::fs::write(&token_file, "revoked-token\n").unwrap();
    let (ok, out, _) = env.cli(&["check"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("✗ imap login as") && out.contains("refused"),
        "{out}"
    );
    assert!(out.contains("✗ smtp AUTH XOAUTH2"), "{out}");
    remove_oauth_token(&stack, &second);
}

fn remove_oauth_token(stack: &Stack, token: &str) {
    let text = std::fs::read_to_string(&stack.oauth_tokens).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(token))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&stack.oauth_tokens, kept).unwrap();
}
