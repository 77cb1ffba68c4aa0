//! Classification: raw RFC 5322 bytes → what the mail is and what to do with it.
//!
//! Two steps, both pure:
//! 1. [`inspect`] reads the mail alone (`mail-parser`): subject alias and language, loan
//!    numbers (fresh text first, quotes only as a fallback), machine-generated markers, sender,
//!    threading headers, trusted DMARC verdicts.
//! 2. [`decide`] combines that with what the store knows (the partner owning the sender's
//!    domain, the shipments behind the numbers) into a [`Decision`].
//!
//! The store lookup between the two lives in `pipeline`, so these rules are unit-tested
//! table by table without a database.

pub mod authorise;
pub mod automated;
pub mod decision;
pub mod loan_numbers;
pub mod message;
pub(crate) mod mime;
pub mod quotes;
pub mod sender;
pub mod subject;
pub mod text;

use serde::Serialize;

use crate::config::{Config, ConfigError};
use crate::domain::{Language, LoanNumber, Partner, Shipment};

pub use sender::address_domain;

/// Header on every mail trialdesk sends (value `reply`, `reminder`, …): mail carrying it that
/// comes back in is our own and is never answered.
pub const OWN_MAIL_HEADER: &str = "X-Trialdesk";

/// Local-part prefix of the Message-IDs trialdesk generates (`td.<millis>.<16 hex>@domain`).
pub const OWN_MESSAGE_ID_PREFIX: &str = "td.";

/// A display name and address, as found in From / Reply-To.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    pub name: Option<String>,
    /// Lower-cased address.
    pub address: String,
}

/// The compiled rules, built once from the config.
#[derive(Debug, Clone)]
pub struct Rules {
    pub subject: subject::SubjectMatcher,
    /// RMA label request phrases (`[rma] aliases`), matched in the subject and fresh text.
    pub rma: subject::SubjectMatcher,
    pub loans: loan_numbers::LoanExtractor,
    /// authserv-ids whose `Authentication-Results` are believed (lower-cased).
    pub trusted_authserv_ids: Vec<String>,
    /// Our own addresses (lower-cased): mail from them is never answered.
    pub own_addresses: Vec<String>,
    /// Domain of our generated Message-IDs (lower-cased).
    pub own_message_id_domain: String,
    /// Mails larger than this are not parsed: they go to review with their headers.
    pub max_message_bytes: usize,
    /// Deepest MIME nesting (multiparts and attached messages) whose bodies are read; deeper
    /// mail goes to review with its headers.
    pub max_mime_depth: usize,
    /// Most MIME parts (nested messages' parts included) whose bodies are read; mail with more
    /// goes to review with its headers.
    pub max_mime_parts: usize,
    /// `[security]`'s sender policy (see [`authorise`]).
    pub sender_policy: authorise::SenderPolicy,
    /// `[rma] labels_dir`, resolved (None: no labels on file).
    pub rma_labels_dir: Option<std::path::PathBuf>,
    /// `[rma] max_label_bytes`.
    pub rma_max_label_bytes: u64,
    /// `[tracking] max_listed`: active loans listed for a request without numbers.
    pub max_listed: usize,
}

impl Rules {
    pub fn from_config(config: &Config) -> Result<Rules, ConfigError> {
        Ok(Rules {
            subject: subject::SubjectMatcher::new(&config.classify.aliases()),
            rma: subject::SubjectMatcher::new(&config.rma.alias_pairs()),
            loans: loan_numbers::LoanExtractor::new(
                &config.classify.loan_number_pattern,
                config.classify.max_loan_numbers,
            )
            .map_err(|e| crate::config::invalid("classify.loan_number_pattern", e.to_string()))?,
            trusted_authserv_ids: config
                .security
                .trusted_authserv_ids
                .iter()
                .map(|s| s.trim().to_ascii_lowercase())
                .collect(),
            own_addresses: config.mail.own_addresses(),
            own_message_id_domain: config.mail.message_id_domain(),
            max_message_bytes: config.mail.max_message_bytes,
            max_mime_depth: config.mail.max_mime_depth,
            max_mime_parts: config.mail.max_mime_parts,
            sender_policy: authorise::SenderPolicy {
                require_dmarc_pass: config.security.require_dmarc_pass,
            },
            rma_labels_dir: config
                .rma
                .labels_dir
                .as_deref()
                .map(|d| config.resolve_path(d)),
            rma_max_label_bytes: config.rma.max_label_bytes,
            max_listed: config.tracking.max_listed,
        })
    }
}

/// Everything trialdesk reads from one mail, before looking anything up.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// Message-ID without angle brackets, when the mail has a usable one.
    pub message_id: Option<String>,
    /// Idempotency key: `mid:<message-id>` or `sha256:<hex of the raw bytes>`.
    pub message_key: String,
    /// Decoded subject ("" when absent).
    pub subject: String,
    pub from: Option<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    /// Message-IDs from References (without brackets), oldest first.
    pub references: Vec<String>,
    /// Unix seconds from the Date header, when it parses.
    pub date: Option<i64>,
    /// Why the mail is machine-generated (never answered), e.g. `auto_submitted`,
    /// `sender:mailer-daemon`, `report:delivery-status`, `own_mail_returned`.
    pub automated: Option<String>,
    /// The reply language picked by the matched tracking-request alias; `None` when the
    /// subject is not a tracking request.
    pub request_language: Option<Language>,
    /// The language of the RMA label phrase the subject or fresh text names (`[rma] aliases`);
    /// `None` when the mail asks for no return label.
    #[serde(default)]
    pub rma_language: Option<Language>,
    /// Loan numbers in order of first appearance, de-duplicated, at most `max_loan_numbers`.
    pub loan_numbers: Vec<LoanNumber>,
    /// More distinct numbers were present than `max_loan_numbers`.
    pub loan_numbers_truncated: bool,
    /// A trusted authserv-id reported `dmarc=fail`.
    pub dmarc_fail: bool,
    /// The DMARC result a trusted authserv-id reported (lower-case; a `fail` from any trusted
    /// header wins), None without a trusted header carrying one.
    pub dmarc: Option<String>,
    /// Two or more From header fields, or more than one address in From: which sender a
    /// person's mail client shows is not certain.
    pub sender_ambiguous: bool,
    /// The mail exceeded `max_message_bytes` and was only read as far as its headers.
    pub oversize: bool,
    /// The MIME structure is nested deeper than `max_mime_depth`: only headers were read.
    pub mime_too_deep: bool,
    /// The mail has more MIME parts than `max_mime_parts`: only headers were read.
    pub too_many_parts: bool,
    /// The mail has more top-level header fields than trialdesk reads (1000): only those were
    /// read, not the body.
    pub too_many_headers: bool,
    /// Decoded readable text (text/plain, or HTML reduced to text), for staff and storage.
    pub text: String,
    /// Problems met while parsing (malformed MIME, undecodable charset, no From, ...).
    pub notes: Vec<String>,
    /// Machine-readable findings of the inspection (`automated:…`, `dmarc:fail:<authserv-id>`,
    /// `numbers:from_quotes` …), copied into [`Decision::reasons`].
    pub findings: Vec<String>,
}

/// What kind of mail this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    TrackingRequest,
    /// Asks for a return (RMA) label: `[rma] aliases` in the subject or fresh text.
    RmaLabelRequest,
    Other,
    Automated,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::TrackingRequest,
        Kind::RmaLabelRequest,
        Kind::Other,
        Kind::Automated,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Kind::TrackingRequest => "tracking_request",
            Kind::RmaLabelRequest => "rma_label_request",
            Kind::Other => "other",
            Kind::Automated => "automated",
        }
    }
}

/// What trialdesk does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Reply,
    Review,
    Ignore,
}

impl Action {
    pub fn code(self) -> &'static str {
        match self {
            Action::Reply => "reply",
            Action::Review => "review",
            Action::Ignore => "ignore",
        }
    }
}

/// Why a mail (or a send, or a reminder) waits for a person. Stored by its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewReason {
    UnknownSender,
    DmarcFail,
    OtherSubject,
    LoanOfOtherPartner,
    TooManyNumbers,
    Oversize,
    MimeTooDeep,
    TooManyParts,
    TooManyHeaders,
    RateLimited,
    DeadLetter,
    MissedReminder,
    SenderAmbiguous,
    DmarcNotPass,
    /// An RMA label request that cannot be answered automatically (no label on file, loan
    /// not in `return_requested`, unknown or another partner's loan, no number).
    RmaLabelMissing,
    /// A loan in `exception` or overdue past its ETA: one item per loan until resolved.
    ShipmentAttention,
}

impl ReviewReason {
    pub const ALL: [ReviewReason; 16] = [
        ReviewReason::UnknownSender,
        ReviewReason::DmarcFail,
        ReviewReason::OtherSubject,
        ReviewReason::LoanOfOtherPartner,
        ReviewReason::TooManyNumbers,
        ReviewReason::Oversize,
        ReviewReason::MimeTooDeep,
        ReviewReason::TooManyParts,
        ReviewReason::TooManyHeaders,
        ReviewReason::RateLimited,
        ReviewReason::DeadLetter,
        ReviewReason::MissedReminder,
        ReviewReason::SenderAmbiguous,
        ReviewReason::DmarcNotPass,
        ReviewReason::RmaLabelMissing,
        ReviewReason::ShipmentAttention,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ReviewReason::UnknownSender => "unknown_sender",
            ReviewReason::DmarcFail => "dmarc_fail",
            ReviewReason::OtherSubject => "other_subject",
            ReviewReason::LoanOfOtherPartner => "loan_of_other_partner",
            ReviewReason::TooManyNumbers => "too_many_numbers",
            ReviewReason::Oversize => "oversize",
            ReviewReason::MimeTooDeep => "mime_too_deep",
            ReviewReason::TooManyParts => "too_many_parts",
            ReviewReason::TooManyHeaders => "too_many_headers",
            ReviewReason::RateLimited => "rate_limited",
            ReviewReason::DeadLetter => "dead_letter",
            ReviewReason::MissedReminder => "missed_reminder",
            ReviewReason::SenderAmbiguous => "sender:ambiguous",
            ReviewReason::DmarcNotPass => "dmarc_not_pass",
            ReviewReason::RmaLabelMissing => "rma_label_missing",
            ReviewReason::ShipmentAttention => "shipment_attention",
        }
    }

    pub fn from_code(code: &str) -> Option<ReviewReason> {
        ReviewReason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Words for staff.
    pub fn describe(self) -> &'static str {
        match self {
            ReviewReason::UnknownSender => "sender's domain belongs to no partner",
            ReviewReason::DmarcFail => "our MTA reported dmarc=fail (possible spoofing)",
            ReviewReason::OtherSubject => "not a tracking request",
            ReviewReason::LoanOfOtherPartner => "asks about a loan of another partner",
            ReviewReason::TooManyNumbers => "more loan numbers than one mail may carry",
            ReviewReason::Oversize => "mail larger than the configured limit",
            ReviewReason::MimeTooDeep => "MIME parts nested deeper than the configured limit",
            ReviewReason::TooManyParts => "more MIME parts than the configured limit",
            ReviewReason::TooManyHeaders => "more header fields than trialdesk reads (1000)",
            ReviewReason::RateLimited => "automatic mail to this address hit the rate limit",
            ReviewReason::DeadLetter => "delivery failed permanently",
            ReviewReason::MissedReminder => "reminder not sent within its window",
            ReviewReason::SenderAmbiguous => {
                "two From header fields or several From addresses: the sender is ambiguous"
            }
            ReviewReason::DmarcNotPass => {
                "no trusted dmarc=pass, which security.require_dmarc_pass asks for"
            }
            ReviewReason::RmaLabelMissing => {
                "asks for a return label that cannot be sent automatically"
            }
            ReviewReason::ShipmentAttention => {
                "loan in exception or overdue: check with the carrier and tell the partner"
            }
        }
    }
}

/// The answer for one requested loan number, as the sender may see it.
#[derive(Debug, Clone, Serialize)]
pub struct LoanAnswer {
    pub loan_number: LoanNumber,
    /// `None` when unknown *or* owned by another partner: the sender cannot tell the two apart.
    pub shipment: Option<Shipment>,
}

/// The outcome for one mail.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub kind: Kind,
    pub action: Action,
    /// Reply language (alias → partner → en); also set for mail that is not answered.
    pub language: Language,
    pub partner_id: Option<String>,
    /// Short machine-readable reasons, e.g. `automated:auto_submitted`, `subject:alias:zh`,
    /// `sender:unknown_domain:example.org`, `loan:D1234567:other_partner`, `numbers:from_quotes`.
    pub reasons: Vec<String>,
    /// Why a person should look at it; non-empty for `Review`, and possibly for `Reply`
    /// (a loan of another partner is answered as not found *and* flagged).
    pub review: Vec<ReviewReason>,
    /// Per requested number, in request order.
    pub loans: Vec<LoanAnswer>,
    /// Where a reply goes: From, or a Reply-To inside the same partner's domains.
    pub reply_to: Option<Mailbox>,
    /// A tracking request without numbers from an authorised sender is answered with the
    /// partner's active loans: these (most recent first), and how many more exist.
    pub listed: Vec<Shipment>,
    pub listed_more: i64,
}

/// What the store knows that the decision needs.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// The partner owning the sender's domain (exact, case-insensitive).
    pub partner: Option<Partner>,
    /// Shipments for the requested numbers that exist (of any partner).
    pub shipments: Vec<Shipment>,
    /// The requested numbers with a usable return label on file (RMA label requests only).
    pub rma_labels: Vec<LoanNumber>,
    /// The sender's partner's active loans (not `returned`), most recent first, at most
    /// `[tracking] max_listed`: looked up for a tracking request without numbers.
    pub active_loans: Vec<Shipment>,
    /// How many active loans the partner has in all.
    pub active_total: i64,
}

/// Reads one mail. Never panics, whatever the bytes.
pub fn inspect(rules: &Rules, raw: &[u8]) -> Inspection {
    message::inspect(rules, raw)
}

/// [`inspect`] for a mail whose source read only part of it: `full_size` is its size there.
pub fn inspect_sized(rules: &Rules, raw: &[u8], full_size: u64) -> Inspection {
    message::inspect_sized(rules, raw, full_size)
}

/// [`inspect_sized`] on the blocking pool ([`crate::offload`]), so parsing a crafted mail never
/// holds an async worker thread. Should the work not finish, the mail is unreadable (review).
pub async fn inspect_off_thread(
    rules: &std::sync::Arc<Rules>,
    raw: &[u8],
    full_size: u64,
) -> Inspection {
    inspect_owned_off_thread(rules.clone(), raw.into(), full_size).await
}

/// [`inspect_off_thread`] over owned inputs: the future borrows nothing, so a round's
/// inspections can run ahead side by side.
pub async fn inspect_owned_off_thread(
    rules: std::sync::Arc<Rules>,
    shared: std::sync::Arc<[u8]>,
    full_size: u64,
) -> Inspection {
    let (r, bytes) = (rules.clone(), shared.clone());
    match crate::offload::run(None, move || message::inspect_sized(&r, &bytes, full_size)).await {
        Ok(inspection) => inspection,
        Err(e) => {
            tracing::error!(error = %e, "inspecting a mail failed");
            message::unreadable(&rules, &shared, full_size)
        }
    }
}

/// Combines an inspection with the store's facts under the default sender policy. Pure.
pub fn decide(inspection: &Inspection, lookup: &Lookup) -> Decision {
    decision::decide(inspection, lookup, &authorise::SenderPolicy::default())
}

/// [`decide`] under `policy` (`Rules::sender_policy`). Pure.
pub fn decide_with(
    inspection: &Inspection,
    lookup: &Lookup,
    policy: &authorise::SenderPolicy,
) -> Decision {
    decision::decide(inspection, lookup, policy)
}
