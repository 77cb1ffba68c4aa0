use std::collections::{HashMap, HashSet};

use super::table::{first_occurrence, from_record, known_partner, ok_if_empty, Parsed, Row, Table};
use super::{Progress, RowError};
use crate::domain::{Language, Service, Trial};

/// The columns of a trials file (and the keys of a trial record).
pub const COLUMNS: &[&str] = &[
    "trial_id",
    "partner_id",
    "customer",
    "customer_admin_emails",
    "services",
    "starts_on",
    "expires_on",
    "extended",
    "converted",
    "timezone",
    "language",
];

/// Parses the trials CSV (services `;`-separated, IANA time zone).
pub fn parse_trials(
    bytes: &[u8],
    progress: Progress<'_>,
) -> Result<Vec<(u64, Trial)>, Vec<RowError>> {
    let parsed = parse_trials_all(bytes, None, progress);
    ok_if_empty(parsed.rows, parsed.errors)
}

/// Every good row and every problem of the file in one pass; with `partners`, a partner id
/// not in it is one of the problems.
pub(super) fn parse_trials_all(
    bytes: &[u8],
    partners: Option<&HashSet<String>>,
    progress: Progress<'_>,
) -> Parsed<Trial> {
    let mut seen = HashMap::new();
    Parsed::read(Table::open(bytes, COLUMNS), progress, |row| {
        let trial = trial_row(row, partners)?;
        first_occurrence(&mut seen, row, "trial_id", &trial.trial_id).then_some(trial)
    })
}

/// Checks one trial row (a CSV line, or any column → text record) and builds the trial; None
/// when the row had a problem (reported into the row's errors). `expires_on` before
/// `starts_on` is rejected.
pub fn trial_row(row: &mut Row<'_>, partners: Option<&HashSet<String>>) -> Option<Trial> {
    let trial_id = row.required("trial_id");
    let partner_id = row.required("partner_id");
    let partner_id = partner_id.filter(|id| known_partner(row, partners, id));
    let customer = row.required("customer");
    let admins = row.emails("customer_admin_emails", 1);
    let mut services = Vec::new();
    let mut services_ok = true;
    for s in row.list("services") {
        match s.parse::<Service>() {
            Ok(sv) if !services.contains(&sv) => services.push(sv),
            Ok(_) => {}
            Err(m) => {
                row.error("services", m);
                services_ok = false;
            }
        }
    }
    if services.is_empty() && services_ok {
        row.error("services", "needs at least one service");
        services_ok = false;
    }
    services.sort();
    let starts_on = row.date("starts_on");
    let expires_on = row.date("expires_on");
    if let (Some(s), Some(e)) = (starts_on, expires_on) {
        if e < s {
            row.error("expires_on", format!("{e} is before starts_on {s}"));
        }
    }
    let extended = row.boolean("extended");
    let converted = row.boolean("converted");
    let timezone = row.cell("timezone").to_string();
    let tz_ok = if timezone.is_empty() {
        row.error(
            "timezone",
            "must not be empty (an IANA name such as Asia/Shanghai)",
        );
        false
    } else if jiff::tz::TimeZone::get(&timezone).is_err() {
        row.error("timezone", format!("{timezone:?} is not an IANA time zone"));
        false
    } else {
        true
    };
    let language: Option<Language> = row.parsed("language");
    let trial_id = trial_id?;
    if let (
        Some(partner_id),
        Some(customer),
        Some(customer_admin_emails),
        true,
        Some(starts_on),
        Some(expires_on),
        Some(extended),
        Some(converted),
        true,
        Some(language),
    ) = (
        partner_id,
        customer,
        admins,
        services_ok,
        starts_on,
        expires_on,
        extended,
        converted,
        tz_ok,
        language,
    ) {
        if expires_on >= starts_on {
            return Some(Trial {
                trial_id,
                partner_id,
                customer,
                customer_admin_emails,
                services,
                starts_on,
                expires_on,
                extended,
                converted,
                timezone,
                language,
            });
        }
    }
    None
}

/// A trial from a column → text record (the HTTP API's JSON, say), with the CSV rows'
/// checks; `line` numbers its problems.
pub fn trial_from_record(
    line: u64,
    record: &HashMap<String, String>,
    partners: Option<&HashSet<String>>,
) -> Result<Trial, Vec<RowError>> {
    from_record(line, COLUMNS, record, |row| trial_row(row, partners))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "trial_id,partner_id,customer,customer_admin_emails,services,starts_on,expires_on,extended,converted,timezone,language\n";

    fn parse(text: &str) -> Result<Vec<(u64, Trial)>, Vec<RowError>> {
        parse_trials(text.as_bytes(), &mut |_, _| {})
    }

    #[test]
    fn parses_a_good_row() {
        let rows = parse(&format!(
            "{HEADER}T1,P01,上海,IT0@x.example.cn;admin0@x.example.cn,meeting;calling;room_devices,2026-11-01,2026-12-01,false,TRUE,Asia/Taipei,en\n"
        ))
        .unwrap();
        let t = &rows[0].1;
        assert_eq!(
            t.services,
            vec![Service::Meeting, Service::Calling, Service::RoomDevices]
        );
        assert!(t.has_calling());
        assert!(t.converted && !t.extended);
        assert_eq!(t.customer_admin_emails[0], "it0@x.example.cn");
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        let errs = parse(&format!(
            "{HEADER}T1,P01,c,a@x.example.cn,video,2026-11-01,2026-10-01,maybe,false,Mars/Base,en\n"
        ))
        .unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        for col in ["services", "expires_on", "extended", "timezone"] {
            assert!(
                shown
                    .iter()
                    .any(|s| s.starts_with(&format!("line 2, column {col}:"))),
                "{col}: {shown:?}"
            );
        }
    }
}
