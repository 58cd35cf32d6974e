//! The check cache carrying answers across revisions (`engine/cache.rs`, `store/recent.rs`):
//! hand-made histories where a write changes exactly one thing an earlier answer read —
//! including reads an evaluation makes once and reuses (a subject's memberships on a nesting
//! relation, the nested-group index's state) — and where writes elsewhere leave it carried.

// Test helpers outside `#[test]` functions fail loudly by design.
#![allow(clippy::unwrap_used)]

use crate::reference::{object, subject_ref};

use std::sync::Arc;

use tessera::engine::{CheckCache, CheckOutcome, EngineConfig, Evaluator, SchemaIndex};
use tessera::model::{Context, parse_relationship};
use tessera::schema::Schema;
use tessera::store::memory::MemoryStore;
use tessera::store::{RelationshipUpdate, Store, WriteOp, WriteTransaction};

use CheckOutcome::{Has, No};

const SCHEMA: &str = r#"
definition user {}

definition team {
    relation member: user
}

definition group {
    relation member: user | group#member | team#member
}

definition document {
    relation group: group
    relation viewer: user | group#member
    permission view = viewer + group->member
    permission via_group = group->member
    permission either = viewer + via_group
}
"#;

struct World {
    schema: Arc<Schema>,
    index: SchemaIndex,
    store: MemoryStore,
    cache: CheckCache,
    config: EngineConfig,
}

impl World {
    /// The schema written to the store (so the nested-group index is maintained), then
    /// `relationships`; a cache carried by the store's record of recent writes.
    fn new(relationships: &[&str]) -> World {
        let schema = tessera::schema::compile("carry.zed", SCHEMA)
            .unwrap()
            .schema;
        let store = MemoryStore::new();
        store.write_schema(SCHEMA, &mut |_| Ok(()), None).unwrap();
        let world = World {
            index: SchemaIndex::new(&schema),
            schema,
            cache: CheckCache::new(4096).carried_by(store.recent_writes()),
            store,
            config: EngineConfig::default(),
        };
        world.write(WriteOp::Touch, relationships);
        world
    }

    fn write(&self, op: WriteOp, relationships: &[&str]) {
        self.store
            .write(WriteTransaction {
                updates: relationships
                    .iter()
                    .map(|t| RelationshipUpdate {
                        op,
                        relationship: parse_relationship(t).unwrap(),
                    })
                    .collect(),
                ..Default::default()
            })
            .unwrap();
    }

    /// A context-free check at the head, through the shared cache.
    fn check(&self, resource: &str, permission: &str, subject: &str) -> CheckOutcome {
        let snapshot = self
            .store
            .snapshot(self.store.head_revision().unwrap())
            .unwrap();
        Evaluator::with_index(&self.schema, &self.index, &*snapshot, &self.config)
            .with_cache(&self.cache)
            .check(
                &object(resource),
                permission,
                &subject_ref(subject),
                &Context::new(),
            )
            .unwrap()
    }

    /// [`World::check`] twice: the cache stores answers the second time they are computed
    /// (its doorkeeper), so afterwards every cacheable sub-problem of this check is cached.
    fn warm(&self, resource: &str, permission: &str, subject: &str) -> CheckOutcome {
        let first = self.check(resource, permission, subject);
        assert_eq!(self.check(resource, permission, subject), first);
        first
    }

    fn carried(&self) -> u64 {
        self.cache.stats().carried
    }
}

#[test]
fn an_answer_is_carried_past_unrelated_writes_and_dropped_by_a_related_one() {
    let w = World::new(&["document:d#viewer@user:alice", "document:e#viewer@user:bob"]);
    assert_eq!(w.warm("document:d", "view", "user:alice"), Has);
    w.write(WriteOp::Touch, &["document:e#viewer@user:carol"]);
    w.write(WriteOp::Touch, &["group:other#member@user:alice"]);
    assert_eq!(w.check("document:d", "view", "user:alice"), Has);
    assert!(w.carried() >= 1, "the answer was not carried");
    let carried = w.carried();

    w.write(WriteOp::Delete, &["document:d#viewer@user:alice"]);
    assert_eq!(w.check("document:d", "view", "user:alice"), No);
    assert_eq!(w.carried(), carried, "a stale answer was carried");
}

#[test]
fn a_negative_answer_is_dropped_when_a_grant_appears_through_a_group() {
    let w = World::new(&[
        "document:d#viewer@group:eng#member",
        "group:eng#member@group:backend#member",
        "group:backend#member@user:bob",
    ]);
    assert_eq!(w.warm("document:d", "view", "user:alice"), No);
    w.write(WriteOp::Touch, &["document:x#viewer@user:alice"]);
    assert_eq!(w.check("document:d", "view", "user:alice"), No);
    assert!(w.carried() >= 1);
    // Two levels down: the document's own relationships are unchanged.
    w.write(WriteOp::Touch, &["group:backend#member@user:alice"]);
    assert_eq!(w.check("document:d", "view", "user:alice"), Has);
    // And a new nesting, which changes the index rather than the subject's memberships.
    w.write(WriteOp::Delete, &["group:backend#member@user:alice"]);
    assert_eq!(w.check("document:d", "view", "user:alice"), No);
    w.write(
        WriteOp::Touch,
        &[
            "group:ops#member@user:alice",
            "group:other#member@user:dave",
        ],
    );
    assert_eq!(w.check("document:d", "view", "user:alice"), No);
    w.write(WriteOp::Touch, &["group:backend#member@group:ops#member"]);
    assert_eq!(w.check("document:d", "view", "user:alice"), Has);
}

/// `document:d#view` reaches `group:g1#member` and then `group:g2#member` in one run; the
/// subject's memberships on `group#member` are read for the first and reused for the second,
/// so the second's cached answer must still depend on them.
#[test]
fn reads_reused_within_a_run_stay_dependencies_of_every_answer() {
    let w = World::new(&[
        "document:d#group@group:g1",
        "document:d#group@group:g2",
        "group:g1#member@user:bob",
        "group:g2#member@user:bob",
    ]);
    assert_eq!(w.warm("document:d", "view", "user:alice"), No);
    w.write(WriteOp::Touch, &["group:g2#member@user:alice"]);
    assert_eq!(w.check("document:d", "view", "user:alice"), Has);
    assert_eq!(w.check("group:g2", "member", "user:alice"), Has);
}

/// A sub-problem solved once in a run and recalled from the run's memo by a later answer is a
/// dependency of that answer too: `either` solves `group:g1#member` under `viewer`, and
/// `via_group` recalls it.
#[test]
fn answers_recalled_within_a_run_stay_dependencies() {
    let w = World::new(&[
        "document:d#viewer@group:g1#member",
        "document:d#group@group:g1",
        "group:g1#member@user:bob",
    ]);
    assert_eq!(w.warm("document:d", "either", "user:alice"), No);
    w.write(WriteOp::Touch, &["group:g1#member@user:alice"]);
    assert_eq!(w.check("document:d", "via_group", "user:alice"), Has);
}

/// As above for the nested-group index's state, read once per run: `group:g2` becomes
/// irregular (a team is a member), which only the state records.
#[test]
fn the_index_state_is_a_dependency_of_every_answer_that_used_it() {
    let w = World::new(&[
        "document:d#group@group:g1",
        "document:d#group@group:g2",
        "group:g1#member@user:bob",
        "group:g2#member@user:bob",
        "team:t#member@user:alice",
    ]);
    assert_eq!(w.warm("document:d", "view", "user:alice"), No);
    w.write(WriteOp::Touch, &["group:g2#member@team:t#member"]);
    assert_eq!(w.check("document:d", "view", "user:alice"), Has);
    assert_eq!(w.check("group:g2", "member", "user:alice"), Has);
}

#[test]
fn a_schema_write_ends_every_carry() {
    let w = World::new(&["document:d#viewer@user:alice"]);
    assert_eq!(w.warm("document:d", "view", "user:alice"), Has);
    w.store.write_schema(SCHEMA, &mut |_| Ok(()), None).unwrap();
    let before = w.carried();
    assert_eq!(w.check("document:d", "view", "user:alice"), Has);
    assert_eq!(w.carried(), before);
}

#[test]
fn without_a_record_of_writes_answers_serve_their_own_revision_only() {
    let w = World::new(&["document:d#viewer@user:alice"]);
    let cache = CheckCache::new(4096);
    let check = |cache: &CheckCache| {
        let snapshot = w.store.snapshot(w.store.head_revision().unwrap()).unwrap();
        Evaluator::with_index(&w.schema, &w.index, &*snapshot, &w.config)
            .with_cache(cache)
            .check(
                &object("document:d"),
                "view",
                &subject_ref("user:alice"),
                &Context::new(),
            )
            .unwrap()
    };
    assert_eq!(check(&cache), Has);
    assert_eq!(check(&cache), Has);
    assert_eq!(check(&cache), Has);
    let hits = cache.stats().hits;
    assert!(hits >= 1);
    w.write(WriteOp::Touch, &["document:e#viewer@user:bob"]);
    assert_eq!(check(&cache), Has);
    assert_eq!(cache.stats().hits, hits);
    assert_eq!(cache.stats().carried, 0);
}

/// The ids LookupResources finds for `document#view` at the head, through the shared cache.
fn lookup(w: &World, subject: &str) -> Vec<String> {
    let snapshot = w.store.snapshot(w.store.head_revision().unwrap()).unwrap();
    Evaluator::with_index(&w.schema, &w.index, &*snapshot, &w.config)
        .with_cache(&w.cache)
        .lookup_resources("document", "view", &subject_ref(subject), &Context::new())
        .unwrap()
        .into_iter()
        .map(|r| r.resource_id)
        .collect()
}

#[test]
fn a_lookup_plan_is_carried_past_unrelated_writes_and_dropped_by_a_related_one() {
    let w = World::new(&[
        "document:a#viewer@group:eng#member",
        "document:b#viewer@group:ops#member",
        "group:eng#member@user:alice",
    ]);
    // Twice: the cache keeps a plan made a second time (its doorkeeper).
    assert_eq!(lookup(&w, "user:alice"), ["a"]);
    assert_eq!(lookup(&w, "user:alice"), ["a"]);
    assert_eq!(w.cache.stats().plan_misses, 2);
    // Unrelated: another user's membership. New documents of a group alice is in are read
    // by the streams, not the plan.
    w.write(
        WriteOp::Touch,
        &[
            "group:ops#member@user:bob",
            "document:c#viewer@group:eng#member",
        ],
    );
    assert_eq!(lookup(&w, "user:alice"), ["a", "c"]);
    assert_eq!(w.cache.stats().plan_hits, 1, "the plan was not carried");
    // Related: alice joins ops, which the plan's walk read.
    w.write(WriteOp::Touch, &["group:ops#member@user:alice"]);
    assert_eq!(lookup(&w, "user:alice"), ["a", "b", "c"]);
    assert_eq!(w.cache.stats().plan_misses, 3);
    // And through nesting: ops leaves alice, eng is put inside a group with a document.
    w.write(WriteOp::Delete, &["group:ops#member@user:alice"]);
    assert_eq!(lookup(&w, "user:alice"), ["a", "c"]);
    w.write(
        WriteOp::Touch,
        &[
            "group:all#member@group:eng#member",
            "document:d#viewer@group:all#member",
        ],
    );
    assert_eq!(lookup(&w, "user:alice"), ["a", "c", "d"]);
}

#[test]
fn a_cached_lookup_plan_is_not_served_past_an_expiration() {
    use std::sync::atomic::Ordering;

    let (store, offset) = crate::reference::store_at_2030();
    let schema = SCHEMA.replace(
        "relation member: user | group#member | team#member",
        "relation member: user with expiration | group#member | team#member",
    );
    let schema = format!("use expiration\n{schema}");
    store.write_schema(&schema, &mut |_| Ok(()), None).unwrap();
    let compiled = tessera::schema::compile("carry.zed", &schema)
        .unwrap()
        .schema;
    let w = World {
        index: SchemaIndex::new(&compiled),
        schema: compiled,
        cache: CheckCache::new(4096).carried_by(store.recent_writes()),
        store,
        config: EngineConfig::default(),
    };
    w.write(
        WriteOp::Touch,
        &[
            "document:a#viewer@group:eng#member",
            "group:eng#member@user:alice[expiration:2030-01-01T00:01:00Z]",
        ],
    );
    assert_eq!(lookup(&w, "user:alice"), ["a"]);
    assert_eq!(lookup(&w, "user:alice"), ["a"]);
    offset.store(30, Ordering::SeqCst);
    assert_eq!(lookup(&w, "user:alice"), ["a"]);
    assert_eq!(w.cache.stats().plan_hits, 1);
    offset.store(60, Ordering::SeqCst);
    assert!(
        lookup(&w, "user:alice").is_empty(),
        "served a plan past its expiry"
    );
}

/// The subjects LookupSubjects finds for `resource#view` of type user, through the cache.
fn subjects(w: &World, resource: &str) -> Vec<String> {
    let snapshot = w.store.snapshot(w.store.head_revision().unwrap()).unwrap();
    Evaluator::with_index(&w.schema, &w.index, &*snapshot, &w.config)
        .with_cache(&w.cache)
        .lookup_subjects(&object(resource), "view", "user", None, &Context::new())
        .unwrap()
        .into_iter()
        .map(|s| s.subject_id)
        .collect()
}

#[test]
fn a_lookup_subjects_result_is_carried_past_unrelated_writes_and_dropped_by_a_related_one() {
    let w = World::new(&[
        "document:a#viewer@group:eng#member",
        "document:a#viewer@user:carol",
        "group:eng#member@group:backend#member",
        "group:backend#member@user:alice",
    ]);
    // Twice: the cache keeps a result computed a second time (its doorkeeper).
    assert_eq!(subjects(&w, "document:a"), ["alice", "carol"]);
    assert_eq!(subjects(&w, "document:a"), ["alice", "carol"]);
    w.write(
        WriteOp::Touch,
        &["document:b#viewer@user:dave", "group:ops#member@user:erin"],
    );
    assert_eq!(subjects(&w, "document:a"), ["alice", "carol"]);
    assert_eq!(
        w.cache.stats().subjects_hits,
        1,
        "the result was not carried"
    );
    // Two levels down.
    w.write(WriteOp::Touch, &["group:backend#member@user:bob"]);
    assert_eq!(subjects(&w, "document:a"), ["alice", "bob", "carol"]);
    // Through a new nesting.
    w.write(WriteOp::Touch, &["group:backend#member@group:ops#member"]);
    assert_eq!(
        subjects(&w, "document:a"),
        ["alice", "bob", "carol", "erin"]
    );
    w.write(WriteOp::Delete, &["document:a#viewer@user:carol"]);
    assert_eq!(subjects(&w, "document:a"), ["alice", "bob", "erin"]);
}
