//! The protobuf JSON mapping of the `authzed.api.v1` messages, driven by the compiled
//! descriptors ([`crate::api::proto::FILE_DESCRIPTOR_SET`]) through `prost-reflect`.
//!
//! Why descriptors and not generated serde impls: the mapping is then the canonical one for
//! every message and every well-known type without a line of per-message code (lowerCamelCase
//! names out, both spellings in, enum value names, 64-bit integers as strings, `Struct` as a
//! JSON object, `Timestamp`/`Duration` as RFC 3339/`"1.5s"` strings, `Any` with `@type`
//! resolved from the same pool, which the inline `google.rpc.Status` of CheckBulkPermissions
//! needs), the generated prost types stay exactly those the gRPC side uses, and the same pool
//! gives the OpenAPI document its schemas. The cost is one protobuf encode and decode per
//! message next to the JSON work, a few microseconds.
//!
//! Unknown fields are refused (a misspelt field would otherwise be silently ignored), with a
//! message naming the field.

use std::sync::OnceLock;

use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions,
};

use crate::service::{ErrorKind, ServiceError};

/// The longest part of a JSON error (the parser's own text) repeated in an error message.
const MAX_PARSER_MESSAGE: usize = 512;

/// The descriptor pool of every message Tessera serves.
pub fn pool() -> Result<&'static DescriptorPool, ServiceError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(crate::api::proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| {
        ServiceError::new(
            ErrorKind::Internal,
            format!("the compiled protobuf descriptors do not load: {e}"),
        )
    })
}

/// The descriptor of the message `T`.
pub fn descriptor<T: prost::Name>() -> Result<MessageDescriptor, ServiceError> {
    let name = T::full_name();
    pool()?.get_message_by_name(&name).ok_or_else(|| {
        ServiceError::new(
            ErrorKind::Internal,
            format!("no descriptor for message `{name}`"),
        )
    })
}

/// `text` cut to at most `max` bytes on a character boundary, marked when cut.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A body that is not the JSON of the expected message: always the caller's input.
pub fn bad_body(what: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::new(
        ErrorKind::InvalidArgument,
        format!(
            "the request body is not a valid {what}: {}",
            bounded(&e.to_string(), MAX_PARSER_MESSAGE)
        ),
    )
}

/// Parses a request body in the protobuf JSON mapping. An empty body is the empty message.
pub fn decode<T>(body: &[u8]) -> Result<T, ServiceError>
where
    T: prost::Message + prost::Name + Default,
{
    let desc = descriptor::<T>()?;
    let what = format!("JSON `{}`", desc.name());
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let message =
        DynamicMessage::deserialize_with_options(desc, &mut de, &DeserializeOptions::new())
            .map_err(|e| bad_body(&what, e))?;
    de.end().map_err(|e| bad_body(&what, e))?;
    message.transcode_to::<T>().map_err(|e| bad_body(&what, e))
}

/// The protobuf JSON mapping of `message` (fields with default values left out, as the
/// mapping's default does).
pub fn encode<T>(message: &T) -> Result<serde_json::Value, ServiceError>
where
    T: prost::Message + prost::Name,
{
    let mut dynamic = DynamicMessage::new(descriptor::<T>()?);
    dynamic.transcode_from(message).map_err(|e| {
        ServiceError::new(
            ErrorKind::Internal,
            format!("cannot re-encode a `{}`: {e}", T::full_name()),
        )
    })?;
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .map_err(|e| {
            ServiceError::new(
                ErrorKind::Internal,
                format!("cannot write a `{}` as JSON: {e}", T::full_name()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::proto::authzed::api::v1 as pb;
    use serde_json::json;

    #[test]
    fn both_field_spellings_are_accepted_and_camel_case_is_written() {
        let camel: pb::CheckPermissionRequest = decode(
            br#"{"resource": {"objectType": "document", "objectId": "a"}, "permission": "view",
                 "subject": {"object": {"objectType": "user", "objectId": "x"}},
                 "consistency": {"fullyConsistent": true}, "context": {"n": 3, "l": [true]}}"#,
        )
        .unwrap();
        let snake: pb::CheckPermissionRequest = decode(
            br#"{"resource": {"object_type": "document", "object_id": "a"}, "permission": "view",
                 "subject": {"object": {"object_type": "user", "object_id": "x"}},
                 "consistency": {"fully_consistent": true}, "context": {"n": 3, "l": [true]}}"#,
        )
        .unwrap();
        assert_eq!(camel, snake);
        assert_eq!(camel.resource.as_ref().unwrap().object_id, "a");
        let back = encode(&camel).unwrap();
        assert_eq!(
            back["resource"],
            json!({"objectType": "document", "objectId": "a"})
        );
        assert_eq!(back["context"], json!({"n": 3.0, "l": [true]}));
    }

    #[test]
    fn enums_int64_and_timestamps_follow_the_mapping() {
        let response = pb::DeleteRelationshipsResponse {
            deleted_at: Some(pb::ZedToken { token: "z".into() }),
            deletion_progress: pb::delete_relationships_response::DeletionProgress::Complete as i32,
            relationships_deleted_count: 12,
        };
        assert_eq!(
            encode(&response).unwrap(),
            json!({"deletedAt": {"token": "z"}, "deletionProgress": "DELETION_PROGRESS_COMPLETE",
                   "relationshipsDeletedCount": "12"})
        );
        let r: pb::Relationship =
            decode(br#"{"optionalExpiresAt": "2030-01-02T03:04:05Z", "relation": "viewer"}"#)
                .unwrap();
        assert_eq!(r.optional_expires_at.unwrap().seconds, 1_893_553_445);
        let u: pb::RelationshipUpdate = decode(br#"{"operation": "OPERATION_TOUCH"}"#).unwrap();
        assert_eq!(u.operation, 2);
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let err = decode::<pb::CheckPermissionRequest>(br#"{"permision": "view"}"#).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidArgument);
        assert!(err.message.contains("permision"), "{}", err.message);
        let err = decode::<pb::CheckPermissionRequest>(b"{\"permission\": ").unwrap_err();
        assert!(
            err.message.contains("CheckPermissionRequest"),
            "{}",
            err.message
        );
        let err = decode::<pb::CheckPermissionRequest>(br#"{"permission": 7}"#).unwrap_err();
        assert!(err.message.contains("string"), "{}", err.message);
        assert!(decode::<pb::ReadSchemaRequest>(b"").is_ok());
        assert!(decode::<pb::ReadSchemaRequest>(b"{} x").is_err());
    }

    #[test]
    fn inline_statuses_show_their_error_info() {
        use prost::Message as _;
        let info = crate::api::proto::google::rpc::ErrorInfo {
            reason: "ERROR_REASON_UNKNOWN_DEFINITION".into(),
            domain: "authzed.com".into(),
            metadata: [("definition_name".to_string(), "x".to_string())].into(),
        };
        let status = crate::api::proto::google::rpc::Status {
            code: 9,
            message: "m".into(),
            details: vec![prost_types::Any {
                type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
                value: info.encode_to_vec(),
            }],
        };
        assert_eq!(
            encode(&status).unwrap()["details"][0],
            json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                   "reason": "ERROR_REASON_UNKNOWN_DEFINITION", "domain": "authzed.com",
                   "metadata": {"definition_name": "x"}})
        );
    }
}
