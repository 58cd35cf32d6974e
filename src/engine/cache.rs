//! A check-result cache shared by all requests: sub-problem answers, valid from the revision
//! they were computed at for as long as nothing they read changes.
//!
//! An entry says "at revision `r`, subject `s` has node `n` on object `o` with this outcome".
//! A snapshot at revision `r` is immutable, so the entry always answers requests at `r`
//! itself. It also answers a request at a later revision `r'` (a *carried* hit) when the
//! entry knows what its answer read — the [`ReadKey`]s of every relationship read of its
//! proof, sub-problems included — and the store's record of recent writes
//! (`store/recent.rs`) vouches that none of them changed in `(r, r']`: then a fresh evaluation
//! at `r'` would read exactly what the one at `r` read. The entry then moves to `r'`, so a hot
//! answer keeps being carried after the record has forgotten older writes. Requests at a
//! revision older than an entry's do not use it. Without a record (a database shared by
//! several nodes), or for answers that read too much ([`MAX_DEPS`]) or read without a key,
//! entries answer their own revision only.
//!
//! Two things besides the data decide an answer, and both are handled:
//! - **Time.** Expired relationships vanish from every snapshot. An entry records the instant
//!   it was computed at and the earliest expiration among the relationships it read (directly
//!   or through sub-problems), and only serves snapshots whose `now` lies in that window.
//! - **Caveat context.** Answers depend on the request's context, so only requests without
//!   one use the cache (see `check.rs`).
//!
//! The schema decides too (node ids are per schema): a schema write empties the record of
//! recent writes, so nothing computed before it is carried past it.
//!
//! Only path-independent results are stored — the same ones a request's own memo keeps (see
//! `check.rs`) — so a cached answer equals what a fresh evaluation would compute.
//!
//! Admission: an answer (or a whole result, below) is stored the second time it is offered
//! within a window, not the first (a *doorkeeper*, as in TinyLFU: two bits per key in a bit
//! array cleared after every `2 × max_entries` first offers). Most sub-problems of random
//! checks are solved once and never asked again; they now cost two bits instead of an entry
//! (its allocations, its share of the generation churn, its list of reads). Anything asked
//! twice is cached from then on.
//!
//! The cache also keeps whole results: **LookupResources plans** (`lookup_resources.rs`: the
//! walk from the subject to the streams of resource ids, which depends on no caveat context),
//! per (target permission, subject), and **LookupSubjects results** of requests without a
//! caveat context, per (permission, resource, subject type and relation). Both follow the
//! same rules: a result serves its own revision, and later ones while the record of recent
//! writes vouches for every read of its evaluation; and only snapshot times before the
//! earliest expiration among the relationships it read. A repeated lookup (a list view or a
//! sharing dialog opened again) then starts streaming at once. Each kind is bounded by its
//! total weight (materialized keys and streams; subjects), in two generations like the answers.
//!
//! The cache is sharded (a mutex per shard, chosen by the key's hash) and bounded: each shard
//! keeps two generations, new entries go to the young one, and when it is full the old one is
//! dropped and the young one becomes old; a hit in the old generation is promoted. So memory
//! stays under the configured number of entries and the hot set survives. Keys are stored by
//! a keyed 64-bit hash (seeded at random per process) and verified against the full key on
//! every hit, so a collision can only cost a miss, never a wrong answer.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use foldhash::fast::RandomState;
use parking_lot::Mutex;

use super::CheckOutcome;
use super::LookupSubject;
use super::analysis::NodeId;
use super::lookup_resources::LookupPlan;
use crate::model::{Revision, Timestamp};
use crate::store::recent::{IdentityHasher, ReadKey, RecentWrites};

/// How many entries a cache keeps by default (a few hundred bytes each at most).
pub const DEFAULT_CHECK_CACHE_ENTRIES: usize = 256 * 1024;

/// An answer that read more distinct keys than this answers its own revision only (its keys
/// would cost more memory, and more time to vouch for, than evaluating again).
pub const MAX_DEPS: usize = 48;

/// A plan or LookupSubjects result that read more distinct keys than this serves its own
/// revision only.
pub const MAX_PLAN_DEPS: usize = 8192;

const SHARDS: usize = 32;

/// Cross-request cache of check sub-problems; see the module docs. Cheap to share (`Sync`).
pub struct CheckCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// Entries per generation per shard (0: the cache is disabled).
    generation_capacity: usize,
    /// The store's record of recent writes, which lets entries serve later revisions.
    recent: Option<Arc<RecentWrites>>,
    /// The doorkeeper's bits (a power of two of them) and its first offers since cleared.
    doorkeeper: Box<[AtomicU64]>,
    first_offers: AtomicUsize,
    /// First offers after which the doorkeeper is cleared.
    doorkeeper_window: usize,
    hits: AtomicU64,
    carried: AtomicU64,
    misses: AtomicU64,
    plans: CarriedMap<(NodeId, String), LookupPlan>,
    subjects: CarriedMap<SubjectsKey, Vec<LookupSubject>>,
}

/// The key of a LookupSubjects result: permission node, resource id, subject type and
/// subject relation.
pub(crate) type SubjectsKey = (NodeId, String, String, Option<String>);

/// How a whole result (a plan, a LookupSubjects result) was made: at `revision` and snapshot
/// time `computed_at`, from reads `deps` (`None`: unknown, so it serves its own revision
/// only), holding until `expires`.
pub(crate) struct Made {
    pub revision: Revision,
    pub computed_at: Timestamp,
    pub expires: Option<Timestamp>,
    pub deps: Option<Arc<[ReadKey]>>,
}

impl Made {
    /// The entry of `value`, whose own weight is `weight` units, under a key of `key_bytes`:
    /// its weight counts the key and the list of reads too, so the weight budget bounds
    /// memory whatever the mix.
    fn entry<V>(self, value: Arc<V>, weight: usize, key_bytes: usize) -> CarriedEntry<V> {
        let deps = self.deps.as_ref().map_or(0, |d| d.len());
        CarriedEntry {
            revision: self.revision,
            computed_at: self.computed_at,
            expires: self.expires,
            deps: self.deps,
            value,
            weight: 1 + weight + deps / 4 + key_bytes / 32,
        }
    }
}

/// One value of a [`CarriedMap`]; see the module docs.
struct CarriedEntry<V> {
    revision: Revision,
    computed_at: Timestamp,
    expires: Option<Timestamp>,
    deps: Option<Arc<[ReadKey]>>,
    value: Arc<V>,
    weight: usize,
}

impl<V> CarriedEntry<V> {
    fn holds_at(&self, now: Timestamp) -> bool {
        self.computed_at <= now && self.expires.is_none_or(|e| now < e)
    }
}

struct Generations<K, V> {
    young: HashMap<K, CarriedEntry<V>>,
    old: HashMap<K, CarriedEntry<V>>,
    young_weight: usize,
}

/// Whole results (LookupResources plans, LookupSubjects results) kept per key, each for the
/// revision it was computed at and, vouched for by the record of recent writes, later ones;
/// bounded by total weight in two generations. See the module docs.
struct CarriedMap<K, V> {
    entries: Mutex<Generations<K, V>>,
    /// Total weight the values may have; a value heavier than an eighth of it is not kept.
    budget: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<K: std::hash::Hash + Eq + Clone, V> CarriedMap<K, V> {
    fn new(budget: usize) -> Self {
        CarriedMap {
            entries: Mutex::new(Generations {
                young: HashMap::new(),
                old: HashMap::new(),
                young_weight: 0,
            }),
            budget,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The value for `key` that holds at `revision` and snapshot time `now`.
    fn get(
        &self,
        key: &K,
        revision: Revision,
        now: Timestamp,
        recent: Option<&RecentWrites>,
    ) -> Option<Arc<V>> {
        let found = {
            let mut guard = self.entries.lock();
            let g = &mut *guard;
            if !g.young.contains_key(key)
                && let Some(e) = g.old.remove(key)
            {
                g.young_weight += e.weight;
                g.young.insert(key.clone(), e);
            }
            g.young.get(key).and_then(|e| {
                if !e.holds_at(now) || e.revision > revision {
                    None
                } else if e.revision == revision {
                    Some((Arc::clone(&e.value), None))
                } else {
                    e.deps
                        .as_ref()
                        .map(|d| (Arc::clone(&e.value), Some((Arc::clone(d), e.revision))))
                }
            })
        };
        let value = match found {
            Some((value, None)) => Some(value),
            Some((value, Some((deps, since)))) => recent
                .is_some_and(|r| r.unchanged_since(&deps, since))
                .then(|| {
                    if let Some(e) = self.entries.lock().young.get_mut(key)
                        && e.revision == since
                    {
                        e.revision = revision;
                    }
                    value
                }),
            None => None,
        };
        let counter = if value.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        value
    }

    /// Remembers `entry` for `key`, unless a newer one is there or it is too heavy.
    fn insert(&self, key: K, entry: CarriedEntry<V>) {
        if entry.weight > self.budget / 8 || entry.expires.is_some_and(|e| e <= entry.computed_at) {
            return;
        }
        let mut guard = self.entries.lock();
        let g = &mut *guard;
        if g.young
            .get(&key)
            .or_else(|| g.old.get(&key))
            .is_some_and(|e| e.revision > entry.revision)
        {
            return;
        }
        g.old.remove(&key);
        if let Some(e) = g.young.remove(&key) {
            g.young_weight -= e.weight;
        }
        if g.young_weight + entry.weight > self.budget / 2 {
            g.old = std::mem::take(&mut g.young);
            g.young_weight = 0;
        }
        g.young_weight += entry.weight;
        g.young.insert(key, entry);
    }
}

/// Counters of a [`CheckCache`] since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckCacheStats {
    pub hits: u64,
    /// Hits served at a later revision than the answer was computed at (part of `hits`).
    pub carried: u64,
    pub misses: u64,
    pub entries: usize,
    /// LookupResources plans found (carried ones included) and not found.
    pub plan_hits: u64,
    pub plan_misses: u64,
    /// Context-free LookupSubjects results found (carried ones included) and not found.
    pub subjects_hits: u64,
    pub subjects_misses: u64,
}

/// The full key of a lookup, borrowed (what a lookup has at hand).
pub(crate) struct KeyRef<'k> {
    /// The revision of the request's snapshot.
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
    /// What the answer read, sorted and without repeats (at most [`MAX_DEPS`]); `None` when
    /// unknown, which keeps the answer to its own revision.
    pub deps: Option<Arc<[ReadKey]>>,
}

struct Entry {
    /// The newest revision the answer is known to hold at.
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
        self.node == key.node && *self.object_id == *key.object_id && *self.subject == *key.subject
    }

    fn holds_at(&self, now: Timestamp) -> bool {
        self.computed_at <= now && self.value.expires.is_none_or(|e| now < e)
    }
}

/// What a shard holds for a key.
enum Found {
    Miss,
    /// Computed at the requested revision.
    Hit(Cached),
    /// Computed at this earlier revision: a hit if nothing it read has changed since.
    Carry(Cached, Revision),
}

type HashedMap = HashMap<u64, Entry, BuildHasherDefault<IdentityHasher>>;

#[derive(Default)]
struct Shard {
    young: HashedMap,
    old: HashedMap,
}

impl Shard {
    fn entry_mut(&mut self, hash: u64) -> Option<&mut Entry> {
        match self.young.get_mut(&hash) {
            Some(e) => Some(e),
            None => self.old.get_mut(&hash),
        }
    }
}

impl CheckCache {
    /// A cache holding at most about `max_entries` answers, each for its own revision only;
    /// 0 disables it.
    pub fn new(max_entries: usize) -> Self {
        CheckCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::default(),
            generation_capacity: max_entries.div_ceil(SHARDS * 2),
            recent: None,
            // A window of twice as many first offers as the cache holds entries, so a hot
            // set as large as the cache is seen twice within one; eight bits per first offer:
            // with two bits per key, a key seen once is taken for one seen twice about 5 % of
            // the time when the window is full. (16 bits per entry: 512 KiB at the default.)
            doorkeeper: (0..(max_entries * 16).div_ceil(64).max(1).next_power_of_two())
                .map(|_| AtomicU64::new(0))
                .collect(),
            first_offers: AtomicUsize::new(0),
            doorkeeper_window: (max_entries * 2).max(1),
            // A plan weighs about one unit per group, folder or stream it reaches, a
            // LookupSubjects result one per subject (see `Made::entry`).
            plans: CarriedMap::new(max_entries),
            subjects: CarriedMap::new(max_entries),
            hits: AtomicU64::new(0),
            carried: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Lets answers serve later revisions, vouched for by `recent`: the record of every write
    /// to the store whose snapshots the cache's answers come from
    /// ([`crate::store::Store::recent_writes`]).
    pub fn carried_by(mut self, recent: Option<Arc<RecentWrites>>) -> Self {
        self.recent = recent;
        self
    }

    /// The record of recent writes answers are checked against, if any: evaluations note
    /// what they read (as keys of this record) only when there is one.
    pub(crate) fn recent(&self) -> Option<&RecentWrites> {
        self.recent.as_deref()
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
            carried: self.carried.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries,
            plan_hits: self.plans.hits.load(Ordering::Relaxed),
            plan_misses: self.plans.misses.load(Ordering::Relaxed),
            subjects_hits: self.subjects.hits.load(Ordering::Relaxed),
            subjects_misses: self.subjects.misses.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.generation_capacity > 0
    }

    fn hash(&self, key: &KeyRef<'_>) -> u64 {
        let mut h = self.hasher.build_hasher();
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

    /// The answer for `key` if one holds at its revision and snapshot time `now`.
    pub(crate) fn get(&self, key: &KeyRef<'_>, now: Timestamp) -> Option<Cached> {
        if !self.enabled() {
            return None;
        }
        let hash = self.hash(key);
        let found = match self.find(hash, key, now) {
            Found::Miss => None,
            Found::Hit(v) => Some(v),
            Found::Carry(v, since) => {
                let deps = v.deps.as_deref().unwrap_or_default();
                let unchanged = self
                    .recent
                    .as_ref()
                    .is_some_and(|r| r.unchanged_since(deps, since));
                unchanged.then(|| {
                    self.advance(hash, key, since);
                    self.carried.fetch_add(1, Ordering::Relaxed);
                    v
                })
            }
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// What the shard holds for `key`, promoting a usable entry out of the old generation.
    fn find(&self, hash: u64, key: &KeyRef<'_>, now: Timestamp) -> Found {
        let mut guard = self.shard(hash).lock();
        let shard = &mut *guard;
        let (entry, old) = match shard.young.get(&hash) {
            Some(e) => (e, false),
            None => match shard.old.get(&hash) {
                Some(e) => (e, true),
                None => return Found::Miss,
            },
        };
        if !(entry.matches(key) && entry.holds_at(now)) {
            return Found::Miss;
        }
        let found = if entry.revision == key.revision {
            Found::Hit(entry.value.clone())
        } else if entry.revision < key.revision
            && self.recent.is_some()
            && entry.value.deps.is_some()
        {
            Found::Carry(entry.value.clone(), entry.revision)
        } else {
            return Found::Miss;
        };
        if old && let Some(e) = shard.old.remove(&hash) {
            // Still in use: promote so the next rotation keeps it.
            self.insert_young(shard, hash, e);
        }
        found
    }

    /// Moves the entry for `key`, vouched for from `since` to `key.revision`, to that revision.
    fn advance(&self, hash: u64, key: &KeyRef<'_>, since: Revision) {
        let mut shard = self.shard(hash).lock();
        if let Some(e) = shard.entry_mut(hash)
            && e.revision == since
            && e.matches(key)
        {
            e.revision = key.revision;
        }
    }

    /// Whether an answer for `key` should be stored: true when the key was offered before in
    /// the doorkeeper's window (see the module docs). Every call counts as an offer.
    pub(crate) fn admit(&self, key: &KeyRef<'_>) -> bool {
        if !self.enabled() {
            return false;
        }
        let hash = self.hash(key);
        let bits = self.doorkeeper.len() * 64;
        // Two positions from independent halves of the hash.
        let positions = [hash as usize % bits, (hash >> 32) as usize % bits];
        let seen = positions
            .iter()
            .all(|&p| self.doorkeeper[p / 64].load(Ordering::Relaxed) & (1 << (p % 64)) != 0);
        if seen {
            return true;
        }
        for p in positions {
            self.doorkeeper[p / 64].fetch_or(1 << (p % 64), Ordering::Relaxed);
        }
        if self.first_offers.fetch_add(1, Ordering::Relaxed) + 1 >= self.doorkeeper_window {
            // Races here only blur which keys count as seen: admission, never an answer.
            self.first_offers.store(0, Ordering::Relaxed);
            for word in self.doorkeeper.iter() {
                word.store(0, Ordering::Relaxed);
            }
        }
        false
    }

    /// Remembers `value` for `key`, computed at snapshot time `computed_at`. An entry for the
    /// same key from a newer revision is kept instead.
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
        let mut guard = self.shard(hash).lock();
        let shard = &mut *guard;
        if shard
            .entry_mut(hash)
            .is_some_and(|e| e.matches(key) && e.revision > key.revision)
        {
            return;
        }
        shard.old.remove(&hash);
        self.insert_young(shard, hash, entry);
    }

    /// The cached plan of `node` for `subject` that holds at `revision` and snapshot time `now`.
    pub(crate) fn plan(
        &self,
        node: NodeId,
        subject: &str,
        revision: Revision,
        now: Timestamp,
    ) -> Option<Arc<LookupPlan>> {
        if !self.enabled() {
            return None;
        }
        self.plans
            .get(&(node, subject.to_string()), revision, now, self.recent())
    }

    /// Whether a plan of `node` for `subject` should be kept: the doorkeeper's answer
    /// ([`CheckCache::admit`]), so a lookup made once is not kept.
    pub(crate) fn admit_plan(&self, node: NodeId, subject: &str) -> bool {
        // An empty object id: no check key has one.
        self.admit(&KeyRef {
            revision: Revision::ZERO,
            node,
            object_id: "",
            subject,
        })
    }

    /// As [`CheckCache::admit_plan`] for a LookupSubjects result.
    pub(crate) fn admit_subjects(&self, key: &SubjectsKey) -> bool {
        // A subject type (and relation) names no subject: no check key has it.
        let subjects = match &key.3 {
            Some(relation) => format!("{}#{relation}", key.2),
            None => key.2.clone(),
        };
        self.admit(&KeyRef {
            revision: Revision::ZERO,
            node: key.0,
            object_id: &key.1,
            subject: &subjects,
        })
    }

    /// Remembers `plan` of `node` for `subject`; see [`Made`].
    pub(crate) fn insert_plan(
        &self,
        node: NodeId,
        subject: &str,
        made: Made,
        plan: Arc<LookupPlan>,
    ) {
        if self.enabled() {
            let weight = plan.weight();
            self.plans.insert(
                (node, subject.to_string()),
                made.entry(plan, weight, subject.len()),
            );
        }
    }

    /// The cached LookupSubjects result for `key` (context-free requests only) that holds at
    /// `revision` and snapshot time `now`.
    pub(crate) fn subjects(
        &self,
        key: &SubjectsKey,
        revision: Revision,
        now: Timestamp,
    ) -> Option<Arc<Vec<LookupSubject>>> {
        if !self.enabled() {
            return None;
        }
        self.subjects.get(key, revision, now, self.recent())
    }

    /// Remembers a LookupSubjects result; see [`Made`].
    pub(crate) fn insert_subjects(
        &self,
        key: SubjectsKey,
        made: Made,
        subjects: Arc<Vec<LookupSubject>>,
    ) {
        if self.enabled() {
            let weight = subjects.len();
            let key_bytes = key.1.len() + key.2.len() + key.3.as_ref().map_or(0, String::len);
            self.subjects
                .insert(key, made.entry(subjects, weight, key_bytes));
        }
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
            .field("carried", &self.recent.is_some())
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
            deps: None,
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
            // Touch the hot entry now and then, as a busy request path would: every 4 inserts,
            // so that however the hash spreads them, fewer than the 5 it takes to push an
            // entry through both generations of its shard (4 per generation) arrive between
            // two touches.
            if i % 4 == 0 {
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
    fn carries_an_answer_while_the_record_vouches_for_its_reads() {
        use crate::model::{RelationshipFilter, parse_relationship};
        use crate::store::{RelationshipUpdate, WriteOp};
        let recent = Arc::new(RecentWrites::new(Revision(5)));
        let cache = CheckCache::new(1024).carried_by(Some(Arc::clone(&recent)));
        let read = |id: &str| {
            recent
                .read_key(&RelationshipFilter {
                    resource_type: Some("document".into()),
                    resource_id: Some(id.into()),
                    relation: Some("viewer".into()),
                    ..Default::default()
                })
                .expect("key")
        };
        let write = |rev: u64, text: &str| {
            let change = RelationshipUpdate {
                op: WriteOp::Touch,
                relationship: parse_relationship(text).expect("relationship"),
            };
            recent.record(Revision(rev), &[change], false);
        };
        let s: Arc<str> = "user:alice".into();
        let mut v = has(None);
        v.deps = Some(Arc::from(vec![read("doc")]));
        cache.insert(&key(5, "doc", "user:alice"), &s, t(0), v);
        write(6, "document:other#viewer@user:bob");
        // Carried to 7, and moved there: 7 is now its own revision.
        assert!(cache.get(&key(7, "doc", "user:alice"), t(1)).is_some());
        assert_eq!(cache.stats().carried, 1);
        assert!(cache.get(&key(7, "doc", "user:alice"), t(1)).is_some());
        assert_eq!(cache.stats().carried, 1);
        // Never served to an older revision.
        assert!(cache.get(&key(6, "doc", "user:alice"), t(1)).is_none());
        // A write to what it read ends the carry.
        write(8, "document:doc#viewer@user:bob");
        assert!(cache.get(&key(8, "doc", "user:alice"), t(1)).is_none());
        assert!(cache.get(&key(9, "doc", "user:alice"), t(1)).is_none());
        // An answer without known reads answers its own revision only.
        cache.insert(&key(9, "x", "user:alice"), &s, t(0), has(None));
        assert!(cache.get(&key(10, "x", "user:alice"), t(1)).is_none());
        // An older answer does not replace a newer one for the same key.
        cache.insert(&key(9, "y", "user:alice"), &s, t(0), has(None));
        cache.insert(&key(3, "y", "user:alice"), &s, t(0), has(None));
        assert!(cache.get(&key(9, "y", "user:alice"), t(1)).is_some());
    }

    #[test]
    fn admits_what_is_offered_twice_within_the_window() {
        let cache = CheckCache::new(64);
        assert!(!cache.admit(&key(1, "doc", "user:alice")));
        assert!(cache.admit(&key(1, "doc", "user:alice")));
        assert!(cache.admit(&key(2, "doc", "user:alice")), "any revision");
        // A full window forgets every first offer: right after it is cleared, nothing counts
        // as seen.
        let mut i = 0;
        loop {
            i += 1;
            let first = !cache.admit(&key(1, &format!("cold{i}"), "user:alice"));
            if first && cache.first_offers.load(Ordering::Relaxed) == 0 {
                break;
            }
            assert!(i < 10_000, "the window never filled");
        }
        assert!(!cache.admit(&key(1, "doc", "user:alice")));
        assert!(!CheckCache::new(0).admit(&key(1, "doc", "user:alice")));
    }

    #[test]
    fn whole_results_stay_within_their_weight_budget() {
        let cache = CheckCache::new(64);
        let budget = cache.subjects.budget;
        let made = |rev: u64| Made {
            revision: Revision(rev),
            computed_at: t(0),
            expires: None,
            deps: Some(Arc::from(vec![1u64, 2, 3, 4])),
        };
        let result = |n: usize| {
            Arc::new(
                (0..n)
                    .map(|i| LookupSubject {
                        subject_id: format!("u{i}"),
                        outcome: CheckOutcome::Has,
                        excluded: Vec::new(),
                    })
                    .collect::<Vec<_>>(),
            )
        };
        for i in 0..1000 {
            let key: SubjectsKey = (1, format!("doc{i}"), "user".into(), None);
            cache.insert_subjects(key, made(1), result(i % 7));
            let g = cache.subjects.entries.lock();
            let total: usize = g
                .young
                .values()
                .chain(g.old.values())
                .map(|e| e.weight)
                .sum();
            assert!(total <= budget, "{total} > {budget}");
        }
        // Too heavy for an eighth of the budget: not kept.
        let key: SubjectsKey = (1, "big".into(), "user".into(), None);
        cache.insert_subjects(key.clone(), made(1), result(budget / 8));
        assert!(cache.subjects(&key, Revision(1), t(1)).is_none());
        // A recent one is found at its revision, not at an older one.
        let key: SubjectsKey = (1, "doc999".into(), "user".into(), None);
        assert!(cache.subjects(&key, Revision(1), t(1)).is_some());
        assert!(cache.subjects(&key, Revision(0), t(1)).is_none());
    }

    #[test]
    fn whole_results_are_admitted_on_their_second_offer() {
        let cache = CheckCache::new(64);
        assert!(!cache.admit_plan(3, "user:alice"));
        assert!(cache.admit_plan(3, "user:alice"));
        let key: SubjectsKey = (3, "doc".into(), "user".into(), None);
        assert!(!cache.admit_subjects(&key));
        assert!(cache.admit_subjects(&key));
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
