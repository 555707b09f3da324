//! The OpenAPI 3 document of the API, generated from the handlers' annotations and the
//! types' derives (the domain's wire types through its `openapi` feature), so that it
//! cannot drift from the code.

use jejak_domain::{BatchAck, KeyRegistrationAnswer, KeyRegistrationRequest, Problem, WireBatch};
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

use super::{Health, TimeAnswer};
use crate::store::{DeviceState, EpochState};

/// Declares the bearer schemes the paths refer to.
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut device = Http::new(HttpAuthScheme::Bearer);
        device.description = Some(
            "A device token (`jejak_dev_…`) from `jejak server add-device`: it writes its own \
             library's and PC's batches only."
                .to_string(),
        );
        components.add_security_scheme("device_token", SecurityScheme::Http(device));
        let mut staff = Http::new(HttpAuthScheme::Bearer);
        staff.description = Some(
            "A read-only staff token (`jejak_staff_…`) from `jejak server add-staff`.".to_string(),
        );
        components.add_security_scheme("staff_token", SecurityScheme::Http(staff));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Jejak district server",
        description = "The API village library PCs sync their usage logs to. Every error is an \
            RFC 9457 problem document (`application/problem+json`) with a stable `type`; a batch \
            is answered only after its transaction committed, and sending it again changes nothing."
    ),
    paths(
        super::post_batch,
        super::device_me,
        super::register_key,
        super::server_time,
        super::healthz,
        super::metrics,
        super::openapi_json,
        super::reports::village_report,
        super::reports::district_report,
        super::reports::quarter_report,
        super::reports::year_report,
        super::reports::ops_report
    ),
    components(schemas(
        WireBatch,
        BatchAck,
        Problem,
        DeviceState,
        EpochState,
        TimeAnswer,
        Health,
        KeyRegistrationRequest,
        KeyRegistrationAnswer
    )),
    modifiers(&BearerTokens),
    tags(
        (name = "sync", description = "What the PCs use"),
        (name = "operations", description = "Health, metrics and this document"),
        (name = "reports", description = "District staff's reports (staff token): JSON, CSV, XLSX or printable HTML")
    )
)]
struct ApiDoc;

/// The OpenAPI document as served at `GET /api/v1/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
