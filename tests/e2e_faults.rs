//! Faults through real servers, each asserting nothing lost and nothing answered twice:
//! `kill -9` of trialdesk during a backlog, Dovecot restarted mid-run, Postfix stopped for a
//! while, a mailbox whose UIDVALIDITY changed. The tests here restart shared servers, so they
//! run one at a time.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::mailstack::{
    assert_one_answer_each, partners, request, send_requests, sql_count, unique, wait_answers, E2e,
    Setup, Stack,
};
use common::Reply;
use rand::Rng;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Message-IDs of the mails in `mailbox` of `user`: a folder may hold two copies of one mail
/// when the server died inside a MOVE (copied, not yet expunged) and it was moved again.
async fn ids_in(stack: &Stack, user: &str, mailbox: &str) -> HashSet<String> {
    stack
        .messages(user, mailbox)
        .await
        .into_iter()
        .map(|raw| Reply::parse(raw).message_id)
        .collect()
}

async fn wait_ids(
    stack: &Stack,
    user: &str,
    mailbox: &str,
    n: usize,
    limit: Duration,
) -> HashSet<String> {
    let deadline = Instant::now() + limit;
    loop {
        let ids = ids_in(stack, user, mailbox).await;
        if ids.len() >= n || Instant::now() > deadline {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn wait_sql_zero(env: &E2e, sql: &'static str, limit: Duration) -> i64 {
    let app = env.app().await;
    let deadline = Instant::now() + limit;
    loop {
        let n = sql_count(&app, sql).await;
        if n == 0 || Instant::now() > deadline {
            app.store.close().await;
            return n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_during_a_backlog_loses_nothing_and_answers_once() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let env = E2e::new(&stack, Setup::plain(&stack)).await;
    // 30 partners × 10 requests: within the per-recipient limit of 10 per 10 minutes.
    let partners = partners(30);
    let sent = send_requests(&stack, &env.helpdesk, &partners, 10).await;
    assert_eq!(sent.len(), 300);
    assert_eq!(
        stack
            .wait_count(&env.helpdesk, "INBOX", 300, Duration::from_secs(60))
            .await,
        300,
        "the backlog did not arrive"
    );

    let mut rng = rand::rng();
    let started = Instant::now();
    let mut kills = 0;
    for round in 0..6 {
        let mut td = env.spawn();
        let wait = Duration::from_millis(rng.random_range(200..1500));
        std::thread::sleep(wait);
        if round < 5 {
            td.kill9();
            kills += 1;
        } else {
            // The last interruption is a graceful one: it must finish what it holds.
            let status = td.terminate(Duration::from_secs(20));
            assert!(status.success(), "SIGTERM exit: {status}\n{}", env.log());
        }
        let app = env.app().await;
        let done = sql_count(&app, "SELECT COUNT(*) FROM inbound_messages").await;
        let sent_n = sql_count(&app, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'").await;
        app.store.close().await;
        eprintln!("round {round}: stopped after {wait:?}; recorded {done}, sent {sent_n}");
    }
    let mut td = env.spawn();
    td.wait_connected(Duration::from_secs(30));
    let filed = wait_ids(
        &stack,
        &env.helpdesk,
        "trialdesk.answered",
        300,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        filed,
        sent.keys().cloned().collect::<HashSet<_>>(),
        "not every request was filed as answered:\n{}",
        env.log()
    );
    assert_eq!(
        wait_sql_zero(
            &env,
            "SELECT COUNT(*) FROM outbox WHERE state <> 'sent'",
            Duration::from_secs(60)
        )
        .await,
        0,
        "outbox not drained"
    );
    let got = wait_answers(&stack, &partners, &sent, Duration::from_secs(60)).await;
    eprintln!(
        "backlog of 300 with {kills} kill -9 and one SIGTERM: done in {:?}",
        started.elapsed()
    );
    let status = td.terminate(Duration::from_secs(20));
    assert!(status.success(), "{status}");

    let extra_copies = assert_one_answer_each(&sent, &got);
    // A kill between the relay's "250 OK" and the commit of "sent" can only repeat that one
    // message (same Message-ID, which receiving clients fold together): at most one per kill.
    eprintln!("redelivered copies of the same reply after kill -9: {extra_copies}");
    assert!(
        extra_copies <= kills,
        "{extra_copies} repeated copies for {kills} kills"
    );

    let app = env.app().await;
    assert_eq!(
        sql_count(&app, "SELECT COUNT(*) FROM inbound_messages").await,
        300
    );
    assert_eq!(sql_count(&app, "SELECT COUNT(*) FROM outbox").await, 300);
    assert_eq!(
        sql_count(
            &app,
            "SELECT COUNT(*) FROM review_items WHERE reason <> 'shipment_attention'"
        )
        .await,
        0
    );
    assert_eq!(stack.count(&env.helpdesk, "INBOX").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_restarted_mid_run_is_reconnected_and_nothing_is_lost() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let env = E2e::new(&stack, Setup::plain(&stack)).await;
    let partners = partners(4);
    let mut td = env.spawn();
    td.wait_connected(Duration::from_secs(30));

    let mut sent = send_requests(&stack, &env.helpdesk, &partners, 5).await;
    stack
        .wait_count(
            &env.helpdesk,
            "trialdesk.answered",
            3,
            Duration::from_secs(30),
        )
        .await;
    stack.ctl("restart-dovecot", &[]);
    sent.extend(send_requests(&stack, &env.helpdesk, &partners, 5).await);
    let filed = wait_ids(
        &stack,
        &env.helpdesk,
        "trialdesk.answered",
        40,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        filed,
        sent.keys().cloned().collect::<HashSet<_>>(),
        "{}",
        env.log()
    );
    assert_eq!(stack.count(&env.helpdesk, "INBOX").await, 0);
    let health = td.wait_connected(Duration::from_secs(30));
    assert_eq!(health["status"], "ok", "{health}");
    // Postfix retries what it deferred while Dovecot was down on its own schedule.
    let got = wait_answers(&stack, &partners, &sent, Duration::from_secs(150)).await;
    let status = td.terminate(Duration::from_secs(20));
    assert!(status.success());
    // Copies of one reply can appear when Dovecot died after storing a mail Postfix was
    // delivering and Postfix delivered it again: that is the MTA's at-least-once, not a second
    // answer (trialdesk sent each reply once, see the outbox below).
    let copies = assert_one_answer_each(&sent, &got);
    eprintln!("reply copies redelivered by Postfix across the Dovecot restart: {copies}");
    let log = env.log();
    assert!(
        log.contains("IMAP connection lost"),
        "restart not noticed:\n{log}"
    );
    assert!(
        log.matches("IMAP connected").count() >= 2,
        "no reconnect:\n{log}"
    );
    let app = env.app().await;
    assert_eq!(
        sql_count(&app, "SELECT COUNT(*) FROM inbound_messages").await,
        40
    );
    assert_eq!(
        sql_count(&app, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'").await,
        40
    );
    assert_eq!(
        sql_count(&app, "SELECT COUNT(*) FROM outbox WHERE attempts > 1").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_stopped_for_a_while_delays_replies_but_loses_none() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let env = E2e::new(&stack, Setup::plain(&stack)).await;
    let partners = partners(2);
    let mut td = env.spawn();
    td.wait_connected(Duration::from_secs(30));

    stack.ctl("stop-postfix", &[]);
    let mut sent = HashMap::new();
    for (p, loan) in &partners {
        for _ in 0..5 {
            let id = format!("{}@{}", unique("req"), p.split('@').nth(1).unwrap());
            stack.deliver_lmtp(
                p,
                &env.helpdesk,
                &request(p, &env.helpdesk, &id, &format!("Check {loan}")),
            );
            sent.insert(id, p.clone());
        }
    }
    // Decided and filed at once; the replies wait in the outbox, retried while the relay is away.
    let filed = stack
        .wait_count(
            &env.helpdesk,
            "trialdesk.answered",
            10,
            Duration::from_secs(30),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let app = env.app().await;
    let queued = sql_count(&app, "SELECT COUNT(*) FROM outbox WHERE state = 'queued' AND attempts >= 2 AND last_error IS NOT NULL").await;
    let (_, health) = td.health().unwrap();
    stack.ctl("start-postfix", &[]);
    assert_eq!(filed, 10, "{}", env.log());
    assert_eq!(queued, 10, "replies not retried while Postfix was down");
    assert!(
        health["outbound"]["last_send_error"].is_string(),
        "{health}"
    );

    let got = wait_answers(&stack, &partners, &sent, Duration::from_secs(60)).await;
    assert_eq!(
        wait_sql_zero(
            &env,
            "SELECT COUNT(*) FROM outbox WHERE state <> 'sent'",
            Duration::from_secs(30)
        )
        .await,
        0
    );
    let status = td.terminate(Duration::from_secs(20));
    assert!(status.success());
    assert_eq!(assert_one_answer_each(&sent, &got), 0);
    assert_eq!(
        sql_count(
            &app,
            "SELECT COUNT(*) FROM review_items WHERE reason <> 'shipment_attention'"
        )
        .await,
        0,
        "nothing dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_uidvalidity_rereads_the_mailbox_and_answers_nothing_twice() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let mut setup = Setup::plain(&stack);
    setup.imap_extra = "after_processing = \"flag_seen\"".into();
    let env = E2e::new(&stack, setup).await;
    let partners = partners(1);
    let (p, loan) = &partners[0];
    let mut sent = HashMap::new();
    let deliver = |n: usize, sent: &mut HashMap<String, String>| {
        for _ in 0..n {
            let id = format!("{}@{}", unique("req"), p.split('@').nth(1).unwrap());
            stack.deliver_lmtp(
                p,
                &env.helpdesk,
                &request(p, &env.helpdesk, &id, &format!("Check {loan}")),
            );
            sent.insert(id, p.clone());
        }
    };
    deliver(5, &mut sent);
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok && out.contains("answered 5"), "{out}\n{err}");
    // flag_seen: the mail stays in the inbox, marked read.
    assert_eq!(stack.count(&env.helpdesk, "INBOX").await, 5);

    // Somebody marks it all unread again: trialdesk tracks UIDs, not \Seen, and reads nothing.
    {
        use futures::TryStreamExt;
        let mut s = stack.session(&env.helpdesk).await;
        s.select("INBOX").await.unwrap();
        let _: Vec<_> = s
            .store("1:*", "-FLAGS (\\Seen)")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let _ = s.logout().await;
    }
    let (ok, out, _) = env.cli(&["run", "--once"]);
    assert!(ok && out.contains("read 0 mail(s)"), "{out}");

    // The server renumbers the mailbox (restored backup, migration): a new UIDVALIDITY.
    stack.ctl("set-uidvalidity", &[&env.helpdesk, "INBOX", "4242"]);
    {
        let mut s = stack.session(&env.helpdesk).await;
        let mb = s.examine("INBOX").await.unwrap();
        assert_eq!(mb.uid_validity, Some(4242));
        let _ = s.logout().await;
    }
    deliver(3, &mut sent);
    let (ok, out, err) = env.cli(&["run", "--once"]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("read 8 mail(s)"), "{out}");
    assert!(
        out.contains("answered 3") && out.contains("already handled 5"),
        "{out}"
    );
    assert!(err.is_empty() || !err.contains("ERROR"), "{err}");

    let got = wait_answers(&stack, &partners, &sent, Duration::from_secs(20)).await;
    assert_eq!(assert_one_answer_each(&sent, &got), 0);
    let app = env.app().await;
    assert_eq!(
        sql_count(&app, "SELECT COUNT(*) FROM inbound_messages").await,
        8
    );
    assert_eq!(
        sql_count(
            &app,
            "SELECT COUNT(*) FROM imap_mailboxes WHERE uidvalidity = 4242"
        )
        .await,
        1
    );
    // A last run: everything is known under the new UIDVALIDITY too.
    let (ok, out, _) = env.cli(&["run", "--once"]);
    assert!(ok && out.contains("read 0 mail(s)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_turns_503_while_the_mailbox_is_unreachable_and_recovers() {
    let _serial = SERIAL.lock().await;
    let stack = Stack::get();
    let mut setup = Setup::plain(&stack);
    setup.imap_extra = "poll_interval = \"1s\"".into();
    let env = E2e::new(&stack, setup).await;
    // Tighten the safety net and the silence limit for this test only.
    let config = std::fs::read_to_string(&env.config_path)
        .unwrap()
        .replace(
            "safety_poll_interval = \"20s\"",
            "safety_poll_interval = \"1s\"",
        )
        .replace("max_fetch_silence = \"1m\"", "max_fetch_silence = \"3s\"");
    std::fs::write(&env.config_path, config).unwrap();
    let mut td = env.spawn();
    let json = td.wait_connected(Duration::from_secs(30));
    assert_eq!(json["status"], "ok", "{json}");

    stack.ctl("stop-dovecot", &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (code, json) = loop {
        let (code, json) = td.health().expect("healthz answers");
        if code == 503 || Instant::now() > deadline {
            break (code, json);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stack.ctl("start-dovecot", &[]);
    assert_eq!(code, 503, "{json}");
    assert_eq!(json["status"], "unhealthy");
    let reason = json["reasons"][0].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("no successful fetch"), "{reason}");
    assert!(
        reason.contains("cannot connect"),
        "the IMAP error is named: {reason}"
    );
    assert_eq!(json["imap"]["connected"], false, "{json}");

    // Back: reconnected and healthy again without a restart of trialdesk.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, json)) = td.health() {
            assert_eq!(json["imap"]["connected"], true, "{json}");
            break;
        }
        assert!(Instant::now() < deadline, "did not recover:\n{}", env.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(td.terminate(Duration::from_secs(20)).success());
}
