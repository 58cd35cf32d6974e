//! The storage boundary. The engine and the API see only these traits; implementations
//! (`memory`, `rocks`, `postgres`) live behind them and all pass the same `conformance` suite.
//!
//! Model: every committed transaction gets the next [`Revision`]. A [`Snapshot`] reads the
//! state exactly as of one revision, for as long as it is held, whatever commits meanwhile.
//! Expired relationships are invisible to every snapshot read from their expiry on.
//!
//! What a write *means* (preconditions, CREATE/TOUCH/DELETE, limits, the commit clock) is
//! written once, in [`txn`]; each store provides the primitives it builds on.

pub mod clock;
pub mod conformance;
pub mod leopard;
pub mod memory;
pub mod postgres;
pub mod recent;
pub mod rocks;
pub mod txn;

use std::sync::Arc;

use crate::model::{
    Context, Relationship, RelationshipFilter, RelationshipKey, Revision, SubjectFilter, Timestamp,
};

/// Caller-supplied metadata of a write transaction (the API's `optional_transaction_metadata`):
/// a JSON object kept with the transaction's change-log entry and handed back by
/// [`Store::read_changes`]. Empty means none. Stores persist it as given; size limits are
/// the service's business.
pub type TransactionMetadata = Context;

/// What a write does with one relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteOp {
    /// Insert; fails with [`StoreError::AlreadyExists`] if a live relationship with the same key exists.
    Create,
    /// Insert or replace (caveat and expiration are replaced).
    Touch,
    /// Remove if present; not an error when absent.
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RelationshipUpdate {
    pub op: WriteOp,
    pub relationship: Relationship,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreconditionKind {
    /// At least one live relationship matches the filter.
    MustMatch,
    /// No live relationship matches the filter.
    MustNotMatch,
}

/// Checked against the state the write commits on, atomically with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Precondition {
    pub kind: PreconditionKind,
    pub filter: RelationshipFilter,
}

/// One atomic write: all updates apply, at one new revision, or none do.
#[derive(Debug, Clone, Default)]
pub struct WriteTransaction {
    pub updates: Vec<RelationshipUpdate>,
    pub preconditions: Vec<Precondition>,
    /// Who wrote (the authenticated caller), recorded in the change log.
    pub caller: Option<String>,
    /// Recorded in the change log with the transaction.
    pub metadata: TransactionMetadata,
    /// The revision that wrote the schema the updates were validated against. When set, the
    /// write commits only if that schema is still in force (checked under the writer lock),
    /// else it fails with [`StoreError::SchemaChanged`] and changes nothing.
    pub schema_revision: Option<Revision>,
}

/// Creates relationships in bulk (see [`Store::import`]).
#[derive(Debug, Clone, Default)]
pub struct BulkImport {
    pub relationships: Vec<Relationship>,
    /// Who wrote (the authenticated caller), recorded in the change log.
    pub caller: Option<String>,
    /// As [`WriteTransaction::schema_revision`].
    pub schema_revision: Option<Revision>,
}

/// Delete every relationship matching `filter`, atomically, after checking preconditions.
#[derive(Debug, Clone, Default)]
pub struct DeleteByFilter {
    pub filter: RelationshipFilter,
    pub preconditions: Vec<Precondition>,
    /// At most this many relationships are deleted.
    pub limit: Option<usize>,
    /// When more than `limit` match: `true` deletes `limit` of them and reports partial;
    /// `false` deletes nothing and fails with [`StoreError::DeleteLimitExceeded`].
    pub allow_partial: bool,
    pub caller: Option<String>,
    /// Recorded in the change log with the transaction.
    pub metadata: TransactionMetadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub revision: Revision,
    pub deleted: u64,
    /// True when matching relationships remain because of `limit`.
    pub partial: bool,
}

/// One entry of the change log: everything one transaction changed.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeSet {
    pub revision: Revision,
    pub committed_at: Timestamp,
    pub caller: Option<String>,
    /// Effective changes only: `Touch` for created or replaced relationships (`Create` when
    /// the write used CREATE), `Delete` for removed ones. Deleting an absent relationship
    /// records nothing.
    pub changes: Vec<RelationshipUpdate>,
    /// True when this transaction wrote a new schema.
    pub schema_changed: bool,
    /// The transaction's metadata as written (empty for schema writes and bulk imports).
    pub metadata: TransactionMetadata,
}

/// The schema text in force at a revision, and the revision that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSchema {
    /// Shared with the store's own copy: taking a snapshot never copies the schema text.
    pub text: Arc<str>,
    pub written_at: Revision,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("relationship `{0}` already exists")]
    AlreadyExists(RelationshipKey),
    #[error("precondition {index} failed: {reason}")]
    PreconditionFailed { index: usize, reason: String },
    #[error("relationship `{0}` appears more than once in the same write")]
    DuplicateUpdate(RelationshipKey),
    #[error(
        "revision {requested} is older than the oldest readable revision {oldest} (garbage-collected)"
    )]
    RevisionTooOld {
        requested: Revision,
        oldest: Revision,
    },
    #[error("revision {requested} is newer than the newest revision {head} of this store")]
    RevisionInFuture { requested: Revision, head: Revision },
    #[error("{matched} relationships match the delete filter, more than the limit of {limit}")]
    DeleteLimitExceeded { limit: usize, matched: u64 },
    /// A caller-supplied check inside [`Store::write_schema`] refused the change.
    #[error("{0}")]
    SchemaRejected(String),
    /// The write was validated against a schema that another writer has replaced since
    /// (possibly on another node): nothing was written; validate again and retry.
    #[error(
        "the schema changed while the write was being validated (validated against the schema written at revision {validated}, the schema in force is from revision {current}); retry the request"
    )]
    SchemaChanged {
        validated: Revision,
        current: Revision,
    },
    /// The datastore cannot be reached (a shared database that is down, restarting or out of
    /// connections). Nothing was written by a call that failed this way before committing;
    /// retrying later is safe for reads.
    #[error("the datastore is unavailable: {0}")]
    Unavailable(String),
    #[error("storage failure: {0}")]
    Backend(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// An iterator over relationships read from a snapshot.
pub type RelationshipIter<'a> =
    Box<dyn Iterator<Item = Result<Relationship, StoreError>> + Send + 'a>;

/// A consistent read view at one revision. Cheap to share (`Arc`), safe across threads.
pub trait Snapshot: Send + Sync {
    fn revision(&self) -> Revision;

    /// The instant expiry is judged against (fixed when the snapshot was taken).
    fn now(&self) -> Timestamp;

    /// Live relationships matching `filter`, ordered by (resource type, resource id, relation,
    /// subject type, subject id, subject relation with the ellipsis first), starting strictly
    /// after `after` when given (the cursor of a paged read).
    fn query(
        &self,
        filter: &RelationshipFilter,
        after: Option<&RelationshipKey>,
    ) -> Result<RelationshipIter<'_>, StoreError>;

    /// Live relationships whose subject matches `subject`, optionally restricted to one
    /// resource type and relation: the reverse index (lookups, reverse walks). No order promised.
    fn reverse_query(
        &self,
        subject: &SubjectFilter,
        resource_type: Option<&str>,
        relation: Option<&str>,
    ) -> Result<RelationshipIter<'_>, StoreError>;

    /// The schema in force at this revision, if one was ever written.
    fn schema(&self) -> Result<Option<StoredSchema>, StoreError>;

    /// A reader for the many small reads of one evaluation. It gives exactly what
    /// [`Snapshot::query`] gives, but may keep store resources (RocksDB iterators) between
    /// reads instead of creating them per read, which dominated the cost of small reads.
    fn reader(&self) -> Box<dyn SnapshotReader + '_> {
        Box::new(QueryReader(self))
    }
}

/// Reads of one evaluation against one snapshot; see [`Snapshot::reader`]. Not shared between
/// threads: one request owns it.
pub trait SnapshotReader {
    /// Live relationships matching `filter`, in [`Snapshot::query`] order.
    fn read(&mut self, filter: &RelationshipFilter) -> Result<Vec<Relationship>, StoreError>;

    /// Live relationships whose subject matches `subject` on `resource_type#relation`: what
    /// [`Snapshot::reverse_query`] gives. When `subject` names one subject and one subject
    /// relation they come in resource id order, and `page` reads them page by page: only
    /// resource ids after its `after`, at most its `limit`. (Other filters give their rows
    /// grouped by subject relation, unpaged: pass `None`.)
    fn reverse(
        &mut self,
        subject: &SubjectFilter,
        resource_type: &str,
        relation: &str,
        page: Option<ReversePage<'_>>,
    ) -> Result<Vec<Relationship>, StoreError>;

    /// One page of [`SnapshotReader::reverse`] reduced to what a lookup streams: each row's
    /// resource id and whether it has no caveat. Stores may skip decoding the rest.
    fn reverse_ids(
        &mut self,
        subject: &SubjectFilter,
        resource_type: &str,
        relation: &str,
        page: ReversePage<'_>,
    ) -> Result<Vec<(String, bool)>, StoreError> {
        Ok(plain_ids(self.reverse(
            subject,
            resource_type,
            relation,
            Some(page),
        )?))
    }
}

/// Relationships reduced to their resource ids and whether each has no caveat.
pub(crate) fn plain_ids(rows: Vec<Relationship>) -> Vec<(String, bool)> {
    rows.into_iter()
        .map(|r| {
            let plain = r.caveat.is_none();
            (r.resource.object_id, plain)
        })
        .collect()
}

/// A page of a [`SnapshotReader::reverse`] read in resource id order.
#[derive(Debug, Clone, Copy)]
pub struct ReversePage<'a> {
    /// Only resource ids after this one.
    pub after: Option<&'a str>,
    /// At most this many relationships.
    pub limit: usize,
}

impl ReversePage<'_> {
    /// Applies the page to rows of one subject in resource id order (for readers that cannot
    /// seek).
    pub fn apply(
        &self,
        rows: impl Iterator<Item = Result<Relationship, StoreError>>,
    ) -> Result<Vec<Relationship>, StoreError> {
        let mut out = Vec::new();
        for r in rows {
            let r = r?;
            if self
                .after
                .is_some_and(|a| r.resource.object_id.as_str() <= a)
            {
                continue;
            }
            if out.len() >= self.limit {
                break;
            }
            out.push(r);
        }
        Ok(out)
    }
}

/// The default reader: one [`Snapshot::query`] per read.
struct QueryReader<'a, S: ?Sized>(&'a S);

impl<S: Snapshot + ?Sized> SnapshotReader for QueryReader<'_, S> {
    fn read(&mut self, filter: &RelationshipFilter) -> Result<Vec<Relationship>, StoreError> {
        self.0.query(filter, None)?.collect()
    }

    fn reverse(
        &mut self,
        subject: &SubjectFilter,
        resource_type: &str,
        relation: &str,
        page: Option<ReversePage<'_>>,
    ) -> Result<Vec<Relationship>, StoreError> {
        let rows = self
            .0
            .reverse_query(subject, Some(resource_type), Some(relation))?;
        match page {
            None => rows.collect(),
            Some(p) => p.apply(rows),
        }
    }
}

/// A callback run inside [`Store::write_schema`] against the latest state, under the write lock.
pub type SchemaCheck<'a> = &'a mut dyn FnMut(&dyn Snapshot) -> Result<(), StoreError>;

/// A relationship store with revisions, atomic transactions and a change log.
pub trait Store: Send + Sync {
    /// True when reads are served inside this process (memory, or a local embedded database
    /// and the page cache) in microseconds, never waiting on a network: then a short read-only
    /// request may run on an async worker thread instead of the blocking pool
    /// ([`crate::service::Tessera::runs_inline`]).
    fn local_reads(&self) -> bool {
        false
    }

    /// The record of recent writes ([`recent`]) when every write to this store goes through
    /// this process (so the record is complete); `None` for a database other processes also
    /// write. With it, cached check answers keep serving later revisions while nothing they
    /// read has changed.
    fn recent_writes(&self) -> Option<Arc<recent::RecentWrites>> {
        None
    }

    /// The newest committed revision (`Revision::ZERO` for an empty store).
    fn head_revision(&self) -> Result<Revision, StoreError>;

    /// The oldest revision a snapshot can still be taken at (the GC window's edge).
    fn oldest_readable_revision(&self) -> Result<Revision, StoreError>;

    /// A snapshot at exactly `revision`; errors when it is in the future or garbage-collected.
    fn snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError>;

    /// Commits one transaction atomically, returning its revision. Durable when it returns.
    fn write(&self, txn: WriteTransaction) -> Result<Revision, StoreError>;

    /// Deletes by filter atomically (see [`DeleteByFilter`]).
    fn delete_by_filter(&self, request: DeleteByFilter) -> Result<DeleteOutcome, StoreError>;

    /// Writes a new schema text atomically with `check` (run against the latest state under
    /// the write lock; its error aborts the write). Returns the new revision.
    fn write_schema(
        &self,
        text: &str,
        check: SchemaCheck<'_>,
        caller: Option<String>,
    ) -> Result<Revision, StoreError>;

    /// Creates relationships in bulk: CREATE semantics, one atomic and durable transaction per
    /// call, much cheaper per relationship than `write`. Returns the revision.
    fn import(&self, request: BulkImport) -> Result<Revision, StoreError>;

    /// [`Store::import`] without a schema revision to verify.
    fn bulk_import(
        &self,
        relationships: Vec<Relationship>,
        caller: Option<String>,
    ) -> Result<Revision, StoreError> {
        self.import(BulkImport {
            relationships,
            caller,
            schema_revision: None,
        })
    }

    /// Change sets with revision strictly greater than `after`, oldest first, at most `limit`.
    fn read_changes(&self, after: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError>;

    /// A snapshot at exactly `revision` for a read that may be served by a read replica
    /// (`minimize_latency`). The data is the same as [`Store::snapshot`]'s; a store with a
    /// replica uses it only when the replica already has `revision`.
    fn replica_snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError> {
        self.snapshot(revision)
    }

    /// A receiver of the newest revision committed by *anyone* (other processes sharing the
    /// store included), for change feeds; `None` when the store cannot tell (then only
    /// commits made through this process are signalled, by the service).
    fn commit_signal(&self) -> Option<tokio::sync::watch::Receiver<Revision>> {
        None
    }

    /// Builds every nested-group index (`leopard.rs`) the schema in force covers but that is
    /// not complete — after an upgrade from a version without the index, or after a change too
    /// large to index switched one off — in one transaction changing only index rows. Returns
    /// its revision, or `None` when there was nothing to build.
    fn rebuild_indexes(&self) -> Result<Option<Revision>, StoreError> {
        Ok(None)
    }

    /// Whether the datastore was reachable at its last probe (no I/O: a cached answer). An
    /// embedded store always is; a shared database answers from a background probe.
    fn availability(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
