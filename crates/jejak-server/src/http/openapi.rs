//! The OpenAPI 3 document of the API, generated from the handlers' annotations and the
//! types' derives (the domain's wire types through its `openapi` feature), so that it
//! cannot drift from the code.

use jejak_domain::{BatchAck, KeyRegistrationAnswer, KeyRegistrationRequest, Problem, WireBatch};
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{HttpMethod, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Ref, Required};

use super::{Health, TimeAnswer};
use crate::report::{ParamKind, ReportKind};
use crate::store::{DeviceState, EpochState};

/// The `Content-Encoding`s a batch may be sent with (any other is a 415).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[expect(
    dead_code,
    reason = "only its schema is used, to document the accepted values"
)]
pub(crate) enum EncodingName {
    Zstd,
    Gzip,
    Identity,
}

/// The formats a report is served in (any other is a 400 `invalid-parameter`).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[expect(
    dead_code,
    reason = "only its schema is used, to document the accepted values"
)]
pub(crate) enum FormatName {
    Json,
    Csv,
    Xlsx,
    Html,
}

/// The dialects of a CSV report.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[expect(
    dead_code,
    reason = "only its schema is used, to document the accepted values"
)]
pub(crate) enum CsvDialectName {
    Standard,
    Id,
}

/// The languages of a report.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[expect(
    dead_code,
    reason = "only its schema is used, to document the accepted values"
)]
pub(crate) enum LangName {
    Id,
    En,
}

/// An XLSX workbook's bytes, as the report endpoints serve them.
#[derive(Debug, utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[expect(
    dead_code,
    reason = "only its schema is used, to document the binary answer"
)]
pub(crate) struct Workbook(Vec<u8>);

/// Declares the bearer schemes the paths refer to, and says of every operation that
/// names none that it needs no token (`security: []`: the document itself, the time,
/// the health check and the metrics), so that a reader never has to guess.
struct BearerTokens;

impl Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
            {
                operation.security.get_or_insert_with(Vec::new);
            }
        }
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
            is answered only after its transaction committed, and sending it again changes nothing.\n\n\
            Problem types, stable for clients to branch on: `malformed-body`, `malformed-json`, \
            `invalid-parameter` (400); `unauthorized`, `token-revoked` (401); `forbidden` (403); \
            `not-found`, `unknown-library` (404); `method-not-allowed` (405); `body-timeout` (408: \
            the body did not arrive in time, send it again); `seq-gap` (409, with `expected_seq`); \
            `payload-too-large`, `too-many-records` (413); `unsupported-media-type` (415); `too-many-epochs` (429, with `Retry-After`); \
            `invalid-batch` (422: the detail names the field, e.g. `sessions.duration_s[3]`); \
            `store-unavailable` (503: the server is up but its store cannot write or read just now) \
            and `too-many-connections` (503: sent before the request is read). Every 503, \
            `/healthz`'s included, carries `Retry-After: 10`; a client waits that long before \
            trying again. A 503 from `/healthz` whose body names `service: jejak-server` means \
            the server is reachable and its store is not: it is not a missing link."
    ),
    paths(
        super::post_batch,
        super::device_me,
        super::register_key,
        super::server_time,
        super::healthz,
        super::metrics,
        super::openapi_json,
        super::reports::shared_report_operation
    ),
    components(schemas(
        WireBatch,
        BatchAck,
        Problem,
        DeviceState,
        super::DeviceMe,
        jejak_domain::RecordKind,
        EpochState,
        TimeAnswer,
        Health,
        KeyRegistrationRequest,
        KeyRegistrationAnswer
    )),
    servers((url = "/", description = "The server this document came from (its own address, or the path a reverse proxy gives it)")),
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
    let mut document = ApiDoc::openapi();
    add_reports(&mut document);
    document
}

/// The never-routed path of [`super::reports::shared_report_operation`].
const SHARED_REPORT_PATH: &str = "/api/v1/reports/_shared";

/// An operation per report of the registry ([`ReportKind::ALL`]), made from the shared
/// one: the report's summary, its own parameters first, and a 404 `unknown-library`
/// for a report that names a library. The shared path itself leaves the document.
fn add_reports(document: &mut utoipa::openapi::OpenApi) {
    let Some(shared) = document
        .paths
        .get_path_item(SHARED_REPORT_PATH)
        .and_then(|item| item.get.clone())
    else {
        return;
    };
    document
        .paths
        .paths
        .retain(|path, _| path != SHARED_REPORT_PATH);
    for kind in ReportKind::ALL {
        let mut operation = shared.clone();
        operation.summary = Some(kind.summary().to_string());
        operation.operation_id = Some(format!("{}_report", kind.name()));
        let own = kind.params().iter().map(|param| {
            ParameterBuilder::new()
                .name(param.name)
                .parameter_in(ParameterIn::Query)
                .description(Some(param.description))
                .required(Required::True)
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .example(Some(serde_json::Value::from(param.example)))
                .build()
        });
        operation.parameters = Some(
            own.chain(operation.parameters.take().unwrap_or_default())
                .collect(),
        );
        if kind
            .params()
            .iter()
            .any(|param| param.kind == ParamKind::Library)
        {
            operation.responses.responses.insert(
                "404".to_string(),
                ResponseBuilder::new()
                    .description("`unknown-library`")
                    .content(
                        "application/problem+json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build()
                    .into(),
            );
        }
        document.paths.add_path_operation(
            super::reports::report_path(kind),
            vec![HttpMethod::Get],
            operation,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of the enum schema of a parameter of a path, by its name.
    fn parameter_enum(document: &serde_json::Value, path: &str, name: &str) -> Vec<String> {
        let operations = &document["paths"][path];
        let operation = operations
            .get("get")
            .or_else(|| operations.get("post"))
            .unwrap_or(&serde_json::Value::Null);
        let parameter = operation["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("{path} has no parameter {name}"));
        let schema = &parameter["schema"];
        // `Option<…>` of an inline enum may come as `oneOf: [null, {enum}]`.
        let values = schema["enum"].as_array().cloned().or_else(|| {
            schema["oneOf"]
                .as_array()
                .and_then(|alts| alts.iter().find_map(|a| a["enum"].as_array().cloned()))
        });
        values
            .unwrap_or_else(|| panic!("{name} of {path} is no enum: {schema}"))
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn the_document_declares_the_accepted_encodings_and_formats_as_enums() {
        let document = serde_json::to_value(openapi_document()).unwrap_or_default();
        assert_eq!(
            parameter_enum(&document, "/api/v1/batches", "Content-Encoding"),
            ["zstd", "gzip", "identity"]
        );
        for report in ["village", "district", "quarter", "year", "ops"] {
            let path = format!("/api/v1/reports/{report}");
            assert_eq!(
                parameter_enum(&document, &path, "format"),
                ["json", "csv", "xlsx", "html"]
            );
            assert_eq!(parameter_enum(&document, &path, "lang"), ["id", "en"]);
            assert_eq!(
                parameter_enum(&document, &path, "csv_dialect"),
                ["standard", "id"]
            );
            // The JSON answer has the report model's schema; XLSX is binary.
            let content = &document["paths"][path.as_str()]["get"]["responses"]["200"]["content"];
            assert_eq!(
                content["application/json"]["schema"]["$ref"],
                "#/components/schemas/Report"
            );
            let xlsx =
                &content["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"];
            assert_eq!(xlsx["schema"]["$ref"], "#/components/schemas/Workbook");
        }
        assert_eq!(
            document["components"]["schemas"]["Workbook"]["format"],
            "binary"
        );
        assert!(document["components"]["schemas"]["Report"]["properties"]["sections"].is_object());
        // The village report's signature block (its library's details) is in the model.
        assert!(document["components"]["schemas"]["Report"]["properties"]["signature"].is_object());
        assert!(document["components"]["schemas"]["Signatory"]["properties"]["nip"].is_object());
        assert!(
            !document["servers"]
                .as_array()
                .unwrap_or(&Vec::new())
                .is_empty()
        );
        // Every operation says who may call it (`[]`: anyone) and what a refusal is.
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let security = operation["security"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{method} {path} does not say who may call it"));
                let public = [
                    "/api/v1/time",
                    "/healthz",
                    "/metrics",
                    "/api/v1/openapi.json",
                ]
                .contains(&path.as_str());
                assert_eq!(security.is_empty(), public, "{method} {path}: {security:?}");
                let responses = operation["responses"].as_object().unwrap();
                assert!(
                    responses.keys().any(|status| status.starts_with('4')),
                    "{method} {path} declares no 4XX answer"
                );
            }
        }
        let description = document["info"]["description"].as_str().unwrap_or_default();
        for code in [
            "body-timeout",
            "too-many-connections",
            "store-unavailable",
            "Retry-After",
        ] {
            assert!(description.contains(code), "{code}");
        }
    }
}
