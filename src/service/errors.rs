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

/// An error of a service operation: a kind and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ServiceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            message: message.into(),
        }
    }
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
            // Both are transient: the same call may succeed when retried.
            StoreError::SchemaChanged { .. } | StoreError::Unavailable(_) => ErrorKind::Unavailable,
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
