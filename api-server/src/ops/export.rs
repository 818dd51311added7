//! `project.export`: a JSON bundle of the project and its live documents, read page by page
//! with progress after each page.

/// Documents read per step.
pub const PAGE: i64 = 500;
