//! Handing freed heap memory back to the system. glibc's malloc keeps what the server frees in
//! its arenas for reuse, so after each peak (a report folding a page of summaries, a burst of
//! large batches) the resident size stays where the peak took it, and a steady load grows it in
//! steps that never come down (`docs/benchmarks.md`, the 30-minute soak). `malloc_trim(0)`
//! returns the free pages of every arena (`madvise(MADV_DONTNEED)`); the housekeeping task calls
//! [`release_freed`] once a minute.

/// Returns the heap's free pages to the system: glibc's `malloc_trim(0)` on Linux with glibc
/// (it locks each arena in turn while it walks it, a few ms for this server's heap); nothing
/// elsewhere (musl and other allocators return memory by themselves or differently).
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointers and only walks glibc's own arenas under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
