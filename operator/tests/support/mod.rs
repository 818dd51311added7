//! Test fixtures.

pub mod apiserver;
