//! Shared test harness: a throwaway config, database and Maildir per test.
//!
//! The database is SQLite in the test's temp dir, or — when `TRIALDESK_TEST_PG_URL` names a
//! PostgreSQL server (the test command starts one) — a fresh database created on it, so the
//! same tests run on both backends.
#![allow(dead_code)]

pub mod mailstack;

use std::path::{Path, PathBuf};

use trialdesk::app::App;
use trialdesk::config::Config;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub app: App,
}

/// A database URL for one test: SQLite in `dir`, or a new PostgreSQL database.
pub async fn test_database_url(dir: &Path) -> String {
    match std::env::var("TRIALDESK_TEST_PG_URL") {
        Ok(admin) if !admin.is_empty() => {
            use sqlx::Connection;
            let name = format!("td_test_{:016x}", rand::random::<u64>());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("TRIALDESK_TEST_PG_URL is set but PostgreSQL is not reachable");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let (base, _) = admin
                .rsplit_once('/')
                .expect("TRIALDESK_TEST_PG_URL needs a /database part");
            format!("{base}/{name}")
        }
        _ => format!("sqlite://{}/trialdesk.db?mode=rwc", dir.display()),
    }
}

impl TestEnv {
    /// A config with the Maildir source and file transport in a temp dir, plus `extra` TOML
    /// (whole sections), and the fixture data imported.
    pub async fn new(extra: &str) -> TestEnv {
        TestEnv::with_fixtures(extra, &["partners", "shipments", "trials"]).await
    }

    /// Like [`TestEnv::new`] with only the named fixture files imported. Tests that run on the
    /// real clock leave out the fixture trials: their dates are fixed, so their reminders would
    /// fall due, or be missed, depending on the day the suite runs.
    pub async fn with_fixtures(extra: &str, kinds: &[&str]) -> TestEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = test_database_url(dir.path()).await;
        let env = TestEnv::open(dir, &url, extra).await;
        for &kind in kinds {
            env.import(
                kind,
                &Path::new(FIXTURES).join("data").join(format!("{kind}.csv")),
            )
            .await;
        }
        env
    }

    /// The same config in `dir` on the database at `url` (migrated, nothing imported).
    pub async fn open(dir: tempfile::TempDir, url: &str, extra: &str) -> TestEnv {
        let text = format!(
            "[database]\nurl = \"{url}\"\n\n[security]\ntrusted_authserv_ids = [\"mx.helpdesk.example.test\"]\n\n\
             [mail]\nsource = \"maildir\"\ntransport = \"file\"\nfrom = \"helpdesk@example.test\"\n\n\
             [maildir]\npath = \"maildir\"\n\n[outbox]\ndir = \"outbox\"\n\n\
             [templates]\ndir = \"{templates}\"\nsignature = \"Test Helpdesk\"\n\n\
             [carriers]\nEMS = \"https://ems.example/t?no={{tracking_number}}\"\n\n{web}{extra}\n",
            templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
            // Tests that run `trialdesk run` in parallel must not fight over port 8080.
            web = if extra.contains("[web]") { "" } else { "[web]\nlisten = \"127.0.0.1:0\"\n\n" },
        );
        let config_path = dir.path().join("trialdesk.toml");
        std::fs::write(&config_path, text).expect("write config");
        let config = Config::load(&config_path).expect("test config loads");
        let app = App::open(config).await.expect("app opens");
        TestEnv {
            dir,
            config_path,
            app,
        }
    }

    pub async fn import(&self, kind: &str, path: &Path) {
        use clap::ValueEnum;
        let kind = trialdesk::import::ImportKind::from_str(kind, true).expect("kind");
        let loans = &self.app.rules.loans;
        trialdesk::import::import_file(&self.app.store, kind, path, loans, &mut |_, _| {}, 0)
            .await
            .expect("fixture import");
    }

    /// Runs the inbound worker over the Maildir until it is done (every round processed and
    /// filed), as `run --once` does, and returns its counters.
    pub async fn drain_inbox(&self) -> std::sync::Arc<trialdesk::pipeline::InboundStats> {
        let queued = std::sync::Arc::new(tokio::sync::Notify::new());
        let pipeline = self.app.pipeline(queued).unwrap();
        let source = trialdesk::inbound::maildir::MaildirSource::open(
            &self.maildir(),
            std::time::Duration::from_millis(10),
            1 << 20,
        )
        .unwrap();
        let mut worker =
            trialdesk::pipeline::InboundWorker::new(source, std::sync::Arc::new(pipeline));
        worker.drain().await.unwrap();
        worker.stats()
    }

    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("maildir")
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    /// Drops a mail into the Maildir's `new/`.
    pub fn deliver(&self, name: &str, bytes: &[u8]) {
        let new = self.maildir().join("new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::create_dir_all(self.maildir().join("cur")).unwrap();
        std::fs::create_dir_all(self.maildir().join("tmp")).unwrap();
        std::fs::write(new.join(name), bytes).unwrap();
    }

    /// Every `.eml` in the outbox folder, parsed, ordered by recipient then subject.
    pub fn replies(&self) -> Vec<Reply> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.outbox()) else {
            return out;
        };
        for e in entries.flatten() {
            if e.path().extension().is_some_and(|x| x == "eml") {
                out.push(Reply::parse(std::fs::read(e.path()).unwrap()));
            }
        }
        out.sort_by(|a, b| (&a.to, &a.subject).cmp(&(&b.to, &b.subject)));
        out
    }

    /// `trialdesk --config <this env's config> args…` (see [`cli`]).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        cli(&self.config_path, args, None)
    }

    /// Audit rows matching `filter` (newest first), `limit` defaulting to 100.
    pub async fn audit(
        &self,
        filter: trialdesk::store::AuditFilter,
    ) -> Vec<trialdesk::store::AuditEntry> {
        let filter = trialdesk::store::AuditFilter {
            limit: if filter.limit == 0 { 100 } else { filter.limit },
            ..filter
        };
        self.app
            .store
            .audit_entries(&filter)
            .await
            .expect("audit query")
    }

    /// Audit rows of one action (newest first).
    pub async fn audit_of(&self, action: &str) -> Vec<trialdesk::store::AuditEntry> {
        self.audit(trialdesk::store::AuditFilter {
            action: Some(action.into()),
            ..Default::default()
        })
        .await
    }
}

/// Runs the real binary: `trialdesk --config <config> args…`, as the operator `operator`
/// (`USER`, what the CLI records as the actor), with `RUST_LOG` unset so the output is the
/// CLI's own, and `stdin` (or nothing) as its input.
pub fn cli(config: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("USER", "operator")
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start trialdesk");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("trialdesk output")
}

/// The stdout of a run that must have succeeded (else the test fails showing both streams).
pub fn ok(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// An outgoing mail read back, with the parts tests look at.
#[derive(Debug, Clone)]
pub struct Reply {
    pub raw: Vec<u8>,
    pub to: String,
    pub from: String,
    pub subject: String,
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub text: String,
    pub html: String,
}

impl Reply {
    pub fn parse(raw: Vec<u8>) -> Reply {
        let m = mail_parser::MessageParser::default()
            .parse(&raw)
            .expect("reply parses");
        let addr = |a: Option<&mail_parser::Address>| {
            a.and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_string()
        };
        let references = match m.references() {
            mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
            mail_parser::HeaderValue::TextList(l) => l.iter().map(|s| s.to_string()).collect(),
            _ => vec![],
        };
        Reply {
            to: addr(m.to()),
            from: addr(m.from()),
            subject: m.subject().unwrap_or_default().to_string(),
            message_id: m.message_id().unwrap_or_default().to_string(),
            in_reply_to: m.in_reply_to().as_text().map(str::to_string),
            references,
            text: m.body_text(0).map(|s| s.to_string()).unwrap_or_default(),
            html: m.body_html(0).map(|s| s.to_string()).unwrap_or_default(),
            raw: raw.clone(),
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        let m = mail_parser::MessageParser::default().parse(&self.raw)?;
        m.header_raw(name).map(|v| v.trim().to_string())
    }
}

/// A minimal RFC 5322 mail.
pub fn mail(
    from: &str,
    subject: &str,
    message_id: &str,
    extra_headers: &str,
    body: &str,
) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: helpdesk@example.test\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Thu, 26 Nov 2026 09:00:00 +0800\r\nMIME-Version: 1.0\r\n{extra_headers}\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}
