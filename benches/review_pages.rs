//! Server time of the review pages with 100,000 mails in the database.
//!
//! `cargo bench --bench review_pages` (SQLite in a temp dir), or with
//! `TRIALDESK_BENCH_DB_URL=postgres://…/empty_db` for PostgreSQL. `TRIALDESK_BENCH_MAILS`
//! changes the size (default 100000). The pages are requested through the real router
//! in-process (session check, queries, rendering; no sockets), each several times; the
//! report gives the median and the worst per page. The goal (issue 5) is under 100 ms.
//! `TRIALDESK_BENCH_RUNS` repeats the whole set of pages (default 1); with
//! `TRIALDESK_BENCH_OUT=FILE` each page's median per run is appended there as a JSON line
//! (what `scripts/bench` reads).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use sqlx::QueryBuilder;
use tokio::sync::Notify;
use tower::ServiceExt;
use trialdesk::app::App;
use trialdesk::config::Config;
use trialdesk::store::Backend;

const ROUNDS: usize = 15;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mails: usize = std::env::var("TRIALDESK_BENCH_MAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let url = std::env::var("TRIALDESK_BENCH_DB_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()));
    let config_path = dir.path().join("trialdesk.toml");
    std::fs::write(
        &config_path,
        format!(
            "[database]\nurl = \"{url}\"\n[mail]\nfrom = \"helpdesk@example.test\"\n\
             [templates]\ndir = \"{}/templates\"\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    )?;
    let app = App::open(Config::load(&config_path)?).await?;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/data");
    for kind in [
        trialdesk::import::ImportKind::Partners,
        trialdesk::import::ImportKind::Shipments,
    ] {
        let path = std::path::Path::new(fixtures).join(format!("{}.csv", kind.noun()));
        trialdesk::import::import_file(
            &app.store,
            kind,
            &path,
            &app.rules.loans,
            &mut |_, _| {},
            0,
        )
        .await?;
    }
    let t = Instant::now();
    let seeded = seed(&app, mails).await?;
    eprintln!(
        "seeded {mails} mails, {} review items ({} open), {} outbox rows, {} audit rows on {} in {:.1?}",
        seeded.items,
        seeded.open,
        seeded.outbox,
        seeded.audit,
        app.store.backend_name(),
        t.elapsed()
    );
    if let Backend::Sqlite(pool) = app.store.backend() {
        sqlx::query("ANALYZE").execute(pool).await?;
    }
    if let Backend::Postgres(pool) = app.store.backend() {
        sqlx::query("ANALYZE").execute(pool).await?;
    }

    trialdesk::review::users::add_user(&app.store, "bench", "bench password 1", "bench", 0).await?;
    let router = app.web_router(Arc::new(Notify::new()))?;
    let cookie = sign_in(&router).await?;

    let rare_loan = "D20269999"; // in exactly one mail
    let pages = [
        ("queue, first page".to_string(), "/queue".to_string()),
        ("queue, oldest first".into(), "/queue?order=oldest".into()),
        (
            "queue, rare reason".into(),
            "/queue?reason=dmarc_fail".into(),
        ),
        (
            "queue, search common sender".into(),
            "/queue?q=huadong".into(),
        ),
        (
            format!("queue, search rare loan {rare_loan}"),
            format!("/queue?q={rare_loan}"),
        ),
        (
            "queue, search no match".into(),
            "/queue?q=nothing-like-this".into(),
        ),
        (
            "queue, search 2 characters (scan)".into(),
            "/queue?q=r7".into(),
        ),
        (
            "queue, deep page (cursor)".into(),
            format!("/queue?after={}", seeded.deep_cursor),
        ),
        (
            "queue, resolved items".into(),
            "/queue?state=resolved".into(),
        ),
        ("item page".into(), format!("/items/{}", seeded.some_item)),
        ("history, first page".into(), "/history".into()),
        (
            format!("history, search rare loan {rare_loan}"),
            format!("/history?q={rare_loan}"),
        ),
        (
            "history, partner + loan".into(),
            format!("/history?partner=P01&q={rare_loan}"),
        ),
        (
            "history, search no match".into(),
            "/history?q=nothing-like-this".into(),
        ),
        (
            "history, search common sender".into(),
            "/history?q=huadong".into(),
        ),
        ("audit log".into(), "/audit".into()),
    ];
    println!(
        "{:<44} {:>10} {:>10} {:>8}",
        "page", "median", "worst", "bytes"
    );
    let runs: usize = std::env::var("TRIALDESK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let mut out = match std::env::var("TRIALDESK_BENCH_OUT") {
        Ok(path) if !path.is_empty() => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ),
        _ => None,
    };
    let mut over = 0;
    for run in 0..runs {
        for (name, path) in &pages {
            let mut times = Vec::with_capacity(ROUNDS);
            let mut size = 0;
            for _ in 0..ROUNDS {
                let req = Request::get(path.as_str())
                    .header(header::COOKIE, &cookie)
                    .body(Body::empty())?;
                let t = Instant::now();
                let res = router.clone().oneshot(req).await?;
                let status = res.status();
                let body = res.into_body().collect().await?.to_bytes();
                times.push(t.elapsed());
                anyhow::ensure!(status == StatusCode::OK, "{path}: {status}");
                size = body.len();
            }
            times.sort();
            let median = times[ROUNDS / 2];
            let worst = times[ROUNDS - 1];
            if median > Duration::from_millis(100) {
                over += 1;
            }
            if let Some(out) = out.as_mut() {
                use std::io::Write;
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "bench": "review",
                        "backend": app.store.backend_name(),
                        "mails": mails,
                        "run": run,
                        "page": name,
                        "median_ms": median.as_secs_f64() * 1e3,
                        "worst_ms": worst.as_secs_f64() * 1e3,
                        "bytes": size,
                    })
                )?;
            }
            println!(
                "{:<44} {:>8.1}ms {:>8.1}ms {:>8}",
                name,
                median.as_secs_f64() * 1e3,
                worst.as_secs_f64() * 1e3,
                size
            );
        }
    }
    println!(
        "{} of {} page measurements had a median over 100 ms",
        over,
        pages.len() * runs
    );
    app.store.close().await;
    Ok(())
}

async fn sign_in(router: &axum::Router) -> anyhow::Result<String> {
    let res = router
        .clone()
        .oneshot(Request::get("/login").body(Body::empty())?)
        .await?;
    let pre = res.headers()[header::SET_COOKIE]
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let html = String::from_utf8(res.into_body().collect().await?.to_bytes().to_vec())?;
    let csrf = regex::Regex::new(r#"name="csrf" value="([0-9a-f]+)""#)?
        .captures(&html)
        .map(|c| c[1].to_string())
        .unwrap_or_default();
    let body = format!("csrf={csrf}&name=bench&password=bench+password+1&next=%2Fqueue");
    let res = router
        .clone()
        .oneshot(
            Request::post("/login")
                .header(header::COOKIE, &pre)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))?,
        )
        .await?;
    let session = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("td_session="))
        .and_then(|c| c.split(';').next())
        .map(str::to_string);
    session.ok_or_else(|| anyhow::anyhow!("sign-in failed: {}", res.status()))
}

struct Seeded {
    items: usize,
    open: usize,
    outbox: usize,
    audit: usize,
    some_item: i64,
    deep_cursor: String,
}

/// Deterministic pseudo-random numbers (no dependency on the run).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Mails like a busy helpdesk's year: 70 % answered automatically (a reply each), 30 % to
/// review (a third of those still open), every mail ~1.5 KB raw.
async fn seed(app: &App, mails: usize) -> anyhow::Result<Seeded> {
    let mut rng = Lcg(42);
    let domains = [
        ("huadong.example.cn", Some("P01")),
        ("hd-tech.example.com", Some("P01")),
        ("nordwind.example.de", Some("P02")),
        ("sakura-net.example.jp", Some("P03")),
        ("pacrim.example.com", Some("P04")),
        ("unknown-reseller.example.net", None),
    ];
    let reasons = [
        "unknown_sender",
        "other_subject",
        "other_subject",
        "loan_of_other_partner",
        "other_subject",
        "unknown_sender",
        "dead_letter",
        "rate_limited",
    ];
    let now = jiff::Timestamp::now().as_millisecond();
    let year = 365 * 86_400_000i64;
    let filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(20);
    let mut seeded = Seeded {
        items: 0,
        open: 0,
        outbox: 0,
        audit: 0,
        some_item: 0,
        deep_cursor: String::new(),
    };
    let chunk = 400;
    let mut id = 0usize;
    while id < mails {
        let n = chunk.min(mails - id);
        let mut inbound = Vec::with_capacity(n);
        for k in 0..n {
            let i = id + k + 1;
            let (domain, partner) = domains[rng.below(domains.len() as u64) as usize];
            let loans: Vec<String> = (0..1 + rng.below(3))
                .map(|_| {
                    if i == mails / 2 {
                        "D20269999".to_string()
                    } else {
                        format!("D2{:07}", rng.below(2_000_000))
                    }
                })
                .collect();
            let sender = format!("user{}@{domain}", rng.below(400));
            let subject = if rng.below(10) < 7 {
                "试用终端追踪请求".to_string()
            } else {
                format!("Question {} about the trial", rng.below(1000))
            };
            let received = now - year + (i as i64 * year / mails as i64);
            let raw = format!(
                "From: {sender}\r\nTo: helpdesk@example.test\r\nSubject: {subject}\r\n\
                 Message-ID: <m{i}@{domain}>\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\r\nPlease check {}.\r\n{filler}\r\n",
                loans.join(", ")
            );
            let review = rng.below(10) < 3;
            inbound.push((i, sender, subject, received, raw, loans, partner, review));
        }
        let store = &app.store;
        macro_rules! insert_all {
            ($pool:expr, $Db:ty) => {{
                let mut tx = $pool.begin().await?;
                let mut qb: QueryBuilder<$Db> = QueryBuilder::new(
                    "INSERT INTO inbound_messages (id, message_key, message_id, source, \
                     received_at, sender, sender_name, subject, size_bytes, raw, body_text, \
                     kind, action, partner_id, loan_numbers) ",
                );
                qb.push_values(&inbound, |mut b, m| {
                    b.push_bind(m.0 as i64)
                        .push_bind(format!("mid:m{}", m.0))
                        .push_bind(format!("m{}", m.0))
                        .push_bind("bench")
                        .push_bind(m.3)
                        .push_bind(m.1.clone())
                        .push_bind(None::<String>)
                        .push_bind(m.2.clone())
                        .push_bind(m.4.len() as i64)
                        .push_bind(m.4.clone().into_bytes())
                        .push_bind(format!("Please check {}.", m.5.join(", ")))
                        .push_bind("tracking_request")
                        .push_bind(if m.7 { "review" } else { "reply" })
                        .push_bind(m.6.map(str::to_string))
                        .push_bind(serde_json::to_string(&m.5).unwrap_or_default());
                });
                qb.build().execute(&mut *tx).await?;
                let mut qb: QueryBuilder<$Db> = QueryBuilder::new(
                    "INSERT INTO decisions (inbound_id, decided_at, decided_by, kind, action, \
                     language, partner_id, loan_numbers, reasons, review) ",
                );
                qb.push_values(&inbound, |mut b, m| {
                    b.push_bind(m.0 as i64)
                        .push_bind(m.3)
                        .push_bind("pipeline")
                        .push_bind("tracking_request")
                        .push_bind(if m.7 { "review" } else { "reply" })
                        .push_bind("zh")
                        .push_bind(m.6.map(str::to_string))
                        .push_bind(serde_json::to_string(&m.5).unwrap_or_default())
                        .push_bind("[]")
                        .push_bind("[]");
                });
                qb.build().execute(&mut *tx).await?;
                let answered: Vec<_> = inbound.iter().filter(|m| !m.7).collect();
                if !answered.is_empty() {
                    let mut qb: QueryBuilder<$Db> = QueryBuilder::new(
                        "INSERT INTO outbox (purpose, inbound_id, message_id, envelope_from, \
                         recipients, rate_key, subject, body, state, attempts, next_attempt_at, \
                         created_at, sent_at) ",
                    );
                    qb.push_values(&answered, |mut b, m| {
                        b.push_bind("reply")
                            .push_bind(m.0 as i64)
                            .push_bind(format!("r{}@example.test", m.0))
                            .push_bind("helpdesk@example.test")
                            .push_bind(format!("[\"{}\"]", m.1))
                            .push_bind(m.1.clone())
                            .push_bind(format!("Re: {}", m.2))
                            .push_bind(m.4.clone().repeat(2).into_bytes())
                            .push_bind("sent")
                            .push_bind(1i64)
                            .push_bind(m.3)
                            .push_bind(m.3)
                            .push_bind(Some(m.3 + 1000));
                    });
                    qb.build().execute(&mut *tx).await?;
                    seeded.outbox += answered.len();
                }
                let review: Vec<_> = inbound.iter().filter(|m| m.7).collect();
                if !review.is_empty() {
                    let mut qb: QueryBuilder<$Db> = QueryBuilder::new(
                        "INSERT INTO review_items (reason, reasons, detail, inbound_id, state, \
                         created_at, resolved_at, resolved_by, note) ",
                    );
                    let mut local = Lcg(review[0].0 as u64);
                    let mut open = 0;
                    qb.push_values(&review, |mut b, m| {
                        let reason = reasons[local.below(reasons.len() as u64) as usize];
                        // dmarc_fail is rare: one in a thousand.
                        let reason = if m.0 % 1000 == 7 { "dmarc_fail" } else { reason };
                        let is_open = local.below(3) == 0;
                        if is_open {
                            open += 1;
                        }
                        b.push_bind(reason)
                            .push_bind(format!("[\"{reason}\"]"))
                            .push_bind("seeded")
                            .push_bind(m.0 as i64)
                            .push_bind(if is_open { "open" } else { "resolved" })
                            .push_bind(m.3)
                            .push_bind(if is_open { None } else { Some(m.3 + 60_000) })
                            .push_bind(if is_open { None } else { Some("alice") })
                            .push_bind(if is_open { None } else { Some("answered by phone") });
                    });
                    qb.build().execute(&mut *tx).await?;
                    let mut qb: QueryBuilder<$Db> = QueryBuilder::new(
                        "INSERT INTO audit_log (at, actor, via, action, inbound_id, detail) ",
                    );
                    qb.push_values(&review, |mut b, m| {
                        b.push_bind(m.3 + 60_000)
                            .push_bind("alice")
                            .push_bind("web")
                            .push_bind("resolve")
                            .push_bind(m.0 as i64)
                            .push_bind("answered by phone");
                    });
                    qb.build().execute(&mut *tx).await?;
                    seeded.items += review.len();
                    seeded.open += open;
                    seeded.audit += review.len();
                }
                tx.commit().await?;
            }};
        }
        match store.backend() {
            Backend::Sqlite(pool) => insert_all!(pool, sqlx::Sqlite),
            Backend::Postgres(pool) => insert_all!(pool, sqlx::Postgres),
        }
        id += n;
    }
    if let Backend::Postgres(pool) = app.store.backend() {
        // Explicit ids were inserted: move the sequence past them.
        sqlx::query(
            "SELECT setval(pg_get_serial_sequence('inbound_messages', 'id'), \
             (SELECT MAX(id) FROM inbound_messages))",
        )
        .execute(pool)
        .await?;
    }
    let open = app
        .store
        .review_items(&Default::default())
        .await?
        .first()
        .map(|i| i.id)
        .unwrap_or(1);
    seeded.some_item = open;
    let middle = app
        .store
        .review_items(&trialdesk::store::ReviewFilter {
            offset: (seeded.open / 2) as i64,
            limit: 1,
            ..Default::default()
        })
        .await?;
    seeded.deep_cursor = middle
        .first()
        .map(|i| i.cursor().to_string())
        .unwrap_or_default();
    Ok(seeded)
}
