use std::collections::{HashMap, HashSet};

use super::table::{first_occurrence, from_record, known_partner, ok_if_empty, Parsed, Row, Table};
use super::{Progress, RowError};
use crate::classify::loan_numbers::LoanExtractor;
use crate::domain::{Shipment, ShipmentStatus};

/// Every column of a shipments file: the id first, the one optional column (`rma_number`) last.
/// Also the keys of a shipment record.
pub const ALL: &[&str] = &[
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
    "rma_number",
];
/// The columns a shipments file must have.
pub const COLUMNS: &[&str] = ALL.split_at(ALL.len() - 1).0;
/// Columns a file may leave out (older files import unchanged).
pub(crate) const OPTIONAL: &[&str] = ALL.split_at(ALL.len() - 1).1;

/// Parses the shipments CSV. A loan number must be one trialdesk can recognise in a mail
/// (the whole cell matches `classify.loan_number_pattern`, after the same folding as mail
/// text), otherwise partners could never ask about it. `rma_number` is optional: a file
/// without the column imports as before.
pub fn parse_shipments(
    bytes: &[u8],
    loans: &LoanExtractor,
    progress: Progress<'_>,
) -> Result<Vec<(u64, Shipment)>, Vec<RowError>> {
    let parsed = parse_shipments_all(bytes, loans, None, progress);
    ok_if_empty(parsed.rows, parsed.errors)
}

/// Every good row and every problem of the file in one pass; with `partners`, a partner id
/// not in it is one of the problems.
pub(super) fn parse_shipments_all(
    bytes: &[u8],
    loans: &LoanExtractor,
    partners: Option<&HashSet<String>>,
    progress: Progress<'_>,
) -> Parsed<Shipment> {
    let mut seen = HashMap::new();
    let opened = Table::open_with(bytes, COLUMNS, OPTIONAL);
    Parsed::read(opened, progress, |row| {
        let shipment = shipment_row(row, loans, partners)?;
        first_occurrence(&mut seen, row, "loan_number", shipment.loan_number.as_str())
            .then_some(shipment)
    })
}

/// Checks one shipment row (a CSV line, or any column → text record) and builds the
/// shipment; None when the row had a problem (reported into the row's errors).
///
/// Dates that contradict each other are rejected with the row, not imported with a warning:
/// a reply quoting them would tell a partner something impossible. `delivered_on` must not
/// be before `shipped_on`, and a shipment still `ordered`, `processing`, `shipped` or
/// `in_transit` has no `delivered_on`.
pub fn shipment_row(
    row: &mut Row<'_>,
    loans: &LoanExtractor,
    partners: Option<&HashSet<String>>,
) -> Option<Shipment> {
    let raw_number = row.cell("loan_number").to_string();
    let loan_number = match loans.parse_one(&raw_number) {
        Some(n) => Some(n),
        None if raw_number.is_empty() => {
            row.error("loan_number", "must not be empty");
            None
        }
        None => {
            row.error(
                "loan_number",
                format!(
                    "{raw_number:?} is not a loan number (does not match classify.loan_number_pattern {:?})",
                    loans.pattern()
                ),
            );
            None
        }
    };
    let partner_id = row.required("partner_id");
    let partner_id = partner_id.filter(|id| known_partner(row, partners, id));
    let customer = row.required("customer");
    let status: Option<ShipmentStatus> = row.parsed("status");
    let shipped_on = row.optional_date("shipped_on");
    let eta = row.optional_date("eta");
    let delivered_on = row.optional_date("delivered_on");
    let mut dates_agree = true;
    if let (Ok(Some(shipped)), Ok(Some(delivered))) = (shipped_on, delivered_on) {
        if delivered < shipped {
            row.error(
                "delivered_on",
                format!("{delivered} is before shipped_on {shipped}"),
            );
            dates_agree = false;
        }
    }
    if let (Some(st), Ok(Some(delivered))) = (status, delivered_on) {
        if matches!(
            st,
            ShipmentStatus::Ordered
                | ShipmentStatus::Processing
                | ShipmentStatus::Shipped
                | ShipmentStatus::InTransit
        ) {
            row.error(
                "delivered_on",
                format!(
                    "{delivered} is set but status is {}: use status delivered (or a later \
                     one), or leave delivered_on empty",
                    st.code()
                ),
            );
            dates_agree = false;
        }
    }
    let carrier = Some(row.cell("carrier").to_string()).filter(|s| !s.is_empty());
    let tracking_number = Some(row.cell("tracking_number").to_string()).filter(|s| !s.is_empty());
    let items = row.list("items");
    let rma_number = Some(row.cell("rma_number").to_string()).filter(|s| !s.is_empty());
    match (
        loan_number,
        partner_id,
        customer,
        status,
        shipped_on,
        eta,
        delivered_on,
        dates_agree,
    ) {
        (
            Some(loan_number),
            Some(partner_id),
            Some(customer),
            Some(status),
            Ok(shipped_on),
            Ok(eta),
            Ok(delivered_on),
            true,
        ) => Some(Shipment {
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
            rma_number,
        }),
        _ => None,
    }
}

/// A shipment from a column → text record (the HTTP API's JSON, say), with the CSV rows'
/// checks; `line` numbers its problems.
pub fn shipment_from_record(
    line: u64,
    record: &HashMap<String, String>,
    loans: &LoanExtractor,
    partners: Option<&HashSet<String>>,
) -> Result<Shipment, Vec<RowError>> {
    from_record(line, ALL, record, |row| shipment_row(row, loans, partners))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(u64, Shipment)>, Vec<RowError>> {
        parse_shipments(text.as_bytes(), &extractor(), &mut |_, _| {})
    }

    fn extractor() -> LoanExtractor {
        LoanExtractor::new(r"D[0-9]{6,10}", 50).unwrap()
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
    fn rma_number_is_an_optional_column() {
        let old = parse(&format!("{HEADER}D20261001,P01,c,ordered,,,,,,\n")).unwrap();
        assert_eq!(old[0].1.rma_number, None);
        let header = HEADER.replace("items\n", "items,rma_number\n");
        let rows = parse(&format!(
            "{header}D20261001,P01,c,return_requested,,,,,,a, RMA-42 \nD20261002,P01,c,ordered,,,,,,,\n"
        ))
        .unwrap();
        let got: Vec<Option<&str>> = rows.iter().map(|(_, s)| s.rma_number.as_deref()).collect();
        assert_eq!(got, [Some("RMA-42"), None]);
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
        assert!(
            shown
                .iter()
                .any(|s| s.starts_with("line 3, column loan_number:")
                    && s.contains("classify.loan_number_pattern \"D[0-9]{6,10}\"")),
            "{shown:?}"
        );
    }

    /// The configured pattern decides, not a built-in `D` + digits: the same extractor reads
    /// the CSV cell and finds the number in a mail.
    #[test]
    fn a_configured_non_d_pattern_is_used_for_csv_and_mail_alike() {
        let loans = LoanExtractor::new(r"L[0-9]{8}", 50).unwrap();
        let rows = parse_shipments(
            format!("{HEADER}ｌ12345678,P01,c,ordered,,,,,,\n").as_bytes(),
            &loans,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(rows[0].1.loan_number.as_str(), "L12345678");
        let mail = loans.extract("请查询 l12345678 的物流");
        assert_eq!(mail.numbers, vec![rows[0].1.loan_number.clone()]);

        let errs = parse_shipments(
            format!("{HEADER}D20261001,P01,c,ordered,,,,,,\n").as_bytes(),
            &loans,
            &mut |_, _| {},
        )
        .unwrap_err();
        assert_eq!(errs[0].column.as_deref(), Some("loan_number"));
        assert!(
            errs[0]
                .message
                .contains("classify.loan_number_pattern \"L[0-9]{8}\""),
            "{errs:?}"
        );
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
        let errs = parse_shipments(&bytes, &extractor(), &mut |_, _| {}).unwrap_err();
        assert_eq!(errs[0].line, 2);
        assert!(errs[0].message.contains("UTF-8"));
    }

    #[test]
    fn a_record_is_checked_like_a_csv_row() {
        let record = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let known = HashSet::from(["P01".to_string()]);
        let good = record(&[
            ("loan_number", "d20261001"),
            ("Partner_ID", "P01"),
            ("customer", "苏州"),
            ("status", "delivered"),
            ("shipped_on", "2026-11-03"),
            ("delivered_on", "2026-11-05"),
            ("items", "Cam; Mini"),
        ]);
        let s = shipment_from_record(1, &good, &extractor(), Some(&known)).unwrap();
        assert_eq!(s.loan_number.as_str(), "D20261001");
        assert_eq!(s.items, vec!["Cam", "Mini"]);
        let bad = record(&[
            ("loan_number", "D20261002"),
            ("partner_id", "P99"),
            ("customer", "x"),
            ("status", "in_transit"),
            ("shipped_on", "2026-11-03"),
            ("delivered_on", "2026-11-01"),
        ]);
        let errs = shipment_from_record(7, &bad, &extractor(), Some(&known)).unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "line 7, column partner_id: unknown partner \"P99\" (import partners first)",
                "line 7, column delivered_on: 2026-11-01 is before shipped_on 2026-11-03",
                "line 7, column delivered_on: 2026-11-01 is set but status is in_transit: use \
                 status delivered (or a later one), or leave delivered_on empty",
            ]
        );
    }

    #[test]
    fn rows_of_the_wrong_width_are_reported_not_guessed() {
        let errs = parse(&format!(
            "{HEADER}D20261001,P01,c,ordered,,,,,\nD20261002,P01,c,ordered,,,,,,,\n"
        ))
        .unwrap_err();
        let lines: Vec<u64> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3], "{errs:?}");
        assert!(errs[0]
            .message
            .starts_with("9 field(s) where the header has 10"));
    }
}
