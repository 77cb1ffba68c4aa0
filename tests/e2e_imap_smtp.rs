//! End to end through real servers: a partner mails the helpdesk through Postfix, the mail
//! lands in the helpdesk's Dovecot INBOX, `trialdesk run` (the binary) picks it up by IDLE,
//! and its reply travels back through Postfix into the partner's mailbox, where it is read
//! over IMAP and checked. Needs the stack from `scripts/mailstack` (scripts/test starts it).

mod common;

use std::time::{Duration, Instant};

use common::mailstack::{request, sql_count, unique, E2e, Setup, Stack};
use common::Reply;

const ANSWERED: &str = "trialdesk.answered";
const REVIEW: &str = "trialdesk.review";
const IGNORED: &str = "trialdesk.ignored";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_sent_by_smtp_is_answered_over_idle_and_filed_by_outcome() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    let env = E2e::new(&stack, Setup::plain(&stack)).await;
    let partner = format!("{}@pacrim.example.com", unique("dana"));
    let mut td = env.spawn();
    let health = td.wait_connected(Duration::from_secs(30));
    assert_eq!(
        health["imap"]["push"], true,
        "Dovecot offers IDLE: {health}"
    );

    let mid = format!("{}@pacrim.example.com", unique("req"));
    let sent = Instant::now();
    stack
        .send_smtp(
            &partner,
            &[&env.helpdesk],
            &request(
                &partner,
                &env.helpdesk,
                &mid,
                "Hello,\r\nplease check D50261001 for us.\r\nDana",
            ),
        )
        .await;
    let n = stack
        .wait_count(&partner, "INBOX", 1, Duration::from_secs(30))
        .await;
    let latency = sent.elapsed();
    assert_eq!(n, 1, "no reply reached the partner:\n{}", env.log());
    eprintln!("SMTP request accepted -> reply in the partner's INBOX: {latency:?}");

    let reply = Reply::parse(stack.messages(&partner, "INBOX").await.remove(0));
    assert_eq!(reply.from, env.helpdesk);
    assert_eq!(reply.to, partner);
    assert_eq!(reply.subject, "Re: Trial Endpoint Tracking Request");
    assert_eq!(reply.in_reply_to.as_deref(), Some(mid.as_str()));
    assert!(reply.references.contains(&mid), "{:?}", reply.references);
    assert!(
        reply.message_id.ends_with("@example.test"),
        "{}",
        reply.message_id
    );
    assert_eq!(
        reply.header("Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert_eq!(
        reply.header("X-Auto-Response-Suppress").as_deref(),
        Some("All")
    );
    assert_eq!(reply.header("Precedence").as_deref(), Some("auto_reply"));
    assert_eq!(reply.header("X-Trialdesk").as_deref(), Some("auto-reply"));
    let raw = String::from_utf8_lossy(&reply.raw);
    assert!(raw.contains("multipart/alternative"), "{raw}");
    for part in [&reply.text, &reply.html] {
        assert!(part.contains("D50261001"), "{part}");
        assert!(
            part.contains("771234567890"),
            "tracking number missing: {part}"
        );
    }
    // The request left the inbox for the folder of its outcome (created on first use).
    assert_eq!(stack.count(&env.helpdesk, "INBOX").await, 0);
    assert_eq!(stack.count(&env.helpdesk, ANSWERED).await, 1);

    // A question that is not a tracking request goes to review; an auto-reply is ignored.
    let other = format!(
        "From: {partner}\r\nTo: {hd}\r\nSubject: Lunch next week?\r\nMessage-ID: <{id}>\r\n\
         Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nAre you free?\r\n",
        hd = env.helpdesk,
        id = unique("other")
    );
    stack
        .send_smtp(&partner, &[&env.helpdesk], other.as_bytes())
        .await;
    let auto = format!(
        "From: {partner}\r\nTo: {hd}\r\nSubject: Out of office: Trial Endpoint Tracking Request\r\n\
         Message-ID: <{id}>\r\nAuto-Submitted: auto-replied\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\n\
         I am away. D50261001\r\n",
        hd = env.helpdesk,
        id = unique("ooo")
    );
    stack
        .send_smtp(&partner, &[&env.helpdesk], auto.as_bytes())
        .await;
    let limit = Duration::from_secs(30);
    assert_eq!(
        stack.wait_count(&env.helpdesk, REVIEW, 1, limit).await,
        1,
        "{}",
        env.log()
    );
    assert_eq!(
        stack.wait_count(&env.helpdesk, IGNORED, 1, limit).await,
        1,
        "{}",
        env.log()
    );
    assert_eq!(stack.count(&env.helpdesk, "INBOX").await, 0);

    let (code, json) = td.health().expect("/healthz answers");
    assert_eq!(code, 200, "{json}");
    assert_eq!(json["status"], "ok");
    assert!(json["inbound"]["last_fetch_ok"].is_string(), "{json}");
    assert!(json["outbound"]["last_send_ok"].is_string(), "{json}");
    assert_eq!(json["outbound"]["sent"], 1);

    let status = td.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "graceful stop failed: {status}\n{}",
        env.log()
    );
    // Only the one reply went out; the database agrees.
    assert_eq!(stack.count(&partner, "INBOX").await, 1);
    let app = env.app().await;
    assert_eq!(
        sql_count(&app, "SELECT COUNT(*) FROM inbound_messages").await,
        3
    );
    assert_eq!(
        sql_count(&app, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'").await,
        1
    );
    let log = env.log();
    assert!(log.contains("IMAP connected"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_reads_mail_marked_seen_elsewhere_and_never_loads_an_oversize_mail() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    let mut setup = Setup::plain(&stack);
    setup.mail_extra = "max_message_bytes = 65536".into();
    let env = E2e::new(&stack, setup).await;
    let partner = format!("{}@huadong.example.cn", unique("wang"));
    for i in 0..2 {
        let mid = format!("{}@huadong.example.cn", unique(&format!("zh{i}")));
        stack.deliver_lmtp(
            &partner,
            &env.helpdesk,
            &request(&partner, &env.helpdesk, &mid, "请查询 D20261001"),
        );
    }
    let big = format!(
        "From: {partner}\r\nTo: {hd}\r\nSubject: Trial Endpoint Tracking Request\r\n\
         Message-ID: <{id}>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nD20261001\r\n{pad}\r\n",
        hd = env.helpdesk,
        id = unique("big"),
        pad = "x".repeat(76).repeat(2000).as_str()
    );
    stack.deliver_lmtp(&partner, &env.helpdesk, big.as_bytes());
    // Somebody read them in another client first: \Seen must not hide them from trialdesk.
    stack.mark_all_seen(&env.helpdesk, "INBOX").await;

    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok, "run --once failed:\n{out}\n{err}");
    assert!(out.contains("read 3 mail(s)"), "{out}");
    assert!(out.contains("answered 2, set aside for review 1"), "{out}");
    assert!(out.contains("sent 2 mail(s)"), "{out}");

    assert_eq!(
        stack
            .wait_count(&partner, "INBOX", 2, Duration::from_secs(20))
            .await,
        2
    );
    assert_eq!(stack.count(&env.helpdesk, "INBOX").await, 0);
    assert_eq!(stack.count(&env.helpdesk, ANSWERED).await, 2);
    assert_eq!(stack.count(&env.helpdesk, REVIEW).await, 1);
    let app = env.app().await;
    let reasons = app.store.review_counts().await.unwrap();
    assert!(
        reasons.iter().any(|(r, n)| r == "oversize" && *n == 1),
        "{reasons:?}"
    );
    // Only the header section of the big mail was read; nothing of it is stored as raw.
    assert_eq!(
        sql_count(
            &app,
            "SELECT COUNT(*) FROM inbound_messages WHERE raw IS NULL AND size_bytes > 65536"
        )
        .await,
        1
    );

    // Nothing left: a second run reads nothing and sends nothing.
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("read 0 mail(s)"), "{out}");
    assert_eq!(stack.count(&partner, "INBOX").await, 2);
}

/// Servers without MOVE (and without UIDPLUS) are common; Dovecot offers both, so the test
/// hides them with `imap.ignore_capabilities` and trialdesk takes the COPY + `\Deleted`
/// (+ `UID EXPUNGE`) path against the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_move_mail_is_copied_flagged_and_never_read_twice() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    for (ignored, left_in_inbox) in [(r#"["MOVE"]"#, 0), (r#"["move", "UIDPLUS"]"#, 2)] {
        let mut setup = Setup::plain(&stack);
        setup.imap_extra = format!("ignore_capabilities = {ignored}");
        let env = E2e::new(&stack, setup).await;
        let partner = format!("{}@huadong.example.cn", unique("wang"));
        for i in 0..2 {
            let mid = format!("{}@huadong.example.cn", unique(&format!("nomove{i}")));
            stack.deliver_lmtp(
                &partner,
                &env.helpdesk,
                &request(&partner, &env.helpdesk, &mid, "请查询 D20261001"),
            );
        }

        let (ok, out, err) = env.cli(&["run", "--once"]);
        assert!(ok, "{ignored}: run --once failed:\n{out}\n{err}");
        assert!(out.contains("read 2 mail(s)"), "{ignored}: {out}");
        assert!(out.contains("answered 2"), "{ignored}: {out}");
        assert!(err.contains("no MOVE"), "{ignored}: {err}");
        assert_eq!(stack.count(&env.helpdesk, ANSWERED).await, 2, "{ignored}");
        // With UIDPLUS the originals are expunged by UID; without, they stay flagged
        // \Deleted (another client's EXPUNGE removes them) and trialdesk remembers them.
        assert_eq!(
            stack.count(&env.helpdesk, "INBOX").await,
            left_in_inbox,
            "{ignored}"
        );

        let (ok, out, err) = env.cli(&["run", "--once"]);
        assert!(ok, "{ignored}: {out}\n{err}");
        assert!(out.contains("read 0 mail(s)"), "{ignored}: {out}");
        assert_eq!(
            stack
                .wait_count(&partner, "INBOX", 2, Duration::from_secs(20))
                .await,
            2,
            "{ignored}"
        );
        // Nothing arrives late: exactly one reply per request.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(stack.count(&partner, "INBOX").await, 2, "{ignored}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_what_works_and_what_does_not_without_printing_secrets() {
    let Some(stack) = Stack::or_skip() else {
        return;
    };
    let env = E2e::new(&stack, Setup::plain(&stack)).await;
    let (ok, out, err) = env.cli(&["check"]);
    assert!(ok, "check failed:\n{out}\n{err}");
    for needle in [
        "✓ database",
        "✓ imap connect to 127.0.0.1",
        "✓ imap login as",
        "✓ imap mailbox \"INBOX\"",
        "IDLE, MOVE, UIDPLUS",
        "✓ imap outcome folders",
        "✓ smtp connect to 127.0.0.1",
        "all ",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    assert!(!out.contains('✗'), "{out}");
    assert!(
        !out.contains(&stack.password),
        "the password leaked:\n{out}"
    );

    // A wrong password: the login line fails with the server's words, the exit status says so.
    let wrong = "Wr0ng-Pa55word-xyz";
    let (ok, out, err) = env.cli_env(&["check"], &[("TRIALDESK__IMAP__PASSWORD", wrong)]);
    assert!(!ok, "check passed with a wrong password:\n{out}");
    assert!(out.contains("✗ imap login as"), "{out}");
    assert!(out.contains("refused"), "{out}");
    assert!(
        !out.contains(wrong) && !err.contains(wrong),
        "secret printed:\n{out}\n{err}"
    );
    assert!(err.contains("check(s) failed"), "{err}");

    // Nothing listening on the SMTP port.
    let port = common::mailstack::free_port().to_string();
    let (ok, out, _) = env.cli_env(&["check"], &[("TRIALDESK__SMTP__PORT", &port)]);
    assert!(!ok);
    assert!(
        out.contains(&format!("✗ smtp connect to 127.0.0.1:{port}")),
        "{out}"
    );
}

/// Bounded listing against the real server: windows of 3 UIDs (`imap.list_window`), a
/// mailbox of many windows with a gap of expunged UIDs wider than one round's windows
/// (16 × 3), read by `run --once`: every request answered exactly once, then nothing twice,
/// and mail that arrives later (above where the listing stopped) is read too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_listing_window_reads_a_mailbox_with_gaps_exactly_once() {
    use futures::TryStreamExt;

    let Some(stack) = Stack::or_skip() else {
        return;
    };
    let mut setup = Setup::plain(&stack);
    setup.imap_extra = "list_window = 3\nbatch_size = 4".into();
    let env = E2e::new(&stack, setup).await;
    let partners = common::mailstack::partners(17);
    let filler = format!("{}@pacrim.example.com", unique("filler"));
    // UIDs 1..=5 and 61..=70 are requests from 15 partners; 6..=60 are expunged below.
    let mut sent = std::collections::HashMap::new();
    let deliver = |partner: &str, loan: &str| {
        let mid = format!("{}@{}", unique("win"), partner.split('@').nth(1).unwrap());
        let body = format!("Please check {loan} for us.");
        stack.deliver_lmtp(
            partner,
            &env.helpdesk,
            &request(partner, &env.helpdesk, &mid, &body),
        );
        mid
    };
    for (p, loan) in &partners[..5] {
        sent.insert(deliver(p, loan), p.clone());
    }
    for _ in 6..=60 {
        deliver(&filler, "D50261001");
    }
    for (p, loan) in &partners[5..15] {
        sent.insert(deliver(p, loan), p.clone());
    }
    let mut s = stack.session(&env.helpdesk).await;
    s.select("INBOX").await.unwrap();
    let _: Vec<_> = s
        .uid_store("6:60", "+FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let _: Vec<_> = s.expunge().await.unwrap().try_collect().await.unwrap();
    let _ = s.logout().await;
    assert_eq!(stack.count(&env.helpdesk, "INBOX").await, 15);

    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok, "run --once failed:\n{out}\n{err}");
    assert!(out.contains("read 15 mail(s)"), "{out}\n{err}");
    assert!(out.contains("answered 15"), "{out}");
    assert_eq!(stack.count(&env.helpdesk, "INBOX").await, 0);
    assert_eq!(stack.count(&env.helpdesk, ANSWERED).await, 15);
    let got =
        common::mailstack::wait_answers(&stack, &partners[..15], &sent, Duration::from_secs(30))
            .await;
    assert_eq!(common::mailstack::assert_one_answer_each(&sent, &got), 0);

    // Nothing read twice; then two new mails (UIDs 71 and 72) are read.
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("read 0 mail(s)"), "{out}");
    let mut later = std::collections::HashMap::new();
    for (p, loan) in &partners[15..] {
        later.insert(deliver(p, loan), p.clone());
    }
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("read 2 mail(s)"), "{out}\n{err}");
    let got =
        common::mailstack::wait_answers(&stack, &partners[15..], &later, Duration::from_secs(30))
            .await;
    assert_eq!(common::mailstack::assert_one_answer_each(&later, &got), 0);
    // Exactly one reply per request, none late.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut total = 0;
    for (p, _) in &partners {
        total += stack.count(p, "INBOX").await;
    }
    assert_eq!(total, 17);
}
