//! The service's error type: every domain error classified once into an [`ErrorKind`] that
//! the gRPC edge maps to a status code (in `api/`, the one place that knows about codes).

use crate::caveat::CaveatError;
use crate::engine::EngineError;
use crate::model::ModelError;
use crate::schema::{DependencyError, SchemaViolation};
use crate::store::StoreError;

/// What kind of failure, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is malformed (bad names, ids, tokens, limits).
    InvalidArgument,
    /// The request is well-formed but the system state refuses it (unknown type, failed
    /// precondition, revision outside the readable window, orphaning schema change).
    FailedPrecondition,
    /// Something asked for does not exist (no schema yet).
    NotFound,
    /// CREATE of a relationship that exists.
    AlreadyExists,
    /// Evaluation hit a resource limit (maximum depth).
    ResourceExhausted,
    /// The caller is not identified.
    Unauthenticated,
    /// The caller is identified but not allowed.
    PermissionDenied,
    /// A bug or storage failure.
    Internal,
    /// Temporarily unable to serve (shutting down, storage unavailable).
    Unavailable,
}

/// The longest message an error carries to a client, in bytes. Messages travel in gRPC
/// trailers, and default clients drop metadata beyond 8–16 KiB (the caller would then see no
/// message at all); a message that says more than this is not read anyway.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

/// An error of a service operation: a kind and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    /// At most [`MAX_ERROR_MESSAGE_BYTES`] (see [`ServiceError::new`]).
    pub message: String,
}

impl ServiceError {
    /// An error with `message`, cut to [`MAX_ERROR_MESSAGE_BYTES`] if longer (the cut is
    /// marked, with the full length), so no input can make an error message grow with it.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            message: cap_message(message.into(), MAX_ERROR_MESSAGE_BYTES),
        }
    }
}

/// How the note of a cut message starts (`… [message cut: N bytes in all]`).
pub const CUT_NOTE_START: &str = " … [message cut: ";

/// `message` if it has at most `max` bytes, else its longest prefix (on a character boundary)
/// that leaves room for a note saying how long it was, plus that note.
pub fn cap_message(message: String, max: usize) -> String {
    if message.len() <= max {
        return message;
    }
    let note = format!("{CUT_NOTE_START}{} bytes in all]", message.len());
    let mut cut = max.saturating_sub(note.len());
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + note.len());
    out.push_str(&message[..cut]);
    out.push_str(&note);
    out
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            StoreError::DuplicateUpdate(_) => ErrorKind::InvalidArgument,
            StoreError::PreconditionFailed { .. }
            | StoreError::RevisionTooOld { .. }
            | StoreError::RevisionInFuture { .. }
            | StoreError::DeleteLimitExceeded { .. }
            | StoreError::SchemaRejected(_) => ErrorKind::FailedPrecondition,
            StoreError::Backend(_) | StoreError::Corrupt(_) => ErrorKind::Internal,
        };
        ServiceError::new(kind, e.to_string())
    }
}

impl From<EngineError> for ServiceError {
    fn from(e: EngineError) -> Self {
        let kind = match &e {
            EngineError::UnknownDefinition(_)
            | EngineError::UnknownRelation { .. }
            | EngineError::UnknownCaveat(_) => ErrorKind::FailedPrecondition,
            EngineError::DepthExceeded { .. } => ErrorKind::ResourceExhausted,
            EngineError::Caveat(CaveatError::BadParameter { .. }) => ErrorKind::InvalidArgument,
            EngineError::Caveat(CaveatError::Evaluation { .. }) => ErrorKind::InvalidArgument,
            EngineError::Store(s) => return ServiceError::from(s.clone()),
        };
        ServiceError::new(kind, e.to_string())
    }
}

impl From<ModelError> for ServiceError {
    fn from(e: ModelError) -> Self {
        ServiceError::new(ErrorKind::InvalidArgument, e.to_string())
    }
}

impl From<SchemaViolation> for ServiceError {
    fn from(e: SchemaViolation) -> Self {
        let kind = match &e {
            SchemaViolation::UnknownResourceType { .. }
            | SchemaViolation::UnknownRelation { .. }
            | SchemaViolation::UnknownSubjectType { .. }
            | SchemaViolation::UnknownSubjectRelation { .. }
            | SchemaViolation::UnknownCaveat { .. } => ErrorKind::FailedPrecondition,
            _ => ErrorKind::InvalidArgument,
        };
        ServiceError::new(kind, e.to_string())
    }
}

impl From<DependencyError> for ServiceError {
    fn from(e: DependencyError) -> Self {
        let kind = match &e {
            DependencyError::UnknownDefinition(_) | DependencyError::UnknownRelation { .. } => {
                ErrorKind::FailedPrecondition
            }
            DependencyError::NotAPermission { .. } => ErrorKind::InvalidArgument,
        };
        ServiceError::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary_with_a_note() {
        let short = ServiceError::new(ErrorKind::InvalidArgument, "fine");
        assert_eq!(short.message, "fine");
        let exact = "x".repeat(MAX_ERROR_MESSAGE_BYTES);
        assert_eq!(
            ServiceError::new(ErrorKind::InvalidArgument, exact.clone()).message,
            exact
        );
        for filler in ["a", "é", "€", "𝄞"] {
            let long = filler.repeat(3 * MAX_ERROR_MESSAGE_BYTES);
            let e = ServiceError::new(ErrorKind::InvalidArgument, long.clone());
            assert!(e.message.len() <= MAX_ERROR_MESSAGE_BYTES, "{filler}");
            assert!(
                e.message
                    .ends_with(&format!("[message cut: {} bytes in all]", long.len())),
                "{}",
                &e.message[e.message.len() - 60..]
            );
            assert!(long.starts_with(e.message.split(" … [").next().unwrap_or("")));
        }
    }
}
