//! End-to-end harness: the real Dovecot + Postfix started by `scripts/mailstack` (the test
//! command starts it and exports `TRIALDESK_TEST_MAILSTACK`), per-test accounts, a config for
//! `trialdesk run` against them, the `trialdesk` binary as a child process, and helpers to
//! send mail in (SMTP via Postfix, or LMTP straight into Dovecot) and read mail back (IMAP).
//!
//! Tests that need the stack start with [`Stack::or_skip`]: on a checkout without the stack (a
//! plain `cargo test`: `TRIALDESK_TEST_MAILSTACK` unset and not in CI) they are skipped with a
//! printed reason; wherever the stack is expected (`scripts/test` sets the variable, CI sets
//! `CI`) a missing or broken stack FAILS them with a message saying how to start it.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use trialdesk::app::App;
use trialdesk::config::{Config, ImapConfig, TlsMode};
use trialdesk::inbound::imap::conn::{connect, Session};

use super::{test_database_url, Reply, FIXTURES};

/// The running mail stack, as described by its env file.
#[derive(Debug, Clone)]
pub struct Stack {
    pub dir: PathBuf,
    pub script: PathBuf,
    pub imap_port: u16,
    pub imaps_port: u16,
    pub lmtp_port: u16,
    pub smtp_port: u16,
    pub smtps_port: u16,
    pub submission_port: u16,
    pub password: String,
    pub ca_file: PathBuf,
    pub oauth_tokens: PathBuf,
}

impl Stack {
    /// The stack, or None (the caller returns: the test is skipped) when it is not expected
    /// here: `TRIALDESK_TEST_MAILSTACK` unset and `CI` unset. Otherwise as [`Stack::get`].
    pub fn or_skip() -> Option<Stack> {
        let unset = std::env::var_os("TRIALDESK_TEST_MAILSTACK").is_none_or(|v| v.is_empty());
        if unset && std::env::var_os("CI").is_none() {
            // Straight to stderr: the test harness captures only the print macros, and a
            // skip should be seen.
            let _ =
                writeln!(
                std::io::stderr(),
                "SKIPPED {}: needs the real Dovecot + Postfix (TRIALDESK_TEST_MAILSTACK is not \
                 set; scripts/test starts them, or see tests/common/mailstack.rs)",
                std::thread::current().name().unwrap_or("an end-to-end test"),
            );
            return None;
        }
        Some(Stack::get())
    }

    /// The stack started by the test command. Panics (fails the test) when there is none.
    pub fn get() -> Stack {
        let path = std::env::var("TRIALDESK_TEST_MAILSTACK").unwrap_or_default();
        if path.is_empty() {
            panic!(
                "TRIALDESK_TEST_MAILSTACK is not set: this test needs the real Dovecot + Postfix \
                 stack. Run ./scripts/test, or start it yourself:\n  scripts/mailstack start \
                 /tmp/td-mail && export TRIALDESK_TEST_MAILSTACK=/tmp/td-mail/mailstack.env"
            );
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("TRIALDESK_TEST_MAILSTACK={path} cannot be read ({e}): start the mail stack with scripts/mailstack start DIR")
        });
        let env: HashMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let get = |k: &str| {
            env.get(k)
                .cloned()
                .unwrap_or_else(|| panic!("{path} has no {k}: restart the mail stack"))
        };
        let port = |k: &str| get(k).parse::<u16>().expect("port number");
        let stack = Stack {
            dir: get("MAILSTACK_DIR").into(),
            script: get("MAILSTACK_SCRIPT").into(),
            imap_port: port("MAILSTACK_IMAP_PORT"),
            imaps_port: port("MAILSTACK_IMAPS_PORT"),
            lmtp_port: port("MAILSTACK_LMTP_PORT"),
            smtp_port: port("MAILSTACK_SMTP_PORT"),
            smtps_port: port("MAILSTACK_SMTPS_PORT"),
            submission_port: port("MAILSTACK_SUBMISSION_PORT"),
            password: get("MAILSTACK_PASSWORD"),
            ca_file: get("MAILSTACK_CA_FILE").into(),
            oauth_tokens: get("MAILSTACK_OAUTH_TOKENS").into(),
        };
        if std::net::TcpStream::connect(("127.0.0.1", stack.imap_port)).is_err() {
            panic!(
                "the mail stack in {} is not running (no IMAP on port {}): start it with \
                 scripts/mailstack start {}",
                stack.dir.display(),
                stack.imap_port,
                stack.dir.display()
            );
        }
        stack
    }

    /// `scripts/mailstack CMD DIR ARGS...` (restart Dovecot, stop Postfix, ...).
    pub fn ctl(&self, cmd: &str, args: &[&str]) {
        let out = Command::new(&self.script)
            .arg(cmd)
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("run scripts/mailstack");
        assert!(
            out.status.success(),
            "scripts/mailstack {cmd} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Lets `token` log in as `user` with XOAUTH2 (the stack's introspection server reads it).
    pub fn add_oauth_token(&self, token: &str, user: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.oauth_tokens)
            .expect("open tokens file");
        writeln!(f, "{token} {user}").unwrap();
    }

    pub fn imap_config(&self, user: &str) -> ImapConfig {
        ImapConfig {
            port: self.imap_port,
            tls: TlsMode::None,
            username: user.to_string(),
            password: Some(trialdesk::config::Secret::new(self.password.clone())),
            connect_timeout: Duration::from_secs(10),
            ..ImapConfig::default()
        }
    }

    /// A logged-in IMAP session for `user`, retried while the server restarts.
    pub async fn session(&self, user: &str) -> Session {
        let config = self.imap_config(user);
        let credential = config.credential(Path::new(".")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match connect(&config, None, &credential).await {
                Ok((s, _)) => return s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("test IMAP login as {user}: {e}"),
            }
        }
    }

    /// Every mail in `mailbox` (server name, e.g. `INBOX`, `trialdesk.answered`) of `user`;
    /// empty when the mailbox does not exist. Reads without setting `\Seen`.
    pub async fn messages(&self, user: &str, mailbox: &str) -> Vec<Vec<u8>> {
        for _ in 0..20 {
            match self.try_messages(user, mailbox).await {
                Ok(m) => return m,
                // The server restarting under us (fault tests): try again.
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
        panic!("cannot read {mailbox} of {user}");
    }

    async fn try_messages(&self, user: &str, mailbox: &str) -> Result<Vec<Vec<u8>>, String> {
        let mut s = self.session(user).await;
        match s.examine(mailbox).await {
            Ok(mb) if mb.exists == 0 => {
                let _ = s.logout().await;
                return Ok(vec![]);
            }
            Ok(_) => {}
            Err(async_imap::error::Error::No(_)) => return Ok(vec![]),
            Err(e) => return Err(e.to_string()),
        }
        let fetches: Vec<_> = s
            .fetch("1:*", "BODY.PEEK[]")
            .await
            .map_err(|e| e.to_string())?
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        let out = fetches
            .iter()
            .filter_map(|f| f.body().map(|b| b.to_vec()))
            .collect();
        let _ = s.logout().await;
        Ok(out)
    }

    /// How many mails `mailbox` of `user` holds (0 when it does not exist).
    pub async fn count(&self, user: &str, mailbox: &str) -> usize {
        for _ in 0..20 {
            let mut s = self.session(user).await;
            let r = s.examine(mailbox).await;
            let _ = s.logout().await;
            match r {
                Ok(mb) => return mb.exists as usize,
                Err(async_imap::error::Error::No(_)) => return 0,
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
        panic!("cannot count {mailbox} of {user}");
    }

    /// Waits until `mailbox` of `user` holds at least `n` mails; returns the count reached.
    pub async fn wait_count(&self, user: &str, mailbox: &str, n: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.count(user, mailbox).await;
            if c >= n || Instant::now() > deadline {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sets `\Seen` on every mail in `mailbox`, as a person reading it in another client would.
    pub async fn mark_all_seen(&self, user: &str, mailbox: &str) {
        let mut s = self.session(user).await;
        s.select(mailbox).await.unwrap();
        let _: Vec<_> = s
            .store("1:*", "+FLAGS (\\Seen)")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let _ = s.logout().await;
    }

    /// Sends through Postfix's plain SMTP port, like a partner's mail server would.
    pub async fn send_smtp(&self, from: &str, to: &[&str], bytes: &[u8]) {
        use lettre::AsyncTransport;
        let transport =
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(self.smtp_port)
                .build();
        let envelope = lettre::address::Envelope::new(
            Some(from.parse().unwrap()),
            to.iter().map(|t| t.parse().unwrap()).collect(),
        )
        .unwrap();
        transport
            .send_raw(&envelope, bytes)
            .await
            .unwrap_or_else(|e| panic!("test SMTP send to {to:?}: {e}"));
    }

    /// Delivers straight into Dovecot over LMTP (when Postfix is deliberately down).
    pub fn deliver_lmtp(&self, from: &str, to: &str, bytes: &[u8]) {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.lmtp_port)).expect("LMTP");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut reader = std::io::BufReader::new(s.try_clone().unwrap());
        let mut expect = |code: &str| {
            use std::io::BufRead;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                assert!(line.starts_with(code), "LMTP expected {code}, got {line:?}");
                if line.as_bytes().get(3) != Some(&b'-') {
                    break;
                }
            }
        };
        expect("220");
        write!(s, "LHLO test\r\n").unwrap();
        expect("250");
        write!(s, "MAIL FROM:<{from}>\r\n").unwrap();
        expect("250");
        write!(s, "RCPT TO:<{to}>\r\n").unwrap();
        expect("250");
        write!(s, "DATA\r\n").unwrap();
        expect("354");
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            if line.first() == Some(&b'.') {
                s.write_all(b".").unwrap();
            }
            s.write_all(line).unwrap();
        }
        if !bytes.ends_with(b"\r\n") {
            s.write_all(b"\r\n").unwrap();
        }
        write!(s, ".\r\n").unwrap();
        expect("250");
        write!(s, "QUIT\r\n").unwrap();
    }
}

/// A name unique to this test run, for addresses (`p-3f2a…`).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tracking request as a partner's mail client writes it.
pub fn request(from: &str, to: &str, message_id: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Partner <{from}>\r\nTo: Helpdesk <{to}>\r\nSubject: Trial Endpoint Tracking Request\r\n\
         Message-ID: <{message_id}>\r\nDate: Thu, 26 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// How `trialdesk` reaches the stack in one test.
pub struct Setup {
    /// Lines added to `[mail]`.
    pub mail_extra: String,
    pub imap_port: u16,
    pub imap_tls: &'static str,
    /// Lines added to `[imap]`; `{helpdesk}` stands for the test's helpdesk address.
    pub imap_extra: String,
    /// Whether `[imap]` logs in with the stack's password (off for XOAUTH2).
    pub imap_password: bool,
    pub smtp_port: u16,
    pub smtp_tls: &'static str,
    /// Lines added to `[smtp]`; `{helpdesk}` as above.
    pub smtp_extra: String,
    /// Whole further sections.
    pub extra: String,
}

impl Setup {
    pub fn plain(stack: &Stack) -> Setup {
        Setup {
            mail_extra: String::new(),
            imap_port: stack.imap_port,
            imap_tls: "none",
            imap_extra: String::new(),
            imap_password: true,
            smtp_port: stack.smtp_port,
            smtp_tls: "none",
            smtp_extra: String::new(),
            extra: String::new(),
        }
    }
}

/// One test's world: a helpdesk account, a config file and database in a temp dir.
pub struct E2e {
    pub stack: Stack,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub helpdesk: String,
    pub web_port: u16,
}

impl E2e {
    /// Writes the config (IMAP in, SMTP out, fast retries), creates the database and imports
    /// the fixture partners and shipments.
    pub async fn new(stack: &Stack, setup: Setup) -> E2e {
        let dir = tempfile::tempdir().expect("tempdir");
        let helpdesk = format!("{}@example.test", unique("helpdesk"));
        let url = test_database_url(dir.path()).await;
        let web_port = free_port();
        let text = format!(
            r#"[database]
url = "{url}"

[security]
trusted_authserv_ids = ["mx.helpdesk.example.test"]

[mail]
source = "imap"
transport = "smtp"
from = "{helpdesk}"
from_name = "Trial Helpdesk"
{mail_extra}

[imap]
host = "127.0.0.1"
port = {imap_port}
tls = "{imap_tls}"
username = "{helpdesk}"
{password}
mailbox = "INBOX"
reconnect_min = "200ms"
reconnect_max = "2s"
safety_poll_interval = "20s"
{imap_extra}

[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "{smtp_tls}"
timeout = "10s"
{smtp_extra}

[outbox]
retry_base = "500ms"
retry_max = "2s"
lease = "5s"
max_attempts = 100

[templates]
dir = "{templates}"
signature = "Test Helpdesk"

[carriers]
FedEx = "https://fedex.example/t?no={{tracking_number}}"

[web]
enabled = true
listen = "127.0.0.1:{web_port}"

[reminders]
enabled = false

[health]
max_fetch_silence = "1m"

{extra}
"#,
            mail_extra = setup.mail_extra,
            imap_port = setup.imap_port,
            imap_tls = setup.imap_tls,
            imap_extra = setup.imap_extra.replace("{helpdesk}", &helpdesk),
            password = if setup.imap_password {
                format!("password = \"{}\"", stack.password)
            } else {
                String::new()
            },
            smtp_port = setup.smtp_port,
            smtp_tls = setup.smtp_tls,
            smtp_extra = setup.smtp_extra.replace("{helpdesk}", &helpdesk),
            templates = concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
            extra = setup.extra,
        );
        let config_path = dir.path().join("trialdesk.toml");
        std::fs::write(&config_path, text).unwrap();
        let env = E2e {
            stack: stack.clone(),
            dir,
            config_path,
            helpdesk,
            web_port,
        };
        let app = env.app().await;
        // Not the fixture trials: these tests run `trialdesk run` on the real clock, and the
        // fixtures' fixed dates would make their reminders due or missed depending on the day
        // the suite runs. Tests that need trials import their own, dated from today.
        for name in ["partners", "shipments"] {
            use clap::ValueEnum;
            let kind = trialdesk::import::ImportKind::from_str(name, true).unwrap();
            let path = Path::new(FIXTURES).join("data").join(format!("{name}.csv"));
            trialdesk::import::import_file(
                &app.store,
                kind,
                &path,
                &app.rules.loans,
                &mut |_, _| {},
                0,
            )
            .await
            .expect("fixture import");
        }
        app.store.close().await;
        env
    }

    /// The app on this test's config (to look into the database).
    pub async fn app(&self) -> App {
        let config = Config::load(&self.config_path).expect("test config loads");
        App::open(config).await.expect("app opens")
    }

    /// `trialdesk ARGS` to completion: (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        self.cli_env(args, &[])
    }

    /// `trialdesk ARGS` with extra environment variables (config overrides).
    pub fn cli_env(&self, args: &[&str], vars: &[(&str, &str)]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_trialdesk"))
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .envs(vars.iter().copied())
            .output()
            .expect("run trialdesk");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts `trialdesk run` in the background.
    pub fn spawn(&self) -> Running {
        let log = self.dir.path().join("trialdesk.log");
        spawn_run(&self.config_path, log, self.web_port)
    }

    /// Starts one more `trialdesk run` instance on this test's database and mailbox, with its
    /// own config (`trialdesk-NAME.toml`: only the web port differs) and log
    /// (`trialdesk-NAME.log`). Spawning the same name again reuses its config and port.
    pub fn spawn_as(&self, name: &str) -> Running {
        let config = self.dir.path().join(format!("trialdesk-{name}.toml"));
        let listen = |text: &str| -> u16 {
            text.lines()
                .find_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
                .and_then(|p| p.trim_end_matches('"').parse().ok())
                .expect("web port in the test config")
        };
        let port = match std::fs::read_to_string(&config) {
            Ok(text) => listen(&text),
            Err(_) => {
                let port = free_port();
                let base = std::fs::read_to_string(&self.config_path).unwrap();
                let text = base.replace(
                    &format!("listen = \"127.0.0.1:{}\"", listen(&base)),
                    &format!("listen = \"127.0.0.1:{port}\""),
                );
                std::fs::write(&config, text).unwrap();
                port
            }
        };
        spawn_run(
            &config,
            self.dir.path().join(format!("trialdesk-{name}.log")),
            port,
        )
    }

    /// The log of instance `name` (see `spawn_as`).
    pub fn log_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("trialdesk-{name}.log")))
            .unwrap_or_default()
    }

    /// The log of every `trialdesk run` of this test.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("trialdesk.log")).unwrap_or_default()
    }
}

impl Drop for E2e {
    /// Keeps the trialdesk log of a failed test (or of every test with TRIALDESK_TEST_KEEP=1)
    /// in the test run's folder, where scripts/test leaves it for inspection.
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("TRIALDESK_TEST_KEEP").is_some() {
            let base = std::env::var_os("TRIALDESK_TEST_RUN_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            // trialdesk.log, and trialdesk-NAME.log of each instance (`spawn_as`).
            for entry in std::fs::read_dir(self.dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(suffix) = name
                    .strip_prefix("trialdesk")
                    .and_then(|n| n.strip_suffix(".log"))
                else {
                    continue;
                };
                let to = base.join(format!("{}{suffix}.log", self.helpdesk));
                if std::fs::copy(entry.path(), &to).is_ok() {
                    eprintln!("trialdesk log kept in {}", to.display());
                }
            }
        }
    }
}

/// `trialdesk --config CONFIG run`, logging to `log`.
fn spawn_run(config: &Path, log: PathBuf, web_port: u16) -> Running {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("RUST_LOG", "info,trialdesk=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn trialdesk run");
    Running {
        child: Some(child),
        log,
        web_port,
    }
}

/// A `trialdesk run` child process; killed when dropped.
pub struct Running {
    child: Option<Child>,
    pub log: PathBuf,
    web_port: u16,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`, ...) to the running process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGTERM, then waits (at most `limit`) for the graceful exit.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("trialdesk did not stop within {limit:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /healthz`: (HTTP status, JSON body); None while nothing listens.
    pub fn health(&self) -> Option<(u16, serde_json::Value)> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.web_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut raw = String::new();
        s.read_to_string(&mut raw).ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, serde_json::from_str(body).ok()?))
    }

    /// Waits until `/healthz` reports the IMAP connection up.
    pub fn wait_connected(&mut self, limit: Duration) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait().unwrap() {
                    panic!(
                        "trialdesk exited ({status}) before connecting:\n{}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    );
                }
            }
            if let Some((_, json)) = self.health() {
                if json["imap"]["connected"] == serde_json::Value::Bool(true) {
                    return json;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "trialdesk did not connect within {limit:?}:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs one SQL count on the test database.
pub async fn sql_count(app: &App, sql: &'static str) -> i64 {
    use trialdesk::store::Backend;
    match app.store.backend() {
        Backend::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Backend::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

/// Runs one SQL statement on the test database (to change what the product's API would not).
pub async fn sql_exec(app: &App, sql: &'static str) {
    use trialdesk::store::Backend;
    match app.store.backend() {
        Backend::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()).unwrap(),
        Backend::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()).unwrap(),
    }
}

// Backlogs of tracking requests and their answers, shared by the fault tests and the
// multi-instance tests.

/// Partner mailboxes across the fixture partners' domains, each with a loan it owns.
pub fn partners(n: usize) -> Vec<(String, &'static str)> {
    let domains = [
        ("pacrim.example.com", "D50261001"),
        ("huadong.example.cn", "D20261001"),
        ("nordwind.example.de", "D30261002"),
        ("sakura-net.example.jp", "D40261001"),
    ];
    (0..n)
        .map(|i| {
            let (domain, loan) = domains[i % domains.len()];
            (format!("{}@{domain}", unique(&format!("p{i}"))), loan)
        })
        .collect()
}

/// Sends `per_partner` requests from each partner through Postfix; returns request
/// Message-ID → partner.
pub async fn send_requests(
    stack: &Stack,
    helpdesk: &str,
    partners: &[(String, &'static str)],
    per_partner: usize,
) -> HashMap<String, String> {
    let mut sent = HashMap::new();
    let mut tasks = Vec::new();
    for chunk in partners.chunks(partners.len().div_ceil(4).max(1)) {
        let chunk = chunk.to_vec();
        let stack = stack.clone();
        let helpdesk = helpdesk.to_string();
        let mut ids = Vec::new();
        for (p, _) in &chunk {
            for _ in 0..per_partner {
                ids.push((
                    unique("req") + "@" + p.split('@').nth(1).unwrap(),
                    p.clone(),
                ));
            }
        }
        for (id, p) in &ids {
            sent.insert(id.clone(), p.clone());
        }
        let loans: HashMap<String, &str> = chunk.iter().map(|(p, l)| (p.clone(), *l)).collect();
        tasks.push(tokio::spawn(async move {
            for (id, p) in ids {
                let body = format!("Please check {} for us.", loans[&p]);
                stack
                    .send_smtp(&p, &[&helpdesk], &request(&p, &helpdesk, &id, &body))
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    sent
}

/// Every reply in the partners' inboxes: (In-Reply-To, Message-ID) per copy.
pub async fn replies(stack: &Stack, partners: &[(String, &'static str)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (p, _) in partners {
        for raw in stack.messages(p, "INBOX").await {
            let r = Reply::parse(raw);
            assert_eq!(&r.to, p, "reply to the wrong address");
            out.push((r.in_reply_to.unwrap_or_default(), r.message_id));
        }
    }
    out
}

/// Waits until every request in `sent` has a reply in its partner's inbox (or `limit`);
/// returns every reply copy found.
pub async fn wait_answers(
    stack: &Stack,
    partners: &[(String, &'static str)],
    sent: &HashMap<String, String>,
    limit: Duration,
) -> Vec<(String, String)> {
    let deadline = Instant::now() + limit;
    loop {
        let mut total = 0;
        for (p, _) in partners {
            total += stack.count(p, "INBOX").await;
        }
        if total >= sent.len() {
            let got = replies(stack, partners).await;
            let answered: HashSet<&str> = got.iter().map(|(irt, _)| irt.as_str()).collect();
            if sent.keys().all(|k| answered.contains(k.as_str())) || Instant::now() > deadline {
                return got;
            }
        } else if Instant::now() > deadline {
            return replies(stack, partners).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Each request answered by exactly one distinct reply; returns how many extra *copies* of
/// replies arrived (the same message delivered twice).
pub fn assert_one_answer_each(sent: &HashMap<String, String>, got: &[(String, String)]) -> usize {
    let mut by_request: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (irt, mid) in got {
        by_request
            .entry(irt.as_str())
            .or_default()
            .insert(mid.as_str());
    }
    let unanswered: Vec<&String> = sent
        .keys()
        .filter(|k| !by_request.contains_key(k.as_str()))
        .collect();
    assert!(
        unanswered.is_empty(),
        "{} request(s) never answered, e.g. {:?}",
        unanswered.len(),
        unanswered.first()
    );
    let twice: Vec<_> = by_request.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "requests answered twice (different replies): {twice:?}"
    );
    let unknown: Vec<_> = by_request
        .keys()
        .filter(|k| !sent.contains_key(**k))
        .collect();
    assert!(
        unknown.is_empty(),
        "replies to unknown requests: {unknown:?}"
    );
    got.len() - by_request.len()
}
