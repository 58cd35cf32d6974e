//! The shared store: PostgreSQL, for many stateless Tessera nodes over one database.
//!
//! This is the only module that names the PostgreSQL driver (`tokio-postgres`) and its pool
//! (`deadpool-postgres`).
//!
//! # Revisions
//! Writers are serialized across every node by a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`), taken first in every write transaction. Inside it the writer
//! reads the head (the newest row of `tessera_transactions`), tags everything it writes with
//! `head + 1`, and commits; the lock is released only after the commit is visible, and the
//! next writer's statements run on snapshots taken after it acquired the lock (READ
//! COMMITTED), so it sees that commit. Revisions are therefore dense and strictly increasing
//! in commit order, whichever node commits — unlike sequence values, which are handed out
//! before commit and can commit out of order.
//!
//! # Snapshots
//! Relationship rows are versions: `created_rev` and `deleted_rev` (`i64::MAX` while
//! current). A snapshot at revision `r` reads the rows with `created_rev <= r < deleted_rev`.
//! Since `r` is only ever a committed revision (read from the database, or from a commit
//! notification) and every transaction up to `r` is committed atomically and before `r`, a
//! read at `r` sees exactly the transactions committed at or before `r` — on any node, and on
//! a streaming replica that has replayed `r`. Writers never change a row a snapshot at
//! `r <= head` can see, except to set the `deleted_rev` of a current version to a revision
//! above `r`. Garbage collection is guarded per statement (see `sql.rs`).
//!
//! # Node-local state
//! Only facts that never change are cached: the schema text written at each revision, the
//! newest revision known committed (a lower bound of the head, used to accept snapshot
//! requests without a round trip) and the oldest readable revision (a lower bound; reads are
//! guarded anyway). `head_revision()` always asks the database.
//!
//! # Runtime
//! The `Store` trait is synchronous and called from any thread (tokio's blocking pool, async
//! workers, plain threads). The store owns a small tokio runtime where the connections and
//! queries run; a call spawns its work there and waits on a channel, so it never nests one
//! runtime's `block_on` inside another.

mod cache;
mod error;
mod migrations;
mod sql;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use parking_lot::{Mutex, RwLock};
use tokio::runtime::Handle;
use tokio_postgres::NoTls;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use crate::model::{
    Relationship, RelationshipFilter, RelationshipKey, Revision, SubjectFilter,
    SubjectRelationFilter, Timestamp,
};
use crate::store::clock::{Clock, SystemClock};
use crate::store::txn::{self, TxnBackend, WriteSession};
use crate::store::{
    BulkImport, ChangeSet, DeleteByFilter, DeleteOutcome, RelationshipIter, RelationshipUpdate,
    ReversePage, SchemaCheck, Snapshot, SnapshotReader, Store, StoreError, StoredSchema, WriteOp,
    WriteTransaction,
};

pub use error::OpenError;
use error::{db_error, pool_error};
pub use migrations::{LATEST_VERSION, MigrationReport};
use sql::{Param, Statement};

/// `deleted_rev` of a current version.
const OPEN: i64 = i64::MAX;
/// Advisory lock keys ("tessera" plus a byte).
const WRITER_LOCK: i64 = 0x7465_7373_6572_6101;
const GC_LOCK: i64 = 0x7465_7373_6572_6102;
pub(crate) const MIGRATION_LOCK: i64 = 0x7465_7373_6572_6103;
/// The channel every commit notifies, with its revision as payload.
const NOTIFY_CHANNEL: &str = "tessera_commits";
/// Rows at or above which a write uses binary COPY instead of array parameters.
const COPY_THRESHOLD: usize = 512;
/// Page sizes of a streamed query: small first (existence checks), growing.
const FIRST_PAGE: usize = 64;
const MAX_PAGE: usize = 4096;
/// Revisions garbage-collected per GC transaction.
const GC_REVISIONS_PER_PASS: i64 = 10_000;

/// The newest committed revision, the newest schema revision and the oldest readable revision,
/// from one snapshot.
const HEAD_SQL: &str = "SELECT (SELECT COALESCE(max(revision), 0) FROM tessera_transactions), \
     (SELECT COALESCE(max(revision), 0) FROM tessera_schemas), \
     (SELECT oldest_revision FROM tessera_gc)";

/// Settings of a [`PostgresStore`].
#[derive(Clone)]
pub struct PostgresOptions {
    /// The primary's connection string (`postgres://user:password@host:port/database` or
    /// `host=… user=… dbname=…`).
    pub conn_uri: String,
    /// A streaming replica for reads that may lag (`minimize_latency`), used only for
    /// revisions it has already replayed.
    pub read_replica_conn_uri: Option<String>,
    /// Most connections for reads (snapshots, head queries).
    pub read_pool_size: usize,
    /// Most connections for writes (each holds one while it waits for the writer lock).
    pub write_pool_size: usize,
    /// How long history stays readable. Default 24 h.
    pub gc_window: Duration,
    /// When set, garbage is collected in the background at this interval (one node at a
    /// time does the work).
    pub gc_interval: Option<Duration>,
    /// How often the database is probed (health, newest revision).
    pub probe_interval: Duration,
    /// How long connecting may take before the database counts as unreachable.
    pub connect_timeout: Duration,
    /// Snapshot reads of evaluations kept per node, by revision (0 disables). Default 65,536.
    pub read_cache_entries: usize,
    pub clock: Arc<dyn Clock>,
}

impl PostgresOptions {
    pub fn new(conn_uri: impl Into<String>) -> Self {
        PostgresOptions {
            conn_uri: conn_uri.into(),
            read_replica_conn_uri: None,
            read_pool_size: 20,
            write_pool_size: 10,
            gc_window: Duration::from_secs(24 * 60 * 60),
            gc_interval: None,
            probe_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(3),
            read_cache_entries: 64 * 1024,
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the connection strings: they may carry passwords.
        f.debug_struct("PostgresOptions")
            .field("read_replica", &self.read_replica_conn_uri.is_some())
            .field("read_pool_size", &self.read_pool_size)
            .field("write_pool_size", &self.write_pool_size)
            .field("gc_window", &self.gc_window)
            .field("gc_interval", &self.gc_interval)
            .finish_non_exhaustive()
    }
}

/// What one garbage collection pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PgGcStats {
    /// The oldest readable revision after the pass.
    pub oldest_readable: Revision,
    /// Relationship versions (superseded, deleted, expired) removed.
    pub versions_removed: u64,
    /// Change-log entries (transactions) removed.
    pub change_sets_removed: u64,
    /// False when another node was collecting and this pass did nothing.
    pub ran: bool,
}

/// Parses a connection string and applies Tessera's connection settings.
fn pg_config(uri: &str, options: &PostgresOptions) -> Result<tokio_postgres::Config, OpenError> {
    let mut config: tokio_postgres::Config = uri
        .parse()
        .map_err(|e: tokio_postgres::Error| OpenError::InvalidUri(e.to_string()))?;
    config.connect_timeout(options.connect_timeout);
    config.keepalives_idle(Duration::from_secs(30));
    if config.get_application_name().is_none() {
        config.application_name("tessera");
    }
    Ok(config)
}

/// `host:port/database` for messages (never the user or password).
fn describe_target(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        config.get_dbname().unwrap_or("(default database)")
    )
}

fn pool(config: tokio_postgres::Config, size: usize, wait: Duration) -> Result<Pool, OpenError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(wait))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(2)))
        .build()
        .map_err(|e| OpenError::Store(StoreError::Backend(format!("connection pool: {e}"))))
}

/// Runs `fut` to completion on this thread, inside the store runtime's context (its timers,
/// and the connection tasks it talks to through channels, run on the store's runtime).
///
/// Polling on the caller's thread instead of spawning onto the runtime and waiting for the
/// result saves two thread hand-offs per statement, which were most of the node's CPU per
/// read. It is not `Runtime::block_on`, so it never panics inside another runtime; called
/// from an async worker, it blocks that worker like any synchronous I/O would.
fn run<R>(handle: &Handle, fut: impl Future<Output = R>) -> Result<R, StoreError> {
    let _context = handle.enter();
    // Outside tokio's cooperative budget: called from an async task (whose budget only
    // resets when that task yields, which it cannot while blocked here), a budgeted
    // resource would answer "pending, poll me again" forever.
    Ok(block_on(tokio::task::unconstrained(fut)))
}

/// Wakes the thread that is blocked in [`block_on`].
struct ThreadWaker(std::thread::Thread);

impl std::task::Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The smallest executor: poll, park until woken, poll again.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = std::task::Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Schema texts by the revision that wrote them, complete through `known_through`.
#[derive(Default)]
struct SchemaCache {
    texts: BTreeMap<Revision, Arc<str>>,
    known_through: Revision,
}

impl SchemaCache {
    fn newest(&self) -> Revision {
        self.texts
            .keys()
            .next_back()
            .copied()
            .unwrap_or(Revision::ZERO)
    }

    fn at(&self, revision: Revision) -> Option<StoredSchema> {
        self.texts
            .range(..=revision)
            .next_back()
            .map(|(r, text)| StoredSchema {
                text: Arc::clone(text),
                written_at: *r,
            })
    }
}

/// What the store, its snapshots, sessions and background tasks share.
struct Shared {
    handle: Handle,
    read: Pool,
    write: Pool,
    replica: Option<Pool>,
    /// One connection of its own for the health probe, so a busy read pool is never
    /// mistaken for an unreachable database.
    probe: Pool,
    target: String,
    replica_target: Option<String>,
    /// The newest revision known to be committed (a lower bound of the head).
    head: AtomicU64,
    /// A lower bound of the oldest readable revision.
    oldest: AtomicU64,
    /// The newest revision the replica is known to have.
    replica_head: AtomicU64,
    schemas: Mutex<SchemaCache>,
    /// Reads of evaluations, by revision (see `cache`).
    reads: cache::ReadCache,
    commits: tokio::sync::watch::Sender<Revision>,
    /// Set when the store is dropped (its runtime stops): later calls fail cleanly.
    closed: std::sync::atomic::AtomicBool,
    /// Why the last probe failed (`None` while the database answers).
    unavailable: RwLock<Option<String>>,
    clock: Arc<dyn Clock>,
    gc_window: Duration,
}

impl Shared {
    fn run<T>(&self, fut: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the PostgreSQL store has been closed".into(),
            ));
        }
        run(&self.handle, fut)?
    }

    fn head(&self) -> Revision {
        Revision(self.head.load(Ordering::SeqCst))
    }

    fn oldest(&self) -> Revision {
        Revision(self.oldest.load(Ordering::SeqCst))
    }

    /// Records that `revision` is committed and wakes change feeds.
    fn note_head(&self, revision: Revision) {
        let before = self.head.fetch_max(revision.0, Ordering::SeqCst);
        if revision.0 > before {
            self.commits.send_if_modified(|newest| {
                if revision > *newest {
                    *newest = revision;
                    true
                } else {
                    false
                }
            });
        }
    }

    /// Applies a head query's answer to the caches.
    fn note_state(&self, head: Revision, newest_schema: Revision, oldest: Revision) {
        self.oldest.fetch_max(oldest.0, Ordering::SeqCst);
        {
            let mut schemas = self.schemas.lock();
            // The schema history is complete through `head` when no schema newer than the
            // cached ones exists (both facts from one snapshot).
            if newest_schema <= schemas.newest() && head > schemas.known_through {
                schemas.known_through = head;
            }
        }
        self.note_head(head);
    }

    /// Reads the database's head (and refreshes what depends on it).
    fn query_head(self: &Arc<Self>) -> Result<Revision, StoreError> {
        let pool = self.read.clone();
        let target = self.target.clone();
        let (head, newest_schema, oldest) = self.run(async move {
            let conn = pool
                .get()
                .await
                .map_err(|e| pool_error("reading the head revision", e, &target))?;
            read_state(&conn).await
        })?;
        self.note_state(head, newest_schema, oldest);
        if newest_schema > self.schemas.lock().newest() {
            self.refresh_schemas()?;
        }
        Ok(head)
    }

    /// Loads schema versions newer than the cached ones.
    fn refresh_schemas(self: &Arc<Self>) -> Result<(), StoreError> {
        let pool = self.read.clone();
        let target = self.target.clone();
        let after = sql::rev(self.schemas.lock().known_through);
        let (head, texts) = self.run(async move {
            let conn = pool
                .get()
                .await
                .map_err(|e| pool_error("reading the schema history", e, &target))?;
            read_schemas(&conn, after).await
        })?;
        self.merge_schemas(head, texts);
        Ok(())
    }

    fn merge_schemas(&self, head: Revision, texts: Vec<(Revision, Arc<str>)>) {
        let mut schemas = self.schemas.lock();
        schemas.texts.extend(texts);
        if head > schemas.known_through {
            schemas.known_through = head;
        }
    }

    /// The schema in force at `revision` (which must be committed).
    fn schema_at(self: &Arc<Self>, revision: Revision) -> Result<Option<StoredSchema>, StoreError> {
        {
            let schemas = self.schemas.lock();
            if schemas.known_through >= revision {
                return Ok(schemas.at(revision));
            }
        }
        self.refresh_schemas()?;
        Ok(self.schemas.lock().at(revision))
    }

    /// Accepts `revision` for a snapshot: committed (asking the database when it is newer
    /// than any revision this node has seen) and not garbage-collected.
    fn check_readable(self: &Arc<Self>, revision: Revision) -> Result<(), StoreError> {
        if revision > self.head() {
            let head = self.query_head()?;
            if revision > head {
                return Err(StoreError::RevisionInFuture {
                    requested: revision,
                    head,
                });
            }
        }
        let oldest = self.oldest();
        if revision < oldest {
            return Err(StoreError::RevisionTooOld {
                requested: revision,
                oldest,
            });
        }
        Ok(())
    }

    fn snapshot(
        self: &Arc<Self>,
        revision: Revision,
        source: Source,
    ) -> Result<PgSnapshot, StoreError> {
        let schema = self.schema_at(revision)?;
        Ok(PgSnapshot {
            shared: Arc::clone(self),
            source,
            revision,
            now: self.clock.now(),
            schema,
        })
    }
}

/// Head, newest schema revision and oldest readable revision, from one snapshot.
async fn read_state(client: &Object) -> Result<(Revision, Revision, Revision), StoreError> {
    let context = "reading the head revision";
    let stmt = client
        .prepare_cached(HEAD_SQL)
        .await
        .map_err(|e| db_error(context, e))?;
    let row = client
        .query_one(&stmt, &[])
        .await
        .map_err(|e| db_error(context, e))?;
    let get = |i: usize, what: &str| -> Result<Revision, StoreError> {
        let v: i64 = row
            .try_get(i)
            .map_err(|e| StoreError::Corrupt(format!("{context}: {e}")))?;
        sql::revision_of(v, what)
    };
    Ok((
        get(0, "the head revision")?,
        get(1, "a schema revision")?,
        get(2, "the oldest readable revision")?,
    ))
}

/// Schema versions written after `after`, and the head they are complete through.
async fn read_schemas(
    client: &Object,
    after: i64,
) -> Result<(Revision, Vec<(Revision, Arc<str>)>), StoreError> {
    let context = "reading the schema history";
    let stmt = client
        .prepare_cached(
            "SELECT (SELECT COALESCE(max(revision), 0) FROM tessera_transactions), \
             s.revision, s.text FROM (SELECT 1) AS one \
             LEFT JOIN tessera_schemas s ON s.revision > $1 ORDER BY s.revision",
        )
        .await
        .map_err(|e| db_error(context, e))?;
    let rows = client
        .query(&stmt, &[&after])
        .await
        .map_err(|e| db_error(context, e))?;
    let mut head = Revision::ZERO;
    let mut texts = Vec::new();
    for row in rows {
        let corrupt = |e: tokio_postgres::Error| StoreError::Corrupt(format!("{context}: {e}"));
        head = sql::revision_of(row.try_get(0).map_err(corrupt)?, "the head revision")?;
        let revision: Option<i64> = row.try_get(1).map_err(corrupt)?;
        let text: Option<String> = row.try_get(2).map_err(corrupt)?;
        if let (Some(r), Some(t)) = (revision, text) {
            texts.push((sql::revision_of(r, "a schema revision")?, Arc::from(t)));
        }
    }
    Ok((head, texts))
}

/// The PostgreSQL-backed [`Store`]. Many processes may open the same database.
pub struct PostgresStore {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.shared.target)
            .field("head", &self.shared.head())
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // May run inside another runtime (the server's): never block here.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs `work` on a fresh single-threaded runtime on its own thread (callers may be inside
/// another runtime, where blocking on one is not allowed).
fn one_shot<T: Send + 'static>(
    work: impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<T, OpenError>> + Send>>
    + Send
    + 'static,
) -> Result<T, OpenError> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OpenError::Store(StoreError::Backend(format!("async runtime: {e}"))))?;
        rt.block_on(work())
    })
    .join()
    .unwrap_or_else(|_| {
        Err(OpenError::Store(StoreError::Backend(
            "the migration thread panicked".into(),
        )))
    })
}

async fn connect_once(
    config: tokio_postgres::Config,
    target: String,
) -> Result<tokio_postgres::Client, OpenError> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        OpenError::Store(match db_error("connecting", e) {
            StoreError::Unavailable(m) => {
                StoreError::Unavailable(format!("{m} [PostgreSQL at {target}]"))
            }
            other => other,
        })
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Brings the database at `conn_uri` to this build's layout (idempotent).
pub fn migrate(conn_uri: &str) -> Result<MigrationReport, OpenError> {
    let config = pg_config(conn_uri, &PostgresOptions::new(conn_uri))?;
    let target = describe_target(&config);
    one_shot(move || {
        Box::pin(async move {
            let mut client = connect_once(config, target).await?;
            migrations::migrate(&mut client).await
        })
    })
}

/// The version of the database at `conn_uri` (`None`: never migrated).
pub fn database_version(conn_uri: &str) -> Result<Option<i32>, OpenError> {
    let config = pg_config(conn_uri, &PostgresOptions::new(conn_uri))?;
    let target = describe_target(&config);
    one_shot(move || {
        Box::pin(async move {
            let client = connect_once(config, target).await?;
            migrations::current_version(&client).await
        })
    })
}

impl PostgresStore {
    /// Connects to the database (which must be migrated to [`LATEST_VERSION`]), loads the
    /// head, the oldest readable revision and the schema history, and starts the background
    /// tasks (health probe, commit notifications, GC when configured).
    pub fn open(options: PostgresOptions) -> Result<PostgresStore, OpenError> {
        let primary = pg_config(&options.conn_uri, &options)?;
        let replica = options
            .read_replica_conn_uri
            .as_deref()
            .map(|uri| pg_config(uri, &options))
            .transpose()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("tessera-pg")
            .build()
            .map_err(|e| OpenError::Store(StoreError::Backend(format!("async runtime: {e}"))))?;
        let target = describe_target(&primary);
        let mut write_config = primary.clone();
        // A writer holds the cluster-wide writer lock: if its node hangs mid-transaction,
        // the database ends the transaction (and frees the lock) instead of stalling every
        // node's writes.
        let mut session_options = write_config.get_options().unwrap_or("").to_string();
        session_options.push_str(" -c idle_in_transaction_session_timeout=60000");
        write_config.options(session_options.trim().to_string());
        let _guard = runtime.enter();
        let read = pool(
            primary.clone(),
            options.read_pool_size,
            Duration::from_secs(10),
        )?;
        let probe_pool = pool(primary.clone(), 1, Duration::from_secs(2))?;
        let write = pool(
            write_config,
            options.write_pool_size,
            Duration::from_secs(60),
        )?;
        let replica_target = replica.as_ref().map(describe_target);
        let replica = replica
            .map(|c| pool(c, options.read_pool_size, Duration::from_secs(2)))
            .transpose()?;
        let handle = runtime.handle().clone();
        let shared = Arc::new(Shared {
            handle: handle.clone(),
            read,
            write,
            replica,
            probe: probe_pool,
            target: target.clone(),
            replica_target,
            head: AtomicU64::new(0),
            oldest: AtomicU64::new(0),
            replica_head: AtomicU64::new(0),
            schemas: Mutex::new(SchemaCache::default()),
            reads: cache::ReadCache::new(options.read_cache_entries),
            commits: tokio::sync::watch::channel(Revision::ZERO).0,
            closed: std::sync::atomic::AtomicBool::new(false),
            unavailable: RwLock::new(None),
            clock: options.clock.clone(),
            gc_window: options.gc_window,
        });

        let pool = shared.read.clone();
        let (state, schemas) = run(&handle, async move {
            let conn = pool
                .get()
                .await
                .map_err(|e| OpenError::Store(pool_error("connecting", e, &target)))?;
            migrations::require_latest(&conn).await?;
            let state = read_state(&conn).await?;
            let schemas = read_schemas(&conn, 0).await?;
            Ok::<_, OpenError>((state, schemas))
        })??;
        let (head, _, oldest) = state;
        shared.oldest.store(oldest.0, Ordering::SeqCst);
        shared.merge_schemas(schemas.0, schemas.1);
        shared.note_head(head.max(schemas.0));

        let weak = Arc::downgrade(&shared);
        handle.spawn(probe(weak.clone(), options.probe_interval));
        handle.spawn(listen(weak.clone(), primary));
        if let Some(interval) = options.gc_interval {
            handle.spawn(collect_periodically(weak, interval));
        }
        drop(_guard);
        Ok(PostgresStore {
            shared,
            runtime: Some(runtime),
        })
    }

    /// `host:port/database` of the primary (no credentials).
    pub fn target(&self) -> &str {
        &self.shared.target
    }

    /// Runs one garbage collection pass now (unless another node is running one).
    pub fn collect_garbage(&self) -> Result<PgGcStats, StoreError> {
        let pool = self.shared.write.clone();
        let target = self.shared.target.clone();
        let now = self.shared.clock.now();
        let window = self.shared.gc_window;
        let stats = self
            .shared
            .run(async move { collect_garbage(pool, target, now, window).await })?;
        self.shared
            .oldest
            .fetch_max(stats.oldest_readable.0, Ordering::SeqCst);
        Ok(stats)
    }
}

/// Probes the database: health, and the newest revision (a fallback for lost notifications).
async fn probe(shared: Weak<Shared>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(s) = shared.upgrade() else { return };
        let pool = s.probe.clone();
        let target = s.target.clone();
        let outcome = tokio::time::timeout(interval.max(Duration::from_secs(2)), async move {
            let conn = pool
                .get()
                .await
                .map_err(|e| pool_error("probing", e, &target))?;
            read_state(&conn).await
        })
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "probing: PostgreSQL at {} did not answer in time",
                s.target
            )))
        });
        match outcome {
            Ok((head, newest_schema, oldest)) => {
                if s.unavailable.write().take().is_some() {
                    tracing::info!(target = %s.target, "PostgreSQL is reachable again");
                }
                s.note_state(head, newest_schema, oldest);
            }
            Err(e) => {
                let message = e.to_string();
                let mut slot = s.unavailable.write();
                if slot.is_none() {
                    tracing::warn!(target = %s.target, error = %message, "PostgreSQL is unreachable");
                }
                *slot = Some(message);
            }
        }
    }
}

/// Follows the commit notifications of every node (reconnecting as needed), so change feeds
/// wake at once and snapshot requests for fresh revisions need no extra round trip.
async fn listen(shared: Weak<Shared>, config: tokio_postgres::Config) {
    use futures_util::StreamExt;
    loop {
        if shared.strong_count() == 0 {
            return;
        }
        if let Ok((client, mut connection)) = config.connect(NoTls).await {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(Ok(message)) = messages.next().await {
                    if let tokio_postgres::AsyncMessage::Notification(n) = message
                        && tx.send(n.payload().to_string()).is_err()
                    {
                        return;
                    }
                }
            });
            if client
                .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
                .await
                .is_ok()
            {
                while let Some(payload) = rx.recv().await {
                    let Some(s) = shared.upgrade() else {
                        driver.abort();
                        return;
                    };
                    if let Ok(r) = payload.parse::<u64>() {
                        s.note_head(Revision(r));
                    }
                }
            }
            driver.abort();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn collect_periodically(shared: Weak<Shared>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let Some(s) = shared.upgrade() else { return };
        let (pool, target, now, window) = (
            s.write.clone(),
            s.target.clone(),
            s.clock.now(),
            s.gc_window,
        );
        match collect_garbage(pool, target, now, window).await {
            Ok(stats) => {
                s.oldest
                    .fetch_max(stats.oldest_readable.0, Ordering::SeqCst);
            }
            // Retried at the next interval; reads stay correct meanwhile.
            Err(e) => tracing::warn!(error = %e, "garbage collection failed"),
        }
    }
}

/// One GC pass; see the module documentation of `sql` for why readers stay exact.
async fn collect_garbage(
    pool: Pool,
    target: String,
    now: Timestamp,
    window: Duration,
) -> Result<PgGcStats, StoreError> {
    let context = "collecting garbage";
    let e = |e| db_error(context, e);
    let cutoff = chrono::Duration::from_std(window)
        .ok()
        .and_then(|w| now.checked_sub_signed(w))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let mut conn = pool
        .get()
        .await
        .map_err(|err| pool_error(context, err, &target))?;
    let mut stats = PgGcStats::default();
    loop {
        let txn = conn.transaction().await.map_err(e)?;
        let locked: bool = txn
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&GC_LOCK])
            .await
            .map_err(e)?
            .get(0);
        if !locked {
            return Ok(stats);
        }
        stats.ran = true;
        let old: i64 = txn
            .query_one("SELECT oldest_revision FROM tessera_gc FOR UPDATE", &[])
            .await
            .map_err(e)?
            .get(0);
        // Commit times never decrease with revisions, so what falls out of the window is a
        // prefix of the log.
        let edge: Option<i64> = txn
            .query_one(
                "SELECT max(revision) FROM tessera_transactions \
                 WHERE revision > $1 AND revision <= $2 AND committed_at <= $3",
                &[&old, &(old.saturating_add(GC_REVISIONS_PER_PASS)), &cutoff],
            )
            .await
            .map_err(e)?
            .get(0);
        let mut more = false;
        let mut oldest = old;
        if let Some(edge) = edge {
            oldest = edge;
            more = edge == old.saturating_add(GC_REVISIONS_PER_PASS);
            // Raise the bar in the same transaction as the deletions (readers are guarded).
            txn.execute("UPDATE tessera_gc SET oldest_revision = $1", &[&edge])
                .await
                .map_err(e)?;
            let removed = txn
                .execute(
                    "DELETE FROM tessera_relationships r USING \
                     (SELECT DISTINCT resource_type, resource_id, relation, subject_type, \
                             subject_id, subject_relation \
                      FROM tessera_changes WHERE revision > $1 AND revision <= $2) c \
                     WHERE r.resource_type = c.resource_type AND r.resource_id = c.resource_id \
                       AND r.relation = c.relation AND r.subject_type = c.subject_type \
                       AND r.subject_id = c.subject_id AND r.subject_relation = c.subject_relation \
                       AND r.deleted_rev <= $2",
                    &[&old, &edge],
                )
                .await
                .map_err(e)?;
            stats.versions_removed += removed;
            txn.execute("DELETE FROM tessera_changes WHERE revision <= $1", &[&edge])
                .await
                .map_err(e)?;
            let sets = txn
                .execute(
                    "DELETE FROM tessera_transactions WHERE revision < $1",
                    &[&edge],
                )
                .await
                .map_err(e)?;
            stats.change_sets_removed += sets;
            txn.execute(
                "DELETE FROM tessera_schemas WHERE revision < \
                 (SELECT max(revision) FROM tessera_schemas WHERE revision <= $1)",
                &[&edge],
            )
            .await
            .map_err(e)?;
        }
        // Current versions that expired before the window, and whose older versions were
        // all superseded at or before the oldest readable revision (so collected already).
        let expired = txn
            .execute(
                "DELETE FROM tessera_relationships WHERE expires_at IS NOT NULL \
                 AND expires_at <= $1 AND deleted_rev = $2 AND created_rev <= $3",
                &[&cutoff, &OPEN, &oldest],
            )
            .await
            .map_err(e)?;
        stats.versions_removed += expired;
        txn.commit().await.map_err(e)?;
        stats.oldest_readable = sql::revision_of(oldest, "the oldest readable revision")?;
        if !more {
            return Ok(stats);
        }
    }
}

/// Where a snapshot's statements run.
#[derive(Clone)]
enum Source {
    /// A connection from this pool per read (or per reader).
    Pool(Pool, Arc<str>),
    /// The connection of an open write transaction (the write's view of the latest state).
    Txn(Arc<Object>),
}

impl Source {
    async fn client(&self, context: &str) -> Result<Arc<Object>, StoreError> {
        match self {
            Source::Pool(pool, target) => pool
                .get()
                .await
                .map(Arc::new)
                .map_err(|e| pool_error(context, e, target)),
            Source::Txn(conn) => Ok(Arc::clone(conn)),
        }
    }
}

async fn fetch(
    conn: Arc<Object>,
    sql: String,
    params: Vec<Param>,
    revision: Revision,
) -> Result<Vec<Relationship>, StoreError> {
    let context = "reading relationships";
    let stmt = conn
        .prepare_cached(&sql)
        .await
        .map_err(|e| db_error(context, e))?;
    let rows = conn
        .query(&stmt, &sql::refs(&params))
        .await
        .map_err(|e| db_error(context, e))?;
    sql::guarded_rows(&rows, revision)
}

/// What a streamed query reads: which rows and in which order (the order pages resume in).
#[derive(Clone)]
enum Plan {
    Forward(RelationshipFilter),
    Reverse {
        subject: SubjectFilter,
        resource_type: Option<String>,
        relation: Option<String>,
    },
}

impl Plan {
    fn statement(&self, after: Option<&RelationshipKey>) -> (Statement, sql::Order) {
        let mut st = Statement::default();
        match self {
            Plan::Forward(f) => {
                st.filter(f);
                if let Some(a) = after {
                    st.after(a);
                }
                (st, sql::Order::Forward)
            }
            Plan::Reverse {
                subject,
                resource_type,
                relation,
            } => {
                st.subject(subject);
                if let Some(t) = resource_type {
                    st.equals("resource_type", t);
                }
                if let Some(r) = relation {
                    st.equals("relation", r);
                }
                if let Some(a) = after {
                    st.after_reverse(a);
                }
                (st, sql::Order::Reverse)
            }
        }
    }
}

/// A read view at one revision.
pub(crate) struct PgSnapshot {
    shared: Arc<Shared>,
    source: Source,
    revision: Revision,
    now: Timestamp,
    schema: Option<StoredSchema>,
}

impl PgSnapshot {
    fn page(
        &self,
        plan: &Plan,
        after: Option<&RelationshipKey>,
        limit: Option<usize>,
    ) -> Result<Vec<Relationship>, StoreError> {
        let (st, order) = plan.statement(after);
        let (sql, params) = st.guarded_select(self.revision, self.now, order, limit);
        let source = self.source.clone();
        let revision = self.revision;
        self.shared.run(async move {
            let conn = source.client("reading relationships").await?;
            fetch(conn, sql, params, revision).await
        })
    }

    fn stream(
        &self,
        plan: Plan,
        after: Option<&RelationshipKey>,
    ) -> Result<RelationshipIter<'_>, StoreError> {
        let first = self.page(&plan, after, Some(FIRST_PAGE))?;
        Ok(Box::new(Pages {
            snapshot: self,
            plan,
            done: first.len() < FIRST_PAGE,
            last: first.last().map(Relationship::key),
            buffer: first.into_iter(),
            page: FIRST_PAGE,
        }))
    }
}

/// A query read page by page, each page resuming strictly after the last row of the one before.
struct Pages<'a> {
    snapshot: &'a PgSnapshot,
    plan: Plan,
    buffer: std::vec::IntoIter<Relationship>,
    last: Option<RelationshipKey>,
    page: usize,
    done: bool,
}

impl Iterator for Pages<'_> {
    type Item = Result<Relationship, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.buffer.next() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            self.page = (self.page * 8).min(MAX_PAGE);
            match self
                .snapshot
                .page(&self.plan, self.last.as_ref(), Some(self.page))
            {
                Ok(rows) => {
                    self.done = rows.len() < self.page;
                    self.last = rows.last().map(Relationship::key);
                    self.buffer = rows.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Snapshot for PgSnapshot {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn now(&self) -> Timestamp {
        self.now
    }

    fn query(
        &self,
        filter: &RelationshipFilter,
        after: Option<&RelationshipKey>,
    ) -> Result<RelationshipIter<'_>, StoreError> {
        self.stream(Plan::Forward(filter.clone()), after)
    }

    fn reverse_query(
        &self,
        subject: &SubjectFilter,
        resource_type: Option<&str>,
        relation: Option<&str>,
    ) -> Result<RelationshipIter<'_>, StoreError> {
        self.stream(
            Plan::Reverse {
                subject: subject.clone(),
                resource_type: resource_type.map(str::to_string),
                relation: relation.map(str::to_string),
            },
            None,
        )
    }

    fn schema(&self) -> Result<Option<StoredSchema>, StoreError> {
        Ok(self.schema.clone())
    }

    fn reader(&self) -> Box<dyn SnapshotReader + '_> {
        Box::new(PgReader {
            snapshot: self,
            conn: None,
        })
    }
}

/// Reads of one evaluation over one connection (its prepared statements stay warm).
struct PgReader<'a> {
    snapshot: &'a PgSnapshot,
    conn: Option<Arc<Object>>,
}

impl SnapshotReader for PgReader<'_> {
    fn reverse(
        &mut self,
        subject: &SubjectFilter,
        resource_type: &str,
        relation: &str,
        page: Option<ReversePage<'_>>,
    ) -> Result<Vec<Relationship>, StoreError> {
        let plan = Plan::Reverse {
            subject: subject.clone(),
            resource_type: Some(resource_type.to_string()),
            relation: Some(relation.to_string()),
        };
        let exact = subject.subject_id.is_some() && subject.relation != SubjectRelationFilter::Any;
        match page {
            // One subject: rows after `after` in id order, one page of them.
            Some(p) if exact => {
                let after = p.after.map(|id| RelationshipKey {
                    resource: crate::model::ObjectRef::new(resource_type, id),
                    relation: relation.to_string(),
                    subject: crate::model::SubjectRef {
                        object: crate::model::ObjectRef::new(
                            subject.subject_type.clone(),
                            subject.subject_id.clone().unwrap_or_default(),
                        ),
                        relation: match &subject.relation {
                            SubjectRelationFilter::Relation(r) => Some(r.clone()),
                            _ => None,
                        },
                    },
                });
                self.snapshot.page(&plan, after.as_ref(), Some(p.limit))
            }
            Some(p) => p.apply(self.snapshot.stream(plan, None)?),
            None => self.snapshot.stream(plan, None)?.collect(),
        }
    }

    fn read(&mut self, filter: &RelationshipFilter) -> Result<Vec<Relationship>, StoreError> {
        let snapshot = self.snapshot;
        let now = snapshot.now;
        let unexpired = |rows: &[Relationship]| -> Vec<Relationship> {
            rows.iter()
                .filter(|r| !r.is_expired_at(now))
                .cloned()
                .collect()
        };
        // Only reads of committed revisions through the pools are shared (a write's own view
        // stays private to it).
        let cached = matches!(snapshot.source, Source::Pool(..));
        let key = if cached {
            match snapshot
                .shared
                .reads
                .get(snapshot.revision, cache::filter_key(filter))
            {
                Ok(rows) => return Ok(unexpired(&rows)),
                Err(key) => Some(key),
            }
        } else {
            None
        };
        let mut st = Statement::default();
        st.filter(filter);
        // Cached rows must not depend on the reader's `now`: expiry is applied here instead.
        let (sql, params) = st.guarded_select_any_expiry(snapshot.revision, sql::Order::Forward);
        let revision = snapshot.revision;
        let held = self.conn.clone();
        let source = snapshot.source.clone();
        let (conn, rows) = snapshot.shared.run(async move {
            let conn = match held {
                Some(c) => c,
                None => source.client("reading relationships").await?,
            };
            let rows = fetch(Arc::clone(&conn), sql, params, revision).await?;
            Ok((conn, rows))
        })?;
        self.conn = Some(conn);
        let live = unexpired(&rows);
        if let Some(key) = key {
            snapshot.shared.reads.put(key, Arc::from(rows));
        }
        Ok(live)
    }
}

impl Store for PostgresStore {
    fn head_revision(&self) -> Result<Revision, StoreError> {
        self.shared.query_head()
    }

    fn oldest_readable_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.oldest())
    }

    fn snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError> {
        self.shared.check_readable(revision)?;
        let source = Source::Pool(
            self.shared.read.clone(),
            Arc::from(self.shared.target.as_str()),
        );
        Ok(Arc::new(self.shared.snapshot(revision, source)?))
    }

    fn replica_snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError> {
        let s = &self.shared;
        let (Some(replica), Some(target)) = (&s.replica, &s.replica_target) else {
            return self.snapshot(revision);
        };
        s.check_readable(revision)?;
        let mut has = revision.0 <= s.replica_head.load(Ordering::SeqCst);
        if !has {
            let pool = replica.clone();
            let t = target.clone();
            match s.run(async move {
                let conn = pool
                    .get()
                    .await
                    .map_err(|e| pool_error("reading the replica's head", e, &t))?;
                read_state(&conn).await
            }) {
                Ok((head, _, _)) => {
                    s.replica_head.fetch_max(head.0, Ordering::SeqCst);
                    has = revision <= head;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "read replica unavailable; reading from the primary");
                }
            }
        }
        let source = if has {
            Source::Pool(replica.clone(), Arc::from(target.as_str()))
        } else {
            Source::Pool(s.read.clone(), Arc::from(s.target.as_str()))
        };
        Ok(Arc::new(s.snapshot(revision, source)?))
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
        let pool = self.shared.read.clone();
        let target = self.shared.target.clone();
        let sets = self
            .shared
            .run(async move { read_changes(pool, target, after, limit).await })?;
        if let Some(last) = sets.last() {
            self.shared.note_head(last.revision);
        }
        Ok(sets)
    }

    fn commit_signal(&self) -> Option<tokio::sync::watch::Receiver<Revision>> {
        Some(self.shared.commits.subscribe())
    }

    fn availability(&self) -> Result<(), StoreError> {
        match &*self.shared.unavailable.read() {
            None => Ok(()),
            Some(m) => Err(StoreError::Unavailable(m.clone())),
        }
    }
}

/// Change sets after `after` from one consistent snapshot of the log.
async fn read_changes(
    pool: Pool,
    target: String,
    after: Revision,
    limit: usize,
) -> Result<Vec<ChangeSet>, StoreError> {
    let context = "reading the change log";
    let e = |e| db_error(context, e);
    let mut conn = pool
        .get()
        .await
        .map_err(|err| pool_error(context, err, &target))?;
    let txn = conn
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(e)?;
    let state = txn.query_one(HEAD_SQL, &[]).await.map_err(e)?;
    let head = sql::revision_of(state.get(0), "the head revision")?;
    let oldest = sql::revision_of(state.get(2), "the oldest readable revision")?;
    if after > head {
        return Err(StoreError::RevisionInFuture {
            requested: after,
            head,
        });
    }
    if after < oldest {
        return Err(StoreError::RevisionTooOld {
            requested: after,
            oldest,
        });
    }
    if limit == 0 || after == head {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = txn
        .query(
            "SELECT revision, committed_at, caller, metadata, schema_changed \
             FROM tessera_transactions WHERE revision > $1 ORDER BY revision LIMIT $2",
            &[&sql::rev(after), &limit],
        )
        .await
        .map_err(e)?;
    let mut sets = Vec::with_capacity(rows.len());
    for row in &rows {
        let metadata: Option<String> = row.get(3);
        sets.push(ChangeSet {
            revision: sql::revision_of(row.get(0), "a change-log revision")?,
            committed_at: row.get(1),
            caller: row.get(2),
            changes: Vec::new(),
            schema_changed: row.get(4),
            metadata: sql::json_object(metadata.as_deref(), "transaction metadata")?,
        });
    }
    let Some(last) = sets.last().map(|s| s.revision) else {
        return Ok(sets);
    };
    let changes = txn
        .query(
            &format!(
                "SELECT revision, op, {} FROM tessera_changes \
                 WHERE revision > $1 AND revision <= $2 ORDER BY revision, seq",
                sql::COLUMNS
            ),
            &[&sql::rev(after), &sql::rev(last)],
        )
        .await
        .map_err(e)?;
    txn.commit().await.map_err(e)?;
    let mut at = 0;
    for row in &changes {
        let revision = sql::revision_of(row.get(0), "a change-log revision")?;
        while at < sets.len() && sets[at].revision < revision {
            at += 1;
        }
        let Some(set) = sets.get_mut(at).filter(|s| s.revision == revision) else {
            return Err(StoreError::Corrupt(format!(
                "change at revision {revision} has no transaction"
            )));
        };
        let op: i16 = row.get(1);
        set.changes.push(RelationshipUpdate {
            op: op_of(op)?,
            relationship: sql::relationship(row, 2)?,
        });
    }
    Ok(sets)
}

fn op_code(op: WriteOp) -> i16 {
    match op {
        WriteOp::Create => 1,
        WriteOp::Touch => 2,
        WriteOp::Delete => 3,
    }
}

fn op_of(code: i16) -> Result<WriteOp, StoreError> {
    match code {
        1 => Ok(WriteOp::Create),
        2 => Ok(WriteOp::Touch),
        3 => Ok(WriteOp::Delete),
        other => Err(StoreError::Corrupt(format!(
            "unknown change operation {other}"
        ))),
    }
}

/// Column arrays of relationships, for `unnest` parameters.
#[derive(Default)]
struct Columns {
    resource_type: Vec<String>,
    resource_id: Vec<String>,
    relation: Vec<String>,
    subject_type: Vec<String>,
    subject_id: Vec<String>,
    subject_relation: Vec<String>,
    caveat_name: Vec<Option<String>>,
    caveat_context: Vec<Option<String>>,
    expires_at: Vec<Option<Timestamp>>,
}

impl Columns {
    fn push_key(&mut self, r: &Relationship) {
        self.resource_type.push(r.resource.object_type.clone());
        self.resource_id.push(r.resource.object_id.clone());
        self.relation.push(r.relation.clone());
        self.subject_type.push(r.subject.object.object_type.clone());
        self.subject_id.push(r.subject.object.object_id.clone());
        self.subject_relation
            .push(sql::subject_relation(&r.subject).to_string());
    }

    fn push(&mut self, r: &Relationship) {
        self.push_key(r);
        self.caveat_name
            .push(r.caveat.as_ref().map(|c| c.name.clone()));
        self.caveat_context
            .push(r.caveat.as_ref().and_then(|c| sql::json_text(&c.context)));
        self.expires_at.push(r.expiration);
    }

    fn key_params(self) -> Vec<Param> {
        vec![
            Box::new(self.resource_type),
            Box::new(self.resource_id),
            Box::new(self.relation),
            Box::new(self.subject_type),
            Box::new(self.subject_id),
            Box::new(self.subject_relation),
        ]
    }

    fn all_params(self) -> Vec<Param> {
        vec![
            Box::new(self.resource_type),
            Box::new(self.resource_id),
            Box::new(self.relation),
            Box::new(self.subject_type),
            Box::new(self.subject_id),
            Box::new(self.subject_relation),
            Box::new(self.caveat_name),
            Box::new(self.caveat_context),
            Box::new(self.expires_at),
        ]
    }
}

/// `unnest` of the six key arrays `$1..$6` as `k(rt, ri, rel, st, si, sr)`.
const UNNEST_KEYS: &str =
    "unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])";
/// Joins `r` (relationships) to `k` (unnested keys) on identity, in the index's collation.
const KEY_JOIN: &str = "r.resource_type = k.rt COLLATE \"C\" AND r.resource_id = k.ri COLLATE \"C\" \
     AND r.relation = k.rel COLLATE \"C\" AND r.subject_type = k.st COLLATE \"C\" \
     AND r.subject_id = k.si COLLATE \"C\" AND r.subject_relation = k.sr COLLATE \"C\"";

/// An open write: a transaction holding the cluster-wide writer lock.
pub struct PgWrite<'a> {
    shared: &'a Arc<Shared>,
    conn: Option<Arc<Object>>,
    head: Revision,
    last_commit: Option<Timestamp>,
    /// Keys found with a current version (live or expired) by `live`.
    open: HashSet<RelationshipKey>,
}

impl Drop for PgWrite<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // Not committed: end the transaction (freeing the writer lock) before the
            // connection goes back to the pool; a connection that cannot is discarded.
            self.shared.handle.spawn(abandon(conn));
        }
    }
}

async fn abandon(conn: Arc<Object>) {
    if conn.batch_execute("ROLLBACK").await.is_err()
        && let Ok(object) = Arc::try_unwrap(conn)
    {
        drop(Object::take(object));
    }
}

impl TxnBackend for PostgresStore {
    type Session<'a> = PgWrite<'a>;

    fn begin_write(&self) -> Result<PgWrite<'_>, StoreError> {
        let shared = &self.shared;
        let pool = shared.write.clone();
        let target = shared.target.clone();
        let (conn, head, last_commit) = shared.run(async move {
            let context = "starting a write";
            let conn = Arc::new(
                pool.get()
                    .await
                    .map_err(|e| pool_error(context, e, &target))?,
            );
            let started = async {
                let lock = conn
                    .prepare_cached("SELECT pg_advisory_xact_lock($1)")
                    .await?;
                let head = conn
                    .prepare_cached(
                        "SELECT revision, committed_at FROM tessera_transactions \
                         ORDER BY revision DESC LIMIT 1",
                    )
                    .await?;
                // Pipelined, and executed in order: the head is read on a snapshot taken
                // after the lock was granted, so it includes every earlier commit.
                let (_, _, row) = tokio::try_join!(
                    conn.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED"),
                    conn.execute(&lock, &[&WRITER_LOCK]),
                    conn.query_opt(&head, &[]),
                )?;
                Ok::<_, tokio_postgres::Error>(row)
            };
            match started.await {
                Ok(row) => {
                    let (head, last) = match row {
                        Some(row) => (
                            sql::revision_of(row.get(0), "the head revision")?,
                            Some(row.get::<_, Timestamp>(1)),
                        ),
                        None => (Revision::ZERO, None),
                    };
                    Ok((conn, head, last))
                }
                Err(e) => {
                    abandon(conn).await;
                    Err(db_error(context, e))
                }
            }
        })?;
        shared.note_head(head);
        let session = PgWrite {
            shared,
            conn: Some(conn),
            head,
            last_commit,
            open: HashSet::new(),
        };
        // The schema history must cover the head (schema checks read it).
        if shared.schemas.lock().known_through < head {
            let conn = session.connection()?;
            let after = sql::rev(shared.schemas.lock().known_through);
            let (through, texts) = shared.run(async move { read_schemas(&conn, after).await })?;
            shared.merge_schemas(through, texts);
        }
        Ok(session)
    }

    fn clock(&self) -> &dyn Clock {
        &*self.shared.clock
    }
}

impl PgWrite<'_> {
    fn connection(&self) -> Result<Arc<Object>, StoreError> {
        self.conn
            .clone()
            .ok_or_else(|| StoreError::Backend("the write transaction has ended".into()))
    }
}

impl WriteSession for PgWrite<'_> {
    fn head(&self) -> Revision {
        self.head
    }

    fn last_commit_time(&self) -> Option<Timestamp> {
        self.last_commit
    }

    fn latest(&mut self, now: Timestamp) -> Result<Box<dyn Snapshot + '_>, StoreError> {
        let conn = self.connection()?;
        Ok(Box::new(PgSnapshot {
            shared: Arc::clone(self.shared),
            source: Source::Txn(conn),
            revision: self.head,
            now,
            schema: self.shared.schemas.lock().at(self.head),
        }))
    }

    fn schema_revision(&mut self) -> Result<Option<Revision>, StoreError> {
        Ok(self
            .shared
            .schemas
            .lock()
            .at(self.head)
            .map(|s| s.written_at))
    }

    fn live(
        &mut self,
        keys: &[&Relationship],
        now: Timestamp,
    ) -> Result<Vec<Option<Relationship>>, StoreError> {
        let mut columns = Columns::default();
        for r in keys {
            columns.push_key(r);
        }
        let conn = self.connection()?;
        let params = columns.key_params();
        let rows = self.shared.run(async move {
            let context = "reading current relationships";
            let stmt = conn
                .prepare_cached(&format!(
                    "SELECT k.i, r.caveat_name, r.caveat_context, r.expires_at \
                     FROM {UNNEST_KEYS} WITH ORDINALITY AS k(rt, ri, rel, st, si, sr, i) \
                     JOIN tessera_relationships r ON {KEY_JOIN} AND r.deleted_rev = {OPEN}"
                ))
                .await
                .map_err(|e| db_error(context, e))?;
            conn.query(&stmt, &sql::refs(&params))
                .await
                .map_err(|e| db_error(context, e))
        })?;
        let mut found = vec![None; keys.len()];
        for row in rows {
            let i: i64 = row.get(0);
            let Some(key) = usize::try_from(i - 1).ok().and_then(|i| keys.get(i)) else {
                return Err(StoreError::Corrupt(format!("lookup returned row {i}")));
            };
            let caveat_name: Option<String> = row.get(1);
            let caveat_context: Option<String> = row.get(2);
            let expiration: Option<Timestamp> = row.get(3);
            self.open.insert(key.key());
            if expiration.is_some_and(|e| e <= now) {
                continue;
            }
            let caveat = match caveat_name {
                Some(name) => Some(crate::model::CaveatRef {
                    context: sql::json_object(caveat_context.as_deref(), "a caveat context")?,
                    name,
                }),
                None => None,
            };
            found[(i - 1) as usize] = Some(Relationship {
                caveat,
                expiration,
                ..Relationship::new(
                    key.resource.clone(),
                    key.relation.clone(),
                    key.subject.clone(),
                )
            });
        }
        Ok(found)
    }

    fn commit(mut self, change: ChangeSet, schema: Option<&str>) -> Result<Revision, StoreError> {
        let conn = self.connection()?;
        let revision = change.revision;
        // Versions to end: every TOUCH and DELETE, and a CREATE over an expired version.
        let mut ends = Columns::default();
        let mut puts = Columns::default();
        for c in &change.changes {
            let ended = match c.op {
                WriteOp::Create => self.open.contains(&c.relationship.key()),
                WriteOp::Touch | WriteOp::Delete => true,
            };
            if ended {
                ends.push_key(&c.relationship);
            }
            if c.op != WriteOp::Delete {
                puts.push(&c.relationship);
            }
        }
        let schema = schema.map(str::to_string);
        let schema_for_cache = schema.clone();
        let outcome = self
            .shared
            .run(async move { commit(conn, change, ends, puts, schema).await });
        // Committed or rolled back: either way the transaction is over.
        self.conn = None;
        outcome?;
        if let Some(text) = schema_for_cache {
            let mut schemas = self.shared.schemas.lock();
            schemas.texts.insert(revision, Arc::from(text));
            if schemas.known_through >= self.head {
                schemas.known_through = revision;
            }
        } else {
            let mut schemas = self.shared.schemas.lock();
            if schemas.known_through >= self.head {
                schemas.known_through = revision;
            }
        }
        self.shared.note_head(revision);
        Ok(revision)
    }
}

/// Writes one transaction's rows and commits. On failure the transaction is rolled back (or
/// the connection discarded).
async fn commit(
    conn: Arc<Object>,
    change: ChangeSet,
    ends: Columns,
    puts: Columns,
    schema: Option<String>,
) -> Result<(), StoreError> {
    let context = "committing a transaction";
    let written = write_rows(&conn, change, ends, puts, schema).await;
    if let Err(e) = written {
        abandon(conn).await;
        return Err(db_error(context, e));
    }
    match conn.batch_execute("COMMIT").await {
        Ok(()) => Ok(()),
        Err(e) => {
            let err = db_error(context, e);
            abandon(conn).await;
            Err(match err {
                StoreError::Unavailable(m) => StoreError::Unavailable(format!(
                    "{m}; the transaction may or may not have committed"
                )),
                other => other,
            })
        }
    }
}

async fn write_rows(
    conn: &Object,
    change: ChangeSet,
    ends: Columns,
    puts: Columns,
    schema: Option<String>,
) -> Result<(), tokio_postgres::Error> {
    let r = sql::rev(change.revision);
    let ended = !ends.resource_type.is_empty();
    if ended {
        let stmt = conn
            .prepare_cached(&format!(
                "UPDATE tessera_relationships r SET deleted_rev = $7 \
                 FROM {UNNEST_KEYS} AS k(rt, ri, rel, st, si, sr) \
                 WHERE {KEY_JOIN} AND r.deleted_rev = {OPEN} AND r.created_rev < $7"
            ))
            .await?;
        let mut params = ends.key_params();
        params.push(Box::new(r));
        conn.execute(&stmt, &sql::refs(&params)).await?;
    }
    let count = puts.resource_type.len();
    if count >= COPY_THRESHOLD {
        copy_relationships(conn, &puts, r).await?;
    } else if count > 0 {
        let stmt = conn
            .prepare_cached(&format!(
                "INSERT INTO tessera_relationships ({}, created_rev) \
                 SELECT *, $10::bigint FROM unnest($1::text[], $2::text[], $3::text[], \
                 $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])",
                sql::COLUMNS
            ))
            .await?;
        let mut params = puts.all_params();
        params.push(Box::new(r));
        conn.execute(&stmt, &sql::refs(&params)).await?;
    }
    let mut log = Columns::default();
    let mut ops: Vec<i16> = Vec::with_capacity(change.changes.len());
    for c in &change.changes {
        log.push(&c.relationship);
        ops.push(op_code(c.op));
    }
    if ops.len() >= COPY_THRESHOLD {
        copy_changes(conn, &log, &ops, r).await?;
    } else if !ops.is_empty() {
        let stmt = conn
            .prepare_cached(&format!(
                "INSERT INTO tessera_changes (revision, seq, op, {}) \
                 SELECT $11::bigint, (k.n - 1)::integer, k.op, k.rt, k.ri, k.rel, k.st, k.si, k.sr, \
                        k.cn, k.cc, k.ea \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                      $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::smallint[]) \
                      WITH ORDINALITY AS k(rt, ri, rel, st, si, sr, cn, cc, ea, op, n)",
                sql::COLUMNS
            ))
            .await?;
        let mut params = log.all_params();
        params.push(Box::new(ops));
        params.push(Box::new(r));
        conn.execute(&stmt, &sql::refs(&params)).await?;
    }
    let txn = conn
        .prepare_cached(
            "INSERT INTO tessera_transactions (revision, committed_at, caller, metadata, schema_changed) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .await?;
    let metadata = sql::json_text(&change.metadata);
    conn.execute(
        &txn,
        &[
            &r,
            &change.committed_at,
            &change.caller,
            &metadata,
            &change.schema_changed,
        ],
    )
    .await?;
    if let Some(text) = &schema {
        conn.execute(
            "INSERT INTO tessera_schemas (revision, text) VALUES ($1, $2)",
            &[&r, text],
        )
        .await?;
    }
    let notify = conn.prepare_cached("SELECT pg_notify($1, $2)").await?;
    conn.execute(&notify, &[&NOTIFY_CHANNEL, &r.to_string()])
        .await?;
    Ok(())
}

async fn copy_relationships(
    conn: &Object,
    rows: &Columns,
    revision: i64,
) -> Result<(), tokio_postgres::Error> {
    let sink = conn
        .copy_in(&format!(
            "COPY tessera_relationships ({}, created_rev) FROM STDIN BINARY",
            sql::COLUMNS
        ))
        .await?;
    let types = [
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
        Type::INT8,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for i in 0..rows.resource_type.len() {
        writer
            .as_mut()
            .write(&[
                &rows.resource_type[i],
                &rows.resource_id[i],
                &rows.relation[i],
                &rows.subject_type[i],
                &rows.subject_id[i],
                &rows.subject_relation[i],
                &rows.caveat_name[i],
                &rows.caveat_context[i],
                &rows.expires_at[i],
                &revision,
            ])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

async fn copy_changes(
    conn: &Object,
    rows: &Columns,
    ops: &[i16],
    revision: i64,
) -> Result<(), tokio_postgres::Error> {
    let sink = conn
        .copy_in(&format!(
            "COPY tessera_changes (revision, seq, op, {}) FROM STDIN BINARY",
            sql::COLUMNS
        ))
        .await?;
    let types = [
        Type::INT8,
        Type::INT4,
        Type::INT2,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    let mut writer = std::pin::pin!(writer);
    for (i, op) in ops.iter().enumerate() {
        let seq = i32::try_from(i).unwrap_or(i32::MAX);
        writer
            .as_mut()
            .write(&[
                &revision,
                &seq,
                op,
                &rows.resource_type[i],
                &rows.resource_id[i],
                &rows.relation[i],
                &rows.subject_type[i],
                &rows.subject_id[i],
                &rows.subject_relation[i],
                &rows.caveat_name[i],
                &rows.caveat_context[i],
                &rows.expires_at[i],
            ])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}
