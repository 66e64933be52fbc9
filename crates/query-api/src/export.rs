//! CSV and NDJSON exports. Rows are written as they are produced: statements are read page by page from
//! the database while the response streams, so an export of millions of entries holds one page in memory.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::error::QueryError;
use crate::extract::Format;

/// One chunk of rows; every row has one value per column.
pub type Rows = Vec<Vec<Value>>;

/// Streams `chunks` as CSV (a header line first) or NDJSON (one object per row, keys = `columns`).
pub fn stream(
    format: Format,
    filename: &str,
    columns: &'static [&'static str],
    chunks: impl Stream<Item = Result<Rows, QueryError>> + Send + 'static,
) -> Response {
    let header_line = (format == Format::Csv).then(|| {
        csv_bytes(&vec![
            columns
                .iter()
                .map(|c| Value::String((*c).to_owned()))
                .collect(),
        ])
    });
    let body = futures_util::stream::iter(header_line.map(Ok)).chain(chunks.map(move |chunk| {
        chunk.map(|rows| match format {
            Format::Csv => csv_bytes(&rows),
            Format::Ndjson | Format::Json => ndjson_bytes(columns, &rows),
        })
    }));
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Ndjson | Format::Json => ("application/x-ndjson", "ndjson"),
    };
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"{filename}.{extension}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

fn csv_bytes(rows: &Rows) -> Bytes {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        let fields: Vec<String> = row.iter().map(cell).collect();
        // Writing into a Vec cannot fail for I/O reasons; a row is dropped only if csv refuses it.
        if let Err(error) = writer.write_record(&fields) {
            tracing::error!(%error, "csv row not written");
        }
    }
    Bytes::from(writer.into_inner().unwrap_or_default())
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn ndjson_bytes(columns: &[&str], rows: &Rows) -> Bytes {
    let mut out = Vec::new();
    for row in rows {
        let object: serde_json::Map<String, Value> = columns
            .iter()
            .zip(row)
            .map(|(column, value)| ((*column).to_owned(), value.clone()))
            .collect();
        if serde_json::to_writer(&mut out, &object).is_ok() {
            out.push(b'\n');
        }
    }
    Bytes::from(out)
}
