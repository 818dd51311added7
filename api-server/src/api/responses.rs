//! Response shapes shared by the resource endpoints: created (201 + `Location` + `ETag`),
//! fetched with an `ETag`, deleted (204), JSON passed through as text, and the
//! `{items, next_cursor}` list envelope.

use poem::{IntoResponse, Response};
use poem_openapi::{
    ApiResponse, Object,
    payload::{Json, Payload},
    registry::{MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};

use super::views::{ApiKeyInfo, AuditEntry, DocumentSummary, Member, Operation, Project};
use crate::db::{self, page::Paged};

/// 201 with the new resource.
#[derive(ApiResponse)]
pub enum Created<T: ToJSON + Send + Sync> {
    /// Created; `Location` is its URL.
    #[oai(status = 201)]
    Created(Json<T>, #[oai(header = "Location")] String, #[oai(header = "ETag")] Option<String>),
}

/// 200 with the resource and its `ETag`.
#[derive(ApiResponse)]
pub enum Tagged<T: ToJSON + Send + Sync> {
    /// The resource; send its `ETag` back in `If-Match` to change it safely.
    #[oai(status = 200)]
    Ok(Json<T>, #[oai(header = "ETag")] String),
}

/// A JSON body that is already text, sent as it is: parsing a large export bundle into a
/// value only to write it out again would take several times its size in memory.
pub struct RawJson(pub String);

impl Payload for RawJson {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        <serde_json::Value as Type>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <serde_json::Value as Type>::register(registry);
    }
}

impl IntoResponse for RawJson {
    fn into_response(self) -> Response {
        Response::builder().content_type(Self::CONTENT_TYPE).body(self.0)
    }
}

/// 200 with JSON passed through as text.
#[derive(ApiResponse)]
pub enum Passed {
    /// The JSON document, as stored.
    #[oai(status = 200)]
    Ok(RawJson),
}

/// 204 after a delete.
#[derive(ApiResponse)]
pub enum Deleted {
    /// Deleted.
    #[oai(status = 204)]
    NoContent,
}

macro_rules! list {
    ($(#[$doc:meta])* $name:ident, $item:ty, $row:ty) => {
        $(#[$doc])*
        #[derive(Object)]
        pub struct $name {
            /// This page's items.
            pub items: Vec<$item>,
            /// Pass as `cursor` to get the next page; `null` on the last page.
            pub next_cursor: Option<String>,
        }

        impl From<Paged<$row>> for $name {
            fn from(p: Paged<$row>) -> Self {
                Self { items: p.items.into_iter().map(<$item>::from).collect(), next_cursor: p.next_cursor }
            }
        }
    };
}

list!(
    /// A page of projects.
    ProjectList,
    Project,
    db::projects::Project
);
list!(
    /// A page of documents (without content).
    DocumentList,
    DocumentSummary,
    db::documents::DocumentSummary
);
list!(
    /// A page of members.
    MemberList,
    Member,
    db::members::Member
);
list!(
    /// A page of API keys.
    ApiKeyList,
    ApiKeyInfo,
    db::api_keys::ApiKeyInfo
);
list!(
    /// A page of audit entries.
    AuditList,
    AuditEntry,
    db::audit::AuditEntry
);
list!(
    /// A page of operations.
    OperationList,
    Operation,
    db::operations::Operation
);
