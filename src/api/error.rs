//! The one mapping from Tessera's errors to gRPC status codes.
//!
//! Every failure that leaves the server goes through [`status`] (or [`rpc_status`] for the
//! inline per-item errors of CheckBulkPermissions), so a kind of error always gets the same code
//! whichever RPC produced it. Messages are the domain messages: they already name the field or
//! the object at fault. An error with a reason also carries it as a `google.rpc.ErrorInfo`
//! (domain `authzed.com`, reason the `authzed.api.v1.ErrorReason` value name, metadata) packed
//! in a `google.rpc.Status` in the `grpc-status-details-bin` trailer, as the reference does.

use prost::Message as _;
use tonic::{Code, Status};

use crate::api::proto::google::rpc;
use crate::service::ERROR_REASON_DOMAIN;

use crate::auth::AuthError;
use crate::consistency::ZookieError;
use crate::service::{CUT_NOTE_START, ErrorKind, MAX_ERROR_MESSAGE_BYTES, ServiceError};

/// The gRPC code of an error kind.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::AlreadyExists => Code::AlreadyExists,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Internal => Code::Internal,
        ErrorKind::Unavailable => Code::Unavailable,
    }
}

/// The status returned for a service error (logging internal ones).
pub fn status(e: ServiceError) -> Status {
    if e.kind == ErrorKind::Internal {
        // Internal errors are bugs or storage failures: operators need them in the log, the
        // caller only needs to know the request did not fail because of its input.
        tracing::error!(error = %e.message, "internal error");
    }
    to_status(&e)
}

/// The `grpc-message` trailer percent-encodes every byte outside printable ASCII (and `%`)
/// as three: a message within [`MAX_ERROR_MESSAGE_BYTES`] can still triple on the wire. Cut
/// such a message further so its encoded form stays within the same budget.
fn fit_grpc_message(message: String) -> String {
    let encoded = |s: &str| -> usize {
        s.bytes()
            .map(|b| {
                if (0x20..0x7f).contains(&b) && b != b'%' {
                    1
                } else {
                    3
                }
            })
            .sum()
    };
    if encoded(&message) <= MAX_ERROR_MESSAGE_BYTES {
        return message;
    }
    // A message the service already cut keeps its note (which has the original length).
    let (message, note) = match message.rfind(CUT_NOTE_START) {
        Some(at) if message.ends_with(']') => {
            let (body, note) = message.split_at(at);
            (body.to_string(), note.to_string())
        }
        _ => {
            let note = format!("{CUT_NOTE_START}{} bytes in all]", message.len());
            (message, note)
        }
    };
    let budget = MAX_ERROR_MESSAGE_BYTES.saturating_sub(encoded(&note));
    let mut used = 0;
    let mut cut = 0;
    for (i, c) in message.char_indices() {
        let mut buf = [0u8; 4];
        used += encoded(c.encode_utf8(&mut buf));
        if used > budget {
            break;
        }
        cut = i + c.len_utf8();
    }
    format!("{}{note}", &message[..cut])
}

/// The status of a service error, with its reason as `ErrorInfo` in the status details.
pub fn to_status(e: &ServiceError) -> Status {
    let code = code(e.kind);
    let message = fit_grpc_message(e.message.clone());
    if e.reason.is_none() {
        return Status::new(code, message);
    }
    // The details repeat the message: cut shorter there, so both trailers together stay well
    // within what clients accept (the ErrorInfo is what the details are for).
    let mut details = rpc_status(e);
    details.message = crate::service::cap_message(details.message, MAX_DETAILS_MESSAGE_BYTES);
    Status::with_details(code, message, details.encode_to_vec().into())
}

/// The longest message repeated in the `grpc-status-details-bin` trailer's `google.rpc.Status`.
const MAX_DETAILS_MESSAGE_BYTES: usize = 1024;

/// The `google.rpc.ErrorInfo` of an error with a reason.
pub fn error_info(e: &ServiceError) -> Option<rpc::ErrorInfo> {
    e.reason.map(|reason| rpc::ErrorInfo {
        reason: reason.name().to_string(),
        domain: ERROR_REASON_DOMAIN.to_string(),
        metadata: e.metadata.clone().into_iter().collect(),
    })
}

/// The type URL of a packed `ErrorInfo`.
pub const ERROR_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.ErrorInfo";

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        status(e)
    }
}

/// An error found while translating a request: always the caller's input.
pub fn invalid(field: &str, message: impl std::fmt::Display) -> ServiceError {
    ServiceError::new(ErrorKind::InvalidArgument, format!("{field}: {message}"))
}

/// [`invalid`] with the reason clients branch on.
pub fn invalid_because(
    field: &str,
    message: impl std::fmt::Display,
    reason: crate::service::ErrorReason,
) -> ServiceError {
    invalid(field, message).with_reason(reason)
}

/// A zookie the caller sent that cannot be decoded.
pub fn bad_zookie(field: &str, e: ZookieError) -> ServiceError {
    invalid(field, e)
}

/// Authentication and authorization failures.
pub fn auth(e: AuthError) -> ServiceError {
    ServiceError::from(e)
}

/// A blocking task that panicked or was cancelled: a bug, never the caller's fault.
pub fn join(e: tokio::task::JoinError) -> ServiceError {
    ServiceError::new(
        ErrorKind::Internal,
        format!("the request's worker task failed: {e}"),
    )
}

/// A server-side failure with a message.
pub fn internal(message: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorKind::Internal, message)
}

/// The `google.rpc.Status` value of an error (for errors reported inside a response, and the
/// details trailer), with its `ErrorInfo` when it has a reason.
pub fn rpc_status(e: &ServiceError) -> rpc::Status {
    rpc::Status {
        code: code(e.kind) as i32,
        message: e.message.clone(),
        details: error_info(e)
            .map(|info| prost_types::Any {
                type_url: ERROR_INFO_TYPE_URL.to_string(),
                value: info.encode_to_vec(),
            })
            .into_iter()
            .collect(),
    }
}

/// The name metrics and logs use for a code (`OK`, `InvalidArgument`, ... as gRPC tooling
/// prints them).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Revision, parse_relationship};
    use crate::store::StoreError;

    #[test]
    fn store_errors_get_the_codes_clients_expect() {
        let dup = parse_relationship("document:a#viewer@user:b")
            .unwrap()
            .key();
        let cases = [
            (StoreError::AlreadyExists(dup.clone()), Code::AlreadyExists),
            (StoreError::DuplicateUpdate(dup), Code::InvalidArgument),
            (
                StoreError::PreconditionFailed {
                    index: 0,
                    reason: "no match".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                StoreError::RevisionInFuture {
                    requested: Revision(9),
                    head: Revision(3),
                },
                Code::FailedPrecondition,
            ),
            (StoreError::Backend("disk".into()), Code::Internal),
            (
                StoreError::Unavailable("connection refused".into()),
                Code::Unavailable,
            ),
            (
                StoreError::SchemaChanged {
                    validated: Revision(4),
                    current: Revision(6),
                },
                Code::Unavailable,
            ),
        ];
        for (e, expected) in cases {
            let message = e.to_string();
            let s = status(ServiceError::from(e));
            assert_eq!(s.code(), expected, "{message}");
            assert_eq!(s.message(), message);
        }
    }

    #[test]
    fn reasons_travel_as_error_info_in_the_details() {
        use crate::service::ErrorReason;
        let e = ServiceError::new(
            ErrorKind::FailedPrecondition,
            "object definition `x` not found",
        )
        .with_reason(ErrorReason::UnknownDefinition)
        .with_metadata("definition_name", "x");
        let s = status(e.clone());
        assert_eq!(s.code(), Code::FailedPrecondition);
        let details = rpc::Status::decode(s.details()).unwrap();
        assert_eq!(details.code, Code::FailedPrecondition as i32);
        assert_eq!(details.message, e.message);
        assert_eq!(details.details[0].type_url, ERROR_INFO_TYPE_URL);
        let info = rpc::ErrorInfo::decode(&details.details[0].value[..]).unwrap();
        assert_eq!(info.reason, "ERROR_REASON_UNKNOWN_DEFINITION");
        assert_eq!(info.domain, "authzed.com");
        assert_eq!(info.metadata["definition_name"], "x");
        // Without a reason: no details at all.
        assert!(status(invalid("f", "bad")).details().is_empty());
    }

    #[test]
    fn messages_stay_within_the_budget_on_the_wire() {
        let ascii = status(ServiceError::new(
            ErrorKind::InvalidArgument,
            "x".repeat(100_000),
        ));
        assert!(ascii.message().len() <= MAX_ERROR_MESSAGE_BYTES);
        assert!(
            ascii
                .message()
                .ends_with("[message cut: 100000 bytes in all]")
        );
        // Non-ASCII text is percent-encoded in the trailer: its encoded size is what counts.
        let wide = status(ServiceError::new(
            ErrorKind::InvalidArgument,
            "é".repeat(4000),
        ));
        let encoded: usize = wide
            .message()
            .bytes()
            .map(|b| {
                if (0x20..0x7f).contains(&b) && b != b'%' {
                    1
                } else {
                    3
                }
            })
            .sum();
        assert!(encoded <= MAX_ERROR_MESSAGE_BYTES, "{encoded}");
        assert!(wide.message().starts_with("éé"));
        assert!(
            wide.message().ends_with("[message cut: 8000 bytes in all]"),
            "{}",
            wide.message()
        );
    }

    #[test]
    fn auth_errors_keep_their_meaning() {
        let s = status(auth(AuthError::Unauthenticated("missing token".into())));
        assert_eq!(s.code(), Code::Unauthenticated);
        let s = status(auth(AuthError::PermissionDenied("not allowed".into())));
        assert_eq!(s.code(), Code::PermissionDenied);
        assert_eq!(s.message(), "not allowed");
    }

    #[test]
    fn invalid_input_names_the_field() {
        let s = status(bad_zookie(
            "consistency.at_least_as_fresh",
            ZookieError::Empty,
        ));
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(
            s.message().starts_with("consistency.at_least_as_fresh: "),
            "{}",
            s.message()
        );
        let inline = rpc_status(&invalid("items[2].resource", "required"));
        assert_eq!(inline.code, Code::InvalidArgument as i32);
        assert_eq!(inline.message, "items[2].resource: required");
    }
}
