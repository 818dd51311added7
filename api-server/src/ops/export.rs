//! `project.export`: a JSON bundle of the project and its live documents, read page by page
//! with progress after each page.

/// Documents read per step.
pub const PAGE: i64 = 500;

/// Largest total of document content and embeddings one export bundles (the bundle is held
/// in memory and stored as one JSON value); larger projects fail the export with a clear
/// error.
pub const MAX_BUNDLE_BYTES: i64 = 64 << 20;

/// What one embedding number counts towards [`MAX_BUNDLE_BYTES`]: about its length as JSON
/// text (`-0.123456789`).
pub const BYTES_PER_EMBEDDING_NUMBER: i64 = 12;
