//! The durable store: embedded RocksDB with multi-version reads, a change log and GC.
//!
//! This is the only module that names the `rocksdb` crate.
//!
//! # Layout
//! Column families by access pattern (encodings in [`keys`]):
//! - `forward`: every version of every relationship, by resource (check, expand, read);
//! - `reverse`: the same versions by subject (lookups, reverse walks);
//! - `changelog`: one entry per transaction, by revision (Watch, GC);
//! - `expiry`: versions that carry an expiration, by expiration (GC of expired relationships);
//! - `meta`: format version, head revision, oldest readable revision, schema history.
//!
//! # Format versions
//! Version 1 is the original layout. Version 2 adds optional transaction metadata at the end
//! of change-log headers (see `codec`); everything else is identical, so a version-1
//! directory is read as is. A store records version 2 only in the batch of its first
//! transaction that carries metadata: until then it stays readable by builds that know only
//! version 1, and afterwards those builds refuse it with a clear error instead of failing on
//! the change-log entries they cannot decode.
//!
//! A version key ends with the inverted revision that wrote it, so the newest version of a
//! relationship is the first key under its identity. A version is either the relationship's
//! attributes or a tombstone. A read at revision R takes, per identity, the first version
//! at or below R, and skips it when it is a tombstone or expired at the snapshot's `now`.
//!
//! # Writes
//! One `WriteBatch` per transaction (versions in both indexes, the change-log entry and the new
//! head revision), written with a synced WAL, under a writer mutex so revisions follow commit
//! order. Readers see a revision only once its batch is written: the in-memory head is
//! published after the write returns. Preconditions and CREATE checks read the head state
//! under the same mutex.
//!
//! # Garbage collection
//! [`RocksStore::collect_garbage`] advances the oldest readable revision to the newest one
//! committed before `now - gc_window`, and removes what no readable revision can see: versions
//! superseded at or before it, tombstones, change-log entries, old schema versions, and
//! relationships whose expiration is older than the window. Reads below the oldest readable
//! revision fail with [`StoreError::RevisionTooOld`].

mod codec;
mod gc;
pub mod keys;
mod snapshot;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Options,
    ReadOptions, SliceTransform, WriteBatch, WriteOptions,
};

use crate::model::{Relationship, Revision, Timestamp};
use crate::store::recent::RecentWrites;
use crate::store::txn::{self, TxnBackend, WriteSession};
use crate::store::{
    BulkImport, ChangeSet, DeleteByFilter, DeleteOutcome, SchemaCheck, Snapshot, Store, StoreError,
    WriteOp, WriteTransaction,
};

pub use crate::store::clock::{Clock, ManualClock, SystemClock};
use codec::Attributes;
pub use gc::GcStats;
use snapshot::RocksSnapshot;

const CF_FORWARD: &str = "forward";
const CF_REVERSE: &str = "reverse";
const CF_CHANGELOG: &str = "changelog";
const CF_EXPIRY: &str = "expiry";
const CF_META: &str = "meta";

/// The newest on-disk format this build reads and writes.
pub const FORMAT_VERSION: u64 = 2;
/// The oldest on-disk format this build reads (and the one new stores start with).
pub const OLDEST_FORMAT_VERSION: u64 = 1;
/// The first format whose change-log headers may carry transaction metadata.
const METADATA_FORMAT_VERSION: u64 = 2;

/// Changes per change-log chunk: a bulk import's entry is split so no value grows unbounded.
const CHANGES_PER_CHUNK: usize = 1024;

/// A reasonable background GC interval for a server.
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// How to open a [`RocksStore`].
#[derive(Clone)]
pub struct RocksOptions {
    /// How long history stays readable (exact snapshots, Watch). Default 24 h.
    pub gc_window: Duration,
    /// When set, a background thread collects garbage at this interval. Off by default (tests,
    /// one-shot tools); a server sets it, e.g. to [`DEFAULT_GC_INTERVAL`].
    pub gc_interval: Option<Duration>,
    pub clock: Arc<dyn Clock>,
    /// Shared block cache for all column families. Default 256 MiB.
    pub block_cache_bytes: usize,
    /// Memtable size of each relationship index. Default 64 MiB.
    pub write_buffer_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            gc_window: Duration::from_secs(24 * 60 * 60),
            gc_interval: None,
            clock: Arc::new(SystemClock),
            block_cache_bytes: 256 << 20,
            write_buffer_bytes: 64 << 20,
        }
    }
}

impl fmt::Debug for RocksOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksOptions")
            .field("gc_window", &self.gc_window)
            .field("gc_interval", &self.gc_interval)
            .field("block_cache_bytes", &self.block_cache_bytes)
            .field("write_buffer_bytes", &self.write_buffer_bytes)
            .finish_non_exhaustive()
    }
}

fn backend(context: &str, e: rocksdb::Error) -> StoreError {
    StoreError::Backend(format!("{context}: {e}"))
}

/// The forward index's prefix extractor: a key without its version suffix, so bloom filters
/// answer "does this relationship have any version" without touching data blocks.
fn forward_identity_prefix(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(keys::VERSION_LEN)]
}

fn forward_in_domain(key: &[u8]) -> bool {
    key.len() >= keys::VERSION_LEN
}

/// Everything shared between the store, its snapshots and the GC thread.
pub(crate) struct Inner {
    db: DB,
    path: PathBuf,
    options: RocksOptions,
    head: AtomicU64,
    oldest: AtomicU64,
    writer: Mutex<WriterState>,
    /// Schema history (small: GC keeps only what readable revisions need).
    schemas: RwLock<BTreeMap<Revision, Arc<str>>>,
    gc_lock: Mutex<()>,
    /// The database is opened by this process alone, so every write goes through here and
    /// the record is complete (from the head at open on).
    recent: Arc<RecentWrites>,
}

struct WriterState {
    /// Commit timestamps never go backwards, even if the clock does.
    last_commit: Timestamp,
    /// The format version recorded in `meta` (raised by the first commit that needs more).
    format: u64,
}

/// One effective change of a transaction, encoded.
struct Change {
    op: WriteOp,
    forward: Vec<u8>,
    reverse: Vec<u8>,
    /// The new version (a tombstone for deletes).
    version: Vec<u8>,
    /// What the change log records when it differs from `version` (a delete records what was deleted).
    logged: Option<Vec<u8>>,
    expiration: Option<Timestamp>,
}

impl Change {
    fn put(op: WriteOp, rel: &Relationship, forward: Vec<u8>) -> Change {
        let mut reverse = Vec::with_capacity(forward.len());
        keys::put_reverse_parts(&mut reverse, &rel.resource, &rel.relation, &rel.subject);
        Change {
            op,
            forward,
            reverse,
            version: codec::version_bytes(Some(&Attributes::of(rel))),
            logged: None,
            expiration: rel.expiration,
        }
    }

    fn delete(rel: &Relationship, forward: Vec<u8>, previous: &Attributes) -> Change {
        let mut reverse = Vec::with_capacity(forward.len());
        keys::put_reverse_parts(&mut reverse, &rel.resource, &rel.relation, &rel.subject);
        Change {
            op: WriteOp::Delete,
            forward,
            reverse,
            version: codec::version_bytes(None),
            logged: Some(codec::version_bytes(Some(previous))),
            expiration: None,
        }
    }
}

impl Inner {
    fn cf(&self, name: &str) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| StoreError::Corrupt(format!("column family `{name}` is missing")))
    }

    fn head(&self) -> Revision {
        Revision(self.head.load(Ordering::SeqCst))
    }

    fn oldest(&self) -> Revision {
        Revision(self.oldest.load(Ordering::SeqCst))
    }

    /// Read options for a bounded scan in key order.
    fn scan_options(upper_bound: Option<Vec<u8>>) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_total_order_seek(true);
        if let Some(ub) = upper_bound {
            ro.set_iterate_upper_bound(ub);
        }
        ro
    }

    /// Read options for reading the versions of one identity (uses the prefix bloom filter).
    fn point_options() -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_prefix_same_as_start(true);
        ro
    }

    /// The newest version of `identity` (at head; only meaningful under the writer lock).
    fn newest_version(
        it: &mut rocksdb::DBRawIterator<'_>,
        identity: &[u8],
    ) -> Result<Option<(Revision, Option<Attributes>)>, StoreError> {
        it.seek(keys::version_seek_key(identity, Revision(u64::MAX)));
        match it.item() {
            Some((k, v))
                if k.len() == identity.len() + keys::VERSION_LEN && k.starts_with(identity) =>
            {
                let (_, rev) = keys::split_version(k)?;
                Ok(Some((rev, codec::decode_version(v)?)))
            }
            Some(_) => Ok(None),
            None => {
                it.status()
                    .map_err(|e| backend("reading a relationship", e))?;
                Ok(None)
            }
        }
    }

    /// The live (present and unexpired at `now`) attributes of `identity` at head.
    fn live_version(
        it: &mut rocksdb::DBRawIterator<'_>,
        identity: &[u8],
        now: Timestamp,
    ) -> Result<Option<Attributes>, StoreError> {
        Ok(Self::newest_version(it, identity)?
            .and_then(|(_, attrs)| attrs)
            .filter(|a| !a.is_expired_at(now)))
    }

    fn snapshot_at(self: &Arc<Self>, revision: Revision) -> Result<RocksSnapshot, StoreError> {
        let head = self.head();
        if revision > head {
            return Err(StoreError::RevisionInFuture {
                requested: revision,
                head,
            });
        }
        let oldest = self.oldest();
        if revision < oldest {
            return Err(StoreError::RevisionTooOld {
                requested: revision,
                oldest,
            });
        }
        Ok(self.snapshot_unchecked(revision, self.options.clock.now()))
    }

    fn snapshot_unchecked(self: &Arc<Self>, revision: Revision, now: Timestamp) -> RocksSnapshot {
        let schema = self
            .schemas
            .read()
            .range(..=revision)
            .next_back()
            .map(|(rev, text)| crate::store::StoredSchema {
                text: Arc::clone(text),
                written_at: *rev,
            });
        RocksSnapshot::new(self.clone(), revision, now, schema)
    }

    /// Writes one transaction's batch (synced) and publishes its revision. Caller holds the
    /// writer lock and passes its state.
    fn commit(
        &self,
        state: &mut WriterState,
        set: ChangeSet,
        schema: Option<&str>,
    ) -> Result<Revision, StoreError> {
        let revision = self.head().next();
        if set.revision != revision {
            return Err(StoreError::Backend(format!(
                "commit of revision {} on head {}",
                set.revision,
                self.head()
            )));
        }
        let committed_at = set.committed_at;
        let changes: Vec<Change> = set
            .changes
            .iter()
            .map(|u| {
                let rel = &u.relationship;
                match u.op {
                    WriteOp::Delete => Change::delete(rel, identity_of(rel), &Attributes::of(rel)),
                    op => Change::put(op, rel, identity_of(rel)),
                }
            })
            .collect();
        let (caller, metadata) = (set.caller, set.metadata);
        let fwd = self.cf(CF_FORWARD)?;
        let rev_cf = self.cf(CF_REVERSE)?;
        let log = self.cf(CF_CHANGELOG)?;
        let exp = self.cf(CF_EXPIRY)?;
        let meta = self.cf(CF_META)?;

        let mut batch = WriteBatch::default();
        let mut chunk = Vec::new();
        let mut in_chunk = 0usize;
        let mut chunks = 0u32;
        let mut key = Vec::with_capacity(128);
        for c in &changes {
            if let Some(e) = &c.expiration {
                key.clear();
                key.extend_from_slice(&c.forward);
                keys::put_version(&mut key, revision);
                batch.put_cf(exp, keys::expiry_key(e, &key), []);
            }
            codec::put_change(
                &mut chunk,
                c.op,
                &c.forward,
                c.logged.as_ref().unwrap_or(&c.version),
            );
            in_chunk += 1;
            if in_chunk == CHANGES_PER_CHUNK {
                chunks += 1;
                batch.put_cf(log, keys::changelog_key(revision, chunks), &chunk);
                chunk.clear();
                in_chunk = 0;
            }
        }
        if in_chunk > 0 {
            chunks += 1;
            batch.put_cf(log, keys::changelog_key(revision, chunks), &chunk);
        }
        // A memtable insert is cheap next to the previous one and costly anywhere else (the
        // skiplist recomputes its insertion point): a quarter of bulk-import time went there.
        // So each index's keys go into the batch sorted (bulk imports already arrive in
        // forward order; the reverse index's order is always different).
        let mut sorted: Vec<&Change> = changes.iter().collect();
        sorted.sort_by(|a, b| a.forward.cmp(&b.forward));
        for c in &sorted {
            key.clear();
            key.extend_from_slice(&c.forward);
            keys::put_version(&mut key, revision);
            batch.put_cf(fwd, &key, &c.version);
        }
        sorted.sort_unstable_by(|a, b| a.reverse.cmp(&b.reverse));
        for c in &sorted {
            key.clear();
            key.extend_from_slice(&c.reverse);
            keys::put_version(&mut key, revision);
            batch.put_cf(rev_cf, &key, &c.version);
        }
        let header = codec::ChangeHeader {
            committed_at,
            caller,
            schema_changed: schema.is_some(),
            chunks,
            metadata,
        };
        // Older builds cannot decode a header with metadata: mark the store as needing this
        // format, atomically with the first such entry.
        let raise_format = header.needs_metadata_format() && state.format < METADATA_FORMAT_VERSION;
        if raise_format {
            batch.put_cf(
                meta,
                keys::META_FORMAT,
                METADATA_FORMAT_VERSION.to_be_bytes(),
            );
        }
        batch.put_cf(
            log,
            keys::changelog_key(revision, 0),
            codec::encode_header(&header),
        );
        if let Some(text) = schema {
            batch.put_cf(meta, keys::schema_key(revision), text.as_bytes());
        }
        batch.put_cf(meta, keys::META_HEAD, codec::revision_bytes(revision));

        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .write_opt(batch, &wo)
            .map_err(|e| backend("committing a transaction", e))?;

        state.last_commit = committed_at;
        if raise_format {
            state.format = METADATA_FORMAT_VERSION;
        }
        if let Some(text) = schema {
            self.schemas.write().insert(revision, Arc::from(text));
        }
        // Publish only now: a reader can never be handed a revision that is not durable.
        self.head.store(revision.0, Ordering::SeqCst);
        Ok(revision)
    }

    fn read_changes(&self, after: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        let head = self.head();
        if after > head {
            return Err(StoreError::RevisionInFuture {
                requested: after,
                head,
            });
        }
        let oldest = self.oldest();
        if after < oldest {
            return Err(StoreError::RevisionTooOld {
                requested: after,
                oldest,
            });
        }
        let mut out = Vec::new();
        if limit == 0 || after == head {
            return Ok(out);
        }
        let log = self.cf(CF_CHANGELOG)?;
        let upper = keys::changelog_key(head.next(), 0).to_vec();
        let mut it = self
            .db
            .raw_iterator_cf_opt(log, Self::scan_options(Some(upper)));
        it.seek(keys::changelog_key(after.next(), 0));
        // GC raises `oldest` before deleting: checked after the iterator pinned its view.
        let oldest = self.oldest();
        if after < oldest {
            return Err(StoreError::RevisionTooOld {
                requested: after,
                oldest,
            });
        }
        while out.len() < limit {
            let Some((k, v)) = it.item() else {
                it.status()
                    .map_err(|e| backend("reading the change log", e))?;
                break;
            };
            let (revision, chunk) = keys::decode_changelog_key(k)?;
            if chunk != 0 {
                return Err(StoreError::Corrupt(format!(
                    "change-log entry {revision} has no header"
                )));
            }
            let header = codec::decode_header(v)?;
            let mut changes = Vec::new();
            for expected in 1..=header.chunks {
                it.next();
                let Some((k, v)) = it.item() else {
                    it.status()
                        .map_err(|e| backend("reading the change log", e))?;
                    return Err(StoreError::Corrupt(format!(
                        "change-log entry {revision} is truncated"
                    )));
                };
                if keys::decode_changelog_key(k)? != (revision, expected) {
                    return Err(StoreError::Corrupt(format!(
                        "change-log entry {revision} is missing chunk {expected}"
                    )));
                }
                changes.extend(codec::decode_changes(v)?.into_iter().map(|c| c.update));
            }
            out.push(ChangeSet {
                revision,
                committed_at: header.committed_at,
                caller: header.caller,
                changes,
                schema_changed: header.schema_changed,
                metadata: header.metadata,
            });
            it.next();
        }
        Ok(out)
    }
}

/// The RocksDB-backed [`Store`].
pub struct RocksStore {
    inner: Arc<Inner>,
    gc_thread: Option<GcThread>,
}

struct GcThread {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.inner.path)
            .field("head", &self.inner.head())
            .field("oldest", &self.inner.oldest())
            .finish_non_exhaustive()
    }
}

fn db_options(options: &RocksOptions) -> (Options, Vec<ColumnFamilyDescriptor>) {
    let cache = Cache::new_lru_cache(options.block_cache_bytes);

    let mut db = Options::default();
    db.create_if_missing(true);
    db.create_missing_column_families(true);
    db.increase_parallelism(2);
    db.set_max_background_jobs(2);
    // Bounds the WAL (and so crash-recovery time): old memtables are flushed past this size.
    db.set_max_total_wal_size(256 << 20);
    db.set_bytes_per_sync(1 << 20);
    db.set_max_open_files(1024);
    db.set_keep_log_file_num(4);

    let table = |bloom_prefix: bool| {
        let mut t = BlockBasedOptions::default();
        t.set_block_cache(&cache);
        if bloom_prefix {
            t.set_bloom_filter(10.0, false);
            t.set_whole_key_filtering(false);
        }
        t
    };
    let relationship_cf = |bloom_prefix: bool| {
        let mut o = Options::default();
        o.set_write_buffer_size(options.write_buffer_bytes);
        o.set_max_write_buffer_number(4);
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_block_based_table_factory(&table(bloom_prefix));
        if bloom_prefix {
            o.set_prefix_extractor(SliceTransform::create(
                "tessera.forward_identity",
                forward_identity_prefix,
                Some(forward_in_domain),
            ));
            o.set_memtable_prefix_bloom_ratio(0.1);
        }
        o
    };
    let small_cf = || {
        let mut o = Options::default();
        o.set_write_buffer_size(16 << 20);
        o.set_compression_type(DBCompressionType::Lz4);
        o.set_block_based_table_factory(&table(false));
        o
    };
    let cfs = vec![
        ColumnFamilyDescriptor::new(CF_FORWARD, relationship_cf(true)),
        ColumnFamilyDescriptor::new(CF_REVERSE, relationship_cf(false)),
        ColumnFamilyDescriptor::new(CF_CHANGELOG, small_cf()),
        ColumnFamilyDescriptor::new(CF_EXPIRY, small_cf()),
        ColumnFamilyDescriptor::new(CF_META, small_cf()),
    ];
    (db, cfs)
}

impl RocksStore {
    /// Opens the store in `path`, creating it when the directory is empty or absent.
    /// Restores head, oldest readable revision and schema history without scanning data.
    pub fn open(path: impl AsRef<Path>, options: RocksOptions) -> Result<RocksStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let (db_opts, cfs) = db_options(&options);
        let db = DB::open_cf_descriptors(&db_opts, &path, cfs).map_err(|e| {
            StoreError::Backend(format!("cannot open store at `{}`: {e}", path.display()))
        })?;
        let meta = db
            .cf_handle(CF_META)
            .ok_or_else(|| StoreError::Corrupt("column family `meta` is missing".into()))?;
        let read_u64 = |key: &[u8], what: &str| -> Result<Option<u64>, StoreError> {
            db.get_cf(meta, key)
                .map_err(|e| backend("reading store metadata", e))?
                .map(|v| keys::decode_u64(&v, what))
                .transpose()
        };
        let head = read_u64(keys::META_HEAD, "head revision")?;
        let format = match read_u64(keys::META_FORMAT, "format version")? {
            Some(v @ OLDEST_FORMAT_VERSION..=FORMAT_VERSION) => v,
            Some(other) => {
                return Err(StoreError::Backend(format!(
                    "store at `{}` has format version {other}; this build reads format versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}",
                    path.display()
                )));
            }
            None if head.is_some() => {
                return Err(StoreError::Corrupt(format!(
                    "store at `{}` has data but no format version",
                    path.display()
                )));
            }
            None => {
                // New stores start at the oldest format: nothing in them needs more yet.
                let mut wo = WriteOptions::default();
                wo.set_sync(true);
                db.put_cf_opt(
                    meta,
                    keys::META_FORMAT,
                    OLDEST_FORMAT_VERSION.to_be_bytes(),
                    &wo,
                )
                .map_err(|e| backend("initializing the store", e))?;
                OLDEST_FORMAT_VERSION
            }
        };
        let oldest = read_u64(keys::META_OLDEST, "oldest revision")?.unwrap_or(0);
        let head = head.unwrap_or(0);

        let mut schemas = BTreeMap::new();
        {
            let upper = keys::prefix_successor(keys::META_SCHEMA_PREFIX);
            let mut it = db.raw_iterator_cf_opt(meta, Inner::scan_options(upper));
            it.seek(keys::META_SCHEMA_PREFIX);
            while let Some((k, v)) = it.item() {
                let rev = keys::decode_schema_key(k)?;
                let text = std::str::from_utf8(v).map_err(|_| {
                    StoreError::Corrupt(format!("schema at revision {rev} is not UTF-8"))
                })?;
                schemas.insert(rev, Arc::<str>::from(text));
                it.next();
            }
            it.status()
                .map_err(|e| backend("reading the schema history", e))?;
        }

        // The last commit time, so commit timestamps stay monotonic across restarts.
        let mut last_commit = chrono::DateTime::<chrono::Utc>::MIN_UTC;
        if head > 0 {
            let log = db.cf_handle(CF_CHANGELOG).ok_or_else(|| {
                StoreError::Corrupt("column family `changelog` is missing".into())
            })?;
            if let Some(v) = db
                .get_cf(log, keys::changelog_key(Revision(head), 0))
                .map_err(|e| backend("reading the change log", e))?
            {
                last_commit = codec::decode_header(&v)?.committed_at;
            }
        }

        let inner = Arc::new(Inner {
            db,
            path,
            head: AtomicU64::new(head),
            oldest: AtomicU64::new(oldest),
            writer: Mutex::new(WriterState {
                last_commit,
                format,
            }),
            schemas: RwLock::new(schemas),
            gc_lock: Mutex::new(()),
            options,
            recent: Arc::new(RecentWrites::new(Revision(head))),
        });
        let gc_thread = inner
            .options
            .gc_interval
            .map(|interval| spawn_gc(&inner, interval));
        Ok(RocksStore { inner, gc_thread })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs one garbage collection pass now (the background thread calls this too).
    pub fn collect_garbage(&self) -> Result<GcStats, StoreError> {
        self.inner.collect_garbage()
    }

    /// Flushes memtables to disk so the next open replays no WAL. Done on drop as well.
    pub fn flush(&self) -> Result<(), StoreError> {
        let cfs = [CF_FORWARD, CF_REVERSE, CF_CHANGELOG, CF_EXPIRY, CF_META]
            .iter()
            .map(|n| self.inner.cf(n))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner
            .db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())
            .map_err(|e| backend("flushing", e))
    }
}

fn spawn_gc(inner: &Arc<Inner>, interval: Duration) -> GcThread {
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let weak = Arc::downgrade(inner);
    let signal = stop.clone();
    let handle = std::thread::Builder::new()
        .name("tessera-gc".into())
        .spawn(move || {
            let (lock, cv) = &*signal;
            loop {
                {
                    let mut stopped = lock.lock();
                    if !*stopped {
                        cv.wait_for(&mut stopped, interval);
                    }
                    if *stopped {
                        return;
                    }
                }
                let Some(inner) = weak.upgrade() else { return };
                // A failed pass is retried at the next interval; reads stay correct meanwhile
                // because `oldest` only moves together with the deletions.
                let _ = inner.collect_garbage();
            }
        })
        .ok();
    GcThread { stop, handle }
}

impl Drop for RocksStore {
    fn drop(&mut self) {
        if let Some(gc) = &mut self.gc_thread {
            *gc.stop.0.lock() = true;
            gc.stop.1.notify_all();
            if let Some(h) = gc.handle.take() {
                let _ = h.join();
            }
        }
        // Best effort: a failed flush only means the next open replays the WAL.
        let _ = self.flush();
    }
}

fn identity_of(rel: &Relationship) -> Vec<u8> {
    let mut id = Vec::with_capacity(64);
    keys::put_forward_parts(&mut id, &rel.resource, &rel.relation, &rel.subject);
    id
}

/// An open write on a [`RocksStore`]: holds the writer mutex; reads the head state through
/// one point iterator (prefix bloom filter) reused across lookups.
pub struct RocksWrite<'a> {
    inner: &'a Arc<Inner>,
    state: MutexGuard<'a, WriterState>,
    head: Revision,
    point: Option<rocksdb::DBRawIterator<'a>>,
}

impl TxnBackend for RocksStore {
    type Session<'a> = RocksWrite<'a>;

    fn begin_write(&self) -> Result<RocksWrite<'_>, StoreError> {
        let state = self.inner.writer.lock();
        Ok(RocksWrite {
            inner: &self.inner,
            state,
            head: self.inner.head(),
            point: None,
        })
    }

    fn clock(&self) -> &dyn Clock {
        &*self.inner.options.clock
    }

    fn recent_writes(&self) -> Option<&RecentWrites> {
        Some(&self.inner.recent)
    }
}

impl WriteSession for RocksWrite<'_> {
    fn head(&self) -> Revision {
        self.head
    }

    fn last_commit_time(&self) -> Option<Timestamp> {
        Some(self.state.last_commit)
    }

    fn latest(&mut self, now: Timestamp) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        Ok(Box::new(self.inner.snapshot_unchecked(self.head, now)))
    }

    fn schema_revision(&mut self) -> Result<Option<Revision>, StoreError> {
        Ok(self.inner.schemas.read().keys().next_back().copied())
    }

    fn live(
        &mut self,
        keys: &[&Relationship],
        now: Timestamp,
    ) -> Result<Vec<Option<Relationship>>, StoreError> {
        // In key order: each seek lands near the previous one.
        let mut order: Vec<(Vec<u8>, usize)> = keys
            .iter()
            .enumerate()
            .map(|(i, r)| (identity_of(r), i))
            .collect();
        order.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let it = match &mut self.point {
            Some(it) => it,
            None => {
                let fwd = self.inner.cf(CF_FORWARD)?;
                self.point.insert(
                    self.inner
                        .db
                        .raw_iterator_cf_opt(fwd, Inner::point_options()),
                )
            }
        };
        let mut found = vec![None; keys.len()];
        for (id, i) in order {
            if let Some(attrs) = Inner::live_version(it, &id, now)? {
                found[i] = Some(attrs.into_relationship(keys[i].key()));
            }
        }
        Ok(found)
    }

    fn commit(mut self, change: ChangeSet, schema: Option<&str>) -> Result<Revision, StoreError> {
        self.point = None;
        self.inner.commit(&mut self.state, change, schema)
    }
}

impl Store for RocksStore {
    fn local_reads(&self) -> bool {
        true
    }

    fn recent_writes(&self) -> Option<Arc<RecentWrites>> {
        Some(Arc::clone(&self.inner.recent))
    }

    fn head_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.inner.head())
    }

    fn oldest_readable_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.inner.oldest())
    }

    fn snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError> {
        Ok(Arc::new(self.inner.snapshot_at(revision)?))
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
        self.inner.read_changes(after, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TransactionMetadata;

    fn options() -> RocksOptions {
        RocksOptions {
            gc_interval: None,
            block_cache_bytes: 8 << 20,
            write_buffer_bytes: 4 << 20,
            ..RocksOptions::default()
        }
    }

    fn stored_format(store: &RocksStore) -> u64 {
        let meta = store.inner.cf(CF_META).unwrap();
        let v = store
            .inner
            .db
            .get_cf(meta, keys::META_FORMAT)
            .unwrap()
            .unwrap();
        keys::decode_u64(&v, "format version").unwrap()
    }

    #[test]
    fn the_first_metadata_raises_the_format_and_everything_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let rel = |t: &str| crate::model::parse_relationship(t).unwrap();
        let write = |store: &RocksStore, t: &str, metadata: TransactionMetadata| {
            store
                .write(WriteTransaction {
                    updates: vec![crate::store::RelationshipUpdate {
                        op: WriteOp::Touch,
                        relationship: rel(t),
                    }],
                    metadata,
                    ..Default::default()
                })
                .unwrap()
        };
        let serde_json::Value::Object(metadata) =
            serde_json::json!({"reason": "audit", "ticket": 7})
        else {
            unreachable!()
        };
        {
            let store = RocksStore::open(dir.path(), options()).unwrap();
            // A store without metadata keeps the version-1 layout (older builds still read it).
            assert_eq!(stored_format(&store), OLDEST_FORMAT_VERSION);
            write(&store, "doc:a#viewer@user:x", TransactionMetadata::new());
            assert_eq!(stored_format(&store), OLDEST_FORMAT_VERSION);
        }
        {
            let store = RocksStore::open(dir.path(), options()).unwrap();
            write(&store, "doc:b#viewer@user:x", metadata.clone());
            assert_eq!(stored_format(&store), METADATA_FORMAT_VERSION);
            write(&store, "doc:c#viewer@user:x", metadata.clone());
        }
        let store = RocksStore::open(dir.path(), options()).unwrap();
        assert_eq!(stored_format(&store), FORMAT_VERSION);
        let sets = store.read_changes(Revision::ZERO, 10).unwrap();
        let got: Vec<&TransactionMetadata> = sets.iter().map(|s| &s.metadata).collect();
        assert_eq!(got, [&TransactionMetadata::new(), &metadata, &metadata]);
        // Reopening restored the last commit time from a header that carries metadata.
        let r = write(&store, "doc:d#viewer@user:x", TransactionMetadata::new());
        assert_eq!(r, Revision(4));
    }

    #[test]
    fn unknown_format_version_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RocksStore::open(dir.path(), options()).unwrap();
            // What a future version of the format would leave behind.
            let meta = store.inner.cf(CF_META).unwrap();
            store
                .inner
                .db
                .put_cf(meta, keys::META_FORMAT, 99u64.to_be_bytes())
                .unwrap();
        }
        let err = RocksStore::open(dir.path(), options())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("format version 99") && err.contains("versions 1 to 2"),
            "{err}"
        );
    }

    #[test]
    fn data_without_a_format_marker_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RocksStore::open(dir.path(), options()).unwrap();
            let meta = store.inner.cf(CF_META).unwrap();
            store.inner.db.delete_cf(meta, keys::META_FORMAT).unwrap();
            store
                .inner
                .db
                .put_cf(meta, keys::META_HEAD, 5u64.to_be_bytes())
                .unwrap();
        }
        let err = RocksStore::open(dir.path(), options()).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt(ref m) if m.contains("no format version")),
            "{err}"
        );
    }

    #[test]
    fn corrupt_values_surface_as_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path(), options()).unwrap();
        let rel = crate::model::parse_relationship("doc:a#viewer@user:x").unwrap();
        store.bulk_import(vec![rel.clone()], None).unwrap();
        let fwd = store.inner.cf(CF_FORWARD).unwrap();
        let key = keys::version_seek_key(&keys::forward_identity(&rel.key()), Revision(1));
        store.inner.db.put_cf(fwd, &key, [0x80]).unwrap();
        let snap = store.snapshot(Revision(1)).unwrap();
        let first = snap
            .query(&crate::model::RelationshipFilter::default(), None)
            .unwrap()
            .next();
        assert!(matches!(first, Some(Err(StoreError::Corrupt(_)))));
    }
}
