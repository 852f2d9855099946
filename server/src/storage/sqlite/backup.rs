//! `session-log-server backup DEST`: a consistent copy of a live SQLite database through
//! SQLite's online backup API, written atomically.
//!
//! The whole database is copied in one backup step, inside one read transaction of the source:
//! the copy is the database as of that transaction's start, every commit before it included
//! and none after, however fast a server keeps writing (in WAL mode readers never block the
//! writer, and a single step is never restarted by the writer's commits). The copy is written to
//! a temporary file beside `DEST`, switched to the rollback journal (one self-contained file),
//! checked with `PRAGMA quick_check`, synced, and renamed over `DEST`; the folder (created when
//! missing) is synced too.
//! A failure leaves `DEST` as it was. Restoring is starting a server on the copy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::SqliteError;
use crate::storage::StoreError;

/// What a backup copied: read from the copy itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Database pages copied.
    pub pages: u64,
    /// The copy's size (bytes).
    pub bytes: u64,
    /// Events in the copy.
    pub events: u64,
    /// The newest `event_id` in the copy (0 when empty).
    pub newest_event_id: i64,
    /// Session summaries in the copy.
    pub sessions: u64,
}

/// Copies the SQLite database at `source` to `dest` (see the module's description).
///
/// `dest`'s folder is created when missing.
///
/// Errors: [`StoreError::Invalid`] when `source` is not a file or `dest` is a folder;
/// [`StoreError::Internal`] when SQLite fails, the copy does not pass `quick_check`, or a file or
/// folder cannot be created, written, synced or renamed (the message says which).
pub fn backup_file(source: &Path, dest: &Path) -> Result<BackupReport, StoreError> {
    if !source.is_file() {
        return Err(SqliteError::NoDatabase(source.display().to_string()).into());
    }
    if dest.is_dir() {
        return Err(StoreError::Invalid(format!("{} is a folder: give the copy's file name", dest.display())));
    }
    if let Some(folder) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| io_error("create the folder", folder, e))?;
    }
    let temp = temporary_beside(dest);
    let result = copy(source, &temp).and_then(|report| {
        std::fs::rename(&temp, dest).map_err(|e| io_error("rename the copy to", dest, e))?;
        sync_folder(dest)?;
        Ok(report)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
        let _ = std::fs::remove_file(journal_of(&temp));
    }
    result
}

/// `.<name>.tmp-<pid>` in `dest`'s folder, so the rename stays on one file system.
fn temporary_beside(dest: &Path) -> PathBuf {
    let name = dest.file_name().map_or("session-log.db".into(), |n| n.to_string_lossy().into_owned());
    dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn journal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-journal");
    PathBuf::from(name)
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Internal(format!("cannot {what} {}: {error}", path.display()))
}

fn copy(source: &Path, temp: &Path) -> Result<BackupReport, StoreError> {
    let _ = std::fs::remove_file(temp);
    let from = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(SqliteError::from)?;
    from.busy_timeout(Duration::from_secs(30)).map_err(SqliteError::from)?;
    let mut to = Connection::open(temp).map_err(SqliteError::from)?;
    let pages = {
        let backup = rusqlite::backup::Backup::new(&from, &mut to).map_err(SqliteError::from)?;
        // -1: every page in one step, in one read transaction of the source (in WAL mode it
        // blocks no writer). Busy or locked only while another connection changes the schema or
        // checkpoints with a lock: tried again for at most 30 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match backup.step(-1).map_err(SqliteError::from)? {
                rusqlite::backup::StepResult::Done => break,
                _ if std::time::Instant::now() > deadline => {
                    return Err(StoreError::Internal(format!("{} stayed locked for 30 s", source.display())));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        backup.progress().pagecount as u64
    };
    drop(from);
    // One self-contained file: the rollback journal, not the source's WAL mode.
    let mode: String = to.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0)).map_err(SqliteError::from)?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::Internal(format!("the copy stayed in journal mode {mode}")));
    }
    let check: String = to.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(SqliteError::from)?;
    if check != "ok" {
        return Err(StoreError::Internal(format!("the copy failed quick_check: {check}")));
    }
    let (events, newest_event_id): (i64, i64) = to
        .query_row("SELECT count(*), coalesce(max(event_id), 0) FROM events", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(SqliteError::from)?;
    let sessions: i64 = to.query_row("SELECT count(*) FROM sessions", [], |r| r.get(0)).map_err(SqliteError::from)?;
    to.close().map_err(|(_, e)| SqliteError::from(e))?;
    let file = std::fs::File::open(temp).map_err(|e| io_error("open", temp, e))?;
    file.sync_all().map_err(|e| io_error("sync", temp, e))?;
    let bytes = file.metadata().map_err(|e| io_error("stat", temp, e))?.len();
    Ok(BackupReport { pages, bytes, events: events as u64, newest_event_id, sessions: sessions as u64 })
}

/// Syncs the folder of `path`, so the rename survives a crash (unix; elsewhere a no-op).
fn sync_folder(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(folder).and_then(|f| f.sync_all()).map_err(|e| io_error("sync the folder", folder, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
