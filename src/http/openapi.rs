//! `GET /openapi.json`: an OpenAPI 3.1 document of every route, generated from the code.
//!
//! The paths come from the route table ([`super::routes::routes`], the one the router is built
//! from). Bodies of `authzed.api.v1` routes are described from the compiled protobuf
//! descriptors as the JSON mapping writes them (lowerCamelCase names, enum value names, 64-bit
//! integers as strings, well-known types as their JSON forms); AuthZEN bodies from their Rust
//! definitions (`schemars`). Built once, on first request.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use prost_reflect::{Cardinality, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::service::{ErrorKind, ServiceError};

use super::routes::{BodySchema, routes};
use super::{NDJSON, json as pbjson};

/// The document (built once).
pub fn document() -> Result<&'static Value, ServiceError> {
    static DOCUMENT: OnceLock<Result<Value, ServiceError>> = OnceLock::new();
    DOCUMENT.get_or_init(build).as_ref().map_err(Clone::clone)
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The JSON schema of the error body every route may answer with.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "A `google.rpc.Status` in the JSON mapping: the gRPC code number, a message naming the problem, and the error's reason as a `google.rpc.ErrorInfo` when it has one.",
        "properties": {
            "code": {"type": "integer", "description": "The gRPC status code (3 INVALID_ARGUMENT, 9 FAILED_PRECONDITION, ...)."},
            "message": {"type": "string"},
            "details": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "@type": {"type": "string", "const": crate::api::error::ERROR_INFO_TYPE_URL},
                    "reason": {"type": "string", "description": "An `authzed.api.v1.ErrorReason` value name."},
                    "domain": {"type": "string", "const": crate::service::ERROR_REASON_DOMAIN},
                    "metadata": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            }}
        },
        "required": ["code", "message", "details"]
    })
}

fn build() -> Result<Value, ServiceError> {
    let mut components = Protos::default();
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let mut paths = Map::new();
    for route in routes() {
        let mut body_schema = |b: BodySchema| -> Result<Option<Value>, ServiceError> {
            Ok(match b {
                BodySchema::Proto(name) => Some(components.message(&name())?),
                BodySchema::Rust(schema) => Some(schema(&mut generator).to_value()),
                BodySchema::Any => Some(json!({"type": "object"})),
                BodySchema::None => None,
            })
        };
        let request = body_schema(route.request)?;
        let response = body_schema(route.response)?;
        let mut op = Map::new();
        op.insert("summary".into(), json!(route.summary));
        op.insert("tags".into(), json!([route.tag]));
        op.insert(
            "operationId".into(),
            json!(
                route
                    .path
                    .trim_start_matches('/')
                    .replace(['/', '.', '-'], "_")
            ),
        );
        op.insert(
            "security".into(),
            if route.authenticated {
                json!([{"bearerAuth": []}])
            } else {
                json!([])
            },
        );
        if let Some(schema) = request {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema}}}),
            );
        }
        let ok = match response {
            Some(schema) if route.streaming => json!({
                "description": "One JSON object per line: `{\"result\": message}` for each response message; a failure after the first line ends the stream with `{\"error\": Error}`.",
                "content": {NDJSON: {"schema": {
                    "type": "object",
                    "properties": {"result": schema, "error": schema_ref("Error")}
                }}}
            }),
            Some(schema) => json!({
                "description": "Success.",
                "content": {"application/json": {"schema": schema}}
            }),
            None => json!({"description": "Success."}),
        };
        op.insert(
            "responses".into(),
            json!({
                "200": ok,
                "default": {
                    "description": "An error: the HTTP status follows the gRPC code (400 INVALID_ARGUMENT, 401, 403, 404, 409, 412 FAILED_PRECONDITION, 413 body too large, 429 RESOURCE_EXHAUSTED, 500, 503).",
                    "content": {"application/json": {"schema": schema_ref("Error")}}
                }
            }),
        );
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        if let Value::Object(methods) = entry {
            methods.insert(
                route.method.as_str().to_ascii_lowercase(),
                Value::Object(op),
            );
        }
    }
    let mut schemas: Map<String, Value> = components.schemas.into_iter().collect();
    schemas.extend(generator.take_definitions(true));
    schemas.insert("Error".into(), error_schema());
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tessera HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The authzed.api.v1 API in the protobuf JSON mapping at the reference gateway's paths, and the OpenID AuthZEN Authorization API 1.0. Generated from the server's route table and protobuf descriptors."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "A preshared key or a JWT, as on gRPC."}
            }
        }
    }))
}

/// The schemas of protobuf messages, collected transitively from the ones routes use.
#[derive(Default)]
struct Protos {
    schemas: BTreeMap<String, Value>,
}

impl Protos {
    /// A reference to `full_name`'s schema, adding it (and what it uses) to the components.
    fn message(&mut self, full_name: &str) -> Result<Value, ServiceError> {
        let desc = pbjson::pool()?
            .get_message_by_name(full_name)
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorKind::Internal,
                    format!("no descriptor for `{full_name}`"),
                )
            })?;
        Ok(self.message_schema(&desc))
    }

    fn message_schema(&mut self, desc: &MessageDescriptor) -> Value {
        if let Some(wkt) = well_known(desc.full_name()) {
            return wkt;
        }
        let name = desc.full_name().to_string();
        if !self.schemas.contains_key(&name) {
            // Placeholder first: recursive messages refer to themselves.
            self.schemas.insert(name.clone(), json!({}));
            let mut properties = Map::new();
            for field in desc.fields() {
                let mut schema = self.field_schema(&field);
                if let Some(doc) = comment(&field.parent_file(), field.path()) {
                    schema = with_description(schema, doc);
                }
                properties.insert(field.json_name().to_string(), schema);
            }
            let mut schema = json!({"type": "object", "properties": properties});
            let mut description = comment(&desc.parent_file(), desc.path()).unwrap_or_default();
            let oneofs: Vec<Value> = desc
                .oneofs()
                .filter(|o| !o.is_synthetic())
                .map(|o| {
                    json!({
                        "name": o.name(),
                        "fields": o.fields().map(|f| f.json_name().to_string()).collect::<Vec<_>>()
                    })
                })
                .collect();
            if !oneofs.is_empty() {
                if !description.is_empty() {
                    description.push_str("\n\n");
                }
                description.push_str(&format!(
                    "At most one field of each oneof may be set: {}.",
                    oneofs
                        .iter()
                        .map(|o| format!(
                            "{} ({})",
                            o["name"].as_str().unwrap_or_default(),
                            o["fields"]
                                .as_array()
                                .map(|f| f
                                    .iter()
                                    .filter_map(Value::as_str)
                                    .collect::<Vec<_>>()
                                    .join(", "))
                                .unwrap_or_default()
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
            if !description.is_empty() {
                schema["description"] = json!(description);
            }
            self.schemas.insert(name.clone(), schema);
        }
        schema_ref(&name)
    }

    fn field_schema(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map()
            && let Kind::Message(entry) = field.kind()
        {
            let value = self.kind_schema(&entry.map_entry_value_field().kind());
            return json!({"type": "object", "additionalProperties": value});
        }
        let single = self.kind_schema(&field.kind());
        if field.cardinality() == Cardinality::Repeated {
            json!({"type": "array", "items": single})
        } else {
            single
        }
    }

    fn kind_schema(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double | Kind::Float => json!({"type": "number"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "uint32"}),
            // Written as strings; numbers are accepted too.
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({"type": ["string", "integer"], "format": "int64"})
            }
            Kind::Uint64 | Kind::Fixed64 => {
                json!({"type": ["string", "integer"], "format": "uint64"})
            }
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
            Kind::Enum(e) => json!({
                "type": "string",
                "enum": e.values().map(|v| v.name().to_string()).collect::<Vec<_>>()
            }),
            Kind::Message(m) => self.message_schema(m),
        }
    }
}

/// The comment written above the element at `path` of `file` (the protos' own comments, which
/// the compiled descriptor set keeps), trimmed.
fn comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?;
    let text = text
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string();
    (!text.is_empty()).then_some(text)
}

/// `schema` with a description; a `$ref` is wrapped (its siblings would be ignored in places).
fn with_description(schema: Value, description: String) -> Value {
    if schema.get("$ref").is_some() {
        json!({"allOf": [schema], "description": description})
    } else {
        let mut schema = schema;
        schema["description"] = json!(description);
        schema
    }
}

/// The JSON forms of the well-known types the API uses.
fn well_known(full_name: &str) -> Option<Value> {
    Some(match full_name {
        "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array"}),
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "description": "Seconds with an `s` suffix, such as `1.5s`."})
        }
        "google.protobuf.Any" => json!({
            "type": "object",
            "properties": {"@type": {"type": "string"}},
            "required": ["@type"],
            "additionalProperties": true
        }),
        "google.protobuf.Empty" => json!({"type": "object"}),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_v1_messages_with_json_names() {
        let doc = document().unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let check = &doc["components"]["schemas"]["authzed.api.v1.CheckPermissionRequest"];
        assert_eq!(
            check["properties"]["resource"]["allOf"][0]["$ref"],
            "#/components/schemas/authzed.api.v1.ObjectReference",
            "{check}"
        );
        assert_eq!(check["properties"]["withTracing"]["type"], "boolean");
        let object = &doc["components"]["schemas"]["authzed.api.v1.ObjectReference"];
        assert!(object["properties"]["objectId"].is_object());
        let delete = &doc["components"]["schemas"]["authzed.api.v1.DeleteRelationshipsResponse"];
        assert_eq!(
            delete["properties"]["relationshipsDeletedCount"]["format"],
            "uint64"
        );
        // Descriptions come from the protos' comments.
        assert!(
            object["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{object}"
        );
        // Every $ref resolves.
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "dangling reference to {name}"
            );
        }
    }
}
