//! The one mapping from Tessera's errors to HTTP responses.
//!
//! The status follows the gRPC code ([`crate::api::error::code`]) as the reference gateway
//! maps it, except FAILED_PRECONDITION, which is `412 Precondition Failed` here (the request is
//! well-formed; the state refuses it) where the gateway says 400. The body is the JSON of a
//! `google.rpc.Status`: `{"code": <gRPC code number>, "message": …, "details": [ErrorInfo…]}`,
//! the reason in `details` as gRPC clients receive it. Streams end with one `{"error": …}`
//! line of the same body.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tonic::Code;

use crate::api::error::{ERROR_INFO_TYPE_URL, code};
use crate::service::{ERROR_REASON_DOMAIN, ErrorKind, ServiceError};

use super::json::bounded;

/// Longest message of an error body, in bytes.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

/// An HTTP failure: a service error and the status it is sent with.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub error: ServiceError,
}

impl From<ServiceError> for HttpError {
    fn from(error: ServiceError) -> Self {
        HttpError {
            status: status_of(&error),
            error,
        }
    }
}

impl HttpError {
    /// A body over the configured limit.
    pub fn too_large(limit: usize) -> HttpError {
        HttpError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: ServiceError::new(
                ErrorKind::InvalidArgument,
                format!("the request body is larger than the limit of {limit} bytes"),
            ),
        }
    }
}

/// The HTTP status of a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The HTTP status of a service error.
pub fn status_of(e: &ServiceError) -> StatusCode {
    http_status(code(e.kind))
}

/// The JSON body of an error (a `google.rpc.Status` in the JSON mapping).
pub fn body(e: &ServiceError) -> Value {
    let details: Vec<Value> = e
        .reason
        .map(|r| {
            json!({
                "@type": ERROR_INFO_TYPE_URL,
                "reason": r.name(),
                "domain": ERROR_REASON_DOMAIN,
                "metadata": e.metadata,
            })
        })
        .into_iter()
        .collect();
    json!({
        "code": code(e.kind) as i32,
        "message": bounded(&e.message, MAX_ERROR_MESSAGE_BYTES),
        "details": details,
    })
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut response = (self.status, body(&self.error).to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ErrorReason;

    #[test]
    fn kinds_get_their_statuses() {
        let cases = [
            (ErrorKind::InvalidArgument, 400),
            (ErrorKind::Unauthenticated, 401),
            (ErrorKind::PermissionDenied, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::AlreadyExists, 409),
            (ErrorKind::FailedPrecondition, 412),
            (ErrorKind::ResourceExhausted, 429),
            (ErrorKind::Internal, 500),
            (ErrorKind::Unavailable, 503),
        ];
        for (kind, status) in cases {
            assert_eq!(status_of(&ServiceError::new(kind, "m")).as_u16(), status);
        }
        assert_eq!(HttpError::too_large(10).status.as_u16(), 413);
    }

    #[test]
    fn bodies_carry_code_message_and_reason() {
        let e = ServiceError::new(ErrorKind::FailedPrecondition, "x".repeat(10_000))
            .with_reason(ErrorReason::UnknownDefinition)
            .with_metadata("definition_name", "nope");
        let b = body(&e);
        assert_eq!(b["code"], 9);
        assert!(b["message"].as_str().unwrap().len() <= MAX_ERROR_MESSAGE_BYTES + 3);
        assert_eq!(b["details"][0]["reason"], "ERROR_REASON_UNKNOWN_DEFINITION");
        assert_eq!(b["details"][0]["metadata"]["definition_name"], "nope");
        assert_eq!(
            body(&ServiceError::new(ErrorKind::InvalidArgument, "m"))["details"],
            json!([])
        );
    }
}
