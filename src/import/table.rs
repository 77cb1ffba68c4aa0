//! Header-named CSV access with line-numbered errors.

use std::collections::{HashMap, HashSet};

use super::RowError;
use crate::domain::parse_iso_date;

/// Longest cell read (bytes). Real cells are names, ids, dates and short lists; a longer one
/// is a broken export (an unclosed quote swallowing the rest of the file) and is reported
/// without being quoted back.
pub(super) const MAX_CELL_BYTES: usize = 10_000;

/// Reading stops after this many problems: the file needs fixing anyway, and a million error
/// lines help nobody.
pub(super) const MAX_ERRORS: usize = 1_000;

/// A CSV file whose columns are found by header name (case-insensitive; extra columns are
/// ignored; a UTF-8 BOM is skipped).
pub(super) struct Table {
    reader: csv::Reader<std::io::Cursor<Vec<u8>>>,
    index: HashMap<&'static str, usize>,
    /// Fields in the header: every row must have as many.
    width: usize,
    /// The separator found in the header (`,` unless the file uses `;` or tab).
    pub delimiter: u8,
    total: u64,
    /// Byte offsets of every `\n`: line numbers come from byte positions, because the csv
    /// reader does not count the blank lines it skips.
    newlines: Vec<usize>,
}

impl Table {
    /// Opens the table and checks that every `required` column is present.
    /// The separator is found from the header: `,`, or `;` or tab when the header names the
    /// required columns only when split by that (spreadsheets in many locales export those).
    pub(super) fn open(bytes: &[u8], required: &[&'static str]) -> Result<Table, Vec<RowError>> {
        Self::open_with(bytes, required, &[])
    }

    /// [`Table::open`] that also reads the `optional` columns when the header names them
    /// (an absent optional column reads as empty cells, so older files import unchanged).
    pub(super) fn open_with(
        bytes: &[u8],
        required: &[&'static str],
        optional: &[&'static str],
    ) -> Result<Table, Vec<RowError>> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut first_try = None;
        for delimiter in [b',', b';', b'\t'] {
            match Self::open_separated(bytes, required, optional, delimiter) {
                Ok(t) => return Ok(t),
                Err(e) => {
                    first_try.get_or_insert(e);
                }
            }
        }
        Err(first_try.unwrap_or_default())
    }

    fn open_separated(
        bytes: &[u8],
        required: &[&'static str],
        optional: &[&'static str],
        delimiter: u8,
    ) -> Result<Table, Vec<RowError>> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .delimiter(delimiter)
            .trim(csv::Trim::None)
            .from_reader(std::io::Cursor::new(bytes.to_vec()));
        let headers = match reader.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                return Err(vec![RowError {
                    line: 1,
                    column: None,
                    message: format!("cannot read the header row: {e}"),
                }])
            }
        };
        let names: Vec<String> = headers
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_ascii_lowercase())
            .collect();
        let mut index = HashMap::new();
        let mut missing = Vec::new();
        for &col in required {
            match names.iter().position(|n| n == col) {
                Some(i) => {
                    index.insert(col, i);
                }
                None => missing.push(col),
            }
        }
        for &col in optional {
            if let Some(i) = names.iter().position(|n| n == col) {
                index.insert(col, i);
            }
        }
        if !missing.is_empty() {
            return Err(vec![RowError {
                line: 1,
                column: None,
                message: format!(
                    "missing column(s) {} (the header must name: {}; separated by commas, \
                     semicolons or tabs)",
                    missing.join(", "),
                    required.join(",")
                ),
            }]);
        }
        let newlines = bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i)
            .collect();
        Ok(Table {
            reader,
            index,
            width: names.len(),
            delimiter,
            total: bytes.len() as u64,
            newlines,
        })
    }

    /// 1-based line of the record starting at a byte offset. The reader reports a record's
    /// start before the blank lines it skipped, so those are stepped over first.
    fn line_of(&self, byte: u64) -> u64 {
        let bytes = self.reader.get_ref().get_ref();
        let mut byte = byte as usize;
        while matches!(bytes.get(byte), Some(b'\r' | b'\n')) {
            byte += 1;
        }
        let byte = byte as u64;
        self.newlines.partition_point(|&nl| (nl as u64) < byte) as u64 + 1
    }

    /// Visits every data row; blank lines are skipped. `visit` reports into `errors`.
    pub(super) fn for_each_row(
        mut self,
        errors: &mut Vec<RowError>,
        progress: super::Progress<'_>,
        mut visit: impl FnMut(&mut Row<'_>),
    ) {
        let mut record = csv::ByteRecord::new();
        let mut n: u64 = 0;
        loop {
            let line = self.line_of(self.reader.position().byte());
            match self.reader.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {}
                Err(e) => {
                    let line = e.position().map(|p| self.line_of(p.byte())).unwrap_or(line);
                    errors.push(RowError {
                        line,
                        column: None,
                        message: format!("unreadable CSV: {e}"),
                    });
                    // The reader cannot resynchronise reliably after a syntax error.
                    break;
                }
            }
            let line = record
                .position()
                .map(|p| self.line_of(p.byte()))
                .unwrap_or(line);
            if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                continue;
            }
            let fields: Result<Vec<&str>, _> = record.iter().map(std::str::from_utf8).collect();
            let fields = match fields {
                Ok(f) => f,
                Err(_) => {
                    errors.push(RowError {
                        line,
                        column: None,
                        message: "not valid UTF-8 (save the file as UTF-8 CSV)".into(),
                    });
                    continue;
                }
            };
            let mut oversized = false;
            for (&column, &i) in &self.index {
                if let Some(f) = fields.get(i).filter(|f| f.len() > MAX_CELL_BYTES) {
                    errors.push(RowError {
                        line,
                        column: Some(column.to_string()),
                        message: format!(
                            "cell of {} bytes is longer than the {MAX_CELL_BYTES}-byte limit \
                             (an unclosed quote?)",
                            f.len()
                        ),
                    });
                    oversized = true;
                }
            }
            if fields.len() != self.width {
                errors.push(RowError {
                    line,
                    column: None,
                    message: format!(
                        "{} field(s) where the header has {} (a missing or extra {}?); the row \
                         is not read",
                        fields.len(),
                        self.width,
                        delimiter_name(self.delimiter)
                    ),
                });
            } else if !oversized {
                let mut row = Row {
                    line,
                    cells: self
                        .index
                        .iter()
                        .filter_map(|(&c, &i)| fields.get(i).map(|f| (c, *f)))
                        .collect(),
                    errors,
                };
                visit(&mut row);
            }
            if errors.len() >= MAX_ERRORS {
                errors.push(RowError {
                    line,
                    column: None,
                    message: format!("more than {MAX_ERRORS} problems; the rest was not checked"),
                });
                break;
            }
            n += 1;
            if n.is_multiple_of(1024) {
                progress(record.position().map(|p| p.byte()).unwrap_or(0), self.total);
            }
        }
        progress(self.total, self.total);
    }
}

/// One row being read: the cells of the importer's columns, from a CSV line or from any
/// other column → text record (e.g. a JSON object), and where its problems go.
pub struct Row<'a> {
    /// 1-based line of a CSV file (or the record's position elsewhere).
    pub line: u64,
    cells: Vec<(&'static str, &'a str)>,
    errors: &'a mut Vec<RowError>,
}

impl<'a> Row<'a> {
    /// A row from a record of column → text. Keys are matched to `columns` case-insensitively;
    /// a missing key reads as an empty cell (and is reported by the checks that need it).
    pub fn from_record(
        line: u64,
        columns: &[&'static str],
        record: &'a HashMap<String, String>,
        errors: &'a mut Vec<RowError>,
    ) -> Row<'a> {
        let cells = columns
            .iter()
            .filter_map(|&c| {
                record
                    .iter()
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case(c))
                    .map(|(_, v)| (c, v.as_str()))
            })
            .collect();
        Row {
            line,
            cells,
            errors,
        }
    }
}

impl Row<'_> {
    pub fn error(&mut self, column: &str, message: impl Into<String>) {
        self.errors.push(RowError {
            line: self.line,
            column: Some(column.to_string()),
            message: message.into(),
        });
    }

    /// The trimmed cell (empty when the row is short).
    pub fn cell(&self, column: &'static str) -> &str {
        self.cells
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, s)| s.trim())
            .unwrap_or("")
    }

    /// A cell that must not be empty.
    pub fn required(&mut self, column: &'static str) -> Option<String> {
        let v = self.cell(column).to_string();
        if v.is_empty() {
            self.error(column, "must not be empty");
            None
        } else {
            Some(v)
        }
    }

    /// A `;`-separated list; empty items are dropped.
    pub fn list(&self, column: &'static str) -> Vec<String> {
        self.cell(column)
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// `YYYY-MM-DD`, or empty.
    #[allow(clippy::result_unit_err)] // the problem is already in the row's errors
    pub fn optional_date(&mut self, column: &'static str) -> Result<Option<jiff::civil::Date>, ()> {
        let v = self.cell(column).to_string();
        if v.is_empty() {
            return Ok(None);
        }
        parse_iso_date(&v)
            .map(Some)
            .map_err(|m| self.error(column, m))
    }

    pub fn date(&mut self, column: &'static str) -> Option<jiff::civil::Date> {
        match self.optional_date(column) {
            Ok(Some(d)) => Some(d),
            Ok(None) => {
                self.error(column, "must not be empty (YYYY-MM-DD)");
                None
            }
            Err(()) => None,
        }
    }

    /// A list of mail addresses, at least `min` of them.
    pub fn emails(&mut self, column: &'static str, min: usize) -> Option<Vec<String>> {
        let list = self.list(column);
        let mut ok = true;
        for a in &list {
            if !looks_like_email(a) {
                self.error(column, format!("{a:?} is not a mail address"));
                ok = false;
            }
        }
        if list.len() < min {
            self.error(column, format!("needs at least {min} address(es)"));
            ok = false;
        }
        ok.then(|| list.into_iter().map(|a| a.to_ascii_lowercase()).collect())
    }

    /// `true`/`false` (also `yes`/`no`, `1`/`0`); empty means false.
    pub fn boolean(&mut self, column: &'static str) -> Option<bool> {
        match self.cell(column).to_ascii_lowercase().as_str() {
            "" | "false" | "no" | "0" => Some(false),
            "true" | "yes" | "1" => Some(true),
            other => {
                let msg = format!("{other:?} is not true or false");
                self.error(column, msg);
                None
            }
        }
    }

    /// A value parsed with `FromStr<Err = String>` (enums), error message from the parser.
    pub fn parsed<T: std::str::FromStr<Err = String>>(
        &mut self,
        column: &'static str,
    ) -> Option<T> {
        let v = self.cell(column).to_string();
        match v.parse() {
            Ok(t) => Some(t),
            Err(m) => {
                self.error(column, m);
                None
            }
        }
    }
}

/// A whole file read in one pass: the rows without problems, and every problem.
pub struct Parsed<T> {
    pub rows: Vec<(u64, T)>,
    pub errors: Vec<RowError>,
    /// The separator the file uses.
    pub delimiter: u8,
}

impl<T> Parsed<T> {
    /// Every record of the table `opened` (or its header's problems) in one pass: `record`
    /// checks a row and builds its record, or reports the row's problems into it and gives
    /// None.
    pub(super) fn read(
        opened: Result<Table, Vec<RowError>>,
        progress: super::Progress<'_>,
        mut record: impl FnMut(&mut Row<'_>) -> Option<T>,
    ) -> Parsed<T> {
        let table = match opened {
            Ok(t) => t,
            Err(errors) => return Parsed::failed(errors),
        };
        let delimiter = table.delimiter;
        let mut errors = Vec::new();
        let mut rows = Vec::new();
        table.for_each_row(&mut errors, progress, |row| {
            if let Some(r) = record(row) {
                rows.push((row.line, r));
            }
        });
        Parsed {
            rows,
            errors,
            delimiter,
        }
    }

    /// A file that could not be read past its header.
    pub fn failed(errors: Vec<RowError>) -> Parsed<T> {
        Parsed {
            rows: Vec::new(),
            errors,
            delimiter: b',',
        }
    }
}

/// The record `build` makes of a column → text `record` read as a row of `columns` (`line`
/// numbers its problems), or every problem found.
pub(super) fn from_record<T>(
    line: u64,
    columns: &[&'static str],
    record: &HashMap<String, String>,
    build: impl FnOnce(&mut Row<'_>) -> Option<T>,
) -> Result<T, Vec<RowError>> {
    let mut errors = Vec::new();
    let mut row = Row::from_record(line, columns, record, &mut errors);
    match build(&mut row) {
        Some(r) if errors.is_empty() => Ok(r),
        _ => Err(errors),
    }
}

/// With a set of known partners: reports `id` when it is not among them. True when it is
/// known (or nothing is known to check against).
pub fn known_partner(row: &mut Row<'_>, partners: Option<&HashSet<String>>, id: &str) -> bool {
    match partners {
        Some(known) if !known.contains(id) => {
            row.error(
                "partner_id",
                format!("unknown partner {id:?} (import partners first)"),
            );
            false
        }
        _ => true,
    }
}

/// How a separator is named in messages.
pub fn delimiter_name(d: u8) -> &'static str {
    match d {
        b';' => "semicolon",
        b'\t' => "tab",
        _ => "comma",
    }
}

/// A pragmatic check: one `@`, non-empty local part, a dotted domain without spaces.
pub(super) fn looks_like_email(a: &str) -> bool {
    match a.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !local.contains(char::is_whitespace) && looks_like_domain(domain)
        }
        None => false,
    }
}

/// Letters, digits, `-` and dots; at least two labels; no empty label.
pub(super) fn looks_like_domain(d: &str) -> bool {
    let labels: Vec<&str> = d.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// The result tail of every importer and check: `value` when no row had a problem, otherwise
/// the problems in line order (a stable sort, so one row's problems keep their order).
pub(super) fn ok_if_empty<T>(value: T, mut errors: Vec<RowError>) -> Result<T, Vec<RowError>> {
    if errors.is_empty() {
        Ok(value)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// Rejects a second row with the same id; returns false for the duplicate.
pub(super) fn first_occurrence(
    seen: &mut HashMap<String, u64>,
    row: &mut Row<'_>,
    column: &'static str,
    id: &str,
) -> bool {
    if let Some(first) = seen.get(id) {
        let msg = format!("{id:?} already appears on line {first}");
        row.error(column, msg);
        false
    } else {
        seen.insert(id.to_string(), row.line);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_if_empty_passes_the_value_or_sorts_the_errors_by_line() {
        assert_eq!(ok_if_empty(7, Vec::new()), Ok(7));
        let e = |line, column: &str| RowError {
            line,
            column: Some(column.into()),
            message: String::new(),
        };
        let got = ok_if_empty((), vec![e(3, "a"), e(2, "b"), e(3, "c")]).unwrap_err();
        let got: Vec<_> = got
            .iter()
            .map(|e| (e.line, e.column.clone().unwrap()))
            .collect();
        assert_eq!(got, [(2, "b".into()), (3, "a".into()), (3, "c".into())]);
    }

    #[test]
    fn dates_must_be_iso() {
        assert!(parse_iso_date("2026-11-03").is_ok());
        assert!(parse_iso_date("2026-02-30").is_err());
        assert!(parse_iso_date("2026/11/03").is_err());
        assert!(parse_iso_date("26-11-03").is_err());
        assert!(parse_iso_date("2026-1-3").is_err());
    }

    #[test]
    fn oversized_cells_are_reported_not_echoed() {
        let long = "x".repeat(MAX_CELL_BYTES + 1);
        let text = format!("a,b\n1,{long}\n\"2\",\"ok\"\n");
        let table = Table::open(text.as_bytes(), &["a", "b"]).unwrap();
        let mut errors = Vec::new();
        let mut visited = Vec::new();
        table.for_each_row(&mut errors, &mut |_, _| {}, |row| {
            visited.push(row.cell("a").to_string())
        });
        assert_eq!(visited, ["2"], "the oversized row is not read");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].line, errors[0].column.as_deref()),
            (2, Some("b"))
        );
        assert!(errors[0].message.len() < 200, "{}", errors[0].message);
    }

    #[test]
    fn reading_stops_after_too_many_problems() {
        let mut text = String::from("a\n");
        for _ in 0..(MAX_ERRORS * 3) {
            text.push_str("bad\n");
        }
        let table = Table::open(text.as_bytes(), &["a"]).unwrap();
        let mut errors = Vec::new();
        table.for_each_row(&mut errors, &mut |_, _| {}, |row| row.error("a", "bad"));
        assert_eq!(errors.len(), MAX_ERRORS + 1);
        assert!(errors.last().unwrap().message.contains("not checked"));
    }

    #[test]
    fn emails_and_domains() {
        assert!(looks_like_email("it-admin@huadong.example.cn"));
        assert!(!looks_like_email("it-admin.huadong.example.cn"));
        assert!(!looks_like_email("a b@x.cn"));
        assert!(!looks_like_email("a@localhost"));
        assert!(looks_like_domain("hd-tech.example.com"));
        assert!(!looks_like_domain("-bad.example.com"));
        assert!(!looks_like_domain("bad..example"));
    }
}
