//! Transaction semantics, written once for every store.
//!
//! A store implements [`TxnBackend`]: take the writer lock and open a write on the latest
//! state ([`TxnBackend::begin_write`]), read that state through the open write
//! ([`WriteSession::latest`], [`WriteSession::live`]), and apply a list of *effective* changes
//! plus its change-log entry (and optionally a schema text) as one new revision
//! ([`WriteSession::commit`]). Everything a write means lives here, above the stores:
//! - duplicate updates in one write are refused before anything is locked;
//! - the commit clock: a commit time is the store's clock but never earlier than the previous
//!   commit (so the change log is ordered by time as well as revision, which GC relies on),
//!   and expiry is judged at that commit time;
//! - preconditions are checked on exactly the state the write commits on, in order, the first
//!   failure reported with its index;
//! - a relationship write validated against one schema commits only while that schema is
//!   still in force ([`StoreError::SchemaChanged`] otherwise: revalidate and retry);
//! - CREATE fails over a live relationship, TOUCH always records a change, DELETE of an
//!   absent (or expired) relationship records nothing, a DELETE records what was stored;
//! - delete by filter honours its limit (all-or-nothing, or partial when allowed);
//! - a schema write runs the caller's check against the latest state under the lock;
//! - a bulk import has CREATE semantics for every relationship;
//! - every write carries, at the same revision, the changes of the nested-group index its
//!   changes make necessary (`leopard.rs`), so the index is as transactional as the data.
//!
//! Architecture invariant: stores implement primitives; transaction semantics live only here.

// `StoreError` (the trait's error type, carrying a `RelationshipKey`) is large by design.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use super::clock::Clock;
use super::leopard;
use super::recent::RecentWrites;
use super::{
    BulkImport, ChangeSet, DeleteByFilter, DeleteOutcome, Precondition, PreconditionKind,
    RelationshipUpdate, SchemaCheck, Snapshot, StoreError, TransactionMetadata, WriteOp,
    WriteTransaction,
};
use crate::model::{
    ObjectRef, Relationship, RelationshipFilter, Revision, SubjectRef, SubjectRelationFilter,
    Timestamp,
};

/// What a store provides so that the functions of this module implement its writes.
pub trait TxnBackend: Send + Sync {
    /// An open write: holds the writer lock until committed or dropped.
    type Session<'a>: WriteSession
    where
        Self: 'a;

    /// Takes the writer lock (one writer at a time; for a shared database, across every node)
    /// and opens a write on the newest committed state. Dropping the session without
    /// committing changes nothing.
    fn begin_write(&self) -> Result<Self::Session<'_>, StoreError>;

    /// The store's clock.
    fn clock(&self) -> &dyn Clock;

    /// The store's record of recent writes, when it keeps one ([`super::Store::recent_writes`]).
    fn recent_writes(&self) -> Option<&RecentWrites> {
        None
    }
}

/// One open write on the newest committed state; see [`TxnBackend::begin_write`].
pub trait WriteSession {
    /// The newest committed revision: the state this write reads and commits on.
    fn head(&self) -> Revision;

    /// When `head` was committed (`None` for an empty store).
    fn last_commit_time(&self) -> Option<Timestamp>;

    /// A read view of the state at `head`, judging expiry at `now`, reading through this write.
    fn latest(&mut self, now: Timestamp) -> Result<Box<dyn Snapshot + '_>, StoreError>;

    /// The revision that wrote the schema in force at `head` (`None`: no schema yet).
    fn schema_revision(&mut self) -> Result<Option<Revision>, StoreError>;

    /// For each relationship's key, the stored relationship live at `head` (present and not
    /// expired at `now`), in the order given.
    fn live(
        &mut self,
        keys: &[&Relationship],
        now: Timestamp,
    ) -> Result<Vec<Option<Relationship>>, StoreError>;

    /// Applies `change` as revision `change.revision` (always `head + 1`): each CREATE or
    /// TOUCH ends the key's current version, if any, and adds the new one; each DELETE ends
    /// the current version. Records `change` in the change log and `schema` (when given) as
    /// the schema from this revision on, all atomically and durably, then publishes the
    /// revision.
    fn commit(self, change: ChangeSet, schema: Option<&str>) -> Result<Revision, StoreError>;
}

/// Commits `changes` on `session` as its next revision (the schema text too, when given),
/// first marking them in the store's record of recent writes: the record must hold a
/// revision's changes before any reader can see the revision.
fn commit<B: TxnBackend>(
    backend: &B,
    session: B::Session<'_>,
    committed_at: Timestamp,
    caller: Option<String>,
    changes: Vec<RelationshipUpdate>,
    metadata: TransactionMetadata,
    schema: Option<&str>,
) -> Result<Revision, StoreError> {
    let change = ChangeSet {
        revision: session.head().next(),
        committed_at,
        caller,
        changes,
        schema_changed: schema.is_some(),
        metadata,
    };
    if let Some(recent) = backend.recent_writes() {
        recent.record(change.revision, &change.changes, change.schema_changed);
    }
    session.commit(change, schema)
}

/// The commit time of a write on `session`: the clock, never earlier than the last commit.
fn commit_time(clock: &dyn Clock, session: &impl WriteSession) -> Timestamp {
    let now = clock.now();
    session.last_commit_time().map_or(now, |last| last.max(now))
}

/// A key borrowed from a relationship, for duplicate detection without copying strings.
type KeyRef<'a> = (&'a ObjectRef, &'a str, &'a SubjectRef);

fn key_ref(r: &Relationship) -> KeyRef<'_> {
    (&r.resource, r.relation.as_str(), &r.subject)
}

/// FNV-1a: duplicate detection hashes every key of a bulk import, where SipHash's
/// flood resistance buys nothing (the caller can only slow down its own request) and costs a
/// noticeable share of the import.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Refuses the first relationship whose key repeats an earlier one.
fn refuse_duplicates<'a>(
    relationships: impl ExactSizeIterator<Item = &'a Relationship>,
) -> Result<(), StoreError> {
    let mut seen: HashSet<KeyRef<'a>, BuildHasherDefault<Fnv>> =
        HashSet::with_capacity_and_hasher(relationships.len(), BuildHasherDefault::default());
    for r in relationships {
        if !seen.insert(key_ref(r)) {
            return Err(StoreError::DuplicateUpdate(r.key()));
        }
    }
    Ok(())
}

/// Fails with the first precondition that does not hold on `latest`.
fn check_preconditions(
    latest: &dyn Snapshot,
    preconditions: &[Precondition],
) -> Result<(), StoreError> {
    for (index, p) in preconditions.iter().enumerate() {
        let first = latest.query(&p.filter, None)?.next().transpose()?;
        let reason = match (p.kind, first) {
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

/// Refuses the write when the schema in force is not the one it was validated against.
fn check_schema_revision(
    session: &mut impl WriteSession,
    validated_against: Option<Revision>,
) -> Result<(), StoreError> {
    let Some(validated) = validated_against else {
        return Ok(());
    };
    let current = session.schema_revision()?;
    if current != Some(validated) {
        return Err(StoreError::SchemaChanged {
            validated,
            current: current.unwrap_or(Revision::ZERO),
        });
    }
    Ok(())
}

/// [`Store::write`](super::Store::write) on `backend`.
pub fn write(backend: &impl TxnBackend, txn: WriteTransaction) -> Result<Revision, StoreError> {
    refuse_duplicates(txn.updates.iter().map(|u| &u.relationship))?;
    let mut session = backend.begin_write()?;
    let now = commit_time(backend.clock(), &session);
    check_schema_revision(&mut session, txn.schema_revision)?;
    if !txn.preconditions.is_empty() {
        let latest = session.latest(now)?;
        check_preconditions(&*latest, &txn.preconditions)?;
    }
    // Only CREATE and DELETE depend on what is stored; TOUCH replaces whatever is there.
    let looked_up: Vec<&Relationship> = txn
        .updates
        .iter()
        .filter(|u| u.op != WriteOp::Touch)
        .map(|u| &u.relationship)
        .collect();
    let mut found = if looked_up.is_empty() {
        Vec::new()
    } else {
        session.live(&looked_up, now)?
    }
    .into_iter();
    let mut changes = Vec::with_capacity(txn.updates.len());
    for u in txn.updates {
        match u.op {
            WriteOp::Touch => changes.push(u),
            WriteOp::Create => {
                if found.next().flatten().is_some() {
                    return Err(StoreError::AlreadyExists(u.relationship.key()));
                }
                changes.push(u);
            }
            WriteOp::Delete => {
                if let Some(stored) = found.next().flatten() {
                    changes.push(RelationshipUpdate {
                        op: WriteOp::Delete,
                        relationship: stored,
                    });
                }
            }
        }
    }
    let derived = leopard::derive(&mut session, now, &changes, None)?;
    changes.extend(derived);
    commit(
        backend,
        session,
        now,
        txn.caller,
        changes,
        txn.metadata,
        None,
    )
}

/// [`Store::delete_by_filter`](super::Store::delete_by_filter) on `backend`.
pub fn delete_by_filter(
    backend: &impl TxnBackend,
    request: DeleteByFilter,
) -> Result<DeleteOutcome, StoreError> {
    let mut session = backend.begin_write()?;
    let now = commit_time(backend.clock(), &session);
    let (victims, partial) = {
        let latest = session.latest(now)?;
        check_preconditions(&*latest, &request.preconditions)?;
        let mut matches = latest.query(&request.filter, None)?;
        let mut victims = Vec::new();
        let mut partial = false;
        while let Some(rel) = matches.next().transpose()? {
            if let Some(limit) = request.limit
                && victims.len() >= limit
            {
                if request.allow_partial {
                    partial = true;
                    break;
                }
                // Count the rest, so the error says how many match.
                let mut matched = victims.len() as u64 + 1;
                for r in matches.by_ref() {
                    r?;
                    matched += 1;
                }
                return Err(StoreError::DeleteLimitExceeded { limit, matched });
            }
            victims.push(rel);
        }
        (victims, partial)
    };
    let deleted = victims.len() as u64;
    let mut changes: Vec<RelationshipUpdate> = victims
        .into_iter()
        .map(|relationship| RelationshipUpdate {
            op: WriteOp::Delete,
            relationship,
        })
        .collect();
    let derived = leopard::derive(&mut session, now, &changes, None)?;
    changes.extend(derived);
    let revision = commit(
        backend,
        session,
        now,
        request.caller,
        changes,
        request.metadata,
        None,
    )?;
    Ok(DeleteOutcome {
        revision,
        deleted,
        partial,
    })
}

/// [`Store::write_schema`](super::Store::write_schema) on `backend`.
pub fn write_schema(
    backend: &impl TxnBackend,
    text: &str,
    check: SchemaCheck<'_>,
    caller: Option<String>,
) -> Result<Revision, StoreError> {
    let mut session = backend.begin_write()?;
    let now = commit_time(backend.clock(), &session);
    {
        let latest = session.latest(now)?;
        check(&*latest)?;
    }
    let changes = leopard::derive(&mut session, now, &[], Some(text))?;
    commit(
        backend,
        session,
        now,
        caller,
        changes,
        TransactionMetadata::new(),
        Some(text),
    )
}

/// [`Store::import`](super::Store::import) on `backend`.
pub fn import(backend: &impl TxnBackend, import: BulkImport) -> Result<Revision, StoreError> {
    refuse_duplicates(import.relationships.iter())?;
    let mut session = backend.begin_write()?;
    let now = commit_time(backend.clock(), &session);
    check_schema_revision(&mut session, import.schema_revision)?;
    {
        let keys: Vec<&Relationship> = import.relationships.iter().collect();
        let found = session.live(&keys, now)?;
        if let Some(i) = found.iter().position(Option::is_some) {
            return Err(StoreError::AlreadyExists(import.relationships[i].key()));
        }
    }
    let mut changes: Vec<RelationshipUpdate> = import
        .relationships
        .into_iter()
        .map(|relationship| RelationshipUpdate {
            op: WriteOp::Create,
            relationship,
        })
        .collect();
    let derived = leopard::derive(&mut session, now, &changes, None)?;
    changes.extend(derived);
    commit(
        backend,
        session,
        now,
        import.caller,
        changes,
        TransactionMetadata::new(),
        None,
    )
}

/// [`Store::rebuild_indexes`](super::Store::rebuild_indexes) on `backend`: builds every
/// index the schema in force covers that is not complete, in one transaction changing only
/// index rows; `None` when there was nothing to build (no transaction).
pub fn rebuild_indexes(backend: &impl TxnBackend) -> Result<Option<Revision>, StoreError> {
    let mut session = backend.begin_write()?;
    let now = commit_time(backend.clock(), &session);
    let changes = leopard::rebuild(&mut session, now)?;
    if changes.is_empty() {
        return Ok(None);
    }
    commit(
        backend,
        session,
        now,
        None,
        changes,
        TransactionMetadata::new(),
        None,
    )
    .map(Some)
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
