//! Test fixtures.
// Each test binary uses a different part of the fixtures.
#![allow(dead_code)]

pub mod apiserver;
pub mod world;
