//! Two robots answering each other: `trialdesk run` against a naive auto-responder in a
//! partner's domain on the same Postfix. The robot reads its mailbox over IMAP and answers
//! EVERY mail it gets — without any auto-reply header, subject kept with `Re:`, our text quoted
//! (so its answer still reads like a tracking request with a loan number) — and the first time
//! it also bounces our mail straight back and forwards it as an attachment, as misconfigured
//! forwarding rules do.
//!
//! What must hold: our own mail coming back is recognised and ignored; the per-recipient rate
//! limit ladder (short windows here: 3 replies per 15 s, 5 per 60 s, standing in for the
//! default 10 per 10 min and 25 per hour) caps what reaches the robot in every window; the
//! mails over the limit land in the review queue as `rate_limited`; the exchange then stops
//! by itself — and once the windows have passed, a new request is answered again. `/metrics` and `/healthz` of the
//! running binary tell the same story.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use tokio_util::sync::CancellationToken;

use common::mailstack::{request, unique, E2e, Setup, Stack};
use common::Reply;

/// What the robot received.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    reply: Reply,
}

/// The auto-responder: polls its INBOX and answers every new mail through Postfix.
async fn robot(
    stack: Stack,
    me: String,
    helpdesk: String,
    got: Arc<Mutex<Vec<Received>>>,
    stop: CancellationToken,
) {
    let mut answered: HashSet<u32> = HashSet::new();
    let mut n = 0u32;
    while !stop.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut s = stack.session(&me).await;
        // The mailbox exists from the first delivery on.
        if s.select("INBOX").await.is_err() {
            let _ = s.logout().await;
            continue;
        }
        let uids = s.uid_search("ALL").await.expect("UID SEARCH");
        let new: Vec<u32> = uids.into_iter().filter(|u| !answered.contains(u)).collect();
        if new.is_empty() {
            let _ = s.logout().await;
            continue;
        }
        let set: Vec<String> = new.iter().map(|u| u.to_string()).collect();
        let fetched: Vec<_> = s
            .uid_fetch(set.join(","), "(UID BODY.PEEK[])")
            .await
            .expect("UID FETCH")
            .try_collect()
            .await
            .expect("UID FETCH items");
        let _ = s.logout().await;
        let mut mails: Vec<(u32, Vec<u8>)> = fetched
            .iter()
            .filter_map(|f| Some((f.uid?, f.body()?.to_vec())))
            .collect();
        mails.sort_by_key(|(uid, _)| *uid);
        for (uid, raw) in mails {
            answered.insert(uid);
            let reply = Reply::parse(raw.clone());
            let first = got.lock().unwrap().is_empty();
            got.lock().unwrap().push(Received {
                at: Instant::now(),
                reply: reply.clone(),
            });
            n += 1;
            let quoted: String = reply.text.lines().map(|l| format!("> {l}\r\n")).collect();
            let answer = format!(
                "From: Pacrim Service Desk <{me}>\r\nTo: <{helpdesk}>\r\nSubject: Re: {subject}\r\n\
                 Message-ID: <robot-{n}-{tag}@pacrim.example.com>\r\nIn-Reply-To: <{mid}>\r\n\
                 References: <{mid}>\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
                 Thank you for contacting the Pacrim service desk. Your message has been\r\n\
                 received and is being processed.\r\n\r\n\
                 On {date}, {from} wrote:\r\n{quoted}",
                subject = reply.subject,
                tag = rand::random::<u32>(),
                mid = reply.message_id,
                date = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S +0000"),
                from = reply.from,
            );
            stack.send_smtp(&me, &[&helpdesk], answer.as_bytes()).await;
            if first {
                // A forwarding rule pointing back: our mail, byte for byte, to the helpdesk.
                stack.send_smtp(&me, &[&helpdesk], &raw).await;
                // A forward as an attachment, subject kept (no "Fwd:" a person would add).
                let forward = format!(
                    "From: Pacrim Service Desk <{me}>\r\nTo: <{helpdesk}>\r\nSubject: Re: {subject}\r\n\
                     Message-ID: <robot-fwd-{tag}@pacrim.example.com>\r\nDate: {date}\r\n\
                     MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
                     --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attached message.\r\n\
                     --b1\r\nContent-Type: message/rfc822\r\n\r\n{original}\r\n--b1--\r\n",
                    subject = reply.subject,
                    tag = rand::random::<u32>(),
                    date = jiff::Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S +0000"),
                    original = String::from_utf8_lossy(&raw),
                );
                stack.send_smtp(&me, &[&helpdesk], forward.as_bytes()).await;
            }
        }
    }
}

/// `GET path` on the running binary's web listener: (status, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// One sample of `/metrics` (0 when absent).
fn metric(port: u16, series: &str) -> f64 {
    let (status, text) = http_get(port, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

/// Waits until `f` holds (checked every 200 ms), at most `limit`.
async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const RATE_LIMITED: &str = "trialdesk_replies_rate_limited_total";
const IGNORED_AUTOMATED: &str = "trialdesk_decisions_total{kind=\"automated\",action=\"ignore\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_naive_auto_responder_is_answered_only_up_to_the_rate_limit_ladder() {
    let stack = Stack::get();
    let mut setup = Setup::plain(&stack);
    setup.extra = "[[outbox.rate_limits]]\nwindow = \"15s\"\nmax = 3\n\n\
                   [[outbox.rate_limits]]\nwindow = \"60s\"\nmax = 5\n"
        .into();
    let env = E2e::new(&stack, setup).await;
    let me = format!("{}@pacrim.example.com", unique("desk-robot"));
    let mut td = env.spawn();
    td.wait_connected(Duration::from_secs(30));
    let port = env.web_port;

    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let stop = CancellationToken::new();
    let bot = tokio::spawn(robot(
        stack.clone(),
        me.clone(),
        env.helpdesk.clone(),
        got.clone(),
        stop.clone(),
    ));
    let received = || got.lock().unwrap().len();

    // Phase 1: one request starts the exchange; the 15 s step stops it after 3 replies.
    let started = Instant::now();
    let mid = format!("{}@pacrim.example.com", unique("start"));
    stack
        .send_smtp(
            &me,
            &[&env.helpdesk],
            &request(&me, &env.helpdesk, &mid, "Please check D50261001."),
        )
        .await;
    until(
        Duration::from_secs(60),
        "the first rate-limited mail",
        || metric(port, RATE_LIMITED) >= 1.0,
    )
    .await;
    // Our mail bounced back and forwarded back was recognised as ours, not answered.
    until(Duration::from_secs(30), "the returned own mail", || {
        metric(port, IGNORED_AUTOMATED) >= 2.0
    })
    .await;
    assert_eq!(received(), 3, "{}", env.log());
    let phase1_end = Instant::now();
    eprintln!(
        "phase 1: 3 replies, then limited, after {:?}",
        started.elapsed()
    );

    // Phase 2: a new request once the 15 s window has passed; the 60 s step (5) allows 2 more.
    tokio::time::sleep(Duration::from_secs(16)).await;
    assert_eq!(received(), 3, "the exchange stopped at the limit");
    let mid = format!("{}@pacrim.example.com", unique("again"));
    stack
        .send_smtp(
            &me,
            &[&env.helpdesk],
            &request(&me, &env.helpdesk, &mid, "Please check D50261001 again."),
        )
        .await;
    until(
        Duration::from_secs(60),
        "the second rate-limited mail",
        || metric(port, RATE_LIMITED) >= 2.0,
    )
    .await;
    assert_eq!(received(), 5, "{}", env.log());
    eprintln!(
        "phase 2: 2 more replies, then limited, {:?} after phase 1",
        phase1_end.elapsed()
    );

    // Phase 3: once the first three replies are older than the 60 s window, the ladder lets
    // a new request through again (3 more, the 15 s step), and the robot is stopped again.
    let third = got.lock().unwrap()[2].at;
    let relax = (third + Duration::from_secs(61)).saturating_duration_since(Instant::now());
    tokio::time::sleep(relax).await;
    assert_eq!(received(), 5, "the exchange stayed stopped");
    let mid = format!("{}@pacrim.example.com", unique("later"));
    stack
        .send_smtp(
            &me,
            &[&env.helpdesk],
            &request(&me, &env.helpdesk, &mid, "One more: D50261001."),
        )
        .await;
    until(
        Duration::from_secs(60),
        "the third rate-limited mail",
        || metric(port, RATE_LIMITED) >= 3.0,
    )
    .await;
    assert_eq!(received(), 8, "{}", env.log());
    eprintln!(
        "phase 3: 3 more replies, then limited, {:?} after the start",
        started.elapsed()
    );

    // Quiet: nothing more goes either way.
    let sends = metric(
        port,
        "trialdesk_sends_total{purpose=\"reply\",result=\"sent\"}",
    );
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(received(), 8);
    assert_eq!(metric(port, RATE_LIMITED), 3.0);
    assert_eq!(
        metric(
            port,
            "trialdesk_sends_total{purpose=\"reply\",result=\"sent\"}"
        ),
        sends
    );
    assert_eq!(sends, 8.0);

    // The running binary's view: decisions, review queue, IMAP, build.
    let m = |s: &str| metric(port, s);
    assert_eq!(
        m("trialdesk_decisions_total{kind=\"tracking_request\",action=\"reply\"}"),
        8.0
    );
    assert_eq!(
        m("trialdesk_decisions_total{kind=\"tracking_request\",action=\"review\"}"),
        3.0
    );
    assert_eq!(m(IGNORED_AUTOMATED), 2.0);
    assert_eq!(
        m("trialdesk_review_queue_depth{reason=\"rate_limited\"}"),
        3.0
    );
    assert_eq!(m("trialdesk_mails_fetched_total"), 13.0);
    assert_eq!(m("trialdesk_imap_connected"), 1.0);
    assert_eq!(m("trialdesk_imap_idle_push"), 1.0);
    assert_eq!(m("trialdesk_healthy"), 1.0);
    assert!(m("trialdesk_last_send_success_timestamp_seconds") > 1.7e9);
    assert!(m("trialdesk_fetch_duration_seconds_count") >= 4.0);
    let (status, health) = http_get(port, "/healthz").unwrap();
    assert_eq!(status, 200, "{health}");
    assert!(health.contains(trialdesk::VERSION), "{health}");

    stop.cancel();
    bot.await.expect("robot task");
    td.terminate(Duration::from_secs(30));

    // Every reply the robot got was marked as automatic, though the robot ignored that.
    let got = got.lock().unwrap().clone();
    for r in &got {
        assert_eq!(r.reply.from, env.helpdesk);
        assert_eq!(
            r.reply.header("Auto-Submitted").as_deref(),
            Some("auto-replied")
        );
    }
    // The ladder held in every window, measured at the robot's end (arrival times; a window
    // starting at any reply).
    for (window, max) in [(Duration::from_secs(15), 3), (Duration::from_secs(60), 5)] {
        for (i, r) in got.iter().enumerate() {
            let within = got[i..]
                .iter()
                .filter(|o| o.at.duration_since(r.at) < window)
                .count();
            assert!(
                within <= max,
                "{within} replies within {window:?} from reply {i} (max {max})"
            );
        }
    }
    // Recorded as the ladder says: the over-limit mails wait in review, each saying why.
    let app = env.app().await;
    let items = app
        .store
        .review_items(&trialdesk::store::ReviewFilter {
            reason: Some("rate_limited".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // (The loan the robot asks about has its own shipment_attention item: not this test's.)
    assert_eq!(items.len(), 3, "{items:#?}");
    for item in &items {
        assert_eq!(item.reason, "rate_limited");
        assert!(item.detail.contains(&me), "{}", item.detail);
    }
    assert!(
        items.iter().any(|i| i.detail.contains("within 15s")),
        "{items:#?}"
    );
    assert!(
        items.iter().any(|i| i.detail.contains("within 1m")),
        "{items:#?}"
    );
    // And the IMAP folders agree: 8 answered, 3 to review, the 2 returns ignored.
    assert_eq!(stack.count(&env.helpdesk, "trialdesk.answered").await, 8);
    assert_eq!(stack.count(&env.helpdesk, "trialdesk.review").await, 3);
    assert_eq!(stack.count(&env.helpdesk, "trialdesk.ignored").await, 2);
    assert_eq!(stack.count(&env.helpdesk, "INBOX").await, 0);
}
