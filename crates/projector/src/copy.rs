//! Rows in PostgreSQL's `COPY … FROM STDIN` text format, for the rebuild's largest tables. `COPY` fills
//! heap pages many rows at a time with one WAL record each, where `insert … select from unnest(…)` pays a
//! heap insert and a WAL record per row; arrays of text also had to be parsed before every row.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use std::fmt::{Display, Write as _};

/// Bytes buffered before they are sent: large enough to amortise the messages, small enough to stream.
const SEND_AT: usize = 1 << 20;

/// One `COPY` in progress: rows are appended field by field and streamed to the server.
pub(crate) struct CopyRows {
    buf: String,
    first: bool,
}

impl CopyRows {
    pub(crate) fn new() -> Self {
        Self {
            buf: String::with_capacity(SEND_AT + 4096),
            first: true,
        }
    }

    fn start(&mut self) {
        if !self.first {
            self.buf.push('\t');
        }
        self.first = false;
    }

    /// Text with the format's four special characters escaped.
    pub(crate) fn text(&mut self, value: &str) -> &mut Self {
        self.start();
        for c in value.chars() {
            match c {
                '\\' => self.buf.push_str("\\\\"),
                '\t' => self.buf.push_str("\\t"),
                '\n' => self.buf.push_str("\\n"),
                '\r' => self.buf.push_str("\\r"),
                c => self.buf.push(c),
            }
        }
        self
    }

    /// A value whose display never holds a tab, newline, carriage return or backslash (numbers, UUIDs).
    pub(crate) fn plain(&mut self, value: impl Display) -> &mut Self {
        self.start();
        let _ = write!(self.buf, "{value}");
        self
    }

    pub(crate) fn null(&mut self) -> &mut Self {
        self.start();
        self.buf.push_str("\\N");
        self
    }

    pub(crate) fn opt_plain(&mut self, value: Option<impl Display>) -> &mut Self {
        match value {
            Some(v) => self.plain(v),
            None => self.null(),
        }
    }

    pub(crate) fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    pub(crate) fn json(&mut self, value: &Value) -> &mut Self {
        self.text(&value.to_string())
    }

    /// A timestamp exactly as sqlx binds it (microseconds, truncated toward zero), written so that
    /// PostgreSQL reads it back whatever the year, before the common era included.
    pub(crate) fn time(&mut self, at: DateTime<Utc>) -> &mut Self {
        let Some(at) = truncate_to_micros(at) else {
            return self.null();
        };
        self.start();
        let (year, era) = match at.year() {
            y if y <= 0 => (1 - y, " BC"),
            y => (y, ""),
        };
        let _ = write!(
            self.buf,
            "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00{era}",
            at.month(),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
            at.timestamp_subsec_micros()
        );
        self
    }

    pub(crate) fn opt_time(&mut self, at: Option<DateTime<Utc>>) -> &mut Self {
        match at {
            Some(at) => self.time(at),
            None => self.null(),
        }
    }

    /// Ends the row; sends the buffer once it is large.
    pub(crate) async fn end_row(
        &mut self,
        copy: &mut sqlx::postgres::PgCopyIn<&mut PgConnection>,
    ) -> Result<(), sqlx::Error> {
        self.buf.push('\n');
        self.first = true;
        if self.buf.len() >= SEND_AT {
            copy.send(self.buf.as_bytes()).await?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Sends what is left and completes the `COPY`.
    pub(crate) async fn finish(
        mut self,
        mut copy: sqlx::postgres::PgCopyIn<&mut PgConnection>,
    ) -> Result<u64, sqlx::Error> {
        if !self.buf.is_empty() {
            copy.send(self.buf.as_bytes()).await?;
            self.buf.clear();
        }
        copy.finish().await
    }
}

/// The instant sqlx would send for `at`: whole microseconds since 2000-01-01, truncated toward zero.
fn truncate_to_micros(at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single()?;
    let micros = (at - epoch).num_microseconds()?;
    epoch.checked_add_signed(Duration::microseconds(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_are_escaped_and_fields_separated() {
        let mut rows = CopyRows::new();
        rows.text("a\tb\nc\\d\re").plain(42).null();
        assert_eq!(rows.buf, "a\\tb\\nc\\\\d\\re\t42\t\\N");
    }

    #[test]
    fn timestamps_keep_microseconds_and_eras() {
        let mut rows = CopyRows::new();
        let at = DateTime::parse_from_rfc3339("2025-03-31T23:59:58.123456789Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid");
        rows.time(at);
        let bc = Utc
            .with_ymd_and_hms(0, 6, 1, 12, 0, 0)
            .single()
            .expect("valid");
        rows.time(bc);
        assert_eq!(
            rows.buf,
            "2025-03-31 23:59:58.123456+00\t0001-06-01 12:00:00.000000+00 BC"
        );
    }
}
