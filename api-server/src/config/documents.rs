//! Limits on what one document may hold: its content and its `metadata`.

use super::{
    error::ConfigError,
    parse::{parse_size, parse_whole, parse_with},
};

/// Limits on a document's `metadata`: every list response carries up to 100 of them, so
/// one editor's metadata must not make every viewer's page huge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLimits {
    /// Bytes of its compact JSON.
    pub max_bytes: usize,
    /// Nesting levels, the object itself being level 1.
    pub max_depth: usize,
}

/// Reads `JEEX_DOCUMENT_MAX_SIZE`: the largest document content, in bytes.
pub(super) fn parse_content_limit(get: &impl Fn(&str) -> Option<String>) -> Result<usize, ConfigError> {
    parse_with(get, "JEEX_DOCUMENT_MAX_SIZE", "512KiB", "1MiB", parse_size)
}

/// Reads `JEEX_METADATA_MAX_SIZE` and `JEEX_METADATA_MAX_DEPTH`.
pub(super) fn parse_metadata(get: &impl Fn(&str) -> Option<String>) -> Result<MetadataLimits, ConfigError> {
    Ok(MetadataLimits {
        max_bytes: parse_with(get, "JEEX_METADATA_MAX_SIZE", "16KiB", "16KiB", parse_size)?,
        max_depth: parse_whole(get, "JEEX_METADATA_MAX_DEPTH", "8", "8", 1..=32)?,
    })
}
