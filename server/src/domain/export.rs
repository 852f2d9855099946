//! Export formats of `GET /api/session-log/export`: CSV (RFC 4180, through the `csv` crate) and
//! NDJSON (one `StoredEvent` JSON object per line). The handler streams pages of events through
//! these, so an export's memory does not grow with its size.

use std::borrow::Cow;

use crate::domain::rows::EventRow;

/// An export format (`format=csv` or `format=ndjson`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `text/csv`, one row per event, with a header row.
    Csv,
    /// `application/x-ndjson`, one JSON object per line (the query's `StoredEvent` shape).
    Ndjson,
}

impl Format {
    /// The response's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    /// The download's file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }

    /// What comes before the first page (the CSV header row).
    pub fn preamble(self) -> Vec<u8> {
        match self {
            Format::Csv => {
                let mut writer = csv::Writer::from_writer(Vec::new());
                let _ = writer.write_record(CSV_COLUMNS);
                writer.into_inner().unwrap_or_default()
            }
            Format::Ndjson => Vec::new(),
        }
    }

    /// One page of events in this format.
    pub fn page(self, rows: &[EventRow]) -> Vec<u8> {
        match self {
            Format::Csv => {
                let mut writer = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 256));
                for row in rows {
                    let cells = [
                        Cow::Owned(row.event_id.to_string()),
                        escape_formula(&row.created_at),
                        escape_formula(&row.session_token),
                        escape_formula(row.student_email.as_deref().unwrap_or("")),
                        escape_formula(row.student_name.as_deref().unwrap_or("")),
                        escape_formula(&row.event_type),
                        Cow::Owned(row.seq.map(|s| s.to_string()).unwrap_or_default()),
                        Cow::Owned(row.event_uuid.to_string()),
                        escape_formula(row.event_data.get()),
                    ];
                    let _ = writer.write_record(cells.iter().map(|c| c.as_bytes()));
                }
                writer.into_inner().unwrap_or_default()
            }
            Format::Ndjson => {
                let mut out = Vec::with_capacity(rows.len() * 256);
                for row in rows {
                    if serde_json::to_writer(&mut out, row).is_ok() {
                        out.push(b'\n');
                    }
                }
                out
            }
        }
    }
}

/// The CSV columns, named as the query response's fields.
pub const CSV_COLUMNS: [&str; 9] = [
    "event_id",
    "created_at",
    "session_token",
    "student_email",
    "student_name",
    "event_type",
    "seq",
    "event_uuid",
    "event_data",
];

/// Guards a CSV cell against formula injection (OWASP "CSV Injection"): a cell that starts with
/// `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so a spreadsheet shows it as
/// text instead of evaluating it.
pub fn escape_formula(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Cells that a spreadsheet would evaluate get a leading quote; others are left as they are.
    #[test]
    fn formula_cells_are_escaped() {
        for bad in ["=1+1", "+A1", "-2+3", "@SUM(A1)", "\t=x", "\r=x"] {
            assert_eq!(escape_formula(bad), format!("'{bad}"));
        }
        assert_eq!(escape_formula("ws_abc"), "ws_abc");
        assert_eq!(escape_formula(""), "");
    }
}
