//! A VFS shim over SQLite's default (unix) VFS that hands a transaction's WAL frames to the
//! kernel together at its commit frame (one `pwrite` per 30 frames: the unix VFS writes at most
//! 128 KiB at once), instead of two `pwrite`s per frame (the 24-byte frame header, then the page). Under
//! single events the writer spent 33% of its CPU in those `pwrite`s (16 frames per commit of ~12
//! rows); writing the same bytes 16 frames at a time took a third of the time per frame
//! (measured here: 2.9–3.8 µs against 1.0–1.2 µs per 4 KiB frame, rewriting a file in place).
//! The server's CPU per single event went from 69–74 µs to 53–66 µs.
//!
//! Only the writer connection uses it (`open_writer_connection`, by name [`NAME`]); readers and
//! the checkpointer use the default VFS, and every file the shim opens behaves as the default
//! VFS's would, apart from when WAL bytes reach the kernel.
//!
//! Invariant: every WAL byte SQLite wrote is in the kernel before SQLite can publish it, so a
//! commit is as durable as without the shim (it survives `kill -9` of the process) and other
//! connections read exactly what they would have. SQLite publishes frames (the wal-index
//! header) only after `walFrames` has written a transaction's commit frame (WAL format:
//! <https://sqlite.org/fileformat2.html#walformat>), and the shim writes the buffer out:
//! - right after the page of a commit frame (a frame header whose "database size after commit"
//!   field, bytes 4–8, is non-zero);
//! - before any write that does not continue the buffer (frames overwritten in place, the WAL
//!   header at a restart, checksum rewrites), which then go straight through;
//! - before any other call on the file (read, sync, truncate, size, file control, close);
//! - after a page, when another frame of that size would not fit in one write ([`MAX_WRITE`]);
//!   so the buffer stays under 128 KiB, and every write-out is one `pwrite`.
//!
//! A buffer only ever starts with a non-commit frame header, so a write that might be the last
//! before publication (a commit frame's header rewritten by `walRewriteChecksums`) is never held.

#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use rusqlite::ffi;

/// The shim's VFS name, for `Connection::open_with_flags_and_vfs`.
pub const NAME: &CStr = c"session-log-wal";

/// The SQLite release whose private details the shim depends on (`sqlite3.c` 3.53.2, bundled by
/// libsqlite3-sys 0.38.2): the 17-bit write length of the unix VFS's `seekAndWrite`, that the
/// unix VFS reads `pAppData` only in `xOpen`, and that `walFrames` writes a frame's header and
/// page as two calls. With any other release linked, the writer uses the default VFS.
pub const VALIDATED_SQLITE: c_int = 3_053_002;

/// The VFS a connection's main database file uses, as SQLite names it (`SQLITE_FCNTL_VFSNAME`):
/// how a test tells whether the writer runs on the shim.
pub fn vfs_name(conn: &rusqlite::Connection) -> Option<String> {
    let mut name: *mut c_char = std::ptr::null_mut();
    // SAFETY: the handle is open for the borrow of `conn`; SQLITE_FCNTL_VFSNAME writes a string
    // from sqlite3_mprintf into `name`, which is freed below.
    unsafe {
        let rc = ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_VFSNAME,
            (&mut name as *mut *mut c_char).cast(),
        );
        if rc != ffi::SQLITE_OK || name.is_null() {
            return None;
        }
        let text = CStr::from_ptr(name).to_string_lossy().into_owned();
        ffi::sqlite3_free(name.cast());
        Some(text)
    }
}

/// Whether the linked SQLite is the one the shim was validated against.
pub fn supported() -> bool {
    // SAFETY: sqlite3_libversion_number has no preconditions.
    unsafe { ffi::sqlite3_libversion_number() == VALIDATED_SQLITE }
}

/// Largest write the unix VFS takes in one call: its `seekAndWrite` keeps only the low 17 bits of
/// the length (sqlite3.c, 3.53): 31 pages of 4 KiB, 30 frames.
const MAX_WRITE: usize = 31 * 4096;

/// Size of a WAL frame header (bytes).
const FRAME_HEADER: usize = 24;

/// One open file: SQLite allocates `szOsFile` bytes, this struct, then the default VFS's file.
#[repr(C)]
struct ShimFile {
    /// Must come first: SQLite reads `pMethods` through a `*mut sqlite3_file`.
    base: ffi::sqlite3_file,
    /// The default VFS's file, in the same allocation after this struct.
    inner: *mut ffi::sqlite3_file,
    /// Opened as a WAL file (`SQLITE_OPEN_WAL`): only those are buffered.
    wal: bool,
    /// The buffer holds a commit frame's header: write out after its page.
    commit_pending: bool,
    /// File offset of `buffer[0]`.
    start: i64,
    buffer: Vec<u8>,
}

/// Bytes reserved for [`ShimFile`] before the inner file (kept 16-byte aligned).
const SHIM_SIZE: usize = std::mem::size_of::<ShimFile>().next_multiple_of(16);

/// Registers the shim (once; later calls return the first outcome). Errors: the SQLite result
/// code when there is no default VFS or registration fails.
pub fn register() -> Result<(), c_int> {
    static REGISTERED: OnceLock<Result<(), c_int>> = OnceLock::new();
    *REGISTERED.get_or_init(|| unsafe {
        let default = ffi::sqlite3_vfs_find(std::ptr::null());
        if default.is_null() {
            return Err(ffi::SQLITE_ERROR);
        }
        let mut vfs: ffi::sqlite3_vfs = *default;
        vfs.szOsFile = (SHIM_SIZE + (*default).szOsFile as usize) as c_int;
        vfs.pNext = std::ptr::null_mut();
        vfs.zName = NAME.as_ptr();
        vfs.pAppData = default.cast();
        vfs.xOpen = Some(shim_open);
        // The unix VFS reads pAppData only in xOpen; its other methods ignore the VFS pointer.
        let vfs = Box::leak(Box::new(vfs));
        match ffi::sqlite3_vfs_register(vfs, 0) {
            ffi::SQLITE_OK => Ok(()),
            code => Err(code),
        }
    })
}

/// xOpen: opens the default VFS's file after the shim's header in SQLite's allocation of
/// `szOsFile` bytes, then writes the header.
unsafe extern "C" fn shim_open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite calls xOpen on this VFS (whose pAppData is the default VFS) with `szOsFile`
    // bytes at `file`, room for the shim's header and then the default VFS's file.
    unsafe {
        let default = (*vfs).pAppData as *mut ffi::sqlite3_vfs;
        let inner = file.cast::<u8>().add(SHIM_SIZE).cast::<ffi::sqlite3_file>();
        let Some(open) = (*default).xOpen else { return ffi::SQLITE_ERROR };
        let rc = open(default, name, inner, flags, out_flags);
        if rc != ffi::SQLITE_OK {
            // SQLite calls xClose only when pMethods is set; close the inner file ourselves.
            if !(*inner).pMethods.is_null() {
                if let Some(close) = (*(*inner).pMethods).xClose {
                    close(inner);
                }
            }
            (*file).pMethods = std::ptr::null();
            return rc;
        }
        let wal = flags & ffi::SQLITE_OPEN_WAL != 0;
        file.cast::<ShimFile>().write(ShimFile {
            base: ffi::sqlite3_file { pMethods: &METHODS },
            inner,
            wal,
            commit_pending: false,
            start: 0,
            buffer: Vec::with_capacity(if wal { MAX_WRITE } else { 0 }),
        });
        ffi::SQLITE_OK
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(x_close),
    xRead: Some(x_read),
    xWrite: Some(x_write),
    xTruncate: Some(x_truncate),
    xSync: Some(x_sync),
    xFileSize: Some(x_file_size),
    xLock: Some(x_lock),
    xUnlock: Some(x_unlock),
    xCheckReservedLock: Some(x_check_reserved_lock),
    xFileControl: Some(x_file_control),
    xSectorSize: Some(x_sector_size),
    xDeviceCharacteristics: Some(x_device_characteristics),
    xShmMap: Some(x_shm_map),
    xShmLock: Some(x_shm_lock),
    xShmBarrier: Some(x_shm_barrier),
    xShmUnmap: Some(x_shm_unmap),
    xFetch: Some(x_fetch),
    xUnfetch: Some(x_unfetch),
};

// SAFETY (for every method below): SQLite calls them only with a file that `shim_open` opened
// (its `pMethods` is `METHODS`), so `file` points at an initialised `ShimFile` whose `inner`
// file is open; calls on one file are serialised by SQLite (one connection, one thread at a
// time), so no two `&mut ShimFile` are live at once.
unsafe fn shim<'a>(file: *mut ffi::sqlite3_file) -> &'a mut ShimFile {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe { &mut *file.cast::<ShimFile>() }
}

/// The inner file and its methods.
unsafe fn inner<'a>(file: *mut ffi::sqlite3_file) -> (*mut ffi::sqlite3_file, &'a ffi::sqlite3_io_methods) {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let inner = shim(file).inner;
        (inner, &*(*inner).pMethods)
    }
}

/// Writes the buffer out in inner writes of at most [`MAX_WRITE`] bytes; returns SQLite's result
/// code. The buffer is emptied whatever the outcome: on an error SQLite rolls the transaction back.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let f = shim(file);
        f.commit_pending = false;
        let inner = f.inner;
        let Some(write) = (*(*inner).pMethods).xWrite else { return ffi::SQLITE_IOERR_WRITE };
        let mut rc = ffi::SQLITE_OK;
        let mut offset = f.start;
        for chunk in f.buffer.chunks(MAX_WRITE) {
            rc = write(inner, chunk.as_ptr().cast(), chunk.len() as c_int, offset);
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += chunk.len() as i64;
        }
        f.buffer.clear();
        rc
    }
}

/// Flushes, then runs `call` on the inner file (the flush's error wins).
unsafe fn flushed(
    file: *mut ffi::sqlite3_file,
    call: impl FnOnce(*mut ffi::sqlite3_file, &ffi::sqlite3_io_methods) -> c_int,
) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let (inner, methods) = inner(file);
        call(inner, methods)
    }
}

unsafe extern "C" fn x_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let rc = flush(file);
        let (inner, methods) = inner(file);
        let closed = methods.xClose.map_or(ffi::SQLITE_OK, |close| close(inner));
        std::ptr::drop_in_place(file.cast::<ShimFile>());
        if rc != ffi::SQLITE_OK {
            rc
        } else {
            closed
        }
    }
}

unsafe extern "C" fn x_write(file: *mut ffi::sqlite3_file, data: *const c_void, amount: c_int, offset: i64) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let f = shim(file);
        if !f.wal || amount <= 0 {
            return flushed(file, |i, m| m.xWrite.map_or(ffi::SQLITE_IOERR_WRITE, |w| w(i, data, amount, offset)));
        }
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), amount as usize);
        let continues = !f.buffer.is_empty() && offset == f.start + f.buffer.len() as i64;
        let commit_header = bytes.len() == FRAME_HEADER && bytes[4..8] != [0, 0, 0, 0];
        let starts = f.buffer.is_empty() && bytes.len() == FRAME_HEADER && !commit_header;
        if !continues && !starts {
            // Not part of a run of appended frames: out with the buffer, and this write straight through.
            return flushed(file, |i, m| m.xWrite.map_or(ffi::SQLITE_IOERR_WRITE, |w| w(i, data, amount, offset)));
        }
        if starts {
            f.start = offset;
        }
        let completes_commit = f.commit_pending && !commit_header;
        f.buffer.extend_from_slice(bytes);
        f.commit_pending |= commit_header;
        let full = bytes.len() != FRAME_HEADER && f.buffer.len() + FRAME_HEADER + bytes.len() > MAX_WRITE;
        if completes_commit || full {
            return flush(file);
        }
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn x_read(file: *mut ffi::sqlite3_file, data: *mut c_void, amount: c_int, offset: i64) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe { flushed(file, |i, m| m.xRead.map_or(ffi::SQLITE_IOERR_READ, |r| r(i, data, amount, offset))) }
}

unsafe extern "C" fn x_truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe { flushed(file, |i, m| m.xTruncate.map_or(ffi::SQLITE_IOERR_TRUNCATE, |t| t(i, size))) }
}

unsafe extern "C" fn x_sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe { flushed(file, |i, m| m.xSync.map_or(ffi::SQLITE_IOERR_FSYNC, |s| s(i, flags))) }
}

unsafe extern "C" fn x_file_size(file: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe { flushed(file, |i, m| m.xFileSize.map_or(ffi::SQLITE_IOERR_FSTAT, |s| s(i, size))) }
}

/// File controls go to the default VFS's file; `SQLITE_FCNTL_VFSNAME` answers with this shim's
/// name before the default VFS's (`session-log-wal/unix`), as SQLite's own shims do.
unsafe extern "C" fn x_file_control(file: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`). For VFSNAME, `arg`
    // is a `*mut *mut c_char` that the inner call fills with a string from sqlite3_malloc,
    // replaced here by another one from sqlite3_malloc (the caller frees it with sqlite3_free).
    unsafe {
        let rc = flushed(file, |i, m| m.xFileControl.map_or(ffi::SQLITE_NOTFOUND, |c| c(i, op, arg)));
        if op == ffi::SQLITE_FCNTL_VFSNAME && rc == ffi::SQLITE_OK && !arg.is_null() {
            let out = arg.cast::<*mut c_char>();
            let inner = if (*out).is_null() { &b""[..] } else { CStr::from_ptr(*out).to_bytes() };
            let mut name = NAME.to_bytes().to_vec();
            name.push(b'/');
            name.extend_from_slice(inner);
            let copy = ffi::sqlite3_malloc((name.len() + 1) as c_int).cast::<u8>();
            if !copy.is_null() {
                std::ptr::copy_nonoverlapping(name.as_ptr(), copy, name.len());
                *copy.add(name.len()) = 0;
                ffi::sqlite3_free((*out).cast());
                *out = copy.cast();
            }
        }
        rc
    }
}

unsafe extern "C" fn x_lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let (i, m) = inner(file);
        m.xLock.map_or(ffi::SQLITE_OK, |l| l(i, level))
    }
}

unsafe extern "C" fn x_unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let (i, m) = inner(file);
        m.xUnlock.map_or(ffi::SQLITE_OK, |u| u(i, level))
    }
}

unsafe extern "C" fn x_check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let (i, m) = inner(file);
        m.xCheckReservedLock.map_or(ffi::SQLITE_OK, |c| c(i, out))
    }
}

unsafe extern "C" fn x_sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let (i, m) = inner(file);
        m.xSectorSize.map_or(4096, |s| s(i))
    }
}

unsafe extern "C" fn x_device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let (i, m) = inner(file);
        m.xDeviceCharacteristics.map_or(0, |d| d(i))
    }
}

unsafe extern "C" fn x_shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let (i, m) = inner(file);
        if m.iVersion < 2 {
            return ffi::SQLITE_IOERR_SHMMAP;
        }
        m.xShmMap.map_or(ffi::SQLITE_IOERR_SHMMAP, |f| f(i, page, size, extend, out))
    }
}

unsafe extern "C" fn x_shm_lock(file: *mut ffi::sqlite3_file, offset: c_int, n: c_int, flags: c_int) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let (i, m) = inner(file);
        if m.iVersion < 2 {
            return ffi::SQLITE_IOERR_SHMLOCK;
        }
        m.xShmLock.map_or(ffi::SQLITE_IOERR_SHMLOCK, |f| f(i, offset, n, flags))
    }
}

unsafe extern "C" fn x_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let (i, m) = inner(file);
        if m.iVersion >= 2 {
            if let Some(f) = m.xShmBarrier {
                f(i);
            }
        }
    }
}

unsafe extern "C" fn x_shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let (i, m) = inner(file);
        if m.iVersion < 2 {
            return ffi::SQLITE_OK;
        }
        m.xShmUnmap.map_or(ffi::SQLITE_OK, |f| f(i, delete))
    }
}

unsafe extern "C" fn x_fetch(file: *mut ffi::sqlite3_file, offset: i64, amount: c_int, out: *mut *mut c_void) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let (i, m) = inner(file);
        match m.xFetch {
            Some(f) if m.iVersion >= 3 => f(i, offset, amount, out),
            _ => {
                *out = std::ptr::null_mut();
                ffi::SQLITE_OK
            }
        }
    }
}

unsafe extern "C" fn x_unfetch(file: *mut ffi::sqlite3_file, offset: i64, page: *mut c_void) -> c_int {
    // SAFETY: `file` was opened by `shim_open` (see the note above `shim`).
    unsafe {
        let (i, m) = inner(file);
        match m.xUnfetch {
            Some(f) if m.iVersion >= 3 => f(i, offset, page),
            _ => ffi::SQLITE_OK,
        }
    }
}
