//! Archiving before retention purges (`--archive-dir`): the events a purge will delete are first
//! written as gzipped NDJSON, in the export's format (one `StoredEvent` per line), one file per
//! UTC day of storage: `events-YYYY-MM-DD.ndjson.gz`. Each write appends one gzip member to its
//! day's file (a multi-member gzip file, which `gunzip`, `zcat` and every gzip reader read
//! whole) and syncs it to disk before the purge may delete what it holds.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::domain::export::Format;
use crate::storage::EventRow;

/// The archive file of the UTC day `day` (`YYYY-MM-DD`) in `dir`.
pub fn day_file(dir: &Path, day: &str) -> PathBuf {
    dir.join(format!("events-{day}.ndjson.gz"))
}

/// Writes `rows` to their days' files in `dir` (created if needed), flushed and synced; returns
/// the files written. Errors: any I/O failure (then nothing may be purged: some rows may not be
/// on disk).
pub fn write(dir: &Path, rows: &[EventRow]) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut start = 0;
    while start < rows.len() {
        let day = rows[start].created_at.get(..10).unwrap_or("unknown").to_owned();
        let end = rows[start..]
            .iter()
            .position(|r| r.created_at.get(..10) != Some(day.as_str()))
            .map_or(rows.len(), |n| start + n);
        let path = day_file(dir, &day);
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        gz.write_all(&Format::Ndjson.page(&rows[start..end]))?;
        let file = gz.finish()?;
        file.sync_all()?;
        if !written.contains(&path) {
            written.push(path);
        }
        start = end;
    }
    Ok(written)
}
