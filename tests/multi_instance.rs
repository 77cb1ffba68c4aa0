//! Several `trialdesk run` processes on ONE PostgreSQL database, ONE IMAP mailbox and one
//! relay — the real PostgreSQL, Dovecot and Postfix the test command starts — working a backlog
//! of tracking requests and a day of trial reminders:
//! - every request is answered exactly once and every reminder sent exactly once (replies and
//!   reminders are read back from the recipients' mailboxes over IMAP);
//! - `kill -9` of the instance holding the mailbox lease: another one takes over within
//!   seconds, nothing is lost;
//! - a holder that hangs (SIGSTOP) is replaced when its lease runs out, and when it wakes up it
//!   stops reading the mailbox;
//! - PostgreSQL restarted mid-run: the instances reconnect and carry on.
//!
//! Mail that reached the relay but whose "sent" was not recorded (the instance died in
//! between) may go out twice, with the same Message-ID: the tests count such copies and print
//! them (`duplicate copies: …`), bounded by one per killed or stopped process.
//!
//! PostgreSQL only: the test command runs this file in its PostgreSQL pass
//! (`TRIALDESK_TEST_PG_URL`; `TRIALDESK_TEST_PG_DIR` for the restart). Without them the tests
//! fail and say so. The tests restart shared servers, so they run one at a time.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::mailstack::{
    assert_one_answer_each, partners, request, unique, wait_answers, E2e, Running, Setup, Stack,
};
use common::Reply;
use trialdesk::app::App;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn require_postgres() {
    if std::env::var("TRIALDESK_TEST_PG_URL")
        .unwrap_or_default()
        .is_empty()
    {
        panic!(
            "TRIALDESK_TEST_PG_URL is not set: several instances need one PostgreSQL database. \
             Run ./scripts/test (its PostgreSQL pass runs this file), or start a server with \
             scripts/pg start /tmp/td-pg, then export TRIALDESK_TEST_PG_URL from \
             /tmp/td-pg/pg.env's PG_URL and TRIALDESK_TEST_PG_DIR=/tmp/td-pg"
        );
    }
}

/// The trials of the day of reminders: each has one kind due today in its own zone (with
/// `send_at = "00:00"`), for two audiences.
struct Reminders {
    partner_admin: String,
    /// Each trial's only customer admin: exactly one reminder each.
    customer_admins: Vec<String>,
}

/// One test's world: the database, the mailbox with its backlog, the trials.
struct World {
    stack: Stack,
    env: E2e,
    partners: Vec<(String, &'static str)>,
    /// Request Message-ID → partner address.
    sent: HashMap<String, String>,
    reminders: Reminders,
}

const ZONES: [&str; 4] = [
    "UTC",
    "Asia/Shanghai",
    "America/Los_Angeles",
    "Europe/Berlin",
];

async fn world(n_partners: usize, per_partner: usize, n_trials: usize) -> World {
    require_postgres();
    let stack = Stack::get();
    let env = E2e::new(&stack, Setup::plain(&stack)).await;
    // Reminders on, sendable from midnight in every zone: the whole day is due now.
    let config = std::fs::read_to_string(&env.config_path).unwrap().replace(
        "[reminders]\nenabled = false",
        "[reminders]\nenabled = true\nsend_at = \"00:00\"",
    );
    assert!(config.contains("send_at = \"00:00\""));
    std::fs::write(&env.config_path, config).unwrap();

    let tag = unique("mi");
    let partner_admin = format!("pa-{tag}@example.test");
    let partners_csv = env.dir.path().join("reminder-partners.csv");
    std::fs::write(
        &partners_csv,
        format!(
            "partner_id,name,domains,admin_emails,language\nPM,Many Trials Ltd,{tag}.example.test,{partner_admin},en\n"
        ),
    )
    .unwrap();
    let mut trials = String::from(
        "trial_id,partner_id,customer,customer_admin_emails,services,starts_on,expires_on,\
         extended,converted,timezone,language\n",
    );
    let mut customer_admins = Vec::new();
    let now = jiff::Timestamp::now();
    for i in 0..n_trials {
        let zone = ZONES[i % ZONES.len()];
        let today = now.to_zoned(jiff::tz::TimeZone::get(zone).unwrap()).date();
        // expires_in_7_days, expires_today, grace_period_ended, calling_numbers_released.
        let (offset, services) = match (i / ZONES.len()) % 4 {
            0 => (7, "meeting"),
            1 => (0, "meeting"),
            2 => (-30, "message;meeting"),
            _ => (-45, "calling;meeting"),
        };
        let expires = today.checked_add(jiff::Span::new().days(offset)).unwrap();
        let starts = expires.checked_sub(jiff::Span::new().days(30)).unwrap();
        let admin = format!("ca{i}-{tag}@example.test");
        trials.push_str(&format!(
            "MT-{tag}-{i},PM,Customer {i},{admin},{services},{starts},{expires},false,false,{zone},en\n"
        ));
        customer_admins.push(admin);
    }
    let trials_csv = env.dir.path().join("reminder-trials.csv");
    std::fs::write(&trials_csv, trials).unwrap();
    for (kind, path) in [("partners", &partners_csv), ("trials", &trials_csv)] {
        let (ok, out, err) = env.cli(&["import", kind, path.to_str().unwrap()]);
        assert!(ok, "{out}\n{err}");
    }

    // The backlog, straight into the helpdesk's INBOX (LMTP) before any instance runs.
    let partners = partners(n_partners);
    let mut sent = HashMap::new();
    for (p, loan) in &partners {
        for _ in 0..per_partner {
            let id = format!("{}@{}", unique("req"), p.split('@').nth(1).unwrap());
            stack.deliver_lmtp(
                p,
                &env.helpdesk,
                &request(p, &env.helpdesk, &id, &format!("Please check {loan}.")),
            );
            sent.insert(id, p.clone());
        }
    }
    assert_eq!(
        stack.count(&env.helpdesk, "INBOX").await,
        sent.len(),
        "the backlog is in the mailbox"
    );
    World {
        stack,
        env,
        partners,
        sent,
        reminders: Reminders {
            partner_admin,
            customer_admins,
        },
    }
}

/// A COUNT that tolerates the database being away (PostgreSQL restarting).
async fn try_count(app: &App, sql: &'static str) -> Option<i64> {
    use trialdesk::store::Backend;
    match app.store.backend() {
        Backend::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.ok(),
        Backend::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.ok(),
    }
}

async fn wait_count(app: &App, sql: &'static str, at_least: i64, limit: Duration) -> i64 {
    let deadline = Instant::now() + limit;
    loop {
        let n = try_count(app, sql).await.unwrap_or(-1);
        if n >= at_least || Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The PID of the process holding the mailbox lease now (an unexpired row), if any.
async fn holder_pid(app: &App) -> Option<u32> {
    let name = trialdesk::lease::imap_lease_name(&app.config.imap);
    let row = app.store.lease(&name).await.ok()??;
    if row.expired() {
        return None;
    }
    row.holder.rsplit(':').next()?.parse().ok()
}

/// Waits until a process other than `not` holds the lease; returns its PID.
async fn wait_holder(app: &App, not: Option<u32>, limit: Duration) -> u32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(pid) = holder_pid(app).await.filter(|p| Some(*p) != not) {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no instance took the mailbox lease within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The instances, by name; `None` while one is down.
struct Fleet {
    members: Vec<(&'static str, Option<Running>)>,
}

impl Fleet {
    fn start(env: &E2e, names: &[&'static str]) -> Fleet {
        Fleet {
            members: names.iter().map(|n| (*n, Some(env.spawn_as(n)))).collect(),
        }
    }

    fn by_pid(&mut self, pid: u32) -> (&'static str, &mut Running) {
        self.members
            .iter_mut()
            .find_map(|(n, r)| r.as_mut().filter(|r| r.pid() == pid).map(|r| (*n, r)))
            .unwrap_or_else(|| panic!("the lease names PID {pid}, which is none of the instances"))
    }

    fn running(&self) -> impl Iterator<Item = (&'static str, &Running)> {
        self.members
            .iter()
            .filter_map(|(n, r)| r.as_ref().map(|r| (*n, r)))
    }

    fn stop_all(&mut self) {
        for (name, r) in &mut self.members {
            if let Some(mut r) = r.take() {
                let status = r.terminate(Duration::from_secs(30));
                assert!(status.success(), "instance {name}: {status}");
            }
        }
    }
}

/// Waits until the backlog and the reminders are done (recorded, filed, sent), then reads
/// every mailbox and checks: each request answered by exactly one reply, each reminder sent
/// exactly once. Returns the duplicate copies (the same message delivered twice).
async fn assert_all_done_once(w: &World, app: &App) -> usize {
    let n = w.sent.len() as i64;
    let recorded = wait_count(
        app,
        "SELECT COUNT(*) FROM inbound_messages",
        n,
        Duration::from_secs(180),
    )
    .await;
    assert_eq!(recorded, n, "not every request was recorded");
    let trials = w.reminders.customer_admins.len() as i64;
    let reminders = wait_count(
        app,
        "SELECT COUNT(*) FROM reminders WHERE trial_id LIKE 'MT-%'",
        2 * trials,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        reminders,
        2 * trials,
        "reminder rows (one per trial and audience)"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = try_count(app, "SELECT COUNT(*) FROM outbox WHERE state <> 'sent'").await;
        if left == Some(0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "outbox not drained: {left:?} left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every request filed out of the INBOX.
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.stack.count(&w.env.helpdesk, "INBOX").await > 0 {
        assert!(Instant::now() < deadline, "requests left in the INBOX");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let got = wait_answers(&w.stack, &w.partners, &w.sent, Duration::from_secs(120)).await;
    let reply_copies = assert_one_answer_each(&w.sent, &got);

    // Reminders: one distinct mail per customer admin, one per trial for the partner admin.
    let mut reminder_copies = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    for admin in &w.reminders.customer_admins {
        let mails = loop {
            let m = w.stack.messages(admin, "INBOX").await;
            if !m.is_empty() || Instant::now() > deadline {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let ids: HashSet<String> = mails
            .iter()
            .map(|raw| Reply::parse(raw.clone()).message_id)
            .collect();
        assert_eq!(ids.len(), 1, "{admin}: {} distinct reminder(s)", ids.len());
        reminder_copies += mails.len() - ids.len();
    }
    let admin_mails = loop {
        let m = w.stack.messages(&w.reminders.partner_admin, "INBOX").await;
        if m.len() >= trials as usize || Instant::now() > deadline {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let ids: HashSet<String> = admin_mails
        .iter()
        .map(|raw| Reply::parse(raw.clone()).message_id)
        .collect();
    assert_eq!(
        ids.len(),
        trials as usize,
        "partner admin: distinct reminders"
    );
    reminder_copies += admin_mails.len() - ids.len();

    assert_eq!(
        try_count(
            app,
            "SELECT COUNT(*) FROM review_items WHERE reason <> 'shipment_attention'"
        )
        .await,
        Some(0),
        "nothing went to review: {:?}",
        app.store.review_counts().await
    );
    eprintln!(
        "{} requests answered and {} reminders sent exactly once; duplicate copies: {} of \
         replies, {} of reminders",
        w.sent.len(),
        2 * trials,
        reply_copies,
        reminder_copies
    );
    reply_copies + reminder_copies
}

/// How many mails each instance's log says it sent.
fn sent_by(env: &E2e, names: &[&str]) -> Vec<(String, usize)> {
    names
        .iter()
        .map(|n| {
            let sent = env
                .log_of(n)
                .lines()
                .filter(|l| l.contains("trialdesk::outbound::sender: sent "))
                .count();
            (n.to_string(), sent)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_a_backlog_and_a_day_of_reminders_across_kill_9_of_the_mailbox_holder()
{
    let _serial = SERIAL.lock().await;
    // 30 partners × 10 requests (the per-recipient limit is 10 per 10 minutes), 40 trials.
    let w = world(30, 10, 40).await;
    let app = w.env.app().await;
    let started = Instant::now();
    let mut fleet = Fleet::start(&w.env, &["a", "b"]);
    let mut holder = wait_holder(&app, None, Duration::from_secs(30)).await;

    let mut kills = 0;
    let mut takeovers = Vec::new();
    for threshold in [60i64, 140, 220] {
        let done = wait_count(
            &app,
            "SELECT COUNT(*) FROM inbound_messages",
            threshold,
            Duration::from_secs(60),
        )
        .await;
        if done >= w.sent.len() as i64 {
            break;
        }
        let (name, running) = fleet.by_pid(holder);
        running.kill9();
        kills += 1;
        let killed_at = Instant::now();
        let next = wait_holder(&app, Some(holder), Duration::from_secs(30)).await;
        let takeover = killed_at.elapsed();
        takeovers.push(takeover);
        eprintln!("kill -9 of {name} (PID {holder}) after {done} recorded: PID {next} took the mailbox over in {takeover:?}");
        // A dead holder on the same machine is replaced at its successor's next round.
        assert!(takeover < Duration::from_secs(15), "{takeover:?}");
        // Back as a standby.
        let slot = fleet.members.iter_mut().find(|(n, _)| *n == name).unwrap();
        slot.1 = Some(w.env.spawn_as(name));
        holder = next;
    }
    assert!(
        kills >= 2,
        "the backlog was done before the kills ({kills})"
    );
    let copies = assert_all_done_once(&w, &app).await;
    eprintln!(
        "two instances, {} requests + {} reminders, {kills} kill -9 of the holder: done in {:?}, \
         takeovers {takeovers:?}, duplicate copies {copies}",
        w.sent.len(),
        2 * w.reminders.customer_admins.len(),
        started.elapsed()
    );
    // Only a mail in flight between the relay's 250 and the commit can go twice: at most one
    // per killed process.
    assert!(
        copies <= kills,
        "{copies} duplicate copies for {kills} kills"
    );

    // /healthz names the holder on every instance; standbys are healthy too.
    let holder = holder_pid(&app).await.expect("a holder");
    for (name, r) in fleet.running() {
        let (code, json) = r.health().expect("healthz answers");
        let lease = &json["imap"]["lease"];
        assert_eq!(code, 200, "{name}: {json}");
        let role = if r.pid() == holder {
            "holder"
        } else {
            "standby"
        };
        assert_eq!(lease["role"], role, "{name}: {json}");
        assert!(
            lease["holder"]
                .as_str()
                .is_some_and(|h| h.ends_with(&format!(":{holder}"))),
            "{name}: {json}"
        );
    }
    let sent = sent_by(&w.env, &["a", "b"]);
    eprintln!("mails sent per instance: {sent:?}");
    assert!(
        sent.iter().all(|(_, n)| *n > 0),
        "both instances send: {sent:?}"
    );
    // `check` names the holder; a `run --once` beside the fleet does not read the mailbox
    // (the lease is held) but still runs.
    let (ok, out, err) = w.env.cli(&["check"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("mailbox lease") && out.contains(&format!(":{holder} for")),
        "{out}"
    );
    let (ok, out, err) = w.env.cli(&["run", "--once"]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("read 0 mail(s)") && out.contains("holds the mailbox lease"),
        "{out}"
    );
    fleet.stop_all();
    let (_, out, _) = w.env.cli(&["check"]);
    assert!(out.contains("free"), "released at shutdown: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_replace_a_hung_holder_when_its_lease_ends_and_it_stops_reading_on_waking()
{
    let _serial = SERIAL.lock().await;
    let w = world(30, 10, 40).await;
    let app = w.env.app().await;
    let mut fleet = Fleet::start(&w.env, &["a", "b", "c"]);
    let holder = wait_holder(&app, None, Duration::from_secs(30)).await;
    let done = wait_count(
        &app,
        "SELECT COUNT(*) FROM inbound_messages",
        40,
        Duration::from_secs(60),
    )
    .await;
    let (name, running) = fleet.by_pid(holder);
    running.signal("STOP");
    let stopped_at = Instant::now();
    let next = wait_holder(&app, Some(holder), Duration::from_secs(40)).await;
    let takeover = stopped_at.elapsed();
    eprintln!("SIGSTOP of {name} (PID {holder}) after {done} recorded: PID {next} took over in {takeover:?}");
    // Alive, so waited out: not before its lease (10 s from its last renewal) ended.
    assert!(takeover >= Duration::from_secs(5), "{takeover:?}");
    assert!(takeover < Duration::from_secs(25), "{takeover:?}");

    let (_, running) = fleet.by_pid(holder);
    running.signal("CONT");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = w.env.log_of(name);
        let (_, running) = fleet.by_pid(holder);
        let standby = running.health().is_some_and(|(_, j)| {
            j["imap"]["lease"]["role"] == "standby" && j["imap"]["connected"] == false
        });
        if standby && log.contains("stopped reading the mailbox") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not stand down after waking:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let copies = assert_all_done_once(&w, &app).await;
    assert!(
        copies <= 1,
        "{copies} duplicate copies after one stopped holder"
    );
    fleet.stop_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_the_instances_reconnect_and_carry_on() {
    let _serial = SERIAL.lock().await;
    require_postgres();
    let pg_dir = std::env::var("TRIALDESK_TEST_PG_DIR").unwrap_or_default();
    assert!(
        !pg_dir.is_empty(),
        "TRIALDESK_TEST_PG_DIR is not set: this test restarts PostgreSQL with `scripts/pg \
         restart DIR` (scripts/test sets it to the cluster it started)"
    );
    let w = world(15, 10, 20).await;
    let app = w.env.app().await;
    let mut fleet = Fleet::start(&w.env, &["a", "b"]);
    wait_holder(&app, None, Duration::from_secs(30)).await;
    let done = wait_count(
        &app,
        "SELECT COUNT(*) FROM inbound_messages",
        40,
        Duration::from_secs(60),
    )
    .await;
    let restart = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg"))
        .arg("restart")
        .arg(&pg_dir)
        .output()
        .expect("run scripts/pg restart");
    assert!(
        restart.status.success(),
        "{}",
        String::from_utf8_lossy(&restart.stderr)
    );
    eprintln!("PostgreSQL restarted (immediate stop) after {done} recorded");
    let copies = assert_all_done_once(&w, &app).await;
    let logs = w.env.log_of("a") + &w.env.log_of("b");
    // Proof the restart cut the instances' connections (the pool may replace them unnoticed).
    assert!(
        logs.contains("immediate shutdown")
            || logs.contains("backing off")
            || logs.contains("cannot renew or take the lease"),
        "the restart did not reach the instances:\n{logs}"
    );
    for (name, r) in fleet.running() {
        let (code, json) = r.health().expect("healthz");
        assert_eq!(code, 200, "{name} unhealthy after the restart: {json}");
    }
    eprintln!("duplicate copies after a PostgreSQL restart: {copies}");
    assert_eq!(copies, 0, "a database restart alone sends nothing twice");
    fleet.stop_all();
}
