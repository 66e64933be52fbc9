//! Serving an OpenAPI document: `GET /openapi.json` and `GET /docs`, a self-contained browsable rendering
//! of it (no script or style from the internet), for whichever API (or combination of APIs) a process
//! serves; [`CommonResponses`], the problem answers every operation can give, stated once;
//! [`AbsentNotNull`], which keeps optional parameters from admitting `null`; [`DeclaredParameters`],
//! which keeps each parameter once; and the path parameters
//! both APIs name ([`LedgerPath`], [`AccountPath`], [`TransferPath`]), each with the rule its value obeys.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::IntoParams;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{SchemaType, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, ResponseBuilder, Schema};

use crate::problem::PROBLEM_CONTENT_TYPE;

/// Adds the problem answers the shared plumbing of this crate can give to every operation of a
/// document, so each route's annotation lists only the answers of its own logic:
///
/// | status | type | on |
/// | --- | --- | --- |
/// | 400 | `bad-request`, `malformed-json` | every operation (a path that does not decode); with a body, a body that is not JSON |
/// | 413 | `payload-too-large` | operations with a request body |
/// | 415 | `unsupported-media-type` | operations with a request body |
/// | 422 | `invalid-body` | operations with a request body: JSON of the wrong shape |
/// | 500 | `internal` | every operation |
/// | 503 | `timeout`, `unavailable` | every operation |
///
/// An answer a route already lists for a status is kept: its description is the more specific one.
/// The answers are `components.responses` referenced by each operation, so the document states each once.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommonResponses;

/// Each common answer: its name in `components.responses`, its status, its description and whether
/// only operations with a request body can give it.
const COMMON: [(&str, &str, &str, bool); 6] = [
    (
        "BadRequest",
        "400",
        "`bad-request`: the request could not be read (e.g. a path segment that is not UTF-8); \
         `malformed-json`: the body is not JSON",
        false,
    ),
    (
        "PayloadTooLarge",
        "413",
        "`payload-too-large`: the body exceeds the server's limit",
        true,
    ),
    (
        "UnsupportedMediaType",
        "415",
        "`unsupported-media-type`: the body is not labelled `Content-Type: application/json`",
        true,
    ),
    (
        "InvalidBody",
        "422",
        "`invalid-body`: JSON of the wrong shape (`field` names the offending path); or a value the \
         operation refuses (its own types are listed in its description)",
        true,
    ),
    (
        "Internal",
        "500",
        "`internal`: an unexpected failure; the body is opaque, the cause is in the server's log",
        false,
    ),
    (
        "Unavailable",
        "503",
        "`timeout`: the request took longer than the server's limit; `unavailable`: a backing service \
         did not answer. Safe to retry",
        false,
    ),
];

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, _, description, _) in COMMON {
            let response = ResponseBuilder::new()
                .description(description)
                .content(
                    PROBLEM_CONTENT_TYPE,
                    Content::new(Some(Ref::from_schema_name("Problem"))),
                )
                .build();
            components
                .responses
                .insert(name.to_owned(), RefOr::T(response));
        }
        for operation in openapi.paths.paths.values_mut().flat_map(operations) {
            add_common(operation);
        }
    }
}

/// Optional query and header parameters are declared as `Option<T>`, which utoipa renders as `T` or
/// `null`; a query string or header has no null, only absence, so this removes `null` from their types.
#[derive(Debug, Clone, Copy, Default)]
pub struct AbsentNotNull;

impl utoipa::Modify for AbsentNotNull {
    fn modify(&self, openapi: &mut OpenApi) {
        for operation in openapi.paths.paths.values_mut().flat_map(operations) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if matches!(parameter.parameter_in, ParameterIn::Path) {
                    continue;
                }
                if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut()
                    && let SchemaType::Array(types) = &object.schema_type
                {
                    let kept: Vec<Type> = types
                        .iter()
                        .filter(|t| **t != Type::Null)
                        .cloned()
                        .collect();
                    object.schema_type = match kept.as_slice() {
                        [one] => SchemaType::Type(one.clone()),
                        _ => SchemaType::Array(kept),
                    };
                }
            }
        }
    }
}

/// utoipa's axum support adds a path parameter for each `Path` extractor after those a route declares
/// (with their patterns, through [`LedgerPath`] and the like); this keeps the first of each name and
/// place, the declared one, since OpenAPI allows a parameter only once per operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeclaredParameters;

impl utoipa::Modify for DeclaredParameters {
    fn modify(&self, openapi: &mut OpenApi) {
        for operation in openapi.paths.paths.values_mut().flat_map(operations) {
            if let Some(parameters) = operation.parameters.as_mut() {
                let mut kept: Vec<utoipa::openapi::path::Parameter> = Vec::new();
                for parameter in parameters.drain(..) {
                    let declared = kept.iter().any(|k| {
                        k.name == parameter.name && k.parameter_in == parameter.parameter_in
                    });
                    if !declared {
                        kept.push(parameter);
                    }
                }
                *parameters = kept;
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// `{ledger}`: a ledger id, 1 to 64 characters of `a-z 0-9 _ -` starting with a letter or digit (the
/// rule of `tally_domain::LedgerId`). A path that breaks it names no ledger: 404 `ledger-not-found`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LedgerPath {
    /// Ledger id.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", example = "demo")]
    pub ledger: String,
}

/// `{ledger}` and `{code}`: an account code is 1 to 128 bytes of at most 10 segments of `a-z 0-9 _ -`
/// separated by `:` (the rule of `tally_domain::AccountCode`).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccountPath {
    /// Ledger id.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", example = "demo")]
    pub ledger: String,
    /// Account code, e.g. `assets:bank:checking`.
    #[param(
        pattern = "^[a-z0-9_-]+(:[a-z0-9_-]+){0,9}$",
        max_length = 128,
        example = "assets:bank:checking"
    )]
    pub code: String,
}

/// `{ledger}` and `{id}`: a transfer is named by the UUID its client chose.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TransferPath {
    /// Ledger id.
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,63}$", example = "demo")]
    pub ledger: String,
    /// Transfer id.
    pub id: uuid::Uuid,
}

fn add_common(operation: &mut Operation) {
    let has_body = operation.request_body.is_some();
    for (name, status, _, needs_body) in COMMON {
        if needs_body && !has_body {
            continue;
        }
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    }
}

/// `GET /openapi.json` and `GET /docs` for `document`.
pub fn router<S>(document: &utoipa::openapi::OpenApi) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // Rendered once: the description never changes while the process runs.
    let json = document
        .to_json()
        .unwrap_or_else(|error| format!(r#"{{"error":"{error}"}}"#));
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { json_response(json) }
            }),
        )
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
}

fn json_response(json: String) -> Response {
    let mut response = json.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// One self-contained page: it fetches `/openapi.json` from this origin and lists every operation with
/// its parameters, request and response schemas. Nothing is loaded from elsewhere.
const DOCS_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tally API</title>
<style>
 body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 960px; padding: 1rem 2rem; color: #222; }
 h1 { margin-bottom: 0; } .desc { color: #555; }
 details { border: 1px solid #ddd; border-radius: 6px; margin: .5rem 0; padding: .3rem .8rem; }
 summary { cursor: pointer; font-family: ui-monospace, monospace; }
 .m { display: inline-block; min-width: 4.5em; font-weight: bold; text-transform: uppercase; }
 .get { color: #0a7; } .post { color: #06c; } .patch { color: #b60; }
 pre { background: #f6f6f6; padding: .6rem; overflow: auto; border-radius: 4px; font-size: 13px; }
 table { border-collapse: collapse; } td, th { border-bottom: 1px solid #eee; padding: .2rem .6rem; text-align: left; vertical-align: top; }
</style>
</head>
<body>
<h1 id="title">Tally API</h1>
<p class="desc" id="desc"></p>
<p><a href="/openapi.json">openapi.json</a></p>
<div id="ops">Loading…</div>
<h2>Schemas</h2>
<div id="schemas"></div>
<script>
"use strict";
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;","'":"&#39;"}[c]));
const ref = s => s && s.$ref ? s.$ref.split("/").pop() : null;
const schemaName = s => {
  if (!s) return "";
  if (ref(s)) return "<a href=\"#schema-" + esc(ref(s)) + "\">" + esc(ref(s)) + "</a>";
  if (s.type === "array" && s.items) return "array of " + schemaName(s.items);
  return esc(JSON.stringify(s));
};
fetch("/openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("desc").textContent = doc.info.description || "";
  let html = "";
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      html += "<details><summary><span class=\"m " + esc(method) + "\">" + esc(method) + "</span> " + esc(path) + " — " + esc(op.summary || "") + "</summary>";
      if (op.description) html += "<p>" + esc(op.description) + "</p>";
      if (op.parameters) html += "<p><b>Parameters:</b> " + op.parameters.map(p => esc(p.name) + " (" + esc(p.in) + ")").join(", ") + "</p>";
      const body = op.requestBody && op.requestBody.content && Object.values(op.requestBody.content)[0];
      if (body) html += "<p><b>Request:</b> " + schemaName(body.schema) + "</p>";
      html += "<table><tr><th>status</th><th>meaning</th><th>body</th></tr>";
      for (const [status, resp] of Object.entries(op.responses || {})) {
        const c = resp.content && Object.entries(resp.content)[0];
        html += "<tr><td>" + esc(status) + "</td><td>" + esc(resp.description) + "</td><td>" + (c ? esc(c[0]) + " " + schemaName(c[1].schema) : "") + "</td></tr>";
      }
      html += "</table></details>";
    }
  }
  document.getElementById("ops").innerHTML = html;
  let schemas = "";
  for (const [name, schema] of Object.entries((doc.components || {}).schemas || {})) {
    schemas += "<details id=\"schema-" + esc(name) + "\"><summary>" + esc(name) + "</summary><pre>" + esc(JSON.stringify(schema, null, 2)) + "</pre></details>";
  }
  document.getElementById("schemas").innerHTML = schemas;
}).catch(e => { document.getElementById("ops").textContent = "Could not load /openapi.json: " + e; });
</script>
</body>
</html>
"##;
