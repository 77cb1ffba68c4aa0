//! The documented endpoints, per resource: shipments, trials and partners. Each is a thin
//! `utoipa`-annotated handler over the shared PUT/POST/GET of [`super::records`]; what differs
//! per resource is how its stored records are read back ([`Resource`]).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::Extension;

use super::model::{
    ApiErrorBody, PartnerFields, PartnerRecord, ShipmentFields, ShipmentRecord, TrialFields,
    TrialRecord, ValidationErrors,
};
use super::records::{get_resource, post_resource, put_resource, Resource};
use super::{ApiError, ApiResult, ApiState, Caller};

impl Resource for ShipmentFields {
    type Stored = ShipmentRecord;
    const NOUN: &'static str = "shipment";

    /// The stored shipments for these loan numbers, in order.
    async fn stored(state: &ApiState, ids: &[String]) -> Result<Vec<ShipmentRecord>, ApiError> {
        let numbers: Vec<_> = ids
            .iter()
            .map(|n| crate::domain::LoanNumber::from_normalized(n.clone()))
            .collect();
        let found = state.store.shipments_by_loan(&numbers).await?;
        Ok(numbers
            .iter()
            .filter_map(|n| found.iter().find(|s| &s.loan_number == n))
            .map(ShipmentRecord::from)
            .collect())
    }
}

impl Resource for TrialFields {
    type Stored = TrialRecord;
    const NOUN: &'static str = "trial";

    async fn stored(state: &ApiState, ids: &[String]) -> Result<Vec<TrialRecord>, ApiError> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(t) = state.store.trial(id).await? {
                out.push(TrialRecord::from(&t));
            }
        }
        Ok(out)
    }
}

impl Resource for PartnerFields {
    type Stored = PartnerRecord;
    const NOUN: &'static str = "partner";

    async fn stored(state: &ApiState, ids: &[String]) -> Result<Vec<PartnerRecord>, ApiError> {
        let mut out = Vec::new();
        for id in ids {
            if let Some(p) = state.store.partner(id).await? {
                out.push(PartnerRecord::from(&p));
            }
        }
        Ok(out)
    }
}

/// Store a shipment.
#[utoipa::path(
    put,
    path = "/api/v1/shipments/{loan_number}",
    tag = "shipments",
    params(("loan_number" = String, Path, description = "Loan number, as on the shipping notice")),
    request_body = ShipmentFields,
    responses(
        (status = 201, description = "Created", body = ShipmentRecord),
        (status = 200, description = "Updated", body = ShipmentRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid record", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn put_shipment(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(loan_number): Path<String>,
    body: Body,
) -> ApiResult {
    put_resource::<ShipmentFields>(&state, &caller, loan_number, body).await
}

/// Store several shipments, all or nothing.
#[utoipa::path(
    post,
    path = "/api/v1/shipments",
    tag = "shipments",
    request_body = Vec<ShipmentRecord>,
    responses(
        (status = 200, description = "All stored", body = Vec<ShipmentRecord>),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid records; nothing was stored", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn post_shipments(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> ApiResult {
    post_resource::<ShipmentFields>(&state, &caller, body).await
}

/// Read a shipment.
#[utoipa::path(
    get,
    path = "/api/v1/shipments/{loan_number}",
    tag = "shipments",
    params(("loan_number" = String, Path, description = "Loan number")),
    responses(
        (status = 200, description = "The shipment", body = ShipmentRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 404, description = "No such loan", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_shipment(
    State(state): State<Arc<ApiState>>,
    Path(loan_number): Path<String>,
) -> ApiResult {
    let number = state
        .loans
        .parse_one(&loan_number)
        .ok_or_else(|| ApiError::NotFound(format!("no shipment {loan_number:?}")))?;
    get_resource::<ShipmentFields>(&state, number.to_string(), &loan_number).await
}

/// Store a trial.
#[utoipa::path(
    put,
    path = "/api/v1/trials/{trial_id}",
    tag = "trials",
    params(("trial_id" = String, Path, description = "Trial id")),
    request_body = TrialFields,
    responses(
        (status = 201, description = "Created", body = TrialRecord),
        (status = 200, description = "Updated", body = TrialRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid record", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn put_trial(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(trial_id): Path<String>,
    body: Body,
) -> ApiResult {
    put_resource::<TrialFields>(&state, &caller, trial_id, body).await
}

/// Store several trials, all or nothing.
#[utoipa::path(
    post,
    path = "/api/v1/trials",
    tag = "trials",
    request_body = Vec<TrialRecord>,
    responses(
        (status = 200, description = "All stored", body = Vec<TrialRecord>),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid records; nothing was stored", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn post_trials(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> ApiResult {
    post_resource::<TrialFields>(&state, &caller, body).await
}

/// Read a trial.
#[utoipa::path(
    get,
    path = "/api/v1/trials/{trial_id}",
    tag = "trials",
    params(("trial_id" = String, Path, description = "Trial id")),
    responses(
        (status = 200, description = "The trial", body = TrialRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 404, description = "No such trial", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_trial(
    State(state): State<Arc<ApiState>>,
    Path(trial_id): Path<String>,
) -> ApiResult {
    get_resource::<TrialFields>(&state, trial_id.clone(), &trial_id).await
}

/// Store a partner.
#[utoipa::path(
    put,
    path = "/api/v1/partners/{partner_id}",
    tag = "partners",
    params(("partner_id" = String, Path, description = "Partner id")),
    request_body = PartnerFields,
    responses(
        (status = 201, description = "Created", body = PartnerRecord),
        (status = 200, description = "Updated", body = PartnerRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid record", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn put_partner(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    Path(partner_id): Path<String>,
    body: Body,
) -> ApiResult {
    put_resource::<PartnerFields>(&state, &caller, partner_id, body).await
}

/// Store several partners, all or nothing.
#[utoipa::path(
    post,
    path = "/api/v1/partners",
    tag = "partners",
    request_body = Vec<PartnerRecord>,
    responses(
        (status = 200, description = "All stored", body = Vec<PartnerRecord>),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 403, description = "Read-only token", body = ApiErrorBody),
        (status = 413, description = "Body too large", body = ApiErrorBody),
        (status = 422, description = "Invalid records; nothing was stored", body = ValidationErrors),
    ),
    security(("bearer" = []))
)]
pub async fn post_partners(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> ApiResult {
    post_resource::<PartnerFields>(&state, &caller, body).await
}

/// Read a partner.
#[utoipa::path(
    get,
    path = "/api/v1/partners/{partner_id}",
    tag = "partners",
    params(("partner_id" = String, Path, description = "Partner id")),
    responses(
        (status = 200, description = "The partner", body = PartnerRecord),
        (status = 401, description = "Missing, unknown or revoked token", body = ApiErrorBody),
        (status = 404, description = "No such partner", body = ApiErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_partner(
    State(state): State<Arc<ApiState>>,
    Path(partner_id): Path<String>,
) -> ApiResult {
    get_resource::<PartnerFields>(&state, partner_id.clone(), &partner_id).await
}
