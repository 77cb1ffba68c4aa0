//! Faults of the relay, through the real SMTP transport against a scripted SMTP peer (a tiny
//! TCP server in the test) and the outbox sender on the injectable clock:
//! - relay-level failures (connection refused, login refused, 421) back the sender off as a
//!   whole, count no attempt, open one `relay_down` review item and close it again;
//! - a mail whose final reply never comes, or whose connection drops after the dot, is
//!   "outcome unknown": not resent at once, only after `outbox.unknown_outcome_delay`;
//! - per-message retries are bounded by time (`outbox.give_up_after`), not by a count.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{mail, TestEnv};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use trialdesk::clock::ManualClock;
use trialdesk::config::{Secret, SmtpConfig, TlsMode};
use trialdesk::outbound::smtp::SmtpTransport;
use trialdesk::outbound::{Outgoing, SendError, SendFuture, Sender, Transport};

/// How the scripted peer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    Accept,
    RefuseAuth,
    Close421AtMail,
    TempfailRcpt,
    /// Takes the whole message and never answers the final dot.
    StallAfterDot,
    /// Takes the whole message and closes the connection instead of answering.
    DropAfterDot,
}

struct Peer {
    port: u16,
    script: Arc<Mutex<Script>>,
    /// Messages received completely (final dot seen), whatever the answer.
    dots: Arc<AtomicUsize>,
    /// Messages answered with 250.
    accepted: Arc<Mutex<Vec<String>>>,
}

impl Peer {
    async fn start(script: Script) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(script));
        let dots = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let (s, d, a) = (script.clone(), dots.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (s, d, a) = (s.clone(), d.clone(), a.clone());
                tokio::spawn(async move {
                    let _ = session(sock, s, d, a).await;
                });
            }
        });
        Peer {
            port,
            script,
            dots,
            accepted,
        }
    }

    fn set(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }
}

async fn session(
    sock: tokio::net::TcpStream,
    script: Arc<Mutex<Script>>,
    dots: Arc<AtomicUsize>,
    accepted: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r);
    w.write_all(b"220 peer.test ESMTP scripted\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let now = *script.lock().unwrap();
        let upper = line.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-peer.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("AUTH") {
            if now == Script::RefuseAuth {
                b"535 5.7.8 Authentication credentials invalid\r\n"
            } else {
                b"235 2.7.0 Authentication successful\r\n"
            }
        } else if upper.starts_with("MAIL") {
            if now == Script::Close421AtMail {
                w.write_all(b"421 4.3.2 Service shutting down\r\n").await?;
                return Ok(());
            }
            b"250 2.1.0 Ok\r\n"
        } else if upper.starts_with("RCPT") {
            if now == Script::TempfailRcpt {
                b"450 4.2.0 Mailbox busy\r\n"
            } else {
                b"250 2.1.5 Ok\r\n"
            }
        } else if upper.starts_with("DATA") {
            w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut body = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                body.push_str(&line);
            }
            dots.fetch_add(1, Ordering::SeqCst);
            let after = *script.lock().unwrap();
            match after {
                Script::StallAfterDot => {
                    // Hold the connection open without a word until the client gives up.
                    let mut rest = String::new();
                    while lines.read_line(&mut rest).await? > 0 {
                        rest.clear();
                    }
                    return Ok(());
                }
                Script::DropAfterDot => return Ok(()),
                _ => {}
            }
            accepted.lock().unwrap().push(body);
            b"250 2.0.0 Ok: queued\r\n"
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            b"250 2.0.0 Ok\r\n"
        };
        w.write_all(answer).await?;
    }
}

fn transport(port: u16, data_timeout: Duration) -> SmtpTransport {
    let config = SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        username: Some("helpdesk".into()),
        password: Some(Secret::new("pw")),
        timeout: Duration::from_secs(5),
        data_timeout,
        ..SmtpConfig::default()
    };
    SmtpTransport::new(&config, Path::new(".")).unwrap()
}

async fn send(t: &SmtpTransport, to: &str) -> Result<(), SendError> {
    let to = vec![to.to_string()];
    t.send(Outgoing {
        envelope_from: "helpdesk@example.test",
        recipients: &to,
        body: b"From: helpdesk@example.test\r\nTo: x@example.org\r\nSubject: t\r\n\r\nbody\r\n",
    })
    .await
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn relay_level_failures_are_told_apart_from_message_level_ones() {
    let peer = Peer::start(Script::Accept).await;
    let t = transport(peer.port, Duration::from_secs(5));
    send(&t, "a@example.org").await.unwrap();

    let down = transport(closed_port(), Duration::from_secs(5));
    match send(&down, "a@example.org").await {
        Err(SendError::Relay(text)) => assert!(text.contains("cannot connect"), "{text}"),
        other => panic!("connection refused is relay-level: {other:?}"),
    }
    peer.set(Script::RefuseAuth);
    let t = transport(peer.port, Duration::from_secs(5));
    match send(&t, "a@example.org").await {
        Err(SendError::Relay(text)) => assert!(text.contains("535"), "{text}"),
        other => panic!("a refused login is relay-level: {other:?}"),
    }
    peer.set(Script::Close421AtMail);
    match send(&t, "a@example.org").await {
        Err(SendError::Relay(text)) => assert!(text.contains("421"), "{text}"),
        other => panic!("421 is relay-level: {other:?}"),
    }
    peer.set(Script::TempfailRcpt);
    match send(&t, "a@example.org").await {
        Err(SendError::Transient(text)) => assert!(text.contains("450"), "{text}"),
        other => panic!("450 to RCPT is about this message: {other:?}"),
    }
    assert_eq!(
        peer.dots.load(Ordering::SeqCst),
        1,
        "only the first mail got to DATA"
    );
}

#[tokio::test]
async fn no_reply_to_the_final_dot_is_an_unknown_outcome_and_not_resent_at_once() {
    let peer = Peer::start(Script::StallAfterDot).await;
    let t = transport(peer.port, Duration::from_millis(300));
    match send(&t, "a@example.org").await {
        Err(SendError::Unknown(text)) => assert!(text.contains("data_timeout"), "{text}"),
        other => panic!("a silent relay after the dot: {other:?}"),
    }
    assert_eq!(
        peer.dots.load(Ordering::SeqCst),
        1,
        "sent once, not again on a new connection"
    );

    peer.set(Script::DropAfterDot);
    let t = transport(peer.port, Duration::from_secs(5));
    // A pooled connection first (so a retry on a fresh one would be tempting), then the drop.
    peer.set(Script::Accept);
    send(&t, "a@example.org").await.unwrap();
    peer.set(Script::DropAfterDot);
    match send(&t, "a@example.org").await {
        Err(SendError::Unknown(_)) => {}
        other => panic!("a connection dropped after the dot: {other:?}"),
    }
    assert_eq!(
        peer.dots.load(Ordering::SeqCst),
        3,
        "the dropped mail went out once"
    );
}

/// Sends through whatever transport the test switches to.
struct Switch(Mutex<Arc<dyn Transport>>);

impl Switch {
    fn set(&self, t: Arc<dyn Transport>) {
        *self.0.lock().unwrap() = t;
    }
}

impl Transport for Switch {
    fn send<'a>(&'a self, mail: Outgoing<'a>) -> SendFuture<'a> {
        let t = self.0.lock().unwrap().clone();
        Box::pin(async move { t.send(mail).await })
    }
    fn describe(&self) -> String {
        "smtp://scripted".into()
    }
}

fn sender(env: &TestEnv, transport: Arc<dyn Transport>, clock: &ManualClock) -> Sender {
    let config = env.app.config.outbox.clone();
    Sender::new(
        env.app.store.clone(),
        transport,
        config,
        "w1".into(),
        Arc::new(clock.clone()),
        Arc::new(Notify::new()),
    )
}

/// Queues one reply (through the pipeline) and one reminder.
async fn queue_reply_and_reminder(env: &TestEnv, clock: &ManualClock) {
    env.deliver(
        "1.a.host",
        &mail(
            "ops@pacrim.example.com",
            "Trial Endpoint Tracking Request",
            "q-1@pacrim.example.com",
            "",
            "D50261001",
        ),
    );
    env.drain_inbox().await;
    let date = |s: &str| s.parse::<jiff::civil::Date>().unwrap();
    let now = clock.now_ms();
    let outcome = env
        .app
        .store
        .queue_reminder(
            &trialdesk::store::NewReminder {
                trial_id: "T-1002".into(),
                kind: "expires_in_7_days".into(),
                audience: "customer".into(),
                expires_on: date("2026-12-30"),
                due_on: date("2026-12-23"),
                recipients: vec!["itdesk@zhongshan-univ.example.cn".into()],
                language: "zh".into(),
            },
            &trialdesk::store::NewOutbox {
                purpose: "reminder".into(),
                message_id: "<r-1@example.test>".into(),
                envelope_from: "helpdesk@example.test".into(),
                recipients: vec!["itdesk@zhongshan-univ.example.cn".into()],
                rate_key: "itdesk@zhongshan-univ.example.cn".into(),
                subject: "reminder".into(),
                body: b"Subject: reminder\r\n\r\nyour trial ends\r\n".to_vec(),
            },
            now,
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        trialdesk::store::ReminderOutcome::Recorded { .. }
    ));
}

trait NowMs {
    fn now_ms(&self) -> i64;
}
impl NowMs for ManualClock {
    fn now_ms(&self) -> i64 {
        use trialdesk::clock::Clock;
        self.now().as_millisecond()
    }
}

async fn review_reasons(env: &TestEnv, state: &str) -> Vec<String> {
    let filter = trialdesk::store::ReviewFilter {
        state: state.into(),
        ..Default::default()
    };
    env.app
        .store
        .review_items(&filter)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.reason)
        // Items the fixture import opens about its shipments are not about sending.
        .filter(|r| r != "shipment_attention")
        .collect()
}

#[tokio::test]
async fn a_day_long_relay_outage_ends_with_every_mail_sent_once_and_no_dead_letter() {
    let env = TestEnv::new("").await;
    let clock = ManualClock::new(jiff::Timestamp::now());
    queue_reply_and_reminder(&env, &clock).await;
    let peer = Peer::start(Script::RefuseAuth).await;
    let refused: Arc<dyn Transport> = Arc::new(transport(closed_port(), Duration::from_secs(5)));
    let auth_refused: Arc<dyn Transport> = Arc::new(transport(peer.port, Duration::from_secs(5)));
    let switch = Arc::new(Switch(Mutex::new(refused)));
    let s = sender(&env, switch.clone(), &clock);
    let stats = s.stats();
    let never = tokio_util::sync::CancellationToken::new();
    let start = clock.now_ms();
    let mut steps_with_work = 0;
    // 24 simulated hours: 12 with the connection refused, 12 with the login refused.
    while clock.now_ms() - start < 24 * 3600 * 1000 {
        if clock.now_ms() - start >= 12 * 3600 * 1000 {
            switch.set(auth_refused.clone());
        }
        if s.step(&never).await.unwrap() == trialdesk::worker::Outcome::Done {
            steps_with_work += 1;
        }
        clock.advance(Duration::from_secs(60));
    }
    assert_eq!(peer.dots.load(Ordering::SeqCst), 0);
    assert!(stats.relay_down_since_ms.load(Ordering::SeqCst) == start);
    // Backed off as a whole: a capped backoff (retry_max 1h) probes ~once an hour, not once a
    // minute, and with one mail at a time.
    assert!(
        (20..=40).contains(&steps_with_work),
        "probes in 24 h: {steps_with_work}"
    );
    assert_eq!(review_reasons(&env, "open").await, vec!["relay_down"]);
    let rows = env.app.store.outbox_pending().await.unwrap();
    assert_eq!(rows.iter().map(|p| p.count).sum::<i64>(), 2);
    for id in 1..=2 {
        let row = env.app.store.outbox_row(id).await.unwrap().unwrap();
        assert_eq!(row.state, "queued");
        assert_eq!(row.attempts, 0, "relay outages count no attempt: {row:?}");
    }

    // The relay is back.
    peer.set(Script::Accept);
    switch.set(Arc::new(transport(peer.port, Duration::from_secs(5))));
    for _ in 0..120 {
        s.step(&never).await.unwrap();
        clock.advance(Duration::from_secs(60));
    }
    assert_eq!(
        peer.accepted.lock().unwrap().len(),
        2,
        "each mail sent once"
    );
    assert_eq!(
        env.app.store.outbox_counts().await.unwrap(),
        vec![("sent".to_string(), 2)]
    );
    assert!(review_reasons(&env, "open").await.is_empty());
    assert_eq!(review_reasons(&env, "resolved").await, vec!["relay_down"]);
    assert_eq!(stats.relay_down_since_ms.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_unknown_outcome_waits_the_delay_before_the_one_resend() {
    let env = TestEnv::new("").await;
    let clock = ManualClock::new(jiff::Timestamp::now());
    queue_reply_and_reminder(&env, &clock).await;
    let peer = Peer::start(Script::DropAfterDot).await;
    let s = sender(
        &env,
        Arc::new(transport(peer.port, Duration::from_secs(5))),
        &clock,
    );
    let never = tokio_util::sync::CancellationToken::new();
    // The reply was queued on the app's own clock, a moment after the test clock's start.
    clock.advance(Duration::from_secs(1));
    s.step(&never).await.unwrap();
    // The first mail's connection dropped after the dot; the second went on a new connection
    // and was dropped too.
    assert_eq!(peer.dots.load(Ordering::SeqCst), 2);
    assert_eq!(s.stats().unknown_outcomes.load(Ordering::SeqCst), 2);
    let row = env.app.store.outbox_row(1).await.unwrap().unwrap();
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or("")
            .starts_with("outcome unknown"),
        "{row:?}"
    );
    peer.set(Script::Accept);
    for _ in 0..9 {
        clock.advance(Duration::from_secs(60));
        s.step(&never).await.unwrap();
    }
    assert_eq!(
        peer.dots.load(Ordering::SeqCst),
        2,
        "not resent within 10 minutes"
    );
    clock.advance(Duration::from_secs(61));
    s.step(&never).await.unwrap();
    assert_eq!(peer.dots.load(Ordering::SeqCst), 4);
    assert_eq!(
        env.app.store.outbox_counts().await.unwrap(),
        vec![("sent".to_string(), 2)]
    );
}

/// Scripted answers without a network.
struct Always(SendError, AtomicUsize);

impl Transport for Always {
    fn send<'a>(&'a self, _mail: Outgoing<'a>) -> SendFuture<'a> {
        self.1.fetch_add(1, Ordering::SeqCst);
        let e = self.0.clone();
        Box::pin(async move { Err(e) })
    }
    fn describe(&self) -> String {
        "always".into()
    }
}

#[tokio::test]
async fn per_message_retries_are_bounded_by_time_not_by_a_count() {
    let env = TestEnv::new("").await;
    let clock = ManualClock::new(jiff::Timestamp::now());
    queue_reply_and_reminder(&env, &clock).await;
    let t = Arc::new(Always(
        SendError::Transient("450 4.2.0 mailbox busy".into()),
        AtomicUsize::new(0),
    ));
    let s = sender(&env, t.clone(), &clock);
    let never = tokio_util::sync::CancellationToken::new();
    let start = clock.now_ms();
    // Two and a half days of 4xx: retried (many more than the old 10 attempts), not given up.
    while clock.now_ms() - start < 60 * 3600 * 1000 {
        s.step(&never).await.unwrap();
        clock.advance(Duration::from_secs(300));
    }
    assert!(
        t.1.load(Ordering::SeqCst) > 20,
        "{}",
        t.1.load(Ordering::SeqCst)
    );
    assert!(review_reasons(&env, "open").await.is_empty());
    // Past three days: dead letters, with how long it was tried.
    while clock.now_ms() - start < 74 * 3600 * 1000 {
        s.step(&never).await.unwrap();
        clock.advance(Duration::from_secs(300));
    }
    assert_eq!(
        review_reasons(&env, "open").await,
        vec!["dead_letter", "dead_letter"]
    );
    let row = env.app.store.outbox_row(1).await.unwrap().unwrap();
    assert!(row.last_error.unwrap().contains("gave up after"));
}

/// Cancels the sender's token during its first send (SIGTERM arriving mid-batch).
struct CancelOnSend(tokio_util::sync::CancellationToken, AtomicUsize);

impl Transport for CancelOnSend {
    fn send<'a>(&'a self, _mail: Outgoing<'a>) -> SendFuture<'a> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.cancel();
        Box::pin(async { Ok(()) })
    }
    fn describe(&self) -> String {
        "cancel-on-send".into()
    }
}

#[tokio::test]
async fn shutdown_hands_back_claimed_rows_without_counting_an_attempt() {
    let env = TestEnv::new("").await;
    let clock = ManualClock::new(jiff::Timestamp::now());
    queue_reply_and_reminder(&env, &clock).await;
    clock.advance(Duration::from_secs(1));
    let cancel = tokio_util::sync::CancellationToken::new();
    let t = Arc::new(CancelOnSend(cancel.clone(), AtomicUsize::new(0)));
    let s = sender(&env, t.clone(), &clock);
    s.step(&cancel).await.unwrap();
    assert_eq!(
        t.1.load(Ordering::SeqCst),
        1,
        "the mail in hand is finished"
    );
    let rows: Vec<_> = futures::future::join_all((1..=2).map(|id| {
        let store = env.app.store.clone();
        async move { store.outbox_row(id).await.unwrap().unwrap() }
    }))
    .await;
    let released: Vec<_> = rows.iter().filter(|r| r.state == "queued").collect();
    assert_eq!(released.len(), 1, "{rows:?}");
    assert_eq!(
        released[0].attempts, 0,
        "no attempt counted: {:?}",
        released[0]
    );
    // Due at once for the next sender, not after a lease.
    let other = sender(&env, t.clone(), &clock);
    other
        .step(&tokio_util::sync::CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(t.1.load(Ordering::SeqCst), 2);
}

/// Panics when sending the reminder, delivers everything else.
struct PanicOnReminder(AtomicUsize);

impl Transport for PanicOnReminder {
    fn send<'a>(&'a self, mail: Outgoing<'a>) -> SendFuture<'a> {
        if mail.recipients.iter().any(|r| r.contains("zhongshan")) {
            panic!("injected transport fault");
        }
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
    fn describe(&self) -> String {
        "panic-on-reminder".into()
    }
}

#[tokio::test]
async fn a_panic_while_sending_sets_one_row_aside_and_the_sender_goes_on() {
    let env = TestEnv::new("").await;
    let clock = ManualClock::new(jiff::Timestamp::now());
    queue_reply_and_reminder(&env, &clock).await;
    clock.advance(Duration::from_secs(1));
    let t = Arc::new(PanicOnReminder(AtomicUsize::new(0)));
    let s = sender(&env, t.clone(), &clock);
    s.drain().await.unwrap();
    assert_eq!(t.0.load(Ordering::SeqCst), 1, "the reply went out");
    let mut counts = env.app.store.outbox_counts().await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        vec![("dead".to_string(), 1), ("sent".to_string(), 1)]
    );
    let items = env
        .app
        .store
        .review_items(&Default::default())
        .await
        .unwrap();
    assert!(
        items
            .iter()
            .any(|i| i.reason == "dead_letter" && i.detail.contains("injected transport fault")),
        "{items:?}"
    );
}

async fn exec(env: &TestEnv, sql: &'static str) {
    use trialdesk::store::Backend;
    match env.app.store.backend() {
        Backend::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        Backend::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
    .unwrap();
}

#[tokio::test]
async fn a_reminder_for_a_trial_converted_or_extended_meanwhile_is_cancelled_at_send_time() {
    for (change, why) in [
        ("UPDATE trials SET converted = TRUE WHERE trial_id = 'T-1002'", "converted"),
        (
            "UPDATE trials SET expires_on = '2027-01-30', extended = TRUE WHERE trial_id = 'T-1002'",
            "extended (expires 2027-01-30, was 2026-12-30)",
        ),
    ] {
        let env = TestEnv::new("").await;
        let clock = ManualClock::new(jiff::Timestamp::now());
        queue_reply_and_reminder(&env, &clock).await;
        exec(&env, change).await;
        clock.advance(Duration::from_secs(1));
        let peer = Peer::start(Script::Accept).await;
        let s = sender(&env, Arc::new(transport(peer.port, Duration::from_secs(5))), &clock);
        s.drain().await.unwrap();
        assert_eq!(peer.accepted.lock().unwrap().len(), 1, "only the reply went out");
        let reminders = env.app.store.reminders(Some("T-1002")).await.unwrap();
        assert_eq!(reminders.len(), 1);
        assert_eq!(reminders[0].state, "cancelled", "{reminders:?}");
        let reason = reminders[0].cancelled_reason.as_deref().unwrap_or("");
        assert!(reason.contains(why), "{reason}");
        let row = env
            .app
            .store
            .outbox_row(reminders[0].outbox_id.unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.state, "discarded");
    }
}
