//! The server hands freed heap memory back to the system (`memory::release_freed`, once a
//! minute): after a peak of small allocations is freed, the resident size comes down.

/// The process's resident size in bytes (`/proc/self/statm`, pages of 4 KiB).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

// 64 MiB of 4 KiB allocations freed but for the newest (which pins the heap's top, so glibc
// does not shrink it by itself) stay resident until `release_freed`, which gives back most of it.
#[test]
fn freed_memory_goes_back_to_the_system() {
    let mut blocks: Vec<Vec<u8>> = (0..16_384).map(|i| vec![(i % 251) as u8; 4096]).collect();
    let pinned = blocks.pop();
    drop(blocks);
    let before = resident_bytes();
    session_log_server::memory::release_freed();
    let after = resident_bytes();
    drop(pinned);
    assert!(
        after + 32 * 1024 * 1024 < before,
        "resident {} MB before, {} MB after release_freed",
        before / 1_048_576,
        after / 1_048_576
    );
}
