//! The service's error type: every domain error classified once into an [`ErrorKind`] that
//! the gRPC edge maps to a status code (in `api/`, the one place that knows about codes).

use std::collections::BTreeMap;

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

/// Why a request failed, in the vocabulary clients branch on: the reference API's
/// `authzed.api.v1.ErrorReason` values. Transports send it along with the code (gRPC as a
/// `google.rpc.ErrorInfo` detail, HTTP in the error body's `details`); [`ErrorReason::name`] is
/// the enum value's name there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorReason {
    /// The schema text does not parse.
    SchemaParseError,
    /// The schema parses but does not type-check (unknown types, bad arrows, ...).
    SchemaTypeError,
    /// A request names an object definition the schema does not have.
    UnknownDefinition,
    /// A request names a relation or permission its definition does not have.
    UnknownRelationOrPermission,
    /// A write carries more updates than allowed.
    TooManyUpdatesInRequest,
    /// A write or delete carries more preconditions than allowed.
    TooManyPreconditionsInRequest,
    /// A precondition of a write or delete did not hold.
    WriteOrDeletePreconditionFailure,
    /// A relationship names a caveat the schema does not have.
    UnknownCaveat,
    /// A relationship's subject type (or caveat, or expiration) is not allowed on its relation.
    InvalidSubjectType,
    /// A caveat context value does not have the parameter's type.
    CaveatParameterTypeError,
    /// One write updates the same relationship twice.
    UpdatesOnSameRelationship,
    /// A write targets a permission, which is computed and cannot be stored.
    CannotUpdatePermission,
    /// A caveat expression failed while evaluating.
    CaveatEvaluationError,
    /// A cursor is malformed or belongs to another request.
    InvalidCursor,
    /// A delete matches more relationships than its limit and partial deletion was not allowed.
    TooManyRelationshipsForTransactionalDelete,
    /// CREATE of a relationship that already exists.
    AttemptToRecreateRelationship,
    /// Evaluation went deeper than the dispatch depth limit.
    MaximumDepthExceeded,
    /// A relationship's caveat context is larger than allowed.
    MaxRelationshipContextSize,
    /// A bulk check carries more items than allowed.
    TooManyChecksInRequest,
    /// A limit asked for is larger than the server allows.
    ExceedsMaximumAllowableLimit,
    /// A relationship filter is invalid (for example empty where one is required).
    InvalidFilter,
    /// A wildcard subject where the request does not allow one.
    WildcardNotAllowed,
    /// A write's transaction metadata is larger than allowed.
    TransactionMetadataTooLarge,
    /// A precondition with an empty filter (it would match everything).
    EmptyPrecondition,
}

impl ErrorReason {
    /// Every reason, for tests and documentation tables.
    pub const ALL: [ErrorReason; 24] = [
        ErrorReason::SchemaParseError,
        ErrorReason::SchemaTypeError,
        ErrorReason::UnknownDefinition,
        ErrorReason::UnknownRelationOrPermission,
        ErrorReason::TooManyUpdatesInRequest,
        ErrorReason::TooManyPreconditionsInRequest,
        ErrorReason::WriteOrDeletePreconditionFailure,
        ErrorReason::UnknownCaveat,
        ErrorReason::InvalidSubjectType,
        ErrorReason::CaveatParameterTypeError,
        ErrorReason::UpdatesOnSameRelationship,
        ErrorReason::CannotUpdatePermission,
        ErrorReason::CaveatEvaluationError,
        ErrorReason::InvalidCursor,
        ErrorReason::TooManyRelationshipsForTransactionalDelete,
        ErrorReason::AttemptToRecreateRelationship,
        ErrorReason::MaximumDepthExceeded,
        ErrorReason::MaxRelationshipContextSize,
        ErrorReason::TooManyChecksInRequest,
        ErrorReason::ExceedsMaximumAllowableLimit,
        ErrorReason::InvalidFilter,
        ErrorReason::WildcardNotAllowed,
        ErrorReason::TransactionMetadataTooLarge,
        ErrorReason::EmptyPrecondition,
    ];

    /// The `authzed.api.v1.ErrorReason` value name clients compare against.
    pub fn name(self) -> &'static str {
        match self {
            ErrorReason::SchemaParseError => "ERROR_REASON_SCHEMA_PARSE_ERROR",
            ErrorReason::SchemaTypeError => "ERROR_REASON_SCHEMA_TYPE_ERROR",
            ErrorReason::UnknownDefinition => "ERROR_REASON_UNKNOWN_DEFINITION",
            ErrorReason::UnknownRelationOrPermission => {
                "ERROR_REASON_UNKNOWN_RELATION_OR_PERMISSION"
            }
            ErrorReason::TooManyUpdatesInRequest => "ERROR_REASON_TOO_MANY_UPDATES_IN_REQUEST",
            ErrorReason::TooManyPreconditionsInRequest => {
                "ERROR_REASON_TOO_MANY_PRECONDITIONS_IN_REQUEST"
            }
            ErrorReason::WriteOrDeletePreconditionFailure => {
                "ERROR_REASON_WRITE_OR_DELETE_PRECONDITION_FAILURE"
            }
            ErrorReason::UnknownCaveat => "ERROR_REASON_UNKNOWN_CAVEAT",
            ErrorReason::InvalidSubjectType => "ERROR_REASON_INVALID_SUBJECT_TYPE",
            ErrorReason::CaveatParameterTypeError => "ERROR_REASON_CAVEAT_PARAMETER_TYPE_ERROR",
            ErrorReason::UpdatesOnSameRelationship => "ERROR_REASON_UPDATES_ON_SAME_RELATIONSHIP",
            ErrorReason::CannotUpdatePermission => "ERROR_REASON_CANNOT_UPDATE_PERMISSION",
            ErrorReason::CaveatEvaluationError => "ERROR_REASON_CAVEAT_EVALUATION_ERROR",
            ErrorReason::InvalidCursor => "ERROR_REASON_INVALID_CURSOR",
            ErrorReason::TooManyRelationshipsForTransactionalDelete => {
                "ERROR_REASON_TOO_MANY_RELATIONSHIPS_FOR_TRANSACTIONAL_DELETE"
            }
            ErrorReason::AttemptToRecreateRelationship => {
                "ERROR_REASON_ATTEMPT_TO_RECREATE_RELATIONSHIP"
            }
            ErrorReason::MaximumDepthExceeded => "ERROR_REASON_MAXIMUM_DEPTH_EXCEEDED",
            ErrorReason::MaxRelationshipContextSize => "ERROR_REASON_MAX_RELATIONSHIP_CONTEXT_SIZE",
            ErrorReason::TooManyChecksInRequest => "ERROR_REASON_TOO_MANY_CHECKS_IN_REQUEST",
            ErrorReason::ExceedsMaximumAllowableLimit => {
                "ERROR_REASON_EXCEEDS_MAXIMUM_ALLOWABLE_LIMIT"
            }
            ErrorReason::InvalidFilter => "ERROR_REASON_INVALID_FILTER",
            ErrorReason::WildcardNotAllowed => "ERROR_REASON_WILDCARD_NOT_ALLOWED",
            ErrorReason::TransactionMetadataTooLarge => {
                "ERROR_REASON_TRANSACTION_METADATA_TOO_LARGE"
            }
            ErrorReason::EmptyPrecondition => "ERROR_REASON_EMPTY_PRECONDITION",
        }
    }
}

/// The longest message an error carries to a client, in bytes. Messages travel in gRPC
/// trailers, and default clients drop metadata beyond 8–16 KiB (the caller would then see no
/// message at all); a message that says more than this is not read anyway.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

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

/// The longest value of an error's metadata entry, in bytes (names and numbers; a name is at
/// most a few hundred bytes).
pub const MAX_METADATA_VALUE_BYTES: usize = 1024;

/// The domain every [`ErrorReason`] belongs to, as the reference reports it.
pub const ERROR_REASON_DOMAIN: &str = "authzed.com";

/// An error of a service operation: a kind (the transport's status), a message for the caller,
/// and, where clients can act on it, a reason with metadata (names and numbers the message
/// also mentions, as separate values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    /// At most [`MAX_ERROR_MESSAGE_BYTES`] (see [`ServiceError::new`]).
    pub message: String,
    pub reason: Option<ErrorReason>,
    pub metadata: BTreeMap<String, String>,
}

impl ServiceError {
    /// An error with `message`, cut to [`MAX_ERROR_MESSAGE_BYTES`] if longer (the cut is
    /// marked, with the full length), so no input can make an error message grow with it.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            message: cap_message(message.into(), MAX_ERROR_MESSAGE_BYTES),
            reason: None,
            metadata: BTreeMap::new(),
        }
    }

    /// The same error with another message (capped as in [`ServiceError::new`]), keeping the
    /// kind, reason and metadata.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = cap_message(message.into(), MAX_ERROR_MESSAGE_BYTES);
        self
    }

    /// Attaches the reason clients branch on.
    pub fn with_reason(mut self, reason: ErrorReason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Attaches one metadata entry of the reason (a name or number the message mentions),
    /// capped like a message: no input makes an error grow with it.
    pub fn with_metadata(mut self, key: &str, value: impl ToString) -> Self {
        self.metadata.insert(
            key.to_string(),
            cap_message(value.to_string(), MAX_METADATA_VALUE_BYTES),
        );
        self
    }

    /// The same error with `context` put before its message (`context: message`), keeping the
    /// kind, reason and metadata.
    pub fn in_context(self, context: &str) -> Self {
        let message = format!("{context}: {}", self.message);
        self.with_message(message)
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        let (kind, reason) = match &e {
            StoreError::AlreadyExists(_) => (
                ErrorKind::AlreadyExists,
                Some(ErrorReason::AttemptToRecreateRelationship),
            ),
            StoreError::DuplicateUpdate(_) => (
                ErrorKind::InvalidArgument,
                Some(ErrorReason::UpdatesOnSameRelationship),
            ),
            StoreError::PreconditionFailed { .. } => (
                ErrorKind::FailedPrecondition,
                Some(ErrorReason::WriteOrDeletePreconditionFailure),
            ),
            StoreError::DeleteLimitExceeded { .. } => (
                ErrorKind::FailedPrecondition,
                Some(ErrorReason::TooManyRelationshipsForTransactionalDelete),
            ),
            StoreError::RevisionTooOld { .. }
            | StoreError::RevisionInFuture { .. }
            | StoreError::SchemaRejected(_) => (ErrorKind::FailedPrecondition, None),
            // Both are transient: the same call may succeed when retried.
            StoreError::SchemaChanged { .. } | StoreError::Unavailable(_) => {
                (ErrorKind::Unavailable, None)
            }
            StoreError::Backend(_) | StoreError::Corrupt(_) => (ErrorKind::Internal, None),
        };
        let mut out = ServiceError::new(kind, e.to_string());
        out.reason = reason;
        match &e {
            StoreError::AlreadyExists(key) | StoreError::DuplicateUpdate(key) => {
                out.with_metadata("relationship", key)
            }
            StoreError::PreconditionFailed { index, .. } => {
                out.with_metadata("precondition_index", index)
            }
            StoreError::DeleteLimitExceeded { limit, matched } => out
                .with_metadata("limit", limit)
                .with_metadata("matched", matched),
            _ => out,
        }
    }
}

/// An unknown definition, with the reason and metadata the reference reports.
pub(crate) fn unknown_definition(definition: &str, message: String) -> ServiceError {
    ServiceError::new(ErrorKind::FailedPrecondition, message)
        .with_reason(ErrorReason::UnknownDefinition)
        .with_metadata("definition_name", definition)
}

/// An unknown relation or permission of a definition.
pub(crate) fn unknown_relation(definition: &str, relation: &str, message: String) -> ServiceError {
    ServiceError::new(ErrorKind::FailedPrecondition, message)
        .with_reason(ErrorReason::UnknownRelationOrPermission)
        .with_metadata("definition_name", definition)
        .with_metadata("relation_or_permission_name", relation)
}

impl From<EngineError> for ServiceError {
    fn from(e: EngineError) -> Self {
        let message = e.to_string();
        match e {
            EngineError::UnknownDefinition(d) => unknown_definition(&d, message),
            EngineError::UnknownRelation {
                object_type,
                relation,
            } => unknown_relation(&object_type, &relation, message),
            EngineError::UnknownCaveat(c) => {
                ServiceError::new(ErrorKind::FailedPrecondition, message)
                    .with_reason(ErrorReason::UnknownCaveat)
                    .with_metadata("caveat_name", c)
            }
            EngineError::DepthExceeded { limit, .. } => {
                ServiceError::new(ErrorKind::ResourceExhausted, message)
                    .with_reason(ErrorReason::MaximumDepthExceeded)
                    .with_metadata("maximum_depth_allowed", limit)
            }
            EngineError::Caveat(c) => match *c {
                CaveatError::BadParameter {
                    caveat, parameter, ..
                } => ServiceError::new(ErrorKind::InvalidArgument, message)
                    .with_reason(ErrorReason::CaveatParameterTypeError)
                    .with_metadata("caveat_name", caveat)
                    .with_metadata("parameter_name", parameter),
                CaveatError::Evaluation { caveat, .. } => {
                    ServiceError::new(ErrorKind::InvalidArgument, message)
                        .with_reason(ErrorReason::CaveatEvaluationError)
                        .with_metadata("caveat_name", caveat)
                }
            },
            EngineError::Store(s) => ServiceError::from(*s),
        }
    }
}

impl From<ModelError> for ServiceError {
    fn from(e: ModelError) -> Self {
        ServiceError::new(ErrorKind::InvalidArgument, e.to_string())
    }
}

impl From<SchemaViolation> for ServiceError {
    fn from(e: SchemaViolation) -> Self {
        let message = e.to_string();
        match e {
            SchemaViolation::UnknownResourceType { resource_type } => {
                unknown_definition(&resource_type, message)
            }
            SchemaViolation::UnknownSubjectType { subject_type } => {
                unknown_definition(&subject_type, message)
            }
            SchemaViolation::UnknownRelation {
                resource_type,
                relation,
            } => unknown_relation(&resource_type, &relation, message),
            SchemaViolation::UnknownSubjectRelation {
                subject_type,
                relation,
            } => unknown_relation(&subject_type, &relation, message),
            SchemaViolation::UnknownCaveat { caveat } => {
                ServiceError::new(ErrorKind::FailedPrecondition, message)
                    .with_reason(ErrorReason::UnknownCaveat)
                    .with_metadata("caveat_name", caveat)
            }
            SchemaViolation::UnknownCaveatParameter {
                caveat, parameter, ..
            }
            | SchemaViolation::CaveatContextType {
                caveat, parameter, ..
            } => ServiceError::new(ErrorKind::InvalidArgument, message)
                .with_reason(ErrorReason::CaveatParameterTypeError)
                .with_metadata("caveat_name", caveat)
                .with_metadata("parameter_name", parameter),
            SchemaViolation::WriteToPermission {
                resource_type,
                relation,
            } => ServiceError::new(ErrorKind::InvalidArgument, message)
                .with_reason(ErrorReason::CannotUpdatePermission)
                .with_metadata("definition_name", resource_type)
                .with_metadata("permission_name", relation),
            other => {
                let subject_type = match &other {
                    SchemaViolation::SubjectNotAllowed { subject, .. }
                    | SchemaViolation::CaveatRequired { subject, .. }
                    | SchemaViolation::CaveatNotAllowed { subject, .. } => Some(subject.clone()),
                    _ => None,
                };
                let mut out = ServiceError::new(ErrorKind::InvalidArgument, message)
                    .with_reason(ErrorReason::InvalidSubjectType);
                if let Some(s) = subject_type {
                    out = out.with_metadata("subject_type", s);
                }
                out
            }
        }
    }
}

impl From<DependencyError> for ServiceError {
    fn from(e: DependencyError) -> Self {
        let message = e.to_string();
        match e {
            DependencyError::UnknownDefinition(d) => unknown_definition(&d, message),
            DependencyError::UnknownRelation {
                definition,
                relation,
            } => unknown_relation(&definition, &relation, message),
            DependencyError::NotAPermission { .. } => {
                ServiceError::new(ErrorKind::InvalidArgument, message)
            }
        }
    }
}
