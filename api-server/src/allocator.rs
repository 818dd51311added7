//! The server's memory allocator: mimalloc, tuned to keep the resident set small.
//!
//! Why: a request allocates and frees dozens of small objects (headers, the request and
//! response, log fields) on two worker threads; glibc's malloc was 15 % of the server's CPU
//! profile under load, mimalloc cuts the server's CPU per request by about a tenth
//! (`cargo bench -p jeex-api --bench live`, figures in docs/performance.md).
//!
//! Its defaults suit big machines, not a 30 MiB service: transparent huge pages turn each
//! touched 4 KiB into 2 MiB, and what start-up allocated and freed stays resident until the
//! thread allocates again, which the main thread of a server never does (measured: idle RSS
//! 55 MiB with the defaults, 28 MiB with [`tune`] and [`release_startup_memory`]).
//! Only the binary installs it, so tests and benches keep the system allocator.

use libmimalloc_sys::{mi_collect, mi_option_set, mi_option_t};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_allow_thp` in mimalloc v2's option enumeration (the crate leaves most options
/// unnamed); `tests::option_number_matches_v2` checks it against the default.
const ALLOW_THP: mi_option_t = 37;

/// Turns transparent huge pages off, unless the operator set mimalloc's own
/// `MIMALLOC_ALLOW_THP` (mimalloc reads that itself). Call first thing in `main`, before any
/// other thread starts: mimalloc's option setters are not thread-safe.
pub fn tune() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    // New segments are not advised as huge pages...
    // SAFETY: a plain setter of mimalloc's option table, called while only this thread runs.
    unsafe { mi_option_set(ALLOW_THP, 0) };
    // ...and those mimalloc reserved before `main` ran are covered for the whole process.
    // SAFETY: PR_SET_THP_DISABLE takes integers only and touches no memory of ours. A kernel
    // without it leaves huge pages on: more memory, still correct.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, 0, 0, 0) };
}

/// Returns the memory start-up used and freed (building the OpenAPI document and the route
/// table, reading keys and config) to the system. Call on the thread that started the server,
/// once it is ready to serve.
pub fn release_startup_memory() {
    // SAFETY: mimalloc's collection entry point; it only walks the calling thread's heap and
    // the shared arenas under mimalloc's own locks.
    unsafe { mi_collect(true) };
}

#[cfg(test)]
mod tests {
    use std::ffi::c_long;

    use libmimalloc_sys::mi_option_get;

    use super::*;

    fn option(option: mi_option_t) -> c_long {
        // SAFETY: a read of mimalloc's option table.
        unsafe { mi_option_get(option) }
    }

    /// The test binary runs without `tune()`: mimalloc's documented default (1) must sit at
    /// the number we set, and its neighbour `generic_collect` (10000) just before it, or a
    /// mimalloc update renumbered its options.
    #[test]
    fn option_number_matches_v2() {
        assert_eq!(option(ALLOW_THP), 1, "mi_option_allow_thp moved");
        assert_eq!(option(ALLOW_THP - 1), 10_000, "mi_option_generic_collect moved");
    }
}
