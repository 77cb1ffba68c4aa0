//! The OpenAPI 3.1 document of `/api/v1`, generated (utoipa) from the handlers' annotations
//! and the record types the API reads and writes.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::labels::LabelStored;
use super::model::{
    ApiErrorBody, FieldError, PartnerFields, PartnerRecord, ShipmentFields, ShipmentRecord,
    TrialFields, TrialRecord, ValidationErrors,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "trialdesk API",
        description = "Partners, shipments (demo loans) and trials from the systems of record. \
                       Records are the CSV rows of `trialdesk import` as JSON, checked by the \
                       same rules.",
    ),
    paths(
        super::handlers::put_shipment,
        super::handlers::get_shipment,
        super::handlers::post_shipments,
        super::labels::put_rma_label,
        super::labels::get_rma_label,
        super::handlers::put_trial,
        super::handlers::get_trial,
        super::handlers::post_trials,
        super::handlers::put_partner,
        super::handlers::get_partner,
        super::handlers::post_partners,
    ),
    components(schemas(
        ShipmentFields,
        ShipmentRecord,
        TrialFields,
        TrialRecord,
        PartnerFields,
        PartnerRecord,
        FieldError,
        ValidationErrors,
        ApiErrorBody,
        LabelStored,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as JSON.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot render the OpenAPI document: {e}\"}}"))
}

pub async fn serve() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        document(),
    )
        .into_response()
}
