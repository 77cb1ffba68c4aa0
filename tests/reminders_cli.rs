//! `trialdesk reminders plan --json`, `reminders run --date` and `trials extend` through the
//! binary, with a config holding only `[database]`.

mod common;

use std::path::PathBuf;
use std::process::Output;

use serde_json::{json, Value};

const PARTNERS: &str = "partner_id,name,domains,admin_emails,language
P01,华东智联科技有限公司,huadong.example.cn,wangwei@huadong.example.cn;it-admin@huadong.example.cn,zh
P02,Nordwind Systemhaus GmbH,nordwind.example.de,admin@nordwind.example.de,de
";

const TRIALS: &str = "trial_id,partner_id,customer,customer_admin_emails,services,starts_on,expires_on,extended,converted,timezone,language
C-1,P01,上海浦江银行,Z@c1.example.cn;a@c1.example.cn,meeting;calling,2026-11-01,2027-01-10,false,false,Asia/Shanghai,zh
C-2,P02,Brauerei Kessler,it@c2.example.de,meeting,2026-11-01,2027-01-03,false,false,Europe/Berlin,de
C-3,P02,Converted GmbH,it@c3.example.de,meeting;calling,2026-11-01,2027-01-10,false,true,Europe/Berlin,de
C-4,P01,New York Branch,ny@c4.example.com,calling,2026-10-01,2026-11-26,false,false,America/New_York,en
";

struct Cli {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Cli {
    async fn new() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let url = common::test_database_url(dir.path()).await;
        let config = dir.path().join("only-database.toml");
        std::fs::write(&config, format!("[database]\nurl = \"{url}\"\n")).unwrap();
        std::fs::write(dir.path().join("partners.csv"), PARTNERS).unwrap();
        std::fs::write(dir.path().join("trials.csv"), TRIALS).unwrap();
        let cli = Cli { _dir: dir, config };
        for kind in ["partners", "trials"] {
            let file = cli.path(&format!("{kind}.csv"));
            cli.ok(&["import", kind, file.to_str().unwrap()]);
        }
        cli
    }

    fn path(&self, name: &str) -> PathBuf {
        self.config.parent().unwrap().join(name)
    }

    fn run(&self, args: &[&str]) -> Output {
        common::cli(&self.config, args, None)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `reminders plan --date D --json`: stdout must be exactly one JSON array.
    fn plan(&self, date: &str) -> Value {
        let stdout = self.ok(&["reminders", "plan", "--date", date, "--json"]);
        let value: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {stdout:?}"));
        assert!(value.is_array(), "{stdout}");
        value
    }
}

fn item(trial: &str, kind: &str, audience: &str, recipients: &[&str], due: &str) -> Value {
    json!({"trial_id": trial, "kind": kind, "audience": audience, "recipients": recipients, "due_on": due})
}

const CA: &str = "customer_admins";
const PA: &str = "partner_admins";
const C1: &[&str] = &["a@c1.example.cn", "z@c1.example.cn"];
const P01: &[&str] = &["it-admin@huadong.example.cn", "wangwei@huadong.example.cn"];
const C2: &[&str] = &["it@c2.example.de"];
const P02: &[&str] = &["admin@nordwind.example.de"];
const C4: &[&str] = &["ny@c4.example.com"];

#[tokio::test]
async fn plan_json_lists_each_open_window_sorted_and_changes_nothing() {
    let cli = Cli::new().await;
    // C-1 expires 2027-01-10 (calling), C-2 2027-01-03, C-3 converted, C-4 2026-11-26 (calling).
    let cases = [
        // First day of C-1's week-before window, and C-2's expiry day.
        (
            "2027-01-03",
            vec![
                item("C-1", "expires_in_7_days", CA, C1, "2027-01-03"),
                item("C-1", "expires_in_7_days", PA, P01, "2027-01-03"),
                item("C-2", "expires_today", CA, C2, "2027-01-03"),
                item("C-2", "expires_today", PA, P02, "2027-01-03"),
            ],
        ),
        // Last day of C-2's week-before window (due 12-27); C-4's grace window ended on 01-01.
        (
            "2027-01-02",
            vec![
                item("C-2", "expires_in_7_days", CA, C2, "2026-12-27"),
                item("C-2", "expires_in_7_days", PA, P02, "2026-12-27"),
            ],
        ),
        // Year end: C-4's grace period reminder (due 12-26) on its last day, before C-2's.
        (
            "2027-01-01",
            vec![
                item("C-4", "grace_period_ended", CA, C4, "2026-12-26"),
                item("C-4", "grace_period_ended", PA, P01, "2026-12-26"),
                item("C-2", "expires_in_7_days", CA, C2, "2026-12-27"),
                item("C-2", "expires_in_7_days", PA, P02, "2026-12-27"),
            ],
        ),
        // C-1's expiry day and C-4's numbers release (E + 45); converted C-3 never appears.
        (
            "2027-01-10",
            vec![
                item("C-1", "expires_today", CA, C1, "2027-01-10"),
                item("C-1", "expires_today", PA, P01, "2027-01-10"),
                item("C-4", "calling_numbers_released", CA, C4, "2027-01-10"),
                item("C-4", "calling_numbers_released", PA, P01, "2027-01-10"),
            ],
        ),
        // C-4's expiry-day window (11-26 ..= 12-02) still holds 12-01; nothing on 12-10.
        (
            "2026-12-01",
            vec![
                item("C-4", "expires_today", CA, C4, "2026-11-26"),
                item("C-4", "expires_today", PA, P01, "2026-11-26"),
            ],
        ),
        ("2026-12-10", vec![]),
    ];
    for (date, want) in &cases {
        assert_eq!(
            cli.plan(date),
            Value::Array(want.clone()),
            "plan --date {date}"
        );
    }
    // Planning changed nothing: the same answers again.
    for (date, want) in &cases {
        assert_eq!(
            cli.plan(date),
            Value::Array(want.clone()),
            "again --date {date}"
        );
    }
    // Without --json: one line per reminder.
    let human = cli.ok(&["reminders", "plan", "--date", "2027-01-10"]);
    assert!(
        human.contains("4 reminder(s)") && human.contains("calling_numbers_released"),
        "{human}"
    );
    // Issue 17: catch-up reminders are listed as such, each with its own due date.
    let human = cli.ok(&["reminders", "plan", "--date", "2027-01-01"]);
    assert!(
        human.starts_with(
            "4 reminder(s) due on or before 2027-01-01, with catch-up from 2026-12-26:\n"
        ),
        "{human}"
    );
    assert!(human.contains("due on"), "{human}");
    assert!(
        human
            .lines()
            .any(|l| l.trim_start().starts_with("2026-12-26  C-4")
                && l.contains("grace_period_ended")),
        "{human}"
    );
    let none = cli.ok(&["reminders", "plan", "--date", "2026-12-10"]);
    assert_eq!(
        none,
        "no reminders due on or before 2026-12-10, with catch-up from 2026-12-04\n"
    );
    // A bad date is refused.
    let bad = cli.run(&["reminders", "plan", "--date", "2027-02-30", "--json"]);
    assert!(!bad.status.success());
    assert!(bad.stdout.is_empty());
}

#[tokio::test]
async fn run_then_extend_replans_and_the_second_extension_is_refused() {
    let cli = Cli::new().await;
    // The human summary lists the kinds that went out.
    let human = cli.ok(&["reminders", "run", "--date", "2027-01-03"]);
    assert!(
        human.contains("queued 4 reminder mail(s)")
            && human.contains("\n  expires_in_7_days 2, expires_today 2\n"),
        "{human}"
    );
    let out = cli.ok(&["reminders", "run", "--date", "2027-01-10", "--json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["queued"], 4, "{out}");
    // Issue 17: what was queued, by kind.
    assert_eq!(
        report["queued_by_kind"],
        json!({"expires_in_7_days": 0, "expires_today": 2, "grace_period_ended": 0, "calling_numbers_released": 2}),
        "{out}"
    );
    // Queued reminders leave the plan, for that day and the rest of their windows.
    assert_eq!(cli.plan("2027-01-10"), json!([]));
    assert_eq!(cli.plan("2027-01-12"), json!([]));
    let again = cli.ok(&["reminders", "run", "--date", "2027-01-10", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap()["queued"], 0);

    // Extend C-1 (2027-01-10 → 2027-02-09): the new date has its own schedule.
    let extended = cli.ok(&["trials", "extend", "C-1"]);
    assert!(extended.contains("2027-02-09"), "{extended}");
    assert_eq!(
        cli.plan("2027-02-02"),
        json!([
            item("C-1", "expires_in_7_days", CA, C1, "2027-02-02"),
            item("C-1", "expires_in_7_days", PA, P01, "2027-02-02"),
            item("C-2", "grace_period_ended", CA, C2, "2027-02-02"),
            item("C-2", "grace_period_ended", PA, P02, "2027-02-02"),
        ])
    );
    for (id, message) in [
        ("C-1", "already extended"),
        ("C-3", "converted"),
        ("C-9", "no trial"),
    ] {
        let refused = cli.run(&["trials", "extend", id]);
        assert!(!refused.status.success(), "{id}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(message), "{id}: {stderr}");
    }
    // The refused extensions changed nothing: C-1 still expires on 2027-02-09.
    assert_eq!(
        cli.plan("2027-02-09"),
        json!([
            item("C-1", "expires_today", CA, C1, "2027-02-09"),
            item("C-1", "expires_today", PA, P01, "2027-02-09"),
        ])
    );
}
