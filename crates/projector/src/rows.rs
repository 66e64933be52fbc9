//! A row of `transfers` as both projection paths build it (the incremental one in `apply.rs`, the
//! rebuild's fold in `bulk.rs`), and its binary `COPY` encoding, so the two write the same bytes.

use crate::copy::CopyRows;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tally_domain::{Amount, LegSpec};
use uuid::Uuid;

/// Every column of a transfer's row but its ledger and id, which the callers key rows by.
pub(crate) struct TransferRow {
    pub status: &'static str,
    pub legs: Vec<LegSpec>,
    pub posted: Option<Vec<Amount>>,
    pub effective_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub description: String,
    pub metadata: Value,
    pub reverses: Option<Uuid>,
    pub corrects: Option<Uuid>,
    pub reason: Option<String>,
    pub reversed_by: Option<Uuid>,
    pub created_version: i64,
    pub version: i64,
}

impl TransferRow {
    /// Appends the row in the field order of [`crate::copy::copy_transfers`].
    pub(crate) fn copy_into(&self, rows: &mut CopyRows, ledger: &str, id: Uuid) {
        rows.text(ledger)
            .uuid(id)
            .text(self.status)
            .json(&self.legs);
        match &self.posted {
            Some(posted) => rows.json(posted),
            None => rows.null(),
        };
        rows.time(self.effective_at)
            .time(self.recorded_at)
            .opt_time(self.expires_at)
            .text(&self.description)
            .json(&self.metadata)
            .opt_uuid(self.reverses)
            .opt_uuid(self.corrects)
            .opt_text(self.reason.as_deref())
            .opt_uuid(self.reversed_by)
            .int8(self.created_version)
            .int8(self.version);
        rows.close_row();
    }
}
