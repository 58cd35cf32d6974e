//! A node-local cache of snapshot reads, keyed by revision.
//!
//! What a filter selects at revision `r` never changes (rows of revisions at or below a
//! committed `r` are immutable, on every node), so a cached read is exact for any later
//! request at the same revision — the same reasoning as the engine's check cache, one level
//! down: a check cache miss re-reads only what this cache does not hold, without a round trip
//! to the database. Rows are cached before expiry is applied and filtered by each snapshot's
//! own `now`, so expirations are honoured exactly. Requests at a new revision miss (the
//! revision is part of the key); a busy cluster whose head moves often gets fewer hits, never
//! stale ones.
//!
//! Bounded like the check cache: sharded, two generations per shard, the young one replacing
//! the old one when full; reads of many rows are not cached.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::model::{Relationship, RelationshipFilter, Revision, SubjectRelationFilter};

const SHARDS: usize = 16;
/// Reads returning more rows than this are not cached (one big read must not evict the hot set).
pub(super) const MAX_CACHED_ROWS: usize = 256;

type Key = (Revision, Box<[u8]>);

#[derive(Default)]
struct Shard {
    young: HashMap<Key, Arc<[Relationship]>>,
    old: HashMap<Key, Arc<[Relationship]>>,
}

pub(super) struct ReadCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    generation_capacity: usize,
}

/// The filter as bytes: each field tagged and length-prefixed, so different filters never
/// encode alike.
pub(super) fn filter_key(f: &RelationshipFilter) -> Box<[u8]> {
    let mut out = Vec::with_capacity(96);
    let mut field = |tag: u8, value: Option<&str>| {
        out.push(tag);
        match value {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v.as_bytes());
            }
        }
    };
    field(1, f.resource_type.as_deref());
    field(2, f.resource_id.as_deref());
    field(3, f.resource_id_prefix.as_deref());
    field(4, f.relation.as_deref());
    match &f.subject {
        None => field(5, None),
        Some(s) => {
            field(5, Some(&s.subject_type));
            field(6, s.subject_id.as_deref());
            match &s.relation {
                SubjectRelationFilter::Any => field(7, None),
                SubjectRelationFilter::Ellipsis => field(8, None),
                SubjectRelationFilter::Relation(r) => field(9, Some(r)),
            }
        }
    }
    out.into_boxed_slice()
}

impl ReadCache {
    /// A cache of at most about `entries` reads (0 disables it).
    pub(super) fn new(entries: usize) -> Self {
        ReadCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            generation_capacity: entries / SHARDS / 2,
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<Shard> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        &self.shards[i]
    }

    pub(super) fn get(
        &self,
        revision: Revision,
        filter: Box<[u8]>,
    ) -> Result<Arc<[Relationship]>, Key> {
        let key = (revision, filter);
        if self.generation_capacity == 0 {
            return Err(key);
        }
        let mut shard = self.shard(&key).lock();
        if let Some(rows) = shard.young.get(&key) {
            return Ok(Arc::clone(rows));
        }
        match shard.old.remove(&key) {
            Some(rows) => {
                shard.young.insert(key, Arc::clone(&rows));
                Ok(rows)
            }
            None => Err(key),
        }
    }

    pub(super) fn put(&self, key: Key, rows: Arc<[Relationship]>) {
        if self.generation_capacity == 0 || rows.len() > MAX_CACHED_ROWS {
            return;
        }
        let mut shard = self.shard(&key).lock();
        if shard.young.len() >= self.generation_capacity {
            let young = std::mem::take(&mut shard.young);
            shard.old = young;
        }
        shard.young.insert(key, rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SubjectFilter;

    #[test]
    fn different_filters_have_different_keys() {
        let a = RelationshipFilter {
            resource_type: Some("doc".into()),
            resource_id: Some("a".into()),
            ..Default::default()
        };
        let b = RelationshipFilter {
            resource_type: Some("doc".into()),
            resource_id_prefix: Some("a".into()),
            ..Default::default()
        };
        let c = RelationshipFilter {
            subject: Some(SubjectFilter {
                subject_type: "user".into(),
                subject_id: None,
                relation: SubjectRelationFilter::Ellipsis,
            }),
            ..Default::default()
        };
        let d = RelationshipFilter {
            subject: Some(SubjectFilter {
                subject_type: "user".into(),
                subject_id: None,
                relation: SubjectRelationFilter::Any,
            }),
            ..Default::default()
        };
        let keys = [
            filter_key(&a),
            filter_key(&b),
            filter_key(&c),
            filter_key(&d),
        ];
        for i in 0..keys.len() {
            for j in 0..i {
                assert_ne!(keys[i], keys[j], "{i} vs {j}");
            }
        }
    }

    #[test]
    fn entries_are_per_revision_and_bounded() {
        let cache = ReadCache::new(SHARDS * 2 * 4);
        let f = filter_key(&RelationshipFilter::default());
        let rows: Arc<[Relationship]> = Arc::from(Vec::new());
        let key = cache.get(Revision(1), f.clone()).unwrap_err();
        cache.put(key, rows);
        assert!(cache.get(Revision(1), f.clone()).is_ok());
        assert!(cache.get(Revision(2), f).is_err());
        for r in 0..10_000 {
            let key = (Revision(r), filter_key(&RelationshipFilter::default()));
            cache.put(key, Arc::from(Vec::new()));
        }
        let held: usize = cache
            .shards
            .iter()
            .map(|s| {
                let s = s.lock();
                s.young.len() + s.old.len()
            })
            .sum();
        assert!(held <= SHARDS * 2 * 4, "{held}");
    }
}
