use std::collections::HashMap;

use sqlx::QueryBuilder;

use super::imports::{existing_ids, write_extras, UpsertExtras, Upserted};
use super::{
    begin_write, dispatch, from_json, parse_field, push_in_list, to_json, Store, StoreError,
    INSERT_CHUNK,
};
use crate::domain::Partner;

#[derive(sqlx::FromRow)]
pub(super) struct PartnerRow {
    partner_id: String,
    name: String,
    admin_emails: String,
    language: String,
    pub(super) notify_shipment_updates: bool,
}

/// A partner row with the domain it was found by.
#[derive(sqlx::FromRow)]
struct DomainPartnerRow {
    domain: String,
    #[sqlx(flatten)]
    partner: PartnerRow,
}

impl PartnerRow {
    pub(super) fn into_partner(self, mut domains: Vec<String>) -> Result<Partner, StoreError> {
        domains.sort();
        Ok(Partner {
            partner_id: self.partner_id,
            name: self.name,
            domains,
            admin_emails: from_json("partners", &self.admin_emails)?,
            language: parse_field("partners", &self.language)?,
            notify_shipment_updates: self.notify_shipment_updates,
        })
    }
}

impl Store {
    /// Inserts or replaces partners and their domains in one transaction. A partner's domain
    /// list is replaced as a whole, so a domain dropped from the CSV stops being trusted.
    pub async fn upsert_partners(
        &self,
        partners: &[Partner],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.upsert_partners_with(partners, now_ms, &UpsertExtras::default())
            .await
            .map(|_| ())
    }

    /// [`Store::upsert_partners`] that also writes `extras` in its transaction and says which
    /// partners existed before: the one write path of partner data.
    pub async fn upsert_partners_with(
        &self,
        partners: &[Partner],
        now_ms: i64,
        extras: &UpsertExtras,
    ) -> Result<Upserted, StoreError> {
        let existing = dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let existing = existing_ids(
                &mut tx,
                "partners",
                "partner_id",
                partners.iter().map(|p| p.partner_id.clone()),
            )
            .await?;
            for chunk in partners.chunks(INSERT_CHUNK) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "INSERT INTO partners (partner_id, name, admin_emails, language, \
                     notify_shipment_updates, updated_at) ",
                );
                qb.push_values(chunk, |mut b, p| {
                    b.push_bind(p.partner_id.clone())
                        .push_bind(p.name.clone())
                        .push_bind(to_json(&p.admin_emails))
                        .push_bind(p.language.code())
                        .push_bind(p.notify_shipment_updates)
                        .push_bind(now_ms);
                });
                qb.push(
                    " ON CONFLICT (partner_id) DO UPDATE SET name = excluded.name, \
                     admin_emails = excluded.admin_emails, language = excluded.language, \
                     notify_shipment_updates = excluded.notify_shipment_updates, \
                     updated_at = excluded.updated_at",
                );
                qb.build().execute(&mut *tx).await?;
            }
            for p in partners {
                sqlx::query("DELETE FROM partner_domains WHERE partner_id = $1")
                    .bind(&p.partner_id)
                    .execute(&mut *tx)
                    .await?;
            }
            for p in partners {
                for d in &p.domains {
                    sqlx::query("INSERT INTO partner_domains (domain, partner_id) VALUES ($1, $2)")
                        .bind(d.to_ascii_lowercase())
                        .bind(&p.partner_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            write_extras(
                &mut tx,
                extras,
                partners.len(),
                now_ms,
                "partner",
                partners.iter().map(|p| p.partner_id.clone()),
                &existing,
            )
            .await?;
            tx.commit().await?;
            existing
        });
        Ok(Upserted {
            existing,
            notices: Vec::new(),
        })
    }

    /// The partner whose registered domains include `domain` (exact, case-insensitive). Asked
    /// for every inbound mail: the partner row comes with the domain lookup (one join).
    pub async fn partner_by_domain(&self, domain: &str) -> Result<Option<Partner>, StoreError> {
        let found: Option<(PartnerRow, Vec<String>)> = dispatch!(self, |pool| {
            let row: Option<PartnerRow> = sqlx::query_as(
                "SELECT p.partner_id, p.name, p.admin_emails, p.language, p.notify_shipment_updates \
                 FROM partner_domains d JOIN partners p ON p.partner_id = d.partner_id \
                 WHERE d.domain = $1",
            )
            .bind(domain.trim().to_ascii_lowercase())
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => {
                    let domains = sqlx::query_scalar(
                        "SELECT domain FROM partner_domains WHERE partner_id = $1",
                    )
                    .bind(&row.partner_id)
                    .fetch_all(pool)
                    .await?;
                    Some((row, domains))
                }
                None => None,
            }
        });
        found
            .map(|(row, domains)| row.into_partner(domains))
            .transpose()
    }

    /// [`Store::partner_by_domain`] for a round's sender domains at once (two queries in all):
    /// the domains that belong to a partner.
    pub async fn partners_by_domains(
        &self,
        domains: &[&str],
    ) -> Result<HashMap<String, Partner>, StoreError> {
        let mut found = HashMap::new();
        for chunk in domains.chunks(INSERT_CHUNK) {
            let rows: Vec<(String, PartnerRow)> = dispatch!(self, |pool| {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "SELECT d.domain, p.partner_id, p.name, p.admin_emails, p.language, \
                     p.notify_shipment_updates \
                     FROM partner_domains d JOIN partners p ON p.partner_id = d.partner_id \
                     WHERE d.domain IN (",
                );
                let wanted: Vec<String> = chunk
                    .iter()
                    .map(|d| d.trim().to_ascii_lowercase())
                    .collect();
                push_in_list(&mut qb, &wanted);
                let rows: Vec<DomainPartnerRow> = qb.build_query_as().fetch_all(pool).await?;
                rows.into_iter().map(|r| (r.domain, r.partner)).collect()
            });
            if rows.is_empty() {
                continue;
            }
            let mut partner_domains: HashMap<String, Vec<String>> = HashMap::new();
            let pairs: Vec<(String, String)> = dispatch!(self, |pool| {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "SELECT partner_id, domain FROM partner_domains WHERE partner_id IN (",
                );
                let ids: Vec<String> = rows.iter().map(|(_, r)| r.partner_id.clone()).collect();
                push_in_list(&mut qb, &ids);
                qb.build_query_as().fetch_all(pool).await?
            });
            for (partner_id, domain) in pairs {
                partner_domains.entry(partner_id).or_default().push(domain);
            }
            for (domain, row) in rows {
                let domains = partner_domains
                    .get(&row.partner_id)
                    .cloned()
                    .unwrap_or_default();
                found.insert(domain, row.into_partner(domains)?);
            }
        }
        Ok(found)
    }

    pub async fn partner(&self, partner_id: &str) -> Result<Option<Partner>, StoreError> {
        let (row, domains): (Option<PartnerRow>, Vec<String>) = dispatch!(self, |pool| {
            let row = sqlx::query_as(
                "SELECT partner_id, name, admin_emails, language, notify_shipment_updates \
                 FROM partners WHERE partner_id = $1",
            )
            .bind(partner_id)
            .fetch_optional(pool)
            .await?;
            let domains =
                sqlx::query_scalar("SELECT domain FROM partner_domains WHERE partner_id = $1")
                    .bind(partner_id)
                    .fetch_all(pool)
                    .await?;
            (row, domains)
        });
        row.map(|r| r.into_partner(domains)).transpose()
    }

    pub async fn partners(&self) -> Result<Vec<Partner>, StoreError> {
        let (rows, domains): (Vec<PartnerRow>, Vec<(String, String)>) = dispatch!(self, |pool| {
            let rows = sqlx::query_as(
                "SELECT partner_id, name, admin_emails, language, notify_shipment_updates \
                 FROM partners ORDER BY partner_id",
            )
            .fetch_all(pool)
            .await?;
            let domains = sqlx::query_as("SELECT partner_id, domain FROM partner_domains")
                .fetch_all(pool)
                .await?;
            (rows, domains)
        });
        let mut by_partner: HashMap<String, Vec<String>> = HashMap::new();
        for (partner_id, domain) in domains {
            by_partner.entry(partner_id).or_default().push(domain);
        }
        rows.into_iter()
            .map(|r| {
                let d = by_partner.remove(&r.partner_id).unwrap_or_default();
                r.into_partner(d)
            })
            .collect()
    }

    /// domain → partner_id, for import validation (a domain may belong to one partner only).
    pub async fn domain_owners(&self) -> Result<HashMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> = dispatch!(self, |pool| {
            sqlx::query_as("SELECT domain, partner_id FROM partner_domains")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().collect())
    }

    pub async fn partner_ids(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let rows: Vec<String> = dispatch!(self, |pool| {
            sqlx::query_scalar("SELECT partner_id FROM partners")
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().collect())
    }
}
