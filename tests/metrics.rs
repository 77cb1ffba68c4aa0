//! `/metrics` scraped in-process after real work: mails through `run --once`, sends through
//! the file transport (one of them failing for good), reminders through the scheduler. Checks
//! the names, labels and values Prometheus would see, and who may scrape.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::Notify;
use tower::ServiceExt;
use trialdesk::app::App;
use trialdesk::clock::ManualClock;
use trialdesk::outbound::{Outgoing, SendError, SendFuture, Sender, Transport};
use trialdesk::reminders::At;

use common::{mail, TestEnv};

/// `GET /metrics` from `peer` with optional headers: (status, body).
async fn scrape(app: &App, peer: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let router = app.metrics_router(None).unwrap().expect("metrics enabled");
    let mut req = Request::builder().uri("/metrics");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::empty()).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    let res = router.oneshot(req).await.unwrap();
    let status = res.status();
    if status == StatusCode::OK {
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            trialdesk::metrics::CONTENT_TYPE
        );
    }
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// Samples by series (`name{labels}` exactly as exposed).
fn samples(text: &str) -> BTreeMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series value");
            (series.to_string(), value.parse::<f64>().expect("number"))
        })
        .collect()
}

fn get(s: &BTreeMap<String, f64>, series: &str) -> f64 {
    *s.get(series)
        .unwrap_or_else(|| panic!("no series {series} in {:#?}", s.keys().collect::<Vec<_>>()))
}

fn deliver_mixed(env: &TestEnv) {
    // Answered (a partner asks about its own loan).
    env.deliver(
        "1.a.host",
        &mail(
            "Dana Ortiz <ops@pacrim.example.com>",
            "Trial Endpoint Tracking Request",
            "m-1@pacrim.example.com",
            "",
            "Please check D50261001.\r\n",
        ),
    );
    // Answered, in Chinese.
    env.deliver(
        "2.b.host",
        &mail(
            "王伟 <wangwei@huadong.example.cn>",
            "试用终端追踪请求",
            "m-2@huadong.example.cn",
            "",
            "请查询 D20261001。\r\n",
        ),
    );
    // Unknown sender: review.
    env.deliver(
        "3.c.host",
        &mail(
            "Mallory <mallory@evil.example.org>",
            "Trial Endpoint Tracking Request",
            "m-3@evil.example.org",
            "",
            "D20261001\r\n",
        ),
    );
    // Not a tracking request: review.
    env.deliver(
        "4.d.host",
        &mail(
            "王伟 <wangwei@huadong.example.cn>",
            "RMA 标签丢失",
            "m-4@huadong.example.cn",
            "",
            "D20261003 的 RMA 标签丢了。\r\n",
        ),
    );
    // An auto-reply: ignored.
    env.deliver(
        "5.e.host",
        &mail(
            "it-admin@huadong.example.cn",
            "自动回复: 试用终端追踪请求",
            "m-5@huadong.example.cn",
            "Auto-Submitted: auto-replied\r\n",
            "休假中 D20261001\r\n",
        ),
    );
}

#[tokio::test]
async fn counters_after_processing_mail_and_queue_depth_from_the_database() {
    let env = TestEnv::new("").await;
    deliver_mixed(&env);
    let summary = env.app.run_once().await.unwrap();
    assert_eq!(
        (
            summary.fetched,
            summary.replied,
            summary.review,
            summary.ignored
        ),
        (5, 2, 2, 1),
        "{summary}"
    );
    // The same mail again (redelivered): a duplicate, not a second decision.
    env.deliver(
        "6.f.host",
        &mail(
            "Dana Ortiz <ops@pacrim.example.com>",
            "Trial Endpoint Tracking Request",
            "m-1@pacrim.example.com",
            "",
            "Please check D50261001.\r\n",
        ),
    );
    env.app.run_once().await.unwrap();

    let (status, text) = scrape(&env.app, "127.0.0.1:40000", &[]).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let s = samples(&text);

    assert_eq!(get(&s, "trialdesk_mails_fetched_total"), 6.0);
    assert_eq!(get(&s, "trialdesk_mails_duplicate_total"), 1.0);
    assert_eq!(get(&s, "trialdesk_fetch_errors_total"), 0.0);
    let decision = |kind: &str, action: &str| {
        get(
            &s,
            &format!("trialdesk_decisions_total{{kind=\"{kind}\",action=\"{action}\"}}"),
        )
    };
    assert_eq!(decision("tracking_request", "reply"), 2.0);
    assert_eq!(decision("tracking_request", "review"), 1.0);
    assert_eq!(decision("rma_label_request", "review"), 1.0);
    assert_eq!(decision("other", "review"), 0.0);
    assert_eq!(decision("automated", "ignore"), 1.0);
    // Series that saw nothing exist at zero.
    assert_eq!(decision("other", "reply"), 0.0);
    // Every mail taken from the source was timed through processing.
    assert_eq!(
        get(&s, "trialdesk_mail_processing_duration_seconds_count"),
        6.0
    );
    assert!(get(&s, "trialdesk_fetch_duration_seconds_count") >= 2.0);
    assert_eq!(
        get(
            &s,
            "trialdesk_sends_total{purpose=\"reply\",result=\"sent\"}"
        ),
        2.0
    );
    assert_eq!(
        get(
            &s,
            "trialdesk_sends_total{purpose=\"reply\",result=\"dead\"}"
        ),
        0.0
    );
    assert_eq!(get(&s, "trialdesk_send_duration_seconds_count"), 2.0);
    // Histogram buckets are cumulative and end at +Inf with the count.
    assert_eq!(
        get(&s, "trialdesk_send_duration_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );

    // Read from the database at scrape time.
    assert_eq!(
        get(
            &s,
            "trialdesk_review_queue_depth{reason=\"unknown_sender\"}"
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            "trialdesk_review_queue_depth{reason=\"rma_label_missing\"}"
        ),
        1.0
    );
    assert_eq!(
        get(&s, "trialdesk_review_queue_depth{reason=\"other_subject\"}"),
        0.0
    );
    assert_eq!(
        get(&s, "trialdesk_review_queue_depth{reason=\"rate_limited\"}"),
        0.0
    );
    assert_eq!(get(&s, "trialdesk_outbox_pending{purpose=\"reply\"}"), 0.0);
    assert_eq!(get(&s, "trialdesk_outbox_oldest_pending_age_seconds"), 0.0);
    assert_eq!(get(&s, "trialdesk_database_up"), 1.0);

    // Which build: the version and revision `--version` shows.
    let build = format!(
        "trialdesk_build_info{{version=\"{}\",revision=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        trialdesk::GIT_REVISION
    );
    assert_eq!(get(&s, &build), 1.0);
    assert!(get(&s, "trialdesk_start_time_seconds") > 1.7e9);
    // No worker state was handed to this router: no IMAP or health series.
    assert!(!text.contains("trialdesk_imap_"), "{text}");
    // Labels hold codes only: no address, subject or loan number leaks into the metrics.
    for secret in [
        "pacrim",
        "mallory",
        "D50261001",
        "Tracking Request",
        "wangwei",
    ] {
        assert!(!text.contains(secret), "{secret} in metrics:\n{text}");
    }

    // A resolved item leaves the gauge at the next scrape; a queued reply shows as pending.
    let items = env
        .app
        .store
        .review_items(&trialdesk::store::ReviewFilter::default())
        .await
        .unwrap();
    let other = items
        .iter()
        .find(|i| i.reason == "rma_label_missing")
        .unwrap();
    let audit = trialdesk::store::NewAudit {
        actor: "alice".into(),
        via: trialdesk::store::Via::Cli,
        action: "resolve",
        review_id: Some(other.id),
        inbound_id: None,
        outbox_id: None,
        detail: String::new(),
    };
    let closing = trialdesk::store::Closing {
        by: "alice",
        note: "done",
        audit: &audit,
    };
    env.app
        .store
        .resolve_item(other.id, closing, 1)
        .await
        .unwrap();
    env.deliver(
        "7.g.host",
        &mail(
            "Dana Ortiz <ops@pacrim.example.com>",
            "Trial Endpoint Tracking Request",
            "m-7@pacrim.example.com",
            "",
            "And D50261001 again.\r\n",
        ),
    );
    let pipeline = env.app.pipeline(Arc::new(Notify::new())).unwrap();
    let source = trialdesk::inbound::maildir::MaildirSource::open(
        &env.maildir(),
        std::time::Duration::from_secs(1),
        1 << 20,
    )
    .unwrap();
    let mut worker = trialdesk::pipeline::InboundWorker::new(source, Arc::new(pipeline));
    worker.drain().await.unwrap();
    let (_, text) = scrape(&env.app, "[::1]:40000", &[]).await;
    let s = samples(&text);
    assert_eq!(
        get(
            &s,
            "trialdesk_review_queue_depth{reason=\"rma_label_missing\"}"
        ),
        0.0
    );
    assert_eq!(get(&s, "trialdesk_outbox_pending{purpose=\"reply\"}"), 1.0);
    assert!(get(&s, "trialdesk_outbox_oldest_pending_age_seconds") >= 0.0);
    assert_eq!(get(&s, "trialdesk_mails_fetched_total"), 7.0);
}

/// Refuses the first `transient` sends for now, then every further one for good.
struct Refusing {
    transient: std::sync::atomic::AtomicUsize,
}

impl Transport for Refusing {
    fn send<'a>(&'a self, _mail: Outgoing<'a>) -> SendFuture<'a> {
        use std::sync::atomic::Ordering;
        let left = self.transient.load(Ordering::SeqCst);
        let result = if left > 0 {
            self.transient.store(left - 1, Ordering::SeqCst);
            Err(SendError::Transient("421 4.3.2 try again later".into()))
        } else {
            Err(SendError::Permanent("550 5.1.1 no such user".into()))
        };
        Box::pin(async move { result })
    }
    fn describe(&self) -> String {
        "refusing".into()
    }
}

#[tokio::test]
async fn retries_and_dead_letters_are_counted_by_purpose_and_result() {
    let env = TestEnv::new("").await;
    deliver_mixed(&env);
    let pipeline = env.app.pipeline(Arc::new(Notify::new())).unwrap();
    let source = trialdesk::inbound::maildir::MaildirSource::open(
        &env.maildir(),
        std::time::Duration::from_secs(1),
        1 << 20,
    )
    .unwrap();
    let mut worker = trialdesk::pipeline::InboundWorker::new(source, Arc::new(pipeline));
    worker.drain().await.unwrap();
    let clock = ManualClock::new(jiff::Timestamp::now());
    let sender = Sender::new(
        env.app.store.clone(),
        Arc::new(Refusing {
            transient: 1.into(),
        }),
        env.app.config.outbox.clone(),
        "w1".into(),
        Arc::new(clock.clone()),
        Arc::new(Notify::new()),
    )
    .with_metrics(env.app.metrics.clone());
    // Two replies: the first attempt is deferred, the other refused for good.
    sender.drain().await.unwrap();
    let (_, text) = scrape(&env.app, "127.0.0.1:40000", &[]).await;
    let s = samples(&text);
    assert_eq!(
        get(
            &s,
            "trialdesk_sends_total{purpose=\"reply\",result=\"retried\"}"
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            "trialdesk_sends_total{purpose=\"reply\",result=\"dead\"}"
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            "trialdesk_sends_total{purpose=\"reply\",result=\"sent\"}"
        ),
        0.0
    );
    assert_eq!(get(&s, "trialdesk_outbox_pending{purpose=\"reply\"}"), 1.0);
    assert_eq!(
        get(&s, "trialdesk_review_queue_depth{reason=\"dead_letter\"}"),
        1.0
    );
    // The retry, when due, is refused for good too.
    clock.advance(std::time::Duration::from_secs(3600));
    sender.drain().await.unwrap();
    let (_, text) = scrape(&env.app, "127.0.0.1:40000", &[]).await;
    let s = samples(&text);
    assert_eq!(
        get(
            &s,
            "trialdesk_sends_total{purpose=\"reply\",result=\"dead\"}"
        ),
        2.0
    );
    assert_eq!(get(&s, "trialdesk_send_duration_seconds_count"), 3.0);
    assert_eq!(get(&s, "trialdesk_outbox_pending{purpose=\"reply\"}"), 0.0);
    assert_eq!(
        get(&s, "trialdesk_review_queue_depth{reason=\"dead_letter\"}"),
        2.0
    );
}

#[tokio::test]
async fn reminders_are_counted_by_kind_and_outcome() {
    let env = TestEnv::new("").await;
    // 2026-12-03 in Shanghai after 09:00: T-1001 expires today; earlier windows have ended.
    let clock = ManualClock::new("2026-12-03T02:00:00Z".parse().unwrap());
    let app = App {
        clock: Arc::new(clock.clone()),
        ..env.app.clone()
    };
    let scheduler = app.scheduler(Arc::new(Notify::new())).unwrap();
    let report = scheduler
        .run_until_done(At::Instant("2026-12-03T02:00:00Z".parse().unwrap()))
        .await
        .unwrap();
    assert!(report.queued > 0 && report.missed > 0, "{report:?}");
    let (_, text) = scrape(&env.app, "127.0.0.1:40000", &[]).await;
    let s = samples(&text);
    let total = |outcome: &str| -> f64 {
        s.iter()
            .filter(|(k, _)| {
                k.starts_with("trialdesk_reminders_total{")
                    && k.ends_with(&format!("outcome=\"{outcome}\"}}"))
            })
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(total("queued"), report.queued as f64, "{text}");
    assert_eq!(total("missed"), report.missed as f64, "{text}");
    assert_eq!(total("failed"), report.failed as f64, "{text}");
    // By kind: the rows in the store say which kinds were queued.
    let rows = env.app.store.reminders(None).await.unwrap();
    let queued_today = rows
        .iter()
        .filter(|r| r.kind == "expires_today" && r.state == "queued")
        .count();
    assert!(queued_today > 0);
    assert_eq!(
        get(
            &s,
            "trialdesk_reminders_total{kind=\"expires_today\",outcome=\"queued\"}"
        ),
        queued_today as f64
    );
    assert_eq!(
        get(
            &s,
            "trialdesk_review_queue_depth{reason=\"missed_reminder\"}"
        ),
        report.missed as f64
    );
}

#[tokio::test]
async fn only_loopback_clients_or_the_bearer_token_may_scrape() {
    let env = TestEnv::new("").await;
    let (status, _) = scrape(&env.app, "192.0.2.10:40000", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Through a proxy on the same host: not local.
    let (status, _) = scrape(
        &env.app,
        "127.0.0.1:40000",
        &[("x-forwarded-for", "198.51.100.4")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let token_file = env.dir.path().join("metrics-token");
    std::fs::write(&token_file, "tok-3a9f7c\n").unwrap();
    let mut config = (*env.app.config).clone();
    config.metrics.token_file = Some(token_file);
    let app = App {
        config: Arc::new(config),
        ..env.app.clone()
    };
    let (status, _) = scrape(&app, "127.0.0.1:40000", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = scrape(
        &app,
        "192.0.2.10:40000",
        &[(header::AUTHORIZATION.as_str(), "Bearer wrong")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, text) = scrape(
        &app,
        "192.0.2.10:40000",
        &[(header::AUTHORIZATION.as_str(), "Bearer tok-3a9f7c")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("trialdesk_build_info"));

    // Disabled: no route at all.
    let mut config = (*env.app.config).clone();
    config.metrics.enabled = false;
    let app = App {
        config: Arc::new(config),
        ..env.app.clone()
    };
    assert!(app.metrics_router(None).unwrap().is_none());
}
