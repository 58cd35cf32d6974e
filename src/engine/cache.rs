//! A check-result cache shared by all requests: sub-problem answers keyed by revision.
//!
//! An entry says "at revision `r`, subject `s` has node `n` on object `o` with this outcome".
//! A snapshot at revision `r` is immutable, so such an answer never goes stale with respect
//! to writes: a request at a newer revision simply never finds it (the revision is part of
//! the key), and a request can never be served an answer computed at another revision.
//!
//! Two things besides the revision decide an answer, and both are handled:
//! - **Time.** Expired relationships vanish from every snapshot. An entry records the instant
//!   it was computed at and the earliest expiration among the relationships it read (directly
//!   or through sub-problems), and only serves snapshots whose `now` lies in that window.
//! - **Caveat context.** Answers depend on the request's context, so only requests without
//!   one use the cache (see `check.rs`).
//!
//! Only path-independent results are stored — the same ones a request's own memo keeps (see
//! `check.rs`) — so a cached answer equals what a fresh evaluation would compute.
//!
//! The cache is sharded (a mutex per shard, chosen by the key's hash) and bounded: each shard
//! keeps two generations, new entries go to the young one, and when it is full the old one is
//! dropped and the young one becomes old; a hit in the old generation is promoted. So memory
//! stays under the configured number of entries and the hot set survives. Keys are stored by
//! a keyed 64-bit hash (random per process, so callers cannot aim collisions) and verified
//! against the full key on every hit, so a collision can only cost a miss, never a wrong answer.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::CheckOutcome;
use super::analysis::NodeId;
use crate::model::{Revision, Timestamp};

/// How many entries a cache keeps by default (a few hundred bytes each at most).
pub const DEFAULT_CHECK_CACHE_ENTRIES: usize = 256 * 1024;

const SHARDS: usize = 32;

/// Cross-request cache of check sub-problems; see the module docs. Cheap to share (`Sync`).
pub struct CheckCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Entries per generation per shard (0: the cache is disabled).
    generation_capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters of a [`CheckCache`] since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckCacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
}

/// The full key of an entry, borrowed (what a lookup has at hand).
pub(crate) struct KeyRef<'k> {
    pub revision: Revision,
    pub node: NodeId,
    pub object_id: &'k str,
    /// The subject, in the relationship syntax (`user:alice`, `group:eng#member`).
    pub subject: &'k str,
}

/// A cached answer with the time window in which it holds.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub outcome: CheckOutcome,
    /// The earliest expiration among the relationships the answer rests on.
    pub expires: Option<Timestamp>,
}

struct Entry {
    revision: Revision,
    node: NodeId,
    object_id: Box<str>,
    subject: Arc<str>,
    /// The snapshot time it was computed at; earlier snapshots may still see relationships
    /// that had expired by then, so they are not served.
    computed_at: Timestamp,
    value: Cached,
}

impl Entry {
    fn matches(&self, key: &KeyRef<'_>) -> bool {
        self.revision == key.revision
            && self.node == key.node
            && *self.object_id == *key.object_id
            && *self.subject == *key.subject
    }

    fn holds_at(&self, now: Timestamp) -> bool {
        self.computed_at <= now && self.value.expires.is_none_or(|e| now < e)
    }
}

/// The map's keys are already hashes; hashing them again would be wasted work.
#[derive(Default)]
struct IdentityHasher(u64);

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

type HashedMap = HashMap<u64, Entry, BuildHasherDefault<IdentityHasher>>;

#[derive(Default)]
struct Shard {
    young: HashedMap,
    old: HashedMap,
}

impl CheckCache {
    /// A cache holding at most about `max_entries` answers; 0 disables it.
    pub fn new(max_entries: usize) -> Self {
        CheckCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            generation_capacity: max_entries.div_ceil(SHARDS * 2),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Hits, misses and the current number of entries.
    pub fn stats(&self) -> CheckCacheStats {
        let entries = self
            .shards
            .iter()
            .map(|s| {
                let s = s.lock();
                s.young.len() + s.old.len()
            })
            .sum();
        CheckCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.generation_capacity > 0
    }

    fn hash(&self, key: &KeyRef<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write_u64(key.revision.0);
        h.write_u32(key.node);
        h.write(key.subject.as_bytes());
        h.write_u8(0xff);
        h.write(key.object_id.as_bytes());
        h.finish()
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        // The low bits pick the map bucket; use the high ones for the shard.
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    /// The answer for `key` if one holds at snapshot time `now`.
    pub(crate) fn get(&self, key: &KeyRef<'_>, now: Timestamp) -> Option<Cached> {
        if !self.enabled() {
            return None;
        }
        let hash = self.hash(key);
        let mut shard = self.shard(hash).lock();
        let found = if let Some(e) = shard.young.get(&hash) {
            (e.matches(key) && e.holds_at(now)).then(|| e.value.clone())
        } else if let Some(e) = shard.old.remove(&hash) {
            let value = (e.matches(key) && e.holds_at(now)).then(|| e.value.clone());
            if value.is_some() {
                // Still in use: promote so the next rotation keeps it.
                self.insert_young(&mut shard, hash, e);
            } else {
                shard.old.insert(hash, e);
            }
            value
        } else {
            None
        };
        drop(shard);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Remembers `value` for `key`, computed at snapshot time `computed_at`.
    pub(crate) fn insert(
        &self,
        key: &KeyRef<'_>,
        subject: &Arc<str>,
        computed_at: Timestamp,
        value: Cached,
    ) {
        if !self.enabled() || value.expires.is_some_and(|e| e <= computed_at) {
            return;
        }
        let hash = self.hash(key);
        let entry = Entry {
            revision: key.revision,
            node: key.node,
            object_id: key.object_id.into(),
            subject: Arc::clone(subject),
            computed_at,
            value,
        };
        let mut shard = self.shard(hash).lock();
        shard.old.remove(&hash);
        self.insert_young(&mut shard, hash, entry);
    }

    fn insert_young(&self, shard: &mut Shard, hash: u64, entry: Entry) {
        if shard.young.len() >= self.generation_capacity && !shard.young.contains_key(&hash) {
            shard.old = std::mem::take(&mut shard.young);
        }
        shard.young.insert(hash, entry);
    }
}

impl std::fmt::Debug for CheckCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckCache")
            .field("capacity", &(self.generation_capacity * SHARDS * 2))
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};

    fn t(secs: i64) -> Timestamp {
        Utc.timestamp_opt(1_700_000_000 + secs, 0)
            .single()
            .expect("valid")
    }

    fn key<'k>(rev: u64, object_id: &'k str, subject: &'k str) -> KeyRef<'k> {
        KeyRef {
            revision: Revision(rev),
            node: 3,
            object_id,
            subject,
        }
    }

    fn has(expires: Option<Timestamp>) -> Cached {
        Cached {
            outcome: CheckOutcome::Has,
            expires,
        }
    }

    #[test]
    fn answers_only_the_same_revision_object_and_subject() {
        let cache = CheckCache::new(1024);
        let alice: Arc<str> = "user:alice".into();
        cache.insert(&key(5, "doc", "user:alice"), &alice, t(0), has(None));
        assert!(cache.get(&key(5, "doc", "user:alice"), t(1)).is_some());
        assert!(cache.get(&key(6, "doc", "user:alice"), t(1)).is_none());
        assert!(cache.get(&key(4, "doc", "user:alice"), t(1)).is_none());
        assert!(cache.get(&key(5, "doc2", "user:alice"), t(1)).is_none());
        assert!(cache.get(&key(5, "doc", "user:bob"), t(1)).is_none());
        let mut other_node = key(5, "doc", "user:alice");
        other_node.node = 4;
        assert!(cache.get(&other_node, t(1)).is_none());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.entries), (1, 5, 1));
    }

    #[test]
    fn serves_only_snapshots_inside_the_validity_window() {
        let cache = CheckCache::new(1024);
        let s: Arc<str> = "user:alice".into();
        cache.insert(&key(1, "doc", "user:alice"), &s, t(10), has(Some(t(20))));
        assert!(cache.get(&key(1, "doc", "user:alice"), t(9)).is_none());
        assert!(cache.get(&key(1, "doc", "user:alice"), t(10)).is_some());
        assert!(cache.get(&key(1, "doc", "user:alice"), t(19)).is_some());
        assert!(cache.get(&key(1, "doc", "user:alice"), t(20)).is_none());
        // An answer that is already expired when computed is not stored at all.
        cache.insert(&key(1, "x", "user:alice"), &s, t(30), has(Some(t(30))));
        assert_eq!(cache.stats().entries, 1);
    }

    #[test]
    fn stays_bounded_and_keeps_recently_used_entries() {
        let cache = CheckCache::new(SHARDS * 2 * 4);
        let s: Arc<str> = "user:alice".into();
        let now = t(0);
        cache.insert(&key(1, "hot", "user:alice"), &s, now, has(None));
        for i in 0..10_000 {
            let id = format!("cold{i}");
            cache.insert(&key(1, &id, "user:alice"), &s, now, has(None));
            // Touch the hot entry now and then, as a busy request path would.
            if i % 16 == 0 {
                assert!(
                    cache
                        .get(&key(1, "hot", "user:alice"), now + Duration::seconds(1))
                        .is_some(),
                    "hot entry evicted after {i} inserts"
                );
            }
            assert!(cache.stats().entries <= SHARDS * 2 * 4);
        }
    }

    #[test]
    fn a_disabled_cache_stores_nothing() {
        let cache = CheckCache::new(0);
        let s: Arc<str> = "user:alice".into();
        cache.insert(&key(1, "doc", "user:alice"), &s, t(0), has(None));
        assert!(cache.get(&key(1, "doc", "user:alice"), t(0)).is_none());
        assert_eq!(cache.stats().entries, 0);
    }
}
