//! `project.export`: a JSON bundle of the project and its live documents, read page by page
//! with progress after each page.

use serde_json::value::RawValue;

use crate::{
    db::operations::DocumentTotals,
    error::{ApiError, ErrorCode},
};

/// Documents read per step.
pub const PAGE: i64 = 500;

/// Largest bundle one export writes, in bytes of JSON text (the bundle is held in memory as
/// text and stored as one JSON value). It is estimated up front from the documents' totals,
/// so a project far over it fails at once, and the text itself is held to it as it grows.
pub const MAX_BUNDLE_BYTES: usize = 64 << 20;

/// About the length of one embedding number in the bundle: PostgreSQL writes `real`s with up to
/// 9 significant digits and a `, ` between them (`-0.123456789, `).
pub const BYTES_PER_EMBEDDING_NUMBER: i64 = 14;

/// About what a document's id, times, version, language, keys and punctuation add.
pub const BYTES_PER_DOCUMENT: i64 = 300;

/// The bundle size the totals predict.
pub fn estimate(totals: &DocumentTotals) -> i64 {
    totals.text_bytes + totals.embedding_numbers * BYTES_PER_EMBEDDING_NUMBER + totals.documents * BYTES_PER_DOCUMENT
}

/// The error of an export over [`MAX_BUNDLE_BYTES`].
pub fn too_large(what: String) -> ApiError {
    ApiError::Status(ErrorCode::PayloadTooLarge, format!("{what}; exports are limited to {MAX_BUNDLE_BYTES} bytes of JSON"))
}

/// Fails an export whose estimated bundle is over the limit, before anything is read.
pub fn check_estimate(totals: &DocumentTotals) -> Result<usize, ApiError> {
    let bytes = estimate(totals);
    match usize::try_from(bytes) {
        Ok(fits) if fits <= MAX_BUNDLE_BYTES => Ok(fits),
        _ => Err(too_large(format!(
            "the project's {} documents come to about {bytes} bytes ({} of title, content and metadata, {} embedding numbers at {} bytes each, {} bytes each for the rest)",
            totals.documents, totals.text_bytes, totals.embedding_numbers, BYTES_PER_EMBEDDING_NUMBER, BYTES_PER_DOCUMENT
        ))),
    }
}

/// The bundle `{format, project, documents}` as JSON text, written as the pages arrive: held
/// as `serde_json::Value`s, every embedding number would be a 72-byte value (with
/// `preserve_order`, as this workspace builds it) against about 14 bytes of text, and storing
/// them would write all of that text out again.
pub struct Bundle {
    text: String,
    documents: usize,
    limit: usize,
}

impl Bundle {
    /// Starts the bundle of `project`, with room for about `expected_bytes` of documents and
    /// never more than `limit` bytes in all.
    pub fn new(project: &serde_json::Value, expected_bytes: usize, limit: usize) -> Self {
        let mut text = String::with_capacity(expected_bytes.min(limit) + 4096);
        text.push_str(r#"{"format":""#);
        text.push_str(super::import::EXPORT_FORMAT);
        text.push_str(r#"","project":"#);
        text.push_str(&project.to_string());
        text.push_str(r#","documents":["#);
        Self { text, documents: 0, limit }
    }

    /// Appends one document, already JSON text (as PostgreSQL writes it); fails when the
    /// bundle would outgrow its limit (what the estimate did not foresee: escaped content,
    /// say).
    pub fn push(&mut self, document: &str) -> Result<(), ApiError> {
        if self.text.len() + document.len() + 3 > self.limit {
            return Err(too_large(format!("the bundle outgrew its limit at document {}", self.documents + 1)));
        }
        if self.documents > 0 {
            self.text.push(',');
        }
        self.text.push_str(document);
        self.documents += 1;
        Ok(())
    }

    /// Documents appended so far.
    pub fn documents(&self) -> usize {
        self.documents
    }

    /// The finished bundle, checked to be one JSON value.
    pub fn finish(mut self) -> Result<Box<RawValue>, serde_json::Error> {
        self.text.push_str("]}");
        RawValue::from_string(self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_is_the_format_the_project_and_the_documents_in_order() {
        let project = serde_json::json!({ "name": "P \"quoted\"" });
        let empty: serde_json::Value = serde_json::from_str(Bundle::new(&project, 0, 1000).finish().unwrap().get()).unwrap();
        assert_eq!(empty, serde_json::json!({ "format": "jeex.export.v1", "project": project, "documents": [] }));

        let mut bundle = Bundle::new(&project, 100, 1000);
        bundle.push(r#"{"title": "a", "embedding": [0.5, -1]}"#).unwrap();
        bundle.push(r#"{"title": "b\n", "embedding": null}"#).unwrap();
        assert_eq!(bundle.documents(), 2);
        let value: serde_json::Value = serde_json::from_str(bundle.finish().unwrap().get()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({ "format": "jeex.export.v1", "project": project, "documents": [
                { "title": "a", "embedding": [0.5, -1] }, { "title": "b\n", "embedding": null },
            ] })
        );
    }

    #[test]
    fn a_broken_document_fails_the_bundle_rather_than_storing_it() {
        let mut bundle = Bundle::new(&serde_json::json!({}), 0, 1000);
        bundle.push(r#"{"title": "#).unwrap();
        assert!(bundle.finish().is_err());
    }

    #[test]
    fn a_bundle_never_outgrows_its_limit() {
        let mut bundle = Bundle::new(&serde_json::json!({}), 0, 110);
        let document = r#"{"title": "0123456789"}"#;
        let mut pushed = 0;
        let err = loop {
            match bundle.push(document) {
                Ok(()) => pushed += 1,
                Err(e) => break e,
            }
        };
        assert_eq!((pushed, bundle.documents()), (2, 2));
        assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
        assert!(err.to_string().contains("at document 3"), "{err}");
        // What was pushed still closes into a bundle within the limit.
        assert_eq!(bundle.finish().unwrap().get().len(), 102);
    }

    #[test]
    fn a_project_far_over_the_limit_fails_before_anything_is_read() {
        let small = DocumentTotals { documents: 10, text_bytes: 1000, embedding_numbers: 3840 };
        assert_eq!(check_estimate(&small).unwrap(), 1000 + 3840 * 14 + 10 * 300);
        let big = DocumentTotals { documents: 200_000, text_bytes: 1 << 20, embedding_numbers: 200_000 * 384 };
        let err = check_estimate(&big).unwrap_err();
        assert_eq!(err.code(), ErrorCode::PayloadTooLarge);
        let message = err.to_string();
        assert!(message.contains("200000 documents") && message.contains("76800000 embedding numbers"), "{message}");
    }
}
