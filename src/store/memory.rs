//! The in-memory store: multi-version, snapshot-isolated, with a change log and GC.
//!
//! Layout: two ordered indexes, forward (by resource, the order documented on
//! [`Snapshot::query`]) and reverse (by subject), each mapping a relationship to its *version
//! chain*. A version is tagged with the revision that created it and the revision that ended
//! it (`deleted`, [`OPEN`] while current), so a snapshot at revision `r` sees exactly the
//! versions with `created <= r < deleted`. Writers never touch a version a published snapshot
//! can see except to set its end revision to one no published snapshot has, which is why
//! readers and writers can share the same maps.
//!
//! Locking: one writer at a time (the `writer` mutex), which makes commit order revision
//! order and lets preconditions be checked on exactly the state the write commits on. The
//! indexes sit behind an `RwLock` that is only ever held for short, bounded sections: reads
//! scan in batches (re-acquiring the lock and resuming after the last key seen) and writers
//! apply large transactions in chunks, so a huge import or a long-lived iterator never
//! stalls the other side for long, and no lock is held while caller code runs.
//!
//! GC ([`MemoryStore::collect_garbage`]): the oldest readable revision is the state that was
//! current at `now - gc_window`; versions and change sets only older snapshots could see are
//! dropped. Expired relationships are dropped once they expired before that instant.

// `StoreError` (the trait's error type, carrying a `RelationshipKey`) is large by design.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Weak, mpsc};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use super::{
    ChangeSet, DeleteByFilter, DeleteOutcome, Precondition, PreconditionKind, RelationshipIter,
    RelationshipUpdate, SchemaCheck, Snapshot, Store, StoreError, StoredSchema,
    TransactionMetadata, WriteOp, WriteTransaction,
};
use crate::model::{
    CaveatRef, ObjectRef, Relationship, RelationshipFilter, RelationshipKey, Revision,
    SubjectFilter, SubjectRef, SubjectRelationFilter, Timestamp,
};

/// The source of "now" for commit times, snapshot expiry judgement and GC. Injectable so
/// tests can move time without sleeping.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(chrono::Utc::now)
}

/// Settings of a [`MemoryStore`].
#[derive(Clone)]
pub struct MemoryOptions {
    /// How long history stays readable (exact snapshots, the change log). Default 24 h.
    pub gc_window: Duration,
    /// Where time comes from. Default [`system_clock`].
    pub clock: Clock,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            gc_window: Duration::from_secs(24 * 60 * 60),
            clock: system_clock(),
        }
    }
}

impl fmt::Debug for MemoryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryOptions")
            .field("gc_window", &self.gc_window)
            .finish_non_exhaustive()
    }
}

/// What one [`MemoryStore::collect_garbage`] pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcReport {
    /// The oldest readable revision after the pass.
    pub oldest_readable: Revision,
    /// Relationship versions dropped (deleted, replaced or long expired).
    pub versions_removed: usize,
    /// Change-log entries dropped.
    pub change_sets_removed: usize,
}

/// End revision of a version that is still current.
const OPEN: u64 = u64::MAX;

/// Updates applied per write-lock acquisition, so big transactions do not starve readers.
const APPLY_CHUNK: usize = 1024;
/// Index entries a reader looks at per read-lock acquisition.
const SCAN_CHUNK: usize = 4096;
/// Relationships a reader buffers in its first batch; doubles up to `MAX_BATCH`. Small first
/// batches keep "is there any?" reads cheap.
const FIRST_BATCH: usize = 16;
const MAX_BATCH: usize = 1024;

/// One version of a relationship's attributes, valid for revisions `created..deleted`.
#[derive(Debug, Clone)]
struct Version {
    created: u64,
    deleted: u64,
    caveat: Option<Arc<CaveatRef>>,
    expiration: Option<Timestamp>,
}

impl Version {
    fn of(r: &Relationship, created: u64) -> Self {
        Version {
            created,
            deleted: OPEN,
            caveat: r.caveat.clone().map(Arc::new),
            expiration: r.expiration,
        }
    }

    fn expired_at(&self, now: Timestamp) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    fn visible_at(&self, rev: u64, now: Timestamp) -> bool {
        self.created <= rev && rev < self.deleted && !self.expired_at(now)
    }
}

type Chain = Vec<Version>;

fn visible(chain: &[Version], rev: u64, now: Timestamp) -> Option<&Version> {
    chain.iter().find(|v| v.visible_at(rev, now))
}

fn open_version(chain: &[Version]) -> Option<&Version> {
    chain.iter().find(|v| v.deleted == OPEN)
}

fn close_open(chain: Option<&mut Chain>, rev: u64) {
    if let Some(v) = chain.and_then(|c| c.iter_mut().find(|v| v.deleted == OPEN)) {
        v.deleted = rev;
    }
}

fn build(key: &RelationshipKey, v: &Version) -> Relationship {
    Relationship {
        resource: key.resource.clone(),
        relation: key.relation.clone(),
        subject: key.subject.clone(),
        caveat: v.caveat.as_deref().cloned(),
        expiration: v.expiration,
    }
}

/// Key of the reverse index: subject first, then the resource side.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ReverseKey {
    subject_type: String,
    subject_id: String,
    subject_relation: Option<String>,
    resource_type: String,
    relation: String,
    resource_id: String,
}

impl ReverseKey {
    fn of(k: &RelationshipKey) -> Self {
        ReverseKey {
            subject_type: k.subject.object.object_type.clone(),
            subject_id: k.subject.object.object_id.clone(),
            subject_relation: k.subject.relation.clone(),
            resource_type: k.resource.object_type.clone(),
            relation: k.relation.clone(),
            resource_id: k.resource.object_id.clone(),
        }
    }
}

/// An index whose entries can be turned back into relationships.
trait IndexKey: Ord + Clone + Send + Sync + 'static {
    fn index(data: &Data) -> &BTreeMap<Self, Chain>;
    fn relationship(&self, v: &Version) -> Relationship;
}

impl IndexKey for RelationshipKey {
    fn index(data: &Data) -> &BTreeMap<Self, Chain> {
        &data.forward
    }
    fn relationship(&self, v: &Version) -> Relationship {
        build(self, v)
    }
}

impl IndexKey for ReverseKey {
    fn index(data: &Data) -> &BTreeMap<Self, Chain> {
        &data.reverse
    }
    fn relationship(&self, v: &Version) -> Relationship {
        Relationship {
            resource: ObjectRef::new(self.resource_type.clone(), self.resource_id.clone()),
            relation: self.relation.clone(),
            subject: SubjectRef {
                object: ObjectRef::new(self.subject_type.clone(), self.subject_id.clone()),
                relation: self.subject_relation.clone(),
            },
            caveat: v.caveat.as_deref().cloned(),
            expiration: v.expiration,
        }
    }
}

/// What a scan does with an index key, in index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Matches the filter: yield it if a version is visible.
    Yield,
    /// Inside the scanned range but not matching.
    Skip,
    /// Past the end of the scanned range.
    Stop,
}

type Classify<K> = Box<dyn Fn(&K) -> Step + Send + Sync>;

/// A range scan over one index: where to start and how to judge each key.
struct ScanPlan<K> {
    start: Bound<K>,
    classify: Classify<K>,
}

fn subject_relation_matches(f: &SubjectRelationFilter, rel: Option<&str>) -> bool {
    match f {
        SubjectRelationFilter::Any => true,
        SubjectRelationFilter::Ellipsis => rel.is_none(),
        SubjectRelationFilter::Relation(r) => rel == Some(r.as_str()),
    }
}

fn forward_key_matches(f: &RelationshipFilter, k: &RelationshipKey) -> bool {
    f.resource_type
        .as_ref()
        .is_none_or(|t| *t == k.resource.object_type)
        && f.resource_id
            .as_ref()
            .is_none_or(|id| *id == k.resource.object_id)
        && f.resource_id_prefix
            .as_ref()
            .is_none_or(|p| k.resource.object_id.starts_with(p.as_str()))
        && f.relation.as_ref().is_none_or(|r| *r == k.relation)
        && f.subject.as_ref().is_none_or(|s| s.matches(&k.subject))
}

/// How many leading forward-key fields a filter pins to one value (the scan range is the
/// keys agreeing on them): resource type, id, relation, subject type, id, subject relation.
fn forward_depth(f: &RelationshipFilter) -> usize {
    let Some(_) = &f.resource_type else { return 0 };
    let Some(_) = &f.resource_id else { return 1 };
    let Some(_) = &f.relation else { return 2 };
    let Some(s) = &f.subject else { return 3 };
    let Some(_) = &s.subject_id else { return 4 };
    match s.relation {
        SubjectRelationFilter::Any => 5,
        _ => 6,
    }
}

/// The forward scan for a filter: the tightest key range the filter's leading fields pin
/// down (resource type → id or id prefix → relation → subject), then a per-key check.
fn forward_plan(
    filter: &RelationshipFilter,
    after: Option<&RelationshipKey>,
) -> ScanPlan<RelationshipKey> {
    let depth = forward_depth(filter);
    // Within the resource type, an id prefix (without an exact id) also bounds the range.
    let by_prefix = depth == 1 && filter.resource_id_prefix.is_some();
    let lower = (depth > 0).then(|| {
        let subject = filter.subject.as_ref().filter(|_| depth >= 4);
        RelationshipKey {
            resource: ObjectRef::new(
                filter.resource_type.clone().unwrap_or_default(),
                filter
                    .resource_id
                    .clone()
                    .or_else(|| filter.resource_id_prefix.clone())
                    .unwrap_or_default(),
            ),
            relation: filter
                .relation
                .clone()
                .filter(|_| depth >= 3)
                .unwrap_or_default(),
            subject: SubjectRef {
                object: ObjectRef::new(
                    subject.map(|s| s.subject_type.clone()).unwrap_or_default(),
                    subject
                        .and_then(|s| s.subject_id.clone())
                        .unwrap_or_default(),
                ),
                relation: match subject.map(|s| &s.relation) {
                    Some(SubjectRelationFilter::Relation(r)) if depth >= 6 => Some(r.clone()),
                    _ => None,
                },
            },
        }
    });
    let start = match (lower, after) {
        (None, None) => Bound::Unbounded,
        (None, Some(a)) => Bound::Excluded(a.clone()),
        (Some(l), Some(a)) if *a >= l => Bound::Excluded(a.clone()),
        (Some(l), _) => Bound::Included(l),
    };
    let filter = filter.clone();
    let classify = move |k: &RelationshipKey| -> Step {
        if !forward_within(&filter, depth, by_prefix, k) {
            Step::Stop
        } else if forward_key_matches(&filter, k) {
            Step::Yield
        } else {
            Step::Skip
        }
    };
    ScanPlan {
        start,
        classify: Box::new(classify),
    }
}

/// True while `k` agrees with the filter on its first `depth` fields (and the id prefix).
fn forward_within(
    f: &RelationshipFilter,
    depth: usize,
    by_prefix: bool,
    k: &RelationshipKey,
) -> bool {
    let s = f.subject.as_ref();
    (depth < 1 || f.resource_type.as_deref() == Some(k.resource.object_type.as_str()))
        && (!by_prefix
            || f.resource_id_prefix
                .as_deref()
                .is_none_or(|p| k.resource.object_id.starts_with(p)))
        && (depth < 2 || f.resource_id.as_deref() == Some(k.resource.object_id.as_str()))
        && (depth < 3 || f.relation.as_deref() == Some(k.relation.as_str()))
        && (depth < 4 || s.is_some_and(|s| s.subject_type == k.subject.object.object_type))
        && (depth < 5
            || s.and_then(|s| s.subject_id.as_deref()) == Some(k.subject.object.object_id.as_str()))
        && (depth < 6
            || s.is_some_and(|s| {
                subject_relation_matches(&s.relation, k.subject.relation.as_deref())
            }))
}

/// How many leading reverse-key fields are pinned: subject type (always), id, subject
/// relation, resource type, relation.
fn reverse_depth(
    subject: &SubjectFilter,
    resource_type: Option<&str>,
    relation: Option<&str>,
) -> usize {
    if subject.subject_id.is_none() {
        return 1;
    }
    if subject.relation == SubjectRelationFilter::Any {
        return 2;
    }
    match (resource_type, relation) {
        (None, _) => 3,
        (Some(_), None) => 4,
        (Some(_), Some(_)) => 5,
    }
}

/// The reverse scan: subject type → id → relation → resource type → relation.
fn reverse_plan(
    subject: &SubjectFilter,
    resource_type: Option<&str>,
    relation: Option<&str>,
) -> ScanPlan<ReverseKey> {
    let depth = reverse_depth(subject, resource_type, relation);
    let lower = ReverseKey {
        subject_type: subject.subject_type.clone(),
        subject_id: subject.subject_id.clone().unwrap_or_default(),
        subject_relation: match &subject.relation {
            SubjectRelationFilter::Relation(r) if depth >= 3 => Some(r.clone()),
            _ => None,
        },
        resource_type: resource_type
            .filter(|_| depth >= 4)
            .map(str::to_string)
            .unwrap_or_default(),
        relation: relation
            .filter(|_| depth >= 5)
            .map(str::to_string)
            .unwrap_or_default(),
        resource_id: String::new(),
    };
    let subject = subject.clone();
    let resource_type = resource_type.map(str::to_string);
    let relation = relation.map(str::to_string);
    let classify = move |k: &ReverseKey| -> Step {
        let subject_relation_ok =
            subject_relation_matches(&subject.relation, k.subject_relation.as_deref());
        let id_ok = subject
            .subject_id
            .as_ref()
            .is_none_or(|id| *id == k.subject_id);
        let type_ok = resource_type.as_ref().is_none_or(|t| *t == k.resource_type);
        let relation_ok = relation.as_ref().is_none_or(|r| *r == k.relation);
        let within = k.subject_type == subject.subject_type
            && (depth < 2 || id_ok)
            && (depth < 3 || subject_relation_ok)
            && (depth < 4 || type_ok)
            && (depth < 5 || relation_ok);
        if !within {
            Step::Stop
        } else if id_ok && subject_relation_ok && type_ok && relation_ok {
            Step::Yield
        } else {
            Step::Skip
        }
    };
    ScanPlan {
        start: Bound::Included(lower),
        classify: Box::new(classify),
    }
}

/// Runs a scan to completion under an already-held lock, calling `f` for every visible
/// match until it returns `false`.
fn scan_locked<K: IndexKey>(
    data: &Data,
    plan: &ScanPlan<K>,
    rev: u64,
    now: Timestamp,
    mut f: impl FnMut(&K, &Version) -> bool,
) {
    let map = K::index(data);
    for (k, chain) in map.range((plan.start.as_ref(), Bound::Unbounded)) {
        match (plan.classify)(k) {
            Step::Stop => return,
            Step::Skip => {}
            Step::Yield => {
                if let Some(v) = visible(chain, rev, now)
                    && !f(k, v)
                {
                    return;
                }
            }
        }
    }
}

/// Describes a filter for error messages, e.g. `resource_type=document, relation=viewer`.
pub fn describe_filter(f: &RelationshipFilter) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &f.resource_type {
        parts.push(format!("resource_type={t}"));
    }
    if let Some(id) = &f.resource_id {
        parts.push(format!("resource_id={id}"));
    }
    if let Some(p) = &f.resource_id_prefix {
        parts.push(format!("resource_id_prefix={p}"));
    }
    if let Some(r) = &f.relation {
        parts.push(format!("relation={r}"));
    }
    if let Some(s) = &f.subject {
        parts.push(format!("subject_type={}", s.subject_type));
        if let Some(id) = &s.subject_id {
            parts.push(format!("subject_id={id}"));
        }
        match &s.relation {
            SubjectRelationFilter::Any => {}
            SubjectRelationFilter::Ellipsis => parts.push("subject_relation=...".to_string()),
            SubjectRelationFilter::Relation(r) => parts.push(format!("subject_relation={r}")),
        }
    }
    if parts.is_empty() {
        "(any relationship)".to_string()
    } else {
        parts.join(", ")
    }
}

/// The shared, lock-protected state: indexes, schemas, change log and the readable range.
#[derive(Default)]
struct Data {
    head: u64,
    oldest: u64,
    /// Expired versions that expired at or before this instant may have been dropped, so
    /// snapshots whose `now` is earlier can no longer be served faithfully.
    expiry_horizon: Option<Timestamp>,
    forward: BTreeMap<RelationshipKey, Chain>,
    reverse: BTreeMap<ReverseKey, Chain>,
    /// (revision written, text), ascending.
    schemas: Vec<(u64, Arc<str>)>,
    /// One entry per revision `oldest + 1 ..= head`, ascending.
    changes: VecDeque<Arc<ChangeSet>>,
}

impl Data {
    fn check_readable(&self, rev: u64, now: Timestamp) -> Result<(), StoreError> {
        if rev > self.head {
            return Err(StoreError::RevisionInFuture {
                requested: Revision(rev),
                head: Revision(self.head),
            });
        }
        if rev < self.oldest || self.expiry_horizon.is_some_and(|h| now < h) {
            return Err(StoreError::RevisionTooOld {
                requested: Revision(rev),
                oldest: Revision(self.oldest),
            });
        }
        Ok(())
    }

    fn precondition_failure(
        &self,
        preconditions: &[Precondition],
        rev: u64,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        for (index, p) in preconditions.iter().enumerate() {
            let mut found: Option<Relationship> = None;
            scan_locked(self, &forward_plan(&p.filter, None), rev, now, |k, v| {
                found = Some(build(k, v));
                false
            });
            let reason = match (p.kind, found) {
                (PreconditionKind::MustMatch, None) => format!(
                    "no relationship matches the filter `{}`",
                    describe_filter(&p.filter)
                ),
                (PreconditionKind::MustNotMatch, Some(r)) => format!(
                    "relationship `{r}` matches the filter `{}`",
                    describe_filter(&p.filter)
                ),
                _ => continue,
            };
            return Err(StoreError::PreconditionFailed { index, reason });
        }
        Ok(())
    }
}

/// State only the writer (and GC, which runs as a writer) touches.
#[derive(Default)]
struct WriterState {
    last_commit: Option<Timestamp>,
    /// (revision that ended a version, key): versions to drop once that revision is older
    /// than the oldest readable one. Ascending by revision.
    ended: VecDeque<(u64, RelationshipKey)>,
    /// Versions with an expiration, to drop once they expired before the GC window.
    expiring: BTreeSet<(Timestamp, RelationshipKey)>,
}

struct Shared {
    data: RwLock<Data>,
    writer: Mutex<WriterState>,
    options: MemoryOptions,
}

impl Shared {
    fn now(&self) -> Timestamp {
        (self.options.clock)()
    }
}

/// One planned index change of a transaction.
struct Planned {
    key: RelationshipKey,
    /// End the current version (replaced or deleted).
    close: bool,
    insert: Option<Version>,
}

/// A multi-version in-memory [`Store`]. Cheap to share behind an `Arc`.
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.shared.data.read();
        f.debug_struct("MemoryStore")
            .field("head", &data.head)
            .field("oldest", &data.oldest)
            .field("relationship_keys", &data.forward.len())
            .field("options", &self.shared.options)
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with default options (24 h GC window, system clock).
    pub fn new() -> Self {
        Self::with_options(MemoryOptions::default())
    }

    /// An empty store with the given options.
    pub fn with_options(options: MemoryOptions) -> Self {
        MemoryStore {
            shared: Arc::new(Shared {
                data: RwLock::new(Data::default()),
                writer: Mutex::new(WriterState::default()),
                options,
            }),
        }
    }

    /// The options this store was created with.
    pub fn options(&self) -> &MemoryOptions {
        &self.shared.options
    }

    /// Drops history older than the GC window as of `now`: the oldest readable revision
    /// becomes the one that was current at `now - gc_window` (never past the head), change
    /// sets up to it are dropped, as are relationship versions no readable snapshot can see
    /// and relationships that expired before that instant.
    ///
    /// Runs as a writer (it waits for and blocks writes, not reads). Snapshots already taken
    /// at a revision that falls out of the window fail their next read with
    /// [`StoreError::RevisionTooOld`] rather than read partial data.
    pub fn collect_garbage(&self, now: Timestamp) -> GcReport {
        let shared = &self.shared;
        let mut w = shared.writer.lock();
        let window = chrono::Duration::from_std(shared.options.gc_window).ok();
        let cutoff = window.and_then(|d| now.checked_sub_signed(d));
        let Some(cutoff) = cutoff else {
            // The window reaches before the start of time: nothing is old enough.
            return GcReport {
                oldest_readable: Revision(shared.data.read().oldest),
                versions_removed: 0,
                change_sets_removed: 0,
            };
        };

        // Pick the new edge; publish it (and the expiry horizon) before dropping anything,
        // so concurrent readers of older revisions fail instead of seeing holes.
        let mut expired_keys = Vec::new();
        let mut horizon = None;
        while let Some(first) = w.expiring.first() {
            if first.0 > cutoff {
                break;
            }
            if let Some((e, key)) = w.expiring.pop_first() {
                horizon = Some(e);
                expired_keys.push(key);
            }
        }
        let (oldest, change_sets_removed) = {
            let mut data = shared.data.write();
            let d = &mut *data;
            let committed = d.changes.partition_point(|c| c.committed_at <= cutoff);
            if committed > 0 {
                d.oldest = d.oldest.max(d.changes[committed - 1].revision.0);
            }
            if let Some(h) = horizon {
                d.expiry_horizon = Some(d.expiry_horizon.map_or(h, |old| old.max(h)));
            }
            let oldest = d.oldest;
            let before = d.changes.len();
            while d.changes.front().is_some_and(|c| c.revision.0 <= oldest) {
                d.changes.pop_front();
            }
            // Keep the schema in force at `oldest` and everything newer.
            let in_force = d.schemas.partition_point(|(r, _)| *r <= oldest);
            if in_force > 1 {
                d.schemas.drain(..in_force - 1);
            }
            (oldest, before - d.changes.len())
        };

        let mut keys = expired_keys;
        while w.ended.front().is_some_and(|(r, _)| *r <= oldest) {
            if let Some((_, key)) = w.ended.pop_front() {
                keys.push(key);
            }
        }
        let mut versions_removed = 0;
        for chunk in keys.chunks(APPLY_CHUNK) {
            let mut data = shared.data.write();
            let d = &mut *data;
            let horizon = d.expiry_horizon;
            let dead = |v: &Version| {
                v.deleted <= oldest || horizon.is_some_and(|h| v.expiration.is_some_and(|e| e <= h))
            };
            for key in chunk {
                if let Some(chain) = d.forward.get_mut(key) {
                    let before = chain.len();
                    chain.retain(|v| !dead(v));
                    versions_removed += before - chain.len();
                    if chain.is_empty() {
                        d.forward.remove(key);
                    }
                }
                let rkey = ReverseKey::of(key);
                if let Some(chain) = d.reverse.get_mut(&rkey) {
                    chain.retain(|v| !dead(v));
                    if chain.is_empty() {
                        d.reverse.remove(&rkey);
                    }
                }
            }
        }
        drop(w);
        GcReport {
            oldest_readable: Revision(oldest),
            versions_removed,
            change_sets_removed,
        }
    }

    /// Runs [`collect_garbage`](Self::collect_garbage) with the store's clock every
    /// `interval` on a background thread, until the returned handle is dropped or the store
    /// is dropped. Fails only when the OS refuses to start a thread.
    pub fn spawn_garbage_collector(
        self: &Arc<Self>,
        interval: Duration,
    ) -> std::io::Result<GcTask> {
        let store: Weak<MemoryStore> = Arc::downgrade(self);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tessera-memory-gc".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let Some(store) = store.upgrade() else { break };
                    let now = store.shared.now();
                    store.collect_garbage(now);
                }
            })?;
        Ok(GcTask {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// A commit time: the clock, but never earlier than the previous commit, so the change
    /// log is ordered by time as well as revision (GC relies on it).
    fn commit_time(&self, w: &mut WriterState) -> Timestamp {
        let now = self.shared.now();
        let t = w.last_commit.map_or(now, |last| last.max(now));
        w.last_commit = Some(t);
        t
    }

    /// Applies a validated plan as revision `rev` and publishes it. Never fails: all checks
    /// happen before, while the writer lock has been held throughout.
    fn commit(
        &self,
        w: &mut WriterState,
        rev: u64,
        planned: Vec<Planned>,
        change: ChangeSet,
        schema: Option<&str>,
    ) -> Revision {
        let mut planned = planned.into_iter().peekable();
        while planned.peek().is_some() {
            let mut data = self.shared.data.write();
            let d = &mut *data;
            for p in planned.by_ref().take(APPLY_CHUNK) {
                let rkey = ReverseKey::of(&p.key);
                if p.close {
                    close_open(d.forward.get_mut(&p.key), rev);
                    close_open(d.reverse.get_mut(&rkey), rev);
                    w.ended.push_back((rev, p.key.clone()));
                }
                if let Some(v) = p.insert {
                    if let Some(e) = v.expiration {
                        w.expiring.insert((e, p.key.clone()));
                    }
                    d.reverse.entry(rkey).or_default().push(v.clone());
                    d.forward.entry(p.key).or_default().push(v);
                }
            }
        }
        let mut data = self.shared.data.write();
        if let Some(text) = schema {
            data.schemas.push((rev, Arc::from(text)));
        }
        data.changes.push_back(Arc::new(change));
        data.head = rev;
        Revision(rev)
    }

    /// Validates and commits a relationship write (also the body of `bulk_import`).
    fn write_updates(
        &self,
        updates: Vec<RelationshipUpdate>,
        preconditions: &[Precondition],
        caller: Option<String>,
        metadata: TransactionMetadata,
    ) -> Result<Revision, StoreError> {
        let keys: Vec<RelationshipKey> = updates.iter().map(|u| u.relationship.key()).collect();
        {
            let mut seen = HashSet::with_capacity(keys.len());
            for k in &keys {
                if !seen.insert(k) {
                    return Err(StoreError::DuplicateUpdate(k.clone()));
                }
            }
        }
        let mut w = self.shared.writer.lock();
        let (head, planned, changes, committed_at) = {
            let data = self.shared.data.read();
            let head = data.head;
            // Expiry is judged at the commit time.
            let now = self.commit_time(&mut w);
            data.precondition_failure(preconditions, head, now)?;
            let rev = head + 1;
            let mut planned = Vec::with_capacity(updates.len());
            let mut changes = Vec::with_capacity(updates.len());
            for (u, key) in updates.into_iter().zip(keys) {
                let chain = data.forward.get(&key);
                let open = chain.and_then(|c| open_version(c));
                let live = open.filter(|v| !v.expired_at(now));
                match u.op {
                    WriteOp::Create | WriteOp::Touch => {
                        if u.op == WriteOp::Create && live.is_some() {
                            return Err(StoreError::AlreadyExists(key));
                        }
                        planned.push(Planned {
                            close: open.is_some(),
                            insert: Some(Version::of(&u.relationship, rev)),
                            key,
                        });
                        changes.push(u);
                    }
                    WriteOp::Delete => {
                        if let Some(v) = live {
                            changes.push(RelationshipUpdate {
                                op: WriteOp::Delete,
                                relationship: build(&key, v),
                            });
                            planned.push(Planned {
                                key,
                                close: true,
                                insert: None,
                            });
                        }
                    }
                }
            }
            (head, planned, changes, now)
        };
        let rev = head + 1;
        let change = ChangeSet {
            revision: Revision(rev),
            committed_at,
            caller,
            changes,
            schema_changed: false,
            metadata,
        };
        Ok(self.commit(&mut w, rev, planned, change, None))
    }
}

/// Handle of the background GC thread; dropping it stops the thread.
#[derive(Debug)]
pub struct GcTask {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GcTask {
    /// True while the background thread is alive (it ends when the store is dropped).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for GcTask {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread with `Disconnected`, which ends its loop.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Store for MemoryStore {
    fn head_revision(&self) -> Result<Revision, StoreError> {
        Ok(Revision(self.shared.data.read().head))
    }

    fn oldest_readable_revision(&self) -> Result<Revision, StoreError> {
        Ok(Revision(self.shared.data.read().oldest))
    }

    fn snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError> {
        let now = self.shared.now();
        self.shared.data.read().check_readable(revision.0, now)?;
        Ok(Arc::new(MemorySnapshot {
            shared: Arc::clone(&self.shared),
            revision: revision.0,
            now,
        }))
    }

    fn write(&self, txn: WriteTransaction) -> Result<Revision, StoreError> {
        self.write_updates(txn.updates, &txn.preconditions, txn.caller, txn.metadata)
    }

    fn delete_by_filter(&self, request: DeleteByFilter) -> Result<DeleteOutcome, StoreError> {
        let mut w = self.shared.writer.lock();
        let (head, planned, changes, partial, committed_at) = {
            let data = self.shared.data.read();
            let head = data.head;
            let now = self.commit_time(&mut w);
            data.precondition_failure(&request.preconditions, head, now)?;
            let mut found: Vec<(RelationshipKey, Relationship)> = Vec::new();
            let mut matched: u64 = 0;
            let limit = request.limit;
            scan_locked(
                &data,
                &forward_plan(&request.filter, None),
                head,
                now,
                |k, v| {
                    matched += 1;
                    if limit.is_none_or(|l| found.len() < l) {
                        found.push((k.clone(), build(k, v)));
                        true
                    } else {
                        // Past the limit: a partial delete can stop; otherwise keep counting
                        // so the error reports how many match.
                        !request.allow_partial
                    }
                },
            );
            let partial = match limit {
                Some(l) if matched > l as u64 => {
                    if !request.allow_partial {
                        return Err(StoreError::DeleteLimitExceeded { limit: l, matched });
                    }
                    true
                }
                _ => false,
            };
            let mut planned = Vec::with_capacity(found.len());
            let mut changes = Vec::with_capacity(found.len());
            for (key, relationship) in found {
                planned.push(Planned {
                    key,
                    close: true,
                    insert: None,
                });
                changes.push(RelationshipUpdate {
                    op: WriteOp::Delete,
                    relationship,
                });
            }
            (head, planned, changes, partial, now)
        };
        let deleted = changes.len() as u64;
        let rev = head + 1;
        let change = ChangeSet {
            revision: Revision(rev),
            committed_at,
            caller: request.caller,
            changes,
            schema_changed: false,
            metadata: request.metadata,
        };
        let revision = self.commit(&mut w, rev, planned, change, None);
        Ok(DeleteOutcome {
            revision,
            deleted,
            partial,
        })
    }

    fn write_schema(
        &self,
        text: &str,
        check: SchemaCheck<'_>,
        caller: Option<String>,
    ) -> Result<Revision, StoreError> {
        let mut w = self.shared.writer.lock();
        let head = self.shared.data.read().head;
        let latest = MemorySnapshot {
            shared: Arc::clone(&self.shared),
            revision: head,
            now: self.shared.now(),
        };
        check(&latest)?;
        let committed_at = self.commit_time(&mut w);
        let rev = head + 1;
        let change = ChangeSet {
            revision: Revision(rev),
            committed_at,
            caller,
            changes: Vec::new(),
            schema_changed: true,
            metadata: TransactionMetadata::new(),
        };
        Ok(self.commit(&mut w, rev, Vec::new(), change, Some(text)))
    }

    fn bulk_import(
        &self,
        relationships: Vec<Relationship>,
        caller: Option<String>,
    ) -> Result<Revision, StoreError> {
        let updates = relationships
            .into_iter()
            .map(|relationship| RelationshipUpdate {
                op: WriteOp::Create,
                relationship,
            })
            .collect();
        self.write_updates(updates, &[], caller, TransactionMetadata::new())
    }

    fn read_changes(&self, after: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        let data = self.shared.data.read();
        if after.0 > data.head {
            return Err(StoreError::RevisionInFuture {
                requested: after,
                head: Revision(data.head),
            });
        }
        if after.0 < data.oldest {
            return Err(StoreError::RevisionTooOld {
                requested: after,
                oldest: Revision(data.oldest),
            });
        }
        let start = data.changes.partition_point(|c| c.revision <= after);
        Ok(data
            .changes
            .range(start..)
            .take(limit)
            .map(|c| (**c).clone())
            .collect())
    }
}

/// A read view of a [`MemoryStore`] at one revision.
struct MemorySnapshot {
    shared: Arc<Shared>,
    revision: u64,
    now: Timestamp,
}

impl MemorySnapshot {
    fn scan<K: IndexKey>(&self, plan: ScanPlan<K>) -> Result<RelationshipIter<'_>, StoreError> {
        let mut iter = ScanIter {
            shared: Arc::clone(&self.shared),
            revision: self.revision,
            now: self.now,
            next: plan.start,
            classify: plan.classify,
            buffer: VecDeque::new(),
            batch: FIRST_BATCH,
            done: false,
        };
        // The first batch is read eagerly so an unreadable revision is reported here.
        iter.fill()?;
        Ok(Box::new(iter))
    }
}

impl Snapshot for MemorySnapshot {
    fn revision(&self) -> Revision {
        Revision(self.revision)
    }

    fn now(&self) -> Timestamp {
        self.now
    }

    fn query(
        &self,
        filter: &RelationshipFilter,
        after: Option<&RelationshipKey>,
    ) -> Result<RelationshipIter<'_>, StoreError> {
        self.scan(forward_plan(filter, after))
    }

    fn reverse_query(
        &self,
        subject: &SubjectFilter,
        resource_type: Option<&str>,
        relation: Option<&str>,
    ) -> Result<RelationshipIter<'_>, StoreError> {
        self.scan(reverse_plan(subject, resource_type, relation))
    }

    fn schema(&self) -> Result<Option<StoredSchema>, StoreError> {
        let data = self.shared.data.read();
        data.check_readable(self.revision, self.now)?;
        let in_force = data.schemas.partition_point(|(r, _)| *r <= self.revision);
        Ok(in_force.checked_sub(1).map(|i| {
            let (rev, text) = &data.schemas[i];
            StoredSchema {
                text: Arc::clone(text),
                written_at: Revision(*rev),
            }
        }))
    }
}

/// A scan that reads the index in batches, taking the read lock once per batch and resuming
/// strictly after the last key it looked at; versions make every batch see the same revision.
struct ScanIter<K: IndexKey> {
    shared: Arc<Shared>,
    revision: u64,
    now: Timestamp,
    next: Bound<K>,
    classify: Classify<K>,
    buffer: VecDeque<Relationship>,
    batch: usize,
    done: bool,
}

impl<K: IndexKey> ScanIter<K> {
    fn fill(&mut self) -> Result<(), StoreError> {
        let data = self.shared.data.read();
        data.check_readable(self.revision, self.now)?;
        let map = K::index(&data);
        let mut last: Option<&K> = None;
        let mut scanned = 0;
        let mut exhausted = true;
        for (k, chain) in map.range((self.next.as_ref(), Bound::Unbounded)) {
            match (self.classify)(k) {
                Step::Stop => break,
                Step::Skip => {}
                Step::Yield => {
                    if let Some(v) = visible(chain, self.revision, self.now) {
                        self.buffer.push_back(k.relationship(v));
                    }
                }
            }
            last = Some(k);
            scanned += 1;
            if self.buffer.len() >= self.batch || scanned >= SCAN_CHUNK {
                exhausted = false;
                break;
            }
        }
        if exhausted {
            self.done = true;
        } else if let Some(k) = last {
            self.next = Bound::Excluded(k.clone());
        }
        self.batch = (self.batch * 2).min(MAX_BATCH);
        Ok(())
    }
}

impl<K: IndexKey> Iterator for ScanIter<K> {
    type Item = Result<Relationship, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.buffer.pop_front() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}
