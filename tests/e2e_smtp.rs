//! The SMTP transport against real Postfix: which answers are retried and which go to the
//! review queue with the server's words, a refusal for one recipient among several, and the
//! per-recipient rate limit stopping a mail loop. The test stack answers RCPT TO
//! `reject-…@` with 550 and `tempfail-…@` with 450.

mod common;

use std::path::Path;
use std::time::Duration;

use common::mailstack::{free_port, request, sql_count, unique, E2e, Setup, Stack};
use trialdesk::config::{SmtpConfig, TlsMode};
use trialdesk::outbound::smtp::SmtpTransport;
use trialdesk::outbound::{Outgoing, SendError, Transport};

fn transport(port: u16) -> SmtpTransport {
    let config = SmtpConfig {
        port,
        tls: TlsMode::None,
        timeout: Duration::from_secs(10),
        ..SmtpConfig::default()
    };
    SmtpTransport::new(&config, Path::new(".")).unwrap()
}

fn mail(to: &[String]) -> Vec<u8> {
    format!(
        "From: helpdesk@example.test\r\nTo: {}\r\nSubject: test\r\nMessage-ID: <{}@example.test>\r\n\r\nbody\r\n",
        to.join(", "),
        unique("m")
    )
    .into_bytes()
}

async fn send(t: &SmtpTransport, to: &[String]) -> Result<(), SendError> {
    let body = mail(to);
    t.send(Outgoing {
        envelope_from: "helpdesk@example.test",
        recipients: to,
        body: &body,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_map_to_retry_or_review_with_the_servers_words() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    let t = transport(stack.smtp_port);
    let ok = format!("{}@pacrim.example.com", unique("ok"));
    send(&t, std::slice::from_ref(&ok)).await.unwrap();
    assert_eq!(
        stack
            .wait_count(&ok, "INBOX", 1, Duration::from_secs(10))
            .await,
        1
    );

    let rejected = format!("reject-{}@pacrim.example.com", unique("x"));
    match send(&t, std::slice::from_ref(&rejected)).await {
        Err(SendError::Permanent(text)) => {
            assert!(text.contains("550"), "{text}");
            assert!(text.contains("5.1.1"), "{text}");
            assert!(text.contains("mailbox unavailable (test stack)"), "{text}");
            assert!(text.contains(&rejected), "{text}");
        }
        other => panic!("550 must be permanent: {other:?}"),
    }
    let deferred = format!("tempfail-{}@pacrim.example.com", unique("x"));
    match send(&t, std::slice::from_ref(&deferred)).await {
        Err(SendError::Transient(text)) => assert!(text.contains("450"), "{text}"),
        other => panic!("450 must be transient: {other:?}"),
    }
    // The connection after a refusal is not reused broken: the next mail goes through.
    let ok2 = format!("{}@pacrim.example.com", unique("ok"));
    send(&t, std::slice::from_ref(&ok2)).await.unwrap();

    // Nothing listening: the relay is down (the sender waits as a whole, counting nothing).
    let down = transport(free_port());
    match send(&down, std::slice::from_ref(&ok)).await {
        Err(SendError::Relay(text)) => assert!(text.contains("cannot connect"), "{text}"),
        other => panic!("connection refused must be relay-level: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_recipient_does_not_keep_the_mail_from_the_others() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    let t = transport(stack.smtp_port);
    let a = format!("{}@pacrim.example.com", unique("a"));
    let b = format!("reject-{}@pacrim.example.com", unique("b"));
    let c = format!("{}@nordwind.example.de", unique("c"));
    match send(&t, &[a.clone(), b.clone(), c.clone()]).await {
        Err(SendError::Permanent(text)) => {
            assert!(text.contains(&format!("delivered to {a}, {c}")), "{text}");
            assert!(text.contains(&format!("refused for {b}")), "{text}");
            assert!(text.contains("550"), "{text}");
        }
        other => panic!("expected a permanent partial failure: {other:?}"),
    }
    assert_eq!(
        stack
            .wait_count(&a, "INBOX", 1, Duration::from_secs(10))
            .await,
        1
    );
    assert_eq!(
        stack
            .wait_count(&c, "INBOX", 1, Duration::from_secs(10))
            .await,
        1
    );

    // Refused for one, deferred for the other: the refusal is final, so review.
    let d = format!("tempfail-{}@pacrim.example.com", unique("d"));
    match send(&t, &[b.clone(), d.clone()]).await {
        Err(SendError::Permanent(text)) => {
            assert!(text.contains(&format!("refused for {b}")), "{text}");
            assert!(
                text.contains(&format!("not delivered (temporary error) for {d}")),
                "{text}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A temporary answer first: nothing was sent, the whole mail is retried later (and the
    // refusal is met then).
    assert!(matches!(
        send(&t, &[d, b]).await,
        Err(SendError::Transient(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reply_lands_in_review_with_the_relays_answer_and_a_deferred_one_is_retried() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    let env = E2e::new(&stack, Setup::plain(&stack)).await;
    let refused = format!("reject-{}@pacrim.example.com", unique("r"));
    let deferred = format!("tempfail-{}@pacrim.example.com", unique("t"));
    for partner in [&refused, &deferred] {
        let mid = format!("{}@pacrim.example.com", unique("req"));
        stack.deliver_lmtp(
            partner,
            &env.helpdesk,
            &request(partner, &env.helpdesk, &mid, "Please check D50261001."),
        );
    }
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("answered 2"), "{out}");
    assert!(out.contains("1 to retry later, 1 dead-lettered"), "{out}");

    let app = env.app().await;
    let items = app
        .store
        .review_items(&trialdesk::store::ReviewFilter::default())
        .await
        .unwrap();
    let dead: Vec<_> = items.iter().filter(|i| i.reason == "dead_letter").collect();
    assert_eq!(dead.len(), 1, "{items:?}");
    assert!(
        dead[0].detail.contains("550 5.1.1") || dead[0].detail.contains("5.1.1"),
        "{:?}",
        dead[0]
    );
    assert!(
        dead[0].detail.contains("mailbox unavailable"),
        "{:?}",
        dead[0]
    );
    assert_eq!(
        sql_count(
            &app,
            "SELECT COUNT(*) FROM outbox WHERE state = 'queued' AND last_error LIKE '%450%'"
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_ladder_stops_answering_a_robot() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    let env = E2e::new(&stack, Setup::plain(&stack)).await;
    let robot = format!("{}@pacrim.example.com", unique("robot"));
    for _ in 0..12 {
        let mid = format!("{}@pacrim.example.com", unique("loop"));
        stack.deliver_lmtp(
            &robot,
            &env.helpdesk,
            &request(&robot, &env.helpdesk, &mid, "Please check D50261001."),
        );
    }
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok, "{out}\n{err}");
    // Default ladder: at most 10 automatic replies to one address in 10 minutes.
    assert!(out.contains("answered 10, set aside for review 2"), "{out}");
    assert_eq!(
        stack
            .wait_count(&robot, "INBOX", 10, Duration::from_secs(20))
            .await,
        10
    );
    assert_eq!(stack.count(&env.helpdesk, "trialdesk.review").await, 2);
    let app = env.app().await;
    let counts = app.store.review_counts().await.unwrap();
    assert!(
        counts.iter().any(|(r, n)| r == "rate_limited" && *n == 2),
        "{counts:?}"
    );
}
