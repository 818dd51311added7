//! `project.export`: a JSON bundle of the project and its live documents, read page by page
//! with progress after each page.

use serde_json::value::RawValue;

/// Documents read per step.
pub const PAGE: i64 = 500;

/// Largest total of document content and embeddings one export bundles (the bundle is held
/// in memory as text and stored as one JSON value); larger projects fail the export with a
/// clear error.
pub const MAX_BUNDLE_BYTES: i64 = 64 << 20;

/// What one embedding number counts towards [`MAX_BUNDLE_BYTES`]: about its length as JSON
/// text (`-0.123456789`).
pub const BYTES_PER_EMBEDDING_NUMBER: i64 = 12;

/// The bundle `{format, project, documents}` as JSON text, written as the pages arrive: held
/// as `serde_json::Value`s, every embedding number would be a 72-byte value (with
/// `preserve_order`, as this workspace builds it) against about 12 bytes of text, and storing
/// them would write all of that text out again.
pub struct Bundle {
    text: String,
    documents: usize,
}

impl Bundle {
    /// Starts the bundle of `project`, with room for about `expected_bytes` of documents.
    pub fn new(project: &serde_json::Value, expected_bytes: usize) -> Self {
        let mut text = String::with_capacity(expected_bytes + 4096);
        text.push_str(r#"{"format":""#);
        text.push_str(super::import::EXPORT_FORMAT);
        text.push_str(r#"","project":"#);
        text.push_str(&project.to_string());
        text.push_str(r#","documents":["#);
        Self { text, documents: 0 }
    }

    /// Appends one document, already JSON text (as PostgreSQL writes it).
    pub fn push(&mut self, document: &str) {
        if self.documents > 0 {
            self.text.push(',');
        }
        self.text.push_str(document);
        self.documents += 1;
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
        let empty: serde_json::Value = serde_json::from_str(Bundle::new(&project, 0).finish().unwrap().get()).unwrap();
        assert_eq!(empty, serde_json::json!({ "format": "jeex.export.v1", "project": project, "documents": [] }));

        let mut bundle = Bundle::new(&project, 100);
        bundle.push(r#"{"title": "a", "embedding": [0.5, -1]}"#);
        bundle.push(r#"{"title": "b\n", "embedding": null}"#);
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
        let mut bundle = Bundle::new(&serde_json::json!({}), 0);
        bundle.push(r#"{"title": "#);
        assert!(bundle.finish().is_err());
    }
}
