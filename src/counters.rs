//! The process's counters and latency histograms (cheap atomics behind one [`Metrics`]),
//! recorded by the workers and read by `GET /metrics` ([`crate::metrics`]). Depends on no
//! worker: the pipeline, the sender and the reminder scheduler count into it, and the scrape
//! reads it, without either knowing the other.
//!
//! Labels carry only codes (kind, action, reason, purpose): never an address, a subject or a
//! loan number, so neither cardinality nor personal data grows with the mail.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::classify::{Action, Kind};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    kind: &'static str,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SendLabels {
    purpose: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReminderLabels {
    kind: &'static str,
    outcome: &'static str,
}

/// What became of one attempt to send an outbox mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendResult {
    Sent,
    /// Failed for now; tried again later.
    Retried,
    /// Failed for good; moved to the review queue.
    Dead,
    /// The relay was unavailable: the mail waits for it, no attempt counted.
    RelayDown,
    /// Handed over without hearing the final reply: retried after the unknown-outcome delay.
    UnknownOutcome,
}

impl SendResult {
    fn code(self) -> &'static str {
        match self {
            SendResult::Sent => "sent",
            SendResult::Retried => "retried",
            SendResult::Dead => "dead",
            SendResult::RelayDown => "relay_down",
            SendResult::UnknownOutcome => "unknown_outcome",
        }
    }
}

/// What became of one reminder the scheduler handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderOutcome {
    Queued,
    Missed,
    Failed,
}

impl ReminderOutcome {
    fn code(self) -> &'static str {
        match self {
            ReminderOutcome::Queued => "queued",
            ReminderOutcome::Missed => "missed",
            ReminderOutcome::Failed => "failed",
        }
    }
}

/// The outbox purposes (`outbox.purpose`), pre-declared so their series exist from the start.
pub const PURPOSES: [&str; 5] = [
    "reply",
    "reminder",
    "staff_reply",
    "shipment_notice",
    "rma_label",
];

/// One process's metrics. Cheap to share (`Arc`); every recording method is a few atomics.
pub struct Metrics {
    registry: Registry,
    mails_fetched: Counter,
    fetch_errors: Counter,
    fetch_duration: Histogram,
    decisions: Family<DecisionLabels, Counter>,
    duplicates: Counter,
    processing_failures: Counter,
    processing_duration: Histogram,
    rate_limited: Counter,
    sends: Family<SendLabels, Counter>,
    send_duration: Histogram,
    reminders: Family<ReminderLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn seconds_buckets(start: f64, length: u16) -> Histogram {
    Histogram::new(exponential_buckets(start, 2.0, length))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("trialdesk");
        r.register(
            "build",
            "The version and git revision of this binary",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("revision", crate::GIT_REVISION.to_string()),
            ]),
        );
        let start = Gauge::<f64, AtomicU64>::default();
        start.set(now_seconds());
        r.register_with_unit(
            "start_time",
            "When this process started, Unix time",
            Unit::Seconds,
            start,
        );

        let mails_fetched = Counter::default();
        r.register(
            "mails_fetched",
            "Mails read from the mail source (each time one is offered, redeliveries included)",
            mails_fetched.clone(),
        );
        let fetch_errors = Counter::default();
        r.register(
            "fetch_errors",
            "Fetches from the mail source that failed (connection, login, protocol)",
            fetch_errors.clone(),
        );
        // 1 ms … ~33 s: a Maildir listing to an IMAP round trip on a slow link.
        let fetch_duration = seconds_buckets(0.001, 16);
        r.register_with_unit(
            "fetch_duration",
            "Time one fetch from the mail source took (listing and downloading a batch)",
            Unit::Seconds,
            fetch_duration.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        r.register(
            "decisions",
            "Mails decided, by kind (tracking_request, other, automated) and action (reply, review, ignore)",
            decisions.clone(),
        );
        let duplicates = Counter::default();
        r.register(
            "mails_duplicate",
            "Mails already recorded earlier (redelivered or re-read), acknowledged without a decision",
            duplicates.clone(),
        );
        let processing_failures = Counter::default();
        r.register(
            "processing_failures",
            "Mails whose processing failed (database trouble); they stay at the source and are retried",
            processing_failures.clone(),
        );
        // 0.5 ms … ~16 s.
        let processing_duration = seconds_buckets(0.0005, 16);
        r.register_with_unit(
            "mail_processing_duration",
            "Time from a fetched mail to its committed decision (classify, look up, compose, record)",
            Unit::Seconds,
            processing_duration.clone(),
        );
        let rate_limited = Counter::default();
        r.register(
            "replies_rate_limited",
            "Automatic replies withheld by the per-recipient rate limit (the mail went to review)",
            rate_limited.clone(),
        );
        let sends = Family::<SendLabels, Counter>::default();
        r.register(
            "sends",
            "Attempts to send outbox mail, by purpose (reply, reminder, staff_reply) and result (sent, retried, dead, relay_down: the relay was unavailable, unknown_outcome: no reply to the final dot)",
            sends.clone(),
        );
        // 1 ms … ~65 s (the SMTP timeout is in this range).
        let send_duration = seconds_buckets(0.001, 17);
        r.register_with_unit(
            "send_duration",
            "Time one send attempt took at the transport (SMTP dialogue or file write), whatever its result",
            Unit::Seconds,
            send_duration.clone(),
        );
        let reminders = Family::<ReminderLabels, Counter>::default();
        r.register(
            "reminders",
            "Reminders handled by the scheduler, by kind and outcome (queued, missed, failed)",
            reminders.clone(),
        );
        let m = Metrics {
            registry: r,
            mails_fetched,
            fetch_errors,
            fetch_duration,
            decisions,
            duplicates,
            processing_failures,
            processing_duration,
            rate_limited,
            sends,
            send_duration,
            reminders,
        };
        // Every series that can appear exists from the start at 0, so `rate()` and alerts on
        // absent series behave from the first scrape.
        for kind in Kind::ALL {
            for action in [Action::Reply, Action::Review, Action::Ignore] {
                let _ = m.decisions.get_or_create(&DecisionLabels {
                    kind: kind.code(),
                    action: action.code(),
                });
            }
        }
        for purpose in PURPOSES {
            for result in [
                SendResult::Sent,
                SendResult::Retried,
                SendResult::Dead,
                SendResult::RelayDown,
                SendResult::UnknownOutcome,
            ] {
                let _ = m.sends.get_or_create(&SendLabels {
                    purpose: purpose.to_string(),
                    result: result.code(),
                });
            }
        }
        m
    }

    /// One fetch from the source: how long it took, and whether it worked.
    pub fn fetch_done(&self, took: Duration, ok: bool) {
        self.fetch_duration.observe(took.as_secs_f64());
        if !ok {
            self.fetch_errors.inc();
        }
    }

    /// One mail taken from the source for processing.
    pub fn mail_fetched(&self) {
        self.mails_fetched.inc();
    }

    /// A mail decided and recorded.
    pub fn decided(&self, kind: Kind, action: Action, took: Duration) {
        self.decisions
            .get_or_create(&DecisionLabels {
                kind: kind.code(),
                action: action.code(),
            })
            .inc();
        self.processing_duration.observe(took.as_secs_f64());
    }

    /// A mail found already recorded.
    pub fn duplicate(&self, took: Duration) {
        self.duplicates.inc();
        self.processing_duration.observe(took.as_secs_f64());
    }

    /// A mail whose processing failed.
    pub fn processing_failed(&self) {
        self.processing_failures.inc();
    }

    /// An automatic reply withheld by the rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// One send attempt.
    pub fn send_attempt(&self, purpose: &str, result: SendResult, took: Duration) {
        // Only known purposes become label values (a hand-edited row cannot add series).
        let purpose = if PURPOSES.contains(&purpose) {
            purpose
        } else {
            "other"
        };
        self.sends
            .get_or_create(&SendLabels {
                purpose: purpose.to_string(),
                result: result.code(),
            })
            .inc();
        self.send_duration.observe(took.as_secs_f64());
    }

    /// One reminder handled by the scheduler; `kind` is a `reminders::Kind` code.
    pub fn reminder(&self, kind: &'static str, outcome: ReminderOutcome) {
        self.reminders
            .get_or_create(&ReminderLabels {
                kind,
                outcome: outcome.code(),
            })
            .inc();
    }

    /// Declares the reminder series (`kind` codes × outcomes) so they exist from the start.
    pub fn declare_reminder_kinds(&self, kinds: &[&'static str]) {
        for &kind in kinds {
            for outcome in [
                ReminderOutcome::Queued,
                ReminderOutcome::Missed,
                ReminderOutcome::Failed,
            ] {
                let _ = self.reminders.get_or_create(&ReminderLabels {
                    kind,
                    outcome: outcome.code(),
                });
            }
        }
    }

    /// Appends the counters in the OpenMetrics text format (without the final `# EOF`).
    pub fn encode(&self, out: &mut String) {
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(out, &self.registry);
    }
}

fn now_seconds() -> f64 {
    jiff::Timestamp::now().as_millisecond() as f64 / 1000.0
}
