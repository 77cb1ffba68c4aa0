//! Planning one day of reminders over many trials, against the floor: a plain indexed
//! `SELECT count(*)` of the trials whose windows contain that day.
//!
//! ```sh
//! cargo bench --bench reminders_plan                      # 1,000,000 trials, SQLite
//! TRIALDESK_BENCH_TRIALS=200000 cargo bench --bench reminders_plan
//! TRIALDESK_BENCH_PG_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench reminders_plan
//! ```
//!
//! `TRIALDESK_BENCH_RUNS` sets the plan/count pairs measured (default 5); with
//! `TRIALDESK_BENCH_OUT=FILE` each pair is appended there as a JSON line (for `scripts/bench`).
//!
//! Trials expire over two years (10 % converted, 40 % with calling, 200 partners); a tenth of
//! the reminders of the planned day are already recorded, so the anti-join has work to do.

use std::time::{Duration, Instant};

use jiff::civil::{date, Date};
use trialdesk::config::DatabaseConfig;
use trialdesk::domain::{Language, Partner, Service, Trial};
use trialdesk::reminders::{self, schedule, Kind};
use trialdesk::store::{Backend, NewOutbox, NewReminder, Store};

const PLAN_DAY: Date = date(2027, 6, 15);

fn main() {
    let n: usize = std::env::var("TRIALDESK_BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(n));
}

async fn run(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let url = match std::env::var("TRIALDESK_BENCH_PG_URL") {
        Ok(admin) if !admin.is_empty() => {
            use sqlx::Connection;
            let name = format!("td_bench_{:016x}", rand::random::<u64>());
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap();
            format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
        }
        _ => format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()),
    };
    let config: DatabaseConfig = toml::from_str(&format!("url = \"{url}\"")).unwrap();
    let store = Store::open(&config, dir.path()).await.unwrap();
    println!("backend {}, {n} trials", store.backend_name());

    let t = Instant::now();
    load(&store, n).await;
    println!("loaded in {:.1?}", t.elapsed());
    analyze(&store).await;

    let mut plan_times = Vec::new();
    let mut floor_times = Vec::new();
    let mut planned = 0;
    let mut due = 0;
    let runs: usize = std::env::var("TRIALDESK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut out = std::env::var("TRIALDESK_BENCH_OUT")
        .ok()
        .filter(|p| !p.is_empty())
        .map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .unwrap()
        });
    // One unmeasured round first: both queries then start from the same warm cache.
    reminders::plan(&store, PLAN_DAY).await.unwrap();
    count_due(&store, PLAN_DAY).await;
    for run in 0..runs {
        let t = Instant::now();
        planned = reminders::plan(&store, PLAN_DAY).await.unwrap().len();
        let plan = t.elapsed();
        plan_times.push(plan);
        let t = Instant::now();
        due = count_due(&store, PLAN_DAY).await;
        let count = t.elapsed();
        floor_times.push(count);
        if let Some(out) = out.as_mut() {
            use std::io::Write;
            writeln!(
                out,
                "{}",
                serde_json::json!({
                    "bench": "reminders",
                    "backend": store.backend_name(),
                    "trials": n,
                    "run": run,
                    "plan_s": plan.as_secs_f64(),
                    "count_s": count.as_secs_f64(),
                    "planned": planned,
                    "due_rows": due,
                })
            )
            .unwrap();
        }
    }
    println!(
        "plan --date {PLAN_DAY}: {planned} reminders, best {:.1?} median {:.1?}",
        best(&plan_times),
        median(&mut plan_times)
    );
    println!(
        "floor (indexed count(*) of due trial rows): {due} rows, best {:.1?} median {:.1?}",
        best(&floor_times),
        median(&mut floor_times)
    );
}

fn best(v: &[Duration]) -> Duration {
    *v.iter().min().unwrap()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn load(store: &Store, n: usize) {
    let partners: Vec<Partner> = (0..200)
        .map(|i| Partner {
            partner_id: format!("P{i:03}"),
            name: format!("Partner {i}"),
            domains: vec![format!("p{i}.example.com")],
            admin_emails: vec![
                format!("admin@p{i}.example.com"),
                format!("ops@p{i}.example.com"),
            ],
            language: Language::ALL[i % 4],
            notify_shipment_updates: false,
        })
        .collect();
    store.upsert_partners(&partners, 0).await.unwrap();
    let zones = [
        "Asia/Shanghai",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Tokyo",
        "UTC",
    ];
    let first = date(2026, 7, 1);
    let mut batch = Vec::with_capacity(20_000);
    for i in 0..n {
        let mut services = vec![Service::Meeting];
        if i % 5 < 2 {
            services.push(Service::Calling);
        }
        let expires_on = schedule::add_days(first, (i % 730) as i32);
        batch.push(Trial {
            trial_id: format!("T{i:08}"),
            partner_id: format!("P{:03}", i % 200),
            customer: format!("Customer {i}"),
            customer_admin_emails: vec![format!("it@c{i}.example.com")],
            services,
            starts_on: schedule::add_days(expires_on, -30),
            expires_on,
            extended: false,
            converted: i % 10 == 3,
            timezone: zones[i % zones.len()].into(),
            language: Language::ALL[i % 4],
        });
        if batch.len() == batch.capacity() {
            store.upsert_trials(&batch, 0).await.unwrap();
            batch.clear();
        }
    }
    store.upsert_trials(&batch, 0).await.unwrap();
    // Record a tenth of the day's reminders, as a scheduler would have.
    let plan = reminders::plan(store, PLAN_DAY).await.unwrap();
    for (k, p) in plan.iter().enumerate().filter(|(k, _)| k % 10 == 0) {
        let expires_on = schedule::add_days(p.due_on, -p.kind.offset_days());
        let reminder = NewReminder {
            trial_id: p.trial_id.clone(),
            kind: p.kind.code().into(),
            audience: p.audience.code().into(),
            expires_on,
            due_on: p.due_on,
            recipients: p.recipients.clone(),
            language: "en".into(),
        };
        let mail = NewOutbox {
            purpose: "reminder".into(),
            message_id: format!("bench.{k}@example.test"),
            envelope_from: "helpdesk@example.test".into(),
            recipients: p.recipients.clone(),
            rate_key: p.recipients[0].clone(),
            subject: "s".into(),
            body: b"x".to_vec(),
        };
        store.queue_reminder(&reminder, &mail, 0).await.unwrap();
    }
}

async fn analyze(store: &Store) {
    match store.backend() {
        Backend::Sqlite(p) => {
            sqlx::query("ANALYZE").execute(p).await.unwrap();
        }
        Backend::Postgres(p) => {
            sqlx::query("ANALYZE").execute(p).await.unwrap();
        }
    }
}

/// The floor: one indexed count per kind over the same expiry ranges the plan scans.
async fn count_due(store: &Store, day: Date) -> i64 {
    let mut total = 0;
    for kind in Kind::ALL {
        let (lo, hi) = schedule::expiry_range(kind, day, day);
        let sql = if kind.needs_calling() {
            "SELECT count(*) FROM trials WHERE NOT converted AND expires_on >= $1 \
             AND expires_on <= $2 AND services LIKE '%\"calling\"%'"
        } else {
            "SELECT count(*) FROM trials WHERE NOT converted AND expires_on >= $1 \
             AND expires_on <= $2"
        };
        let n: i64 = match store.backend() {
            Backend::Sqlite(p) => sqlx::query_scalar(sql)
                .bind(lo.to_string())
                .bind(hi.to_string())
                .fetch_one(p)
                .await
                .unwrap(),
            Backend::Postgres(p) => sqlx::query_scalar(sql)
                .bind(lo.to_string())
                .bind(hi.to_string())
                .fetch_one(p)
                .await
                .unwrap(),
        };
        total += n;
    }
    total
}
