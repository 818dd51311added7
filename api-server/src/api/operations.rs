//! `/api/v1/projects/{project_id}/operations`: start, follow, cancel long-running work, and
//! fetch its result.

use poem::{Request, RequestBody, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::{Json, ParsePayload, Payload},
    registry::{MetaSchemaRef, Registry},
    types::ParseFromJSON,
};
use uuid::Uuid;

use super::{
    ApiTags,
    access::project,
    responses::{OperationList, Passed, RawJson},
    views::{Operation, OperationKind, OperationStatus},
};
use crate::{
    access::{Editor, Viewer},
    db::{operations, page::Page},
    error::{ApiError, FieldError},
    ops::import,
    state::AppState,
};

/// Work to start.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct StartOperation {
    /// `documents.import` (input `{documents: [{title, content?, language?, metadata?,
    /// embedding?}]}`, at most 10,000; a `project.export` result is accepted as it stands, its
    /// ids, times and versions left behind: the copies are new documents. The body may take up
    /// to `JEEX_IMPORT_BODY_LIMIT`, 65 MiB unless set; one over `JEEX_BODY_LIMIT` may get 503
    /// with `Retry-After` while other large uploads are read), `project.export` (input `{}`) or
    /// `documents.reindex` (input `{}`: rebuilds the project's part of the vector index from
    /// the database).
    pub kind: OperationKind,
    /// The kind's input.
    pub input: Option<serde_json::Value>,
}

impl poem_openapi::types::Example for StartOperation {
    fn example() -> Self {
        Self {
            kind: OperationKind::DocumentsImport,
            input: Some(serde_json::json!({ "documents": [{ "title": "Notes", "content": "First import", "language": "en" }] })),
        }
    }
}

/// The body of `POST …/operations` ([`StartOperation`] on the wire), read straight from its
/// bytes: an import's documents may be tens of MiB, and `Json<StartOperation>` would first
/// build a `serde_json::Value` of all of them (an embedding number alone is a 72-byte value)
/// and then copy the input out of it. Here the input stays the text it arrived as, is
/// checked by parsing it into its kind's typed input, and is stored as that text.
pub struct StartBody {
    kind: OperationKind,
    /// The whole body.
    text: String,
    /// Where the input lies in `text` (absent or `null`: none).
    input: Option<std::ops::Range<usize>>,
}

impl StartBody {
    /// Parses a body: a body that is not the object described names `body`, as poem-openapi's
    /// own payloads do, and an unknown kind names `/kind`.
    fn parse(text: String) -> Result<Self, ApiError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wire<'a> {
            kind: std::borrow::Cow<'a, str>,
            #[serde(borrow, default)]
            input: Option<&'a serde_json::value::RawValue>,
        }
        let wire: Wire<'_> = serde_json::from_str(&text).map_err(|e| invalid("body", e.to_string()))?;
        let kind = OperationKind::parse_from_json(Some(serde_json::Value::String(wire.kind.into_owned())))
            .map_err(|e| invalid("/kind", e.into_message()))?;
        // The raw input is a slice of `text`; keep its place rather than a copy.
        let input = wire.input.map(|raw| {
            let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
            start..start + raw.get().len()
        });
        Ok(Self { kind, text, input })
    }

    /// The input as sent (`{}` when absent).
    fn input(&self) -> &str {
        self.input.clone().map_or("{}", |range| &self.text[range])
    }
}

/// The kind and the input's size: the input itself may be tens of MiB.
impl std::fmt::Debug for StartBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartBody").field("kind", &self.kind).field("input_bytes", &self.input().len()).finish()
    }
}

impl Payload for StartBody {
    const CONTENT_TYPE: &'static str = <Json<StartOperation> as Payload>::CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        <Json<StartOperation> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        <Json<StartOperation> as Payload>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <Json<StartOperation> as Payload>::register(registry);
    }
}

impl ParsePayload for StartBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        // The limit layer has read the body already: taking its bytes as a `Vec` moves them
        // rather than copying (tens of MiB for a large import).
        let bytes = Vec::from(body.take()?.into_bytes().await?);
        let text = String::from_utf8(bytes).map_err(|e| invalid("body", format!("not UTF-8: {e}")))?;
        Ok(Self::parse(text)?)
    }
}

// The trailing comma picks the macro's full form: its short form calls itself by a path that
// only resolves inside poem-openapi.
poem_openapi::impl_apirequest_for_payload!(StartBody,);

/// The error of a body that is not a [`StartOperation`], at `field`.
fn invalid(field: &str, message: String) -> ApiError {
    ApiError::Validation { detail: "the request body is not valid".into(), errors: vec![FieldError { field: field.into(), message }] }
}

fn is_empty_object(json: &str) -> bool {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json).is_ok_and(|m| m.is_empty())
}

/// 202: accepted and queued (or, for a cancel, requested).
#[derive(ApiResponse)]
pub enum Accepted {
    /// The operation; follow `Location`.
    #[oai(status = 202)]
    Accepted(Json<Operation>, #[oai(header = "Location")] String),
}

/// Operation endpoints.
pub struct OperationsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Operations")]
impl OperationsApi {
    /// Start an operation (editor or owner). Inputs are validated now; the work runs in the
    /// background on any replica.
    #[oai(path = "/projects/:project_id/operations", method = "post")]
    async fn start(&self, state: Data<&AppState>, project_id: project::Path<Editor>, mut body: StartBody) -> Result<Accepted, ApiError> {
        let kind = body.kind;
        match kind {
            OperationKind::DocumentsImport => {
                // Checked now, so a bad document is a 400 rather than a failed operation; the
                // parsed copy is dropped before the text goes to PostgreSQL. Tens of MiB take
                // a while to parse: off the async workers, which serve everyone else.
                let (max_bytes, metadata, dim) = (state.config().document_max_bytes, state.config().metadata, state.config().vectors.dim);
                let checked;
                (body, checked) = tokio::task::spawn_blocking(move || {
                    let checked = import::parse(body.input(), max_bytes, metadata, dim).map(drop);
                    (body, checked)
                })
                .await
                .map_err(|e| ApiError::Internal(format!("import check: {e}")))?;
                checked?;
            }
            OperationKind::ProjectExport | OperationKind::DocumentsReindex if !is_empty_object(body.input()) => {
                return Err(ApiError::Validation {
                    detail: "the operation input is not valid".into(),
                    errors: vec![FieldError { field: "/input".into(), message: "must be an empty object".into() }],
                });
            }
            OperationKind::ProjectExport => {}
            OperationKind::DocumentsReindex => {
                if !state.deps().vectors.is_enabled() {
                    return Err(crate::vectors::IndexError::Disabled.into());
                }
            }
        }
        let mut s = project_id.open(&state).await?;
        let op = operations::create(&mut s, body.kind.into(), body.input(), state.config().operations.max_attempts).await?;
        s.commit().await?;
        state.events().recorded();
        let location = format!("/api/v1/projects/{}/operations/{}", op.project_id, op.id);
        Ok(Accepted::Accepted(Json(op.into()), location))
    }

    /// The project's operations, newest first.
    #[oai(path = "/projects/:project_id/operations", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Viewer>,
        /// Only operations in this status.
        status: Query<Option<OperationStatus>>,
        /// Page size, 1–100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Json<OperationList>, ApiError> {
        let page = Page::parse(limit.0, cursor.0.as_deref())?;
        let status = status.0.map(Into::into);
        let paged = project_id.read(&state, async |e| operations::list(e, status, &page).await).await?;
        Ok(Json(paged.into()))
    }

    /// One operation: status, progress, error.
    #[oai(path = "/projects/:project_id/operations/:operation_id", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Viewer>,
        operation_id: Path<Uuid>,
    ) -> Result<Json<Operation>, ApiError> {
        let op = project_id.read(&state, async |e| operations::read(e, operation_id.0).await).await?;
        Ok(Json(op.into()))
    }

    /// Cancel (editor or owner): a queued operation ends at once, a running one within a
    /// second; an ended one is returned unchanged. A `POST` to a sub-resource, as
    /// long-running-operation APIs do: the operation stays readable (status `cancelled`), so
    /// this is no `DELETE`. Repeating it is harmless.
    #[oai(path = "/projects/:project_id/operations/:operation_id/cancel", method = "post")]
    async fn cancel(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Editor>,
        operation_id: Path<Uuid>,
    ) -> Result<Accepted, ApiError> {
        let mut s = project_id.open(&state).await?;
        let op = operations::cancel(&mut s, operation_id.0).await?;
        s.commit().await?;
        state.events().recorded();
        let location = format!("/api/v1/projects/{}/operations/{}", op.project_id, op.id);
        Ok(Accepted::Accepted(Json(op.into()), location))
    }

    /// The result of a succeeded operation (the export bundle, or the import's or reindex's
    /// counts); 409 before it has succeeded. Ended operations are kept for
    /// `JEEX_OPERATION_RETENTION` (7 days by default), then deleted with their results (404).
    #[oai(path = "/projects/:project_id/operations/:operation_id/result", method = "get")]
    async fn result(
        &self,
        state: Data<&AppState>,
        project_id: project::Path<Viewer>,
        operation_id: Path<Uuid>,
    ) -> Result<Passed, ApiError> {
        let result = project_id.read(&state, async |e| operations::result(e, operation_id.0).await).await?;
        Ok(Passed::Ok(RawJson(result)))
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::{Example, ToJSON};

    use super::*;

    fn field_of(err: ApiError) -> String {
        match err {
            ApiError::Validation { errors, .. } => errors[0].field.clone(),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn the_documented_example_parses_and_its_input_is_kept_as_sent() {
        let example = StartOperation::example().to_json_string();
        let body = StartBody::parse(example).unwrap();
        assert_eq!(body.kind, OperationKind::DocumentsImport);
        let input: serde_json::Value = serde_json::from_str(body.input()).unwrap();
        assert_eq!(Some(input), StartOperation::example().input);

        // The input is the sent text itself, escapes and spacing included.
        let body =
            StartBody::parse(r#"{ "input" : {"documents": [{"title": "a \"b\" \u00e9"}]} , "kind":"documents.import"}"#.into()).unwrap();
        assert_eq!(body.input(), r#"{"documents": [{"title": "a \"b\" \u00e9"}]}"#);
    }

    #[test]
    fn an_absent_or_null_input_is_an_empty_object() {
        for text in [r#"{"kind": "project.export"}"#, r#"{"kind": "project.export", "input": null}"#] {
            let body = StartBody::parse(text.into()).unwrap();
            assert_eq!((body.kind, body.input()), (OperationKind::ProjectExport, "{}"));
            assert!(is_empty_object(body.input()));
        }
        assert!(!is_empty_object(r#"{"x": 1}"#) && !is_empty_object("[]") && is_empty_object(" { } "));
    }

    #[test]
    fn shape_errors_name_their_field() {
        assert_eq!(field_of(StartBody::parse(r#"{"kind": "reindex"}"#.into()).unwrap_err()), "/kind");
        assert_eq!(field_of(StartBody::parse(r#"{"kind": "project.export", "extra": 1}"#.into()).unwrap_err()), "body");
        assert_eq!(field_of(StartBody::parse(r#"{"input": {}}"#.into()).unwrap_err()), "body");
        assert_eq!(field_of(StartBody::parse("not json".into()).unwrap_err()), "body");
    }
}
