use std::collections::HashMap;

use super::table::{
    first_occurrence, from_record, looks_like_domain, ok_if_empty, Parsed, Row, Table,
};
use super::{Progress, RowError};
use crate::domain::{Language, Partner};

/// Every column of a partners file: the id first, the one optional column
/// (`notify_shipment_updates`) last. Also the keys of a partner record.
pub const ALL: &[&str] = &[
    "partner_id",
    "name",
    "domains",
    "admin_emails",
    "language",
    "notify_shipment_updates",
];
/// The columns a partners file must have.
pub const COLUMNS: &[&str] = ALL.split_at(ALL.len() - 1).0;
/// Columns a file may leave out (older files import unchanged).
pub const OPTIONAL: &[&str] = ALL.split_at(ALL.len() - 1).1;

/// Parses `partner_id,name,domains,admin_emails,language[,notify_shipment_updates]` (lists
/// `;`-separated; `notify_shipment_updates` is `true`/`false`, empty or absent = false).
pub fn parse_partners(
    bytes: &[u8],
    progress: Progress<'_>,
) -> Result<Vec<(u64, Partner)>, Vec<RowError>> {
    let parsed = parse_partners_all(bytes, progress);
    ok_if_empty(parsed.rows, parsed.errors)
}

/// Every good row and every problem of the file in one pass.
pub(super) fn parse_partners_all(bytes: &[u8], progress: Progress<'_>) -> Parsed<Partner> {
    let mut seen_ids = HashMap::new();
    let mut seen_domains: HashMap<String, (String, u64)> = HashMap::new();
    let opened = Table::open_with(bytes, COLUMNS, OPTIONAL);
    Parsed::read(opened, progress, |row| {
        let partner = partner_row(row)?;
        if !first_occurrence(&mut seen_ids, row, "partner_id", &partner.partner_id) {
            return None;
        }
        let mut domains_ok = true;
        for d in &partner.domains {
            if let Some((other, line)) = seen_domains.get(d) {
                if other != &partner.partner_id {
                    let msg = format!("domain {d:?} is already given to {other} on line {line}");
                    row.error("domains", msg);
                    domains_ok = false;
                }
            } else {
                seen_domains.insert(d.clone(), (partner.partner_id.clone(), row.line));
            }
        }
        domains_ok.then_some(partner)
    })
}

/// Checks one partner row (a CSV line, or any column → text record) and builds the partner;
/// None when the row had a problem (reported into the row's errors).
pub fn partner_row(row: &mut Row<'_>) -> Option<Partner> {
    let id = row.required("partner_id");
    let name = row.required("name");
    let domains: Vec<String> = row
        .list("domains")
        .into_iter()
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let mut domains_ok = !domains.is_empty();
    if domains.is_empty() {
        row.error("domains", "needs at least one domain");
    }
    for d in &domains {
        if !looks_like_domain(d) {
            row.error("domains", format!("{d:?} is not a domain"));
            domains_ok = false;
        }
    }
    let admins = row.emails("admin_emails", 1);
    let language: Option<Language> = row.parsed("language");
    let notify = row.boolean("notify_shipment_updates");
    match (id, name, domains_ok, admins, language, notify) {
        (Some(partner_id), Some(name), true, Some(admin_emails), Some(language), Some(notify)) => {
            Some(Partner {
                partner_id,
                name,
                domains,
                admin_emails,
                language,
                notify_shipment_updates: notify,
            })
        }
        _ => None,
    }
}

/// A partner from a column → text record (the HTTP API's JSON, say), with the CSV rows'
/// checks; `line` numbers its problems.
pub fn partner_from_record(
    line: u64,
    record: &HashMap<String, String>,
) -> Result<Partner, Vec<RowError>> {
    from_record(line, ALL, record, partner_row)
}

/// A domain already registered to a partner that is not in this file stays with it: moving a
/// domain between partners must be deliberate (remove it from the old partner first).
pub(super) fn check_domain_owners(
    partners: &[(u64, Partner)],
    owners: &HashMap<String, String>,
) -> Result<(), Vec<RowError>> {
    let in_file: std::collections::HashSet<&str> = partners
        .iter()
        .map(|(_, p)| p.partner_id.as_str())
        .collect();
    let mut errors = Vec::new();
    for (line, p) in partners {
        for d in &p.domains {
            if let Some(owner) = owners.get(d) {
                if owner != &p.partner_id && !in_file.contains(owner.as_str()) {
                    errors.push(RowError {
                        line: *line,
                        column: Some("domains".into()),
                        message: format!("domain {d:?} already belongs to partner {owner}"),
                    });
                }
            }
        }
    }
    ok_if_empty((), errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(u64, Partner)>, Vec<RowError>> {
        parse_partners(text.as_bytes(), &mut |_, _| {})
    }

    #[test]
    fn good_file_with_extra_column_and_bom() {
        let text = "\u{feff}partner_id,name,extra,domains,admin_emails,language\n\
                    P01,华东,x,Huadong.example.cn;hd-tech.example.com,it@huadong.example.cn,zh\n\
                    \n\
                    P02,Nordwind,y,nordwind.example.de,admin@nordwind.example.de,de\n";
        let rows = parse(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].0, 2);
        assert_eq!(
            rows[0].1.domains,
            vec!["huadong.example.cn", "hd-tech.example.com"]
        );
        assert_eq!(rows[1].0, 4);
        assert_eq!(rows[1].1.language, Language::De);
    }

    #[test]
    fn every_bad_row_is_reported_with_line_and_column() {
        let text = "partner_id,name,domains,admin_emails,language\n\
                    P01,A,a.example.cn,a@a.example.cn,zh\n\
                    P02,,b.example.cn,not-an-address,fr\n\
                    P01,C,c.example.cn,c@c.example.cn,en\n\
                    P03,D,a.example.cn,d@d.example.cn,en\n";
        let errs = parse(text).unwrap_err();
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            shown.contains(&"line 3, column name: must not be empty".to_string()),
            "{shown:?}"
        );
        assert!(shown
            .iter()
            .any(|s| s.starts_with("line 3, column admin_emails:")));
        assert!(shown
            .iter()
            .any(|s| s.starts_with("line 3, column language:")));
        assert!(shown
            .iter()
            .any(|s| s.starts_with("line 4, column partner_id:") && s.contains("line 2")));
        assert!(shown
            .iter()
            .any(|s| s.starts_with("line 5, column domains:") && s.contains("P01")));
    }

    #[test]
    fn missing_header_is_named() {
        let errs = parse("partner_id,name,domains\nP1,a,b.cn\n").unwrap_err();
        assert_eq!(errs[0].line, 1);
        assert!(errs[0].message.contains("admin_emails"));
        assert!(errs[0].message.contains("language"));
    }

    #[test]
    fn notify_column_is_optional() {
        let old = parse(
            "partner_id,name,domains,admin_emails,language\nP1,A,a.example.cn,a@a.example.cn,zh\n",
        )
        .unwrap();
        assert!(!old[0].1.notify_shipment_updates);
        let new = parse(
            "partner_id,name,domains,admin_emails,language,notify_shipment_updates\n\
             P1,A,a.example.cn,a@a.example.cn,zh,true\n\
             P2,B,b.example.cn,b@b.example.cn,en,\n",
        )
        .unwrap();
        assert!(new[0].1.notify_shipment_updates);
        assert!(!new[1].1.notify_shipment_updates);
        let errs = parse(
            "partner_id,name,domains,admin_emails,language,notify_shipment_updates\n\
             P1,A,a.example.cn,a@a.example.cn,zh,perhaps\n",
        )
        .unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "line 2, column notify_shipment_updates: \"perhaps\" is not true or false"
        );
    }

    #[test]
    fn domain_of_another_partner_in_db_is_refused() {
        let rows = parse(
            "partner_id,name,domains,admin_emails,language\nP02,B,a.example.cn,b@b.example.cn,en\n",
        )
        .unwrap();
        let owners = HashMap::from([("a.example.cn".to_string(), "P01".to_string())]);
        let errs = check_domain_owners(&rows, &owners).unwrap_err();
        assert_eq!(errs[0].line, 2);
        let mine = HashMap::from([("a.example.cn".to_string(), "P02".to_string())]);
        assert!(check_domain_owners(&rows, &mine).is_ok());
    }
}
