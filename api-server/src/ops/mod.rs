//! Long-running operations: the kinds (`import`, `export`) and the workers that run them.

pub mod events;
pub mod export;
pub mod import;
pub mod worker;
