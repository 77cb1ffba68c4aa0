//! `trialdesk export FILE` and `trialdesk import dump FILE`: all data in one file, to move a
//! helpdesk between SQLite and PostgreSQL (either way) or keep a portable copy.
//!
//! # Format (version 1)
//! JSON Lines, UTF-8, one JSON value per line:
//!
//! ```text
//! {"format":"trialdesk-dump","format_version":1,"schema_version":6,"backend":"sqlite","created_at":"…","trialdesk":"0.1.0"}
//! {"table":"partners","columns":[{"name":"partner_id","type":"text"},…]}
//! ["P01","华东智联科技有限公司",…]                      one array per row, in column order
//! {"end_table":"partners","rows":4}
//! …                                                    every table, parents first
//! {"end":true,"tables":14,"rows":1234}
//! ```
//!
//! Column types: `int` (JSON integer), `text` (string), `bool` (true/false), `bytes` (base64
//! string, standard alphabet with padding: raw mails); `null` for NULL. `schema_version` is the
//! last migration applied to the exported database; a dump is imported only by a trialdesk
//! whose newest migration is the same (export again after upgrading). The per-table and final
//! counts let import tell a complete file from a cut-off one.
//!
//! Import writes into an empty database in one transaction (all or nothing), keeps every id,
//! and moves PostgreSQL's identity sequences past them.

use std::io::{BufRead, Write};
use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::store::dump::{Column, ColumnType, DumpError, DumpItem, Value};
use crate::store::Store;

pub const FORMAT: &str = "trialdesk-dump";
pub const FORMAT_VERSION: u32 = 1;

/// The first line of a dump.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub format_version: u32,
    pub schema_version: i64,
    /// `sqlite` or `postgres`: where it came from (informative).
    pub backend: String,
    pub created_at: String,
    pub trialdesk: String,
}

/// What an export or import moved.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub tables: Vec<(String, u64)>,
}

impl Summary {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

#[derive(Serialize, Deserialize)]
struct TableLine {
    table: String,
    columns: Vec<Column>,
}

#[derive(Serialize, Deserialize)]
struct EndTableLine {
    end_table: String,
    rows: u64,
}

#[derive(Serialize, Deserialize)]
struct EndLine {
    end: bool,
    tables: u64,
    rows: u64,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn to_json(v: Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Int(i) => i.into(),
        Value::Text(t) => t.into(),
        Value::Bool(b) => b.into(),
        Value::Bytes(b) => b64().encode(b).into(),
    }
}

fn from_json(v: serde_json::Value, column: &Column) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match (v, column.ty) {
        (J::Null, _) => Value::Null,
        (J::Number(n), ColumnType::Int) => Value::Int(
            n.as_i64()
                .ok_or_else(|| format!("{}: {n} is not a 64-bit integer", column.name))?,
        ),
        (J::String(s), ColumnType::Text) => Value::Text(s),
        (J::Bool(b), ColumnType::Bool) => Value::Bool(b),
        (J::String(s), ColumnType::Bytes) => Value::Bytes(
            b64()
                .decode(s.as_bytes())
                .map_err(|e| format!("{}: bad base64: {e}", column.name))?,
        ),
        (other, ty) => {
            return Err(format!(
                "{}: expected {ty:?} (or null), found {}",
                column.name,
                match other {
                    J::Bool(_) => "a boolean",
                    J::Number(_) => "a number",
                    J::String(_) => "a string",
                    J::Array(_) => "an array",
                    J::Object(_) => "an object",
                    J::Null => "null",
                }
            ))
        }
    })
}

/// Writes every table of `store` to `out` (`-`: standard output). A file is written under a
/// temporary name and renamed when complete, so a failed export leaves no half file behind.
pub async fn export(store: &Store, out: &Path) -> Result<Summary, DumpError> {
    let header = Header {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        schema_version: store.schema_version().await?,
        backend: store.backend_name().into(),
        created_at: jiff::Timestamp::now().to_string(),
        trialdesk: env!("CARGO_PKG_VERSION").into(),
    };
    if out == Path::new("-") {
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::new(stdout.lock());
        let summary = write_dump(store, &header, &mut w).await?;
        w.flush()?;
        return Ok(summary);
    }
    let partial = out.with_extension(match out.extension() {
        Some(e) => format!("{}.partial", e.to_string_lossy()),
        None => "partial".into(),
    });
    let file = crate::private_file::create(&partial).map_err(|e| {
        DumpError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot create {}: {e}", partial.display()),
        ))
    })?;
    let mut w = std::io::BufWriter::new(file);
    let result = async {
        let summary = write_dump(store, &header, &mut w).await?;
        w.flush()?;
        w.get_ref().sync_all()?;
        Ok::<_, DumpError>(summary)
    }
    .await;
    match result {
        Ok(summary) => {
            std::fs::rename(&partial, out)?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

async fn write_dump(
    store: &Store,
    header: &Header,
    w: &mut impl Write,
) -> Result<Summary, DumpError> {
    let mut line = |v: &dyn erased::Line| -> Result<(), DumpError> {
        v.write_to(w)?;
        Ok(())
    };
    line(header)?;
    let mut summary = Summary::default();
    store
        .export_items(|item| match item {
            DumpItem::Table { name, columns } => line(&TableLine {
                table: name,
                columns,
            }),
            DumpItem::Row(values) => line(&serde_json::Value::Array(
                values.into_iter().map(to_json).collect(),
            )),
            DumpItem::EndTable { name, rows } => {
                summary.tables.push((name.clone(), rows));
                line(&EndTableLine {
                    end_table: name,
                    rows,
                })
            }
        })
        .await?;
    line(&EndLine {
        end: true,
        tables: summary.tables.len() as u64,
        rows: summary.rows(),
    })?;
    Ok(summary)
}

/// Serialising any of the line types through one closure.
mod erased {
    pub trait Line {
        fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()>;
    }
    impl<T: serde::Serialize> Line for T {
        fn write_to(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
            serde_json::to_writer(&mut *w, self)?;
            w.write_all(b"\n")
        }
    }
}

/// Reads the header of a dump and checks it can be imported here.
fn read_header(line: Option<(usize, String)>, store: &Store) -> Result<Header, DumpError> {
    let Some((_, text)) = line else {
        return Err(DumpError::Invalid(
            "the file is empty: not a trialdesk dump".into(),
        ));
    };
    let header: Header = serde_json::from_str(&text)
        .ok()
        .filter(|h: &Header| h.format == FORMAT)
        .ok_or_else(|| {
            DumpError::Invalid(
                "not a trialdesk dump (the first line is not a trialdesk-dump header)".into(),
            )
        })?;
    if header.format_version != FORMAT_VERSION {
        return Err(DumpError::Invalid(format!(
            "dump format version {} is not supported (this trialdesk reads version {FORMAT_VERSION})",
            header.format_version
        )));
    }
    let ours = store.latest_schema_version();
    if header.schema_version != ours {
        return Err(DumpError::Invalid(format!(
            "the dump is of schema version {} (trialdesk {}), this trialdesk's is {ours}: import \
             it with the trialdesk version that wrote it, or export it again with this one \
             after running `trialdesk migrate` on the source",
            header.schema_version, header.trialdesk
        )));
    }
    Ok(header)
}

/// Imports a dump into the (empty, migrated) database of `store`, in one transaction.
pub async fn import(store: &Store, file: &Path) -> Result<Summary, DumpError> {
    let f = std::fs::File::open(file).map_err(|e| {
        DumpError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", file.display()),
        ))
    })?;
    let mut lines = std::io::BufReader::new(f)
        .lines()
        .enumerate()
        .map(|(i, l)| l.map(|l| (i + 1, l)));
    let first = lines.next().transpose()?;
    read_header(first, store)?;
    let mut reader = Reader {
        lines,
        columns: None,
        ended: None,
        tables: 0,
        rows: 0,
    };
    let items = std::iter::from_fn(|| reader.next_item().transpose());
    let tables = store.import_items(items).await?;
    Ok(Summary { tables })
}

/// Turns lines into items, checking each against the table it belongs to.
struct Reader<L> {
    lines: L,
    /// Columns of the table being read.
    columns: Option<Vec<Column>>,
    /// The final line, once seen: (tables, rows) it announces.
    ended: Option<(u64, u64)>,
    tables: u64,
    rows: u64,
}

impl<L: Iterator<Item = std::io::Result<(usize, String)>>> Reader<L> {
    fn next_item(&mut self) -> Result<Option<DumpItem>, DumpError> {
        let bad = |n: usize, m: String| DumpError::Invalid(format!("dump line {n}: {m}"));
        loop {
            let Some(next) = self.lines.next() else {
                return match self.ended {
                    Some((t, r)) if t == self.tables && r == self.rows => Ok(None),
                    Some((t, r)) => Err(DumpError::Invalid(format!(
                        "the dump announces {t} table(s) and {r} row(s) but holds {} and {}: the \
                         file is damaged",
                        self.tables, self.rows
                    ))),
                    None => Err(DumpError::Invalid(
                        "the dump has no end line: the file is cut short".into(),
                    )),
                };
            };
            let (n, text) = next?;
            if text.trim().is_empty() {
                continue;
            }
            if self.ended.is_some() {
                return Err(bad(n, "data after the end line".into()));
            }
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| bad(n, format!("not JSON: {e}")))?;
            if let serde_json::Value::Array(cells) = value {
                let Some(columns) = &self.columns else {
                    return Err(bad(n, "a row outside any table".into()));
                };
                if cells.len() != columns.len() {
                    return Err(bad(
                        n,
                        format!("{} values for {} columns", cells.len(), columns.len()),
                    ));
                }
                let row = cells
                    .into_iter()
                    .zip(columns)
                    .map(|(v, c)| from_json(v, c))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|m| bad(n, m))?;
                self.rows += 1;
                return Ok(Some(DumpItem::Row(row)));
            }
            if let Ok(t) = serde_json::from_value::<TableLine>(value.clone()) {
                self.columns = Some(t.columns.clone());
                self.tables += 1;
                return Ok(Some(DumpItem::Table {
                    name: t.table,
                    columns: t.columns,
                }));
            }
            if let Ok(e) = serde_json::from_value::<EndTableLine>(value.clone()) {
                self.columns = None;
                return Ok(Some(DumpItem::EndTable {
                    name: e.end_table,
                    rows: e.rows,
                }));
            }
            if let Ok(e) = serde_json::from_value::<EndLine>(value) {
                self.ended = Some((e.tables, e.rows));
                continue;
            }
            return Err(bad(n, "not a row, table, or end line".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: ColumnType) -> Column {
        Column {
            name: name.into(),
            ty,
        }
    }

    #[test]
    fn values_round_trip_through_json() {
        let cases = [
            (Value::Int(-42), col("a", ColumnType::Int)),
            (Value::Int(i64::MAX), col("a", ColumnType::Int)),
            (
                Value::Text("华东 \"x\"\n".into()),
                col("b", ColumnType::Text),
            ),
            (Value::Bool(true), col("c", ColumnType::Bool)),
            (
                Value::Bytes(vec![0, 255, 10, 13]),
                col("d", ColumnType::Bytes),
            ),
            (Value::Null, col("e", ColumnType::Bytes)),
        ];
        for (v, c) in cases {
            assert_eq!(from_json(to_json(v.clone()), &c).unwrap(), v);
        }
        assert!(from_json(serde_json::json!("1"), &col("a", ColumnType::Int)).is_err());
        assert!(from_json(serde_json::json!(1.5), &col("a", ColumnType::Int)).is_err());
        assert!(from_json(serde_json::json!("***"), &col("d", ColumnType::Bytes)).is_err());
    }

    fn read_all(text: &str) -> Result<Vec<DumpItem>, DumpError> {
        let mut r = Reader {
            lines: text
                .lines()
                .map(str::to_string)
                .enumerate()
                .map(|(i, l)| Ok((i + 2, l))),
            columns: None,
            ended: None,
            tables: 0,
            rows: 0,
        };
        std::iter::from_fn(|| r.next_item().transpose()).collect()
    }

    #[test]
    fn reader_checks_structure_and_counts() {
        let good = "{\"table\":\"t\",\"columns\":[{\"name\":\"id\",\"type\":\"int\"}]}\n[1]\n[2]\n\
                    {\"end_table\":\"t\",\"rows\":2}\n{\"end\":true,\"tables\":1,\"rows\":2}\n";
        let items = read_all(good).unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(items[1], DumpItem::Row(vec![Value::Int(1)]));

        let cut = good.lines().take(3).collect::<Vec<_>>().join("\n");
        let err = read_all(&cut).unwrap_err().to_string();
        assert!(err.contains("cut short"), "{err}");

        let wrong_count = good.replace("\"tables\":1,\"rows\":2", "\"tables\":1,\"rows\":3");
        assert!(read_all(&wrong_count)
            .unwrap_err()
            .to_string()
            .contains("damaged"));

        let bad_row = good.replace("[2]", "[\"x\"]");
        let err = read_all(&bad_row).unwrap_err().to_string();
        assert!(err.contains("line 4") && err.contains("id"), "{err}");
    }
}
