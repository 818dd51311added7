//! `project.export`: a JSON bundle of the project and its live documents, read page by page
//! with progress after each page.

/// Documents read per step.
pub const PAGE: i64 = 500;

/// Largest total document content one export bundles (the bundle is held in memory and
/// stored as one JSON value); larger projects fail the export with a clear error.
pub const MAX_CONTENT_BYTES: i64 = 64 << 20;
