//! Every operation of the API as a [`Request`]: validated domain values in, domain results out.
//! Transports (gRPC in `api/`, HTTP/JSON and AuthZEN in `http/`) translate their messages into
//! these and hand them to [`Tessera::execute`]; paging (cursors bound to a snapshot and to the
//! request's parameters), limits and the operation's capabilities are decided here and in
//! `auth`, never by a transport.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::{Caller, Operation};
use crate::consistency::Consistency;
use crate::engine::{CheckOutcome, ExpandTree, LookupResource, LookupSubject, SuspendedLookup};
use crate::model::{
    Context, ObjectRef, Relationship, RelationshipFilter, RelationshipKey, Revision, SubjectRef,
    WILDCARD_ID,
};
use crate::schema::{RelationRef, Schema};
use crate::store::{DeleteOutcome, Precondition, RelationshipUpdate, TransactionMetadata};

use super::cursor::{self, Cursor, CursorKind, Fingerprint};
use super::{
    BulkChecks, ErrorKind, ErrorReason, ReadView, Request, ServiceConfig, ServiceError, Tessera,
};

/// Relationships buffered from an import stream before they are committed as one batch
/// (bounded memory; each batch is its own transaction).
pub const IMPORT_BATCH: usize = 10_000;

/// A page token the caller sent back, with the request field it came in (named by errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub field: &'static str,
    pub token: String,
}

impl PageToken {
    /// A token from the API's `optional_cursor` field.
    pub fn cursor(token: impl Into<String>) -> PageToken {
        PageToken {
            field: "optional_cursor",
            token: token.into(),
        }
    }

    fn decode(&self, kind: CursorKind, fingerprint: u64) -> Result<Cursor, ServiceError> {
        Cursor::decode_field(self.field, &self.token, kind, fingerprint)
    }
}

/// A limit field: 0 means none; above `max` is refused.
fn limit(field: &str, value: u32, max: usize) -> Result<Option<usize>, ServiceError> {
    match value as usize {
        0 => Ok(None),
        l if l > max => Err(ServiceError::new(
            ErrorKind::InvalidArgument,
            format!("{field}: {l} exceeds the maximum of {max}"),
        )
        .with_reason(ErrorReason::ExceedsMaximumAllowableLimit)
        .with_metadata("limit_provided", l)
        .with_metadata("maximum_limit_allowed", max)),
        l => Ok(Some(l)),
    }
}

/// The view a paged request reads: the cursor's snapshot when resuming, else the one its
/// consistency selects.
fn paged_view(
    t: &Tessera,
    cursor: Option<&Cursor>,
    consistency: Consistency,
) -> Result<ReadView, ServiceError> {
    match cursor {
        Some(c) => t.view_at(c.revision),
        None => t.view(consistency),
    }
}

fn encode_cursor(
    kind: CursorKind,
    revision: Revision,
    fingerprint: u64,
    fields: Vec<String>,
) -> String {
    Cursor {
        kind,
        revision,
        fingerprint,
        fields,
    }
    .encode()
}

fn filter_fingerprint(kind: CursorKind, f: &RelationshipFilter) -> u64 {
    let mut fp = Fingerprint::new(kind)
        .opt(f.resource_type.as_deref())
        .opt(f.resource_id.as_deref())
        .opt(f.resource_id_prefix.as_deref())
        .opt(f.relation.as_deref());
    if let Some(s) = &f.subject {
        fp = fp
            .str(&s.subject_type)
            .opt(s.subject_id.as_deref())
            .str(&format!("{:?}", s.relation));
    }
    fp.finish()
}

fn context_fingerprint(fp: Fingerprint, c: &Context) -> Fingerprint {
    fp.str(&serde_json::Value::Object(c.clone()).to_string())
}

/// A lookup's cursor and the id its page continues after.
fn lookup_position(
    token: Option<&PageToken>,
    kind: CursorKind,
    fingerprint: u64,
) -> Result<(Option<Cursor>, Option<String>), ServiceError> {
    let cursor = token.map(|t| t.decode(kind, fingerprint)).transpose()?;
    let after = cursor
        .as_ref()
        .map(|c| cursor::id_from_fields(&c.fields))
        .transpose()?;
    Ok((cursor, after))
}

// ---- schema -------------------------------------------------------------------------------

/// ReadSchema: the schema text at the newest revision.
#[derive(Debug, Clone)]
pub struct ReadSchema;

/// A schema's text and the revision it was read at.
#[derive(Debug, Clone)]
pub struct SchemaText {
    pub text: String,
    pub revision: Revision,
}

impl Request for ReadSchema {
    type Output = SchemaText;
    fn operation(&self) -> Operation {
        Operation::ReadSchema
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<SchemaText, ServiceError> {
        let (text, revision) = t.read_schema(Consistency::FullyConsistent)?;
        Ok(SchemaText { text, revision })
    }
}

/// WriteSchema: compile and store a new schema.
#[derive(Debug, Clone)]
pub struct WriteSchema {
    pub text: String,
}

impl Request for WriteSchema {
    type Output = Revision;
    fn operation(&self) -> Operation {
        Operation::WriteSchema
    }
    fn run(self, t: &Tessera, caller: &Caller) -> Result<Revision, ServiceError> {
        t.write_schema(&self.text, Some(caller.id.clone()))
    }
}

/// The compiled schema at a consistency (ReflectSchema, DiffSchema).
#[derive(Debug, Clone)]
pub struct SchemaAt {
    pub consistency: Consistency,
}

/// A compiled schema (none before the first WriteSchema) and the revision it was read at.
#[derive(Clone)]
pub struct SchemaSnapshot {
    pub schema: Option<Arc<Schema>>,
    pub revision: Revision,
}

impl SchemaSnapshot {
    /// The schema, or FAILED_PRECONDITION when none was ever written.
    pub fn require(&self) -> Result<&Arc<Schema>, ServiceError> {
        self.schema.as_ref().ok_or_else(|| {
            ServiceError::new(
                ErrorKind::FailedPrecondition,
                "no schema has been written yet; call WriteSchema first",
            )
        })
    }
}

impl Request for SchemaAt {
    type Output = SchemaSnapshot;
    fn operation(&self) -> Operation {
        Operation::ReadSchema
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<SchemaSnapshot, ServiceError> {
        let view = t.view(self.consistency)?;
        Ok(SchemaSnapshot {
            schema: view.schema().ok().cloned(),
            revision: view.revision(),
        })
    }
}

/// DiffSchema: the stored schema at a consistency, and the comparison schema compiled (on the
/// blocking pool, within the configured schema limits).
#[derive(Debug, Clone)]
pub struct DiffSchema {
    pub consistency: Consistency,
    pub comparison: String,
}

impl Request for DiffSchema {
    type Output = (SchemaSnapshot, Arc<Schema>);
    fn operation(&self) -> Operation {
        Operation::ReadSchema
    }
    fn run(self, t: &Tessera, caller: &Caller) -> Result<Self::Output, ServiceError> {
        let comparison = t.compile_schema("comparison_schema", &self.comparison)?;
        let at = SchemaAt {
            consistency: self.consistency,
        }
        .run(t, caller)?;
        Ok((at, comparison))
    }
}

/// ComputablePermissions: the permissions computed from a relation (or from a definition's
/// objects used directly as subjects when `relation` is `None`).
#[derive(Debug, Clone)]
pub struct ComputablePermissions {
    pub consistency: Consistency,
    pub definition: String,
    pub relation: Option<String>,
    pub definition_prefix: Option<String>,
}

impl Request for ComputablePermissions {
    type Output = (Vec<RelationRef>, Revision);
    fn operation(&self) -> Operation {
        Operation::ReadSchema
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<Self::Output, ServiceError> {
        let view = t.view(self.consistency)?;
        let found = crate::schema::computable_permissions(
            view.schema()?,
            &self.definition,
            self.relation.as_deref(),
            self.definition_prefix.as_deref(),
        )?;
        Ok((found, view.revision()))
    }
}

/// DependentRelations: the relations and permissions a permission is computed from.
#[derive(Debug, Clone)]
pub struct DependentRelations {
    pub consistency: Consistency,
    pub definition: String,
    pub permission: String,
}

impl Request for DependentRelations {
    type Output = (Vec<RelationRef>, Revision);
    fn operation(&self) -> Operation {
        Operation::ReadSchema
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<Self::Output, ServiceError> {
        let view = t.view(self.consistency)?;
        let found =
            crate::schema::dependent_relations(view.schema()?, &self.definition, &self.permission)?;
        Ok((found, view.revision()))
    }
}

// ---- checks -------------------------------------------------------------------------------

/// One question: does `subject` have `permission` on `resource`, given `context`?
#[derive(Debug, Clone, PartialEq)]
pub struct CheckItem {
    pub resource: ObjectRef,
    pub permission: String,
    pub subject: SubjectRef,
    pub context: Context,
}

/// CheckPermission.
#[derive(Debug, Clone)]
pub struct Check {
    pub consistency: Consistency,
    pub item: CheckItem,
    pub with_tracing: bool,
}

/// What a traced check reports besides its answer: whether the checked name is a permission
/// (`Some(true)`) or a relation, the schema text used, and how long evaluation took.
#[derive(Debug, Clone)]
pub struct CheckTrace {
    pub is_permission: Option<bool>,
    pub schema_text: String,
    pub duration: Duration,
}

/// One check's answer.
#[derive(Debug, Clone)]
pub struct CheckAnswer {
    pub outcome: CheckOutcome,
    pub trace: Option<CheckTrace>,
}

/// A check's answer and the revision it was computed at.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub revision: Revision,
    pub answer: CheckAnswer,
}

fn check_one(
    t: &Tessera,
    view: &ReadView,
    item: &CheckItem,
    with_tracing: bool,
    started: Instant,
) -> Result<CheckAnswer, ServiceError> {
    let outcome = t.check(
        view,
        &item.resource,
        &item.permission,
        &item.subject,
        &item.context,
    )?;
    answer_of(view, item, outcome, with_tracing, started)
}

/// A check's answer, with its trace when asked for.
fn answer_of(
    view: &ReadView,
    item: &CheckItem,
    outcome: CheckOutcome,
    with_tracing: bool,
    started: Instant,
) -> Result<CheckAnswer, ServiceError> {
    let trace = if with_tracing {
        let schema = view.schema()?;
        Some(CheckTrace {
            is_permission: schema
                .relation(&item.resource.object_type, &item.permission)
                .map(|r| r.is_permission()),
            schema_text: view
                .snapshot()
                .schema()?
                .map(|s| s.text.to_string())
                .unwrap_or_default(),
            duration: started.elapsed(),
        })
    } else {
        None
    };
    Ok(CheckAnswer { outcome, trace })
}

impl Request for Check {
    type Output = CheckResult;
    fn operation(&self) -> Operation {
        Operation::Evaluate
    }
    fn short(&self) -> bool {
        true
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<CheckResult, ServiceError> {
        let started = Instant::now();
        let view = t.view(self.consistency)?;
        let answer = check_one(t, &view, &self.item, self.with_tracing, started)?;
        Ok(CheckResult {
            revision: view.revision(),
            answer,
        })
    }
}

/// Decides, from one bulk check answer, that the remaining items need no answer.
pub type StopAfter = fn(&Result<CheckAnswer, ServiceError>) -> bool;

/// CheckBulkPermissions (and AuthZEN evaluations): many checks at one snapshot. An item that
/// failed to translate stays an error in its place; every other item is answered.
#[derive(Debug, Clone)]
pub struct CheckBulk {
    pub consistency: Consistency,
    pub items: Vec<Result<CheckItem, ServiceError>>,
    pub with_tracing: bool,
    /// Stop after the first answer for which this returns true (AuthZEN's short-circuit
    /// semantics); `None` answers every item.
    pub stop_after: Option<StopAfter>,
}

/// The answers of a bulk check, in item order, and their revision.
#[derive(Debug, Clone)]
pub struct CheckBulkResult {
    pub revision: Revision,
    pub answers: Vec<Result<CheckAnswer, ServiceError>>,
}

impl Request for CheckBulk {
    type Output = CheckBulkResult;
    fn validate(&self, config: &ServiceConfig) -> Result<(), ServiceError> {
        let max = config.max_bulk_check_items;
        if self.items.len() > max {
            return Err(ServiceError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "items: {} items exceed the limit of {max} per request",
                    self.items.len()
                ),
            )
            .with_reason(ErrorReason::TooManyChecksInRequest)
            .with_metadata("check_count", self.items.len())
            .with_metadata("maximum_checks_allowed", max));
        }
        Ok(())
    }
    fn operation(&self) -> Operation {
        Operation::Evaluate
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<CheckBulkResult, ServiceError> {
        let started = Instant::now();
        // One snapshot for every item.
        let view = t.view(self.consistency)?;
        let evaluator = t.evaluator(&view)?;
        let mut bulk = BulkChecks::new(&evaluator, &view)?;
        let mut answers = Vec::with_capacity(self.items.len());
        for item in &self.items {
            let answer = item.as_ref().map_err(Clone::clone).and_then(|i| {
                let outcome = bulk.check(i)?;
                answer_of(&view, i, outcome, self.with_tracing, started)
            });
            let stop = self.stop_after.is_some_and(|stop| stop(&answer));
            answers.push(answer);
            if stop {
                break;
            }
        }
        Ok(CheckBulkResult {
            revision: view.revision(),
            answers,
        })
    }
}

/// ExpandPermissionTree.
#[derive(Debug, Clone)]
pub struct Expand {
    pub consistency: Consistency,
    pub resource: ObjectRef,
    pub permission: String,
}

impl Request for Expand {
    type Output = (ExpandTree, Revision);
    fn operation(&self) -> Operation {
        Operation::Evaluate
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<Self::Output, ServiceError> {
        let view = t.view(self.consistency)?;
        let tree = t.expand(&view, &self.resource, &self.permission)?;
        Ok((tree, view.revision()))
    }
}

// ---- lookups ------------------------------------------------------------------------------

/// LookupResources (and AuthZEN resource search): resources of a type on which a subject has
/// a permission, by id, one page after the cursor.
#[derive(Debug, Clone)]
pub struct LookupResources {
    pub consistency: Consistency,
    pub resource_type: String,
    pub permission: String,
    pub subject: SubjectRef,
    pub context: Context,
    /// At most this many results (`None`: all).
    pub limit: Option<usize>,
    pub cursor: Option<PageToken>,
}

/// One page of lookup results, each with the cursor that continues after it.
#[derive(Debug, Clone)]
pub struct LookupPage<T> {
    pub revision: Revision,
    pub items: Vec<(T, String)>,
    /// More results follow the last item (only known when a limit was given).
    pub more: bool,
}

impl LookupResources {
    /// The key of this request's suspended lookups (`lookups.rs`).
    fn cache_key(&self) -> String {
        super::lookups::request_key(&[
            &self.resource_type,
            &self.permission,
            &self.subject.to_string(),
            &serde_json::Value::Object(self.context.clone()).to_string(),
        ])
    }

    fn fingerprint(&self) -> u64 {
        let fp = Fingerprint::new(CursorKind::LookupResources)
            .str(&self.resource_type)
            .str(&self.permission)
            .str(&self.subject.to_string());
        context_fingerprint(fp, &self.context).finish()
    }
}

impl Request for LookupResources {
    type Output = ResourcePages;
    fn operation(&self) -> Operation {
        Operation::Evaluate
    }
    /// Plans the lookup (errors surface here, before anything is streamed), or takes up the
    /// one the previous page suspended on this node.
    fn run(self, t: &Tessera, _: &Caller) -> Result<ResourcePages, ServiceError> {
        const KIND: CursorKind = CursorKind::LookupResources;
        let fingerprint = self.fingerprint();
        let request = self.cache_key();
        let (cursor, after) = lookup_position(self.cursor.as_ref(), KIND, fingerprint)?;
        let view = paged_view(t, cursor.as_ref(), self.consistency)?;
        let resumed = after
            .as_deref()
            .and_then(|a| t.lookups.take_resources(view.revision(), &request, a));
        let lookup = match resumed {
            Some(lookup) => lookup,
            None => t.plan_lookup_resources(
                &view,
                &self.resource_type,
                &self.permission,
                &self.subject,
                after.as_deref(),
            )?,
        };
        Ok(ResourcePages {
            view,
            subject: self.subject,
            context: self.context,
            limit: self.limit,
            fingerprint,
            request,
            lookup,
        })
    }
}

/// A LookupResources in progress: planned (or resumed), streamed by
/// [`ResourcePages::for_each`].
pub struct ResourcePages {
    view: ReadView,
    subject: SubjectRef,
    context: Context,
    limit: Option<usize>,
    fingerprint: u64,
    /// The key of its suspension between pages (`LookupResources::cache_key`).
    request: String,
    lookup: SuspendedLookup,
}

impl ResourcePages {
    /// The revision every page is read at.
    pub fn revision(&self) -> Revision {
        self.view.revision()
    }

    /// Emits the page's results in id order, each with the cursor that continues after it, as
    /// they are found (the first one as soon as the walk has opened every stream). Returns
    /// whether more results follow the page (only known with a limit); then the lookup stays
    /// suspended on this node for the next page. Blocking.
    pub fn for_each<E: From<ServiceError>>(
        self,
        t: &Tessera,
        mut emit: impl FnMut(LookupResource, String) -> Result<(), E>,
    ) -> Result<bool, E> {
        const KIND: CursorKind = CursorKind::LookupResources;
        let revision = self.view.revision();
        let ev = self
            .view
            .evaluator(&t.config.engine, &t.check_cache)
            .map_err(E::from)?;
        let mut stream = ev.resume_lookup_resources(&self.subject, &self.context, self.lookup);
        let mut n = 0usize;
        loop {
            if self.limit.is_some_and(|l| n >= l) {
                let more = stream
                    .peek()
                    .map_err(|e| E::from(ServiceError::from(e)))?
                    .is_some();
                if more {
                    t.lookups
                        .put_resources(revision, &self.request, stream.suspend());
                }
                return Ok(more);
            }
            let Some(r) = stream
                .next_result()
                .map_err(|e| E::from(ServiceError::from(e)))?
            else {
                return Ok(false);
            };
            n += 1;
            let c = encode_cursor(
                KIND,
                revision,
                self.fingerprint,
                vec![r.resource_id.clone()],
            );
            emit(r, c)?;
        }
    }

    /// The page collected (AuthZEN's resource search). Blocking.
    pub fn collect(self, t: &Tessera) -> Result<LookupPage<LookupResource>, ServiceError> {
        let revision = self.revision();
        let mut items = Vec::new();
        let more = self.for_each(t, |r, c| {
            items.push((r, c));
            Ok::<(), ServiceError>(())
        })?;
        Ok(LookupPage {
            revision,
            items,
            more,
        })
    }
}

/// LookupSubjects (and AuthZEN subject search): subjects of a type that have a permission on a
/// resource, by id, one page after the cursor. The limit counts concrete subjects; the
/// wildcard (when included) rides along on the page it sorts into.
#[derive(Debug, Clone)]
pub struct LookupSubjects {
    pub consistency: Consistency,
    pub resource: ObjectRef,
    pub permission: String,
    pub subject_type: String,
    pub subject_relation: Option<String>,
    pub context: Context,
    pub concrete_limit: Option<usize>,
    pub include_wildcards: bool,
    pub cursor: Option<PageToken>,
}

impl Request for LookupSubjects {
    type Output = LookupPage<LookupSubject>;
    fn operation(&self) -> Operation {
        Operation::Evaluate
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<Self::Output, ServiceError> {
        const KIND: CursorKind = CursorKind::LookupSubjects;
        let fp = Fingerprint::new(KIND)
            .str(&self.resource.to_string())
            .str(&self.permission)
            .str(&self.subject_type)
            .opt(self.subject_relation.as_deref())
            .str(if self.include_wildcards {
                "wildcards"
            } else {
                "concrete"
            });
        let fp = context_fingerprint(fp, &self.context).finish();
        // What the result depends on (not the page size or the wildcard choice).
        let request = super::lookups::request_key(&[
            &self.resource.to_string(),
            &self.permission,
            &self.subject_type,
            self.subject_relation.as_deref().unwrap_or("..."),
            &serde_json::Value::Object(self.context.clone()).to_string(),
        ]);
        let (cursor, after) = lookup_position(self.cursor.as_ref(), KIND, fp)?;
        let view = paged_view(t, cursor.as_ref(), self.consistency)?;
        let revision = view.revision();
        // Later pages slice the result the first page computed on this node.
        let all = match cursor
            .as_ref()
            .and_then(|_| t.lookups.subjects(revision, &request))
        {
            Some(all) => all,
            None => t.lookup_subjects(
                &view,
                &self.resource,
                &self.permission,
                &self.subject_type,
                self.subject_relation.as_deref(),
                &self.context,
            )?,
        };
        let start = match after.as_deref() {
            Some(a) => all.partition_point(|s| s.subject_id.as_str() <= a),
            None => 0,
        };
        let mut items = Vec::new();
        let mut concrete = 0usize;
        let mut more = false;
        for s in all[start..].iter().cloned() {
            if s.outcome == CheckOutcome::No {
                continue;
            }
            let wildcard = s.subject_id == WILDCARD_ID;
            if wildcard && !self.include_wildcards {
                continue;
            }
            if !wildcard {
                if self.concrete_limit.is_some_and(|l| concrete >= l) {
                    more = true;
                    break;
                }
                concrete += 1;
            }
            let c = encode_cursor(KIND, revision, fp, vec![s.subject_id.clone()]);
            items.push((s, c));
        }
        if more {
            t.lookups.put_subjects(revision, &request, all);
        }
        Ok(LookupPage {
            revision,
            items,
            more,
        })
    }
}

/// AuthZEN action search: the relations and permissions of a resource's type that a subject
/// has on it, by name, one page after the cursor.
#[derive(Debug, Clone)]
pub struct ActionSearch {
    pub consistency: Consistency,
    pub resource: ObjectRef,
    pub subject: SubjectRef,
    pub context: Context,
    pub limit: Option<usize>,
    pub cursor: Option<PageToken>,
}

/// One page of action names and the cursor continuing after it (when more may follow).
#[derive(Debug, Clone)]
pub struct ActionPage {
    pub revision: Revision,
    pub actions: Vec<String>,
    pub next: Option<String>,
}

impl Request for ActionSearch {
    type Output = ActionPage;
    fn operation(&self) -> Operation {
        Operation::Evaluate
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<ActionPage, ServiceError> {
        const KIND: CursorKind = CursorKind::ActionSearch;
        let fp = Fingerprint::new(KIND)
            .str(&self.resource.to_string())
            .str(&self.subject.to_string());
        let fp = context_fingerprint(fp, &self.context).finish();
        let (cursor, after) = lookup_position(self.cursor.as_ref(), KIND, fp)?;
        let view = paged_view(t, cursor.as_ref(), self.consistency)?;
        let schema = view.schema()?;
        let definition = schema
            .definition(&self.resource.object_type)
            .ok_or_else(|| super::unknown_definition(&self.resource.object_type))?;
        let mut names: Vec<&String> = definition.relations.keys().collect();
        names.sort();
        let limit = self.limit.unwrap_or(usize::MAX);
        let mut actions = Vec::new();
        let mut next = None;
        for name in names
            .into_iter()
            .filter(|n| after.as_deref().is_none_or(|a| n.as_str() > a))
        {
            if actions.len() >= limit {
                next = actions.last().map(|last: &String| {
                    encode_cursor(KIND, view.revision(), fp, vec![last.clone()])
                });
                break;
            }
            let outcome = t.check(&view, &self.resource, name, &self.subject, &self.context)?;
            if outcome == CheckOutcome::Has {
                actions.push(name.clone());
            }
        }
        Ok(ActionPage {
            revision: view.revision(),
            actions,
            next,
        })
    }
}

// ---- relationship reads -------------------------------------------------------------------

/// ReadRelationships: relationships matching a filter, streamed page by page from one
/// snapshot, each with the cursor that continues after it.
#[derive(Debug, Clone)]
pub struct ReadRelationships {
    pub consistency: Consistency,
    pub filter: RelationshipFilter,
    /// 0: no limit (every match, read in pages of the configured maximum).
    pub limit: u32,
    pub cursor: Option<PageToken>,
}

/// A relationship read in progress: the first page is read (so errors surface before anything
/// is sent); [`RelationshipPages::for_each`] reads the rest.
pub struct RelationshipPages {
    view: ReadView,
    filter: RelationshipFilter,
    first: Vec<Relationship>,
    page_size: usize,
    remaining: Option<usize>,
    fingerprint: u64,
}

impl Request for ReadRelationships {
    type Output = RelationshipPages;
    fn validate(&self, config: &ServiceConfig) -> Result<(), ServiceError> {
        limit("optional_limit", self.limit, config.max_read_page).map(drop)
    }
    fn operation(&self) -> Operation {
        Operation::ReadRelationships
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<RelationshipPages, ServiceError> {
        const KIND: CursorKind = CursorKind::ReadRelationships;
        let max = t.config().max_read_page;
        let limit = limit("optional_limit", self.limit, max)?;
        let fingerprint = filter_fingerprint(KIND, &self.filter);
        let cursor = self
            .cursor
            .as_ref()
            .map(|c| c.decode(KIND, fingerprint))
            .transpose()?;
        let after = cursor
            .as_ref()
            .map(|c| cursor::key_from_fields(&c.fields))
            .transpose()?;
        let page_size = limit.unwrap_or(max).min(max);
        let view = paged_view(t, cursor.as_ref(), self.consistency)?;
        let first = t.read_relationships(&view, &self.filter, after.as_ref(), Some(page_size))?;
        Ok(RelationshipPages {
            view,
            filter: self.filter,
            first,
            page_size,
            remaining: limit,
            fingerprint,
        })
    }
}

impl RelationshipPages {
    /// The revision every page is read at.
    pub fn revision(&self) -> Revision {
        self.view.revision()
    }

    /// Emits every relationship with its cursor, reading further pages as needed. Blocking.
    pub fn for_each<E: From<ServiceError>>(
        self,
        t: &Tessera,
        mut emit: impl FnMut(Relationship, String) -> Result<(), E>,
    ) -> Result<(), E> {
        const KIND: CursorKind = CursorKind::ReadRelationships;
        let revision = self.view.revision();
        let mut remaining = self.remaining;
        let mut page = self.first;
        loop {
            let n = page.len();
            let mut last: Option<RelationshipKey> = None;
            for r in page {
                let key = r.key();
                let c = encode_cursor(KIND, revision, self.fingerprint, cursor::key_fields(&key));
                last = Some(key);
                emit(r, c)?;
            }
            if let Some(rem) = remaining.as_mut() {
                *rem -= n;
                if *rem == 0 {
                    return Ok(());
                }
            }
            let Some(last) = last.filter(|_| n == self.page_size) else {
                return Ok(());
            };
            let next = remaining.map_or(self.page_size, |r| r.min(self.page_size));
            page = t.read_relationships(&self.view, &self.filter, Some(&last), Some(next))?;
            if page.is_empty() {
                return Ok(());
            }
        }
    }
}

/// ExportBulkRelationships: every relationship matching a filter, in chunks, from one snapshot.
#[derive(Debug, Clone)]
pub struct ExportRelationships {
    pub consistency: Consistency,
    pub filter: RelationshipFilter,
    /// A hint: 0 or anything above the configured maximum means the maximum.
    pub chunk: u32,
    pub cursor: Option<PageToken>,
}

/// An export in progress: the first chunk is read; [`ExportChunks::for_each`] reads the rest.
pub struct ExportChunks {
    view: ReadView,
    filter: RelationshipFilter,
    first: Vec<Relationship>,
    chunk: usize,
    fingerprint: u64,
}

impl Request for ExportRelationships {
    type Output = ExportChunks;
    fn operation(&self) -> Operation {
        Operation::ReadRelationships
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<ExportChunks, ServiceError> {
        const KIND: CursorKind = CursorKind::ExportRelationships;
        let max = t.config().max_read_page;
        let chunk = match self.chunk as usize {
            0 => max,
            l => l.min(max),
        };
        let fingerprint = filter_fingerprint(KIND, &self.filter);
        let cursor = self
            .cursor
            .as_ref()
            .map(|c| c.decode(KIND, fingerprint))
            .transpose()?;
        let after = cursor
            .as_ref()
            .map(|c| cursor::key_from_fields(&c.fields))
            .transpose()?;
        let view = paged_view(t, cursor.as_ref(), self.consistency)?;
        let first = t.read_relationships(&view, &self.filter, after.as_ref(), Some(chunk))?;
        Ok(ExportChunks {
            view,
            filter: self.filter,
            first,
            chunk,
            fingerprint,
        })
    }
}

impl ExportChunks {
    /// Emits every chunk with the cursor after its last relationship. Blocking.
    pub fn for_each<E: From<ServiceError>>(
        self,
        t: &Tessera,
        mut emit: impl FnMut(Vec<Relationship>, Option<String>) -> Result<(), E>,
    ) -> Result<(), E> {
        const KIND: CursorKind = CursorKind::ExportRelationships;
        let revision = self.view.revision();
        let mut page = self.first;
        while !page.is_empty() {
            let full = page.len() == self.chunk;
            let last = page.last().map(Relationship::key);
            let c = last
                .as_ref()
                .map(|k| encode_cursor(KIND, revision, self.fingerprint, cursor::key_fields(k)));
            emit(page, c)?;
            match last {
                Some(last) if full => {
                    page = t.read_relationships(
                        &self.view,
                        &self.filter,
                        Some(&last),
                        Some(self.chunk),
                    )?;
                }
                _ => break,
            }
        }
        Ok(())
    }
}

// ---- relationship writes ------------------------------------------------------------------

/// WriteRelationships: updates applied atomically after the preconditions hold.
#[derive(Debug, Clone)]
pub struct WriteRelationships {
    pub updates: Vec<RelationshipUpdate>,
    pub preconditions: Vec<Precondition>,
    pub metadata: TransactionMetadata,
}

impl Request for WriteRelationships {
    type Output = Revision;
    fn operation(&self) -> Operation {
        Operation::WriteRelationships {
            resource_types: self
                .updates
                .iter()
                .map(|u| u.relationship.resource.object_type.clone())
                .collect(),
            with_preconditions: !self.preconditions.is_empty(),
        }
    }
    fn run(self, t: &Tessera, caller: &Caller) -> Result<Revision, ServiceError> {
        t.write_relationships(
            self.updates,
            self.preconditions,
            Some(caller.id.clone()),
            self.metadata,
        )
    }
}

/// DeleteRelationships: every relationship matching a filter, which must name a resource type
/// (deletes are authorized per type, and so can never reach the reserved namespace).
#[derive(Debug, Clone)]
pub struct DeleteRelationships {
    pub filter: RelationshipFilter,
    pub preconditions: Vec<Precondition>,
    /// 0: no limit.
    pub limit: u32,
    pub allow_partial: bool,
    pub metadata: TransactionMetadata,
}

impl DeleteRelationships {
    /// The filter's resource type, required.
    fn resource_type(&self) -> Result<&str, ServiceError> {
        self.filter.resource_type.as_deref().ok_or_else(|| {
            ServiceError::new(
                ErrorKind::InvalidArgument,
                "relationship_filter.resource_type: is required: deletes are authorized per resource type",
            )
            .with_reason(ErrorReason::InvalidFilter)
        })
    }
}

impl Request for DeleteRelationships {
    type Output = DeleteOutcome;
    fn validate(&self, _: &ServiceConfig) -> Result<(), ServiceError> {
        self.resource_type().map(drop)
    }
    fn operation(&self) -> Operation {
        // `validate` (which `Tessera::execute` runs first) refused a filter without a type.
        Operation::DeleteRelationships {
            resource_type: self.resource_type().unwrap_or_default().to_string(),
            with_preconditions: !self.preconditions.is_empty(),
        }
    }
    fn run(self, t: &Tessera, caller: &Caller) -> Result<DeleteOutcome, ServiceError> {
        let limit = (self.limit > 0).then_some(self.limit as usize);
        t.delete_relationships(
            self.filter,
            self.preconditions,
            limit,
            self.allow_partial,
            Some(caller.id.clone()),
            self.metadata,
        )
    }
}

/// One batch of ImportBulkRelationships (CREATE semantics, one transaction).
#[derive(Debug, Clone)]
pub struct ImportRelationships {
    pub relationships: Vec<Relationship>,
}

impl Request for ImportRelationships {
    type Output = usize;
    fn operation(&self) -> Operation {
        let resource_types: BTreeSet<String> = self
            .relationships
            .iter()
            .map(|r| r.resource.object_type.clone())
            .collect();
        Operation::WriteRelationships {
            resource_types,
            with_preconditions: false,
        }
    }
    fn run(self, t: &Tessera, caller: &Caller) -> Result<usize, ServiceError> {
        let n = self.relationships.len();
        t.import(self.relationships, Some(caller.id.clone()))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Auth;
    use crate::model::parse_relationship;
    use crate::store::WriteOp;
    use crate::store::memory::MemoryStore;

    fn tessera() -> Tessera {
        let t = Tessera::new(Arc::new(MemoryStore::new()), ServiceConfig::default());
        t.write_schema(
            "definition user {}\ndefinition document {\n relation viewer: user\n relation editor: user\n permission view = viewer + editor\n permission edit = editor\n}",
            None,
        )
        .unwrap();
        let updates = [
            "document:a#viewer@user:x",
            "document:b#editor@user:x",
            "document:c#viewer@user:y",
        ]
        .iter()
        .map(|r| RelationshipUpdate {
            op: WriteOp::Touch,
            relationship: parse_relationship(r).unwrap(),
        })
        .collect();
        t.write_relationships(updates, vec![], None, Default::default())
            .unwrap();
        t
    }

    #[test]
    fn lookup_pages_chain_through_their_cursors() {
        let t = tessera();
        let auth = Auth::insecure();
        let caller = Caller::anonymous();
        let request = |cursor| LookupResources {
            consistency: Consistency::FullyConsistent,
            resource_type: "document".into(),
            permission: "view".into(),
            subject: SubjectRef::new("user", "x", None),
            context: Context::new(),
            limit: Some(1),
            cursor,
        };
        let first = t
            .execute(&auth, &caller, request(None))
            .unwrap()
            .collect(&t)
            .unwrap();
        assert_eq!(first.items.len(), 1);
        assert!(first.more);
        // The first page left its lookup suspended on this node.
        assert_eq!(t.lookups.len(), 1);
        let token = PageToken::cursor(first.items[0].1.clone());
        let second = t
            .execute(&auth, &caller, request(Some(token.clone())))
            .unwrap()
            .collect(&t)
            .unwrap();
        assert_eq!(second.items[0].0.resource_id, "b");
        assert!(!second.more);
        assert!(t.lookups.is_empty());
        // Without the suspended lookup (another node, or evicted), the cursor plans the walk
        // again after its id: the same page.
        let other = Tessera::new(Arc::clone(t.store()), ServiceConfig::default());
        let again = other
            .execute(&auth, &caller, request(Some(token)))
            .unwrap()
            .collect(&other)
            .unwrap();
        assert_eq!(again.items[0].0.resource_id, "b");
        assert_eq!(again.items[0].1, second.items[0].1);
    }

    #[test]
    fn bulk_checks_share_runs_but_answer_each_item_alone() {
        let t = tessera();
        let auth = Auth::insecure();
        let caller = Caller::anonymous();
        let item = |doc: &str, perm: &str, user: &str| {
            Ok(CheckItem {
                resource: ObjectRef::new("document", doc),
                permission: perm.into(),
                subject: SubjectRef::new("user", user, None),
                context: Context::new(),
            })
        };
        let untranslatable = ServiceError::new(ErrorKind::InvalidArgument, "bad item");
        let items = vec![
            item("a", "view", "x"),
            item("b", "edit", "x"),
            // A name the schema lacks fails alone, between items of the same subject.
            item("a", "nonexistent", "x"),
            Err(untranslatable),
            item("c", "view", "x"),
            // Another subject, then the first one again: each gets its own answers.
            item("c", "view", "y"),
            item("a", "view", "y"),
            item("b", "view", "x"),
        ];
        let result = t
            .execute(
                &auth,
                &caller,
                CheckBulk {
                    consistency: Consistency::FullyConsistent,
                    items,
                    with_tracing: false,
                    stop_after: None,
                },
            )
            .unwrap();
        let answers: Vec<Result<bool, ErrorKind>> = result
            .answers
            .iter()
            .map(|a| {
                a.as_ref()
                    .map(|a| a.outcome == CheckOutcome::Has)
                    .map_err(|e| e.kind)
            })
            .collect();
        assert_eq!(
            answers,
            vec![
                Ok(true),
                Ok(true),
                Err(ErrorKind::FailedPrecondition),
                Err(ErrorKind::InvalidArgument),
                Ok(false),
                Ok(true),
                Ok(false),
                Ok(true),
            ]
        );
    }

    #[test]
    fn only_single_checks_over_local_reads_run_inline() {
        let check = Check {
            consistency: Consistency::MinimizeLatency,
            item: CheckItem {
                resource: ObjectRef::new("document", "a"),
                permission: "view".into(),
                subject: SubjectRef::new("user", "x", None),
                context: Context::new(),
            },
            with_tracing: false,
        };
        let bulk = CheckBulk {
            consistency: Consistency::MinimizeLatency,
            items: vec![],
            with_tracing: false,
            stop_after: None,
        };
        let t = tessera();
        assert!(t.runs_inline(&check));
        assert!(!t.runs_inline(&bulk));
        let off = Tessera::new(
            Arc::clone(t.store()),
            ServiceConfig {
                inline_checks: false,
                ..ServiceConfig::default()
            },
        );
        assert!(!off.runs_inline(&check));
    }

    #[test]
    fn action_search_pages_by_name() {
        let t = tessera();
        let auth = Auth::insecure();
        let caller = Caller::anonymous();
        let request = |cursor| ActionSearch {
            consistency: Consistency::FullyConsistent,
            resource: ObjectRef::new("document", "b"),
            subject: SubjectRef::new("user", "x", None),
            context: Context::new(),
            limit: Some(2),
            cursor,
        };
        let first = t.execute(&auth, &caller, request(None)).unwrap();
        assert_eq!(first.actions, ["edit", "editor"]);
        let token = PageToken {
            field: "page.token",
            token: first.next.unwrap(),
        };
        let second = t.execute(&auth, &caller, request(Some(token))).unwrap();
        assert_eq!(second.actions, ["view"]);
        assert!(second.next.is_none());
    }

    #[test]
    fn limits_carry_reasons() {
        let t = tessera();
        let auth = Auth::insecure();
        let caller = Caller::anonymous();
        let err = t
            .execute(
                &auth,
                &caller,
                ReadRelationships {
                    consistency: Consistency::FullyConsistent,
                    filter: RelationshipFilter {
                        resource_type: Some("document".into()),
                        ..Default::default()
                    },
                    limit: 5000,
                    cursor: None,
                },
            )
            .err()
            .unwrap();
        assert_eq!(err.reason, Some(ErrorReason::ExceedsMaximumAllowableLimit));
        assert_eq!(err.metadata["maximum_limit_allowed"], "1000");
        let err = t
            .execute(
                &auth,
                &caller,
                DeleteRelationships {
                    filter: RelationshipFilter::default(),
                    preconditions: vec![],
                    limit: 0,
                    allow_partial: false,
                    metadata: Default::default(),
                },
            )
            .err()
            .unwrap();
        assert_eq!(err.reason, Some(ErrorReason::InvalidFilter));
    }
}
