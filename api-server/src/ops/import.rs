//! `documents.import`: up to 10,000 documents, validated when the operation is created,
//! inserted in batches. Each document's id is derived from the operation and its position, so
//! a batch repeated after a crash inserts nothing twice. A document may carry its embedding
//! (as in a `project.export` bundle), which reaches the vector index through the outbox like
//! any other write. A `project.export` result is a valid input as it stands (within these
//! limits and the request body limit): the bundle's project and each document's id, times and
//! version are accepted and left behind, since the copies are new documents of the importing
//! project.

use serde::{Deserialize, de::IgnoredAny};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    api::validation::Check,
    config::MetadataLimits,
    db::operations::ImportRows,
    error::{ApiError, FieldError},
};

/// Most documents one import takes.
pub const MAX_DOCUMENTS: usize = 10_000;

/// One document to import.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportDocument {
    /// Title.
    pub title: String,
    /// Content.
    #[serde(default)]
    pub content: String,
    /// Language code.
    #[serde(default = "english")]
    pub language: String,
    /// Metadata object.
    #[serde(default = "empty_object")]
    pub metadata: serde_json::Value,
    /// Embedding of the content: exactly `JEEX_VECTOR_DIM` finite numbers, or absent/null.
    #[serde(default)]
    pub embedding: Option<Vec<f64>>,
    /// An exported document's id: the copy gets a new one. Typed as the export writes it, so
    /// an ignored field is no place for arbitrary data.
    #[serde(default, rename = "id")]
    pub exported_id: Option<Uuid>,
    /// An exported document's creation time: the copy is created now.
    #[serde(default, rename = "created_at")]
    pub exported_created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// An exported document's update time.
    #[serde(default, rename = "updated_at")]
    pub exported_updated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// An exported document's version: the copy starts at 1.
    #[serde(default, rename = "version")]
    pub exported_version: Option<i64>,
}

fn english() -> String {
    "en".into()
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// The input of an import: `{documents}`, or a whole `project.export` bundle.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportInput {
    /// The documents.
    pub documents: Vec<ImportDocument>,
    /// A bundle's format; when given it must be one this server writes.
    #[serde(default)]
    pub format: Option<String>,
    /// A bundle's project: the documents go into the project the import runs in.
    #[serde(default)]
    pub project: Option<IgnoredAny>,
}

/// The bundle format `project.export` writes and `documents.import` reads.
pub const EXPORT_FORMAT: &str = "jeex.export.v1";

/// A validated import: the documents, and each one's embedding as stored (32-bit floats).
#[derive(Debug)]
pub struct Import {
    /// The documents as given.
    pub documents: Vec<ImportDocument>,
    /// `embeddings[i]` belongs to `documents[i]`.
    pub embeddings: Vec<Option<Vec<f32>>>,
}

/// The error of an input whose shape is wrong at `field`, before its documents are checked.
fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Validation { detail: "the import input is not valid".into(), errors: vec![FieldError { field: field.into(), message }] }
}

/// Parses and validates an import input (JSON text, read straight into typed documents: no
/// `serde_json::Value` of a large input is ever built) against the configured limits; every
/// problem names its JSON pointer.
pub fn parse(input: &str, max_content_bytes: usize, metadata: MetadataLimits, dim: u64) -> Result<Import, ApiError> {
    let mut parsed: ImportInput = serde_json::from_str(input).map_err(|e| invalid("/input", e.to_string()))?;
    if parsed.documents.is_empty() || parsed.documents.len() > MAX_DOCUMENTS {
        return Err(invalid("/input/documents", format!("must hold 1 to {MAX_DOCUMENTS} documents")));
    }
    if let Some(format) = parsed.format.as_deref().filter(|f| *f != EXPORT_FORMAT) {
        return Err(invalid("/input/format", format!("unknown bundle format {format:?}; this server reads {EXPORT_FORMAT:?}")));
    }
    let mut check = Check::default();
    let mut embeddings = Vec::with_capacity(parsed.documents.len());
    for (i, doc) in parsed.documents.iter_mut().enumerate() {
        check.text(&format!("/input/documents/{i}/title"), &doc.title, crate::api::documents::TITLE_MAX);
        check.max_bytes(&format!("/input/documents/{i}/content"), &doc.content, max_content_bytes);
        check.language(&format!("/input/documents/{i}/language"), &doc.language);
        check.metadata(&format!("/input/documents/{i}/metadata"), &doc.metadata, metadata);
        // Taken out as 32-bit floats: the f64 copy would double what a large import holds.
        embeddings.push(doc.embedding.take().map(|e| check.embedding(&format!("/input/documents/{i}/embedding"), &e, dim)));
    }
    check.finish()?;
    Ok(Import { documents: parsed.documents, embeddings })
}

/// The id of document `index` of `operation`: stable across retries.
pub fn document_id(operation: Uuid, index: usize) -> Uuid {
    let digest = Sha256::new().chain_update(operation.as_bytes()).chain_update((index as u64).to_be_bytes()).finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::new_v8(bytes)
}

/// Column arrays for documents `range` of the import.
pub fn rows(operation: Uuid, input: &Import, range: std::ops::Range<usize>) -> ImportRows {
    let mut rows = ImportRows::default();
    for i in range {
        let doc = &input.documents[i];
        rows.ids.push(document_id(operation, i));
        rows.titles.push(doc.title.trim().to_owned());
        rows.contents.push(doc.content.clone());
        rows.languages.push(doc.language.clone());
        rows.metadata.push(doc.metadata.clone());
        rows.push_embedding(input.embeddings[i].as_deref());
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: MetadataLimits = MetadataLimits { max_bytes: 1024, max_depth: 4 };

    #[test]
    fn ids_are_stable_per_operation_and_position() {
        let op = Uuid::now_v7();
        assert_eq!(document_id(op, 3), document_id(op, 3));
        assert_ne!(document_id(op, 3), document_id(op, 4));
        assert_ne!(document_id(op, 3), document_id(Uuid::now_v7(), 3));
    }

    #[test]
    fn invalid_documents_are_named_by_pointer() {
        let input = serde_json::json!({ "documents": [
            { "title": "ok", "embedding": [0.5, 0.25] },
            { "title": " ", "language": "xx-yy", "embedding": [1.0] },
            { "title": "too big", "embedding": [1.0, 1e39] },
        ] });
        let Err(ApiError::Validation { errors, .. }) = parse(&input.to_string(), 100, LIMITS, 2) else { panic!("expected errors") };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["/input/documents/1/title", "/input/documents/1/language", "/input/documents/1/embedding", "/input/documents/2/embedding/1"]
        );
        assert!(parse(&serde_json::json!({ "documents": [] }).to_string(), 100, LIMITS, 2).is_err());
        assert!(parse(&serde_json::json!({ "documents": [{ "title": "x", "extra": 1 }] }).to_string(), 100, LIMITS, 2).is_err());
    }

    #[test]
    fn an_export_bundle_is_an_input_as_it_stands() {
        let document = serde_json::json!({
            "id": Uuid::now_v7(), "title": "t", "content": "c", "language": "en", "metadata": {}, "embedding": [0.5, 0.25],
            "created_at": "2026-11-24T10:00:00Z", "updated_at": "2026-11-24T10:00:00Z", "version": 3,
        });
        let bundle = serde_json::json!({ "format": EXPORT_FORMAT, "project": { "name": "p" }, "documents": [document] });
        let import = parse(&bundle.to_string(), 100, LIMITS, 2).unwrap();
        assert_eq!((import.documents[0].title.as_str(), import.embeddings[0].as_deref()), ("t", Some(&[0.5f32, 0.25][..])));

        let newer = serde_json::json!({ "format": "jeex.export.v9", "documents": [{ "title": "t" }] });
        let Err(ApiError::Validation { errors, .. }) = parse(&newer.to_string(), 100, LIMITS, 2) else {
            panic!("an unknown format is refused")
        };
        assert_eq!(errors[0].field, "/input/format");
        assert!(errors[0].message.contains("jeex.export.v9"), "{}", errors[0].message);
        // Only the bundle's own fields are let through.
        assert!(parse(&serde_json::json!({ "documents": [{ "title": "t" }], "projects": {} }).to_string(), 100, LIMITS, 2).is_err());
    }

    #[test]
    fn embeddings_travel_with_their_documents_into_the_rows() {
        let input = serde_json::json!({ "documents": [
            { "title": "a", "embedding": [0.5, 0.25] },
            { "title": "b" },
            { "title": "c", "embedding": null },
            { "title": "d", "embedding": [-1.0, 2.0] },
        ] });
        let import = parse(&input.to_string(), 100, LIMITS, 2).unwrap();
        let op = Uuid::now_v7();
        let rows = rows(op, &import, 1..4);
        assert_eq!(rows.ids, [document_id(op, 1), document_id(op, 2), document_id(op, 3)]);
        assert_eq!(rows.embedding_at, [None, None, Some(0)]);
        assert_eq!(rows.embeddings, [-1.0, 2.0]);
        let rows = super::rows(op, &import, 0..4);
        assert_eq!(rows.embedding_at, [Some(0), None, None, Some(2)]);
        assert_eq!(rows.embeddings, [0.5, 0.25, -1.0, 2.0]);
    }
}
