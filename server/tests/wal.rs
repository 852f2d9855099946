//! The writer connection's WAL shim (`storage::wal_vfs`): whatever the size of a transaction,
//! what it commits is in the WAL file, valid, when the commit returns — for other connections
//! in the process and for a process that opens the files after a crash — and what it rolls
//! back is never seen.

use rusqlite::Connection;
use session_log_server::storage::sqlite::{open_writer_connection, wal_vfs};

/// A fresh database in a temporary folder, with a table of blobs: the writer connection (with
/// the shim) and a plain reader connection on it.
fn open() -> (tempfile::TempDir, Connection, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let writer = open_writer_connection(&path, &[]).unwrap();
    writer.execute_batch("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)").unwrap();
    let reader = Connection::open(&path).unwrap();
    (dir, writer, reader)
}

/// Inserts `rows` rows of 300 random bytes in one transaction, committed or rolled back.
fn transaction(conn: &mut Connection, rows: usize, commit: bool) {
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx.prepare_cached("INSERT INTO blobs (data) VALUES (randomblob(300))").unwrap();
        for _ in 0..rows {
            insert.execute([]).unwrap();
        }
    }
    if commit {
        tx.commit().unwrap()
    } else {
        tx.rollback().unwrap()
    }
}

fn count(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM blobs", [], |r| r.get(0)).unwrap()
}

fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}

// Commits of 1 to 20,000 rows (far past the unix VFS's largest write) are each read at once by a plain connection.
#[test]
fn every_commit_is_read_by_another_connection_when_it_returns() {
    let (_dir, mut conn, reader) = open();
    let mut expected = 0;
    for rows in [1, 12, 350, 5_000, 20_000, 3] {
        transaction(&mut conn, rows, true);
        expected += rows as i64;
        assert_eq!(count(&reader), expected, "after a commit of {rows} rows");
    }
    assert_eq!(integrity(&reader), "ok");
}

// A transaction large enough to spill pages to the WAL before its commit, then rolled back,
// leaves nothing a reader can see, and the commits after it are read in full.
#[test]
fn a_rolled_back_transaction_leaves_nothing_even_after_spilling() {
    let (_dir, mut conn, reader) = open();
    transaction(&mut conn, 100, true);
    // A 40-page cache makes a 10,000-row transaction write frames before it ends.
    conn.pragma_update(None, "cache_size", 40).unwrap();
    transaction(&mut conn, 10_000, false);
    assert_eq!(count(&reader), 100);
    transaction(&mut conn, 10_000, true);
    transaction(&mut conn, 7, true);
    assert_eq!(count(&reader), 10_107);
    assert_eq!(integrity(&reader), "ok");
}

// After another connection checkpoints and truncates the WAL (as the server's checkpointer and
// idle writer do), the writer starts the WAL over and its commits are still read.
#[test]
fn commits_after_the_wal_starts_over_are_read() {
    let (_dir, mut conn, reader) = open();
    for round in 1..=3 {
        transaction(&mut conn, 2_000, true);
        let (busy, _, _): (i64, i64, i64) =
            reader.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
        assert_eq!(busy, 0, "the checkpoint ran");
        transaction(&mut conn, 5, true);
        assert_eq!(count(&reader), round * 2_005);
    }
    assert_eq!(integrity(&reader), "ok");
}

// Copying the database and WAL files while the writer is still open (what a `kill -9` leaves:
// no checkpoint, no close) and opening the copy recovers every committed row from the WAL:
// the frames on disk are complete and their checksums chain.
#[test]
fn the_files_a_crash_leaves_hold_every_commit() {
    let (dir, mut conn, _) = open();
    for rows in [1, 350, 20_000] {
        transaction(&mut conn, rows, true);
    }
    transaction(&mut conn, 500, false);
    transaction(&mut conn, 12, true);
    let copy = tempfile::tempdir().unwrap();
    for suffix in ["", "-wal"] {
        std::fs::copy(dir.path().join(format!("events.db{suffix}")), copy.path().join(format!("events.db{suffix}")))
            .unwrap();
    }
    let recovered = Connection::open(copy.path().join("events.db")).unwrap();
    assert_eq!(count(&recovered), 20_363);
    assert_eq!(integrity(&recovered), "ok");
    drop(conn);
}

// The bundled SQLite is the release the shim was validated against, and the writer runs on the
// shim (a SQLite upgrade fails here until the shim is checked against it); other connections
// keep the default VFS.
#[test]
fn the_writer_runs_on_the_shim() {
    assert!(wal_vfs::supported(), "linked SQLite {} is not the validated 3.53.2", rusqlite::version());
    let (_dir, writer, reader) = open();
    assert_eq!(wal_vfs::vfs_name(&writer).as_deref(), Some("session-log-wal/unix"));
    assert_eq!(wal_vfs::vfs_name(&reader).as_deref(), Some("unix"));
}
