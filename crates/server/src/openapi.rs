//! Serving an OpenAPI document: `GET /openapi.json` and `GET /docs`, a self-contained browsable rendering
//! of it (no script or style from the internet), for whichever API (or combination of APIs) a process
//! serves.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

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
