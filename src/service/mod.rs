//! The embeddable library face: one `Tessera` value owns a store, caches compiled schemas by
//! revision, chooses snapshots for consistency modes, enforces request limits, and runs every
//! operation of the API in domain terms. The gRPC layer (`api/`) and the CLI only translate.
//!
//! Every read operation takes a [`ReadView`]: one snapshot and the schema in force at that
//! snapshot, so a request never mixes revisions.

mod cursor;
mod errors;
mod lookups;
mod requests;
mod schema_change;
mod watch;

pub use errors::{
    CUT_NOTE_START, ERROR_REASON_DOMAIN, ErrorKind, ErrorReason, MAX_ERROR_MESSAGE_BYTES,
    ServiceError, cap_message,
};
pub use lookups::{LOOKUP_TTL, LookupCache, MAX_LOOKUP_ENTRIES, MAX_LOOKUP_WEIGHT};
pub use requests::*;
pub use watch::{CALLER_METADATA_KEY, Watch, WatchEvent, WatchFeed, WatchSelection, shutting_down};

use crate::auth::{Auth, Caller, Operation};

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::consistency::{Consistency, SnapshotChooser};
use crate::engine::{
    BulkChecker, CheckCache, CheckCacheStats, CheckOutcome, EngineConfig, Evaluator, ExpandTree,
    LookupSubject, SchemaIndex, SuspendedLookup,
};
use crate::model::{
    Context, ObjectRef, Relationship, RelationshipFilter, RelationshipKey, Revision, SubjectRef,
};
use crate::schema::{Schema, SchemaLimits};
use crate::store::{
    BulkImport, ChangeSet, DeleteByFilter, DeleteOutcome, Precondition, RelationshipUpdate,
    Snapshot, Store, StoreError, TransactionMetadata, WriteTransaction,
};

/// Limits and knobs of the service. Defaults follow the reference API's published limits.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub engine: EngineConfig,
    /// Most updates one `WriteRelationships` may carry.
    pub max_updates_per_write: usize,
    /// Most preconditions one write or delete may carry.
    pub max_preconditions_per_write: usize,
    /// Most items one `CheckBulkPermissions` may carry.
    pub max_bulk_check_items: usize,
    /// Most relationships one `DeleteRelationships` may delete (its `limit` is capped to this).
    pub max_delete_limit: usize,
    /// Most relationships one `ReadRelationships`/export page may return.
    pub max_read_page: usize,
    /// How stale a `minimize_latency` read may be.
    pub max_staleness: std::time::Duration,
    /// How many check sub-problem answers to share across requests (0 disables the cache).
    pub check_cache_entries: usize,
    /// Let cached check answers serve later revisions while nothing they read has changed,
    /// when the store keeps a record of recent writes (`store/recent.rs`).
    pub check_cache_carry: bool,
    /// What a schema sent by a caller (WriteSchema, DiffSchema) may cost.
    pub schema_limits: SchemaLimits,
    /// Largest caveat context stored with one relationship, in bytes of its compact JSON
    /// encoding (the reference's default: 4096).
    pub max_caveat_context_bytes: usize,
    /// Run single checks on the transport's async worker instead of the blocking pool when
    /// the store's reads are local (see [`Tessera::runs_inline`]).
    pub inline_checks: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            engine: EngineConfig::default(),
            max_updates_per_write: 1000,
            max_preconditions_per_write: 1000,
            max_bulk_check_items: 1000,
            max_delete_limit: 1000,
            max_read_page: 1000,
            max_staleness: std::time::Duration::from_millis(100),
            check_cache_entries: crate::engine::DEFAULT_CHECK_CACHE_ENTRIES,
            check_cache_carry: true,
            schema_limits: SchemaLimits::default(),
            max_caveat_context_bytes: 4096,
            inline_checks: true,
        }
    }
}

/// One operation of the API in domain terms, as every transport hands it to
/// [`Tessera::execute`]: its limits, what authorization must allow, and how it runs.
pub trait Request: Send + 'static {
    type Output: Send + 'static;
    /// Checks the request against the configured limits, before authorization (a request over
    /// a limit is refused whoever sends it). Most requests have none.
    fn validate(&self, _config: &ServiceConfig) -> Result<(), ServiceError> {
        Ok(())
    }
    /// What the operation does, for authorization ([`Operation::required_capabilities`]).
    fn operation(&self) -> Operation;
    /// Runs the operation for an authorized caller.
    fn run(self, tessera: &Tessera, caller: &Caller) -> Result<Self::Output, ServiceError>;
    /// True for a request that is short by construction (one check: bounded by the depth
    /// limit, a handful of reads), which a transport may run on its async worker when the
    /// store's reads are local ([`Tessera::runs_inline`]), saving the hand-off to the blocking
    /// pool and back — on a small machine a large share of a check's cost.
    fn short(&self) -> bool {
        false
    }
}

/// One snapshot of the store plus the schema in force at it.
pub struct ReadView {
    snapshot: Arc<dyn Snapshot>,
    schema: Option<CompiledSchema>,
}

/// A compiled schema with the engine's index over it, built once per schema version and shared
/// by every request that reads at that version (never rebuilt per request).
#[derive(Clone)]
struct CompiledSchema {
    schema: Arc<Schema>,
    index: Arc<SchemaIndex>,
}

impl ReadView {
    pub fn revision(&self) -> Revision {
        self.snapshot.revision()
    }
    pub fn snapshot(&self) -> &dyn Snapshot {
        &*self.snapshot
    }
    /// The schema at this snapshot, or FAILED_PRECONDITION when none was ever written.
    pub fn schema(&self) -> Result<&Arc<Schema>, ServiceError> {
        self.compiled().map(|c| &c.schema)
    }

    fn compiled(&self) -> Result<&CompiledSchema, ServiceError> {
        self.schema.as_ref().ok_or_else(|| {
            ServiceError::new(
                ErrorKind::FailedPrecondition,
                "no schema has been written yet; call WriteSchema first",
            )
        })
    }

    /// An evaluator over this view's snapshot, reusing the cached schema index and sharing
    /// sub-problem answers through `cache` (keyed by revision, so safe across views).
    fn evaluator<'a>(
        &'a self,
        config: &'a EngineConfig,
        cache: &'a CheckCache,
    ) -> Result<Evaluator<'a>, ServiceError> {
        let c = self.compiled()?;
        Ok(Evaluator::with_index(&c.schema, &c.index, self.snapshot(), config).with_cache(cache))
    }
}

/// Many checks at one view through the engine's bulk path: consecutive items with the same
/// subject and context share one memo of sub-problems (a folder's viewers, a group's members
/// are worked out once for the whole request). Each item's names are validated on their own,
/// so an invalid item fails alone.
pub struct BulkChecks<'e, 'a> {
    evaluator: &'e Evaluator<'a>,
    schema: &'e Schema,
    /// The item that opened the current run of equal subjects and contexts, and its checker.
    current: Option<(&'e CheckItem, BulkChecker<'e, 'a>)>,
}

impl<'e, 'a> BulkChecks<'e, 'a> {
    pub fn new(evaluator: &'e Evaluator<'a>, view: &'e ReadView) -> Result<Self, ServiceError> {
        Ok(BulkChecks {
            evaluator,
            schema: view.schema()?,
            current: None,
        })
    }

    /// Answers one item.
    pub fn check(&mut self, item: &'e CheckItem) -> Result<CheckOutcome, ServiceError> {
        check_names(self.schema, &item.resource, &item.permission, &item.subject)?;
        let same = self.current.as_ref().is_some_and(|(first, _)| {
            first.subject == item.subject && first.context == item.context
        });
        if !same {
            let checker = self.evaluator.bulk_checker(&item.subject, &item.context);
            self.current = Some((item, checker));
        }
        let (_, checker) = self.current.as_mut().expect("set above");
        Ok(checker.check(&item.resource, &item.permission)?)
    }
}

/// How often a write is validated again after the schema changed under it before the caller
/// gets the (retryable) error.
const SCHEMA_CHANGE_RETRIES: usize = 3;

/// How many compiled schema versions to keep (requests at recent revisions share them).
const SCHEMA_CACHE_SIZE: usize = 8;

/// The type-name prefix of Tessera's own relationships (callers' capabilities, see `auth`).
/// User schemas cannot define such types, user writes cannot touch them, and no read, export
/// or change feed of the API shows them.
pub const RESERVED_TYPE_PREFIX: &str = "tessera/";

/// True for a type name in the reserved namespace.
pub fn is_reserved_type(object_type: &str) -> bool {
    object_type.starts_with(RESERVED_TYPE_PREFIX)
}

/// True for a relationship whose resource or subject is in the reserved namespace.
pub fn is_reserved_relationship(r: &Relationship) -> bool {
    is_reserved_type(&r.resource.object_type) || is_reserved_type(&r.subject.object.object_type)
}

fn reserved_type_error(field: &str, object_type: &str) -> ServiceError {
    ServiceError::new(
        ErrorKind::InvalidArgument,
        format!(
            "{field}: type `{object_type}` is in the reserved namespace `{RESERVED_TYPE_PREFIX}` (caller permissions are managed with `tessera access`)"
        ),
    )
}

/// Tessera as a library: store + schema cache + consistency + limits.
pub struct Tessera {
    store: Arc<dyn Store>,
    config: ServiceConfig,
    chooser: SnapshotChooser,
    schemas: Mutex<HashMap<Revision, CompiledSchema>>,
    /// The newest revision committed through this value, for change-feed subscribers.
    commits: tokio::sync::watch::Sender<Revision>,
    /// Check answers shared across requests (`engine::CheckCache`).
    check_cache: CheckCache,
    /// Lookups waiting for their next page (`lookups.rs`).
    lookups: LookupCache,
}

impl Tessera {
    pub fn new(store: Arc<dyn Store>, config: ServiceConfig) -> Self {
        let chooser = SnapshotChooser::new(config.max_staleness);
        let check_cache = CheckCache::new(config.check_cache_entries)
            .carried_by(store.recent_writes().filter(|_| config.check_cache_carry));
        Tessera {
            store,
            config,
            chooser,
            schemas: Mutex::new(HashMap::new()),
            commits: tokio::sync::watch::channel(Revision::ZERO).0,
            check_cache,
            lookups: LookupCache::default(),
        }
    }

    /// A receiver signalled after every commit made through this `Tessera` (relationship and
    /// schema writes) or, when the store can tell (a database shared by several nodes), after
    /// every commit made by anyone; its value is the newest such revision. Change feeds
    /// (Watch) wait on it instead of polling the store in a tight loop. Writes the store
    /// cannot report are not signalled, so subscribers should also re-read the change log now
    /// and then.
    pub fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<Revision> {
        self.store
            .commit_signal()
            .unwrap_or_else(|| self.commits.subscribe())
    }

    fn notify_commit(&self, revision: Revision) {
        self.commits.send_if_modified(|newest| {
            if revision > *newest {
                *newest = revision;
                true
            } else {
                false
            }
        });
    }

    /// The one authorized path every transport takes: validates `request` against the limits,
    /// authorizes its [`Operation`] for `caller` (the capability table in `auth`), then runs it.
    /// Blocking (authorization and the operation use the store and the engine).
    pub fn execute<R: Request>(
        &self,
        auth: &Auth,
        caller: &Caller,
        request: R,
    ) -> Result<R::Output, ServiceError> {
        request.validate(&self.config)?;
        auth.authorize_operation(self, caller, &request.operation())
            .map_err(ServiceError::from)?;
        request.run(self, caller)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Whether `request` may run on the calling async worker: it is short
    /// ([`Request::short`]), the store's reads are local ([`Store::local_reads`]), and
    /// [`ServiceConfig::inline_checks`] allows it.
    pub fn runs_inline<R: Request>(&self, request: &R) -> bool {
        self.config.inline_checks && request.short() && self.store.local_reads()
    }

    /// Hits, misses and size of the shared check cache (for metrics).
    pub fn check_cache_stats(&self) -> CheckCacheStats {
        self.check_cache.stats()
    }

    /// Takes the snapshot a request with `consistency` must read, with its schema.
    /// `minimize_latency` reads may be served by a read replica that already has the revision.
    pub fn view(&self, consistency: Consistency) -> Result<ReadView, ServiceError> {
        let revision = self.chooser.revision(&*self.store, consistency)?;
        if consistency == Consistency::MinimizeLatency {
            let snapshot = self.store.replica_snapshot(revision)?;
            let schema = self.schema_for(&*snapshot)?;
            return Ok(ReadView { snapshot, schema });
        }
        self.view_at(revision)
    }

    /// A view at exactly `revision` (cursors pin the revision of their first page).
    pub fn view_at(&self, revision: Revision) -> Result<ReadView, ServiceError> {
        let snapshot = self.store.snapshot(revision)?;
        let schema = self.schema_for(&*snapshot)?;
        Ok(ReadView { snapshot, schema })
    }

    fn schema_for(&self, snapshot: &dyn Snapshot) -> Result<Option<CompiledSchema>, ServiceError> {
        let Some(stored) = snapshot.schema()? else {
            return Ok(None);
        };
        if let Some(s) = self.schemas.lock().get(&stored.written_at) {
            return Ok(Some(s.clone()));
        }
        // A stored schema was accepted once: it loads even if the limits were lowered since.
        let compiled =
            crate::schema::compile_with("schema", &stored.text, &SchemaLimits::unlimited())
                .map_err(|d| {
                    ServiceError::new(
                        ErrorKind::Internal,
                        format!("the stored schema no longer compiles: {d}"),
                    )
                })?
                .schema;
        let compiled = CompiledSchema {
            index: Arc::new(SchemaIndex::new(&compiled)),
            schema: compiled,
        };
        let mut cache = self.schemas.lock();
        if cache.len() >= SCHEMA_CACHE_SIZE
            && let Some(oldest) = cache.keys().min().copied()
        {
            cache.remove(&oldest);
        }
        cache.insert(stored.written_at, compiled.clone());
        Ok(Some(compiled))
    }

    // ---- schema ----------------------------------------------------------------------

    /// The schema text in force at the chosen snapshot, and that snapshot's revision.
    pub fn read_schema(
        &self,
        consistency: Consistency,
    ) -> Result<(String, Revision), ServiceError> {
        let revision = self.chooser.revision(&*self.store, consistency)?;
        let snapshot = self.store.snapshot(revision)?;
        match snapshot.schema()? {
            Some(s) => Ok((s.text.to_string(), revision)),
            None => Err(ServiceError::new(
                ErrorKind::NotFound,
                "no schema has been defined; call WriteSchema first",
            )),
        }
    }

    /// Compiles schema text sent by a caller within the configured [`SchemaLimits`]; errors
    /// are INVALID_ARGUMENT naming `field`, with as many rendered diagnostics as fit in an
    /// error message.
    pub fn compile_schema(&self, field: &str, text: &str) -> Result<Arc<Schema>, ServiceError> {
        crate::schema::compile_with(field, text, &self.config.schema_limits)
            .map(|out| out.schema)
            .map_err(|d| {
                let prefix = format!("{field}: ");
                let budget = MAX_ERROR_MESSAGE_BYTES.saturating_sub(prefix.len());
                let reason = if crate::schema::has_syntax_errors(text, &self.config.schema_limits) {
                    ErrorReason::SchemaParseError
                } else {
                    ErrorReason::SchemaTypeError
                };
                ServiceError::new(
                    ErrorKind::InvalidArgument,
                    format!("{prefix}{}", d.render_within(budget)),
                )
                .with_reason(reason)
            })
    }

    /// Compiles `text` and stores it atomically, refusing changes that would orphan stored
    /// relationships (a removed relation or subject type still in use).
    pub fn write_schema(
        &self,
        text: &str,
        caller: Option<String>,
    ) -> Result<Revision, ServiceError> {
        let compiled = self.compile_schema("schema", text)?;
        if let Some(name) = compiled
            .definitions
            .keys()
            .chain(compiled.caveats.keys())
            .find(|n| is_reserved_type(n))
        {
            return Err(ServiceError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "schema: `{name}` uses the reserved prefix `{RESERVED_TYPE_PREFIX}`, which only Tessera's own caller permissions may use"
                ),
            ));
        }
        // The orphan check runs inside the store's write, under its writer lock (for a shared
        // database, across every node), against the state the schema commits on; relationship
        // writes verify under the same lock that the schema they were validated against is
        // still in force, so no write the new schema forbids can slip in between.
        let mut check = |snapshot: &dyn Snapshot| -> Result<(), crate::store::StoreError> {
            let old = match snapshot.schema()? {
                Some(stored) => {
                    crate::schema::compile_with("schema", &stored.text, &SchemaLimits::unlimited())
                        .ok()
                        .map(|o| o.schema)
                }
                None => None,
            };
            schema_change::check_no_orphans(old.as_deref(), &compiled, snapshot)
                .map_err(crate::store::StoreError::SchemaRejected)
        };
        let revision = self.store.write_schema(text, &mut check, caller)?;
        self.notify_commit(revision);
        Ok(revision)
    }

    // ---- relationship writes ---------------------------------------------------------

    /// Applies updates atomically after checking preconditions; returns the new revision.
    /// `metadata` is kept with the transaction in the change log (Watch returns it).
    pub fn write_relationships(
        &self,
        updates: Vec<RelationshipUpdate>,
        preconditions: Vec<Precondition>,
        caller: Option<String>,
        metadata: TransactionMetadata,
    ) -> Result<Revision, ServiceError> {
        if updates.len() > self.config.max_updates_per_write {
            return Err(ServiceError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "updates: {} updates exceed the limit of {} per write",
                    updates.len(),
                    self.config.max_updates_per_write
                ),
            )
            .with_reason(ErrorReason::TooManyUpdatesInRequest)
            .with_metadata("update_count", updates.len())
            .with_metadata("update_limit", self.config.max_updates_per_write));
        }
        self.check_precondition_count(preconditions.len())?;
        check_transaction_metadata(&metadata)?;
        for (i, u) in updates.iter().enumerate() {
            let r = &u.relationship;
            if is_reserved_type(&r.resource.object_type) {
                return Err(reserved_type_error(
                    &format!("updates[{i}].relationship.resource.object_type"),
                    &r.resource.object_type,
                ));
            }
            if is_reserved_type(&r.subject.object.object_type) {
                return Err(reserved_type_error(
                    &format!("updates[{i}].relationship.subject.object.object_type"),
                    &r.subject.object.object_type,
                ));
            }
        }
        check_reserved_preconditions(&preconditions)?;
        for (i, u) in updates.iter().enumerate() {
            self.check_context_size(&format!("updates[{i}]"), &u.relationship)?;
        }
        let revision = self.with_head_schema(|schema, schema_revision| {
            check_precondition_types(schema, &preconditions)?;
            for (i, u) in updates.iter().enumerate() {
                // Deletes of relationships the schema no longer allows must stay possible only
                // if they could exist; a delete of an impossible relationship is harmless but
                // still a caller mistake worth reporting, as the reference does.
                schema.validate_relationship(&u.relationship).map_err(|e| {
                    relationship_error(&format!("updates[{i}]"), &u.relationship, e)
                })?;
            }
            Ok(self.store.write(WriteTransaction {
                updates: updates.clone(),
                preconditions: preconditions.clone(),
                caller: caller.clone(),
                metadata: metadata.clone(),
                schema_revision: Some(schema_revision),
            }))
        })?;
        self.notify_commit(revision);
        Ok(revision)
    }

    /// Runs `write` with the schema in force at the head (and the revision that wrote it),
    /// again with the new schema when the store reports that another writer (perhaps on
    /// another node) replaced it before the write could commit.
    fn with_head_schema<T>(
        &self,
        mut write: impl FnMut(&Schema, Revision) -> Result<Result<T, StoreError>, ServiceError>,
    ) -> Result<T, ServiceError> {
        let mut attempt = 0;
        loop {
            let view = self.view_at(self.store.head_revision()?)?;
            let schema_revision = view
                .snapshot
                .schema()?
                .map_or(Revision::ZERO, |s| s.written_at);
            match write(view.schema()?, schema_revision)? {
                Err(StoreError::SchemaChanged { .. }) if attempt < SCHEMA_CHANGE_RETRIES => {
                    attempt += 1;
                }
                result => return Ok(result?),
            }
        }
    }

    /// Deletes every relationship matching `filter` (see [`DeleteByFilter`]); `metadata` is
    /// kept with the transaction in the change log.
    pub fn delete_relationships(
        &self,
        filter: RelationshipFilter,
        preconditions: Vec<Precondition>,
        limit: Option<usize>,
        allow_partial: bool,
        caller: Option<String>,
        metadata: TransactionMetadata,
    ) -> Result<DeleteOutcome, ServiceError> {
        self.check_precondition_count(preconditions.len())?;
        check_transaction_metadata(&metadata)?;
        if let Some(l) = limit
            && l > self.config.max_delete_limit
        {
            return Err(ServiceError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "optional_limit: {l} exceeds the maximum of {}",
                    self.config.max_delete_limit
                ),
            )
            .with_reason(ErrorReason::ExceedsMaximumAllowableLimit)
            .with_metadata("limit_provided", l)
            .with_metadata("maximum_limit_allowed", self.config.max_delete_limit));
        }
        check_reserved_filter("relationship_filter", &filter)?;
        check_reserved_preconditions(&preconditions)?;
        // No schema revision to verify: deleting never creates what a newer schema forbids.
        let schema = self.head_schema()?;
        check_filter_types(&schema, &filter)?;
        check_precondition_types(&schema, &preconditions)?;
        let outcome = self.store.delete_by_filter(DeleteByFilter {
            filter,
            preconditions,
            limit,
            allow_partial,
            caller,
            metadata,
        })?;
        if outcome.deleted > 0 {
            self.notify_commit(outcome.revision);
        }
        Ok(outcome)
    }

    /// Creates relationships in one atomic, durable batch (CREATE semantics).
    pub fn import(
        &self,
        relationships: Vec<Relationship>,
        caller: Option<String>,
    ) -> Result<Revision, ServiceError> {
        if let Some(r) = relationships.iter().find(|r| is_reserved_relationship(r)) {
            let t = if is_reserved_type(&r.resource.object_type) {
                &r.resource.object_type
            } else {
                &r.subject.object.object_type
            };
            return Err(reserved_type_error("relationships", t));
        }
        for r in &relationships {
            self.check_context_size("relationships", r)?;
        }
        let revision = self.with_head_schema(|schema, schema_revision| {
            for r in &relationships {
                schema
                    .validate_relationship(r)
                    .map_err(|e| relationship_error("relationships", r, e))?;
            }
            Ok(self.store.import(BulkImport {
                relationships: relationships.clone(),
                caller: caller.clone(),
                schema_revision: Some(schema_revision),
            }))
        })?;
        self.notify_commit(revision);
        Ok(revision)
    }

    /// A relationship's stored caveat context is at most
    /// [`ServiceConfig::max_caveat_context_bytes`] in its compact JSON encoding.
    fn check_context_size(&self, field: &str, r: &Relationship) -> Result<(), ServiceError> {
        let Some(c) = r.caveat.as_ref().filter(|c| !c.context.is_empty()) else {
            return Ok(());
        };
        let max = self.config.max_caveat_context_bytes;
        let size = serde_json::to_vec(&c.context).map_or(usize::MAX, |b| b.len());
        if size > max {
            return Err(ServiceError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "{field}: the caveat context of relationship `{}` encodes to {size} bytes, \
                     more than the limit of {max} bytes",
                    shown_key(r)
                ),
            )
            .with_reason(ErrorReason::MaxRelationshipContextSize)
            .with_metadata("context_byte_size", size)
            .with_metadata("maximum_context_byte_size", max));
        }
        Ok(())
    }

    fn check_precondition_count(&self, n: usize) -> Result<(), ServiceError> {
        if n > self.config.max_preconditions_per_write {
            return Err(ServiceError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "optional_preconditions: {n} preconditions exceed the limit of {}",
                    self.config.max_preconditions_per_write
                ),
            )
            .with_reason(ErrorReason::TooManyPreconditionsInRequest)
            .with_metadata("precondition_count", n)
            .with_metadata(
                "precondition_limit",
                self.config.max_preconditions_per_write,
            ));
        }
        Ok(())
    }

    fn head_schema(&self) -> Result<Arc<Schema>, ServiceError> {
        let head = self.store.head_revision()?;
        let view = self.view_at(head)?;
        Ok(view.schema()?.clone())
    }

    // ---- reads and evaluation --------------------------------------------------------

    /// Relationships matching `filter`, after `cursor`, at most `limit`. Relationships of the
    /// reserved namespace are never returned.
    pub fn read_relationships(
        &self,
        view: &ReadView,
        filter: &RelationshipFilter,
        cursor: Option<&RelationshipKey>,
        limit: Option<usize>,
    ) -> Result<Vec<Relationship>, ServiceError> {
        check_reserved_filter("relationship_filter", filter)?;
        if let Some(c) = &view.schema {
            check_filter_types(&c.schema, filter)?;
        }
        let limit = limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for r in view.snapshot.query(filter, cursor)? {
            if out.len() >= limit {
                break;
            }
            let r = r?;
            if !is_reserved_relationship(&r) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Checks one permission. Types and names are validated against the view's schema.
    pub fn check(
        &self,
        view: &ReadView,
        resource: &ObjectRef,
        permission: &str,
        subject: &SubjectRef,
        context: &Context,
    ) -> Result<CheckOutcome, ServiceError> {
        check_names(view.schema()?, resource, permission, subject)?;
        Ok(view
            .evaluator(&self.config.engine, &self.check_cache)?
            .check(resource, permission, subject, context)?)
    }

    /// The evaluator of `view` (with this service's engine settings and check cache), for
    /// [`BulkChecks`].
    pub fn evaluator<'v>(&'v self, view: &'v ReadView) -> Result<Evaluator<'v>, ServiceError> {
        view.evaluator(&self.config.engine, &self.check_cache)
    }

    /// The one-level userset tree of `resource#permission`.
    pub fn expand(
        &self,
        view: &ReadView,
        resource: &ObjectRef,
        permission: &str,
    ) -> Result<ExpandTree, ServiceError> {
        let schema = view.schema()?;
        check_relation_exists(schema, &resource.object_type, permission)?;
        Ok(view
            .evaluator(&self.config.engine, &self.check_cache)?
            .expand(resource, permission)?)
    }

    /// Plans LookupResources of `resource_type#permission` for `subject` (names validated
    /// against the view's schema), positioned after resource id `after`; see
    /// [`requests::ResourcePages`] for the streaming.
    pub fn plan_lookup_resources(
        &self,
        view: &ReadView,
        resource_type: &str,
        permission: &str,
        subject: &SubjectRef,
        after: Option<&str>,
    ) -> Result<SuspendedLookup, ServiceError> {
        let schema = view.schema()?;
        check_relation_exists(schema, resource_type, permission)?;
        check_subject_type(schema, subject)?;
        Ok(view
            .evaluator(&self.config.engine, &self.check_cache)?
            .plan_lookup_resources(resource_type, permission, subject, after)?)
    }

    /// Subjects of `subject_type` (and relation) that have `permission` on `resource`: the
    /// whole result, sorted by id, the wildcard first.
    pub fn lookup_subjects(
        &self,
        view: &ReadView,
        resource: &ObjectRef,
        permission: &str,
        subject_type: &str,
        subject_relation: Option<&str>,
        context: &Context,
    ) -> Result<Arc<Vec<LookupSubject>>, ServiceError> {
        let schema = view.schema()?;
        check_relation_exists(schema, &resource.object_type, permission)?;
        if schema.definition(subject_type).is_none() {
            return Err(unknown_definition(subject_type));
        }
        if let Some(rel) = subject_relation {
            check_relation_exists(schema, subject_type, rel)?;
        }
        Ok(view
            .evaluator(&self.config.engine, &self.check_cache)?
            .lookup_subjects_shared(
                resource,
                permission,
                subject_type,
                subject_relation,
                context,
            )?)
    }

    /// Change sets after `after`, oldest first, at most `limit`. Changes to relationships of
    /// the reserved namespace are left out (a change set may thus have no changes left; it is
    /// still returned so a feed's position advances past it).
    pub fn changes_after(
        &self,
        after: Revision,
        limit: usize,
    ) -> Result<Vec<ChangeSet>, ServiceError> {
        let mut sets = self.store.read_changes(after, limit)?;
        for set in &mut sets {
            set.changes
                .retain(|u| !is_reserved_relationship(&u.relationship));
        }
        Ok(sets)
    }

    /// Builds the nested-group indexes the schema in force covers but the store has not
    /// completed (after an upgrade from a version without them, or after a change too large to
    /// index switched one off); evaluation walks those relations until then. Returns the
    /// revision of the transaction that built them, `None` when there was nothing to build.
    pub fn rebuild_indexes(&self) -> Result<Option<Revision>, ServiceError> {
        let built = self.store.rebuild_indexes()?;
        if let Some(r) = built {
            self.notify_commit(r);
        }
        Ok(built)
    }

    /// The newest committed revision.
    pub fn head_revision(&self) -> Result<Revision, ServiceError> {
        Ok(self.store.head_revision()?)
    }
}

/// Most filters one request may carry (ReflectSchema's filters, Watch's object types or
/// relationship filters): each is matched against every element or change, so their number
/// multiplies the work of the request.
pub const MAX_FILTERS_PER_REQUEST: usize = 100;

/// Refuses more than [`MAX_FILTERS_PER_REQUEST`] filters in `field`.
pub fn check_filter_count(field: &str, n: usize) -> Result<(), ServiceError> {
    if n > MAX_FILTERS_PER_REQUEST {
        return Err(ServiceError::new(
            ErrorKind::InvalidArgument,
            format!(
                "{field}: {n} filters exceed the limit of {MAX_FILTERS_PER_REQUEST} per request"
            ),
        ));
    }
    Ok(())
}

/// The largest transaction metadata accepted, in bytes of its compact JSON encoding (what the
/// change log stores): metadata rides in every change-log entry and Watch response, so it is
/// meant for small annotations (request ids, reasons), not payloads.
pub const MAX_TRANSACTION_METADATA_BYTES: usize = 4096;

fn check_transaction_metadata(metadata: &TransactionMetadata) -> Result<(), ServiceError> {
    if metadata.is_empty() {
        return Ok(());
    }
    let size = serde_json::to_vec(metadata).map_or(usize::MAX, |b| b.len());
    if size > MAX_TRANSACTION_METADATA_BYTES {
        return Err(ServiceError::new(
            ErrorKind::InvalidArgument,
            format!(
                "optional_transaction_metadata: encodes to {size} bytes, more than the limit of {MAX_TRANSACTION_METADATA_BYTES} bytes"
            ),
        )
        .with_reason(ErrorReason::TransactionMetadataTooLarge)
        .with_metadata("metadata_byte_size", size)
        .with_metadata("maximum_metadata_byte_size", MAX_TRANSACTION_METADATA_BYTES));
    }
    Ok(())
}

fn unknown_definition(t: &str) -> ServiceError {
    errors::unknown_definition(t, format!("object definition `{t}` not found"))
}

fn check_relation_exists(
    schema: &Schema,
    object_type: &str,
    relation: &str,
) -> Result<(), ServiceError> {
    let def = schema
        .definition(object_type)
        .ok_or_else(|| unknown_definition(object_type))?;
    if !def.relations.contains_key(relation) {
        return Err(errors::unknown_relation(
            object_type,
            relation,
            format!("relation/permission `{relation}` not found under definition `{object_type}`"),
        ));
    }
    Ok(())
}

/// A check's names exist in `schema`: the resource's relation or permission and the
/// subject's type (and relation).
fn check_names(
    schema: &Schema,
    resource: &ObjectRef,
    permission: &str,
    subject: &SubjectRef,
) -> Result<(), ServiceError> {
    check_relation_exists(schema, &resource.object_type, permission)?;
    check_subject_type(schema, subject)
}

fn check_subject_type(schema: &Schema, subject: &SubjectRef) -> Result<(), ServiceError> {
    match &subject.relation {
        Some(rel) => check_relation_exists(schema, &subject.object.object_type, rel),
        None if schema.definition(&subject.object.object_type).is_none() => {
            Err(unknown_definition(&subject.object.object_type))
        }
        None => Ok(()),
    }
}

/// Refuses a filter naming a reserved type (user requests never select Tessera's own data).
fn check_reserved_filter(field: &str, filter: &RelationshipFilter) -> Result<(), ServiceError> {
    if let Some(t) = filter
        .resource_type
        .as_deref()
        .filter(|t| is_reserved_type(t))
    {
        return Err(reserved_type_error(&format!("{field}.resource_type"), t));
    }
    if let Some(sf) = filter
        .subject
        .as_ref()
        .filter(|sf| is_reserved_type(&sf.subject_type))
    {
        return Err(reserved_type_error(
            &format!("{field}.optional_subject_filter.subject_type"),
            &sf.subject_type,
        ));
    }
    Ok(())
}

fn check_reserved_preconditions(preconditions: &[Precondition]) -> Result<(), ServiceError> {
    for (i, p) in preconditions.iter().enumerate() {
        check_reserved_filter(&format!("optional_preconditions[{i}].filter"), &p.filter)?;
    }
    Ok(())
}

/// Preconditions must name known types and relations, whatever their kind: a misspelled
/// MUST_NOT_MATCH guard would otherwise always pass.
fn check_precondition_types(
    schema: &Schema,
    preconditions: &[Precondition],
) -> Result<(), ServiceError> {
    for (i, p) in preconditions.iter().enumerate() {
        check_filter_types(schema, &p.filter)
            .map_err(|e| e.in_context(&format!("optional_preconditions[{i}].filter")))?;
    }
    Ok(())
}

/// A relationship's key for messages, its middle elided when long (ids reach 1 KiB).
fn shown_key(r: &Relationship) -> String {
    let key = r.key().to_string();
    const SHOWN: usize = 300;
    if key.len() <= SHOWN {
        return key;
    }
    let mut head = SHOWN * 2 / 3;
    while !key.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = key.len() - SHOWN / 3;
    while !key.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}…{}", &key[..head], &key[tail..])
}

/// A schema violation of one relationship of a request, naming where and which.
fn relationship_error(
    field: &str,
    r: &Relationship,
    e: crate::schema::SchemaViolation,
) -> ServiceError {
    let inner = ServiceError::from(e);
    let message = format!(
        "{field}: relationship `{}`: {}",
        shown_key(r),
        inner.message
    );
    inner.with_message(message)
}

fn check_filter_types(schema: &Schema, filter: &RelationshipFilter) -> Result<(), ServiceError> {
    if let Some(t) = &filter.resource_type {
        match &filter.relation {
            Some(rel) => check_relation_exists(schema, t, rel)?,
            None if schema.definition(t).is_none() => return Err(unknown_definition(t)),
            None => {}
        }
    }
    if let Some(sf) = &filter.subject {
        match &sf.relation {
            crate::model::SubjectRelationFilter::Relation(rel) => {
                check_relation_exists(schema, &sf.subject_type, rel)?
            }
            _ if schema.definition(&sf.subject_type).is_none() => {
                return Err(unknown_definition(&sf.subject_type));
            }
            _ => {}
        }
    }
    Ok(())
}
