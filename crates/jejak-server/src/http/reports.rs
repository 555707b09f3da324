//! The report API: the village monthly report, the district matrix, the quarterly and
//! annual comparisons and the operations view for district staff, in JSON, CSV, XLSX or
//! printable HTML.
//!
//! Every report is built by [`crate::report::load`], as `jejak report` and the
//! dashboard build theirs, so the three always show the same numbers. Only a staff
//! token (`jejak_staff_…`) may read reports: a device token gets 403 `forbidden`, a
//! missing or unknown one 401 `unauthorized`. Parameters people mistype get a 400
//! `invalid-parameter` problem whose detail says, in Indonesian and English, what to
//! write instead.
//!
//! The dashboard reuses [`report_response`], [`load_error_response`] and
//! [`authenticate_staff`], so that a report downloaded from it is the same file as one
//! fetched from the API.

use std::collections::HashMap;
use std::str::FromStr;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jejak_domain::Lang;

use super::{ApiProblem, AppState, bearer, store_unavailable};
use crate::report::{
    CsvDialect, LoadError, ParamError, ParamKind, RenderOptions, Report, ReportKind, load,
    render_csv_combined, render_html, render_json, render_xlsx, table_csv,
};
use crate::store::{AuthError, Principal};

/// The media type of an XLSX workbook.
pub(crate) const XLSX_MEDIA_TYPE: &str =
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The formats the report API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ReportFormat {
    /// The report model itself (the default).
    #[default]
    Json,
    /// CSV: one table, or every table one after another separated by a blank line.
    Csv,
    /// An XLSX workbook, one sheet per table.
    Xlsx,
    /// A printable A4 HTML page with the letterhead.
    Html,
}

impl ReportFormat {
    /// The format's `Content-Type`.
    pub(crate) fn media_type(self) -> &'static str {
        match self {
            ReportFormat::Json => "application/json",
            ReportFormat::Csv => "text/csv; charset=utf-8",
            ReportFormat::Xlsx => XLSX_MEDIA_TYPE,
            ReportFormat::Html => "text/html; charset=utf-8",
        }
    }

    /// The file name extension, without the dot.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            ReportFormat::Json => "json",
            ReportFormat::Csv => "csv",
            ReportFormat::Xlsx => "xlsx",
            ReportFormat::Html => "html",
        }
    }

    /// Whether a browser should save the answer as a file rather than show it.
    fn is_download(self) -> bool {
        matches!(self, ReportFormat::Csv | ReportFormat::Xlsx)
    }
}

/// The error for a format name the API does not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "format '{0}' tidak dikenal; pilihan: json, csv, xlsx, html / unknown format '{0}'; choose json, csv, xlsx or html"
)]
pub(crate) struct UnknownFormat(pub(crate) String);

impl FromStr for ReportFormat {
    type Err = UnknownFormat;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(ReportFormat::Json),
            "csv" => Ok(ReportFormat::Csv),
            "xlsx" => Ok(ReportFormat::Xlsx),
            "html" => Ok(ReportFormat::Html),
            _ => Err(UnknownFormat(raw.to_string())),
        }
    }
}

/// A 400 `invalid-parameter` problem; `detail` says what to write instead.
pub(crate) fn invalid_parameter(detail: impl Into<String>) -> ApiProblem {
    ApiProblem::new(
        StatusCode::BAD_REQUEST,
        "invalid-parameter",
        "Invalid parameter",
        detail,
    )
}

/// The answer for a report that could not be loaded: 404 `unknown-library` for a
/// library the server does not know, 503 `store-unavailable` when the store failed.
pub(crate) fn load_error_response(error: &LoadError) -> Response {
    match error {
        LoadError::UnknownLibrary(code) => ApiProblem::new(
            StatusCode::NOT_FOUND,
            "unknown-library",
            "Unknown library",
            format!(
                "perpustakaan '{code}' tidak terdaftar / library '{code}' is not registered on this server"
            ),
        )
        .into_response(),
        LoadError::Store(e) => store_unavailable(e).into_response(),
    }
}

/// Authenticates a request as district staff and returns the token's name: a device
/// token is refused with 403 `forbidden`, a missing or unknown one with 401.
pub(crate) async fn authenticate_staff(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<String, ApiProblem> {
    let Some(token) = bearer(headers) else {
        return Err(ApiProblem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "send a staff token as 'Authorization: Bearer <token>' (from 'jejak server add-staff')",
        ));
    };
    match app.store.authenticate(token).await {
        Ok(Principal::Staff { name }) => Ok(name),
        Ok(Principal::Device { .. }) => Err(ApiProblem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "a device token only sends its PC's batches; reports need a staff token \
             (from 'jejak server add-staff')",
        )),
        Err(AuthError::Revoked) => Err(ApiProblem::new(
            StatusCode::UNAUTHORIZED,
            "token-revoked",
            "Token revoked",
            "this staff token has been revoked; ask for a new one ('jejak server add-staff')",
        )),
        Err(AuthError::Unknown) => Err(ApiProblem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "the token is not known to this server; use a staff token from 'jejak server add-staff'",
        )),
        Err(AuthError::Store(e)) => Err(store_unavailable(&e)),
    }
}

/// A file name safe inside a quoted `Content-Disposition` value: report and table ids
/// are plain already, but a library code ends up in them, so anything else becomes `_`.
fn safe_file_name(stem: &str, extension: &str) -> String {
    let stem: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{stem}.{extension}")
}

/// The answer carrying a rendered report: status 200, its `Content-Type`, and a
/// `Content-Disposition` naming the file (`attachment` for CSV and XLSX, `inline` for
/// JSON and HTML). `table` picks one table of a CSV export; without it every table
/// comes one after another, each under its title and separated by a blank line, as
/// `jejak report --format csv` prints them. An unknown table id, or `table` with another format, is a 400
/// `invalid-parameter` problem.
pub(crate) fn report_response(
    report: &Report,
    format: ReportFormat,
    options: &RenderOptions,
    table: Option<&str>,
) -> Response {
    if let Some(id) = table {
        if format != ReportFormat::Csv {
            return invalid_parameter(
                "table hanya untuk format=csv / table is for format=csv only; \
                 other formats always carry every table",
            )
            .into_response();
        }
        if !report.sections.iter().any(|t| t.id == id) {
            let known: Vec<&str> = report.sections.iter().map(|t| t.id.as_str()).collect();
            return invalid_parameter(format!(
                "tabel '{id}' tidak ada di laporan ini; pilihan / table '{id}' is not in this \
                 report; choose one of: {}",
                known.join(", ")
            ))
            .into_response();
        }
    }
    let rendered: Result<(Vec<u8>, String), String> = match format {
        ReportFormat::Json => render_json(report, options)
            .map(|json| (json.into_bytes(), report.id.clone()))
            .map_err(|e| e.to_string()),
        ReportFormat::Csv => match table {
            Some(id) => {
                let shown = report.for_export(options);
                let text = shown
                    .sections
                    .iter()
                    .find(|t| t.id == id)
                    .map(|t| table_csv(t, options))
                    .unwrap_or_default();
                Ok((text.into_bytes(), format!("{}-{id}", report.id)))
            }
            None => Ok((
                render_csv_combined(report, options).into_bytes(),
                report.id.clone(),
            )),
        },
        ReportFormat::Xlsx => render_xlsx(report, options)
            .map(|bytes| (bytes, report.id.clone()))
            .map_err(|e| e.to_string()),
        ReportFormat::Html => Ok((render_html(report, options).into_bytes(), report.id.clone())),
    };
    let (body, stem) = match rendered {
        Ok(rendered) => rendered,
        Err(e) => {
            tracing::error!(error = %e, report = %report.id, "report rendering failed");
            return ApiProblem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the report could not be rendered in this format",
            )
            .into_response();
        }
    };
    let disposition = format!(
        "{}; filename=\"{}\"",
        if format.is_download() {
            "attachment"
        } else {
            "inline"
        },
        safe_file_name(&stem, format.extension())
    );
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(format.media_type()));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(CONTENT_DISPOSITION, value);
    }
    response
}

/// Why the parameters of a report request were refused: the detail of a 400
/// `invalid-parameter` problem. Kept small so that parsing helpers return it cheaply.
#[derive(Debug)]
struct Invalid(String);

impl From<Invalid> for ApiProblem {
    fn from(invalid: Invalid) -> ApiProblem {
        invalid_parameter(invalid.0)
    }
}

/// The query parameters of a report request, checked.
#[derive(Debug)]
struct ReportParams {
    values: HashMap<String, String>,
    format: ReportFormat,
    options: RenderOptions,
    table: Option<String>,
}

/// Parameters every report endpoint takes.
const COMMON_PARAMS: [&str; 5] = ["format", "lang", "suppress_below", "table", "csv_dialect"];

impl ReportParams {
    /// Reads the query: no parameter twice, none the endpoint does not know (a typo
    /// would otherwise silently give another report), and the common ones valid.
    fn parse(
        query: Result<Query<Vec<(String, String)>>, QueryRejection>,
        own: &[&str],
    ) -> Result<ReportParams, Invalid> {
        let Query(pairs) = query.map_err(|e| {
            Invalid(format!(
                "query tidak terbaca / the query string cannot be read: {e}"
            ))
        })?;
        let mut values = HashMap::new();
        for (name, value) in pairs {
            if !own.contains(&name.as_str()) && !COMMON_PARAMS.contains(&name.as_str()) {
                let mut allowed: Vec<&str> = own.to_vec();
                allowed.extend(COMMON_PARAMS);
                return Err(Invalid(format!(
                    "parameter '{name}' tidak dikenal / unknown parameter '{name}'; \
                     this endpoint takes: {}",
                    allowed.join(", ")
                )));
            }
            if values.insert(name.clone(), value).is_some() {
                return Err(Invalid(format!(
                    "parameter '{name}' ditulis dua kali / parameter '{name}' is given twice"
                )));
            }
        }
        let format = match values.get("format") {
            Some(raw) => raw
                .parse::<ReportFormat>()
                .map_err(|e| Invalid(e.to_string()))?,
            None => ReportFormat::default(),
        };
        let lang = match values.get("lang") {
            Some(raw) => raw.parse::<Lang>().map_err(|e| Invalid(e.to_string()))?,
            None => Lang::default(),
        };
        let mut options = RenderOptions::new(lang);
        if let Some(raw) = values.get("suppress_below") {
            let k = raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|k| (2..=1000).contains(k))
                .ok_or_else(|| {
                    Invalid(format!(
                        "suppress_below '{raw}' tidak sah; tulis bilangan bulat 2–1000, mis. 5 / \
                         suppress_below must be a whole number from 2 to 1000, e.g. 5"
                    ))
                })?;
            options = options.suppressing_below(k);
        }
        if let Some(raw) = values.get("csv_dialect") {
            if format != ReportFormat::Csv {
                return Err(Invalid(
                    "csv_dialect hanya untuk format=csv / csv_dialect is for format=csv only"
                        .to_string(),
                ));
            }
            options = options.with_csv_dialect(
                raw.parse::<CsvDialect>()
                    .map_err(|e| Invalid(e.to_string()))?,
            );
        }
        let table = values.get("table").cloned();
        Ok(ReportParams {
            values,
            format,
            options,
            table,
        })
    }
}

/// The path of a report in the API: `/api/v1/reports/{name}`.
pub(crate) fn report_path(kind: ReportKind) -> String {
    format!("/api/v1/reports/{}", kind.name())
}

/// The route of every report of the registry ([`ReportKind::ALL`]), each served by
/// [`serve_report`].
pub(crate) fn report_routes(router: Router<AppState>) -> Router<AppState> {
    ReportKind::ALL.into_iter().fold(router, |router, kind| {
        router.route(
            &report_path(kind),
            get(
                move |State(app): State<AppState>,
                      headers: HeaderMap,
                      query: Result<Query<Vec<(String, String)>>, QueryRejection>| async move {
                    serve_report(&app, &headers, query, kind).await
                },
            ),
        )
    })
}

/// The detail of the 400 `invalid-parameter` problem for a report parameter that is
/// missing or that cannot be read, saying what to write.
fn param_problem(error: &ParamError) -> Invalid {
    Invalid(match error {
        ParamError::Missing(param) => {
            let (name, example) = (param.name, param.example);
            format!(
                "parameter '{name}' wajib, mis. {name}={example} / \
                 parameter '{name}' is required, e.g. {name}={example}"
            )
        }
        ParamError::Invalid { param, raw, reason } => match param.kind {
            ParamKind::Month => format!(
                "bulan '{raw}' tidak dikenali; tulis YYYY-MM, mis. 2026-10 / \
                 month must be YYYY-MM, e.g. 2026-10"
            ),
            ParamKind::Library => format!(
                "kode perpustakaan '{raw}' tidak sah / library code '{raw}' is not valid: {}",
                reason.as_deref().unwrap_or_default()
            ),
            ParamKind::Quarter => format!(
                "triwulan '{raw}' tidak dikenali; tulis YYYY-Qn, mis. 2026-Q4 / \
                 quarter must be YYYY-Qn, e.g. 2026-Q4"
            ),
            ParamKind::Year => format!(
                "tahun '{raw}' tidak dikenali; tulis YYYY, mis. 2026 / \
                 year must be YYYY, e.g. 2026"
            ),
        },
    })
}

/// Authenticates, reads the parameters, builds the request, loads and renders the
/// report: the whole of every report endpoint.
async fn serve_report(
    app: &AppState,
    headers: &HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    kind: ReportKind,
) -> Response {
    // Who is asking comes first: an unauthenticated request learns nothing, not even
    // whether its parameters were right.
    if let Err(problem) = authenticate_staff(app, headers).await {
        return problem.into_response();
    }
    let own: Vec<&str> = kind.params().iter().map(|param| param.name).collect();
    let params = match ReportParams::parse(query, &own) {
        Ok(params) => params,
        Err(invalid) => return ApiProblem::from(invalid).into_response(),
    };
    let request = match kind.request(|name| params.values.get(name).map(String::as_str)) {
        Ok(request) => request,
        Err(error) => return ApiProblem::from(param_problem(&error)).into_response(),
    };
    match load(app.store.as_ref(), &request, params.options.lang, app.now()).await {
        Ok(report) => report_response(
            &report,
            params.format,
            &params.options,
            params.table.as_deref(),
        ),
        Err(e) => load_error_response(&e),
    }
}

/// The OpenAPI operation every report shares: its common parameters and responses.
/// [`super::openapi`] makes each report's operation from it, adding the report's own
/// parameters from the registry; the path is never routed.
#[utoipa::path(
    get,
    path = "/api/v1/reports/_shared",
    tag = "reports",
    params(
        ("format" = inline(Option<super::openapi::FormatName>), Query, description = "`json` (default), `csv`, `xlsx` or `html`"),
        ("lang" = inline(Option<super::openapi::LangName>), Query, description = "`id` (default) or `en`"),
        ("suppress_below" = Option<u32>, Query, description = "Show counts from 1 to K-1 as `<K` (2–1000)"),
        ("table" = Option<String>, Query, description = "CSV only: one table's id; without it every table, each under its title, separated by a blank line"),
        ("csv_dialect" = inline(Option<super::openapi::CsvDialectName>), Query, description = "CSV only: `standard` (default: `,` between fields, `.` decimals) or `id` (`;` and decimal commas, for Indonesian Excel and LibreOffice)"),
    ),
    responses(
        (status = 200, description = "The report in the `format` asked for: the report model (JSON), CSV (one table with `table`, else every table under its title), an XLSX workbook (a sheet per table) or a printable A4 page", content(
            (crate::report::Report = "application/json"),
            (String = "text/csv; charset=utf-8"),
            (super::openapi::Workbook = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (String = "text/html; charset=utf-8"),
        )),
        (status = 400, description = "`invalid-parameter`: the detail says what to write", body = jejak_domain::Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized` (no token, or an unknown one) or `token-revoked`", body = jejak_domain::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: a device token", body = jejak_domain::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`store-unavailable`: retry later", body = jejak_domain::Problem, content_type = "application/problem+json"),
    ),
    security(("staff_token" = []))
)]
#[expect(
    dead_code,
    reason = "only its OpenAPI operation is used, as the template of every report's"
)]
pub(crate) fn shared_report_operation() {}
