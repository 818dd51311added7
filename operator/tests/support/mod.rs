//! Test fixtures.
// Each test binary uses a different part of the fixtures.
#![allow(dead_code)]

pub mod apiserver;
pub mod chart;
pub mod cluster;
pub mod fields;
pub mod rbac;
pub mod validation;
pub mod world;

/// A number no other call in this process gets (for temporary file names).
pub fn unique() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
