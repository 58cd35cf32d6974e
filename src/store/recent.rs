//! Recent writes: for every key a read can name, the last revision that changed it.
//!
//! The check cache (`engine/cache.rs`) keeps an answer computed at revision `r` serving later
//! revisions `r' > r` when no write in `(r, r']` touched anything the answer read. This module
//! is the record of writes it asks. Every read of an evaluation names a [`ReadKey`]:
//!
//! | read | key |
//! | --- | --- |
//! | forward, with resource type, id and relation | `(type, id, relation)` |
//! | forward, with resource type and id | `(type, id)` |
//! | forward, with resource type and relation | `(type, relation)` |
//! | forward, with resource type (or an id prefix) | `(type)` |
//! | reverse, one subject id, on `type#relation` | `(subject type, subject id, type, relation)` |
//! | reverse, any subject id, on `type#relation` | `(type, relation)` |
//!
//! and every changed relationship (the nested-group index's rows included: they are
//! relationships of reserved types, changed in the same transaction) marks all five keys that
//! a read of it could have named. A read matching a relationship names one of that
//! relationship's keys, so "none of my keys changed after `r`" implies "none of what I read
//! changed after `r`". Keys are 64-bit hashes under a per-process random seed; a collision can
//! only make an unchanged key look changed (a cache miss), never the reverse — so a fast hash
//! serves, and a caller aiming collisions can only slow its own checks down.
//!
//! Soundness rests on the order of events, which the transaction layer (`txn.rs`) keeps: a
//! transaction's keys are recorded *before* its revision is published, so a reader at any
//! published revision `r'` finds every write up to `r'` here. (A write that fails after being
//! recorded leaves marks for a revision that holds nothing new: only misses.) Only a store whose
//! every writer is this process can keep such a record; a database shared by several nodes
//! returns none ([`super::Store::recent_writes`]) and its cache stays per revision.
//!
//! Memory is bounded: the record is sharded, and a shard that reaches its share of
//! [`RECENT_WRITE_KEYS`] is emptied and remembers the revision it was emptied at (its
//! *horizon*): it vouches for nothing computed before that. A transaction changing more than
//! [`LARGE_TRANSACTION`] relationships, and every schema write, empty all shards the same way.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use foldhash::fast::RandomState;

use parking_lot::Mutex;

use super::RelationshipUpdate;
use crate::model::{RelationshipFilter, Revision, SubjectFilter};

/// The keys the record holds at most (about 24 bytes each).
pub const RECENT_WRITE_KEYS: usize = 256 * 1024;

/// A transaction changing more relationships than this empties the record instead of marking
/// each key (an import or a rebuild would otherwise flush it anyway, slowly).
pub const LARGE_TRANSACTION: usize = 4096;

const SHARDS: usize = 64;

/// What one read depends on; see the module docs.
pub type ReadKey = u64;

/// For maps whose keys are already hashes (here and in the check cache): hashing them again
/// would be wasted work.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Shard {
    /// Nothing computed before this revision is vouched for.
    horizon: Revision,
    last: HashMap<ReadKey, Revision, BuildHasherDefault<IdentityHasher>>,
}

/// The record of recent writes of one store; see the module docs. Shared (`Sync`).
pub struct RecentWrites {
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
}

impl std::fmt::Debug for RecentWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecentWrites")
            .field("keys", &self.len())
            .finish()
    }
}

/// The kinds of key, hashed first so equal strings of different kinds differ.
const FORWARD: u8 = 1;
const OBJECT: u8 = 2;
const RELATION: u8 = 3;
const TYPE: u8 = 4;
const REVERSE: u8 = 5;

impl RecentWrites {
    /// A record for a store whose newest revision is `head`: it vouches for nothing computed
    /// before `head` (what came before is not recorded).
    pub fn new(head: Revision) -> Self {
        Self::with_capacity(head, RECENT_WRITE_KEYS)
    }

    /// As [`RecentWrites::new`], holding at most about `keys` keys.
    pub fn with_capacity(head: Revision, keys: usize) -> Self {
        RecentWrites {
            hasher: RandomState::default(),
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        horizon: head,
                        last: HashMap::default(),
                    })
                })
                .collect(),
            shard_capacity: keys.div_ceil(SHARDS).max(1),
        }
    }

    fn key(&self, kind: u8, parts: &[&str]) -> ReadKey {
        let mut h = self.hasher.build_hasher();
        h.write_u8(kind);
        for p in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            h.write_usize(p.len());
            h.write(p.as_bytes());
        }
        h.finish()
    }

    /// The key a forward read with `filter` names; `None` when it names no resource type
    /// (such a read depends on everything).
    pub fn read_key(&self, filter: &RelationshipFilter) -> Option<ReadKey> {
        let t = filter.resource_type.as_deref()?;
        Some(
            match (
                filter.resource_id.as_deref(),
                filter.relation.as_deref(),
                &filter.resource_id_prefix,
            ) {
                (Some(id), Some(rel), _) => self.key(FORWARD, &[t, id, rel]),
                (Some(id), None, _) => self.key(OBJECT, &[t, id]),
                (None, Some(rel), None) => self.key(RELATION, &[t, rel]),
                (None, _, _) => self.key(TYPE, &[t]),
            },
        )
    }

    /// The key a reverse read of `subject` on `resource_type#relation` names.
    pub fn reverse_key(
        &self,
        subject: &SubjectFilter,
        resource_type: &str,
        relation: &str,
    ) -> ReadKey {
        match &subject.subject_id {
            Some(id) => self.key(
                REVERSE,
                &[&subject.subject_type, id, resource_type, relation],
            ),
            None => self.key(RELATION, &[resource_type, relation]),
        }
    }

    fn shard(&self, key: ReadKey) -> &Mutex<Shard> {
        &self.shards[(key >> 58) as usize % SHARDS]
    }

    /// Marks what `changes` touch as changed at `revision`. Called by the transaction layer
    /// before `revision` is published; `reset` (a schema write) empties the record instead.
    pub fn record(&self, revision: Revision, changes: &[RelationshipUpdate], reset: bool) {
        if reset || changes.len() > LARGE_TRANSACTION {
            for shard in self.shards.iter() {
                let mut s = shard.lock();
                s.last.clear();
                s.horizon = s.horizon.max(revision);
            }
            return;
        }
        for c in changes {
            let r = &c.relationship;
            let (t, id, rel) = (
                r.resource.object_type.as_str(),
                r.resource.object_id.as_str(),
                r.relation.as_str(),
            );
            let keys = [
                self.key(FORWARD, &[t, id, rel]),
                self.key(OBJECT, &[t, id]),
                self.key(RELATION, &[t, rel]),
                self.key(TYPE, &[t]),
                self.key(
                    REVERSE,
                    &[
                        &r.subject.object.object_type,
                        &r.subject.object.object_id,
                        t,
                        rel,
                    ],
                ),
            ];
            for k in keys {
                let mut s = self.shard(k).lock();
                if s.last.len() >= self.shard_capacity && !s.last.contains_key(&k) {
                    // Full: forget this shard's history. Marks of this very transaction that
                    // were already here go too, so the horizon is its revision.
                    s.last.clear();
                    s.horizon = s.horizon.max(revision);
                }
                let last = s.last.entry(k).or_insert(revision);
                *last = (*last).max(revision);
            }
        }
    }

    /// True when nothing `keys` name changed after `since`, as far as any published revision
    /// goes (marks of a write still committing count as changes).
    pub fn unchanged_since(&self, keys: &[ReadKey], since: Revision) -> bool {
        keys.iter().all(|k| {
            let s = self.shard(*k).lock();
            s.horizon <= since && s.last.get(k).is_none_or(|&w| w <= since)
        })
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().last.len()).sum()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SubjectRelationFilter, parse_relationship};
    use crate::store::WriteOp;

    fn touch(text: &str) -> RelationshipUpdate {
        RelationshipUpdate {
            op: WriteOp::Touch,
            relationship: parse_relationship(text).expect("relationship"),
        }
    }

    fn forward(t: &str, id: Option<&str>, rel: Option<&str>) -> RelationshipFilter {
        RelationshipFilter {
            resource_type: Some(t.into()),
            resource_id: id.map(Into::into),
            relation: rel.map(Into::into),
            ..Default::default()
        }
    }

    fn subject(t: &str, id: Option<&str>) -> SubjectFilter {
        SubjectFilter {
            subject_type: t.into(),
            subject_id: id.map(Into::into),
            relation: SubjectRelationFilter::Any,
        }
    }

    #[test]
    fn every_read_that_matches_a_change_sees_it() {
        let log = RecentWrites::new(Revision(10));
        log.record(
            Revision(11),
            &[touch("document:readme#viewer@user:alice")],
            false,
        );
        let reads = [
            log.read_key(&forward("document", Some("readme"), Some("viewer"))),
            log.read_key(&forward("document", Some("readme"), None)),
            log.read_key(&forward("document", None, Some("viewer"))),
            log.read_key(&forward("document", None, None)),
            Some(log.reverse_key(&subject("user", Some("alice")), "document", "viewer")),
            Some(log.reverse_key(&subject("user", None), "document", "viewer")),
        ];
        for key in reads {
            let key = key.expect("a typed read has a key");
            assert!(!log.unchanged_since(&[key], Revision(10)));
            // At the write's own revision and later, it is already part of what was read.
            assert!(log.unchanged_since(&[key], Revision(11)));
        }
    }

    #[test]
    fn reads_of_other_keys_stay_valid() {
        let log = RecentWrites::new(Revision(10));
        log.record(
            Revision(11),
            &[touch("document:readme#viewer@user:alice")],
            false,
        );
        let unrelated = [
            log.read_key(&forward("document", Some("other"), Some("viewer"))),
            log.read_key(&forward("document", Some("readme"), Some("editor"))),
            log.read_key(&forward("folder", Some("readme"), Some("viewer"))),
            log.read_key(&forward("document", None, Some("editor"))),
            Some(log.reverse_key(&subject("user", Some("bob")), "document", "viewer")),
            Some(log.reverse_key(&subject("user", Some("alice")), "document", "editor")),
        ];
        for key in unrelated {
            assert!(log.unchanged_since(&[key.expect("key")], Revision(10)));
        }
    }

    #[test]
    fn an_untyped_read_has_no_key() {
        let log = RecentWrites::new(Revision(0));
        assert_eq!(log.read_key(&RelationshipFilter::default()), None);
    }

    #[test]
    fn nothing_before_the_horizon_is_vouched_for() {
        let log = RecentWrites::new(Revision(10));
        let key = log
            .read_key(&forward("document", Some("a"), Some("viewer")))
            .expect("key");
        assert!(!log.unchanged_since(&[key], Revision(9)));
        assert!(log.unchanged_since(&[key], Revision(10)));
        // A schema write empties the record.
        log.record(Revision(12), &[], true);
        assert!(log.is_empty());
        assert!(!log.unchanged_since(&[key], Revision(11)));
        assert!(log.unchanged_since(&[key], Revision(12)));
    }

    #[test]
    fn a_large_transaction_empties_the_record() {
        let log = RecentWrites::new(Revision(0));
        let changes: Vec<_> = (0..=LARGE_TRANSACTION)
            .map(|i| touch(&format!("document:d{i}#viewer@user:u")))
            .collect();
        let key = log
            .read_key(&forward("folder", Some("f"), Some("viewer")))
            .expect("key");
        log.record(Revision(1), &changes, false);
        assert!(log.is_empty());
        assert!(!log.unchanged_since(&[key], Revision(0)));
        assert!(log.unchanged_since(&[key], Revision(1)));
    }

    #[test]
    fn a_full_shard_forgets_and_raises_its_horizon() {
        // One key per shard on average: filling it forces shards to empty.
        let log = RecentWrites::with_capacity(Revision(0), SHARDS);
        let first = log
            .read_key(&forward("document", Some("d0"), Some("viewer")))
            .expect("key");
        log.record(Revision(1), &[touch("document:d0#viewer@user:u")], false);
        for i in 1..200u64 {
            log.record(
                Revision(1 + i),
                &[touch(&format!("document:d{i}#viewer@user:u"))],
                false,
            );
        }
        assert!(log.len() <= 2 * SHARDS);
        // Whatever was forgotten, the answer stays safe: changed since 0 either way.
        assert!(!log.unchanged_since(&[first], Revision(0)));
    }
}
