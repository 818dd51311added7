//! Long-running operations: the kinds (`import`, `export`, `reindex`) and the workers that run
//! them.

pub mod export;
pub mod import;
pub mod reindex;
pub mod step;
pub mod worker;
