//! Issue 17, "the first hour": what a new operator trips over on the command line, run as the
//! real binary — error messages that say each cause once with a hint, a PostgreSQL server that
//! refuses, and a `check` that changes nothing.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn td(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trialdesk"))
        .current_dir(dir)
        .args(args)
        .env_remove("TRIALDESK_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.push((p.display().to_string(), Vec::new()));
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_missing_config_file_is_named_once_with_how_to_choose_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = td(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "each cause once:\n{err}"
    );
    assert!(
        err.starts_with("error: cannot read config file config/trialdesk.toml: "),
        "{err}"
    );
    for needle in [
        "--config",
        "TRIALDESK_CONFIG",
        "config/trialdesk.example.toml",
    ] {
        assert!(err.contains(needle), "{needle}:\n{err}");
    }
    assert!(stdout(&out).is_empty());
}

#[test]
fn an_sqlite_file_that_does_not_exist_says_so_once_and_suggests_mode_rwc() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[database]\nurl = \"sqlite://x.db\"\n",
    )
    .unwrap();
    let out = td(dir.path(), &["--config", "c.toml", "migrate"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(
        err.matches("unable to open database file").count(),
        1,
        "{err}"
    );
    assert!(err.contains("hint: ") && err.contains("?mode=rwc"), "{err}");
    assert!(!dir.path().join("x.db").exists());
}

#[test]
fn postgres_on_a_closed_port_fails_fast_with_the_real_cause() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        format!("[database]\nurl = \"postgres://u:secret@127.0.0.1:{port}/x\"\n"),
    )
    .unwrap();
    let started = Instant::now();
    let out = td(dir.path(), &["--config", "c.toml", "migrate"]);
    let took = started.elapsed();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(took < Duration::from_secs(6), "took {took:?}: {err}");
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(!err.contains("pool timed out"), "{err}");
    assert!(!err.contains("secret"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn check_changes_nothing_and_says_the_same_twice() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[database]\nurl = \"sqlite://data/td.db?mode=rwc\"\n",
    )
    .unwrap();
    let before = snapshot(dir.path());
    let first = td(dir.path(), &["--config", "c.toml", "check"]);
    let second = td(dir.path(), &["--config", "c.toml", "check"]);
    assert_eq!(
        snapshot(dir.path()),
        before,
        "check created or changed files"
    );
    assert!(
        first.status.success(),
        "{}{}",
        stdout(&first),
        stderr(&first)
    );
    assert_eq!(stdout(&first), stdout(&second));
    let text = stdout(&first);
    assert!(text.contains("does not exist yet"), "{text}");
    assert!(
        text.contains("outbox folder") && text.contains("missing; created at the first run"),
        "{text}"
    );

    // Once the database exists, check reads it without changing it.
    let migrated = td(dir.path(), &["--config", "c.toml", "migrate"]);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let db = dir.path().join("data/td.db");
    let bytes = std::fs::read(&db).unwrap();
    let first = td(dir.path(), &["--config", "c.toml", "check"]);
    let second = td(dir.path(), &["--config", "c.toml", "check"]);
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
    assert!(!dir.path().join("outbox").exists());
    assert!(!dir.path().join("maildir").exists());
    assert_eq!(stdout(&first), stdout(&second));
    assert!(
        stdout(&first).contains("reachable (sqlite)"),
        "{}",
        stdout(&first)
    );

    // A folder that does not exist is a failure, and check does not create it either.
    std::fs::write(
        dir.path().join("d.toml"),
        "[database]\nurl = \"sqlite://nowhere/td.db?mode=rwc\"\n",
    )
    .unwrap();
    for _ in 0..2 {
        let out = td(dir.path(), &["--config", "d.toml", "check"]);
        assert!(!out.status.success());
        assert!(stdout(&out).contains("folder"), "{}", stdout(&out));
        assert!(!dir.path().join("nowhere").exists());
    }
}

/// A directory with a config (SQLite, created on first use) and the sample partners imported.
fn with_partners() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[database]\nurl = \"sqlite://td.db?mode=rwc\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("partners.csv"),
        "partner_id,name,domains,admin_emails,language\n\
         P01,Huadong,huadong.example.cn,it@huadong.example.cn,zh\n",
    )
    .unwrap();
    let out = td(
        dir.path(),
        &["--config", "c.toml", "import", "partners", "partners.csv"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    dir
}

const SHIPMENTS_HEADER: &str =
    "loan_number,partner_id,customer,status,carrier,tracking_number,shipped_on,eta,delivered_on,items\n";

#[test]
fn csv_import_reports_every_problem_in_one_pass_and_imports_nothing() {
    let dir = with_partners();
    std::fs::write(
        dir.path().join("shipments.csv"),
        format!(
            "{SHIPMENTS_HEADER}\
             D20261001,P01,Good,in_transit,EMS,EA1,2026-11-03,2026-11-08,,Cam\n\
             D20261002,P99,Unknown partner,in_transit,EMS,EA2,2026-11-03,2026-11-08,,Cam\n\
             D20261003,P01,Short row,in_transit\n\
             D20261004,P01,Long row,in_transit,EMS,EA4,2026-11-03,2026-11-08,,Cam,surplus\n\
             D20261005,P01,Backwards,delivered,EMS,EA5,2026-11-03,2026-11-08,2026-11-01,Cam\n\
             D20261006,P01,Shipped yet delivered,shipped,EMS,EA6,2026-11-03,2026-11-08,2026-11-05,Cam\n\
             D20261007,P01,Bad status,nope,EMS,EA7,2026-11-03,2026-11-08,,Cam\n"
        ),
    )
    .unwrap();
    let out = td(
        dir.path(),
        &["--config", "c.toml", "import", "shipments", "shipments.csv"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("6 problem(s) found, nothing was imported"),
        "{err}"
    );
    for needle in [
        "line 3, column partner_id: unknown partner \"P99\"",
        "line 4: 4 field(s) where the header has 10",
        "line 5: 11 field(s) where the header has 10",
        "line 6, column delivered_on: 2026-11-01 is before shipped_on 2026-11-03",
        "line 7, column delivered_on: 2026-11-05 is set but status is shipped",
        "line 8, column status:",
    ] {
        assert!(err.contains(needle), "{needle}:\n{err}");
    }
    assert!(!err.contains("line 2"), "{err}");
}

#[test]
fn a_semicolon_or_tab_separated_file_is_read_and_said_so() {
    let dir = with_partners();
    for (name, sep, word) in [("semi.csv", ";", "semicolon"), ("tab.csv", "\t", "tab")] {
        let text = format!(
            "{}D20261001{sep}P01{sep}Kunde{sep}in_transit{sep}DHL{sep}JJ1{sep}2026-11-03{sep}2026-11-08{sep}{sep}\"Cam; Mini\"\n",
            SHIPMENTS_HEADER.replace(',', sep)
        );
        std::fs::write(dir.path().join(name), text).unwrap();
        let out = td(
            dir.path(),
            &["--config", "c.toml", "import", "shipments", name],
        );
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let said = stdout(&out);
        assert!(
            said.contains("imported 1 shipments") && said.contains(&format!("{word}-separated")),
            "{said}"
        );
    }
}

#[test]
fn completions_and_the_manual_page_come_from_the_command_definitions() {
    // No configuration needed: a fresh checkout has none.
    let dir = tempfile::tempdir().unwrap();
    for (shell, start) in [
        ("bash", "_trialdesk()"),
        ("zsh", "#compdef trialdesk"),
        ("fish", "complete -c trialdesk"),
    ] {
        let out = td(dir.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains(start), "{shell}:\n{script}");
        for word in ["reminders", "queue", "config", "completions"] {
            assert!(script.contains(word), "{shell} lacks {word}");
        }
    }
    let bash = td(dir.path(), &["completions", "bash"]);
    let path = dir.path().join("trialdesk.bash");
    std::fs::write(&path, &bash.stdout).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(syntax.status.success(), "{}", stderr(&syntax));

    let man = td(dir.path(), &["man"]);
    assert!(man.status.success(), "{}", stderr(&man));
    let page = stdout(&man);
    assert!(page.contains(".TH trialdesk 1"), "{page}");
    for section in [
        "TRIALDESK QUEUE ANSWER",
        "TRIALDESK REMINDERS PLAN",
        "TRIALDESK IMPORT",
    ] {
        assert!(page.contains(section), "{section}");
    }
    assert!(page.contains("Free text"), "the --text help line");
    let bad = td(dir.path(), &["completions", "tcsh"]);
    assert!(!bad.status.success());
}

#[test]
fn options_come_in_one_order_in_every_help() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        &["queue", "list"][..],
        &["queue", "show"],
        &["queue", "answer"],
        &["queue", "resolve"],
        &["reminders", "plan"],
        &["reminders", "run"],
        &["users", "list"],
        &["import"],
        &["run"],
        &["check"],
        &["export"],
        &["explain"],
        &["completions"],
        &["users", "add"],
        &["trials", "extend"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = td(dir.path(), &args);
        assert!(out.status.success(), "{cmd:?}");
        let help = stdout(&out);
        // Command options, then --json, then --as, then the global --config, then --help.
        let at = |flag: &str| help.find(&format!("      {flag} "));
        let order: Vec<usize> = ["--json", "--as", "--config", "-h, --help"]
            .iter()
            .filter_map(|f| at(f).or_else(|| f.starts_with("-h").then(|| help.find(f)).flatten()))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{cmd:?}:\n{help}");
        assert!(help.contains("--config <FILE>"), "{cmd:?}:\n{help}");
        // Every argument has a help line: no option line ends right after its name.
        for line in help.lines() {
            let t = line.trim_start();
            if t.starts_with("--") || t.starts_with('<') {
                assert!(t.contains("  "), "{cmd:?}: no help for {t:?}");
            }
        }
    }
}

#[test]
fn postgres_that_accepts_but_never_answers_is_given_up_after_5_s() {
    // Accepts the TCP connection and says nothing (a hung server, a wrong port behind a proxy).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for s in listener.incoming().flatten() {
            open.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        format!("[database]\nurl = \"postgres://u@127.0.0.1:{port}/x\"\n"),
    )
    .unwrap();
    let started = Instant::now();
    let out = td(dir.path(), &["--config", "c.toml", "migrate"]);
    let took = started.elapsed();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "took {took:?}: {err}"
    );
    assert!(
        err.contains("no answer from the server within 5 s"),
        "{err}"
    );
}
