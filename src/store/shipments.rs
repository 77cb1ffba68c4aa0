use sqlx::QueryBuilder;

use std::collections::{BTreeMap, HashSet};

use super::imports::{write_extras, UpsertExtras, Upserted};
use super::notices::{announced_changes, NoticeLoan};
use super::outbox::insert_outbox;
use super::partners::PartnerRow;
use super::{
    begin_write, dispatch, from_json, parse_date, parse_field, to_json, Store, StoreError,
    INSERT_CHUNK,
};
use crate::domain::{LoanNumber, Shipment, ShipmentStatus};

#[derive(sqlx::FromRow)]
struct ShipmentRow {
    loan_number: String,
    partner_id: String,
    customer: String,
    status: String,
    carrier: Option<String>,
    tracking_number: Option<String>,
    shipped_on: Option<String>,
    eta: Option<String>,
    delivered_on: Option<String>,
    items: String,
    rma_number: Option<String>,
}

impl ShipmentRow {
    fn into_shipment(self) -> Result<Shipment, StoreError> {
        const T: &str = "shipments";
        Ok(Shipment {
            loan_number: LoanNumber::from_normalized(self.loan_number),
            partner_id: self.partner_id,
            customer: self.customer,
            status: parse_field(T, &self.status)?,
            carrier: self.carrier,
            tracking_number: self.tracking_number,
            shipped_on: parse_date(T, self.shipped_on.as_deref())?,
            eta: parse_date(T, self.eta.as_deref())?,
            delivered_on: parse_date(T, self.delivered_on.as_deref())?,
            items: from_json(T, &self.items)?,
            rma_number: self.rma_number,
        })
    }
}

fn date_text(d: Option<jiff::civil::Date>) -> Option<String> {
    d.map(|d| d.to_string())
}

impl Store {
    /// Inserts or replaces shipments (by loan number) in one transaction: THE write path of
    /// shipment data (CSV import, web upload, API, drop folder). When the store has a
    /// [`ShipmentNotifier`](super::ShipmentNotifier), a loan that is new or changes to one of
    /// its statuses, of a partner that opted in, gets a notice queued in this same
    /// transaction, once per (loan, status) (`shipment_notices` key), one mail per partner.
    /// Returns the ids of the queued notices.
    pub async fn upsert_shipments(
        &self,
        shipments: &[Shipment],
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        self.upsert_shipments_with(shipments, now_ms, &UpsertExtras::default())
            .await
            .map(|u| u.notices)
    }

    /// [`Store::upsert_shipments`] that also writes `extras` (audit rows, the drop-folder
    /// file) in its transaction and says which loans existed before and which notices it
    /// queued. Every writer of shipment data comes through here.
    pub async fn upsert_shipments_with(
        &self,
        shipments: &[Shipment],
        now_ms: i64,
        extras: &UpsertExtras,
    ) -> Result<Upserted, StoreError> {
        let notifier = self.notifier.clone();
        dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            // Each loan's status before this change: which loans are new (201 vs 200 in the
            // API, the audit's created/updated) and which changed status (notices).
            let mut before: BTreeMap<String, ShipmentStatus> = BTreeMap::new();
            for chunk in shipments.chunks(INSERT_CHUNK) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "SELECT loan_number, status FROM shipments WHERE loan_number IN (",
                );
                let mut sep = qb.separated(", ");
                for s in chunk {
                    sep.push_bind(s.loan_number.as_str().to_string());
                }
                qb.push(")");
                let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                for (n, st) in rows {
                    before.insert(n, parse_field("shipments", &st)?);
                }
            }
            let existing: HashSet<String> = before.keys().cloned().collect();
            for chunk in shipments.chunks(INSERT_CHUNK) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "INSERT INTO shipments (loan_number, partner_id, customer, status, carrier, \
                     tracking_number, shipped_on, eta, delivered_on, items, rma_number, \
                     updated_at) ",
                );
                qb.push_values(chunk, |mut b, s| {
                    b.push_bind(s.loan_number.as_str().to_string())
                        .push_bind(s.partner_id.clone())
                        .push_bind(s.customer.clone())
                        .push_bind(s.status.code())
                        .push_bind(s.carrier.clone())
                        .push_bind(s.tracking_number.clone())
                        .push_bind(date_text(s.shipped_on))
                        .push_bind(date_text(s.eta))
                        .push_bind(date_text(s.delivered_on))
                        .push_bind(to_json(&s.items))
                        .push_bind(s.rma_number.clone())
                        .push_bind(now_ms);
                });
                qb.push(
                    " ON CONFLICT (loan_number) DO UPDATE SET partner_id = excluded.partner_id, \
                     customer = excluded.customer, status = excluded.status, \
                     carrier = excluded.carrier, tracking_number = excluded.tracking_number, \
                     shipped_on = excluded.shipped_on, eta = excluded.eta, \
                     delivered_on = excluded.delivered_on, items = excluded.items, \
                     rma_number = excluded.rma_number, updated_at = excluded.updated_at",
                );
                qb.build().execute(&mut *tx).await?;
            }
            let mut queued = Vec::new();
            if let Some(notifier) = &notifier {
                for (partner_id, loans) in
                    announced_changes(shipments, &before, notifier.statuses())
                {
                    let row: Option<PartnerRow> = sqlx::query_as(
                        "SELECT partner_id, name, admin_emails, language, \
                         notify_shipment_updates FROM partners WHERE partner_id = $1",
                    )
                    .bind(partner_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(row) = row.filter(|r| r.notify_shipment_updates) else {
                        continue;
                    };
                    let partner = row.into_partner(Vec::new())?;
                    let mut fresh: Vec<NoticeLoan> = Vec::new();
                    for (s, previous) in loans {
                        // The unique key decides: a (loan, status) told once is never told again,
                        // whoever imports it again, on whichever instance.
                        let first = sqlx::query(
                            "INSERT INTO shipment_notices (loan_number, status, partner_id, \
                             created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                        )
                        .bind(s.loan_number.as_str())
                        .bind(s.status.code())
                        .bind(partner_id)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                            == 1;
                        if !first {
                            continue;
                        }
                        let thread: Vec<String> = sqlx::query_scalar(
                            "SELECT o.message_id FROM shipment_notices n \
                             JOIN outbox o ON o.id = n.outbox_id \
                             WHERE n.loan_number = $1 ORDER BY o.created_at, o.id",
                        )
                        .bind(s.loan_number.as_str())
                        .fetch_all(&mut *tx)
                        .await?;
                        fresh.push(NoticeLoan {
                            shipment: s.clone(),
                            previous,
                            thread,
                        });
                    }
                    if fresh.is_empty() {
                        continue;
                    }
                    let mail = notifier.compose(&partner, &fresh, now_ms).map_err(|e| {
                        StoreError::Conflict(format!(
                            "shipment notice to partner {partner_id} cannot be composed, \
                             nothing was imported: {e}"
                        ))
                    })?;
                    let id: i64 = insert_outbox::<Db>(&mut tx, &mail, None, now_ms).await?;
                    let numbers: Vec<String> = fresh
                        .iter()
                        .map(|l| l.shipment.loan_number.to_string())
                        .collect();
                    sqlx::query("UPDATE outbox SET loan_numbers = $1 WHERE id = $2")
                        .bind(to_json(&numbers))
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    for l in &fresh {
                        sqlx::query(
                            "UPDATE shipment_notices SET outbox_id = $1 \
                             WHERE loan_number = $2 AND status = $3",
                        )
                        .bind(id)
                        .bind(l.shipment.loan_number.as_str())
                        .bind(l.shipment.status.code())
                        .execute(&mut *tx)
                        .await?;
                    }
                    queued.push(id);
                }
            }
            write_extras(
                &mut tx,
                extras,
                shipments.len(),
                now_ms,
                "shipment",
                shipments.iter().map(|s| s.loan_number.to_string()),
                &existing,
            )
            .await?;
            tx.commit().await?;
            Ok(Upserted {
                existing,
                notices: queued,
            })
        })
    }

    /// The partner's active loans (every status but `returned`), most recent first (not yet
    /// shipped, then by shipping date, latest first), at most `limit`; and how many active loans it has in all.
    pub async fn active_loans(
        &self,
        partner_id: &str,
        limit: usize,
    ) -> Result<(Vec<Shipment>, i64), StoreError> {
        let (rows, total): (Vec<ShipmentRow>, i64) = dispatch!(self, |pool| {
            let rows = sqlx::query_as(
                "SELECT loan_number, partner_id, customer, status, carrier, tracking_number, \
                 shipped_on, eta, delivered_on, items, rma_number FROM shipments \
                 WHERE partner_id = $1 AND status <> 'returned' \
                 ORDER BY CASE WHEN shipped_on IS NULL THEN 0 ELSE 1 END, shipped_on DESC, \
                 loan_number DESC \
                 LIMIT $2",
            )
            .bind(partner_id)
            .bind(limit as i64)
            .fetch_all(pool)
            .await?;
            let total = sqlx::query_scalar(
                "SELECT COUNT(*) FROM shipments WHERE partner_id = $1 AND status <> 'returned'",
            )
            .bind(partner_id)
            .fetch_one(pool)
            .await?;
            (rows, total)
        });
        let rows = rows
            .into_iter()
            .map(ShipmentRow::into_shipment)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rows, total))
    }

    /// The shipments that exist for these numbers, of any partner: the caller decides what the
    /// sender may see.
    pub async fn shipments_by_loan(
        &self,
        numbers: &[LoanNumber],
    ) -> Result<Vec<Shipment>, StoreError> {
        if numbers.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ShipmentRow> = dispatch!(self, |pool| {
            let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                "SELECT loan_number, partner_id, customer, status, carrier, tracking_number, \
                 shipped_on, eta, delivered_on, items, rma_number FROM shipments \
                 WHERE loan_number IN (",
            );
            let wanted: Vec<String> = numbers.iter().map(|n| n.as_str().to_string()).collect();
            super::push_in_list(&mut qb, &wanted);
            qb.build_query_as().fetch_all(pool).await?
        });
        rows.into_iter().map(ShipmentRow::into_shipment).collect()
    }

    /// Rows in `shipments` (tests check that a refused import wrote nothing).
    pub async fn shipment_count(&self) -> Result<i64, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM shipments")
                .fetch_one(pool)
                .await?
        }))
    }
}
