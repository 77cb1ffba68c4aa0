//! Reports for whoever runs the helpdesk: mails per day by outcome, the automation rate,
//! review items' time to first action and to resolution (median, p90), dead letters, per
//! partner. The figures are computed here from plain rows (pure, table-tested); the store
//! reads the rows, the `reports` page and `trialdesk report` show them.
//!
//! Definitions:
//! - A mail is *reviewed* when a review item was opened for it (whatever happened next),
//!   *answered automatically* when it was answered without one, *ignored* otherwise
//!   (automated mail, out-of-office, …).
//! - Automation rate: answered automatically / (answered automatically + reviewed); ignored
//!   mail needs no answer and is left out.
//! - Time to first action: from an item's opening to the first staff action on it (any
//!   audited action, notes and assignments included); time to resolution: to its closing.
//!   Percentiles are nearest-rank over the items that have one.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

pub use crate::store::workspace::{ItemRow, MailRow};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    pub total: i64,
    pub answered_automatically: i64,
    pub reviewed: i64,
    pub ignored: i64,
}

impl Outcomes {
    fn add(&mut self, m: &MailRow) {
        self.total += 1;
        if m.reviewed {
            self.reviewed += 1;
        } else if m.action == "reply" {
            self.answered_automatically += 1;
        } else if m.action == "ignore" {
            self.ignored += 1;
        } else {
            self.reviewed += 1;
        }
    }

    /// Percent of the mail needing an answer that was answered automatically (None: none
    /// needed one).
    pub fn automation_rate(&self) -> Option<f64> {
        let needing = self.answered_automatically + self.reviewed;
        (needing > 0).then(|| 100.0 * self.answered_automatically as f64 / needing as f64)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub date: String,
    #[serde(flatten)]
    pub outcomes: Outcomes,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartnerLine {
    pub partner_id: Option<String>,
    pub name: Option<String>,
    #[serde(flatten)]
    pub outcomes: Outcomes,
    pub automation_rate: Option<f64>,
}

/// Median and 90th percentile of durations, in ms, over `count` items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Durations {
    pub count: usize,
    pub median_ms: Option<i64>,
    pub p90_ms: Option<i64>,
}

impl Durations {
    pub fn of(mut values: Vec<i64>) -> Durations {
        values.sort_unstable();
        Durations {
            count: values.len(),
            median_ms: nearest_rank(&values, 50),
            p90_ms: nearest_rank(&values, 90),
        }
    }
}

/// Nearest-rank percentile of sorted `values`.
fn nearest_rank(sorted: &[i64], pct: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (pct * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub time_zone: String,
    pub days: Vec<Day>,
    pub totals: Outcomes,
    pub automation_rate: Option<f64>,
    pub first_action: Durations,
    pub resolution: Durations,
    /// Review items opened in the period because a mail could not be delivered.
    pub dead_letters: i64,
    pub partners: Vec<PartnerLine>,
}

/// The half-open range of instants (ms) covering days `from..=to` in `tz`.
pub fn range_ms(from: Date, to: Date, tz: &TimeZone) -> Result<(i64, i64), String> {
    if to < from {
        return Err(format!("--to {to} is before --from {from}"));
    }
    let start = from.to_zoned(tz.clone()).map_err(|e| e.to_string())?;
    let end = to
        .tomorrow()
        .map_err(|e| e.to_string())?
        .to_zoned(tz.clone())
        .map_err(|e| e.to_string())?;
    Ok((
        start.timestamp().as_millisecond(),
        end.timestamp().as_millisecond(),
    ))
}

/// Builds the report for days `from..=to` (in `tz`) from the rows read for that range.
pub fn build(
    from: Date,
    to: Date,
    tz: &TimeZone,
    tz_name: &str,
    mails: &[MailRow],
    items: &[ItemRow],
) -> Report {
    let mut days: BTreeMap<Date, Outcomes> = BTreeMap::new();
    let mut d = from;
    while d <= to {
        days.insert(d, Outcomes::default());
        match d.tomorrow() {
            Ok(next) => d = next,
            Err(_) => break,
        }
    }
    let mut totals = Outcomes::default();
    let mut partners: BTreeMap<Option<String>, (Option<String>, Outcomes)> = BTreeMap::new();
    for m in mails {
        let Ok(ts) = jiff::Timestamp::from_millisecond(m.received_at) else {
            continue;
        };
        let day = ts.to_zoned(tz.clone()).date();
        let Some(o) = days.get_mut(&day) else {
            continue;
        };
        o.add(m);
        totals.add(m);
        let entry = partners
            .entry(m.partner_id.clone())
            .or_insert_with(|| (m.partner_name.clone(), Outcomes::default()));
        entry.1.add(m);
    }
    let first: Vec<i64> = items
        .iter()
        .filter_map(|i| i.first_action_at.map(|a| (a - i.created_at).max(0)))
        .collect();
    let resolved: Vec<i64> = items
        .iter()
        .filter_map(|i| i.resolved_at.map(|a| (a - i.created_at).max(0)))
        .collect();
    let mut partners: Vec<PartnerLine> = partners
        .into_iter()
        .map(|(partner_id, (name, outcomes))| PartnerLine {
            partner_id,
            name,
            automation_rate: outcomes.automation_rate(),
            outcomes,
        })
        .collect();
    partners.sort_by(|a, b| {
        b.outcomes
            .total
            .cmp(&a.outcomes.total)
            .then(a.partner_id.cmp(&b.partner_id))
    });
    Report {
        from: from.to_string(),
        to: to.to_string(),
        time_zone: tz_name.to_string(),
        days: days
            .into_iter()
            .map(|(date, outcomes)| Day {
                date: date.to_string(),
                outcomes,
            })
            .collect(),
        automation_rate: totals.automation_rate(),
        totals,
        first_action: Durations::of(first),
        resolution: Durations::of(resolved),
        dead_letters: items.iter().filter(|i| i.reason == "dead_letter").count() as i64,
        partners,
    }
}

/// Reads the rows for days `from..=to` in time zone `tz_name` and builds the report.
pub async fn load(
    store: &crate::store::Store,
    from: Date,
    to: Date,
    tz_name: &str,
) -> Result<Report, ReportError> {
    let tz = TimeZone::get(tz_name).map_err(|e| ReportError::Input(e.to_string()))?;
    let (start, end) = range_ms(from, to, &tz).map_err(ReportError::Input)?;
    let mails = store.report_mails(start, end).await?;
    let items = store.report_items(start, end).await?;
    Ok(build(from, to, &tz, tz_name, &mails, &items))
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The dates or time zone asked for do not make a range.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The report as CSV: one line per day, then one per partner (`kind` says which).
pub fn to_csv(r: &Report) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    // The counts and the rate: the last five columns of every line.
    let counts = |o: &Outcomes, rate: Option<f64>| {
        format!(
            "{},{},{},{},{}",
            o.total,
            o.answered_automatically,
            o.reviewed,
            o.ignored,
            rate.map(|v| format!("{v:.1}")).unwrap_or_default()
        )
    };
    let mut out = String::from(
        "kind,date_or_partner,name,total,answered_automatically,reviewed,ignored,automation_rate\n",
    );
    for d in &r.days {
        let o = &d.outcomes;
        out.push_str(&format!(
            "day,{},,{}\n",
            d.date,
            counts(o, o.automation_rate())
        ));
    }
    for p in &r.partners {
        out.push_str(&format!(
            "partner,{},{},{}\n",
            field(p.partner_id.as_deref().unwrap_or("")),
            field(p.name.as_deref().unwrap_or("")),
            counts(&p.outcomes, p.automation_rate)
        ));
    }
    out.push_str(&format!(
        "total,{}..{},,{}\n",
        r.from,
        r.to,
        counts(&r.totals, r.automation_rate)
    ));
    out
}

/// `ms` as `1h 05m`, `3m`, `2d 4h` (for people).
pub fn human(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "—".into();
    };
    let m = ms.max(0) / 60_000;
    match m {
        0..=59 => format!("{m}m"),
        60..=1439 => format!("{}h {:02}m", m / 60, m % 60),
        _ => format!("{}d {}h", m / 1440, (m % 1440) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn mail(at: i64, action: &str, partner: Option<&str>, reviewed: bool) -> MailRow {
        MailRow {
            received_at: at,
            action: action.into(),
            partner_id: partner.map(str::to_string),
            partner_name: partner.map(|p| format!("name of {p}")),
            reviewed,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let cases: &[(&[i64], Option<i64>, Option<i64>)] = &[
            (&[], None, None),
            (&[5], Some(5), Some(5)),
            (&[1, 2], Some(1), Some(2)),
            (&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], Some(5), Some(9)),
            (&[10, 1, 3], Some(3), Some(10)),
        ];
        for (values, median, p90) in cases {
            let d = Durations::of(values.to_vec());
            assert_eq!((d.median_ms, d.p90_ms), (*median, *p90), "{values:?}");
            assert_eq!(d.count, values.len());
        }
    }

    #[test]
    fn mails_count_per_day_in_the_time_zone_by_outcome_and_partner() {
        let tz = TimeZone::get("Asia/Shanghai").unwrap();
        let from: Date = "2026-12-01".parse().unwrap();
        let to: Date = "2026-12-02".parse().unwrap();
        let (start, end) = range_ms(from, to, &tz).unwrap();
        assert_eq!(end - start, 48 * H);
        let mails = vec![
            // 2026-11-30 16:00 UTC = 12-01 00:00 Shanghai: the first day.
            mail(start, "reply", Some("P01"), false),
            mail(start + H, "review", Some("P01"), true),
            // Reprocessed into a reply after review: still "reviewed".
            mail(start + 2 * H, "reply", Some("P01"), true),
            mail(start + 25 * H, "ignore", None, false),
            mail(start + 26 * H, "reply", Some("P02"), false),
            // Outside the range: left out.
            mail(start - 1, "reply", Some("P01"), false),
            mail(end, "reply", Some("P01"), false),
        ];
        let items = vec![
            ItemRow {
                created_at: start + H,
                reason: "other_subject".into(),
                first_action_at: Some(start + 2 * H),
                resolved_at: Some(start + 5 * H),
            },
            ItemRow {
                created_at: start + 2 * H,
                reason: "dead_letter".into(),
                first_action_at: None,
                resolved_at: None,
            },
        ];
        let r = build(from, to, &tz, "Asia/Shanghai", &mails, &items);
        let per_day: Vec<(String, i64, i64, i64, i64)> = r
            .days
            .iter()
            .map(|d| {
                let o = d.outcomes;
                (
                    d.date.clone(),
                    o.total,
                    o.answered_automatically,
                    o.reviewed,
                    o.ignored,
                )
            })
            .collect();
        assert_eq!(
            per_day,
            vec![
                ("2026-12-01".to_string(), 3, 1, 2, 0),
                ("2026-12-02".to_string(), 2, 1, 0, 1)
            ]
        );
        assert_eq!(r.totals.total, 5);
        // 2 automatic of 4 needing an answer.
        assert_eq!(r.automation_rate, Some(50.0));
        assert_eq!(r.first_action.median_ms, Some(H));
        assert_eq!(r.resolution.median_ms, Some(4 * H));
        assert_eq!(r.resolution.count, 1);
        assert_eq!(r.dead_letters, 1);
        let p: Vec<(Option<&str>, i64)> = r
            .partners
            .iter()
            .map(|p| (p.partner_id.as_deref(), p.outcomes.total))
            .collect();
        assert_eq!(p, vec![(Some("P01"), 3), (None, 1), (Some("P02"), 1)]);
        let csv = to_csv(&r);
        assert!(csv.starts_with("kind,date_or_partner,"), "{csv}");
        assert!(csv.contains("day,2026-12-01,,3,1,2,0,33.3\n"), "{csv}");
        assert!(
            csv.contains("partner,P01,name of P01,3,1,2,0,33.3\n"),
            "{csv}"
        );
        assert!(
            csv.contains("total,2026-12-01..2026-12-02,,5,2,2,1,50.0\n"),
            "{csv}"
        );
    }

    #[test]
    fn ranges_must_run_forwards() {
        let tz = TimeZone::UTC;
        let a: Date = "2026-12-02".parse().unwrap();
        let b: Date = "2026-12-01".parse().unwrap();
        assert!(range_ms(a, b, &tz).is_err());
        assert_eq!(
            range_ms(b, b, &tz).unwrap().1 - range_ms(b, b, &tz).unwrap().0,
            24 * H
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(None), "—");
        assert_eq!(human(Some(5 * 60_000)), "5m");
        assert_eq!(human(Some(65 * 60_000)), "1h 05m");
        assert_eq!(human(Some(26 * H)), "1d 2h");
    }
}
