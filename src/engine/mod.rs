//! Permission evaluation over one snapshot: Check, Expand, LookupResources, LookupSubjects.
//!
//! The engine sees only `model`, `schema`, `caveat` and the `store::Snapshot` trait.
//!
//! PUBLIC API CONTRACT (other modules depend on exactly this):
//! - `EngineConfig { max_depth }` (default 50)
//! - `Evaluator::new(&Schema, &dyn Snapshot, &EngineConfig)`
//! - `Evaluator::check(resource, permission, subject, context) -> Result<CheckOutcome, EngineError>`
//! - `Evaluator::expand(resource, permission) -> Result<ExpandTree, EngineError>`
//! - `Evaluator::lookup_resources(resource_type, permission, subject, context)
//!      -> Result<Vec<LookupResource>, EngineError>` (sorted by resource id)
//! - `Evaluator::lookup_subjects(resource, permission, subject_type, subject_relation, context)
//!      -> Result<Vec<LookupSubject>, EngineError>` (sorted by subject id, wildcard first)

use crate::caveat::CaveatError;
use crate::model::{Context, ObjectRef, SubjectRef};
use crate::schema::Schema;
use crate::store::{Snapshot, StoreError};

/// Limits and knobs of one evaluation.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Maximum recursion depth of a check/expand/lookup before it fails with
    /// [`EngineError::DepthExceeded`].
    pub max_depth: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { max_depth: 50 }
    }
}

/// The answer to "does subject have permission on resource?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    Has,
    No,
    /// The answer depends on caveat parameters that were not supplied (sorted, deduplicated).
    Conditional { missing: Vec<String> },
}

/// One node of an expanded permission tree, as the reference API returns it: the
/// expression of `object#relation` one level deep; userset subjects are not followed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandTree {
    /// The object and relation this node expands (None for anonymous sub-expressions).
    pub expanded: Option<(ObjectRef, String)>,
    pub node: ExpandNode,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExpandNode {
    /// Subjects related directly (objects, usersets, wildcards), with caveat/expiration info.
    Leaf(Vec<ExpandSubject>),
    Union(Vec<ExpandTree>),
    Intersection(Vec<ExpandTree>),
    Exclusion(Vec<ExpandTree>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExpandSubject {
    pub subject: SubjectRef,
    /// Name of the caveat on the relationship, if any.
    pub caveat: Option<String>,
}

/// One result of LookupResources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupResource {
    pub resource_id: String,
    pub outcome: CheckOutcome,
}

/// One result of LookupSubjects: a subject id (or `*`), and for the wildcard the subjects
/// excluded from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupSubject {
    pub subject_id: String,
    pub outcome: CheckOutcome,
    /// Only for `*`: concrete subjects excluded from the wildcard (by an exclusion).
    pub excluded: Vec<LookupSubject>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("object definition `{0}` not found in the schema")]
    UnknownDefinition(String),
    #[error("relation or permission `{relation}` not found on definition `{object_type}`")]
    UnknownRelation { object_type: String, relation: String },
    #[error(
        "evaluation exceeded the maximum depth of {limit} while resolving `{at}`; the schema or data may be too deeply nested"
    )]
    DepthExceeded { limit: u32, at: String },
    #[error("caveat `{0}` is referenced by a relationship but not defined in the schema")]
    UnknownCaveat(String),
    #[error(transparent)]
    Caveat(#[from] CaveatError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Evaluates requests against one schema and one snapshot.
pub struct Evaluator<'a> {
    pub(crate) schema: &'a Schema,
    pub(crate) snapshot: &'a dyn Snapshot,
    pub(crate) config: &'a EngineConfig,
}

impl<'a> Evaluator<'a> {
    pub fn new(schema: &'a Schema, snapshot: &'a dyn Snapshot, config: &'a EngineConfig) -> Self {
        Evaluator {
            schema,
            snapshot,
            config,
        }
    }

    /// PLACEHOLDER signature until the engine lands.
    pub fn check(
        &self,
        _resource: &ObjectRef,
        _permission: &str,
        _subject: &SubjectRef,
        _context: &Context,
    ) -> Result<CheckOutcome, EngineError> {
        let _ = (self.schema, self.snapshot, self.config);
        Err(EngineError::UnknownDefinition("engine not implemented yet".into()))
    }
}
