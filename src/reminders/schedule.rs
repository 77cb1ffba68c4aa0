//! The reminder schedule as pure rules: kinds, offsets, due dates, the 7-day catch-up window,
//! and whether a reminder may go out at a given moment in a trial's time zone.
//!
//! Everything here is computed from the trial's *current* expiry date `E` as a calendar date in
//! the trial's own zone. A reminder of kind `k` is due on `E + offset(k)` and stays sendable for
//! [`WINDOW_DAYS`] days (`due_on ..= due_on + 6`). On a day of its window it may be sent from
//! `reminders.send_at` local time on; the send moment of a local date is `date + send_at`
//! resolved with jiff's *compatible* disambiguation (a `send_at` inside a skipped DST hour
//! moves forward by the gap, one inside a repeated hour means its first occurrence).

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::domain::Trial;

/// Days a reminder stays due, its due date included: a bot that was down on its due date
/// catches up for six more days; after that the reminder is recorded as missed.
pub const WINDOW_DAYS: i32 = 7;

/// The reminders of a trial's life, in the order they fall due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    ExpiresIn7Days,
    ExpiresToday,
    GracePeriodEnded,
    CallingNumbersReleased,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::ExpiresIn7Days,
        Kind::ExpiresToday,
        Kind::GracePeriodEnded,
        Kind::CallingNumbersReleased,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Kind::ExpiresIn7Days => "expires_in_7_days",
            Kind::ExpiresToday => "expires_today",
            Kind::GracePeriodEnded => "grace_period_ended",
            Kind::CallingNumbersReleased => "calling_numbers_released",
        }
    }

    /// Days from the expiry date to the due date.
    pub fn offset_days(self) -> i32 {
        match self {
            Kind::ExpiresIn7Days => -7,
            Kind::ExpiresToday => 0,
            Kind::GracePeriodEnded => GRACE_DAYS,
            Kind::CallingNumbersReleased => GRACE_DAYS + NUMBERS_KEPT_DAYS,
        }
    }

    /// Only trials with the calling service have phone numbers to release.
    pub fn needs_calling(self) -> bool {
        self == Kind::CallingNumbersReleased
    }

    /// Whether this kind is part of `trial`'s schedule at all (converted trials have none).
    pub fn applies_to(self, trial: &Trial) -> bool {
        !trial.converted && (!self.needs_calling() || trial.has_calling())
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Serialized as its code (`expires_in_7_days`: serde's snake_case would say `expires_in7_days`).
impl serde::Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.code() == s)
            .ok_or_else(|| format!("unknown reminder kind {s:?}"))
    }
}

/// Days of grace after the expiry date, during which the trial can still be converted.
pub const GRACE_DAYS: i32 = 30;
/// Days the phone numbers of a calling trial are kept after the grace period.
pub const NUMBERS_KEPT_DAYS: i32 = 15;

/// Who a reminder goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Audience {
    /// The trial's `customer_admin_emails`, in the trial's language.
    CustomerAdmins,
    /// The partner's `admin_emails`, in the partner's language.
    PartnerAdmins,
}

impl Audience {
    pub const ALL: [Audience; 2] = [Audience::CustomerAdmins, Audience::PartnerAdmins];

    pub fn code(self) -> &'static str {
        match self {
            Audience::CustomerAdmins => "customer_admins",
            Audience::PartnerAdmins => "partner_admins",
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl serde::Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl FromStr for Audience {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Audience::ALL
            .into_iter()
            .find(|a| a.code() == s)
            .ok_or_else(|| format!("unknown reminder audience {s:?}"))
    }
}

/// `date + days`, clamped to jiff's date range (only reachable with absurd input dates).
pub fn add_days(date: Date, days: i32) -> Date {
    date.saturating_add(days.days())
}

/// Whole days from `from` to `to` (negative when `to` is earlier).
pub fn days_between(from: Date, to: Date) -> i32 {
    (to - from).get_days()
}

/// When a reminder of `kind` for expiry date `expires_on` falls due.
pub fn due_on(expires_on: Date, kind: Kind) -> Date {
    add_days(expires_on, kind.offset_days())
}

/// The last day of its catch-up window.
pub fn window_end(expires_on: Date, kind: Kind) -> Date {
    add_days(due_on(expires_on, kind), WINDOW_DAYS - 1)
}

/// Whether `date` lies inside the reminder's window `[due_on, due_on + 6]`.
pub fn in_window(expires_on: Date, kind: Kind, date: Date) -> bool {
    due_on(expires_on, kind) <= date && date <= window_end(expires_on, kind)
}

/// The expiry dates whose `kind` window overlaps `[first, last]`: what a query scans.
pub fn expiry_range(kind: Kind, first: Date, last: Date) -> (Date, Date) {
    let o = kind.offset_days();
    (add_days(first, -o - (WINDOW_DAYS - 1)), add_days(last, -o))
}

/// The expiry dates whose `kind` window *ended* within `[first, last]` (missed-reminder scans).
pub fn expiry_range_ended(kind: Kind, first: Date, last: Date) -> (Date, Date) {
    let o = kind.offset_days();
    (
        add_days(first, -o - (WINDOW_DAYS - 1)),
        add_days(last, -o - (WINDOW_DAYS - 1)),
    )
}

/// The instant `date` at `send_at` in `tz` (compatible disambiguation: forward across a gap,
/// the earlier of two repeated times).
pub fn send_moment(date: Date, send_at: Time, tz: &TimeZone) -> Timestamp {
    tz.to_ambiguous_timestamp(date.to_datetime(send_at))
        .compatible()
        // Only fails at the very ends of jiff's range.
        .unwrap_or(Timestamp::MAX)
}

/// The calendar date of `t` in `tz`.
pub fn local_date(t: Timestamp, tz: &TimeZone) -> Date {
    tz.to_datetime(t).date()
}

/// The moment reminders are judged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// A real instant: the local date and the send time are taken in each trial's zone.
    Instant(Timestamp),
    /// `--date D`: D in every zone, at or after the send time.
    Date(Date),
}

impl At {
    /// The trial's local date.
    pub fn date_in(self, tz: &TimeZone) -> Date {
        match self {
            At::Instant(t) => local_date(t, tz),
            At::Date(d) => d,
        }
    }

    /// Whether the local send time of that date has been reached.
    pub fn send_time_reached(self, send_at: Time, tz: &TimeZone) -> bool {
        match self {
            At::Instant(t) => t >= send_moment(local_date(t, tz), send_at, tz),
            At::Date(_) => true,
        }
    }
}

/// Where one reminder stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its window has not begun.
    Upcoming,
    /// Today is in its window but the local send time has not come yet.
    Later,
    /// It may be sent now.
    Sendable,
    /// Its window ended while we knew the trial's expiry date: record it as missed.
    Missed,
    /// Its window ended before we learnt of this expiry date: not ours to send or miss.
    BeforeOurTime,
}

/// Judges one reminder. `known_since` is the local date on which the current expiry date
/// became known (first import, or the change that set it).
pub fn status(
    expires_on: Date,
    kind: Kind,
    at: At,
    send_at: Time,
    tz: &TimeZone,
    known_since: Date,
) -> Status {
    let today = at.date_in(tz);
    let end = window_end(expires_on, kind);
    if today < due_on(expires_on, kind) {
        Status::Upcoming
    } else if today <= end {
        if at.send_time_reached(send_at, tz) {
            Status::Sendable
        } else {
            Status::Later
        }
    } else if known_since <= end {
        Status::Missed
    } else {
        Status::BeforeOurTime
    }
}

/// The first instant at or after `now` at which the reminder is sendable, if its window has not
/// ended by then. Returns `now` when it is sendable already.
pub fn next_send_moment(
    expires_on: Date,
    kind: Kind,
    now: Timestamp,
    send_at: Time,
    tz: &TimeZone,
) -> Option<Timestamp> {
    let today = local_date(now, tz);
    let first = today.max(due_on(expires_on, kind));
    let end = window_end(expires_on, kind);
    // A date whose send moment has passed is sendable now; else its send moment is next.
    // Two dates suffice: today's moment passed means today is sendable.
    let mut date = first;
    while date <= end {
        let moment = send_moment(date, send_at, tz);
        if date == today && now >= moment {
            return Some(now);
        }
        if moment >= now {
            return Some(moment);
        }
        date = add_days(date, 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn due_dates_and_windows_cross_month_and_year_ends() {
        // (expires_on, kind, due_on, window_end)
        #[rustfmt::skip]
        let cases = [
            (date(2026, 12, 31), Kind::ExpiresIn7Days, date(2026, 12, 24), date(2026, 12, 30)),
            (date(2026, 12, 31), Kind::ExpiresToday, date(2026, 12, 31), date(2027, 1, 6)),
            (date(2026, 12, 31), Kind::GracePeriodEnded, date(2027, 1, 30), date(2027, 2, 5)),
            (date(2026, 12, 31), Kind::CallingNumbersReleased, date(2027, 2, 14), date(2027, 2, 20)),
            (date(2027, 1, 3), Kind::ExpiresIn7Days, date(2026, 12, 27), date(2027, 1, 2)),
            // Leap day: 2028-02-29.
            (date(2028, 2, 29), Kind::ExpiresIn7Days, date(2028, 2, 22), date(2028, 2, 28)),
            (date(2028, 2, 29), Kind::ExpiresToday, date(2028, 2, 29), date(2028, 3, 6)),
            (date(2028, 2, 29), Kind::GracePeriodEnded, date(2028, 3, 30), date(2028, 4, 5)),
            (date(2028, 2, 29), Kind::CallingNumbersReleased, date(2028, 4, 14), date(2028, 4, 20)),
            (date(2028, 3, 5), Kind::ExpiresIn7Days, date(2028, 2, 27), date(2028, 3, 4)),
            (date(2027, 3, 5), Kind::ExpiresIn7Days, date(2027, 2, 26), date(2027, 3, 4)),
            (date(2028, 1, 30), Kind::GracePeriodEnded, date(2028, 2, 29), date(2028, 3, 6)),
        ];
        for (e, k, due, end) in cases {
            assert_eq!(due_on(e, k), due, "{e} {k}");
            assert_eq!(window_end(e, k), end, "{e} {k}");
            assert!(in_window(e, k, due) && in_window(e, k, end), "{e} {k}");
            assert!(!in_window(e, k, add_days(due, -1)) && !in_window(e, k, add_days(end, 1)));
            assert_eq!(days_between(due, end), WINDOW_DAYS - 1);
        }
    }

    #[test]
    fn expiry_ranges_invert_the_windows() {
        let d = date(2027, 1, 2);
        for k in Kind::ALL {
            let (lo, hi) = expiry_range(k, d, d);
            assert!(in_window(lo, k, d) && in_window(hi, k, d), "{k}");
            assert!(!in_window(add_days(lo, -1), k, d) && !in_window(add_days(hi, 1), k, d));
            let (lo, hi) = expiry_range_ended(k, d, d);
            assert_eq!(lo, hi, "{k}");
            assert_eq!(window_end(lo, k), d, "{k}");
        }
    }

    #[test]
    fn kinds_apply_by_services_and_conversion() {
        let mut t = Trial {
            trial_id: "T".into(),
            partner_id: "P".into(),
            customer: "C".into(),
            customer_admin_emails: vec!["a@x.example".into()],
            services: vec![crate::domain::Service::Meeting],
            starts_on: date(2026, 1, 1),
            expires_on: date(2026, 2, 1),
            extended: false,
            converted: false,
            timezone: "UTC".into(),
            language: crate::domain::Language::En,
        };
        let applicable = |t: &Trial| Kind::ALL.into_iter().filter(|k| k.applies_to(t)).count();
        assert_eq!(applicable(&t), 3);
        t.services.push(crate::domain::Service::Calling);
        assert_eq!(applicable(&t), 4);
        t.converted = true;
        assert_eq!(applicable(&t), 0);
    }

    #[test]
    fn send_moments_across_dst_changes() {
        // (zone, date, send_at, expected instant)
        #[rustfmt::skip]
        let cases = [
            // Ordinary days.
            ("Asia/Shanghai", date(2026, 12, 31), time(9, 0, 0, 0), "2026-12-31T01:00:00Z"),
            ("Asia/Tokyo", date(2027, 1, 1), time(9, 0, 0, 0), "2027-01-01T00:00:00Z"),
            ("Asia/Kolkata", date(2026, 12, 31), time(9, 0, 0, 0), "2026-12-31T03:30:00Z"),
            ("Europe/Berlin", date(2027, 1, 15), time(9, 0, 0, 0), "2027-01-15T08:00:00Z"),
            ("Europe/Berlin", date(2027, 7, 15), time(9, 0, 0, 0), "2027-07-15T07:00:00Z"),
            // Berlin springs forward 2027-03-28 02:00 → 03:00: 09:00 is CEST already,
            // and 02:30 does not exist: compatible moves it forward by the gap, to 03:30 CEST.
            ("Europe/Berlin", date(2027, 3, 28), time(9, 0, 0, 0), "2027-03-28T07:00:00Z"),
            ("Europe/Berlin", date(2027, 3, 28), time(2, 30, 0, 0), "2027-03-28T01:30:00Z"),
            // Berlin falls back 2027-10-31 03:00 → 02:00: 02:30 happens twice; the first counts.
            ("Europe/Berlin", date(2027, 10, 31), time(2, 30, 0, 0), "2027-10-31T00:30:00Z"),
            ("Europe/Berlin", date(2027, 10, 31), time(9, 0, 0, 0), "2027-10-31T08:00:00Z"),
            // New York springs forward 2027-03-14 02:00 → 03:00, falls back 2027-11-07.
            ("America/New_York", date(2027, 3, 14), time(2, 15, 0, 0), "2027-03-14T07:15:00Z"),
            ("America/New_York", date(2027, 3, 14), time(9, 0, 0, 0), "2027-03-14T13:00:00Z"),
            ("America/New_York", date(2027, 11, 7), time(1, 30, 0, 0), "2027-11-07T05:30:00Z"),
            ("America/New_York", date(2027, 11, 7), time(9, 0, 0, 0), "2027-11-07T14:00:00Z"),
            // Midnight send time on the other side of the date line.
            ("Pacific/Kiritimati", date(2027, 1, 1), time(0, 0, 0, 0), "2026-12-31T10:00:00Z"),
            ("Pacific/Pago_Pago", date(2026, 12, 31), time(23, 59, 0, 0), "2027-01-01T10:59:00Z"),
        ];
        for (zone, d, at, want) in cases {
            assert_eq!(send_moment(d, at, &tz(zone)), ts(want), "{zone} {d} {at}");
        }
    }

    #[test]
    fn status_by_instant_in_the_trials_zone() {
        let nine = time(9, 0, 0, 0);
        let known = date(2026, 1, 1);
        // (zone, expires_on, kind, instant, expected)
        #[rustfmt::skip]
        let cases = [
            // Shanghai 08:59 on the due date: later today; 09:00: sendable.
            ("Asia/Shanghai", date(2027, 1, 7), Kind::ExpiresIn7Days, "2026-12-31T00:59:00Z", Status::Later),
            ("Asia/Shanghai", date(2027, 1, 7), Kind::ExpiresIn7Days, "2026-12-31T01:00:00Z", Status::Sendable),
            // Midnight UTC on Dec 31 is 08:00 in Shanghai: not at midnight UTC.
            ("Asia/Shanghai", date(2027, 1, 7), Kind::ExpiresIn7Days, "2026-12-31T00:00:00Z", Status::Later),
            // The day before (local) is upcoming even though the UTC date is the due date.
            ("America/New_York", date(2027, 1, 7), Kind::ExpiresIn7Days, "2026-12-31T04:59:00Z", Status::Upcoming),
            ("America/New_York", date(2027, 1, 7), Kind::ExpiresIn7Days, "2026-12-31T13:59:00Z", Status::Later),
            ("America/New_York", date(2027, 1, 7), Kind::ExpiresIn7Days, "2026-12-31T14:00:00Z", Status::Sendable),
            // Last day of the window at 23:59 local, then the next local day.
            ("America/New_York", date(2027, 1, 7), Kind::ExpiresIn7Days, "2027-01-07T04:59:00Z", Status::Sendable),
            ("America/New_York", date(2027, 1, 7), Kind::ExpiresIn7Days, "2027-01-07T05:00:00Z", Status::Missed),
            // A catch-up day in the window before send time is still "later", not sendable.
            ("Europe/Berlin", date(2027, 3, 31), Kind::ExpiresToday, "2027-04-02T06:59:00Z", Status::Later),
            ("Europe/Berlin", date(2027, 3, 31), Kind::ExpiresToday, "2027-04-02T07:00:00Z", Status::Sendable),
            // DST day in Berlin: 09:00 CEST is 07:00Z.
            ("Europe/Berlin", date(2027, 3, 28), Kind::ExpiresToday, "2027-03-28T06:59:59Z", Status::Later),
            ("Europe/Berlin", date(2027, 3, 28), Kind::ExpiresToday, "2027-03-28T07:00:00Z", Status::Sendable),
            // Fall-back day in New York: 09:00 EST is 14:00Z.
            ("America/New_York", date(2027, 11, 7), Kind::ExpiresToday, "2027-11-07T13:59:00Z", Status::Later),
            ("America/New_York", date(2027, 11, 7), Kind::ExpiresToday, "2027-11-07T14:00:00Z", Status::Sendable),
            // Year end in Tokyo: grace period of a trial expiring 2026-12-02 ends 2027-01-01.
            ("Asia/Tokyo", date(2026, 12, 2), Kind::GracePeriodEnded, "2026-12-31T23:59:00Z", Status::Later),
            ("Asia/Tokyo", date(2026, 12, 2), Kind::GracePeriodEnded, "2027-01-01T00:00:00Z", Status::Sendable),
        ];
        for (zone, e, k, t, want) in cases {
            let got = status(e, k, At::Instant(ts(t)), nine, &tz(zone), known);
            assert_eq!(got, want, "{zone} E={e} {k} at {t}");
        }
    }

    #[test]
    fn status_by_date_ignores_the_clock_and_respects_when_we_knew() {
        let nine = time(9, 0, 0, 0);
        let utc = TimeZone::UTC;
        let e = date(2027, 1, 10);
        let k = Kind::ExpiresToday; // window 2027-01-10 ..= 2027-01-16
        let s = |d, known| status(e, k, At::Date(d), nine, &utc, known);
        let early = date(2026, 12, 1);
        assert_eq!(s(date(2027, 1, 9), early), Status::Upcoming);
        assert_eq!(s(date(2027, 1, 10), early), Status::Sendable);
        assert_eq!(s(date(2027, 1, 16), early), Status::Sendable);
        assert_eq!(s(date(2027, 1, 17), early), Status::Missed);
        // Learnt on the last day of the window: a running bot would have sent it.
        assert_eq!(s(date(2027, 1, 17), date(2027, 1, 16)), Status::Missed);
        // Learnt after the window: not our miss.
        assert_eq!(
            s(date(2027, 1, 17), date(2027, 1, 17)),
            Status::BeforeOurTime
        );
    }

    #[test]
    fn next_send_moment_finds_the_next_local_send_time() {
        let nine = time(9, 0, 0, 0);
        let sh = tz("Asia/Shanghai");
        let e = date(2027, 1, 7); // expires_in_7_days window 2026-12-31 ..= 2027-01-06
        let k = Kind::ExpiresIn7Days;
        let next = |t: &str| next_send_moment(e, k, ts(t), nine, &sh);
        // Before the window: its first day at 09:00 local.
        assert_eq!(
            next("2026-12-20T00:00:00Z"),
            Some(ts("2026-12-31T01:00:00Z"))
        );
        // Sendable now.
        assert_eq!(
            next("2027-01-02T05:00:00Z"),
            Some(ts("2027-01-02T05:00:00Z"))
        );
        // Early on a window day: that day's send time.
        assert_eq!(
            next("2027-01-02T00:30:00Z"),
            Some(ts("2027-01-02T01:00:00Z"))
        );
        // Last day after 23:59 local: over.
        assert_eq!(next("2027-01-06T16:00:00Z"), None);
        // Berlin spring-forward: send_at 02:30 does not exist → 03:30 CEST.
        let be = tz("Europe/Berlin");
        assert_eq!(
            next_send_moment(
                date(2027, 3, 28),
                Kind::ExpiresToday,
                ts("2027-03-27T23:00:00Z"),
                time(2, 30, 0, 0),
                &be
            ),
            Some(ts("2027-03-28T01:30:00Z"))
        );
    }

    #[test]
    fn codes_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.code().parse::<Kind>().unwrap(), k);
        }
        for a in Audience::ALL {
            assert_eq!(a.code().parse::<Audience>().unwrap(), a);
        }
        assert!("expires_tomorrow".parse::<Kind>().is_err());
        let json: Vec<String> = Kind::ALL
            .iter()
            .map(|k| serde_json::to_string(k).unwrap())
            .collect();
        assert_eq!(
            json,
            [
                "\"expires_in_7_days\"",
                "\"expires_today\"",
                "\"grace_period_ended\"",
                "\"calling_numbers_released\""
            ]
        );
        assert_eq!(
            serde_json::to_string(&Audience::PartnerAdmins).unwrap(),
            "\"partner_admins\""
        );
    }
}
