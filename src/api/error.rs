//! The one mapping from Tessera's errors to gRPC status codes.
//!
//! Every failure that leaves the server goes through [`status`] (or [`code`] for the inline
//! per-item errors of CheckBulkPermissions), so a kind of error always gets the same code
//! whichever RPC produced it. Messages are the domain messages: they already name the field or
//! the object at fault.

use tonic::{Code, Status};

use crate::auth::AuthError;
use crate::consistency::ZookieError;
use crate::service::{ErrorKind, ServiceError};

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

/// The status returned for a service error.
pub fn status(e: ServiceError) -> Status {
    let code = code(e.kind);
    if code == Code::Internal {
        // Internal errors are bugs or storage failures: operators need them in the log, the
        // caller only needs to know the request did not fail because of its input.
        tracing::error!(error = %e.message, "internal error");
    }
    Status::new(code, e.message)
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        status(e)
    }
}

/// An error found while translating a request: always the caller's input.
pub fn invalid(field: &str, message: impl std::fmt::Display) -> ServiceError {
    ServiceError::new(ErrorKind::InvalidArgument, format!("{field}: {message}"))
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

/// The `google.rpc.Status` value of an error, for errors reported inside a response.
pub fn rpc_status(e: &ServiceError) -> crate::api::proto::google::rpc::Status {
    crate::api::proto::google::rpc::Status {
        code: code(e.kind) as i32,
        message: e.message.clone(),
        details: Vec::new(),
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
