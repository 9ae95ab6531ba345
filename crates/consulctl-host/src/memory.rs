//! Keeping the daemons' memory small with glibc's allocator: a daemon holds one large catalog
//! at a time, and what a render allocated is freed when it is done.
//!
//! - One malloc arena: each thread that allocates (the runtime's, the blocking pool's) would
//!   otherwise get an arena of its own whose freed pages stay with it.
//! - After each render, freed memory at the top of the heap and free pages are given back.
//!
//! On other C libraries these are no-ops.

/// At start, before any thread exists.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Give freed memory back to the system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases memory that is free.
    unsafe {
        libc::malloc_trim(0);
    }
}
