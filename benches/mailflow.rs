//! End-to-end mail benchmarks through the real servers of `scripts/mailstack` (Dovecot IMAP +
//! LMTP, Postfix SMTP), each beside a baseline measured in the same run. `scripts/bench` runs
//! them; by hand:
//!
//! ```sh
//! scripts/mailstack start /tmp/td-bench/mail
//! cargo build --release --bin trialdesk
//! cargo bench --bench mailflow -- backlog --stack /tmp/td-bench/mail/mailstack.env \
//!     --bin target/release/trialdesk --runs 3 --mails 10000 --out /tmp/td-bench/results.jsonl
//! cargo bench --bench mailflow -- latency  --stack … --bin … --runs 3 --requests 200 --out …
//! cargo bench --bench mailflow -- memory   --stack … --bin … --backlogs 3 --mails 10000 --out …
//! ```
//!
//! - **backlog**: the mails of `mailgen::backlog` are hard-linked into a fresh helpdesk
//!   account's Maildir and indexed by Dovecot (`doveadm mailbox status`) before the clock
//!   starts. Timed: from spawning `trialdesk run` (IMAP in, SMTP out, SQLite) until the last
//!   expected reply is a file in a partner's Maildir. Baseline, alternating with it run by run:
//!   a bare client that `UID FETCH`es every mail (`BODY.PEEK[]`, 500 per command, over the
//!   same async-imap connection code) and sends as many pre-built replies through the same
//!   Postfix with trialdesk's own SMTP transport (same TCP/pooling), timed the same way.
//!   Second peer, in the same run: `benches/naive_bot.py`, the bot a helpdesk admin writes in
//!   an afternoon (imaplib + smtplib + sqlite3, fetch all then send, no filing), with what it
//!   gets wrong counted (replies trialdesk would not send, requests it leaves unanswered).
//! - **latency**: trialdesk idles in IDLE on one account; requests are sent one by one over
//!   SMTP, and the time from the `250` to the reply's file in the partner's Maildir (polled
//!   every millisecond) is recorded. Interleaved with each sample, on a second account that no
//!   trialdesk watches: the floor — SMTP `250` → IDLE `EXISTS` (what any IDLE client gets at
//!   best; Dovecot 2.3 holds the notice ≈ 500 ms) and SMTP `250` → file in the Maildir.
//! - **memory**: one `trialdesk run` handles several backlogs in a row (new mail each time,
//!   linked in while it idles); after each: its peak RSS during that backlog (VmHWM, reset
//!   through `/proc/PID/clear_refs` before it) and its RSS after 3 s idle.
//!
//! Results are JSON lines appended to `--out`.

#[path = "support/mailgen.rs"]
mod mailgen;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{chown, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context, Result};
use futures::TryStreamExt;
use serde_json::json;
use trialdesk::config::{ImapConfig, SmtpConfig, TlsMode};
use trialdesk::inbound::imap::conn;
use trialdesk::outbound::smtp::SmtpTransport;
use trialdesk::outbound::{Outgoing, Transport};

const SEED: u64 = 20261130;

struct Stack {
    dir: PathBuf,
    mail_dir: PathBuf,
    imap_port: u16,
    smtp_port: u16,
    password: String,
    vmail: (u32, u32),
}

impl Stack {
    fn load(path: &Path) -> Result<Stack> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!("{}: start the stack with scripts/mailstack", path.display())
        })?;
        let vars: HashMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.to_string())
                .with_context(|| format!("{k} missing in {}", path.display()))
        };
        let meta = std::fs::metadata(get("MAILSTACK_MAIL_DIR")?)?;
        Ok(Stack {
            dir: get("MAILSTACK_DIR")?.into(),
            mail_dir: get("MAILSTACK_MAIL_DIR")?.into(),
            imap_port: get("MAILSTACK_IMAP_PORT")?.parse()?,
            smtp_port: get("MAILSTACK_SMTP_PORT")?.parse()?,
            password: get("MAILSTACK_PASSWORD")?,
            vmail: (meta.uid(), meta.gid()),
        })
    }

    /// `user@domain`'s Maildir, as the stack's userdb places it.
    fn maildir(&self, address: &str) -> PathBuf {
        let (user, domain) = address.split_once('@').expect("address");
        self.mail_dir.join(domain).join(user).join("Maildir")
    }

    fn imap_config(&self, user: &str) -> ImapConfig {
        ImapConfig {
            port: self.imap_port,
            tls: TlsMode::None,
            username: user.to_string(),
            password: Some(trialdesk::config::Secret::new(self.password.clone())),
            connect_timeout: Duration::from_secs(10),
            ..ImapConfig::default()
        }
    }

    async fn session(&self, user: &str) -> Result<conn::Session> {
        let config = self.imap_config(user);
        let credential = config.credential(Path::new("."))?;
        let (s, _) = conn::connect(&config, None, &credential)
            .await
            .map_err(|e| anyhow::anyhow!("IMAP login as {user}: {e}"))?;
        Ok(s)
    }

    fn smtp(&self) -> Result<SmtpTransport> {
        let config = SmtpConfig {
            host: "127.0.0.1".into(),
            port: self.smtp_port,
            tls: TlsMode::None,
            timeout: Duration::from_secs(30),
            ..SmtpConfig::default()
        };
        SmtpTransport::new(&config, Path::new("."))
    }

    fn doveadm(&self, args: &[&str]) -> Result<String> {
        let conf = self.dir.join("dovecot/dovecot.conf");
        let out = Command::new("doveadm")
            .arg("-c")
            .arg(&conf)
            .args(args)
            .output()
            .context("doveadm")?;
        ensure!(
            out.status.success(),
            "doveadm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Creates a Maildir (and the folders above it) owned by vmail, as Dovecot would.
    fn make_maildir(&self, maildir: &Path) -> Result<()> {
        let own = |p: &Path| chown(p, Some(self.vmail.0), Some(self.vmail.1));
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub))?;
            own(&maildir.join(sub))?;
        }
        let mut d = maildir.to_path_buf();
        while d.starts_with(&self.mail_dir) && d != self.mail_dir {
            own(&d)?;
            d.pop();
        }
        Ok(())
    }

    /// Removes every partner mailbox (`pNNN.example.com`), so counts start at zero.
    fn clear_partner_mail(&self) -> Result<()> {
        for p in 0..mailgen::PARTNERS {
            let d = self.mail_dir.join(mailgen::partner_domain(p));
            if d.exists() {
                std::fs::remove_dir_all(&d)?;
            }
        }
        Ok(())
    }
}

/// One generated backlog written once as Maildir files, linked into each run's INBOX.
struct Template {
    dir: PathBuf,
    files: Vec<String>,
    /// Reply recipients: address → replies expected.
    expected: HashMap<String, usize>,
    replies: usize,
    bytes: u64,
}

impl Template {
    fn build(stack: &Stack, n: usize, variant: u32) -> Result<Template> {
        let dir = stack.dir.join(format!("bench-template-{n}-v{variant}"));
        let mails = mailgen::backlog(n, SEED, variant);
        let mut expected: HashMap<String, usize> = HashMap::new();
        let mut files = Vec::with_capacity(n);
        let mut bytes = 0;
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        for (i, m) in mails.iter().enumerate() {
            if m.intent == mailgen::Intent::Request {
                *expected.entry(m.from.clone()).or_default() += 1;
            }
            // Maildir "new" names: unique, no info suffix.
            let name = format!("1795000000.M{i}P1.bench,S={}", m.bytes.len());
            let path = dir.join(&name);
            std::fs::write(&path, &m.bytes)?;
            chown(&path, Some(stack.vmail.0), Some(stack.vmail.1))?;
            bytes += m.bytes.len() as u64;
            files.push(name);
        }
        let replies = expected.values().sum();
        Ok(Template {
            dir,
            files,
            expected,
            replies,
            bytes,
        })
    }

    /// Links every mail into `maildir/new` (Maildir delivery: each link is atomic).
    fn link_into(&self, maildir: &Path) -> Result<()> {
        let new = maildir.join("new");
        for f in &self.files {
            std::fs::hard_link(self.dir.join(f), new.join(f))?;
        }
        Ok(())
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until every expected reply is a file in its recipient's Maildir.
struct ReplyCounter {
    pending: Vec<(PathBuf, usize, Option<SystemTime>)>,
}

impl ReplyCounter {
    fn new(stack: &Stack, expected: &HashMap<String, usize>) -> ReplyCounter {
        ReplyCounter {
            pending: expected
                .iter()
                .map(|(a, n)| (stack.maildir(a), *n, None))
                .collect(),
        }
    }

    fn count(maildir: &Path) -> usize {
        ["new", "cur"]
            .iter()
            .map(|s| std::fs::read_dir(maildir.join(s)).map_or(0, |d| d.count()))
            .sum()
    }

    /// Polls every `every` (only mailboxes still short, and only when their `new/` changed).
    async fn wait(&mut self, every: Duration, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            self.pending.retain_mut(|(dir, want, seen)| {
                let mtime = std::fs::metadata(dir.join("new"))
                    .and_then(|m| m.modified())
                    .ok();
                if mtime.is_none() || mtime == *seen {
                    return true;
                }
                *seen = mtime;
                Self::count(dir) < *want
            });
            if self.pending.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} mailboxes still lack replies after {limit:?}",
                    self.pending.len()
                );
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// A trialdesk config + database for one run.
struct Instance {
    dir: tempfile::TempDir,
    config: PathBuf,
    web_port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Instance {
    async fn new(stack: &Stack, work: &Path, helpdesk: &str) -> Result<Instance> {
        let dir = tempfile::tempdir_in(work)?;
        let web_port = free_port();
        let text = format!(
            r#"[database]
url = "sqlite://{db}?mode=rwc"

[mail]
source = "imap"
transport = "smtp"
from = "{helpdesk}"
from_name = "Trial Helpdesk"

[imap]
host = "127.0.0.1"
port = {imap}
tls = "none"
username = "{helpdesk}"
password = "{password}"

[smtp]
host = "127.0.0.1"
port = {smtp}
tls = "none"

[templates]
dir = "{templates}"
signature = "Partner Trial Helpdesk"

[carriers]
EMS = "https://www.ems.example.cn/track?no={{tracking_number}}"
DHL = "https://www.dhl.example.de/track?piececode={{tracking_number}}"
FedEx = "https://www.fedex.example.com/track?trknbr={{tracking_number}}"

[web]
enabled = true
listen = "127.0.0.1:{web_port}"

[reminders]
enabled = false
"#,
            db = dir.path().join("trialdesk.db").display(),
            imap = stack.imap_port,
            password = stack.password,
            smtp = stack.smtp_port,
            templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
        );
        let config = dir.path().join("trialdesk.toml");
        std::fs::write(&config, text)?;
        let app = trialdesk::app::App::open(trialdesk::config::Config::load(&config)?).await?;
        let world = mailgen::world();
        app.store.upsert_partners(&world.partners, 0).await?;
        app.store.upsert_shipments(&world.shipments, 0).await?;
        app.store.close().await;
        Ok(Instance {
            dir,
            config,
            web_port,
        })
    }

    /// Starts `trialdesk run`; `TRIALDESK_BENCH_WRAP="perf record -g -o FILE --"` runs it
    /// under a profiler.
    fn spawn(&self, bin: &Path) -> Result<Child> {
        let log = std::fs::File::create(self.dir.path().join("trialdesk.log"))?;
        let wrap = std::env::var("TRIALDESK_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut cmd = match words.next() {
            Some(w) => {
                let mut c = Command::new(w);
                c.args(words).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        Ok(cmd
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?)
    }

    fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("trialdesk.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `/healthz` as JSON, when it answers.
    fn health(&self) -> Option<serde_json::Value> {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.web_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(s, "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        serde_json::from_str(out.split_once("\r\n\r\n")?.1).ok()
    }

    /// Waits until trialdesk is connected and idling with IDLE push.
    async fn wait_push(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(h) = self.health() {
                if h["imap"]["push"] == true {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("trialdesk did not reach IDLE:\n{}", self.log_tail())
    }

    async fn sql_count(&self, sql: &'static str) -> Result<i64> {
        let app = trialdesk::app::App::open(trialdesk::config::Config::load(&self.config)?).await?;
        let n = match app.store.backend() {
            trialdesk::store::Backend::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
            trialdesk::store::Backend::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await?,
        };
        app.store.close().await;
        Ok(n)
    }
}

fn proc_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

fn terminate(child: &mut Child) -> Result<()> {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            ensure!(status.success(), "trialdesk exited with {status}");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill()?;
    bail!("trialdesk did not stop within 30 s of SIGTERM")
}

struct Out(std::fs::File);

impl Out {
    fn open(path: &Path) -> Result<Out> {
        Ok(Out(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?))
    }
    fn put(&mut self, v: serde_json::Value) -> Result<()> {
        println!("{v}");
        writeln!(self.0, "{v}")?;
        Ok(())
    }
}

/// A fresh helpdesk account with the template's mails in its INBOX, indexed by Dovecot.
fn stage_inbox(stack: &Stack, template: &Template, user: &str) -> Result<()> {
    let maildir = stack.maildir(user);
    stack.make_maildir(&maildir)?;
    template.link_into(&maildir)?;
    let status = stack.doveadm(&[
        "-f", "flow", "mailbox", "status", "-u", user, "messages", "INBOX",
    ])?;
    ensure!(
        status
            .trim()
            .ends_with(&format!("messages={}", template.files.len())),
        "Dovecot sees {status:?} in {user}'s INBOX"
    );
    Ok(())
}

async fn bare_client(stack: &Stack, template: &Template, user: &str) -> Result<(f64, u64)> {
    // Pre-built before the clock starts: one reply per expected reply.
    let replies: Vec<(String, Vec<u8>)> = template
        .expected
        .iter()
        .flat_map(|(to, n)| std::iter::repeat_n(to.clone(), *n))
        .enumerate()
        .map(|(i, to)| {
            let body = mailgen::prebuilt_reply(&to, i);
            (to, body)
        })
        .collect();
    let mut counter = ReplyCounter::new(stack, &template.expected);
    let smtp = stack.smtp()?;
    let started = Instant::now();
    let mut session = stack.session(user).await?;
    let mailbox = session.select("INBOX").await?;
    let total = mailbox.exists as usize;
    ensure!(total == template.files.len(), "INBOX holds {total}");
    let mut fetched = 0;
    let mut fetched_bytes = 0u64;
    let mut first = 1;
    while first <= total {
        let last = (first + 499).min(total);
        let bodies: Vec<_> = session
            .uid_fetch(format!("{first}:{last}"), "BODY.PEEK[]")
            .await?
            .try_collect()
            .await?;
        for f in &bodies {
            if let Some(b) = f.body() {
                fetched += 1;
                fetched_bytes += b.len() as u64;
            }
        }
        first = last + 1;
    }
    ensure!(fetched == total, "fetched {fetched} of {total}");
    let fetch_s = started.elapsed().as_secs_f64();
    let from = "helpdesk@example.test";
    for (to, body) in &replies {
        smtp.send(Outgoing {
            envelope_from: from,
            recipients: std::slice::from_ref(to),
            body,
        })
        .await
        .map_err(|e| anyhow::anyhow!("send: {e:?}"))?;
    }
    let sent_s = started.elapsed().as_secs_f64();
    counter
        .wait(Duration::from_millis(200), Duration::from_secs(900))
        .await?;
    let total_s = started.elapsed().as_secs_f64();
    let _ = session.logout().await;
    eprintln!(
        "bare client: fetched {fetched} ({fetched_bytes} bytes) in {fetch_s:.2}s, sent {} by {sent_s:.2}s, all delivered at {total_s:.2}s",
        replies.len()
    );
    Ok((total_s, fetched_bytes))
}

/// The second peer: `benches/naive_bot.py` (imaplib + smtplib + sqlite3, fetch-all then send,
/// no filing). Its database is built before the clock starts; timed from spawning it until it
/// has exited and every reply it sent to a partner that trialdesk also answers is a file in that
/// partner's Maildir. Also counted: replies trialdesk would not have sent (to auto-replies,
/// bounces, unknown senders, second answers) and requests it left unanswered.
async fn naive_bot(
    stack: &Stack,
    template: &Template,
    work: &Path,
    user: &str,
) -> Result<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/naive_bot.py");
    let csv = work.join("naive-shipments.csv");
    if !csv.exists() {
        let mut text = String::from("loan_number,status,carrier,tracking_number,eta\n");
        for s in mailgen::world().shipments {
            text.push_str(&format!(
                "{},{},{},{},{}\n",
                s.loan_number.as_str(),
                s.status.code(),
                s.carrier.unwrap_or_default(),
                s.tracking_number.unwrap_or_default(),
                s.eta.map(|d| d.to_string()).unwrap_or_default(),
            ));
        }
        std::fs::write(&csv, text)?;
    }
    let db = work.join(format!("naive-{}.db", tag()));
    let prepared = Command::new("python3")
        .arg(script)
        .arg("prepare")
        .arg(&db)
        .arg(&csv)
        .status()?;
    ensure!(prepared.success(), "naive bot: prepare failed");
    let mut counter_expected = HashMap::new();
    let started = Instant::now();
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg("run")
        .arg(&db)
        .arg(stack.imap_port.to_string())
        .arg(stack.smtp_port.to_string())
        .arg(user)
        .arg(&stack.password)
        .arg(mailgen::HELPDESK)
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "naive bot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut wrong = 0usize;
    if let Some(to) = v["to"].as_object() {
        for (address, n) in to {
            let n = n.as_u64().unwrap_or(0) as usize;
            match template.expected.get(address) {
                Some(&want) => {
                    wrong += n.saturating_sub(want);
                    counter_expected.insert(address.clone(), n);
                }
                None => wrong += n,
            }
        }
    }
    let unanswered: usize = template
        .expected
        .iter()
        .map(|(a, want)| want.saturating_sub(counter_expected.get(a).copied().unwrap_or(0)))
        .sum();
    ReplyCounter::new(stack, &counter_expected)
        .wait(Duration::from_millis(200), Duration::from_secs(900))
        .await?;
    let total_s = started.elapsed().as_secs_f64();
    eprintln!(
        "naive bot: fetched {}, replied {} ({wrong} that trialdesk would not send, {unanswered} requests unanswered), all delivered at {total_s:.2}s",
        v["fetched"], v["replied"]
    );
    Ok(json!({
        "seconds": total_s,
        "cpu_s": v["cpu_s"],
        "replied": v["replied"],
        "wrong_replies": wrong,
        "unanswered": unanswered,
    }))
}

async fn trialdesk_backlog(
    stack: &Stack,
    template: &Template,
    bin: &Path,
    work: &Path,
    user: &str,
) -> Result<serde_json::Value> {
    let instance = Instance::new(stack, work, user).await?;
    let mut counter = ReplyCounter::new(stack, &template.expected);
    let started = Instant::now();
    let mut child = instance.spawn(bin)?;
    let pid = child.id();
    // Peak RSS sampled meanwhile too (VmHWM is the kernel's own peak; this is a cross-check).
    let waited = counter
        .wait(Duration::from_millis(200), Duration::from_secs(900))
        .await;
    let total_s = started.elapsed().as_secs_f64();
    if let Err(e) = waited {
        let _ = child.kill();
        if let Ok(keep) = std::env::var("TRIALDESK_BENCH_KEEP_LOG") {
            let _ = std::fs::copy(instance.dir.path().join("trialdesk.log"), keep);
        }
        bail!("{e}\n{}", instance.log_tail());
    }
    let peak_kb = proc_kb(pid, "VmHWM:");
    let cpu_s = cpu_seconds(pid);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_kb = proc_kb(pid, "VmRSS:");
    terminate(&mut child)?;
    if let Ok(keep) = std::env::var("TRIALDESK_BENCH_KEEP_LOG") {
        let _ = std::fs::copy(instance.dir.path().join("trialdesk.log"), keep);
    }
    let sent = instance
        .sql_count("SELECT COUNT(*) FROM outbox WHERE state = 'sent'")
        .await?;
    let inbound = instance
        .sql_count("SELECT COUNT(*) FROM inbound_messages")
        .await?;
    let review = instance
        .sql_count("SELECT COUNT(*) FROM review_items")
        .await?;
    ensure!(
        sent as usize == template.replies && inbound as usize == template.files.len(),
        "trialdesk sent {sent} (expected {}) and recorded {inbound} mails",
        template.replies
    );
    eprintln!(
        "trialdesk: {} mails, {sent} replies delivered in {total_s:.2}s (CPU {cpu_s:.2}s); peak RSS {} MB, idle {} MB; {review} review items",
        template.files.len(),
        peak_kb / 1024,
        idle_kb / 1024
    );
    Ok(json!({
        "seconds": total_s,
        "cpu_s": cpu_s,
        "peak_rss_kb": peak_kb,
        "idle_rss_kb": idle_kb,
        "sent": sent,
        "review": review,
    }))
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: usize) -> Result<usize> {
    Ok(match arg(args, name) {
        Some(v) => v.parse().with_context(|| format!("{name} {v}"))?,
        None => default,
    })
}

fn tag() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

async fn backlog(args: &[String], stack: &Stack, bin: &Path, out: &mut Out) -> Result<()> {
    let runs = num(args, "--runs", 3)?;
    let n = num(args, "--mails", 10_000)?;
    // The naive bot is left out of the 100,000-mail run: it holds every mail in memory.
    let with_naive = !args.iter().any(|a| a == "--no-naive");
    let work = tempfile::tempdir_in(&stack.dir)?;
    let t = Instant::now();
    let template = Template::build(stack, n, 0)?;
    eprintln!(
        "generated {n} mails ({} MB, {} replies expected) in {:.1?}",
        template.bytes / 1_000_000,
        template.replies,
        t.elapsed()
    );
    for run in 0..runs {
        let run_tag = tag();
        stack.clear_partner_mail()?;
        let user = format!("bare-{run_tag}@example.test");
        stage_inbox(stack, &template, &user)?;
        let (bare_s, bytes) = bare_client(stack, &template, &user).await?;
        let _ = std::fs::remove_dir_all(stack.maildir(&user).parent().unwrap());

        let naive = if with_naive {
            stack.clear_partner_mail()?;
            let user = format!("naive-{run_tag}@example.test");
            stage_inbox(stack, &template, &user)?;
            let naive = naive_bot(stack, &template, work.path(), &user).await?;
            let _ = std::fs::remove_dir_all(stack.maildir(&user).parent().unwrap());
            Some(naive)
        } else {
            None
        };

        stack.clear_partner_mail()?;
        let user = format!("hd-{run_tag}@example.test");
        stage_inbox(stack, &template, &user)?;
        let td = trialdesk_backlog(stack, &template, bin, work.path(), &user).await?;
        let _ = std::fs::remove_dir_all(stack.maildir(&user).parent().unwrap());
        let mut row = json!({
            "bench": "backlog",
            "run": run,
            "mails": n,
            "bytes": bytes,
            "replies": template.replies,
            "baseline_s": bare_s,
            "trialdesk_s": td["seconds"],
            "trialdesk_cpu_s": td["cpu_s"],
            "peak_rss_kb": td["peak_rss_kb"],
            "idle_rss_kb": td["idle_rss_kb"],
            "review_items": td["review"],
        });
        if let Some(naive) = naive {
            row["naive_s"] = naive["seconds"].clone();
            row["naive_cpu_s"] = naive["cpu_s"].clone();
            row["naive_replies"] = naive["replied"].clone();
            row["naive_wrong_replies"] = naive["wrong_replies"].clone();
            row["naive_unanswered"] = naive["unanswered"].clone();
        }
        out.put(row)?;
    }
    stack.clear_partner_mail()?;
    template.remove();
    Ok(())
}

async fn memory(args: &[String], stack: &Stack, bin: &Path, out: &mut Out) -> Result<()> {
    let backlogs = num(args, "--backlogs", 3)?;
    let n = num(args, "--mails", 10_000)?;
    let work = tempfile::tempdir_in(&stack.dir)?;
    stack.clear_partner_mail()?;
    let user = format!("mem-{}@example.test", tag());
    stack.make_maildir(&stack.maildir(&user))?;
    let instance = Instance::new(stack, work.path(), &user).await?;
    let mut child = instance.spawn(bin)?;
    let pid = child.id();
    instance.wait_push(Duration::from_secs(30)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start_kb = proc_kb(pid, "VmRSS:");
    eprintln!("trialdesk idle at start: {} MB", start_kb / 1024);
    let mut total_replies = 0;
    for b in 1..=backlogs {
        let template = Template::build(stack, n, b as u32)?;
        total_replies += template.replies;
        let mut counter = ReplyCounter::new(stack, &template.expected);
        reset_peak(pid);
        let t = Instant::now();
        template.link_into(&stack.maildir(&user))?;
        let waited = counter
            .wait(Duration::from_millis(200), Duration::from_secs(900))
            .await;
        if let Err(e) = waited {
            let _ = child.kill();
            bail!("{e}\n{}", instance.log_tail());
        }
        let secs = t.elapsed().as_secs_f64();
        let peak_kb = proc_kb(pid, "VmHWM:");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle_kb = proc_kb(pid, "VmRSS:");
        template.remove();
        out.put(json!({
            "bench": "memory",
            "backlog": b,
            "mails": n,
            "seconds": secs,
            "start_rss_kb": start_kb,
            "peak_rss_kb": peak_kb,
            "idle_rss_kb": idle_kb,
        }))?;
    }
    terminate(&mut child)?;
    let sent = instance
        .sql_count("SELECT COUNT(*) FROM outbox WHERE state = 'sent'")
        .await?;
    ensure!(
        sent as usize == total_replies,
        "sent {sent}, expected {total_replies}"
    );
    stack.clear_partner_mail()?;
    let _ = std::fs::remove_dir_all(stack.maildir(&user).parent().unwrap());
    Ok(())
}

/// Polls a Maildir (new + cur) every millisecond until it holds more than `before` mails.
async fn wait_file(maildir: &Path, before: usize, limit: Duration) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if ReplyCounter::count(maildir) > before {
            return Ok(Instant::now());
        }
        ensure!(
            Instant::now() < deadline,
            "nothing arrived in {}",
            maildir.display()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn latency(args: &[String], stack: &Stack, bin: &Path, out: &mut Out) -> Result<()> {
    let runs = num(args, "--runs", 3)?;
    let requests = num(args, "--requests", 200)?;
    let work = tempfile::tempdir_in(&stack.dir)?;
    let smtp = stack.smtp()?;
    for run in 0..runs {
        stack.clear_partner_mail()?;
        let run_tag = tag();
        let helpdesk = format!("lat-{run_tag}@example.test");
        let floor_user = format!("floor-{run_tag}@example.test");
        for u in [&helpdesk, &floor_user] {
            stack.make_maildir(&stack.maildir(u))?;
        }
        let instance = Instance::new(stack, work.path(), &helpdesk).await?;
        let mut child = instance.spawn(bin)?;
        instance.wait_push(Duration::from_secs(30)).await?;
        let mut floor = stack.session(&floor_user).await?;
        floor.select("INBOX").await?;
        let floor_dir = stack.maildir(&floor_user);
        let mut idle_ms = Vec::with_capacity(requests);
        let mut delivery_ms = Vec::with_capacity(requests);
        let mut reply_ms = Vec::with_capacity(requests);
        for i in 0..requests {
            // 1. Floor, delivery only: SMTP 250 → file in the Maildir (polled like replies).
            let before = ReplyCounter::count(&floor_dir);
            let mail = mailgen::single_request(SEED, run as u32, i, &floor_user);
            send(&smtp, &mail.from, &floor_user, &mail.bytes).await?;
            let t0 = Instant::now();
            let t1 = wait_file(&floor_dir, before, Duration::from_secs(10)).await?;
            delivery_ms.push((t1 - t0).as_secs_f64() * 1e3);
            // Let the selected session see it before idling (so IDLE waits for the next).
            floor.noop().await?;

            // 2. Floor with push: SMTP 250 → IDLE EXISTS on the same account.
            let mut idle = floor.idle();
            idle.init().await?;
            let mail = mailgen::single_request(SEED, run as u32 + 1000, i, &floor_user);
            send(&smtp, &mail.from, &floor_user, &mail.bytes).await?;
            let t0 = Instant::now();
            let (wait, _stop) = idle.wait_with_timeout(Duration::from_secs(10));
            let r = wait.await?;
            let t1 = Instant::now();
            ensure!(
                matches!(r, async_imap::extensions::idle::IdleResponse::NewData(_)),
                "IDLE ended without new mail: {r:?}"
            );
            idle_ms.push((t1 - t0).as_secs_f64() * 1e3);
            floor = idle.done().await?;
            floor.noop().await?;

            // 3. trialdesk: SMTP 250 → reply file in the partner's Maildir.
            let mail = mailgen::single_request(SEED, run as u32 + 2000, i, &helpdesk);
            let partner_dir = stack.maildir(&mail.from);
            let before = ReplyCounter::count(&partner_dir);
            send(&smtp, &mail.from, &helpdesk, &mail.bytes).await?;
            let t0 = Instant::now();
            let t1 = match wait_file(&partner_dir, before, Duration::from_secs(30)).await {
                Ok(t) => t,
                Err(e) => {
                    let _ = child.kill();
                    bail!("{e}\n{}", instance.log_tail());
                }
            };
            reply_ms.push((t1 - t0).as_secs_f64() * 1e3);
            // Let trialdesk file the mail and return to IDLE before the next request.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = floor.logout().await;
        let peak_kb = proc_kb(child.id(), "VmHWM:");
        terminate(&mut child)?;
        let mut v = json!({
            "bench": "latency",
            "run": run,
            "requests": requests,
            "peak_rss_kb": peak_kb,
        });
        for (name, samples) in [
            ("reply", &mut reply_ms),
            ("floor_idle", &mut idle_ms),
            ("floor_delivery", &mut delivery_ms),
        ] {
            samples.sort_by(f64::total_cmp);
            v[format!("{name}_p50_ms")] = json!(percentile(samples, 0.50));
            v[format!("{name}_p99_ms")] = json!(percentile(samples, 0.99));
            v[format!("{name}_max_ms")] = json!(samples.last().copied().unwrap_or(0.0));
            v[format!("{name}_samples_ms")] = json!(samples);
        }
        out.put(v)?;
        for u in [&helpdesk, &floor_user] {
            let _ = std::fs::remove_dir_all(stack.maildir(u).parent().unwrap());
        }
    }
    stack.clear_partner_mail()?;
    Ok(())
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

async fn send(smtp: &SmtpTransport, from: &str, to: &str, body: &[u8]) -> Result<()> {
    let to = [to.to_string()];
    smtp.send(Outgoing {
        envelope_from: from,
        recipients: &to,
        body,
    })
    .await
    .map_err(|e| anyhow::anyhow!("SMTP send: {e:?}"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; anything unknown is ignored the same way.
    let Some(cmd) = args
        .iter()
        .find(|a| ["backlog", "latency", "memory"].contains(&a.as_str()))
        .cloned()
    else {
        eprintln!("usage: mailflow backlog|latency|memory --stack ENV --bin TRIALDESK --out FILE [--runs N] [--mails N] [--requests N] [--backlogs N]");
        return Ok(());
    };
    let stack = Stack::load(Path::new(
        &arg(&args, "--stack").context("--stack mailstack.env")?,
    ))?;
    let bin = PathBuf::from(arg(&args, "--bin").context("--bin path to trialdesk")?);
    let mut out = Out::open(Path::new(&arg(&args, "--out").context("--out FILE")?))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cmd.as_str() {
            "backlog" => backlog(&args, &stack, &bin, &mut out).await,
            "latency" => latency(&args, &stack, &bin, &mut out).await,
            _ => memory(&args, &stack, &bin, &mut out).await,
        }
    })
}
