//! The reminder worker: queues what is sendable, records what was missed, sleeps until the next
//! send moment.
//!
//! A step looks at the trials whose reminder windows could contain "today" in some zone (the
//! UTC date ± 1), judges each reminder in the trial's own zone ([`schedule::status`]) and, for
//! each one that may go out, renders and composes the mail *before* opening a transaction, then
//! records the reminder row and queues the mail in ONE transaction keyed by (trial, kind,
//! audience, E). Several ticks, restarts and instances therefore never send twice. Between
//! steps the worker sleeps until the earliest next send moment across trials, or until
//! someone reports a data change, or at most [`MAX_SLEEP`] (an import by another process is
//! noticed that way) — it never polls in a tight loop.

mod mail;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::plan::open_audiences;
use super::schedule::{self, add_days, At, Audience, Kind, Status};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::domain::Partner;
use crate::outbound::{Composer, Templates};
use crate::store::{NewReminder, NewReview, ReminderCandidate, ReminderOutcome, Store, StoreError};
use crate::worker::Outcome;

/// How far back missed reminders are looked for: windows that ended within this many days.
/// Bounds the scan; a bot down for longer has bigger problems, and the review queue says so
/// for the last two months.
pub const LOOKBACK_DAYS: i32 = 60;

/// Longest sleep: trials imported or extended by another process are seen at least this often.
pub const MAX_SLEEP: Duration = Duration::from_secs(300);
/// Sleep after failing to compute the next send moment.
const RETRY_SLEEP: Duration = Duration::from_secs(10);
/// Shortest sleep, so that a reminder that keeps being "due now" cannot spin the loop.
const MIN_SLEEP: Duration = Duration::from_secs(1);
/// How often a long-running scheduler looks for missed reminders: windows that ended since
/// its last look (a cheap scan), and once a day over the whole [`LOOKBACK_DAYS`].
const MISSED_SCAN_EVERY: Duration = Duration::from_secs(3600);
const MISSED_FULL_SCAN_EVERY: Duration = Duration::from_secs(24 * 3600);
/// Reminders handled per step; the worker checks for shutdown between steps.
const BATCH: usize = 200;

/// What the reminders need from the config.
#[derive(Debug, Clone)]
pub struct ReminderSettings {
    pub send_at: Time,
    pub purchase_url: String,
    pub signature: String,
}

impl ReminderSettings {
    pub fn from_config(config: &Config) -> Result<ReminderSettings, crate::config::ConfigError> {
        Ok(ReminderSettings {
            send_at: config.reminders.send_at_time()?,
            purchase_url: config.reminders.purchase_url.clone(),
            signature: config.templates.signature.clone(),
        })
    }
}

/// What a step (or a `reminders run`) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StepReport {
    /// Reminder mails queued in the outbox.
    pub queued: usize,
    /// `queued` by reminder kind (JSON: an object keyed by kind code).
    pub queued_by_kind: ByKind,
    /// Reminders recorded as missed (window over, never sent).
    pub missed: usize,
    /// Reminders that could not be rendered or addressed (in the review queue).
    pub failed: usize,
    /// Found already recorded by someone else, or the trial changed meanwhile.
    pub skipped: usize,
    /// The batch limit was reached: more may be due.
    pub more: bool,
}

/// A count per reminder kind, in [`Kind::ALL`] order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByKind(pub [usize; 4]);

impl ByKind {
    pub fn add(&mut self, kind: Kind) {
        if let Some(i) = Kind::ALL.iter().position(|k| *k == kind) {
            self.0[i] += 1;
        }
    }

    /// The kinds with a count above zero, in the order they fall due.
    pub fn nonzero(&self) -> Vec<(Kind, usize)> {
        Kind::ALL
            .into_iter()
            .zip(self.0)
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl serde::Serialize for ByKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(Kind::ALL.len()))?;
        for (k, n) in Kind::ALL.into_iter().zip(self.0) {
            map.serialize_entry(k.code(), &n)?;
        }
        map.end()
    }
}

impl StepReport {
    fn handled(&self) -> usize {
        self.queued + self.missed + self.failed + self.skipped
    }

    fn add(&mut self, other: StepReport) {
        self.queued += other.queued;
        for (a, b) in self.queued_by_kind.0.iter_mut().zip(other.queued_by_kind.0) {
            *a += b;
        }
        self.missed += other.missed;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.more = other.more;
    }
}

pub struct Scheduler {
    store: Store,
    templates: Arc<Templates>,
    composer: Composer,
    clock: SharedClock,
    settings: ReminderSettings,
    /// Woken after a reminder is queued: the sender delivers it at once.
    queued: Arc<Notify>,
    /// Poked (`notify_one`) when trials change in this process: re-plan now.
    changed: Arc<Notify>,
    missed_scans: Mutex<MissedScans>,
    metrics: Arc<crate::counters::Metrics>,
}

/// When the missed-reminder scans last ran.
#[derive(Debug, Default, Clone, Copy)]
struct MissedScans {
    last: Option<Timestamp>,
    last_full: Option<Timestamp>,
}

impl MissedScans {
    /// How many days of ended windows to look at now, if any.
    fn lookback(&self, now: Timestamp) -> Option<i32> {
        let since = |t: Timestamp| now.duration_since(t).unsigned_abs();
        match (self.last, self.last_full) {
            (_, None) => Some(LOOKBACK_DAYS),
            (_, Some(full)) if since(full) >= MISSED_FULL_SCAN_EVERY => Some(LOOKBACK_DAYS),
            (Some(last), _) if since(last) >= MISSED_SCAN_EVERY => {
                let utc = |t| schedule::local_date(t, &TimeZone::UTC);
                Some((schedule::days_between(utc(last), utc(now)) + 2).clamp(2, LOOKBACK_DAYS))
            }
            _ => None,
        }
    }
}

impl Scheduler {
    pub fn new(
        store: Store,
        templates: Arc<Templates>,
        composer: Composer,
        clock: SharedClock,
        settings: ReminderSettings,
        queued: Arc<Notify>,
        changed: Arc<Notify>,
    ) -> Scheduler {
        Scheduler {
            store,
            templates,
            composer,
            clock,
            settings,
            queued,
            changed,
            missed_scans: Mutex::new(MissedScans::default()),
            metrics: Arc::new(crate::counters::Metrics::new()),
        }
    }

    /// Counts reminders queued, missed and failed into `metrics` (the app's).
    pub fn with_metrics(mut self, metrics: Arc<crate::counters::Metrics>) -> Scheduler {
        self.metrics = metrics;
        self
    }

    /// One step at the clock's current instant: queue up to a batch of sendable reminders and,
    /// at most hourly, record missed ones. `Done` when the batch was full.
    pub async fn step(&self) -> Result<Outcome, StoreError> {
        let now = self.clock.now();
        let scans = self
            .missed_scans
            .lock()
            .map(|g| *g)
            .unwrap_or_else(|p| *p.into_inner());
        let lookback = scans.lookback(now);
        let report = self.process(At::Instant(now), BATCH, lookback).await?;
        if let Some(days) = lookback.filter(|_| !report.more) {
            if let Ok(mut g) = self.missed_scans.lock() {
                g.last = Some(now);
                if days == LOOKBACK_DAYS {
                    g.last_full = Some(now);
                }
            }
        }
        Ok(if report.more {
            Outcome::Done
        } else {
            Outcome::Idle
        })
    }

    /// Everything due at `at`, to the end (for `reminders run` and tests): sendable reminders
    /// are queued, missed ones recorded.
    pub async fn run_until_done(&self, at: At) -> Result<StepReport, StoreError> {
        let mut total = StepReport::default();
        loop {
            let r = self.process(at, BATCH, Some(LOOKBACK_DAYS)).await?;
            total.add(r);
            if !r.more {
                return Ok(total);
            }
        }
    }

    /// Sleeps until the next reminder becomes sendable, a data change, or [`MAX_SLEEP`].
    pub async fn wait(&self) {
        let now = self.clock.now();
        let sleep = match self.next_due(now).await {
            Ok(Some(due)) => {
                let ms = due.as_millisecond().saturating_sub(now.as_millisecond());
                // A few ms past the moment, so the next step sees it as reached.
                Duration::from_millis(ms.max(0) as u64 + 20)
            }
            Ok(None) => MAX_SLEEP,
            // The database is away (restarting, failing over): look again soon rather than
            // sleeping the longest.
            Err(e) => {
                tracing::warn!(error = %e, "cannot compute the next reminder time");
                RETRY_SLEEP
            }
        }
        .clamp(MIN_SLEEP, MAX_SLEEP);
        tracing::debug!(sleep = ?sleep, "reminders: sleeping");
        tokio::select! {
            _ = self.changed.notified() => {}
            _ = tokio::time::sleep(sleep) => {}
        }
    }

    /// Runs until cancelled (beside the inbound pipeline and the sender).
    pub async fn run(&self, cancel: CancellationToken) {
        tracing::info!(send_at = %self.settings.send_at, "reminder scheduler started");
        crate::worker::run_loop(
            "reminders",
            &cancel,
            crate::worker::Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            || self.step(),
            || self.wait(),
        )
        .await;
    }

    /// The earliest moment from `now` at which a reminder not yet recorded becomes sendable,
    /// looking at windows that contain today or start within two days (the sleep is capped
    /// well below that anyway).
    pub async fn next_due(&self, now: Timestamp) -> Result<Option<Timestamp>, StoreError> {
        let utc = schedule::local_date(now, &TimeZone::UTC);
        let (first, last) = (add_days(utc, -1), add_days(utc, 2));
        let mut zones = Zones::default();
        let mut next: Option<Timestamp> = None;
        for kind in Kind::ALL {
            let (lo, hi) = schedule::expiry_range(kind, first, last);
            for c in self
                .store
                .reminder_candidates(kind.code(), lo, hi, kind.needs_calling())
                .await?
            {
                if open_audiences(&c).is_empty() {
                    continue;
                }
                let Some(tz) = zones.get(&c.timezone) else {
                    continue;
                };
                if let Some(t) =
                    schedule::next_send_moment(c.expires_on, kind, now, self.settings.send_at, tz)
                {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
        }
        Ok(next)
    }

    /// Queues what is sendable at `at` (at most `limit` reminders), then records as missed the
    /// reminders whose windows ended within the last `missed_lookback` days.
    async fn process(
        &self,
        at: At,
        limit: usize,
        missed_lookback: Option<i32>,
    ) -> Result<StepReport, StoreError> {
        let (first, last) = match at {
            At::Instant(t) => {
                let utc = schedule::local_date(t, &TimeZone::UTC);
                (add_days(utc, -1), add_days(utc, 1))
            }
            At::Date(d) => (d, d),
        };
        let mut report = StepReport::default();
        let mut zones = Zones::default();
        let mut partners: HashMap<String, Option<Partner>> = HashMap::new();
        for kind in Kind::ALL {
            let (lo, hi) = schedule::expiry_range(kind, first, last);
            let candidates = self
                .store
                .reminder_candidates(kind.code(), lo, hi, kind.needs_calling())
                .await?;
            for c in candidates {
                let Some(tz) = self.zone_if(&c, kind, at, Status::Sendable, &mut zones) else {
                    continue;
                };
                let today = at.date_in(tz);
                // The full trial, as it is now (read once for both audiences).
                let mut trial = None;
                for (audience, recipients) in open_audiences(&c) {
                    if report.handled() >= limit {
                        report.more = true;
                        return Ok(report);
                    }
                    if trial.is_none() {
                        trial = Some(self.store.trial(&c.trial_id).await?);
                    }
                    let Some(Some(trial)) = &trial else {
                        report.skipped += 1;
                        continue;
                    };
                    self.send(
                        &c,
                        trial,
                        kind,
                        audience,
                        recipients,
                        today,
                        &mut partners,
                        &mut report,
                    )
                    .await?;
                }
            }
        }
        if let Some(days) = missed_lookback {
            self.record_missed(at, first, last, days, limit, &mut zones, &mut report)
                .await?;
        }
        Ok(report)
    }

    /// Records as missed every reminder whose window ended (within `lookback` days) without a
    /// row, if the trial's expiry date was known while the window was open.
    #[allow(clippy::too_many_arguments)]
    async fn record_missed(
        &self,
        at: At,
        first: Date,
        last: Date,
        lookback: i32,
        limit: usize,
        zones: &mut Zones,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        for kind in Kind::ALL {
            let (lo, hi) =
                schedule::expiry_range_ended(kind, add_days(first, -lookback), add_days(last, -1));
            let candidates = self
                .store
                .reminder_candidates(kind.code(), lo, hi, kind.needs_calling())
                .await?;
            for c in candidates {
                if self.zone_if(&c, kind, at, Status::Missed, zones).is_none() {
                    continue;
                }
                for (audience, recipients) in open_audiences(&c) {
                    if report.handled() >= limit {
                        report.more = true;
                        return Ok(());
                    }
                    let due = schedule::due_on(c.expires_on, kind);
                    let detail = format!(
                        "reminder {kind} for trial {} to {audience} ({}) was due on {due} and not \
                         sent within its {}-day window (until {}): nothing was sent",
                        c.trial_id,
                        recipients.join(", "),
                        schedule::WINDOW_DAYS,
                        schedule::window_end(c.expires_on, kind),
                    );
                    let reminder = NewReminder {
                        trial_id: c.trial_id.clone(),
                        kind: kind.code().into(),
                        audience: audience.code().into(),
                        expires_on: c.expires_on,
                        due_on: due,
                        recipients,
                        language: match audience {
                            Audience::CustomerAdmins => c.trial_language,
                            Audience::PartnerAdmins => c.partner_language,
                        }
                        .code()
                        .into(),
                    };
                    let review = NewReview {
                        reason: "missed_reminder".into(),
                        reasons: vec!["missed_reminder".into()],
                        detail,
                    };
                    let now = self.clock.now().as_millisecond();
                    match self
                        .store
                        .record_unsent_reminder(&reminder, "missed", &review, now)
                        .await?
                    {
                        ReminderOutcome::Recorded { reminder_id } => {
                            report.missed += 1;
                            self.metrics
                                .reminder(kind.code(), crate::counters::ReminderOutcome::Missed);
                            tracing::warn!(
                                trial_id = %c.trial_id, kind = %kind, audience = %audience,
                                due_on = %due, reminder_id, "reminder missed: its window is over"
                            );
                        }
                        ReminderOutcome::Skipped => report.skipped += 1,
                    }
                }
            }
        }
        Ok(())
    }

    /// The candidate's zone, if its `kind` reminder has the status `wanted` at `at` (judged in
    /// that zone, from the day its expiry date became known).
    fn zone_if<'z>(
        &self,
        c: &ReminderCandidate,
        kind: Kind,
        at: At,
        wanted: Status,
        zones: &'z mut Zones,
    ) -> Option<&'z TimeZone> {
        let tz = zones.get(&c.timezone)?;
        let known = known_since(c, tz);
        let status = schedule::status(c.expires_on, kind, at, self.settings.send_at, tz, known);
        (status == wanted).then_some(tz)
    }
}

/// The local date on which the trial's current expiry date became known.
fn known_since(c: &ReminderCandidate, tz: &TimeZone) -> Date {
    let t = Timestamp::from_millisecond(c.planned_since).unwrap_or(Timestamp::UNIX_EPOCH);
    schedule::local_date(t, tz)
}

/// Time zones by name, looked up once per pass. A name jiff does not know (a hand-edited row:
/// imports check it) is logged once and its trials skipped.
#[derive(Default)]
struct Zones(HashMap<String, Option<TimeZone>>);

impl Zones {
    fn get(&mut self, name: &str) -> Option<&TimeZone> {
        if !self.0.contains_key(name) {
            let tz = TimeZone::get(name)
                .inspect_err(|e| tracing::error!(timezone = name, error = %e, "unknown time zone in trials; its reminders are skipped"))
                .ok();
            self.0.insert(name.to_string(), tz);
        }
        self.0.get(name).and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn missed_scans_look_back_fully_at_start_and_daily_else_since_the_last_look() {
        let mut scans = MissedScans::default();
        let t0 = ts("2027-01-10T08:00:00Z");
        assert_eq!(scans.lookback(t0), Some(LOOKBACK_DAYS));
        scans = MissedScans {
            last: Some(t0),
            last_full: Some(t0),
        };
        assert_eq!(scans.lookback(ts("2027-01-10T08:59:00Z")), None);
        assert_eq!(scans.lookback(ts("2027-01-10T09:00:00Z")), Some(2));
        // A day later, before the daily full scan: the days since the last look, plus two.
        scans.last_full = Some(ts("2027-01-10T07:59:00Z"));
        assert_eq!(scans.lookback(ts("2027-01-11T07:00:00Z")), Some(3));
        assert_eq!(
            scans.lookback(ts("2027-01-11T08:00:00Z")),
            Some(LOOKBACK_DAYS)
        );
    }
}
