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
//! - Additions: `Evaluator::with_index(&Schema, &SchemaIndex, ..)` to reuse the per-schema
//!   analysis ([`SchemaIndex::new`], build it once per schema), and `Evaluator::check_bulk`
//!   (many checks for one subject sharing one memo), and `Evaluator::with_cache(&CheckCache)`
//!   to share sub-problem answers across requests (`cache.rs`; keyed by revision).
//!
//! Semantics, in brief (details in each submodule):
//! - Outcomes are three-valued, `No < Conditional < Has` (`outcome.rs`): union is the maximum,
//!   intersection the minimum, `a - b` is `a ∩ ¬b`; a caveated relationship counts with its
//!   caveat's value (relationship context merged over the request context).
//! - `rel->perm` / `rel.any(perm)` is the union over the tupleset's subject objects (subject
//!   relation ignored, wildcards and types lacking `perm` skipped) of "object in tupleset ∩
//!   perm on it"; `rel.all(perm)` additionally requires "in tupleset ⇒ perm" for every object,
//!   and is `No` when the tupleset is empty.
//! - A userset subject `type:id#rel` has `rel` on `type:id` (a userset contains itself).
//! - A key met again on its own evaluation path contributes nothing (least fixpoint for
//!   monotone schemas); `check.rs` explains how memoisation stays exact around cycles.
//! - All four operations use the same rules, so they agree with each other; the property
//!   tests in `tests/engine_props.rs` check this against a naive reference evaluator.

mod analysis;
mod cache;
mod check;
mod expand;
mod leopard;
mod lookup_resources;
mod lookup_subjects;
mod outcome;
mod reads;

pub use analysis::SchemaIndex;
pub use cache::{CheckCache, CheckCacheStats, DEFAULT_CHECK_CACHE_ENTRIES};
pub use lookup_resources::{ResourceStream, SuspendedLookup};

use std::sync::Arc;

use crate::caveat::{CaveatError, CaveatOutcome};
use crate::model::{
    Context, ObjectRef, Relationship, RelationshipFilter, SubjectFilter, SubjectRef,
};
use crate::schema::Schema;
use crate::store::{Snapshot, SnapshotReader, StoreError};

use analysis::NodeId;

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
    Conditional {
        missing: Vec<String>,
    },
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
    UnknownRelation {
        object_type: String,
        relation: String,
    },
    #[error(
        "evaluation exceeded the maximum depth of {limit} while resolving `{at}`; the schema or data may be too deeply nested"
    )]
    DepthExceeded { limit: u32, at: String },
    #[error("caveat `{0}` is referenced by a relationship but not defined in the schema")]
    UnknownCaveat(String),
    // The two large errors are boxed: every evaluation step returns a `Result` with this
    // error, and the recursion's stack frames (and the bytes moved per return) grow with it.
    #[error(transparent)]
    Caveat(Box<CaveatError>),
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl From<CaveatError> for EngineError {
    fn from(e: CaveatError) -> Self {
        EngineError::Caveat(Box::new(e))
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        EngineError::Store(Box::new(e))
    }
}

/// Evaluates requests against one schema and one snapshot.
///
/// Cheap to create when given a prebuilt [`SchemaIndex`] ([`Evaluator::with_index`]);
/// [`Evaluator::new`] derives the index itself, which costs a walk over the schema.
/// Each request keeps its own memo of sub-problems, so one evaluator can serve many requests
/// (and several threads: it is `Sync`).
pub struct Evaluator<'a> {
    pub(crate) schema: &'a Schema,
    pub(crate) snapshot: &'a dyn Snapshot,
    pub(crate) config: &'a EngineConfig,
    index: IndexHandle<'a>,
    /// Answers shared with other requests (see `cache.rs`), when the caller provides one.
    pub(crate) cache: Option<&'a CheckCache>,
}

/// Checks for one subject and context sharing one memo; see [`Evaluator::bulk_checker`].
pub struct BulkChecker<'e, 'a> {
    ev: &'e Evaluator<'a>,
    /// The shared run, or why the subject cannot be checked at all (then every item fails).
    run: Result<check::CheckRun<'e, 'a>, EngineError>,
}

impl BulkChecker<'_, '_> {
    /// Does the checker's subject have `permission` on `resource`?
    pub fn check(
        &mut self,
        resource: &ObjectRef,
        permission: &str,
    ) -> Result<CheckOutcome, EngineError> {
        let node = self.ev.node(&resource.object_type, permission)?;
        match &mut self.run {
            Ok(run) => run.check_root(node, &resource.object_id),
            Err(e) => Err(e.clone()),
        }
    }
}

enum IndexHandle<'a> {
    Borrowed(&'a SchemaIndex),
    Owned(Box<SchemaIndex>),
}

impl<'a> Evaluator<'a> {
    /// An evaluator over `schema` and `snapshot`, deriving the schema's [`SchemaIndex`].
    pub fn new(schema: &'a Schema, snapshot: &'a dyn Snapshot, config: &'a EngineConfig) -> Self {
        Evaluator {
            schema,
            snapshot,
            config,
            index: IndexHandle::Owned(Box::new(SchemaIndex::new(schema))),
            cache: None,
        }
    }

    /// An evaluator reusing `index`, which must have been built from `schema` (if it was
    /// built from a differently shaped schema, a fresh index is derived instead).
    pub fn with_index(
        schema: &'a Schema,
        index: &'a SchemaIndex,
        snapshot: &'a dyn Snapshot,
        config: &'a EngineConfig,
    ) -> Self {
        let index = if index.matches(schema) {
            IndexHandle::Borrowed(index)
        } else {
            IndexHandle::Owned(Box::new(SchemaIndex::new(schema)))
        };
        Evaluator {
            schema,
            snapshot,
            config,
            index,
            cache: None,
        }
    }

    /// Shares sub-problem answers with other requests through `cache`. The cache must only
    /// ever be used with snapshots of one store (answers are keyed by revision).
    pub fn with_cache(mut self, cache: &'a CheckCache) -> Self {
        self.cache = Some(cache);
        self
    }

    pub(crate) fn index(&self) -> &SchemaIndex {
        match &self.index {
            IndexHandle::Borrowed(i) => i,
            IndexHandle::Owned(i) => i,
        }
    }

    /// Does `subject` have `permission` (a permission or a relation) on `resource`?
    ///
    /// `context` supplies caveat parameters; values fixed on a relationship take precedence.
    pub fn check(
        &self,
        resource: &ObjectRef,
        permission: &str,
        subject: &SubjectRef,
        context: &Context,
    ) -> Result<CheckOutcome, EngineError> {
        let node = self.node(&resource.object_type, permission)?;
        let mut run = check::CheckRun::new(self, subject, context)?;
        run.check_root(node, &resource.object_id)
    }

    /// Checks many `(resource, permission)` pairs for one subject, sharing the memo of
    /// sub-problems between them (CheckBulkPermissions). Each pair gets its own result.
    pub fn check_bulk(
        &self,
        items: &[(ObjectRef, String)],
        subject: &SubjectRef,
        context: &Context,
    ) -> Vec<Result<CheckOutcome, EngineError>> {
        let mut bulk = self.bulk_checker(subject, context);
        items
            .iter()
            .map(|(resource, permission)| bulk.check(resource, permission))
            .collect()
    }

    /// A checker for one subject and context that answers checks one at a time, every one
    /// reusing the sub-problems the earlier ones solved (the memo of one check request), so
    /// a caller can stop early or interleave its own work between items.
    pub fn bulk_checker<'e>(
        &'e self,
        subject: &'e SubjectRef,
        context: &'e Context,
    ) -> BulkChecker<'e, 'a> {
        BulkChecker {
            ev: self,
            run: check::CheckRun::new(self, subject, context),
        }
    }

    /// The tree of `permission` on `resource`, one level deep as the reference API returns
    /// it: relations become leaves listing their direct subjects (usersets are not followed),
    /// permissions their rewrite, with arrows expanded over the tupleset's objects.
    pub fn expand(
        &self,
        resource: &ObjectRef,
        permission: &str,
    ) -> Result<ExpandTree, EngineError> {
        let node = self.node(&resource.object_type, permission)?;
        expand::Expander::new(self).expand_key(node, &resource.object_id, 1)
    }

    /// Every resource of `resource_type` on which `subject` has `permission` (outcome `Has`
    /// or `Conditional`), sorted by id. Walks backwards from the subject through the reverse
    /// index rather than scanning resources.
    pub fn lookup_resources(
        &self,
        resource_type: &str,
        permission: &str,
        subject: &SubjectRef,
        context: &Context,
    ) -> Result<Vec<LookupResource>, EngineError> {
        let plan = self.plan_lookup_resources(resource_type, permission, subject, None)?;
        self.resume_lookup_resources(subject, context, plan)
            .collect()
    }

    /// Plans LookupResources (the walk over the nodes that lead to other objects, see
    /// `lookup_resources.rs`), positioned strictly after resource id `after`; nothing is
    /// confirmed yet, so the plan does not depend on a caveat context.
    /// [`Evaluator::resume_lookup_resources`] streams its results.
    pub fn plan_lookup_resources(
        &self,
        resource_type: &str,
        permission: &str,
        subject: &SubjectRef,
        after: Option<&str>,
    ) -> Result<SuspendedLookup, EngineError> {
        let node = self.node(resource_type, permission)?;
        self.resolve_subject(subject)?;
        lookup_resources::plan(self, node, subject, after)
    }

    /// Streams the results of a planned (or suspended) LookupResources in id order: those
    /// with outcome `Has` or `Conditional`. `subject` and `context` must be the ones it was
    /// planned for; the evaluator must read the same revision and schema.
    pub fn resume_lookup_resources<'e>(
        &'e self,
        subject: &'e SubjectRef,
        context: &'e Context,
        lookup: SuspendedLookup,
    ) -> ResourceStream<'e, 'a> {
        ResourceStream::resume(self, subject, context, lookup)
    }

    /// Every subject of `subject_type` (with `subject_relation`, `None` for plain objects)
    /// that has `permission` on `resource`: concrete ids sorted, and `*` first when a
    /// wildcard grants it, listing the subjects excluded from it.
    ///
    /// Reading the result: a concrete entry gives that subject's outcome; otherwise an
    /// `excluded` entry of the wildcard means the subject is excluded (`Has`: always,
    /// `Conditional`: depending on the listed parameters); otherwise the wildcard's outcome
    /// applies.
    pub fn lookup_subjects(
        &self,
        resource: &ObjectRef,
        permission: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
        context: &Context,
    ) -> Result<Vec<LookupSubject>, EngineError> {
        Ok(Arc::unwrap_or_clone(self.lookup_subjects_shared(
            resource,
            permission,
            subject_type,
            subject_relation,
            context,
        )?))
    }

    /// [`Evaluator::lookup_subjects`], shared: without a caveat context, the result may come
    /// from (and goes to) the shared cache, where it is held once for every request.
    pub fn lookup_subjects_shared(
        &self,
        resource: &ObjectRef,
        permission: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
        context: &Context,
    ) -> Result<Arc<Vec<LookupSubject>>, EngineError> {
        let node = self.node(&resource.object_type, permission)?;
        lookup_subjects::lookup_shared(
            self,
            node,
            &resource.object_id,
            subject_type,
            subject_relation,
            context,
        )
    }

    /// The node of `object_type#relation`, or the error naming what is missing.
    pub(crate) fn node(&self, object_type: &str, relation: &str) -> Result<NodeId, EngineError> {
        if self.schema.definition(object_type).is_none() {
            return Err(EngineError::UnknownDefinition(object_type.to_string()));
        }
        self.index()
            .node(self.schema, object_type, relation)
            .ok_or_else(|| EngineError::UnknownRelation {
                object_type: object_type.to_string(),
                relation: relation.to_string(),
            })
    }

    /// The definition index of `object_type`.
    pub(crate) fn def_of(&self, object_type: &str) -> Option<u32> {
        self.schema
            .definitions
            .get_index_of(object_type)
            .map(|d| d as u32)
    }

    /// Resolves a request's subject: its definition and, for a userset, the node of its
    /// relation.
    pub(crate) fn resolve_subject(
        &self,
        subject: &SubjectRef,
    ) -> Result<(u32, Option<NodeId>), EngineError> {
        let def = self
            .def_of(&subject.object.object_type)
            .ok_or_else(|| EngineError::UnknownDefinition(subject.object.object_type.clone()))?;
        let rel = match &subject.relation {
            Some(r) => Some(self.node(&subject.object.object_type, r)?),
            None => None,
        };
        Ok((def, rel))
    }

    /// The value of a relationship's caveat: `Has` when it has none.
    ///
    /// The relationship's own context is merged over the request's, so the request cannot
    /// override a value the relationship fixed.
    pub(crate) fn caveat_value(
        &self,
        rel: &Relationship,
        context: &Context,
    ) -> Result<CheckOutcome, EngineError> {
        let Some(caveat) = &rel.caveat else {
            return Ok(CheckOutcome::Has);
        };
        let compiled = self
            .schema
            .caveat(&caveat.name)
            .ok_or_else(|| EngineError::UnknownCaveat(caveat.name.clone()))?;
        let outcome = if caveat.context.is_empty() {
            compiled.evaluate(context)?
        } else if context.is_empty() {
            compiled.evaluate(&caveat.context)?
        } else {
            let mut merged = context.clone();
            for (k, v) in &caveat.context {
                merged.insert(k.clone(), v.clone());
            }
            compiled.evaluate(&merged)?
        };
        Ok(match outcome {
            CaveatOutcome::True => CheckOutcome::Has,
            CaveatOutcome::False => CheckOutcome::No,
            CaveatOutcome::MissingParameters(missing) => CheckOutcome::Conditional { missing },
        })
    }

    /// The stored relationships `type:id#relation@…`, optionally restricted to subjects
    /// matching `subject`, through a request's [`SnapshotReader`] (which reuses store
    /// resources between the many small reads of one evaluation). Collected, so no store
    /// iterator stays borrowed across recursion.
    pub(crate) fn read_via(
        &self,
        reader: &mut dyn SnapshotReader,
        node: NodeId,
        object_id: &str,
        subject: Option<SubjectFilter>,
    ) -> Result<Vec<Relationship>, EngineError> {
        Ok(reader.read(&self.relation_filter(node, object_id, subject))?)
    }

    fn relation_filter(
        &self,
        node: NodeId,
        object_id: &str,
        subject: Option<SubjectFilter>,
    ) -> RelationshipFilter {
        let n = self.index().get(node);
        RelationshipFilter {
            resource_type: Some(n.type_name.clone()),
            resource_id: Some(object_id.to_string()),
            resource_id_prefix: None,
            relation: Some(n.name.clone()),
            subject,
        }
    }

    /// `type:id#relation` of a node, for error messages.
    pub(crate) fn describe(&self, node: NodeId, object_id: &str) -> String {
        let n = self.index().get(node);
        format!("{}:{}#{}", n.type_name, object_id, n.name)
    }
}
