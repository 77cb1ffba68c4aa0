//! Lease rows: one holder per named resource (the IMAP session of a mailbox), taken and
//! renewed with one conditional upsert, measured on the database's clock.
//!
//! The statements are the same on both backends except for the expression that reads the
//! database's clock, which SQL does not spell alike: `{now_ms}`, spelt by the store's
//! [`super::Dialect`].

use super::{dispatch, Store, StoreError};

/// A lease row as stored, with the database's clock at the moment it was read.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LeaseRow {
    pub name: String,
    /// Human-readable name of the holding process (`host:pid`).
    pub holder: String,
    /// Random per holding process; decides ownership.
    pub token: String,
    /// The holder's process on its machine (see [`crate::lease`]), when known.
    pub process: Option<String>,
    pub acquired_at: i64,
    pub renewed_at: i64,
    pub expires_at: i64,
    /// The database's clock when the row was read or written.
    pub db_now: i64,
}

impl LeaseRow {
    /// Whether the lease has run out (by the database's clock at `db_now`).
    pub fn expired(&self) -> bool {
        self.expires_at <= self.db_now
    }
}

/// Who asks for a lease.
#[derive(Debug, Clone)]
pub struct LeaseClaim<'a> {
    pub name: &'a str,
    pub holder: &'a str,
    pub token: &'a str,
    pub process: Option<&'a str>,
    pub ttl_ms: i64,
}

// Takes the lease when it is free or expired, renews it when the token is ours; otherwise
// changes nothing and returns no row. `acquired_at` survives renewals.
const ACQUIRE: &str = "INSERT INTO leases (name, holder, token, process, acquired_at, \
     renewed_at, expires_at) VALUES ($1, $2, $3, $4, {now_ms}, {now_ms}, {now_ms} + $5) \
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
     token = excluded.token, process = excluded.process, \
     acquired_at = CASE WHEN leases.token = excluded.token THEN leases.acquired_at \
     ELSE excluded.acquired_at END, \
     renewed_at = excluded.renewed_at, expires_at = excluded.expires_at \
     WHERE leases.token = excluded.token OR leases.expires_at <= excluded.renewed_at \
     RETURNING name, holder, token, process, acquired_at, renewed_at, expires_at, \
     {now_ms} AS db_now";

// Takes the lease from one given holder (whose process is known to be gone), whatever its
// expiry: a compare-and-swap on that holder's token.
const TAKE_OVER: &str = "UPDATE leases SET holder = $2, token = $3, process = $4, \
     acquired_at = {now_ms}, renewed_at = {now_ms}, expires_at = {now_ms} + $5 \
     WHERE name = $1 AND token = $6 \
     RETURNING name, holder, token, process, acquired_at, renewed_at, expires_at, \
     {now_ms} AS db_now";

const GET: &str = "SELECT name, holder, token, process, acquired_at, renewed_at, expires_at, \
     {now_ms} AS db_now FROM leases WHERE name = $1";

impl Store {
    /// Takes or renews the lease `claim.name` for `claim.ttl_ms` from now (database clock).
    /// `Some(row)` when it is ours now; `None` when someone else holds an unexpired lease.
    pub async fn lease_acquire(
        &self,
        claim: &LeaseClaim<'_>,
    ) -> Result<Option<LeaseRow>, StoreError> {
        self.lease_claim(ACQUIRE, claim, None).await
    }

    /// Takes the lease from the holder with `from_token` (a holder known to be dead), even
    /// before it expires. `None` when that holder no longer has it.
    pub async fn lease_take_over(
        &self,
        claim: &LeaseClaim<'_>,
        from_token: &str,
    ) -> Result<Option<LeaseRow>, StoreError> {
        self.lease_claim(TAKE_OVER, claim, Some(from_token)).await
    }

    /// Runs the claim statement `template` (`ACQUIRE`, or `TAKE_OVER` with the holder's
    /// `from_token` as `$6`): `claim` is bound as `$1`..`$5`.
    async fn lease_claim(
        &self,
        template: &'static str,
        claim: &LeaseClaim<'_>,
        from_token: Option<&str>,
    ) -> Result<Option<LeaseRow>, StoreError> {
        let sql = self.dialect().sql(template);
        Ok(dispatch!(self, |pool| {
            let mut query = sqlx::query_as(sql)
                .bind(claim.name)
                .bind(claim.holder)
                .bind(claim.token)
                .bind(claim.process)
                .bind(claim.ttl_ms);
            if let Some(token) = from_token {
                query = query.bind(token);
            }
            query.fetch_optional(pool).await?
        }))
    }

    /// The lease row, if any (expired ones included: `LeaseRow::expired`).
    pub async fn lease(&self, name: &str) -> Result<Option<LeaseRow>, StoreError> {
        let sql = self.dialect().sql(GET);
        Ok(dispatch!(self, |pool| {
            sqlx::query_as(sql).bind(name).fetch_optional(pool).await?
        }))
    }

    /// Gives the lease up, if `token` still holds it, so another instance takes it at once.
    pub async fn lease_release(&self, name: &str, token: &str) -> Result<bool, StoreError> {
        let done = dispatch!(self, |pool| {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND token = $2")
                .bind(name)
                .bind(token)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(done == 1)
    }
}
