use sqlx::QueryBuilder;

use super::imports::{existing_ids, write_extras, UpsertExtras, Upserted};
use super::{
    dispatch, from_json, parse_date, parse_field, to_json, BeginWrite, Store, StoreError,
    INSERT_CHUNK,
};
use crate::domain::{LoanNumber, Shipment};

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
    /// Inserts or replaces shipments (by loan number) in one transaction.
    pub async fn upsert_shipments(
        &self,
        shipments: &[Shipment],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.upsert_shipments_with(shipments, now_ms, &UpsertExtras::default())
            .await
            .map(|_| ())
    }

    /// THE write path of shipment data (CSV import, web upload, API, drop folder): inserts or
    /// replaces shipments (by loan number) and writes `extras` in one transaction; says which
    /// loans existed before.
    pub async fn upsert_shipments_with(
        &self,
        shipments: &[Shipment],
        now_ms: i64,
        extras: &UpsertExtras,
    ) -> Result<Upserted, StoreError> {
        let existing = dispatch!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let existing = existing_ids!(
                tx,
                "shipments",
                "loan_number",
                shipments.iter().map(|s| s.loan_number.as_str().to_string())
            );
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
            write_extras!(
                tx,
                extras,
                shipments.len(),
                now_ms,
                "shipment",
                shipments.iter().map(|s| s.loan_number.to_string()),
                existing
            );
            tx.commit().await?;
            existing
        });
        Ok(Upserted { existing })
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
            let mut sep = qb.separated(", ");
            for n in numbers {
                sep.push_bind(n.as_str().to_string());
            }
            qb.push(")");
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
