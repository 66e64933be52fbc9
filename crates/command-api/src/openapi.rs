//! The OpenAPI 3.1 description, generated from the handlers and DTOs, served at `GET /openapi.json`, and
//! a self-contained browsable rendering of it at `GET /docs` (no script or style from the internet).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;

use crate::dto;
use crate::routes::{accounts, ledgers, transfers};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tally command API",
        description = "The write side of Tally, an event-sourced double-entry ledger. JSON in and out; \
            amounts are decimal strings of minor units; errors are `application/problem+json` (RFC 9457) \
            with a stable `type`. Every command answer carries the consistency token (`ledger`, `version`) \
            in its body and in the `Tally-Version` header."
    ),
    paths(
        ledgers::create_ledger,
        ledgers::close_period,
        accounts::open_account,
        accounts::update_account,
        transfers::create_transfer,
        transfers::create_batch,
        transfers::post_pending,
        transfers::void_pending,
        transfers::reverse,
        livez,
        readyz,
        metrics,
        openapi_json,
        docs,
    ),
    components(schemas(
        tally_server::ProblemBody,
        dto::CreateLedger,
        dto::LedgerCreated,
        dto::OpenAccount,
        dto::UpdateAccount,
        dto::AccountAnswer,
        dto::LimitsDto,
        dto::AccountTypeDto,
        dto::AccountStatusDto,
        dto::SideDto,
        dto::NewTransfer,
        dto::Leg,
        dto::PendingDto,
        dto::TransferBatch,
        dto::BatchAnswer,
        dto::BatchItem,
        dto::ItemStatus,
        dto::PostPendingRequest,
        dto::ReverseRequest,
        dto::ClosePeriodRequest,
        dto::PeriodClosed,
        dto::TransferAnswer,
        dto::Outcome,
        dto::Balance,
        dto::TransferStatusDto,
    )),
    tags(
        (name = "ledgers", description = "Ledgers and period close"),
        (name = "accounts", description = "Opening and changing accounts"),
        (name = "transfers", description = "Transfers, two-phase settlement and corrections"),
        (name = "operations", description = "Health, metrics and this description"),
    )
)]
pub struct ApiDoc;

/// The description as JSON text.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /openapi.json` and `GET /docs`.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // Rendered once: the description never changes while the process runs.
    let json = document()
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

/// Liveness.
#[utoipa::path(get, path = "/livez", tag = "operations",
    responses((status = 200, description = "The process serves")))]
#[allow(dead_code)]
fn livez() {}

/// Readiness: 200 only when PostgreSQL answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready"),
        (status = 503, description = "`not-ready`", body = tally_server::ProblemBody, content_type = "application/problem+json"),
    ))]
#[allow(dead_code)]
fn readyz() {}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Metrics", content_type = "text/plain")))]
#[allow(dead_code)]
fn metrics() {}

/// This description.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
#[allow(dead_code)]
fn openapi_json() {}

/// A browsable rendering of this description.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
#[allow(dead_code)]
fn docs() {}

/// One self-contained page: it fetches `/openapi.json` from this origin and lists every operation with
/// its parameters, request and response schemas. Nothing is loaded from elsewhere.
const DOCS_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tally command API</title>
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
<h1 id="title">Tally command API</h1>
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
