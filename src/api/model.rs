//! The API's JSON records and their way into the CSV importer's checks.
//!
//! Each record is the CSV row of its kind as JSON: the same column names, every `;`-list a
//! JSON array, booleans JSON booleans, dates `"YYYY-MM-DD"` or `null`. A request body is read
//! into these types (which also generate the OpenAPI schemas), turned back into the CSV cells
//! the importer reads, and checked by the importer itself: one validation for CSV, the web
//! upload, the drop folder and the API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{Partner, Shipment, Trial};
use crate::import::{partners, shipments, trials, ImportKind};

/// One problem with a request, in the shape of a 422 response's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Position in the request's array (only for array requests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The field at fault (a CSV column name), or null for the record as a whole.
    pub field: Option<String>,
    pub message: String,
}

/// A 422 response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

/// Any other error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiErrorBody {
    pub error: String,
}

/// A record kind the API serves: its CSV columns and how it turns into cells.
pub trait Record: Serialize + for<'de> Deserialize<'de> {
    const KIND: ImportKind;
    /// The id column (in the URL for PUT/GET).
    const ID: &'static str;
    /// Every other column, as the CSV header names them.
    const FIELDS: &'static [&'static str];
    /// The CSV cells of `FIELDS`, in order (lists joined with `;`, booleans `true`/`false`,
    /// null empty); an error names a field whose value cannot be written as a cell.
    fn cells(&self) -> Result<Vec<String>, (&'static str, String)>;
}

/// The columns of a CSV file after its first, the id: a record's `FIELDS`.
const fn after_id(columns: &'static [&'static str]) -> &'static [&'static str] {
    match columns.split_first() {
        Some((_, rest)) => rest,
        None => columns,
    }
}

fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn list(field: &'static str, v: &Option<Vec<String>>) -> Result<String, (&'static str, String)> {
    let items = v.as_deref().unwrap_or_default();
    if let Some(bad) = items.iter().find(|i| i.contains(';')) {
        return Err((field, format!("{bad:?}: an item must not contain ';'")));
    }
    Ok(items.join(";"))
}

fn boolean(v: Option<bool>) -> String {
    match v {
        Some(true) => "true".into(),
        Some(false) | None => "false".into(),
    }
}

/// A shipment (demo loan) without its loan number: the body of
/// `PUT /api/v1/shipments/{loan_number}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShipmentFields {
    /// The partner that owns the loan (must exist).
    #[schema(example = "P01")]
    pub partner_id: Option<String>,
    #[schema(example = "苏州工业园管委会")]
    pub customer: Option<String>,
    /// ordered, processing, shipped, in_transit, delivered, return_requested, returned,
    /// exception.
    #[schema(example = "in_transit")]
    pub status: Option<String>,
    #[schema(example = "EMS")]
    pub carrier: Option<String>,
    #[schema(example = "EA920049643CN")]
    pub tracking_number: Option<String>,
    #[schema(format = Date, example = "2026-11-03")]
    pub shipped_on: Option<String>,
    #[schema(format = Date, example = "2026-11-08")]
    pub eta: Option<String>,
    #[schema(format = Date)]
    pub delivered_on: Option<String>,
    #[schema(example = json!(["Webex Desk Camera", "Webex Desk Mini"]))]
    pub items: Option<Vec<String>>,
    /// Return authorisation number, once a return is arranged.
    pub rma_number: Option<String>,
}

/// A shipment with its loan number: an element of `POST /api/v1/shipments` and every
/// response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShipmentRecord {
    #[schema(example = "D20261001")]
    pub loan_number: Option<String>,
    #[serde(flatten)]
    pub fields: ShipmentFields,
}

impl Record for ShipmentFields {
    const KIND: ImportKind = ImportKind::Shipments;
    const ID: &'static str = shipments::ALL[0];
    const FIELDS: &'static [&'static str] = after_id(shipments::ALL);
    fn cells(&self) -> Result<Vec<String>, (&'static str, String)> {
        Ok(vec![
            text(&self.partner_id),
            text(&self.customer),
            text(&self.status),
            text(&self.carrier),
            text(&self.tracking_number),
            text(&self.shipped_on),
            text(&self.eta),
            text(&self.delivered_on),
            list("items", &self.items)?,
            text(&self.rma_number),
        ])
    }
}

impl From<&Shipment> for ShipmentRecord {
    fn from(s: &Shipment) -> Self {
        ShipmentRecord {
            loan_number: Some(s.loan_number.to_string()),
            fields: ShipmentFields {
                partner_id: Some(s.partner_id.clone()),
                customer: Some(s.customer.clone()),
                status: Some(s.status.code().to_string()),
                carrier: s.carrier.clone(),
                tracking_number: s.tracking_number.clone(),
                shipped_on: s.shipped_on.map(|d| d.to_string()),
                eta: s.eta.map(|d| d.to_string()),
                delivered_on: s.delivered_on.map(|d| d.to_string()),
                items: Some(s.items.clone()),
                rma_number: s.rma_number.clone(),
            },
        }
    }
}

/// A trial without its id: the body of `PUT /api/v1/trials/{trial_id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrialFields {
    #[schema(example = "P01")]
    pub partner_id: Option<String>,
    #[schema(example = "上海浦江银行")]
    pub customer: Option<String>,
    #[schema(example = json!(["it@pujiang-bank.example.cn"]))]
    pub customer_admin_emails: Option<Vec<String>>,
    /// message, meeting, calling, room_devices.
    #[schema(example = json!(["meeting", "calling"]))]
    pub services: Option<Vec<String>>,
    #[schema(format = Date, example = "2026-11-03")]
    pub starts_on: Option<String>,
    #[schema(format = Date, example = "2026-12-03")]
    pub expires_on: Option<String>,
    pub extended: Option<bool>,
    pub converted: Option<bool>,
    /// IANA time zone name.
    #[schema(example = "Asia/Shanghai")]
    pub timezone: Option<String>,
    /// zh, en, ja or de.
    #[schema(example = "zh")]
    pub language: Option<String>,
}

/// A trial with its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrialRecord {
    #[schema(example = "T-1001")]
    pub trial_id: Option<String>,
    #[serde(flatten)]
    pub fields: TrialFields,
}

impl Record for TrialFields {
    const KIND: ImportKind = ImportKind::Trials;
    const ID: &'static str = trials::COLUMNS[0];
    const FIELDS: &'static [&'static str] = after_id(trials::COLUMNS);
    fn cells(&self) -> Result<Vec<String>, (&'static str, String)> {
        Ok(vec![
            text(&self.partner_id),
            text(&self.customer),
            list("customer_admin_emails", &self.customer_admin_emails)?,
            list("services", &self.services)?,
            text(&self.starts_on),
            text(&self.expires_on),
            boolean(self.extended),
            boolean(self.converted),
            text(&self.timezone),
            text(&self.language),
        ])
    }
}

impl From<&Trial> for TrialRecord {
    fn from(t: &Trial) -> Self {
        TrialRecord {
            trial_id: Some(t.trial_id.clone()),
            fields: TrialFields {
                partner_id: Some(t.partner_id.clone()),
                customer: Some(t.customer.clone()),
                customer_admin_emails: Some(t.customer_admin_emails.clone()),
                services: Some(t.services.iter().map(|s| s.code().to_string()).collect()),
                starts_on: Some(t.starts_on.to_string()),
                expires_on: Some(t.expires_on.to_string()),
                extended: Some(t.extended),
                converted: Some(t.converted),
                timezone: Some(t.timezone.clone()),
                language: Some(t.language.code().to_string()),
            },
        }
    }
}

/// A partner without its id: the body of `PUT /api/v1/partners/{partner_id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartnerFields {
    #[schema(example = "华东智联科技有限公司")]
    pub name: Option<String>,
    /// Mail domains whose senders may ask about the partner's loans.
    #[schema(example = json!(["huadong.example.cn"]))]
    pub domains: Option<Vec<String>>,
    #[schema(example = json!(["it-admin@huadong.example.cn"]))]
    pub admin_emails: Option<Vec<String>>,
    /// zh, en, ja or de.
    #[schema(example = "zh")]
    pub language: Option<String>,
    /// Send the partner's admins a notice when a loan changes status (see `[notify]`).
    pub notify_shipment_updates: Option<bool>,
}

/// A partner with its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PartnerRecord {
    #[schema(example = "P01")]
    pub partner_id: Option<String>,
    #[serde(flatten)]
    pub fields: PartnerFields,
}

impl Record for PartnerFields {
    const KIND: ImportKind = ImportKind::Partners;
    const ID: &'static str = partners::ALL[0];
    const FIELDS: &'static [&'static str] = after_id(partners::ALL);
    fn cells(&self) -> Result<Vec<String>, (&'static str, String)> {
        Ok(vec![
            text(&self.name),
            list("domains", &self.domains)?,
            list("admin_emails", &self.admin_emails)?,
            text(&self.language),
            boolean(self.notify_shipment_updates),
        ])
    }
}

impl From<&Partner> for PartnerRecord {
    fn from(p: &Partner) -> Self {
        PartnerRecord {
            partner_id: Some(p.partner_id.clone()),
            fields: PartnerFields {
                name: Some(p.name.clone()),
                domains: Some(p.domains.clone()),
                admin_emails: Some(p.admin_emails.clone()),
                language: Some(p.language.code().to_string()),
                notify_shipment_updates: Some(p.notify_shipment_updates),
            },
        }
    }
}

/// One JSON object read into `R`: (id given in the body, fields), or the problems found.
/// Unknown keys are refused by name; a wrong type names its field.
pub fn read_object<R: Record>(
    value: serde_json::Value,
    index: Option<usize>,
) -> Result<(Option<String>, R), Vec<FieldError>> {
    let err = |field: Option<&str>, message: String| FieldError {
        index,
        field: field.map(str::to_string),
        message,
    };
    let serde_json::Value::Object(mut map) = value else {
        return Err(vec![err(None, "must be a JSON object".into())]);
    };
    let mut errors: Vec<FieldError> = map
        .keys()
        .filter(|k| k.as_str() != R::ID && !R::FIELDS.contains(&k.as_str()))
        .map(|k| {
            err(
                Some(k),
                format!(
                    "unknown field (expected {}, {})",
                    R::ID,
                    R::FIELDS.join(", ")
                ),
            )
        })
        .collect();
    let id = match map.remove(R::ID) {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(err(Some(R::ID), "must be a string".into()));
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    match serde_path_to_error::deserialize::<_, R>(serde_json::Value::Object(map)) {
        Ok(r) => Ok((id, r)),
        Err(e) => {
            let path = e.path().to_string();
            let field = path.split(['.', '[']).next().unwrap_or("").to_string();
            let message = match e.into_inner().to_string() {
                m if m.starts_with("invalid type") => format!("wrong type: {m}"),
                m => m,
            };
            Err(vec![err(
                Some(field.as_str()).filter(|f| !f.is_empty() && *f != "."),
                message,
            )])
        }
    }
}

/// Requests turned into CSV: the bytes, and (line, request index) of each row.
#[derive(Debug)]
pub struct CsvRows {
    pub bytes: Vec<u8>,
    pub lines: Vec<(u64, usize)>,
}

/// CSV bytes for `records` ((index, id, fields)) and, per record, the line it starts on.
pub fn to_csv<R: Record>(records: &[(usize, String, R)]) -> Result<CsvRows, Vec<FieldError>> {
    let mut out = Vec::new();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let write = |out: &mut Vec<u8>, cells: &[&str]| {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        // Writing to a Vec cannot fail.
        let _ = w.write_record(cells);
        out.extend(w.into_inner().unwrap_or_default());
    };
    let mut header = vec![R::ID];
    header.extend(R::FIELDS);
    write(&mut out, &header);
    for (index, id, r) in records {
        match r.cells() {
            Ok(cells) => {
                let line = out.iter().filter(|b| **b == b'\n').count() as u64 + 1;
                lines.push((line, *index));
                let mut row: Vec<&str> = vec![id.as_str()];
                row.extend(cells.iter().map(String::as_str));
                write(&mut out, &row);
            }
            Err((field, message)) => errors.push(FieldError {
                index: Some(*index),
                field: Some(field.to_string()),
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(CsvRows { bytes: out, lines })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_are_read_with_unknown_and_mistyped_fields_named() {
        let (id, s) = read_object::<ShipmentFields>(
            json!({"partner_id": "P01", "items": ["a", "b"], "eta": null}),
            None,
        )
        .unwrap();
        assert_eq!(id, None);
        assert_eq!(s.items, Some(vec!["a".to_string(), "b".to_string()]));
        let cases = [
            (json!({"colour": "red"}), Some("colour")),
            (json!({"items": "a;b"}), Some("items")),
            (json!({"status": 3}), Some("status")),
            (json!({"loan_number": 3}), Some("loan_number")),
            (json!([1]), None),
        ];
        for (value, field) in cases {
            let errs = read_object::<ShipmentFields>(value.clone(), Some(4)).unwrap_err();
            assert_eq!(errs[0].field.as_deref(), field, "{value}: {errs:?}");
            assert_eq!(errs[0].index, Some(4));
        }
        let errs = read_object::<TrialFields>(json!({"extended": "yes"}), None).unwrap_err();
        assert_eq!(errs[0].field.as_deref(), Some("extended"));
    }

    /// The API's fields are exactly the importer's columns: a column added to a CSV format
    /// must be added to its JSON record (and so to the OpenAPI document) too.
    #[test]
    fn records_carry_exactly_the_csv_columns() {
        fn names<R: Record>() -> Vec<&'static str> {
            let mut v = vec![R::ID];
            v.extend(R::FIELDS);
            v.sort();
            v
        }
        fn columns(lists: &[&[&'static str]]) -> Vec<&'static str> {
            let mut v: Vec<&'static str> = lists.concat();
            v.sort();
            v
        }
        assert_eq!(
            names::<ShipmentFields>(),
            columns(&[shipments::COLUMNS, shipments::OPTIONAL])
        );
        assert_eq!(names::<TrialFields>(), columns(&[trials::COLUMNS]));
        assert_eq!(
            names::<PartnerFields>(),
            columns(&[partners::COLUMNS, partners::OPTIONAL])
        );
        for (schema, record) in [
            (
                "ShipmentFields",
                serde_json::to_value(ShipmentFields::default()).unwrap(),
            ),
            (
                "TrialFields",
                serde_json::to_value(TrialFields::default()).unwrap(),
            ),
            (
                "PartnerFields",
                serde_json::to_value(PartnerFields::default()).unwrap(),
            ),
        ] {
            let keys: Vec<&String> = record.as_object().unwrap().keys().collect();
            let fields = match schema {
                "ShipmentFields" => ShipmentFields::FIELDS,
                "TrialFields" => TrialFields::FIELDS,
                _ => PartnerFields::FIELDS,
            };
            let mut want: Vec<&str> = fields.to_vec();
            want.sort();
            let mut got: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
            got.sort();
            assert_eq!(got, want, "{schema}: struct fields and FIELDS differ");
        }
    }

    #[test]
    fn csv_rows_keep_their_lines_even_across_newlines_in_cells() {
        let a = ShipmentFields {
            customer: Some("two\nlines, quoted".into()),
            items: Some(vec!["x".into(), "y".into()]),
            ..Default::default()
        };
        let b = ShipmentFields::default();
        let CsvRows { bytes, lines } =
            to_csv(&[(0, "D1".to_string(), a), (1, "D2".to_string(), b)]).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("loan_number,partner_id,"), "{text}");
        assert!(text.contains("x;y"), "{text}");
        assert_eq!(lines, vec![(2, 0), (4, 1)]);
        let bad = ShipmentFields {
            items: Some(vec!["a;b".into()]),
            ..Default::default()
        };
        let errs = to_csv(&[(3, "D1".to_string(), bad)]).unwrap_err();
        assert_eq!(
            (errs[0].index, errs[0].field.as_deref()),
            (Some(3), Some("items"))
        );
    }
}
