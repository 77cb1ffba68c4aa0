use sqlx::QueryBuilder;

use super::imports::{existing_ids, write_extras, UpsertExtras, Upserted};
use super::{
    begin_write, dispatch, from_json, parse_date, parse_field, to_json, Store, StoreError,
    INSERT_CHUNK,
};
use crate::domain::{Service, Trial};

#[derive(sqlx::FromRow)]
pub(crate) struct TrialRow {
    trial_id: String,
    partner_id: String,
    customer: String,
    customer_admin_emails: String,
    services: String,
    starts_on: String,
    expires_on: String,
    extended: bool,
    converted: bool,
    timezone: String,
    language: String,
}

impl TrialRow {
    pub(crate) fn into_trial(self) -> Result<Trial, StoreError> {
        const T: &str = "trials";
        let services = from_json(T, &self.services)?
            .iter()
            .map(|s| parse_field::<Service>(T, s))
            .collect::<Result<Vec<_>, _>>()?;
        let date = |s: &str| {
            parse_date(T, Some(s))?.ok_or_else(|| StoreError::Corrupt {
                table: T,
                message: "empty date".into(),
            })
        };
        Ok(Trial {
            starts_on: date(&self.starts_on)?,
            expires_on: date(&self.expires_on)?,
            trial_id: self.trial_id,
            partner_id: self.partner_id,
            customer: self.customer,
            customer_admin_emails: from_json(T, &self.customer_admin_emails)?,
            services,
            extended: self.extended,
            converted: self.converted,
            timezone: self.timezone,
            language: parse_field(T, &self.language)?,
        })
    }
}

impl Store {
    /// Inserts or replaces trials (by trial id) in one transaction. `planned_since` (when the
    /// current expiry date became known, for missed-reminder accounting) is set on insert and
    /// whenever the expiry date changes.
    pub async fn upsert_trials(&self, trials: &[Trial], now_ms: i64) -> Result<(), StoreError> {
        self.upsert_trials_with(trials, now_ms, &UpsertExtras::default())
            .await
            .map(|_| ())
    }

    /// [`Store::upsert_trials`] that also writes `extras` in its transaction and says which
    /// trials existed before: the one write path of trial data.
    pub async fn upsert_trials_with(
        &self,
        trials: &[Trial],
        now_ms: i64,
        extras: &UpsertExtras,
    ) -> Result<Upserted, StoreError> {
        let existing = dispatch!(self, |pool| {
            let mut tx = begin_write(pool).await?;
            let existing = existing_ids(
                &mut tx,
                "trials",
                "trial_id",
                trials.iter().map(|t| t.trial_id.clone()),
            )
            .await?;
            for chunk in trials.chunks(INSERT_CHUNK) {
                let mut qb: QueryBuilder<Db> = QueryBuilder::new(
                    "INSERT INTO trials (trial_id, partner_id, customer, customer_admin_emails, \
                     services, starts_on, expires_on, extended, converted, timezone, language, \
                     updated_at, planned_since) ",
                );
                qb.push_values(chunk, |mut b, t| {
                    let services: Vec<String> =
                        t.services.iter().map(|s| s.code().to_string()).collect();
                    b.push_bind(t.trial_id.clone())
                        .push_bind(t.partner_id.clone())
                        .push_bind(t.customer.clone())
                        .push_bind(to_json(&t.customer_admin_emails))
                        .push_bind(to_json(&services))
                        .push_bind(t.starts_on.to_string())
                        .push_bind(t.expires_on.to_string())
                        .push_bind(t.extended)
                        .push_bind(t.converted)
                        .push_bind(t.timezone.clone())
                        .push_bind(t.language.code())
                        .push_bind(now_ms)
                        .push_bind(now_ms);
                });
                qb.push(
                    " ON CONFLICT (trial_id) DO UPDATE SET partner_id = excluded.partner_id, \
                     customer = excluded.customer, \
                     customer_admin_emails = excluded.customer_admin_emails, \
                     services = excluded.services, starts_on = excluded.starts_on, \
                     expires_on = excluded.expires_on, extended = excluded.extended, \
                     converted = excluded.converted, timezone = excluded.timezone, \
                     language = excluded.language, updated_at = excluded.updated_at, \
                     planned_since = CASE WHEN trials.expires_on = excluded.expires_on \
                     THEN trials.planned_since ELSE excluded.planned_since END",
                );
                qb.build().execute(&mut *tx).await?;
            }
            write_extras(
                &mut tx,
                extras,
                trials.len(),
                now_ms,
                "trial",
                trials.iter().map(|t| t.trial_id.clone()),
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

    pub async fn trial(&self, trial_id: &str) -> Result<Option<Trial>, StoreError> {
        let row: Option<TrialRow> = dispatch!(self, |pool| {
            sqlx::query_as(
                "SELECT trial_id, partner_id, customer, customer_admin_emails, services, \
                 starts_on, expires_on, extended, converted, timezone, language \
                 FROM trials WHERE trial_id = $1",
            )
            .bind(trial_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(TrialRow::into_trial).transpose()
    }

    /// Moves a trial's expiry date from `old` to `new` and marks it extended, only if it is
    /// still unextended, unconverted and at `old` (so two concurrent extensions cannot both
    /// win). Returns whether it changed.
    pub async fn extend_trial(
        &self,
        trial_id: &str,
        old: jiff::civil::Date,
        new: jiff::civil::Date,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = dispatch!(self, |pool| {
            sqlx::query(
                "UPDATE trials SET expires_on = $1, extended = TRUE, planned_since = $2, \
                 updated_at = $2 WHERE trial_id = $3 AND expires_on = $4 AND NOT extended \
                 AND NOT converted",
            )
            .bind(new.to_string())
            .bind(now_ms)
            .bind(trial_id)
            .bind(old.to_string())
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Rows in `trials` (tests check that a refused import wrote nothing).
    pub async fn trial_count(&self) -> Result<i64, StoreError> {
        Ok(dispatch!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM trials")
                .fetch_one(pool)
                .await?
        }))
    }
}
