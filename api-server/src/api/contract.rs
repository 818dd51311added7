//! The OpenAPI document as a contract: the generator's output, completed with what the
//! server does and the generator cannot say. Every served form (`/openapi.json`,
//! `/openapi.yaml`, Swagger UI) and `jeex-api openapi` come from [`document`], so there is one
//! document.
//!
//! Conventions it applies to every schema, so that clients generated from it type-check
//! against what the server really sends and accepts:
//!
//! - **absent values are `null`**: an optional property is declared `nullable`. The server
//!   sends `null` for an absent value rather than leaving it out (the few exceptions, such as
//!   `Problem.errors`, are omitted instead, which `nullable` also allows), and accepts `null`
//!   wherever a property may be left out;
//! - **no unknown properties**: every object declares `additionalProperties: false` — request
//!   bodies refuse unknown fields (400), responses never carry undeclared ones. Free-form
//!   values (`metadata`, an operation's `input`) are declared as such;
//! - **event streams** are `text/event-stream` text, not JSON: the schema describes one event
//!   (`id`, `event`, `data`, as SSE parsers hand them over; `data` is a `StreamEvent` as JSON);
//! - **limits that depend on configuration** (`JEEX_VECTOR_DIM`) are filled in from the running
//!   configuration (the committed document shows the defaults).

use serde_json::{Map, Value, json};

/// Description of every `text/event-stream` response body.
const EVENT_STREAM: &str = "Server-Sent Events (text/event-stream, not JSON): each event is a block of `id:`, `event:` and \
    `data:` lines ended by a blank line, described here as one object per event; `data` is one `StreamEvent` as JSON. \
    Comments (`:`) keep the connection alive; `retry:` tells when to reconnect. Resume with `Last-Event-ID`.";

/// The document in every form the server serves it.
pub struct Rendered {
    /// `/openapi.json` (and `jeex-api openapi`).
    pub json: String,
    /// `/openapi.yaml`.
    pub yaml: String,
    /// Swagger UI's page, with this document inline.
    pub docs_html: String,
}

/// Renders `service`'s document for a server whose vectors have `dim` dimensions.
pub fn render<T: poem_openapi::OpenApi>(service: &poem_openapi::OpenApiService<T, ()>, dim: u64) -> Rendered {
    let generated = service.spec();
    let doc = document(&generated, dim);
    let json = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let yaml = serde_yaml::to_string(&doc).unwrap_or_default();
    // Swagger UI's page embeds the document verbatim; swap in the completed one.
    let docs_html = service.swagger_ui_html().replacen(&generated, &json, 1);
    Rendered { json, yaml, docs_html }
}

/// The document `spec` (the generator's JSON text) completed for a server whose vectors have
/// `dim` dimensions.
pub fn document(spec: &str, dim: u64) -> Value {
    let mut doc: Value = serde_json::from_str(spec).unwrap_or_default();
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (name, schema) in schemas.iter_mut() {
            complete_object(schema);
            if let Some(rules) = extra_rules(name, dim) {
                merge(schema, rules);
            }
        }
        // An import's documents are created documents: their rules are `CreateDocument`'s.
        let create = schemas.get("CreateDocument").cloned().unwrap_or_default();
        if let Some(start) = schemas.get_mut("StartOperation") {
            merge(start, start_operation(&create));
        }
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|ops| ops.values_mut()) {
            describe_streams(operation);
        }
    }
    doc
}

/// `additionalProperties: false` and nullable optional properties, for an object schema.
fn complete_object(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else { return };
    if !obj.contains_key("properties") {
        return;
    }
    obj.entry("additionalProperties").or_insert(Value::Bool(false));
    let required: Vec<String> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) else { return };
    for (name, prop) in props.iter_mut() {
        if required.contains(name) {
            continue;
        }
        nullable(prop);
    }
}

/// Marks a property schema nullable. A bare `$ref` cannot carry siblings in OpenAPI 3.0, so
/// it is wrapped in `allOf` first.
fn nullable(prop: &mut Value) {
    let Some(obj) = prop.as_object_mut() else { return };
    if let Some(reference) = obj.remove("$ref") {
        obj.insert("allOf".into(), json!([{ "$ref": reference }]));
    }
    // A free-form value (no type, no reference) already admits null.
    if obj.contains_key("type") || obj.contains_key("allOf") {
        obj.insert("nullable".into(), Value::Bool(true));
    }
}

/// Rules the generator cannot express from the types: bounds from configuration, and
/// which fields must be given together.
fn extra_rules(schema: &str, dim: u64) -> Option<Value> {
    // A finite number that fits a 32-bit float, `dim` of them.
    let vector = json!({
        "minItems": dim,
        "maxItems": dim,
        "items": { "type": "number", "minimum": -f64::from(f32::MAX), "maximum": f64::from(f32::MAX) },
    });
    match schema {
        "CreateDocument" | "UpdateDocument" => Some(json!({ "properties": { "embedding": vector, "metadata": metadata(true) } })),
        "CreateApiKey" => Some(json!({ "properties": { "role": {
            "type": "string", "enum": ["viewer", "editor"], "nullable": true,
            "description": "The key's role: viewer (default) or editor; keys never own a project.",
        } } })),
        // Vector, text or both (a blank text counts as none); `score_threshold` only with a
        // vector (null counts as absent).
        "SearchDocuments" => Some(json!({
            "properties": { "vector": vector },
            "allOf": [
                { "anyOf": [
                    { "required": ["vector"], "properties": { "vector": { "type": "array" } } },
                    { "required": ["text"], "properties": { "text": { "type": "string", "pattern": "\\S" } } },
                ] },
                { "anyOf": [
                    { "not": { "required": ["score_threshold"] } },
                    { "properties": { "score_threshold": { "enum": [null] } } },
                    { "required": ["vector"], "properties": { "vector": { "type": "array" } } },
                ] },
            ],
        })),
        _ => None,
    }
}

/// A document's `metadata`: any JSON object within the configured limits, which JSON Schema
/// cannot state (bytes, depth): they are given as extensions and in prose.
fn metadata(nullable: bool) -> Value {
    json!({
        "type": "object", "additionalProperties": true, "nullable": nullable,
        "description": "Free-form JSON object, at most JEEX_METADATA_MAX_SIZE bytes of compact JSON (16 KiB unless set) \
            and JEEX_METADATA_MAX_DEPTH levels deep (8 unless set; the object is level 1).",
        "x-jeex-max-bytes": 16384, "x-jeex-max-depth": 8,
    })
}

/// The body of `POST …/operations`: the input belongs to the kind, an import's documents
/// (each with `create`'s rules, `CreateDocument` completed) or nothing.
fn start_operation(create: &Value) -> Value {
    json!({
        "type": null, "properties": null, "required": null, "additionalProperties": null,
        "oneOf": [
            {
                "type": "object", "required": ["kind", "input"], "additionalProperties": false,
                "properties": { "kind": { "type": "string", "enum": ["documents.import"] }, "input": import_input(create) },
            },
            {
                "type": "object", "required": ["kind"], "additionalProperties": false,
                "properties": {
                    "kind": { "type": "string", "enum": ["project.export", "documents.reindex"] },
                    "input": { "type": "object", "maxProperties": 0, "additionalProperties": false, "nullable": true },
                },
            },
        ],
    })
}

/// The input of `documents.import` (or a `project.export` bundle as it stands).
fn import_input(create: &Value) -> Value {
    // An imported field may be left out but not be null, except an embedding.
    let field = |name: &str| {
        let mut f = create["properties"][name].clone();
        if let Some(f) = f.as_object_mut() {
            f.remove("nullable");
        }
        f
    };
    json!({
        "type": "object", "required": ["documents"], "additionalProperties": false,
        "properties": {
            "documents": {
                "type": "array", "minItems": 1, "maxItems": crate::ops::import::MAX_DOCUMENTS,
                "items": {
                    "type": "object", "required": ["title"], "additionalProperties": false,
                    "properties": {
                        "title": field("title"),
                        "content": field("content"),
                        "language": field("language"),
                        "metadata": metadata(false),
                        "embedding": create["properties"]["embedding"],
                        "id": { "type": "string", "format": "uuid", "nullable": true, "description": "An exported document's id: ignored (the copy gets a new one)." },
                        "created_at": { "type": "string", "format": "date-time", "nullable": true, "description": "Ignored: the copy is created now." },
                        "updated_at": { "type": "string", "format": "date-time", "nullable": true, "description": "Ignored." },
                        "version": { "type": "integer", "format": "int64", "nullable": true, "description": "Ignored: the copy starts at version 1." },
                    },
                },
            },
            "format": { "type": "string", "enum": [crate::ops::import::EXPORT_FORMAT], "nullable": true },
            "project": { "description": "A bundle's project: ignored (the documents go into the project the import runs in)." },
        },
    })
}

/// Deep-merges `extra` into `target` (objects merge, `null` removes, anything else replaces).
fn merge(target: &mut Value, extra: Value) {
    match (target, extra) {
        (Value::Object(t), Value::Object(e)) => {
            for (k, v) in e {
                if v.is_null() {
                    t.remove(&k);
                } else {
                    merge(t.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (t, e) => *t = e,
    }
}

/// An event stream's body is text with the events described, not a JSON array.
fn describe_streams(operation: &mut Value) {
    let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { return };
    for response in responses.values_mut() {
        if let Some(content) = response.get_mut("content").and_then(Value::as_object_mut)
            && let Some(stream) = content.get_mut("text/event-stream")
        {
            let mut media = Map::new();
            media.insert(
                "schema".into(),
                json!({
                    "type": "object", "required": ["data"], "description": EVENT_STREAM,
                    "properties": {
                        "id": { "type": "string", "description": "History ID, `<ms>-<seq>`; empty for `reset`." },
                        "event": { "type": "string", "description": "The event's type, e.g. `operation.succeeded`, `reset`." },
                        "data": { "type": "string", "description": "One `StreamEvent` as JSON." },
                        "retry": { "type": "integer", "description": "Milliseconds to wait before reconnecting." },
                    },
                }),
            );
            *stream = Value::Object(media);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_properties_are_nullable_and_objects_closed() {
        let spec = json!({ "components": { "schemas": {
            "A": { "type": "object", "required": ["id"], "properties": {
                "id": { "type": "string" },
                "note": { "type": "string" },
                "kind": { "$ref": "#/components/schemas/K" },
                "any": { "description": "free-form" },
            } },
        } }, "paths": {} });
        let doc = document(&spec.to_string(), 4);
        let a = &doc["components"]["schemas"]["A"];
        assert_eq!(a["additionalProperties"], false);
        assert_eq!(a["properties"]["id"].get("nullable"), None, "required stays non-null");
        assert_eq!(a["properties"]["note"]["nullable"], true);
        assert_eq!(a["properties"]["kind"], json!({ "allOf": [{ "$ref": "#/components/schemas/K" }], "nullable": true }));
        assert_eq!(a["properties"]["any"], json!({ "description": "free-form" }));
    }

    #[test]
    fn streams_are_text_and_vectors_have_the_configured_length() {
        let spec = json!({
            "components": { "schemas": { "SearchDocuments": { "type": "object", "properties": { "vector": { "type": "array" } } } } },
            "paths": { "/e": { "get": { "responses": { "200": { "content": { "text/event-stream": { "schema": { "type": "array" } } } } } } } },
        });
        let doc = document(&spec.to_string(), 8);
        let event = &doc["paths"]["/e"]["get"]["responses"]["200"]["content"]["text/event-stream"]["schema"];
        assert_eq!((event["type"].as_str(), event["properties"]["data"]["type"].as_str()), (Some("object"), Some("string")));
        let vector = &doc["components"]["schemas"]["SearchDocuments"]["properties"]["vector"];
        assert_eq!((vector["minItems"].as_u64(), vector["maxItems"].as_u64()), (Some(8), Some(8)));
    }
}
