use std::collections::HashMap;

use super::table::{first_occurrence, Table};
use super::{Progress, RowError};
use crate::domain::{LoanNumber, Shipment, ShipmentStatus};

const COLUMNS: &[&str] = &[
    "loan_number",
    "partner_id",
    "customer",
    "status",
    "carrier",
    "tracking_number",
    "shipped_on",
    "eta",
    "delivered_on",
    "items",
];

/// Parses the shipments CSV. A loan number must be one trialdesk can recognise in a mail
/// (the configured pattern), otherwise partners could never ask about it.
pub fn parse_shipments(
    bytes: &[u8],
    loan_pattern: &regex::Regex,
    progress: Progress<'_>,
) -> Result<Vec<(u64, Shipment)>, Vec<RowError>> {
    let table = Table::open(bytes, COLUMNS)?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut seen = HashMap::new();
    table.for_each_row(&mut errors, progress, |row| {
        let raw_number = row.cell("loan_number").to_string();
        let loan_number = match LoanNumber::parse(&raw_number) {
            Some(n) if loan_pattern.is_match(n.as_str()) => Some(n),
            _ if raw_number.is_empty() => {
                row.error("loan_number", "must not be empty");
                None
            }
            _ => {
                row.error(
                    "loan_number",
                    format!("{raw_number:?} is not a loan number (D followed by digits, as in classify.loan_number_pattern)"),
                );
                None
            }
        };
        let partner_id = row.required("partner_id");
        let customer = row.required("customer");
        let status: Option<ShipmentStatus> = row.parsed("status");
        let shipped_on = row.optional_date("shipped_on");
        let eta = row.optional_date("eta");
        let delivered_on = row.optional_date("delivered_on");
        let carrier = Some(row.cell("carrier").to_string()).filter(|s| !s.is_empty());
        let tracking_number =
            Some(row.cell("tracking_number").to_string()).filter(|s| !s.is_empty());
        let items = row.list("items");
        let Some(loan_number) = loan_number else { return };
        if !first_occurrence(&mut seen, row, "loan_number", loan_number.as_str()) {
            return;
        }
        if let (Some(partner_id), Some(customer), Some(status), Ok(shipped_on), Ok(eta), Ok(delivered_on)) =
            (partner_id, customer, status, shipped_on, eta, delivered_on)
        {
            out.push((
                row.line,
                Shipment {
                    loan_number,
                    partner_id,
                    customer,
                    status,
                    carrier,
                    tracking_number,
                    shipped_on,
                    eta,
                    delivered_on,
                    items,
                },
            ));
        }
    });
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(u64, Shipment)>, Vec<RowError>> {
        parse_shipments(text.as_bytes(), &pattern(), &mut |_, _| {})
    }

    fn pattern() -> regex::Regex {
        super::super::exact_loan_pattern(r"D[0-9]{6,10}").unwrap()
    }

    const HEADER: &str =
        "loan_number,partner_id,customer,status,carrier,tracking_number,shipped_on,eta,delivered_on,items\n";

    #[test]
    fn parses_a_good_row() {
        let rows = parse(&format!(
            "{HEADER}d20261001,P01,苏州,in_transit,EMS,EA1CN,2026-11-03,2026-11-08,,Desk Camera; Desk Mini\n"
        ))
        .unwrap();
        let s = &rows[0].1;
        assert_eq!(s.loan_number.as_str(), "D20261001");
        assert_eq!(s.status, ShipmentStatus::InTransit);
        assert_eq!(s.items, vec!["Desk Camera", "Desk Mini"]);
        assert_eq!(s.delivered_on, None);
        assert_eq!(s.eta.unwrap().to_string(), "2026-11-08");
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        let errs = parse(&format!(
            "{HEADER}D2026100,P01,c,shipping,,,2026-13-01,,,\nX1,P01,c,ordered,,,,,,\nD20261001,P01,c,ordered,,,,,,\nD20261001,P01,c,ordered,,,,,,\n"
        ))
        .unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("line 2, column status:")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("line 2, column shipped_on:")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("line 3, column loan_number:")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("line 5, column loan_number:") && s.contains("line 4")),
            "{shown:?}"
        );
        assert!(!shown.iter().any(|s| s.starts_with("line 4")), "{shown:?}");
    }

    #[test]
    fn quoted_multiline_cells_keep_line_numbers_right() {
        let errs = parse(&format!(
            "{HEADER}D20261001,P01,\"two\nlines\",ordered,,,,,,\nD20261002,P01,c,nope,,,,,,\n"
        ))
        .unwrap_err();
        assert_eq!(errs[0].line, 4, "{errs:?}");
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"D20261001,P01,\xC4\xE3\xBA\xC3,ordered,,,,,,\n");
        let errs = parse_shipments(&bytes, &pattern(), &mut |_, _| {}).unwrap_err();
        assert_eq!(errs[0].line, 2);
        assert!(errs[0].message.contains("UTF-8"));
    }
}
