//! A simulated quarter (2026-11-25 .. 2027-03-31), walked with a manual clock the way the
//! scheduler lives: it steps at fixed times every day (00:30, 08:59, 09:00 and 23:59 Shanghai
//! time) and, in between, sleeps exactly until the moment `next_due` names. Trials in six
//! zones, with and without calling, converted, extended by re-import and by `trials extend`,
//! imported late, and two outages (3 days: caught up; 10 days: one reminder missed). Every mail
//! is asserted: kind, audience, recipients, the instant it was queued, and exactly once.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{Reply, TestEnv};
use jiff::Timestamp;
use tokio::sync::Notify;
use trialdesk::clock::ManualClock;
use trialdesk::import::ImportKind;
use trialdesk::outbound::file::FileTransport;
use trialdesk::outbound::Sender;
use trialdesk::reminders::{self, ExtendError};
use trialdesk::worker::Outcome;

const HEADER: &str = "trial_id,partner_id,customer,customer_admin_emails,services,starts_on,expires_on,extended,converted,timezone,language\n";

/// Trials added to the fixtures (`tests/fixtures/data/trials.csv`) at the start.
const QUARTER_TRIALS: &str = "\
Q-NYE,P04,Year End Dental,ny2@nye.example.com;ny1@nye.example.com,meeting;calling,2026-12-01,2026-12-31,false,false,America/New_York,en
Q-KIR,P03,Line Islands Fisheries,boss@kir.example.jp,message,2026-12-01,2027-01-01,false,false,Pacific/Kiritimati,ja
Q-BER,P02,Frühling AG,it@fruehling.example.de,meeting;calling,2027-02-01,2027-03-28,false,false,Europe/Berlin,de
Q-NYD,P04,Daylight Savings Bank,it@dsb.example.com,meeting,2027-02-01,2027-03-14,false,false,America/New_York,en
Q-CONV,P01,杭州西湖茶业,it@xihu.example.cn,meeting,2026-12-01,2027-01-20,false,false,Asia/Shanghai,zh
Q-REIMP,P02,Kessler Mälzerei,it@maelzerei.example.de,message;meeting,2026-12-01,2027-01-10,false,false,Europe/Berlin,de
Q-EXT,P03,Osaka Robotics,it@osaka-robo.example.jp,meeting,2026-12-01,2027-02-01,false,false,Asia/Tokyo,ja
Q-MISS,P01,成都熊猫物流,it@panda.example.cn,meeting,2027-01-01,2027-02-11,false,false,Asia/Shanghai,zh
Q-CATCH,P01,苏州园林设计院,it@yuanlin.example.cn,meeting;calling,2026-12-01,2027-01-17,false,false,Asia/Shanghai,zh
";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Recipients per trial (customer admins) and per partner (partner admins), sorted.
fn customer_admins(trial: &str) -> Vec<&'static str> {
    match trial {
        "T-1001" => vec![
            "admin@pujiang-bank.example.cn",
            "it@pujiang-bank.example.cn",
        ],
        "T-1002" => vec!["itdesk@zhongshan-univ.example.cn"],
        "T-2001" => vec!["it@kessler-brau.example.de"],
        "T-3001" => vec!["admin@kyoto-design.example.jp"],
        "Q-NYE" => vec!["ny1@nye.example.com", "ny2@nye.example.com"],
        "Q-KIR" => vec!["boss@kir.example.jp"],
        "Q-BER" => vec!["it@fruehling.example.de"],
        "Q-NYD" => vec!["it@dsb.example.com"],
        "Q-CONV" => vec!["it@xihu.example.cn"],
        "Q-REIMP" => vec!["it@maelzerei.example.de"],
        "Q-EXT" => vec!["it@osaka-robo.example.jp"],
        "Q-MISS" => vec!["it@panda.example.cn"],
        "Q-CATCH" => vec!["it@yuanlin.example.cn"],
        "Q-LATE" => vec!["late@late.example.com"],
        other => panic!("unknown trial {other}"),
    }
}

fn partner_admins(trial: &str) -> Vec<&'static str> {
    match trial {
        "T-1001" | "T-1002" | "Q-CONV" | "Q-MISS" | "Q-CATCH" => {
            vec!["it-admin@huadong.example.cn", "wangwei@huadong.example.cn"]
        }
        "T-2001" | "Q-BER" | "Q-REIMP" => vec!["admin@nordwind.example.de"],
        "T-3001" | "Q-KIR" | "Q-EXT" => vec!["admin@sakura-net.example.jp"],
        "Q-NYE" | "Q-NYD" | "Q-LATE" => vec!["ops@pacrim.example.com"],
        other => panic!("unknown trial {other}"),
    }
}

/// (trial, kind, expires_on it was planned from, the instant it must be queued at).
/// Send time is 09:00 local: Shanghai 01:00Z, Tokyo 00:00Z, Berlin 08:00Z (CET) / 07:00Z
/// (CEST), New York 14:00Z (EST) / 13:00Z (EDT), Kiritimati 19:00Z the day before.
#[rustfmt::skip]
const EXPECTED: &[(&str, &str, &str, &str)] = &[
    // Fixtures.
    ("T-1001", "expires_in_7_days", "2026-12-03", "2026-11-26T01:00:00Z"),
    ("T-1001", "expires_today", "2026-12-03", "2026-12-03T01:00:00Z"),
    // Due 2027-01-02, during outage A; back at 11:00 Shanghai on 01-04: sent at once.
    ("T-1001", "grace_period_ended", "2026-12-03", "2027-01-04T03:00:00Z"),
    ("T-1001", "calling_numbers_released", "2026-12-03", "2027-01-17T01:00:00Z"),
    ("T-1002", "expires_in_7_days", "2026-12-30", "2026-12-23T01:00:00Z"),
    ("T-1002", "expires_today", "2026-12-30", "2026-12-30T01:00:00Z"),
    ("T-1002", "grace_period_ended", "2026-12-30", "2027-01-29T01:00:00Z"),
    ("T-2001", "expires_in_7_days", "2026-12-04", "2026-11-27T08:00:00Z"),
    ("T-2001", "expires_today", "2026-12-04", "2026-12-04T08:00:00Z"),
    // Due 2027-01-03, during outage A; back at 04:00 Berlin on 01-04: sent at 09:00 local.
    ("T-2001", "grace_period_ended", "2026-12-04", "2027-01-04T08:00:00Z"),
    ("T-2001", "calling_numbers_released", "2026-12-04", "2027-01-18T08:00:00Z"),
    ("T-3001", "expires_in_7_days", "2026-12-20", "2026-12-13T00:00:00Z"),
    ("T-3001", "expires_today", "2026-12-20", "2026-12-20T00:00:00Z"),
    ("T-3001", "grace_period_ended", "2026-12-20", "2027-01-19T00:00:00Z"),
    // Year end in New York; the calling release (due 02-14) falls in outage B and goes out on
    // the last day of its window.
    ("Q-NYE", "expires_in_7_days", "2026-12-31", "2026-12-24T14:00:00Z"),
    ("Q-NYE", "expires_today", "2026-12-31", "2026-12-31T14:00:00Z"),
    ("Q-NYE", "grace_period_ended", "2026-12-31", "2027-01-30T14:00:00Z"),
    ("Q-NYE", "calling_numbers_released", "2026-12-31", "2027-02-20T14:00:00Z"),
    // UTC+14: the local New Year's Day begins at 10:00Z on Dec 31.
    ("Q-KIR", "expires_in_7_days", "2027-01-01", "2026-12-24T19:00:00Z"),
    ("Q-KIR", "expires_today", "2027-01-01", "2026-12-31T19:00:00Z"),
    ("Q-KIR", "grace_period_ended", "2027-01-01", "2027-01-30T19:00:00Z"),
    // Berlin springs forward on 2027-03-28.
    ("Q-BER", "expires_in_7_days", "2027-03-28", "2027-03-21T08:00:00Z"),
    ("Q-BER", "expires_today", "2027-03-28", "2027-03-28T07:00:00Z"),
    // New York springs forward on 2027-03-14.
    ("Q-NYD", "expires_in_7_days", "2027-03-14", "2027-03-07T14:00:00Z"),
    ("Q-NYD", "expires_today", "2027-03-14", "2027-03-14T13:00:00Z"),
    // Converted on 2027-01-15: nothing after.
    ("Q-CONV", "expires_in_7_days", "2027-01-20", "2027-01-13T01:00:00Z"),
    // Due 01-03 (outage A) for the old date; re-imported on 01-06 with 2027-02-09.
    ("Q-REIMP", "expires_in_7_days", "2027-01-10", "2027-01-04T08:00:00Z"),
    ("Q-REIMP", "expires_in_7_days", "2027-02-09", "2027-02-02T08:00:00Z"),
    ("Q-REIMP", "expires_today", "2027-02-09", "2027-02-09T08:00:00Z"),
    ("Q-REIMP", "grace_period_ended", "2027-02-09", "2027-03-11T08:00:00Z"),
    // `trials extend` on 01-28: 2027-02-01 → 2027-03-03.
    ("Q-EXT", "expires_in_7_days", "2027-02-01", "2027-01-25T00:00:00Z"),
    ("Q-EXT", "expires_in_7_days", "2027-03-03", "2027-02-24T00:00:00Z"),
    ("Q-EXT", "expires_today", "2027-03-03", "2027-03-03T00:00:00Z"),
    // expires_today (02-11 ..= 02-17) lies inside outage B: missed, see below.
    ("Q-MISS", "expires_in_7_days", "2027-02-11", "2027-02-04T01:00:00Z"),
    ("Q-MISS", "grace_period_ended", "2027-02-11", "2027-03-13T01:00:00Z"),
    // Grace period end due 02-16 (outage B): back at 20:00 Shanghai on 02-20, sent at once.
    ("Q-CATCH", "expires_in_7_days", "2027-01-17", "2027-01-10T01:00:00Z"),
    ("Q-CATCH", "expires_today", "2027-01-17", "2027-01-17T01:00:00Z"),
    ("Q-CATCH", "grace_period_ended", "2027-01-17", "2027-02-20T12:00:00Z"),
    ("Q-CATCH", "calling_numbers_released", "2027-01-17", "2027-03-03T01:00:00Z"),
    // Imported on 02-25 (07:00 local) though it expired on 01-20: its earlier windows are not our
    // misses; the grace period window (02-19 ..= 02-25) still holds its last day, at 09:00.
    ("Q-LATE", "grace_period_ended", "2027-01-20", "2027-02-25T14:00:00Z"),
];

/// (trial, kind, audience, expires_on) → (recipients, queued at).
type Mails = BTreeMap<(String, String, String, String), (Vec<String>, Timestamp)>;

const OUTAGES: &[(&str, &str)] = &[
    ("2027-01-01T00:00:00Z", "2027-01-04T03:00:00Z"),
    ("2027-02-10T00:00:00Z", "2027-02-20T12:00:00Z"),
];

fn in_outage(t: Timestamp) -> Option<Timestamp> {
    OUTAGES
        .iter()
        .map(|(a, b)| (ts(a), ts(b)))
        .find(|(a, b)| *a <= t && t < *b)
        .map(|(_, b)| b)
}

/// The fixed daily ticks: 00:30, 08:59, 09:00 and 23:59 in Shanghai.
fn next_tick(after: Timestamp) -> Timestamp {
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let local = after.to_zoned(tz.clone());
    let mut day = local.date();
    loop {
        for (h, m) in [(0, 30), (8, 59), (9, 0), (23, 59)] {
            let t = day.at(h, m, 0, 0).to_zoned(tz.clone()).unwrap().timestamp();
            if t > after {
                return t;
            }
        }
        day = day.tomorrow().unwrap();
    }
}

async fn import_trials(env: &TestEnv, rows: &str, now: Timestamp) {
    trialdesk::import::import_bytes(
        &env.app.store,
        ImportKind::Trials,
        format!("{HEADER}{rows}").as_bytes(),
        &env.app.rules.loans,
        &mut |_, _| {},
        now.as_millisecond(),
    )
    .await
    .expect("trial import");
}

#[tokio::test]
async fn a_quarter_day_by_day_sends_every_reminder_once_at_its_local_time() {
    let start = ts("2026-11-25T00:00:00Z");
    let end = ts("2027-03-31T23:59:00Z");
    let clock = ManualClock::new(start);
    let mut env = TestEnv::new(
        "[reminders]\nsend_at = \"09:00\"\npurchase_url = \"https://buy.example.test/convert\"\n",
    )
    .await;
    env.app.clock = Arc::new(clock.clone());
    import_trials(&env, QUARTER_TRIALS, start).await;
    let scheduler = env.app.scheduler(Arc::new(Notify::new())).unwrap();
    // The sender runs beside the scheduler (reminders are re-checked when they are sent: one
    // left in the outbox until after a conversion or an extension would be cancelled).
    let sender = Sender::new(
        env.app.store.clone(),
        Arc::new(FileTransport::new(&env.outbox()).unwrap()),
        env.app.config.outbox.clone(),
        "quarter".into(),
        env.app.clock.clone(),
        Arc::new(Notify::new()),
    );

    // Things that happen to the data during the quarter, in order.
    let mut events: Vec<(Timestamp, &str)> = vec![
        (ts("2027-01-06T00:00:00Z"), "reimport Q-REIMP"),
        (ts("2027-01-15T00:00:00Z"), "convert Q-CONV"),
        (ts("2027-01-28T12:00:00Z"), "extend Q-EXT"),
        (ts("2027-02-25T12:00:00Z"), "import Q-LATE"),
    ];
    events.reverse();

    let mut t = start;
    let mut steps = 0;
    let mut checked_plan = false;
    while t <= end {
        clock.set(t);
        while events.last().is_some_and(|(at, _)| *at <= t) {
            let (_, what) = events.pop().unwrap();
            match what {
                "reimport Q-REIMP" => {
                    import_trials(&env, "Q-REIMP,P02,Kessler Mälzerei,it@maelzerei.example.de,message;meeting,2026-12-01,2027-02-09,true,false,Europe/Berlin,de\n", t).await
                }
                "convert Q-CONV" => {
                    import_trials(&env, "Q-CONV,P01,杭州西湖茶业,it@xihu.example.cn,meeting,2026-12-01,2027-01-20,false,true,Asia/Shanghai,zh\n", t).await
                }
                "extend Q-EXT" => {
                    let done = reminders::extend_trial(&env.app.store, "Q-EXT", t.as_millisecond()).await.unwrap();
                    assert_eq!(done.new_expires_on.to_string(), "2027-03-03");
                    let again = reminders::extend_trial(&env.app.store, "Q-EXT", t.as_millisecond()).await;
                    assert!(matches!(again, Err(ExtendError::AlreadyExtended { .. })), "{again:?}");
                }
                "import Q-LATE" => {
                    import_trials(&env, "Q-LATE,P04,Late Import Inc,late@late.example.com,meeting,2026-12-01,2027-01-20,false,false,America/New_York,en\n", t).await
                }
                other => unreachable!("{other}"),
            }
        }
        // Before the catch-up on 2027-01-04, the plan for that date lists what outage A left.
        if !checked_plan && t >= ts("2027-01-04T03:00:00Z") {
            checked_plan = true;
            let plan = reminders::plan(&env.app.store, jiff::civil::date(2027, 1, 4))
                .await
                .unwrap();
            let got: Vec<(String, String, String)> = plan
                .iter()
                .map(|p| {
                    (
                        p.trial_id.clone(),
                        p.kind.code().to_string(),
                        p.due_on.to_string(),
                    )
                })
                .collect();
            let want = [
                ("T-1001", "grace_period_ended", "2027-01-02"),
                ("T-1001", "grace_period_ended", "2027-01-02"),
                ("Q-REIMP", "expires_in_7_days", "2027-01-03"),
                ("Q-REIMP", "expires_in_7_days", "2027-01-03"),
                ("T-2001", "grace_period_ended", "2027-01-03"),
                ("T-2001", "grace_period_ended", "2027-01-03"),
            ]
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
            assert_eq!(got, want);
        }
        let outage_end = in_outage(t);
        if outage_end.is_none() {
            loop {
                steps += 1;
                if scheduler.step().await.unwrap() == Outcome::Idle {
                    break;
                }
            }
            sender.drain().await.unwrap();
        }
        // Sleep like the worker: until the next due moment (unless down), a daily tick, or the
        // next data change.
        let mut next = next_tick(t);
        if let Some(back) = outage_end {
            next = next.min(back);
        } else if let Some(due) = scheduler.next_due(t).await.unwrap() {
            assert!(due > t, "a sendable reminder was left unsent at {t}");
            next = next.min(due);
        }
        if let Some((at, _)) = events.last() {
            next = next.min(*at);
        }
        t = next;
    }
    assert!(events.is_empty());
    assert!(steps > 400, "stepped {steps} times");

    // Every reminder row, joined with its mail.
    let rows = env.app.store.reminders(None).await.unwrap();
    let mut got: Mails = BTreeMap::new();
    let mut missed = Vec::new();
    for r in &rows {
        let key = (
            r.trial_id.clone(),
            r.kind.clone(),
            r.audience.clone(),
            r.expires_on.clone(),
        );
        match r.state.as_str() {
            "queued" => {
                let mail = env
                    .app
                    .store
                    .outbox_row(r.outbox_id.expect("queued has a mail"))
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(mail.purpose, "reminder");
                assert_eq!(mail.recipients, r.recipients);
                let prev = got.insert(
                    key.clone(),
                    (
                        mail.recipient_list().unwrap(),
                        Timestamp::from_millisecond(mail.created_at).unwrap(),
                    ),
                );
                assert!(prev.is_none(), "twice: {key:?}");
            }
            "missed" => missed.push(key),
            other => panic!("unexpected state {other} for {key:?}"),
        }
    }
    let mut want: Mails = BTreeMap::new();
    for (trial, kind, expires_on, at) in EXPECTED {
        for (audience, recipients) in [
            ("customer_admins", customer_admins(trial)),
            ("partner_admins", partner_admins(trial)),
        ] {
            want.insert(
                (
                    trial.to_string(),
                    kind.to_string(),
                    audience.to_string(),
                    expires_on.to_string(),
                ),
                (recipients.iter().map(|s| s.to_string()).collect(), ts(at)),
            );
        }
    }
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.iter().filter(|(k, _)| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:#?}\nextra {extra:#?}"
    );
    for (k, v) in &want {
        assert_eq!(&got[k], v, "{k:?}");
    }
    assert_eq!(got.len(), 80);

    // Outage B swallowed Q-MISS's expiry-day reminder: recorded as missed, in review, not sent.
    missed.sort();
    assert_eq!(
        missed,
        vec![
            (
                "Q-MISS".into(),
                "expires_today".into(),
                "customer_admins".into(),
                "2027-02-11".into()
            ),
            (
                "Q-MISS".into(),
                "expires_today".into(),
                "partner_admins".into(),
                "2027-02-11".into()
            ),
        ]
    );
    let review = env
        .app
        .store
        .review_items(&trialdesk::store::ReviewFilter {
            reason: Some("missed_reminder".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(review.len(), 2);
    for item in &review {
        assert!(item.reminder_id.is_some());
        assert!(
            item.detail.contains("Q-MISS")
                && item.detail.contains("expires_today")
                && item.detail.contains("2027-02-11"),
            "{}",
            item.detail
        );
        assert_eq!(
            Timestamp::from_millisecond(item.created_at).unwrap(),
            ts("2027-02-20T12:00:00Z")
        );
    }

    // Everything went out through the file transport; read the mails back.
    sender.drain().await.unwrap();
    let mails = env.replies();
    assert_eq!(mails.len(), 80);
    for m in &mails {
        assert_eq!(m.from, "helpdesk@example.test");
        assert_eq!(
            m.header("Auto-Submitted").as_deref(),
            Some("auto-generated")
        );
        assert_eq!(m.header("X-Trialdesk").as_deref(), Some("reminder"));
        assert!(m.in_reply_to.is_none());
        assert!(!m.text.is_empty() && !m.html.is_empty());
        assert!(m.text.contains("Test Helpdesk"), "signature: {}", m.text);
    }
    let find = |to: &str, subject_part: &str| -> &Reply {
        let hits: Vec<&Reply> = mails
            .iter()
            .filter(|m| m.to == to && m.subject.contains(subject_part))
            .collect();
        assert_eq!(
            hits.len(),
            1,
            "{to} / {subject_part}: {:#?}",
            mails
                .iter()
                .map(|m| (&m.to, &m.subject))
                .collect::<Vec<_>>()
        );
        hits[0]
    };
    // Customer admins, in the trial's language, all in To:, with the purchase link.
    let zh = find("admin@pujiang-bank.example.cn", "将于 2026-12-03 到期");
    assert!(
        zh.text.contains("https://buy.example.test/convert"),
        "{}",
        zh.text
    );
    assert!(zh.text.contains("还剩 7 天"), "{}", zh.text);
    let to_all = mail_parser::MessageParser::default()
        .parse(&zh.raw)
        .unwrap();
    let to_list: Vec<&str> = to_all
        .to()
        .unwrap()
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to_list, customer_admins("T-1001"));
    // Partner admins, in the partner's language: customer, services, days left.
    let de = find(
        "admin@nordwind.example.de",
        "Testversion T-2001 von Brauerei Kessler endet am 2026-12-04",
    );
    assert!(
        de.text.contains("noch 7 Tage") && de.text.contains("Telefonie"),
        "{}",
        de.text
    );
    assert!(
        !de.text.contains("buy.example.test"),
        "partners get no purchase link: {}",
        de.text
    );
    // The expiry day names the grace period's end; calling trials name the numbers' date.
    let nye = find(
        "ops@pacrim.example.com",
        "Trial Q-NYE of Year End Dental expires today",
    );
    assert!(
        nye.text.contains("until 2027-01-30") && nye.text.contains("kept until 2027-02-14"),
        "{}",
        nye.text
    );
    let released = find(
        "ny1@nye.example.com",
        "phone numbers of your trial for Year End Dental have been released",
    );
    assert!(released.text.contains("2027-02-14"), "{}", released.text);
    // After the grace period: no longer usable, what was lost.
    let lost = find("it@kessler-brau.example.de", "Kulanzfrist");
    assert!(
        lost.text.contains("nicht mehr genutzt oder übernommen")
            && lost.text.contains("Meetings, Telefonie"),
        "{}",
        lost.text
    );
    // The extension re-planned from the new date; the re-import too.
    let ext = find("it@osaka-robo.example.jp", "2027-03-03 に終了します");
    assert!(ext.text.contains("あと 7 日"), "{}", ext.text);
    let reimp = find(
        "admin@nordwind.example.de",
        "Q-REIMP von Kessler Mälzerei endet am 2027-02-09",
    );
    assert!(reimp.text.contains("2027-02-09"), "{}", reimp.text);
    // A catch-up mail counts the days left from the day it goes out.
    let late_week = find(
        "ops@pacrim.example.com",
        "Trial Q-NYE of Year End Dental expires on",
    );
    assert!(
        late_week.subject.contains("(7 days left)"),
        "{}",
        late_week.subject
    );
    let caught = find("it@maelzerei.example.de", "endet am 2027-01-10");
    assert!(
        caught.text.contains("in 6 Tagen"),
        "sent on 01-04 for 01-10: {}",
        caught.text
    );
}
