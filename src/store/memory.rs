//! The in-memory store: multi-version, snapshot-isolated, with a change log and GC.
//!
//! Layout: two ordered indexes, forward (by resource, the order documented on
//! [`Snapshot::query`]) and reverse (by subject), each mapping a relationship to its *version
//! chain*. A version is tagged with the revision that created it and the revision that ended
//! it (`deleted`, `OPEN` while current), so a snapshot at revision `r` sees exactly the
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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Weak, mpsc};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use parking_lot::MutexGuard;

use super::clock::{Clock, SystemClock};
use super::recent::RecentWrites;
use super::txn::{self, TxnBackend, WriteSession};
use super::{
    BulkImport, ChangeSet, DeleteByFilter, DeleteOutcome, RelationshipIter, SchemaCheck, Snapshot,
    Store, StoreError, StoredSchema, WriteOp, WriteTransaction,
};
use crate::model::{
    CaveatRef, ObjectRef, Relationship, RelationshipFilter, RelationshipKey, Revision,
    SubjectFilter, SubjectRef, SubjectRelationFilter, Timestamp,
};

/// Settings of a [`MemoryStore`].
#[derive(Clone)]
pub struct MemoryOptions {
    /// How long history stays readable (exact snapshots, the change log). Default 24 h.
    pub gc_window: Duration,
    /// Where time comes from. Default [`SystemClock`].
    pub clock: Arc<dyn Clock>,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            gc_window: Duration::from_secs(24 * 60 * 60),
            clock: Arc::new(SystemClock),
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

/// Ends the open version of a chain, if there is one; true when there was.
fn close_open(chain: Option<&mut Chain>, rev: u64) -> bool {
    match chain.and_then(|c| c.iter_mut().find(|v| v.deleted == OPEN)) {
        Some(v) => {
            v.deleted = rev;
            true
        }
        None => false,
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
    /// Every write goes through this value, so the record is complete.
    recent: Arc<RecentWrites>,
}

impl Shared {
    fn now(&self) -> Timestamp {
        self.options.clock.now()
    }
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
                recent: Arc::new(RecentWrites::new(Revision::ZERO)),
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
}

/// An open write on a [`MemoryStore`]: holds the writer lock.
pub struct MemoryWrite<'a> {
    shared: &'a Arc<Shared>,
    writer: MutexGuard<'a, WriterState>,
    head: u64,
}

impl TxnBackend for MemoryStore {
    type Session<'a> = MemoryWrite<'a>;

    fn begin_write(&self) -> Result<MemoryWrite<'_>, StoreError> {
        let writer = self.shared.writer.lock();
        let head = self.shared.data.read().head;
        Ok(MemoryWrite {
            shared: &self.shared,
            writer,
            head,
        })
    }

    fn clock(&self) -> &dyn Clock {
        &*self.shared.options.clock
    }

    fn recent_writes(&self) -> Option<&RecentWrites> {
        Some(&self.shared.recent)
    }
}

impl WriteSession for MemoryWrite<'_> {
    fn head(&self) -> Revision {
        Revision(self.head)
    }

    fn last_commit_time(&self) -> Option<Timestamp> {
        self.writer.last_commit
    }

    fn latest(&mut self, now: Timestamp) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        Ok(Box::new(MemorySnapshot {
            shared: Arc::clone(self.shared),
            revision: self.head,
            now,
        }))
    }

    fn schema_revision(&mut self) -> Result<Option<Revision>, StoreError> {
        let data = self.shared.data.read();
        Ok(data.schemas.last().map(|(r, _)| Revision(*r)))
    }

    fn live(
        &mut self,
        keys: &[&Relationship],
        now: Timestamp,
    ) -> Result<Vec<Option<Relationship>>, StoreError> {
        let data = self.shared.data.read();
        Ok(keys
            .iter()
            .map(|r| {
                let key = r.key();
                data.forward
                    .get(&key)
                    .and_then(|c| open_version(c))
                    .filter(|v| !v.expired_at(now))
                    .map(|v| build(&key, v))
            })
            .collect())
    }

    /// Applies the changes in chunks (each under a short write lock, so big transactions do
    /// not starve readers) and publishes the revision last. Never fails.
    fn commit(mut self, change: ChangeSet, schema: Option<&str>) -> Result<Revision, StoreError> {
        let rev = change.revision.0;
        let w = &mut *self.writer;
        let mut changes = change.changes.iter().peekable();
        while changes.peek().is_some() {
            let mut data = self.shared.data.write();
            let d = &mut *data;
            for c in changes.by_ref().take(APPLY_CHUNK) {
                let key = c.relationship.key();
                let rkey = ReverseKey::of(&key);
                let closed = close_open(d.forward.get_mut(&key), rev);
                close_open(d.reverse.get_mut(&rkey), rev);
                if c.op != WriteOp::Delete {
                    let v = Version::of(&c.relationship, rev);
                    if let Some(e) = v.expiration {
                        w.expiring.insert((e, key.clone()));
                    }
                    d.reverse.entry(rkey).or_default().push(v.clone());
                    d.forward.entry(key.clone()).or_default().push(v);
                }
                if closed {
                    w.ended.push_back((rev, key));
                }
            }
        }
        w.last_commit = Some(change.committed_at);
        let mut data = self.shared.data.write();
        if let Some(text) = schema {
            data.schemas.push((rev, Arc::from(text)));
        }
        data.changes.push_back(Arc::new(change));
        data.head = rev;
        Ok(Revision(rev))
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
    fn local_reads(&self) -> bool {
        true
    }

    fn recent_writes(&self) -> Option<Arc<RecentWrites>> {
        Some(Arc::clone(&self.shared.recent))
    }

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
        txn::write(self, txn)
    }

    fn delete_by_filter(&self, request: DeleteByFilter) -> Result<DeleteOutcome, StoreError> {
        txn::delete_by_filter(self, request)
    }

    fn write_schema(
        &self,
        text: &str,
        check: SchemaCheck<'_>,
        caller: Option<String>,
    ) -> Result<Revision, StoreError> {
        txn::write_schema(self, text, check, caller)
    }

    fn import(&self, request: BulkImport) -> Result<Revision, StoreError> {
        txn::import(self, request)
    }

    fn rebuild_indexes(&self) -> Result<Option<Revision>, StoreError> {
        txn::rebuild_indexes(self)
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
