//! Rows in PostgreSQL's binary `COPY` format, for the largest tables of both paths: `COPY` fills heap
//! pages many rows at a time, and the binary format spares the server parsing timestamps, numerics and
//! UUIDs from text.

use crate::error::ProjectionError;
use crate::rebuild::Sink;
use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

/// Bytes buffered before they go to the loader: large enough to amortise the messages, small enough to
/// stream.
const SEND_AT: usize = 1 << 20;

/// What a binary `COPY` starts with: the signature, no flags, no header extension.
pub(crate) const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// What it ends with: a row of -1 fields.
pub(crate) const TRAILER: &[u8] = &[0xff, 0xff];

/// The sign words of a binary numeric.
const NUMERIC_POSITIVE: u16 = 0x0000;
const NUMERIC_NEGATIVE: u16 = 0x4000;

/// The binary `COPY` into `transfers` of `schema` (`None`: of the `search_path`), fields in this order.
pub(crate) fn copy_transfers(schema: Option<&str>) -> String {
    format!(
        "copy {}transfers (ledger_id, transfer_id, status, legs, posted_amounts, effective_at, recorded_at, \
         expires_at, description, metadata, reverses, corrects, reason, reversed_by, created_version, \
         version) from stdin with (format binary)",
        schema.map(|s| format!("{s}.")).unwrap_or_default()
    )
}

/// The binary `COPY` into `entries` of `schema` (`None`: of the `search_path`), fields in this order.
pub(crate) fn copy_entries(schema: Option<&str>) -> String {
    format!(
        "copy {}entries (ledger_id, account, effective_at, version, leg, transfer_id, side, amount, \
         balance_after, recorded_at, description) from stdin with (format binary)",
        schema.map(|s| format!("{s}.")).unwrap_or_default()
    )
}

/// Rows of one table, appended field by field and handed to its loader in large chunks.
pub(crate) struct CopyRows {
    buf: Vec<u8>,
    /// Where the current row's field count goes, once the row is complete.
    row_start: Option<usize>,
    fields: u16,
}

impl CopyRows {
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::with_capacity(SEND_AT + 4096),
            row_start: None,
            fields: 0,
        }
    }

    fn start(&mut self) {
        if self.row_start.is_none() {
            self.row_start = Some(self.buf.len());
            self.buf.extend_from_slice(&[0, 0]);
        }
        self.fields += 1;
    }

    /// A field of `bytes.len()` bytes.
    fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.start();
        self.len(bytes.len());
        self.buf.extend_from_slice(bytes);
        self
    }

    fn len(&mut self, len: usize) {
        // Fields are far below 2 GiB: one row is a transfer's legs and metadata at most.
        let len = i32::try_from(len).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
    }

    pub(crate) fn text(&mut self, value: &str) -> &mut Self {
        self.field(value.as_bytes())
    }

    pub(crate) fn int4(&mut self, value: i32) -> &mut Self {
        self.field(&value.to_be_bytes())
    }

    pub(crate) fn int8(&mut self, value: i64) -> &mut Self {
        self.field(&value.to_be_bytes())
    }

    pub(crate) fn uuid(&mut self, value: Uuid) -> &mut Self {
        self.field(value.as_bytes())
    }

    pub(crate) fn null(&mut self) -> &mut Self {
        self.start();
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
        self
    }

    pub(crate) fn opt_uuid(&mut self, value: Option<Uuid>) -> &mut Self {
        match value {
            Some(v) => self.uuid(v),
            None => self.null(),
        }
    }

    pub(crate) fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    /// A `jsonb` value: format version 1, then the JSON text, serialised straight into the row (no
    /// `Value` in between: jsonb orders keys itself).
    pub(crate) fn json(&mut self, value: &impl serde::Serialize) -> &mut Self {
        self.start();
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0, 0, 0, 1]);
        if serde_json::to_writer(&mut self.buf, value).is_err() {
            // What the incremental path stores for a value that does not serialise.
            self.buf.truncate(at + 5);
            self.buf.extend_from_slice(b"null");
        }
        let len = i32::try_from(self.buf.len() - at - 4).unwrap_or(i32::MAX);
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self
    }

    /// A `numeric` with no fractional digits: base-10000 digits, most significant first.
    pub(crate) fn numeric(&mut self, value: i128) -> &mut Self {
        let mut digits = [0u16; 10];
        let mut n = 0;
        let mut rest = value.unsigned_abs();
        while rest > 0 {
            // Below 10,000, so it fits.
            digits[n] = (rest % 10_000) as u16;
            rest /= 10_000;
            n += 1;
        }
        // The weight is the power of 10,000 of the first digit; trailing zero digits are implied.
        let weight = n.saturating_sub(1);
        let low_zeros = digits[..n].iter().take_while(|d| **d == 0).count();
        let stored = &digits[low_zeros..n];
        let sign = if value < 0 {
            NUMERIC_NEGATIVE
        } else {
            NUMERIC_POSITIVE
        };
        self.start();
        self.len(8 + 2 * stored.len());
        for word in [stored.len() as u16, weight as u16, sign, 0] {
            self.buf.extend_from_slice(&word.to_be_bytes());
        }
        for digit in stored.iter().rev() {
            self.buf.extend_from_slice(&digit.to_be_bytes());
        }
        self
    }

    /// A timestamp exactly as sqlx binds it: whole microseconds since 2000-01-01, truncated toward zero.
    pub(crate) fn time(&mut self, at: DateTime<Utc>) -> &mut Self {
        match micros_since_2000(at) {
            Some(micros) => self.int8(micros),
            None => self.null(),
        }
    }

    pub(crate) fn opt_time(&mut self, at: Option<DateTime<Utc>>) -> &mut Self {
        match at {
            Some(at) => self.time(at),
            None => self.null(),
        }
    }

    /// Ends the row, keeping it in the buffer (see [`Self::into_bytes`]).
    pub(crate) fn close_row(&mut self) {
        if let Some(at) = self.row_start.take() {
            self.buf[at..at + 2].copy_from_slice(&self.fields.to_be_bytes());
        }
        self.fields = 0;
    }

    /// Ends the row; hands the buffer to the loader once it is large.
    pub(crate) async fn end_row(&mut self, sink: &Sink) -> Result<(), ProjectionError> {
        self.close_row();
        if self.buf.len() >= SEND_AT {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(SEND_AT + 4096));
            sink.rows(full).await?;
        }
        Ok(())
    }

    /// The rows, for a `COPY` sent at once rather than streamed.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Hands what is left to the loader.
    pub(crate) async fn flush(self, sink: &Sink) -> Result<(), ProjectionError> {
        if !self.buf.is_empty() {
            sink.rows(self.buf).await?;
        }
        Ok(())
    }
}

/// The instant sqlx would send for `at`, as PostgreSQL stores it.
fn micros_since_2000(at: DateTime<Utc>) -> Option<i64> {
    let epoch = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single()?;
    (at - epoch).num_microseconds()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_their_fields_and_lengths() {
        let mut rows = CopyRows::new();
        rows.text("ab").null().int4(7);
        rows.close_row();
        assert_eq!(
            rows.buf,
            [
                &[0, 3][..],
                &[0, 0, 0, 2, b'a', b'b'],
                &[0xff, 0xff, 0xff, 0xff],
                &[0, 0, 0, 4, 0, 0, 0, 7],
            ]
            .concat()
        );
    }

    #[test]
    fn numerics_are_base_10000_without_trailing_zeros() {
        let encode = |v: i128| {
            let mut rows = CopyRows::new();
            rows.numeric(v);
            rows.buf[6..].to_vec()
        };
        // ndigits, weight, sign, dscale, digits.
        assert_eq!(encode(0), [0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            encode(-12_3456_0000),
            [0, 2, 0, 2, 0x40, 0, 0, 0, 0, 12, 0x0d, 0x80]
        );
        let max = encode(i128::MAX);
        assert_eq!(&max[..4], [0, 10, 0, 9]);
    }

    #[test]
    fn timestamps_keep_microseconds_and_eras() {
        let at = DateTime::parse_from_rfc3339("2000-01-01T00:00:01.123456789Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid");
        assert_eq!(micros_since_2000(at), Some(1_123_456));
        let before = DateTime::parse_from_rfc3339("1999-12-31T23:59:59.999999500Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid");
        // Truncated toward zero, as sqlx does.
        assert_eq!(micros_since_2000(before), Some(0));
    }
}
