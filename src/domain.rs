//! Domain types shared by every stage: partners, shipments, trials, loan numbers.
//!
//! They are plain data: parsing from CSV lives in `import`, persistence in `store`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A language trialdesk can answer in. The tracking-request alias that matched picks it;
/// partners and trials carry one for reminders and as the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Zh,
    En,
    Ja,
    De,
}

impl Language {
    pub const ALL: [Language; 4] = [Language::Zh, Language::En, Language::Ja, Language::De];

    pub fn code(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
            Language::Ja => "ja",
            Language::De => "de",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "zh" => Ok(Language::Zh),
            "en" => Ok(Language::En),
            "ja" => Ok(Language::Ja),
            "de" => Ok(Language::De),
            other => Err(format!(
                "unknown language {other:?} (expected zh, en, ja or de)"
            )),
        }
    }
}

/// A demo-loan number as printed on a shipping notice, normalised (upper-case ASCII) and matching `classify.loan_number_pattern`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LoanNumber(String);

impl LoanNumber {
    /// Wraps an already normalised number (upper-case ASCII). Callers that read user input go
    /// through `classify::loan_numbers::LoanExtractor` (`extract` for mail text, `parse_one`
    /// for a single number from staff or a CSV), which applies `classify.loan_number_pattern`.
    pub fn from_normalized(s: String) -> Self {
        LoanNumber(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LoanNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reseller that may ask about its own loans. Its `domains` decide who may ask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub partner_id: String,
    pub name: String,
    /// Lower-case mail domains; a sender must match one exactly.
    pub domains: Vec<String>,
    pub admin_emails: Vec<String>,
    pub language: Language,
    /// Opted in to proactive shipment notices (partners CSV column `notify_shipment_updates`).
    #[serde(default)]
    pub notify_shipment_updates: bool,
}

impl Partner {
    pub fn owns_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// Where a loan shipment is in its life; the order is the order of the life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    Ordered,
    Processing,
    Shipped,
    InTransit,
    Delivered,
    ReturnRequested,
    Returned,
    Exception,
}

impl ShipmentStatus {
    pub const ALL: [ShipmentStatus; 8] = [
        ShipmentStatus::Ordered,
        ShipmentStatus::Processing,
        ShipmentStatus::Shipped,
        ShipmentStatus::InTransit,
        ShipmentStatus::Delivered,
        ShipmentStatus::ReturnRequested,
        ShipmentStatus::Returned,
        ShipmentStatus::Exception,
    ];

    pub fn code(self) -> &'static str {
        match self {
            ShipmentStatus::Ordered => "ordered",
            ShipmentStatus::Processing => "processing",
            ShipmentStatus::Shipped => "shipped",
            ShipmentStatus::InTransit => "in_transit",
            ShipmentStatus::Delivered => "delivered",
            ShipmentStatus::ReturnRequested => "return_requested",
            ShipmentStatus::Returned => "returned",
            ShipmentStatus::Exception => "exception",
        }
    }
}

/// The one of `all` whose `code` is `s` (trimmed, in any case); the error names `what` and
/// lists every code.
fn by_code<T: Copy, const N: usize>(
    what: &str,
    s: &str,
    all: [T; N],
    code: fn(T) -> &'static str,
) -> Result<T, String> {
    let wanted = s.trim().to_ascii_lowercase();
    all.into_iter().find(|t| code(*t) == wanted).ok_or_else(|| {
        format!(
            "unknown {what} {s:?} (expected one of {})",
            all.map(code).join(", ")
        )
    })
}

impl FromStr for ShipmentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_code("status", s, ShipmentStatus::ALL, ShipmentStatus::code)
    }
}

impl fmt::Display for ShipmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One demo loan: the devices lent to a partner's customer for a trial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub loan_number: LoanNumber,
    pub partner_id: String,
    pub customer: String,
    pub status: ShipmentStatus,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub shipped_on: Option<jiff::civil::Date>,
    pub eta: Option<jiff::civil::Date>,
    pub delivered_on: Option<jiff::civil::Date>,
    pub items: Vec<String>,
    /// Return authorisation number, once a return is arranged (shipments CSV/API column
    /// `rma_number`, optional).
    #[serde(default)]
    pub rma_number: Option<String>,
}

impl Shipment {
    /// A shipped loan known only by its number and owner, customer `c`: the least the
    /// authorisation rules look at, for their tests and the fuzzing harness.
    pub fn minimal(loan_number: LoanNumber, partner_id: &str) -> Shipment {
        Shipment {
            loan_number,
            partner_id: partner_id.into(),
            customer: "c".into(),
            status: ShipmentStatus::Shipped,
            carrier: None,
            tracking_number: None,
            shipped_on: None,
            eta: None,
            delivered_on: None,
            items: vec![],
            rma_number: None,
        }
    }
}

/// A cloud service included in a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    Message,
    Meeting,
    Calling,
    RoomDevices,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Message,
        Service::Meeting,
        Service::Calling,
        Service::RoomDevices,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Service::Message => "message",
            Service::Meeting => "meeting",
            Service::Calling => "calling",
            Service::RoomDevices => "room_devices",
        }
    }
}

impl FromStr for Service {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        by_code("service", s, Service::ALL, Service::code)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A customer's cloud trial, sold through a partner. Reminders are planned from `expires_on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    pub trial_id: String,
    pub partner_id: String,
    pub customer: String,
    pub customer_admin_emails: Vec<String>,
    pub services: Vec<Service>,
    pub starts_on: jiff::civil::Date,
    pub expires_on: jiff::civil::Date,
    pub extended: bool,
    pub converted: bool,
    /// IANA time zone name; reminder dates and send times are local to it.
    pub timezone: String,
    pub language: Language,
}

impl Trial {
    pub fn has_calling(&self) -> bool {
        self.services.contains(&Service::Calling)
    }
}

/// A date written `YYYY-MM-DD` exactly (no times, no other ISO 8601 spellings), as CSV
/// imports and the CLI take it.
pub(crate) fn parse_iso_date(v: &str) -> Result<jiff::civil::Date, String> {
    let well_formed = v.len() == 10
        && v.as_bytes()[4] == b'-'
        && v.as_bytes()[7] == b'-'
        && v.bytes()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !well_formed {
        return Err(format!(
            "{v:?} is not a date in YYYY-MM-DD form (like 2026-12-31)"
        ));
    }
    v.parse::<jiff::civil::Date>()
        .map_err(|_| format!("{v:?} is not a valid calendar date"))
}

/// The domain part of `local@domain` (no validation beyond one `@` and non-empty parts).
pub fn address_domain(address: &str) -> Option<&str> {
    let (local, domain) = address.trim().rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        None
    } else {
        Some(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_codes() {
        for st in ShipmentStatus::ALL {
            assert_eq!(st.code().parse::<ShipmentStatus>().unwrap(), st);
        }
        for sv in Service::ALL {
            assert_eq!(sv.code().parse::<Service>().unwrap(), sv);
        }
        for l in Language::ALL {
            assert_eq!(l.code().parse::<Language>().unwrap(), l);
        }
        assert!("shipping".parse::<ShipmentStatus>().is_err());
        assert!("fr".parse::<Language>().is_err());
    }
}
