//! The store conformance suite: the behaviour every [`Store`] must have, written once and run
//! against each implementation. A store's test file is one macro call:
//!
//! ```ignore
//! use tessera::store::{Store, memory::MemoryStore};
//! tessera::store_conformance_tests!(|| -> Box<dyn Store> { Box::new(MemoryStore::new()) });
//! ```
//!
//! which expands to one `#[test]` per case (in a module `store_conformance`), each calling the
//! case function of the same name here with the factory. Every case gets a fresh, empty store.
//!
//! Besides the trait docs, the suite pins down these decisions, which every store shares:
//! - Every successful `write`, `delete_by_filter`, `write_schema` and `bulk_import` commits
//!   exactly one revision, the previous head plus one (revisions are dense), even when it
//!   changes nothing; its change set then has empty `changes`.
//! - A failed call (any error) changes nothing and consumes no revision.
//! - Writes judge expiry at commit time: an expired relationship is absent for CREATE
//!   (which succeeds over it), DELETE (a no-op), preconditions and delete-by-filter.
//! - A DELETE change records the relationship as it was stored (caveat and expiration).
//! - `read_changes(after)` fails with `RevisionInFuture` when `after` is past the head and with
//!   `RevisionTooOld` when it is older than the oldest readable revision.
//! - A transaction's metadata comes back from the change log exactly as written (JSON value
//!   for value, including an otherwise empty transaction's); schema writes and bulk imports
//!   carry none.
//!
//! - The nested-group index (`leopard.rs`) is part of every write: its rows are in the same
//!   revision (and change set) as the relationships that made them necessary, so every store
//!   holds the same index at every revision.
//!
//! GC-window behaviour needs control of the store's clock, so it is tested per store.

// `StoreError` (the trait's error type, carrying a `RelationshipKey`) is large by design.
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::sync::Barrier;

use super::{
    ChangeSet, DeleteByFilter, Precondition, PreconditionKind, RelationshipUpdate, Snapshot, Store,
    StoreError, WriteOp, WriteTransaction,
};
use crate::model::{
    Relationship, RelationshipFilter, RelationshipKey, Revision, SubjectFilter,
    SubjectRelationFilter, Timestamp, format_relationship, parse_relationship,
};

/// Makes fresh, empty stores for the suite.
pub trait StoreFactory {
    fn new_store(&self) -> Box<dyn Store>;
}

impl<F: Fn() -> Box<dyn Store>> StoreFactory for F {
    fn new_store(&self) -> Box<dyn Store> {
        self()
    }
}

/// Expands to one `#[test]` per conformance case, in a module `store_conformance`, each run
/// with a store from `$factory` (a [`StoreFactory`](crate::store::conformance::StoreFactory),
/// e.g. a closure returning `Box<dyn Store>`; evaluated once per test).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@cases ($factory)
            empty_store_starts_at_revision_zero
            revisions_are_dense_and_strictly_increasing
            create_round_trips_every_field
            create_over_live_relationship_fails
            touch_creates_and_replaces_caveat_and_expiration
            delete_removes_and_deleting_absent_is_a_noop
            same_relationship_twice_in_one_write_fails
            expired_relationships_are_invisible
            expired_relationships_can_be_created_again
            writes_treat_expired_relationships_as_absent
            query_by_resource_type_and_id
            query_by_resource_id_prefix
            query_by_relation
            query_by_subject_type_and_id
            query_by_subject_relation
            query_without_resource_type
            query_returns_the_documented_order
            query_cursor_pages_through_everything_once
            query_cursor_respects_the_filter
            reverse_query_by_subject
            reverse_query_restricted_to_resource_type_and_relation
            reverse_query_by_subject_type_only
            snapshots_are_isolated_from_later_writes
            snapshot_is_stable_while_another_thread_writes
            long_scan_is_consistent_under_concurrent_deletes
            sparse_matches_across_a_large_range
            precondition_must_match
            precondition_must_not_match
            precondition_failure_names_index_and_filter
            failed_calls_consume_no_revision
            delete_by_filter_deletes_every_match
            delete_by_filter_over_limit_deletes_nothing
            delete_by_filter_partial_deletes_up_to_limit
            delete_by_filter_at_limit_is_complete
            delete_by_filter_checks_preconditions
            schema_versions_follow_revisions
            schema_check_sees_latest_state_and_can_reject
            writes_validated_against_a_replaced_schema_fail
            bulk_import_commits_one_revision
            bulk_import_is_all_or_nothing
            change_log_records_effective_changes
            change_log_keeps_transaction_metadata
            change_log_after_and_limit
            future_revisions_are_rejected
            concurrent_writers_get_unique_dense_revisions
            precondition_race_has_exactly_one_winner
            special_characters_and_long_ids_round_trip
            wildcard_subjects_are_stored_and_queried
            reader_agrees_with_query_across_interleaved_reads
            reader_pages_reverse_reads_in_id_order
            nested_group_index_follows_every_kind_of_write
            nested_group_index_is_built_and_dropped_with_the_schema
        );
    };
    (@cases ($factory:expr) $($case:ident)*) => {
        mod store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    let factory = $factory;
                    $crate::store::conformance::$case(&factory);
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------
// Helpers

#[track_caller]
fn ok<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e}"),
    }
}

#[track_caller]
fn rel(text: &str) -> Relationship {
    match parse_relationship(text) {
        Ok(r) => r,
        Err(e) => panic!("bad test relationship `{text}`: {e}"),
    }
}

#[track_caller]
fn key(text: &str) -> RelationshipKey {
    rel(text).key()
}

fn update(op: WriteOp, text: &str) -> RelationshipUpdate {
    RelationshipUpdate {
        op,
        relationship: rel(text),
    }
}

fn txn(ops: &[(WriteOp, &str)]) -> WriteTransaction {
    WriteTransaction {
        updates: ops.iter().map(|(op, t)| update(*op, t)).collect(),
        preconditions: Vec::new(),
        caller: None,
        metadata: Default::default(),
        schema_revision: None,
    }
}

#[track_caller]
fn write(store: &dyn Store, ops: &[(WriteOp, &str)]) -> Revision {
    ok(store.write(txn(ops)), "write")
}

#[track_caller]
fn create(store: &dyn Store, texts: &[&str]) -> Revision {
    let ops: Vec<(WriteOp, &str)> = texts.iter().map(|t| (WriteOp::Create, *t)).collect();
    write(store, &ops)
}

#[track_caller]
fn snap(store: &dyn Store, rev: Revision) -> std::sync::Arc<dyn Snapshot> {
    ok(store.snapshot(rev), "snapshot")
}

#[track_caller]
fn head(store: &dyn Store) -> Revision {
    ok(store.head_revision(), "head_revision")
}

#[track_caller]
fn collect(iter: Result<super::RelationshipIter<'_>, StoreError>) -> Vec<Relationship> {
    ok(iter, "query")
        .map(|r| ok(r, "reading a query result"))
        .collect()
}

fn texts(rels: &[Relationship]) -> Vec<String> {
    rels.iter().map(format_relationship).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[track_caller]
fn query(snapshot: &dyn Snapshot, filter: &RelationshipFilter) -> Vec<String> {
    texts(&collect(snapshot.query(filter, None)))
}

#[track_caller]
fn query_head(store: &dyn Store, filter: &RelationshipFilter) -> Vec<String> {
    query(&*snap(store, head(store)), filter)
}

#[track_caller]
fn reverse(
    snapshot: &dyn Snapshot,
    subject: &SubjectFilter,
    resource_type: Option<&str>,
    relation: Option<&str>,
) -> Vec<String> {
    sorted(texts(&collect(snapshot.reverse_query(
        subject,
        resource_type,
        relation,
    ))))
}

fn everything() -> RelationshipFilter {
    RelationshipFilter::default()
}

fn of_type(t: &str) -> RelationshipFilter {
    RelationshipFilter {
        resource_type: Some(t.into()),
        ..Default::default()
    }
}

fn resource(t: &str, id: &str) -> RelationshipFilter {
    RelationshipFilter {
        resource_type: Some(t.into()),
        resource_id: Some(id.into()),
        ..Default::default()
    }
}

fn subject(t: &str, id: Option<&str>, relation: SubjectRelationFilter) -> SubjectFilter {
    SubjectFilter {
        subject_type: t.into(),
        subject_id: id.map(str::to_string),
        relation,
    }
}

fn exact(text: &str) -> RelationshipFilter {
    RelationshipFilter::exact(&key(text))
}

fn precondition(kind: PreconditionKind, filter: RelationshipFilter) -> Precondition {
    Precondition { kind, filter }
}

#[track_caller]
fn time(rfc3339: &str) -> Timestamp {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.with_timezone(&chrono::Utc),
        Err(e) => panic!("bad test time `{rfc3339}`: {e}"),
    }
}

#[track_caller]
fn changes(store: &dyn Store, after: Revision) -> Vec<ChangeSet> {
    ok(store.read_changes(after, usize::MAX), "read_changes")
}

#[track_caller]
fn change_texts(set: &ChangeSet) -> Vec<(WriteOp, String)> {
    set.changes
        .iter()
        .map(|c| (c.op, format_relationship(&c.relationship)))
        .collect()
}

/// A relationship set used by the query cases.
const SAMPLE: &[&str] = &[
    "document:readme#viewer@user:alice",
    "document:readme#viewer@user:bob",
    "document:readme#editor@user:alice",
    "document:readme#viewer@group:eng#member",
    "document:readme#viewer@group:eng",
    "document:rfc1#viewer@user:alice",
    "document:rfc2#owner@user:carol",
    "document:report#viewer@group:ops#member",
    "folder:root#viewer@user:alice",
    "folder:root#parent@folder:home",
    "group:eng#member@user:alice",
    "group:ops#member@group:eng#member",
];

#[track_caller]
fn sample_store(factory: &dyn StoreFactory) -> Box<dyn Store> {
    let store = factory.new_store();
    create(&*store, SAMPLE);
    store
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------
// Revisions

/// An empty store is at revision zero, readable there, with no data, schema or changes.
pub fn empty_store_starts_at_revision_zero(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    assert_eq!(head(&*store), Revision::ZERO);
    assert_eq!(
        ok(store.oldest_readable_revision(), "oldest"),
        Revision::ZERO
    );
    let s = snap(&*store, Revision::ZERO);
    assert_eq!(s.revision(), Revision::ZERO);
    assert!(query(&*s, &everything()).is_empty());
    assert_eq!(ok(s.schema(), "schema"), None);
    assert!(changes(&*store, Revision::ZERO).is_empty());
}

/// Every kind of successful call commits exactly the next revision.
pub fn revisions_are_dense_and_strictly_increasing(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let mut expected = Revision::ZERO;
    let mut step = |rev: Revision, what: &str| {
        expected = expected.next();
        assert_eq!(rev, expected, "{what} should commit the next revision");
        assert_eq!(head(&*store), expected, "head after {what}");
    };
    step(create(&*store, &["document:a#viewer@user:x"]), "create");
    step(
        write(&*store, &[(WriteOp::Touch, "document:a#viewer@user:x")]),
        "touch",
    );
    step(
        write(&*store, &[(WriteOp::Delete, "document:zz#viewer@user:x")]),
        "no-op delete",
    );
    step(
        ok(store.write(WriteTransaction::default()), "empty write"),
        "empty write",
    );
    let outcome = ok(
        store.delete_by_filter(DeleteByFilter {
            filter: of_type("document"),
            ..Default::default()
        }),
        "delete_by_filter",
    );
    step(outcome.revision, "delete_by_filter");
    step(
        ok(
            store.write_schema("definition user {}", &mut |_| Ok(()), None),
            "write_schema",
        ),
        "write_schema",
    );
    step(
        ok(
            store.bulk_import(vec![rel("document:b#viewer@user:y")], None),
            "bulk_import",
        ),
        "bulk_import",
    );
}

// ---------------------------------------------------------------------------------------
// Write semantics

/// A created relationship reads back with its caveat, context and expiration.
pub fn create_round_trips_every_field(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let text = r#"document:readme#viewer@user:alice[on_vpn:{"allowed":["10.0.0.0/8"],"n":1.5}][expiration:2100-01-01T00:00:00Z]"#;
    let rev = create(&*store, &[text]);
    let got = collect(snap(&*store, rev).query(&exact(text), None));
    assert_eq!(got, vec![rel(text)]);
    let caveat = got[0].caveat.as_ref().map(|c| c.name.as_str());
    assert_eq!(caveat, Some("on_vpn"));
    assert_eq!(got[0].expiration, Some(time("2100-01-01T00:00:00Z")));
}

/// CREATE of a live relationship fails with `AlreadyExists` naming it, and writes nothing.
pub fn create_over_live_relationship_fails(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let rev = create(&*store, &["document:a#viewer@user:x[c1]"]);
    let err = store
        .write(txn(&[
            (WriteOp::Create, "document:b#viewer@user:y"),
            (WriteOp::Create, "document:a#viewer@user:x"),
        ]))
        .expect_err("creating an existing relationship must fail");
    assert_eq!(
        err,
        StoreError::AlreadyExists(key("document:a#viewer@user:x"))
    );
    assert_eq!(head(&*store), rev);
    assert_eq!(
        query_head(&*store, &everything()),
        strings(&["document:a#viewer@user:x[c1]"]),
        "the failed write must not have created document:b nor replaced the caveat"
    );
}

/// TOUCH inserts when absent and replaces caveat and expiration (also removing them).
pub fn touch_creates_and_replaces_caveat_and_expiration(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let r1 = write(
        &*store,
        &[(WriteOp::Touch, r#"document:a#viewer@user:x[c1:{"a":1}]"#)],
    );
    let r2 = write(
        &*store,
        &[(
            WriteOp::Touch,
            "document:a#viewer@user:x[expiration:2100-01-01T00:00:00Z]",
        )],
    );
    let r3 = write(&*store, &[(WriteOp::Touch, "document:a#viewer@user:x[c2]")]);
    let r4 = write(&*store, &[(WriteOp::Touch, "document:a#viewer@user:x")]);
    let at = |rev| query(&*snap(&*store, rev), &everything());
    assert_eq!(
        at(r1),
        strings(&[r#"document:a#viewer@user:x[c1:{"a":1}]"#])
    );
    assert_eq!(
        at(r2),
        strings(&["document:a#viewer@user:x[expiration:2100-01-01T00:00:00Z]"])
    );
    assert_eq!(at(r3), strings(&["document:a#viewer@user:x[c2]"]));
    assert_eq!(at(r4), strings(&["document:a#viewer@user:x"]));
}

/// DELETE removes a relationship; deleting an absent one succeeds and changes nothing.
pub fn delete_removes_and_deleting_absent_is_a_noop(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    create(
        &*store,
        &["document:a#viewer@user:x", "document:a#viewer@user:y"],
    );
    let rev = write(&*store, &[(WriteOp::Delete, "document:a#viewer@user:x")]);
    assert_eq!(
        query(&*snap(&*store, rev), &everything()),
        strings(&["document:a#viewer@user:y"])
    );
    let noop = write(
        &*store,
        &[
            (WriteOp::Delete, "document:a#viewer@user:x"),
            (WriteOp::Delete, "document:nothing#viewer@user:x"),
        ],
    );
    assert_eq!(noop, rev.next());
    assert_eq!(
        query(&*snap(&*store, noop), &everything()),
        strings(&["document:a#viewer@user:y"])
    );
}

/// The same relationship twice in one write fails with `DuplicateUpdate`, whatever the ops.
pub fn same_relationship_twice_in_one_write_fails(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    for ops in [
        [
            (WriteOp::Create, "document:a#viewer@user:x"),
            (WriteOp::Delete, "document:a#viewer@user:x"),
        ],
        [
            (WriteOp::Touch, "document:a#viewer@user:x[c1]"),
            (WriteOp::Touch, "document:a#viewer@user:x[c2]"),
        ],
    ] {
        let err = store
            .write(txn(&ops))
            .expect_err("a duplicate update must fail");
        assert_eq!(
            err,
            StoreError::DuplicateUpdate(key("document:a#viewer@user:x"))
        );
    }
    assert_eq!(head(&*store), Revision::ZERO);
    // The same object with a different subject relation is a different relationship.
    create(
        &*store,
        &[
            "document:a#viewer@group:x",
            "document:a#viewer@group:x#member",
        ],
    );
    assert_eq!(query_head(&*store, &everything()).len(), 2);
}

/// Expired relationships are invisible to query, reverse_query and exact lookups.
pub fn expired_relationships_are_invisible(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let rev = write(
        &*store,
        &[
            (
                WriteOp::Touch,
                "document:a#viewer@user:x[expiration:2000-01-01T00:00:00Z]",
            ),
            (
                WriteOp::Touch,
                "document:a#viewer@user:y[expiration:2100-01-01T00:00:00Z]",
            ),
        ],
    );
    let s = snap(&*store, rev);
    assert_eq!(
        query(&*s, &everything()),
        strings(&["document:a#viewer@user:y[expiration:2100-01-01T00:00:00Z]"])
    );
    assert!(query(&*s, &exact("document:a#viewer@user:x")).is_empty());
    let x = subject("user", Some("x"), SubjectRelationFilter::Any);
    assert!(reverse(&*s, &x, None, None).is_empty());
    assert!(reverse(&*s, &x, Some("document"), Some("viewer")).is_empty());
}

/// CREATE over an expired relationship succeeds and the new one is visible.
pub fn expired_relationships_can_be_created_again(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    create(
        &*store,
        &["document:a#viewer@user:x[expiration:2000-01-01T00:00:00Z]"],
    );
    let rev = create(&*store, &["document:a#viewer@user:x[c1]"]);
    assert_eq!(
        query(&*snap(&*store, rev), &everything()),
        strings(&["document:a#viewer@user:x[c1]"])
    );
    let set = &changes(&*store, Revision(1))[0];
    assert_eq!(
        change_texts(set),
        vec![(WriteOp::Create, "document:a#viewer@user:x[c1]".to_string())]
    );
    // The re-created relationship is the live one: deleting it removes it.
    let deleted = write(&*store, &[(WriteOp::Delete, "document:a#viewer@user:x")]);
    assert!(query(&*snap(&*store, deleted), &everything()).is_empty());
    assert_eq!(
        change_texts(&changes(&*store, rev)[0]),
        vec![(WriteOp::Delete, "document:a#viewer@user:x[c1]".to_string())]
    );
    assert_eq!(
        query(&*snap(&*store, rev), &everything()),
        strings(&["document:a#viewer@user:x[c1]"])
    );
}

/// For writes, an expired relationship is absent: DELETE records nothing, MUST_MATCH fails,
/// MUST_NOT_MATCH passes, delete-by-filter does not count it.
pub fn writes_treat_expired_relationships_as_absent(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let expired = "document:a#viewer@user:x[expiration:2000-01-01T00:00:00Z]";
    create(&*store, &[expired]);
    let del = write(&*store, &[(WriteOp::Delete, "document:a#viewer@user:x")]);
    let sets = changes(&*store, Revision(1));
    assert_eq!(sets[0].revision, del);
    assert!(
        sets[0].changes.is_empty(),
        "deleting an expired relationship changes nothing"
    );

    let must_match = WriteTransaction {
        preconditions: vec![precondition(
            PreconditionKind::MustMatch,
            of_type("document"),
        )],
        ..txn(&[(WriteOp::Touch, "document:b#viewer@user:y")])
    };
    assert!(matches!(
        store.write(must_match),
        Err(StoreError::PreconditionFailed { index: 0, .. })
    ));
    let must_not = WriteTransaction {
        preconditions: vec![precondition(
            PreconditionKind::MustNotMatch,
            of_type("document"),
        )],
        ..txn(&[(WriteOp::Touch, "document:b#viewer@user:y")])
    };
    ok(
        store.write(must_not),
        "write with MUST_NOT_MATCH over only expired data",
    );

    create(
        &*store,
        &[expired.replace("document:a", "document:c").as_str()],
    );
    let outcome = ok(
        store.delete_by_filter(DeleteByFilter {
            filter: of_type("document"),
            limit: Some(1),
            allow_partial: false,
            ..Default::default()
        }),
        "delete_by_filter with only one live match",
    );
    assert_eq!((outcome.deleted, outcome.partial), (1, false));
}

// ---------------------------------------------------------------------------------------
// Queries

/// Filtering by resource type, and by type and id.
pub fn query_by_resource_type_and_id(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let s = snap(&*store, head(&*store));
    assert_eq!(
        sorted(query(&*s, &of_type("folder"))),
        strings(&[
            "folder:root#parent@folder:home",
            "folder:root#viewer@user:alice"
        ])
    );
    assert_eq!(
        sorted(query(&*s, &resource("document", "readme"))),
        sorted(strings(&SAMPLE[..5]))
    );
    assert!(query(&*s, &of_type("nothing")).is_empty());
    assert!(query(&*s, &resource("document", "read")).is_empty());
    assert_eq!(query(&*s, &everything()).len(), SAMPLE.len());
}

/// `resource_id_prefix` selects ids starting with the prefix (alone or with an exact id).
pub fn query_by_resource_id_prefix(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let s = snap(&*store, head(&*store));
    let prefix = |p: &str| RelationshipFilter {
        resource_id_prefix: Some(p.into()),
        ..of_type("document")
    };
    assert_eq!(
        query(&*s, &prefix("r")).len(),
        8,
        "readme, rfc1, rfc2 and report all start with `r`"
    );
    assert_eq!(
        sorted(query(&*s, &prefix("rf"))),
        strings(&[
            "document:rfc1#viewer@user:alice",
            "document:rfc2#owner@user:carol"
        ])
    );
    assert_eq!(query(&*s, &prefix("re")).len(), 6);
    assert!(query(&*s, &prefix("x")).is_empty());
    // A prefix with an exact id: both must hold.
    let both = |id: &str, p: &str| RelationshipFilter {
        resource_id: Some(id.into()),
        ..prefix(p)
    };
    assert_eq!(query(&*s, &both("rfc1", "rf")).len(), 1);
    assert!(query(&*s, &both("rfc1", "re")).is_empty());
}

/// Filtering by relation, with and without the resource id.
pub fn query_by_relation(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let s = snap(&*store, head(&*store));
    let with = |base: RelationshipFilter, relation: &str| RelationshipFilter {
        relation: Some(relation.into()),
        ..base
    };
    assert_eq!(
        sorted(query(&*s, &with(resource("document", "readme"), "viewer"))),
        strings(&[
            "document:readme#viewer@group:eng",
            "document:readme#viewer@group:eng#member",
            "document:readme#viewer@user:alice",
            "document:readme#viewer@user:bob",
        ])
    );
    assert_eq!(query(&*s, &with(of_type("document"), "viewer")).len(), 6);
    assert_eq!(
        query(&*s, &with(of_type("document"), "owner")),
        strings(&["document:rfc2#owner@user:carol"])
    );
    assert!(query(&*s, &with(of_type("document"), "parent")).is_empty());
}

/// Filtering by subject type and subject id.
pub fn query_by_subject_type_and_id(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let s = snap(&*store, head(&*store));
    let by = |base: RelationshipFilter, t: &str, id: Option<&str>| RelationshipFilter {
        subject: Some(subject(t, id, SubjectRelationFilter::Any)),
        ..base
    };
    assert_eq!(
        sorted(query(&*s, &by(of_type("document"), "user", Some("alice")))),
        strings(&[
            "document:readme#editor@user:alice",
            "document:readme#viewer@user:alice",
            "document:rfc1#viewer@user:alice",
        ])
    );
    assert_eq!(
        sorted(query(
            &*s,
            &by(resource("document", "readme"), "group", None)
        )),
        strings(&[
            "document:readme#viewer@group:eng",
            "document:readme#viewer@group:eng#member"
        ])
    );
    let full = RelationshipFilter {
        relation: Some("viewer".into()),
        ..by(resource("document", "readme"), "user", Some("bob"))
    };
    assert_eq!(
        query(&*s, &full),
        strings(&["document:readme#viewer@user:bob"])
    );
    assert!(query(&*s, &by(of_type("document"), "user", Some("dave"))).is_empty());
}

/// Subject relation filters: ellipsis only, one relation, or any.
pub fn query_by_subject_relation(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let s = snap(&*store, head(&*store));
    let by = |relation: SubjectRelationFilter, id: Option<&str>| RelationshipFilter {
        relation: Some("viewer".into()),
        subject: Some(subject("group", id, relation)),
        ..resource("document", "readme")
    };
    for id in [Some("eng"), None] {
        assert_eq!(
            query(&*s, &by(SubjectRelationFilter::Ellipsis, id)),
            strings(&["document:readme#viewer@group:eng"])
        );
        assert_eq!(
            query(
                &*s,
                &by(SubjectRelationFilter::Relation("member".into()), id)
            ),
            strings(&["document:readme#viewer@group:eng#member"])
        );
        assert_eq!(query(&*s, &by(SubjectRelationFilter::Any, id)).len(), 2);
        assert!(
            query(
                &*s,
                &by(SubjectRelationFilter::Relation("admin".into()), id)
            )
            .is_empty()
        );
    }
    let all_members = RelationshipFilter {
        subject: Some(subject(
            "group",
            None,
            SubjectRelationFilter::Relation("member".into()),
        )),
        ..of_type("document")
    };
    assert_eq!(
        query(&*s, &all_members),
        strings(&[
            "document:readme#viewer@group:eng#member",
            "document:report#viewer@group:ops#member",
        ])
    );
}

/// Filters without a resource type still work (they may scan everything).
pub fn query_without_resource_type(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let s = snap(&*store, head(&*store));
    let by_relation = RelationshipFilter {
        relation: Some("viewer".into()),
        ..Default::default()
    };
    assert_eq!(query(&*s, &by_relation).len(), 7);
    let by_subject = RelationshipFilter {
        subject: Some(subject(
            "user",
            Some("alice"),
            SubjectRelationFilter::Ellipsis,
        )),
        ..Default::default()
    };
    assert_eq!(
        query(&*s, &by_subject),
        strings(&[
            "document:readme#editor@user:alice",
            "document:readme#viewer@user:alice",
            "document:rfc1#viewer@user:alice",
            "folder:root#viewer@user:alice",
            "group:eng#member@user:alice",
        ])
    );
    let by_prefix_only = RelationshipFilter {
        resource_id_prefix: Some("ro".into()),
        ..Default::default()
    };
    assert_eq!(query(&*s, &by_prefix_only).len(), 2);
}

/// Results come in (resource type, id, relation, subject type, id, relation) order with the
/// ellipsis before any subject relation, whatever order they were written in.
pub fn query_returns_the_documented_order(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let mut shuffled: Vec<&str> = SAMPLE.to_vec();
    shuffled.reverse();
    shuffled.swap(2, 7);
    create(&*store, &shuffled);
    let s = snap(&*store, head(&*store));
    let mut expected: Vec<Relationship> = SAMPLE.iter().map(|t| rel(t)).collect();
    expected.sort_by_key(Relationship::key);
    assert_eq!(query(&*s, &everything()), texts(&expected));
    assert_eq!(
        query(
            &*s,
            &RelationshipFilter {
                relation: Some("viewer".into()),
                ..resource("document", "readme")
            }
        ),
        strings(&[
            "document:readme#viewer@group:eng",
            "document:readme#viewer@group:eng#member",
            "document:readme#viewer@user:alice",
            "document:readme#viewer@user:bob",
        ])
    );
}

#[track_caller]
fn page_through(s: &dyn Snapshot, filter: &RelationshipFilter, page: usize) -> Vec<Relationship> {
    let mut out: Vec<Relationship> = Vec::new();
    loop {
        let cursor = out.last().map(Relationship::key);
        let batch: Vec<Relationship> = ok(s.query(filter, cursor.as_ref()), "paged query")
            .take(page)
            .map(|r| ok(r, "reading a page"))
            .collect();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

/// Paging with `after` = the last key of the previous page yields every match exactly once,
/// in order, for every page size.
pub fn query_cursor_pages_through_everything_once(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let mut all = Vec::new();
    for d in 0..12 {
        for u in 0..5 {
            all.push(format!("document:d{d:02}#viewer@user:u{u}"));
        }
        all.push(format!("document:d{d:02}#viewer@group:g#member"));
        all.push(format!("folder:f{d}#viewer@user:u0"));
    }
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    create(&*store, &refs);
    let s = snap(&*store, head(&*store));
    let full = collect(s.query(&everything(), None));
    assert_eq!(full.len(), all.len());
    for page in [1, 7, 50, 1000] {
        assert_eq!(
            page_through(&*s, &everything(), page),
            full,
            "page size {page}"
        );
    }
    let docs = collect(s.query(&of_type("document"), None));
    assert_eq!(docs.len(), 72);
    assert_eq!(page_through(&*s, &of_type("document"), 5), docs);
    // A cursor at the last relationship yields nothing.
    let last = full.last().map(Relationship::key);
    assert!(collect(s.query(&everything(), last.as_ref())).is_empty());
}

/// A cursor outside the filter's range still yields exactly the matches after it.
pub fn query_cursor_respects_the_filter(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let s = snap(&*store, head(&*store));
    let readme_viewers = RelationshipFilter {
        relation: Some("viewer".into()),
        ..resource("document", "readme")
    };
    // Before the range: everything.
    let before = key("document:a#viewer@user:x");
    assert_eq!(
        texts(&collect(s.query(&readme_viewers, Some(&before)))).len(),
        4
    );
    // Inside the range, on a key that is not itself stored.
    let inside = key("document:readme#viewer@group:eng#admin");
    assert_eq!(
        texts(&collect(s.query(&readme_viewers, Some(&inside)))),
        strings(&[
            "document:readme#viewer@group:eng#member",
            "document:readme#viewer@user:alice",
            "document:readme#viewer@user:bob"
        ])
    );
    // After the range: nothing.
    let after = key("folder:a#viewer@user:x");
    assert!(collect(s.query(&readme_viewers, Some(&after))).is_empty());
    let prefix = RelationshipFilter {
        resource_id_prefix: Some("r".into()),
        ..of_type("document")
    };
    let cursor = key("document:rfc1#viewer@user:alice");
    assert_eq!(
        texts(&collect(s.query(&prefix, Some(&cursor)))),
        strings(&["document:rfc2#owner@user:carol"])
    );
}

/// reverse_query finds relationships by subject type, id and subject relation.
pub fn reverse_query_by_subject(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let s = snap(&*store, head(&*store));
    assert_eq!(
        reverse(
            &*s,
            &subject("user", Some("alice"), SubjectRelationFilter::Any),
            None,
            None
        ),
        strings(&[
            "document:readme#editor@user:alice",
            "document:readme#viewer@user:alice",
            "document:rfc1#viewer@user:alice",
            "folder:root#viewer@user:alice",
            "group:eng#member@user:alice",
        ])
    );
    assert_eq!(
        reverse(
            &*s,
            &subject("group", Some("eng"), SubjectRelationFilter::Ellipsis),
            None,
            None
        ),
        strings(&["document:readme#viewer@group:eng"])
    );
    assert_eq!(
        reverse(
            &*s,
            &subject(
                "group",
                Some("eng"),
                SubjectRelationFilter::Relation("member".into())
            ),
            None,
            None
        ),
        strings(&[
            "document:readme#viewer@group:eng#member",
            "group:ops#member@group:eng#member"
        ])
    );
    assert_eq!(
        reverse(
            &*s,
            &subject("group", Some("eng"), SubjectRelationFilter::Any),
            None,
            None
        )
        .len(),
        3
    );
    assert!(
        reverse(
            &*s,
            &subject("user", Some("zed"), SubjectRelationFilter::Any),
            None,
            None
        )
        .is_empty()
    );
}

/// reverse_query restricted to one resource type and relation.
pub fn reverse_query_restricted_to_resource_type_and_relation(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let s = snap(&*store, head(&*store));
    let alice = subject("user", Some("alice"), SubjectRelationFilter::Ellipsis);
    assert_eq!(
        reverse(&*s, &alice, Some("document"), None),
        strings(&[
            "document:readme#editor@user:alice",
            "document:readme#viewer@user:alice",
            "document:rfc1#viewer@user:alice",
        ])
    );
    assert_eq!(
        reverse(&*s, &alice, Some("document"), Some("viewer")),
        strings(&[
            "document:readme#viewer@user:alice",
            "document:rfc1#viewer@user:alice"
        ])
    );
    assert_eq!(
        reverse(&*s, &alice, None, Some("viewer")),
        strings(&[
            "document:readme#viewer@user:alice",
            "document:rfc1#viewer@user:alice",
            "folder:root#viewer@user:alice",
        ])
    );
    assert!(reverse(&*s, &alice, Some("document"), Some("owner")).is_empty());
    let any_alice = subject("user", Some("alice"), SubjectRelationFilter::Any);
    assert_eq!(
        reverse(&*s, &any_alice, Some("group"), Some("member")).len(),
        1
    );
}

/// reverse_query by subject type alone (any id), with and without a subject relation.
pub fn reverse_query_by_subject_type_only(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let s = snap(&*store, head(&*store));
    assert_eq!(
        reverse(
            &*s,
            &subject("user", None, SubjectRelationFilter::Any),
            None,
            None
        )
        .len(),
        7
    );
    assert_eq!(
        reverse(
            &*s,
            &subject(
                "group",
                None,
                SubjectRelationFilter::Relation("member".into())
            ),
            Some("document"),
            Some("viewer")
        ),
        strings(&[
            "document:readme#viewer@group:eng#member",
            "document:report#viewer@group:ops#member",
        ])
    );
    assert_eq!(
        reverse(
            &*s,
            &subject("folder", None, SubjectRelationFilter::Ellipsis),
            None,
            None
        ),
        strings(&["folder:root#parent@folder:home"])
    );
}

// ---------------------------------------------------------------------------------------
// Snapshots

/// An old snapshot keeps reading its revision after later creates, touches and deletes.
pub fn snapshots_are_isolated_from_later_writes(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let r1 = create(
        &*store,
        &["document:a#viewer@user:x", "document:a#viewer@user:y[c1]"],
    );
    let old = snap(&*store, r1);
    let before = query(&*old, &everything());
    let r2 = write(
        &*store,
        &[
            (WriteOp::Delete, "document:a#viewer@user:x"),
            (WriteOp::Touch, "document:a#viewer@user:y[c2]"),
            (WriteOp::Create, "document:b#viewer@user:x"),
        ],
    );
    assert_eq!(query(&*old, &everything()), before);
    let x = subject("user", Some("x"), SubjectRelationFilter::Any);
    assert_eq!(
        reverse(&*old, &x, None, None),
        strings(&["document:a#viewer@user:x"])
    );
    // A new snapshot at the old revision sees the same; one at the new revision sees the new.
    assert_eq!(query(&*snap(&*store, r1), &everything()), before);
    assert_eq!(
        query(&*snap(&*store, r2), &everything()),
        strings(&["document:a#viewer@user:y[c2]", "document:b#viewer@user:x"])
    );
    assert_eq!(
        reverse(&*snap(&*store, r2), &x, None, None),
        strings(&["document:b#viewer@user:x"])
    );
    // Deleted then re-created: each revision keeps its own version.
    let r3 = write(&*store, &[(WriteOp::Delete, "document:b#viewer@user:x")]);
    let r4 = create(&*store, &["document:b#viewer@user:x[c3]"]);
    assert!(
        query(&*snap(&*store, r3), &of_type("document"))
            .iter()
            .all(|t| !t.starts_with("document:b"))
    );
    assert!(
        query(&*snap(&*store, r4), &everything())
            .contains(&"document:b#viewer@user:x[c3]".to_string())
    );
    assert!(
        query(&*snap(&*store, r2), &everything()).contains(&"document:b#viewer@user:x".to_string())
    );
}

/// A snapshot held by one thread reads the same data while another thread writes.
pub fn snapshot_is_stable_while_another_thread_writes(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let initial: Vec<String> = (0..200)
        .map(|i| format!("document:d{i:03}#viewer@user:u"))
        .collect();
    let refs: Vec<&str> = initial.iter().map(String::as_str).collect();
    let rev = create(&*store, &refs);
    let s = snap(&*store, rev);
    let expected = query(&*s, &everything());
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            for i in 0..100 {
                let del = format!("document:d{:03}#viewer@user:u", i * 2);
                let add = format!("document:e{i:03}#viewer@user:u");
                write(&*store, &[(WriteOp::Delete, &del), (WriteOp::Create, &add)]);
            }
        });
        while !writer.is_finished() {
            assert_eq!(query(&*s, &everything()), expected);
            let u = subject("user", Some("u"), SubjectRelationFilter::Ellipsis);
            assert_eq!(
                reverse(&*s, &u, Some("document"), Some("viewer")).len(),
                200
            );
        }
    });
    assert_eq!(query(&*s, &everything()), expected);
    assert_eq!(head(&*store), Revision(rev.0 + 100));
    assert_eq!(query_head(&*store, &everything()).len(), 200);
}

/// An iterator consumed slowly over many relationships yields exactly its snapshot's data
/// while other threads delete and add relationships in the same range.
pub fn long_scan_is_consistent_under_concurrent_deletes(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let n = 5000;
    let rels: Vec<Relationship> = (0..n)
        .map(|i| rel(&format!("document:d{i:05}#viewer@user:u")))
        .collect();
    let rev = ok(store.bulk_import(rels.clone(), None), "bulk_import");
    let s = snap(&*store, rev);
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            barrier.wait();
            for i in (0..n).step_by(50) {
                let del = format!("document:d{i:05}#viewer@user:u");
                let add = format!("document:d{i:05}#viewer@user:v");
                write(&*store, &[(WriteOp::Delete, &del), (WriteOp::Create, &add)]);
            }
        });
        let mut iter = ok(s.query(&of_type("document"), None), "query");
        let mut seen = Vec::new();
        if let Some(first) = iter.next() {
            seen.push(ok(first, "first result"));
        }
        barrier.wait();
        for (i, r) in iter.enumerate() {
            seen.push(ok(r, "reading during writes"));
            if i % 500 == 0 {
                std::thread::yield_now();
            }
        }
        assert_eq!(seen, rels);
    });
    assert_eq!(query_head(&*store, &everything()).len(), n);
}

/// A filter matching a few relationships spread over a large range finds all of them, in
/// order, forwards and in reverse.
pub fn sparse_matches_across_a_large_range(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let n = 12_000;
    let mut rels: Vec<Relationship> = (0..n)
        .map(|i| {
            let who = if i % 1000 == 999 { "rare" } else { "common" };
            rel(&format!("document:d{i:05}#viewer@user:{who}"))
        })
        .collect();
    rels.push(rel("folder:f#viewer@user:common"));
    let rev = ok(store.bulk_import(rels, None), "bulk_import");
    let s = snap(&*store, rev);
    let rare = RelationshipFilter {
        subject: Some(subject("user", Some("rare"), SubjectRelationFilter::Any)),
        ..of_type("document")
    };
    let expected: Vec<String> = (0..n)
        .filter(|i| i % 1000 == 999)
        .map(|i| format!("document:d{i:05}#viewer@user:rare"))
        .collect();
    assert_eq!(query(&*s, &rare), expected);
    assert_eq!(texts(&page_through(&*s, &rare, 3)), expected);
    let any_user = subject("user", None, SubjectRelationFilter::Any);
    assert_eq!(
        reverse(&*s, &any_user, Some("folder"), None),
        strings(&["folder:f#viewer@user:common"])
    );
    assert_eq!(reverse(&*s, &any_user, None, None).len(), n + 1);
}

// ---------------------------------------------------------------------------------------
// Preconditions

/// MUST_MATCH passes when a live relationship matches and fails (atomically) when none does.
pub fn precondition_must_match(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let r1 = create(&*store, &["document:a#owner@user:x"]);
    let guarded = |target: &str| WriteTransaction {
        preconditions: vec![precondition(
            PreconditionKind::MustMatch,
            exact("document:a#owner@user:x"),
        )],
        ..txn(&[(WriteOp::Create, target)])
    };
    let r2 = ok(
        store.write(guarded("document:a#viewer@user:y")),
        "guarded write",
    );
    assert_eq!(r2, r1.next());
    write(&*store, &[(WriteOp::Delete, "document:a#owner@user:x")]);
    let before = head(&*store);
    let err = store
        .write(guarded("document:a#viewer@user:z"))
        .expect_err("MUST_MATCH on a deleted relationship must fail");
    assert!(
        matches!(err, StoreError::PreconditionFailed { index: 0, .. }),
        "{err:?}"
    );
    assert_eq!(head(&*store), before);
    assert_eq!(
        query_head(&*store, &everything()),
        strings(&["document:a#viewer@user:y"])
    );
}

/// MUST_NOT_MATCH passes when nothing matches and fails (atomically) when something does.
pub fn precondition_must_not_match(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let guarded = |target: &str| WriteTransaction {
        preconditions: vec![precondition(
            PreconditionKind::MustNotMatch,
            RelationshipFilter {
                relation: Some("owner".into()),
                ..resource("document", "a")
            },
        )],
        ..txn(&[(WriteOp::Create, target)])
    };
    let r1 = ok(
        store.write(guarded("document:a#owner@user:x")),
        "first owner",
    );
    let err = store
        .write(guarded("document:a#owner@user:y"))
        .expect_err("MUST_NOT_MATCH with a match must fail");
    assert!(
        matches!(err, StoreError::PreconditionFailed { index: 0, .. }),
        "{err:?}"
    );
    assert_eq!(head(&*store), r1);
    assert_eq!(
        query_head(&*store, &everything()),
        strings(&["document:a#owner@user:x"])
    );
}

/// The error names the index of the first failing precondition and describes its filter.
pub fn precondition_failure_names_index_and_filter(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    create(&*store, &["document:a#owner@user:x"]);
    let txn = WriteTransaction {
        preconditions: vec![
            precondition(PreconditionKind::MustMatch, of_type("document")),
            precondition(PreconditionKind::MustNotMatch, resource("folder", "f1")),
            precondition(PreconditionKind::MustMatch, resource("folder", "missing")),
            precondition(PreconditionKind::MustMatch, resource("folder", "other")),
        ],
        ..txn(&[(WriteOp::Touch, "document:b#viewer@user:y")])
    };
    match store.write(txn) {
        Err(StoreError::PreconditionFailed { index, reason }) => {
            assert_eq!(index, 2);
            assert!(
                reason.contains("folder") && reason.contains("missing"),
                "the reason should describe the filter: {reason}"
            );
        }
        other => panic!("expected a failed precondition, got {other:?}"),
    }
}

/// Failed calls of every kind leave the head and the change log untouched; the next
/// successful write gets the next revision.
pub fn failed_calls_consume_no_revision(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let r1 = create(
        &*store,
        &["document:a#viewer@user:x", "document:a#viewer@user:y"],
    );
    let failures: Vec<Result<Revision, StoreError>> = vec![
        store.write(txn(&[(WriteOp::Create, "document:a#viewer@user:x")])),
        store.write(txn(&[
            (WriteOp::Touch, "document:b#viewer@user:x"),
            (WriteOp::Delete, "document:b#viewer@user:x"),
        ])),
        store.write(WriteTransaction {
            preconditions: vec![precondition(PreconditionKind::MustMatch, of_type("folder"))],
            ..txn(&[(WriteOp::Touch, "document:c#viewer@user:x")])
        }),
        store
            .delete_by_filter(DeleteByFilter {
                filter: of_type("document"),
                limit: Some(1),
                ..Default::default()
            })
            .map(|o| o.revision),
        store.write_schema(
            "definition user {}",
            &mut |_| Err(StoreError::SchemaRejected("no".into())),
            None,
        ),
        store.bulk_import(
            vec![
                rel("document:z#viewer@user:x"),
                rel("document:a#viewer@user:y"),
            ],
            None,
        ),
    ];
    for (i, f) in failures.iter().enumerate() {
        assert!(f.is_err(), "call {i} should have failed: {f:?}");
    }
    assert_eq!(head(&*store), r1);
    assert_eq!(changes(&*store, Revision::ZERO).len(), 1);
    assert_eq!(query_head(&*store, &everything()).len(), 2);
    assert_eq!(ok(snap(&*store, r1).schema(), "schema"), None);
    assert_eq!(create(&*store, &["document:d#viewer@user:x"]), r1.next());
    assert_eq!(
        changes(&*store, Revision::ZERO)
            .iter()
            .map(|c| c.revision)
            .collect::<Vec<_>>(),
        vec![r1, r1.next()]
    );
}

// ---------------------------------------------------------------------------------------
// Delete by filter

/// Without a limit, every live match is deleted in one revision and recorded.
pub fn delete_by_filter_deletes_every_match(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let before = head(&*store);
    let outcome = ok(
        store.delete_by_filter(DeleteByFilter {
            filter: RelationshipFilter {
                relation: Some("viewer".into()),
                ..of_type("document")
            },
            caller: Some("tester".into()),
            ..Default::default()
        }),
        "delete_by_filter",
    );
    assert_eq!(outcome.revision, before.next());
    assert_eq!((outcome.deleted, outcome.partial), (6, false));
    assert_eq!(query_head(&*store, &of_type("document")).len(), 2);
    assert_eq!(
        query(&*snap(&*store, before), &of_type("document")).len(),
        8
    );
    let set = &changes(&*store, before)[0];
    assert_eq!(set.caller.as_deref(), Some("tester"));
    assert_eq!(set.changes.len(), 6);
    assert!(
        set.changes
            .iter()
            .all(|c| c.op == WriteOp::Delete && c.relationship.relation == "viewer")
    );
    // Nothing matching: succeeds, deletes nothing.
    let none = ok(
        store.delete_by_filter(DeleteByFilter {
            filter: of_type("nothing"),
            ..Default::default()
        }),
        "empty delete_by_filter",
    );
    assert_eq!((none.deleted, none.partial), (0, false));
}

/// More matches than the limit without `allow_partial`: nothing is deleted and the error
/// reports the limit and the number of matches.
pub fn delete_by_filter_over_limit_deletes_nothing(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let before = head(&*store);
    let err = store
        .delete_by_filter(DeleteByFilter {
            filter: of_type("document"),
            limit: Some(3),
            allow_partial: false,
            ..Default::default()
        })
        .expect_err("over the limit must fail");
    assert_eq!(
        err,
        StoreError::DeleteLimitExceeded {
            limit: 3,
            matched: 8
        }
    );
    assert_eq!(head(&*store), before);
    assert_eq!(query_head(&*store, &everything()).len(), SAMPLE.len());
}

/// More matches than the limit with `allow_partial`: exactly `limit` are deleted, reported
/// partial; repeating eventually deletes everything.
pub fn delete_by_filter_partial_deletes_up_to_limit(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let request = || DeleteByFilter {
        filter: of_type("document"),
        limit: Some(3),
        allow_partial: true,
        ..Default::default()
    };
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let o = ok(store.delete_by_filter(request()), "partial delete");
        outcomes.push((o.deleted, o.partial));
        let left = query_head(&*store, &of_type("document")).len() as u64;
        assert_eq!(left, 8 - outcomes.iter().map(|(d, _)| d).sum::<u64>());
    }
    assert_eq!(outcomes, vec![(3, true), (3, true), (2, false)]);
    assert_eq!(query_head(&*store, &everything()).len(), SAMPLE.len() - 8);
}

/// Exactly `limit` matches: all deleted, not partial.
pub fn delete_by_filter_at_limit_is_complete(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    for allow_partial in [false, true] {
        let o = ok(
            store.delete_by_filter(DeleteByFilter {
                filter: of_type("folder"),
                limit: Some(2),
                allow_partial,
                ..Default::default()
            }),
            "delete at the limit",
        );
        let expected = if allow_partial { 0 } else { 2 };
        assert_eq!((o.deleted, o.partial), (expected, false));
    }
    assert!(query_head(&*store, &of_type("folder")).is_empty());
}

/// Delete-by-filter checks its preconditions first and does nothing when one fails.
pub fn delete_by_filter_checks_preconditions(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let before = head(&*store);
    let err = store
        .delete_by_filter(DeleteByFilter {
            filter: of_type("document"),
            preconditions: vec![
                precondition(PreconditionKind::MustMatch, of_type("folder")),
                precondition(PreconditionKind::MustNotMatch, of_type("group")),
            ],
            ..Default::default()
        })
        .expect_err("the second precondition must fail");
    assert!(
        matches!(err, StoreError::PreconditionFailed { index: 1, .. }),
        "{err:?}"
    );
    assert_eq!(head(&*store), before);
    let o = ok(
        store.delete_by_filter(DeleteByFilter {
            filter: of_type("document"),
            preconditions: vec![precondition(PreconditionKind::MustMatch, of_type("folder"))],
            ..Default::default()
        }),
        "guarded delete",
    );
    assert_eq!(o.deleted, 8);
}

// ---------------------------------------------------------------------------------------
// Schema

/// Each schema write is a revision; snapshots see the schema in force at their revision.
pub fn schema_versions_follow_revisions(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let r1 = create(&*store, &["document:a#viewer@user:x"]);
    let s1 = ok(
        store.write_schema("definition user {}", &mut |_| Ok(()), None),
        "schema 1",
    );
    let r2 = create(&*store, &["document:b#viewer@user:x"]);
    let s2 = ok(
        store.write_schema(
            "definition user {}\ndefinition document {}",
            &mut |_| Ok(()),
            Some("admin".into()),
        ),
        "schema 2",
    );
    assert_eq!(
        (s1, r2, s2),
        (r1.next(), r1.next().next(), Revision(r1.0 + 3))
    );
    let schema_at = |rev| ok(snap(&*store, rev).schema(), "schema");
    assert_eq!(schema_at(r1), None);
    let first = Some(super::StoredSchema {
        text: "definition user {}".into(),
        written_at: s1,
    });
    assert_eq!(schema_at(s1), first);
    assert_eq!(schema_at(r2), first);
    assert_eq!(
        schema_at(s2),
        Some(super::StoredSchema {
            text: "definition user {}\ndefinition document {}".into(),
            written_at: s2,
        })
    );
    // A schema write does not touch relationships.
    assert_eq!(query(&*snap(&*store, s2), &everything()).len(), 2);
    let set = &changes(&*store, r2)[0];
    assert_eq!(
        (set.revision, set.schema_changed, set.changes.len()),
        (s2, true, 0)
    );
    assert_eq!(set.caller.as_deref(), Some("admin"));
}

/// The check runs against the latest state; its error aborts the write.
pub fn schema_check_sees_latest_state_and_can_reject(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    create(&*store, &["document:a#viewer@user:x"]);
    let latest = create(&*store, &["document:b#viewer@user:x"]);
    let mut seen = None;
    let err = store
        .write_schema(
            "definition user {}",
            &mut |s| {
                seen = Some((s.revision(), query(s, &of_type("document")).len()));
                Err(StoreError::SchemaRejected(
                    "relation `viewer` is still used by 2 relationships".into(),
                ))
            },
            None,
        )
        .expect_err("the rejecting check must abort the write");
    assert_eq!(seen, Some((latest, 2)));
    assert!(matches!(err, StoreError::SchemaRejected(ref m) if m.contains("still used")));
    assert_eq!(head(&*store), latest);
    assert_eq!(ok(snap(&*store, latest).schema(), "schema"), None);
    let rev = ok(
        store.write_schema("definition user {}", &mut |_| Ok(()), None),
        "accepted",
    );
    assert_eq!(rev, latest.next());
}

/// A write or import carrying the schema revision it was validated against commits only while
/// that schema is in force; otherwise it fails with `SchemaChanged` and changes nothing.
pub fn writes_validated_against_a_replaced_schema_fail(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let guarded = |schema_revision: Option<Revision>| WriteTransaction {
        schema_revision,
        ..txn(&[(WriteOp::Touch, "document:a#viewer@user:x")])
    };
    let err = store
        .write(guarded(Some(Revision(1))))
        .expect_err("no schema is in force yet");
    assert_eq!(
        err,
        StoreError::SchemaChanged {
            validated: Revision(1),
            current: Revision::ZERO
        }
    );
    let s1 = ok(
        store.write_schema("definition user {}", &mut |_| Ok(()), None),
        "schema 1",
    );
    let w = ok(
        store.write(guarded(Some(s1))),
        "write validated against schema 1",
    );
    let s2 = ok(
        store.write_schema(
            "definition user {} definition document {}",
            &mut |_| Ok(()),
            None,
        ),
        "schema 2",
    );
    assert_eq!((w, s2), (s1.next(), s1.next().next()));
    let err = store
        .write(guarded(Some(s1)))
        .expect_err("schema 1 was replaced");
    assert_eq!(
        err,
        StoreError::SchemaChanged {
            validated: s1,
            current: s2
        }
    );
    let err = store
        .import(super::BulkImport {
            relationships: vec![rel("document:b#viewer@user:x")],
            caller: None,
            schema_revision: Some(s1),
        })
        .expect_err("an import validated against schema 1");
    assert!(matches!(err, StoreError::SchemaChanged { .. }), "{err}");
    assert_eq!(head(&*store), s2, "failed writes consume no revision");
    ok(
        store.write(guarded(Some(s2))),
        "write validated against schema 2",
    );
    ok(
        store.import(super::BulkImport {
            relationships: vec![rel("document:b#viewer@user:x")],
            caller: None,
            schema_revision: Some(s2),
        }),
        "import validated against schema 2",
    );
    assert_eq!(query_head(&*store, &everything()).len(), 2);
}

// ---------------------------------------------------------------------------------------
// Bulk import

/// A bulk import commits every relationship at one revision, recorded as CREATE.
pub fn bulk_import_commits_one_revision(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    create(&*store, &["document:pre#viewer@user:x"]);
    let rels: Vec<Relationship> = (0..300)
        .map(|i| rel(&format!("document:d{i:03}#viewer@user:u{}", i % 7)))
        .collect();
    let rev = ok(
        store.bulk_import(rels.clone(), Some("importer".into())),
        "bulk_import",
    );
    assert_eq!(rev, Revision(2));
    assert_eq!(query(&*snap(&*store, Revision(1)), &everything()).len(), 1);
    let mut expected = texts(&rels);
    expected.push("document:pre#viewer@user:x".into());
    assert_eq!(
        sorted(query(&*snap(&*store, rev), &everything())),
        sorted(expected)
    );
    let set = &changes(&*store, Revision(1))[0];
    assert_eq!(set.caller.as_deref(), Some("importer"));
    assert_eq!(set.changes.len(), 300);
    assert!(set.changes.iter().all(|c| c.op == WriteOp::Create));
}

/// One relationship already present, or one duplicate in the batch: nothing is imported.
pub fn bulk_import_is_all_or_nothing(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let r1 = create(&*store, &["document:d050#viewer@user:u"]);
    let mut rels: Vec<Relationship> = (0..100)
        .map(|i| rel(&format!("document:d{i:03}#viewer@user:u")))
        .collect();
    let err = store
        .bulk_import(rels.clone(), None)
        .expect_err("importing an existing relationship must fail");
    assert_eq!(
        err,
        StoreError::AlreadyExists(key("document:d050#viewer@user:u"))
    );
    rels.remove(50);
    rels.push(rel("document:d007#viewer@user:u[c1]"));
    let err = store
        .bulk_import(rels.clone(), None)
        .expect_err("a duplicate in the batch must fail");
    assert_eq!(
        err,
        StoreError::DuplicateUpdate(key("document:d007#viewer@user:u"))
    );
    assert_eq!(head(&*store), r1);
    assert_eq!(
        query_head(&*store, &everything()),
        strings(&["document:d050#viewer@user:u"])
    );
    rels.pop();
    assert_eq!(ok(store.bulk_import(rels, None), "clean import"), r1.next());
    assert_eq!(query_head(&*store, &everything()).len(), 100);
}

// ---------------------------------------------------------------------------------------
// Change log

/// One change set per transaction: revision, caller, non-decreasing commit times, and only
/// the effective changes (CREATE/TOUCH as written, DELETE with the stored relationship).
pub fn change_log_records_effective_changes(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let started = chrono::Utc::now() - chrono::Duration::minutes(1);
    let r1 = ok(
        store.write(WriteTransaction {
            caller: Some("alice".into()),
            ..txn(&[
                (WriteOp::Create, "document:a#viewer@user:x[c1]"),
                (WriteOp::Touch, "document:a#viewer@user:y"),
            ])
        }),
        "write 1",
    );
    let r2 = write(
        &*store,
        &[
            (WriteOp::Delete, "document:a#viewer@user:x"),
            (WriteOp::Delete, "document:a#viewer@user:absent"),
            (
                WriteOp::Touch,
                "document:a#viewer@user:y[expiration:2100-01-01T00:00:00Z]",
            ),
        ],
    );
    let r3 = ok(
        store.write_schema("definition user {}", &mut |_| Ok(()), None),
        "schema",
    );
    let sets = changes(&*store, Revision::ZERO);
    assert_eq!(
        sets.iter().map(|s| s.revision).collect::<Vec<_>>(),
        vec![r1, r2, r3]
    );
    assert_eq!(sets[0].caller.as_deref(), Some("alice"));
    assert_eq!(sets[1].caller, None);
    assert_eq!(
        change_texts(&sets[0]),
        vec![
            (WriteOp::Create, "document:a#viewer@user:x[c1]".to_string()),
            (WriteOp::Touch, "document:a#viewer@user:y".to_string()),
        ]
    );
    let mut second = change_texts(&sets[1]);
    second.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        second,
        vec![
            (WriteOp::Delete, "document:a#viewer@user:x[c1]".to_string()),
            (
                WriteOp::Touch,
                "document:a#viewer@user:y[expiration:2100-01-01T00:00:00Z]".to_string()
            ),
        ]
    );
    assert!(!sets[0].schema_changed && !sets[1].schema_changed && sets[2].schema_changed);
    assert!(sets[2].changes.is_empty());
    assert!(sets[0].committed_at >= started);
    assert!(
        sets.windows(2)
            .all(|w| w[0].committed_at <= w[1].committed_at)
    );
}

/// Transaction metadata round-trips through the change log with its transaction: writes and
/// deletes by filter keep theirs (even one that changed nothing), others have none.
pub fn change_log_keeps_transaction_metadata(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let metadata = |v: serde_json::Value| match v {
        serde_json::Value::Object(m) => m,
        other => panic!("test metadata must be an object, not {other}"),
    };
    let on_write = metadata(serde_json::json!({
        "reason": "onboarding ✓",
        "ticket": 4211,
        "ratio": 0.25,
        "dry_run": false,
        "none": null,
        "tags": ["a", "b", {"nested": [1, 2, 3]}],
        "origin": {"service": "hr-sync", "attempt": 3},
    }));
    let on_delete = metadata(serde_json::json!({"reason": "offboarding"}));
    let on_noop = metadata(serde_json::json!({"reason": "nothing to delete"}));
    let r1 = ok(
        store.write(WriteTransaction {
            caller: Some("alice".into()),
            metadata: on_write.clone(),
            ..txn(&[
                (WriteOp::Create, "document:a#viewer@user:x"),
                (WriteOp::Create, "document:b#viewer@user:x"),
            ])
        }),
        "write with metadata",
    );
    let r2 = write(&*store, &[(WriteOp::Touch, "document:c#viewer@user:y")]);
    let deleted = ok(
        store.delete_by_filter(DeleteByFilter {
            filter: resource("document", "a"),
            metadata: on_delete.clone(),
            ..Default::default()
        }),
        "delete with metadata",
    );
    let noop = ok(
        store.delete_by_filter(DeleteByFilter {
            filter: resource("document", "missing"),
            metadata: on_noop.clone(),
            ..Default::default()
        }),
        "delete of nothing with metadata",
    );
    let r5 = ok(
        store.write_schema("definition user {}", &mut |_| Ok(()), None),
        "schema",
    );
    let r6 = ok(
        store.bulk_import(vec![rel("document:d#viewer@user:z")], None),
        "bulk import",
    );
    let sets = changes(&*store, Revision::ZERO);
    let got: Vec<(Revision, &serde_json::Map<String, serde_json::Value>)> =
        sets.iter().map(|s| (s.revision, &s.metadata)).collect();
    let empty = serde_json::Map::new();
    assert_eq!(
        got,
        vec![
            (r1, &on_write),
            (r2, &empty),
            (deleted.revision, &on_delete),
            (noop.revision, &on_noop),
            (r5, &empty),
            (r6, &empty),
        ]
    );
    assert_eq!(sets[0].caller.as_deref(), Some("alice"));
    assert_eq!(
        change_texts(&sets[2]),
        vec![(WriteOp::Delete, "document:a#viewer@user:x".to_string())]
    );
    assert!(sets[3].changes.is_empty());
    // Reading from the middle of the log finds the same metadata.
    let tail = ok(store.read_changes(r2, 1), "read_changes");
    assert_eq!(tail[0].metadata, on_delete);
}

/// `read_changes` returns change sets strictly after `after`, oldest first, at most `limit`.
pub fn change_log_after_and_limit(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    for i in 0..10 {
        create(&*store, &[format!("document:d{i}#viewer@user:x").as_str()]);
    }
    let revs = |after: u64, limit: usize| -> Vec<u64> {
        ok(store.read_changes(Revision(after), limit), "read_changes")
            .iter()
            .map(|c| c.revision.0)
            .collect()
    };
    assert_eq!(revs(0, 3), vec![1, 2, 3]);
    assert_eq!(revs(3, 3), vec![4, 5, 6]);
    assert_eq!(revs(8, 100), vec![9, 10]);
    assert_eq!(revs(10, 100), Vec::<u64>::new());
    assert_eq!(revs(4, 0), Vec::<u64>::new());
    let fifth = &ok(store.read_changes(Revision(4), 1), "read_changes")[0];
    assert_eq!(
        change_texts(fifth),
        vec![(WriteOp::Create, "document:d4#viewer@user:x".to_string())]
    );
}

/// Snapshots and change reads past the head fail with `RevisionInFuture`.
pub fn future_revisions_are_rejected(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    assert!(matches!(
        store.snapshot(Revision(1)),
        Err(StoreError::RevisionInFuture {
            requested: Revision(1),
            head: Revision::ZERO
        })
    ));
    let rev = create(&*store, &["document:a#viewer@user:x"]);
    assert!(matches!(
        store.snapshot(Revision(rev.0 + 5)),
        Err(StoreError::RevisionInFuture { head, .. }) if head == rev
    ));
    assert!(matches!(
        store.read_changes(rev.next(), 10),
        Err(StoreError::RevisionInFuture { .. })
    ));
    assert!(store.snapshot(rev).is_ok());
}

// ---------------------------------------------------------------------------------------
// Concurrency

/// Writers on many threads get unique, dense revisions, and each write is visible exactly
/// from its own revision on.
pub fn concurrent_writers_get_unique_dense_revisions(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let threads = 8;
    let per_thread = 25;
    let barrier = Barrier::new(threads);
    let results: Vec<(Revision, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let store = &*store;
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    (0..per_thread)
                        .map(|i| {
                            let text = format!("document:t{t}#viewer@user:w{i}");
                            (create(store, &[text.as_str()]), text)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a writer thread panicked"))
            })
            .collect()
    });
    let total = (threads * per_thread) as u64;
    let revisions: BTreeSet<u64> = results.iter().map(|(r, _)| r.0).collect();
    assert_eq!(revisions, (1..=total).collect::<BTreeSet<u64>>());
    assert_eq!(head(&*store), Revision(total));
    for (rev, text) in &results {
        assert_eq!(
            query(&*snap(&*store, *rev), &exact(text)),
            vec![text.clone()]
        );
        let before = Revision(rev.0 - 1);
        assert!(query(&*snap(&*store, before), &exact(text)).is_empty());
        assert_eq!(
            query(&*snap(&*store, *rev), &everything()).len() as u64,
            rev.0
        );
    }
}

/// Many threads each "create my owner relationship unless an owner exists": exactly one wins.
pub fn precondition_race_has_exactly_one_winner(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let threads = 8;
    let barrier = Barrier::new(threads);
    let owners = RelationshipFilter {
        relation: Some("owner".into()),
        ..resource("document", "race")
    };
    let outcomes: Vec<Result<Revision, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (store, barrier, owners) = (&*store, &barrier, &owners);
                scope.spawn(move || {
                    barrier.wait();
                    store.write(WriteTransaction {
                        preconditions: vec![precondition(
                            PreconditionKind::MustNotMatch,
                            owners.clone(),
                        )],
                        ..txn(&[(
                            WriteOp::Create,
                            format!("document:race#owner@user:t{t}").as_str(),
                        )])
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("a racing thread panicked"))
            })
            .collect()
    });
    let winners = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(
        o,
        Ok(_) | Err(StoreError::PreconditionFailed { index: 0, .. })
    )));
    assert_eq!(head(&*store), Revision(1));
    assert_eq!(query_head(&*store, &owners).len(), 1);
}

// ---------------------------------------------------------------------------------------
// Ids

/// Ids using every allowed special character, and 1024-byte ids, round-trip through every
/// read path and keep their order.
pub fn special_characters_and_long_ids_round_trip(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let long_a = "a".repeat(1024);
    let long_z = format!("{}z", "a".repeat(1023));
    let ids = [
        "a/b_c|d-e=f+g".to_string(),
        "+".to_string(),
        "=".to_string(),
        "|".to_string(),
        "-".to_string(),
        "_".to_string(),
        "/".to_string(),
        "A/Z".to_string(),
        "0".to_string(),
        long_a.clone(),
        long_z.clone(),
    ];
    let texts_written: Vec<String> = ids
        .iter()
        .map(|id| format!("tenant/document:{id}#viewer@tenant/user:{id}"))
        .collect();
    let refs: Vec<&str> = texts_written.iter().map(String::as_str).collect();
    let rev = create(&*store, &refs);
    let s = snap(&*store, rev);
    let got = collect(s.query(&of_type("tenant/document"), None));
    let mut expected: Vec<Relationship> = refs.iter().map(|t| rel(t)).collect();
    expected.sort_by_key(Relationship::key);
    assert_eq!(got, expected);
    for id in &ids {
        let text = format!("tenant/document:{id}#viewer@tenant/user:{id}");
        assert_eq!(
            query(&*s, &resource("tenant/document", id)),
            vec![text.clone()]
        );
        let by_subject = subject("tenant/user", Some(id), SubjectRelationFilter::Ellipsis);
        assert_eq!(reverse(&*s, &by_subject, None, None), vec![text]);
    }
    let prefixed = RelationshipFilter {
        resource_id_prefix: Some("a".repeat(1000)),
        ..of_type("tenant/document")
    };
    assert_eq!(query(&*s, &prefixed).len(), 2);
    let with_pipe = RelationshipFilter {
        resource_id_prefix: Some("a/b_c|".into()),
        ..of_type("tenant/document")
    };
    assert_eq!(query(&*s, &with_pipe).len(), 1);
}

/// Wildcard subjects (`user:*`) are stored and found by subject id `*`, and are not matched
/// by a query for a concrete id.
pub fn wildcard_subjects_are_stored_and_queried(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let rev = create(
        &*store,
        &[
            "document:public#viewer@user:*",
            "document:public#viewer@user:alice",
            "document:other#viewer@user:*[c1]",
        ],
    );
    let s = snap(&*store, rev);
    let star = subject("user", Some("*"), SubjectRelationFilter::Ellipsis);
    assert_eq!(
        reverse(&*s, &star, Some("document"), Some("viewer")),
        strings(&[
            "document:other#viewer@user:*[c1]",
            "document:public#viewer@user:*"
        ])
    );
    let filter = RelationshipFilter {
        subject: Some(star.clone()),
        ..resource("document", "public")
    };
    assert_eq!(
        query(&*s, &filter),
        strings(&["document:public#viewer@user:*"])
    );
    let alice = RelationshipFilter {
        subject: Some(subject("user", Some("alice"), SubjectRelationFilter::Any)),
        ..of_type("document")
    };
    assert_eq!(
        query(&*s, &alice),
        strings(&["document:public#viewer@user:alice"])
    );
    let got = collect(s.query(&exact("document:public#viewer@user:*"), None));
    assert!(got.len() == 1 && got[0].subject.is_wildcard());
}

// ---------------------------------------------------------------------------------------
// Readers

/// A snapshot's reader gives exactly what `query` gives, read after read in any order (its
/// store resources are reused between reads), and stays at the snapshot's revision while the
/// store moves on — also for a reader created after later writes.
pub fn reader_agrees_with_query_across_interleaved_reads(factory: &dyn StoreFactory) {
    let store = sample_store(factory);
    let r1 = head(&*store);
    let s1 = snap(&*store, r1);
    let early_reader = s1.reader();
    let r2 = write(
        &*store,
        &[
            (WriteOp::Delete, "document:readme#editor@user:alice"),
            (WriteOp::Create, "document:readme#editor@user:zed"),
            (WriteOp::Touch, "group:eng#member@user:bob"),
        ],
    );
    let mut late_reader = s1.reader();
    let filters = [
        exact("document:readme#editor@user:alice"),
        resource("document", "readme"),
        exact("document:readme#viewer@group:eng#member"),
        exact("document:nothing#viewer@user:alice"),
        of_type("group"),
        exact("folder:root#viewer@user:alice"),
        RelationshipFilter {
            resource_type: Some("document".into()),
            resource_id: Some("readme".into()),
            relation: Some("viewer".into()),
            subject: Some(subject("group", None, SubjectRelationFilter::Any)),
            ..RelationshipFilter::default()
        },
        RelationshipFilter {
            resource_type: Some("document".into()),
            resource_id_prefix: Some("r".into()),
            ..RelationshipFilter::default()
        },
        exact("document:readme#editor@user:zed"),
        subject_only("user", "alice"),
        exact("document:readme#editor@user:alice"),
    ];
    let mut early_reader = early_reader;
    for (i, f) in filters.iter().enumerate() {
        let want = query(&*s1, f);
        for (name, reader) in [("early", &mut early_reader), ("late", &mut late_reader)] {
            let got = texts(&ok(reader.read(f), "reader read"));
            assert_eq!(got, want, "{name} reader, read {i}: {f:?}");
        }
    }
    // A reader of the newer snapshot sees the newer state.
    let s2 = snap(&*store, r2);
    let mut reader2 = s2.reader();
    for f in &filters {
        assert_eq!(texts(&ok(reader2.read(f), "reader read")), query(&*s2, f));
    }
    assert_eq!(
        texts(&ok(
            reader2.read(&exact("document:readme#editor@user:zed")),
            "read"
        )),
        strings(&["document:readme#editor@user:zed"])
    );
}

/// A reader's reverse reads of one subject come page by page in resource id order, resuming
/// strictly after the page's `after`, at the reader's revision and time (later writes,
/// deletions and expired rows are not seen); `reverse_ids` gives the same pages reduced to ids
/// and whether each row has no caveat.
pub fn reader_pages_reverse_reads_in_id_order(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let ids = ["a", "b", "c", "d", "e", "f", "g"];
    let texts_of = |id: &str| format!("document:{id}#viewer@user:alice");
    let mut ops: Vec<(WriteOp, String)> = ids
        .iter()
        .map(|id| (WriteOp::Create, texts_of(id)))
        .collect();
    ops.push((
        WriteOp::Create,
        "document:c2#viewer@user:alice[tessera_test]".into(),
    ));
    ops.push((
        WriteOp::Create,
        "document:old#viewer@user:alice[expiration:2000-01-01T00:00:00Z]".into(),
    ));
    ops.push((WriteOp::Create, "document:x#viewer@user:bob".into()));
    ops.push((WriteOp::Create, "document:y#editor@user:alice".into()));
    let borrowed: Vec<(WriteOp, &str)> = ops.iter().map(|(o, t)| (*o, t.as_str())).collect();
    let r1 = write(&*store, &borrowed);
    // Later changes the snapshot at r1 must not see.
    write(
        &*store,
        &[
            (WriteOp::Delete, "document:b#viewer@user:alice"),
            (WriteOp::Create, "document:bb#viewer@user:alice"),
        ],
    );
    let s1 = snap(&*store, r1);
    let alice = subject("user", Some("alice"), SubjectRelationFilter::Ellipsis);
    let want: Vec<(String, bool)> = ["a", "b", "c", "c2", "d", "e", "f", "g"]
        .iter()
        .map(|id| (id.to_string(), *id != "c2"))
        .collect();
    for limit in [1, 2, 3, 100] {
        let mut reader = s1.reader();
        let (mut rows, mut ids_only) = (Vec::new(), Vec::new());
        let mut after: Option<String> = None;
        loop {
            let page = super::ReversePage {
                after: after.as_deref(),
                limit,
            };
            let full = ok(
                reader.reverse(&alice, "document", "viewer", Some(page)),
                "reverse page",
            );
            let lean = ok(
                reader.reverse_ids(&alice, "document", "viewer", page),
                "reverse_ids page",
            );
            assert_eq!(
                super::plain_ids(full.clone()),
                lean,
                "limit {limit} after {after:?}"
            );
            assert!(full.len() <= limit);
            let done = full.len() < limit;
            after = full.last().map(|r| r.resource.object_id.clone());
            rows.extend(full);
            ids_only.extend(lean);
            if done {
                break;
            }
        }
        assert_eq!(ids_only, want, "limit {limit}");
        assert!(
            rows.iter()
                .all(|r| r.relation == "viewer" && r.subject.object.object_id == "alice")
        );
    }
}

fn subject_only(t: &str, id: &str) -> RelationshipFilter {
    RelationshipFilter {
        subject: Some(subject(t, Some(id), SubjectRelationFilter::Any)),
        ..RelationshipFilter::default()
    }
}

// ---------------------------------------------------------------------------------------
// The nested-group index, maintained by the shared transaction layer for every store.

const NESTED_SCHEMA: &str = "caveat ok(a int) {\n    a > 0\n}\n\ndefinition user {}\n\ndefinition group {\n    relation member: user | group#member | group#member with ok\n}\n";

/// The index rows visible in `snapshot`: closure pairs `a>b` (`b` nested in `a`), irregular
/// objects `!x`, and `built`.
fn index_rows(snapshot: &dyn Snapshot) -> Vec<String> {
    let mut out: Vec<String> = collect(snapshot.query(&everything(), None))
        .into_iter()
        .filter_map(|r| {
            let t = r.resource.object_type.as_str();
            if t == super::leopard::closure_type("group") {
                Some(format!(
                    "{}>{}",
                    r.resource.object_id, r.subject.object.object_id
                ))
            } else if t == super::leopard::state_type("group") {
                Some(match r.relation.as_str() {
                    super::leopard::BUILT => "built".to_string(),
                    _ => format!("!{}", r.subject.object.object_id),
                })
            } else {
                None
            }
        })
        .collect();
    out.sort();
    out
}

/// Writes, touches that change caveats, deletes, deletes by filter and bulk imports each
/// commit the index changes they make necessary, in their own revision; older revisions keep
/// their index.
pub fn nested_group_index_follows_every_kind_of_write(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    let schema = ok(
        store.write_schema(NESTED_SCHEMA, &mut |_| Ok(()), None),
        "schema",
    );
    assert_eq!(index_rows(&*snap(&*store, schema)), ["built"]);
    let chain = write(
        &*store,
        &[
            (WriteOp::Touch, "group:g1#member@group:g2#member"),
            (WriteOp::Create, "group:g2#member@group:g3#member"),
            (WriteOp::Touch, "group:g3#member@user:alice"),
        ],
    );
    assert_eq!(
        index_rows(&*snap(&*store, chain)),
        ["built", "g1>g2", "g1>g3", "g2>g3"]
    );
    // The change set carries the index rows (the service hides the reserved namespace).
    let set = &changes(&*store, schema)[0];
    assert_eq!(set.changes.len(), 6, "{:?}", change_texts(set));

    // A caveated nesting is not in the closure; its container is irregular.
    let caveated = write(
        &*store,
        &[(WriteOp::Touch, "group:g2#member@group:g3#member[ok]")],
    );
    assert_eq!(
        index_rows(&*snap(&*store, caveated)),
        ["!g2", "built", "g1>g2"]
    );
    let uncaveated = write(
        &*store,
        &[(WriteOp::Touch, "group:g2#member@group:g3#member")],
    );
    assert_eq!(
        index_rows(&*snap(&*store, uncaveated)),
        ["built", "g1>g2", "g1>g3", "g2>g3"]
    );
    // A cycle: everything in it is nested in everything else in it.
    let cycle = write(
        &*store,
        &[(WriteOp::Create, "group:g3#member@group:g1#member")],
    );
    assert_eq!(
        index_rows(&*snap(&*store, cycle)),
        [
            "built", "g1>g2", "g1>g3", "g2>g1", "g2>g3", "g3>g1", "g3>g2"
        ]
    );
    let deleted = write(
        &*store,
        &[(WriteOp::Delete, "group:g2#member@group:g3#member")],
    );
    assert_eq!(
        index_rows(&*snap(&*store, deleted)),
        ["built", "g1>g2", "g3>g1", "g3>g2"]
    );
    let by_filter = ok(
        store.delete_by_filter(DeleteByFilter {
            filter: RelationshipFilter {
                resource_type: Some("group".into()),
                resource_id: Some("g3".into()),
                ..Default::default()
            },
            ..Default::default()
        }),
        "delete by filter",
    );
    assert_eq!(by_filter.deleted, 2);
    assert_eq!(
        index_rows(&*snap(&*store, by_filter.revision)),
        ["built", "g1>g2"]
    );
    let imported = ok(
        store.bulk_import(
            vec![
                rel("group:g2#member@group:g4#member"),
                rel("group:g4#member@group:g5#member"),
            ],
            None,
        ),
        "bulk import",
    );
    assert_eq!(
        index_rows(&*snap(&*store, imported)),
        [
            "built", "g1>g2", "g1>g4", "g1>g5", "g2>g4", "g2>g5", "g4>g5"
        ]
    );
    // Every revision keeps the index of its own state.
    assert_eq!(
        index_rows(&*snap(&*store, caveated)),
        ["!g2", "built", "g1>g2"]
    );
    assert_eq!(
        index_rows(&*snap(&*store, Revision(schema.0 - 1))),
        Vec::<String>::new()
    );
}

/// A schema that starts covering a relation builds its index from the stored relationships
/// (reconciling rows an earlier index left); one that stops covering it deletes the index.
/// `rebuild_indexes` has nothing to do while the index is complete.
pub fn nested_group_index_is_built_and_dropped_with_the_schema(factory: &dyn StoreFactory) {
    let store = factory.new_store();
    create(
        &*store,
        &[
            "group:a#member@group:b#member",
            "group:b#member@group:c#member",
            "group:c#member@user:x",
        ],
    );
    // No schema: no index.
    assert_eq!(
        index_rows(&*snap(&*store, head(&*store))),
        Vec::<String>::new()
    );
    assert_eq!(ok(store.rebuild_indexes(), "rebuild"), None);
    let built = ok(
        store.write_schema(NESTED_SCHEMA, &mut |_| Ok(()), None),
        "schema",
    );
    assert_eq!(
        index_rows(&*snap(&*store, built)),
        ["a>b", "a>c", "b>c", "built"]
    );
    assert_eq!(ok(store.rebuild_indexes(), "rebuild"), None);
    // The same schema again changes nothing in the index.
    let again = ok(
        store.write_schema(NESTED_SCHEMA, &mut |_| Ok(()), None),
        "schema",
    );
    assert_eq!(changes(&*store, built)[0].changes.len(), 0);
    let dropped = ok(
        store.write_schema(
            "definition user {}\ndefinition group {\n    relation member: user\n}",
            &mut |_| Ok(()),
            None,
        ),
        "schema",
    );
    assert_eq!(index_rows(&*snap(&*store, dropped)), Vec::<String>::new());
    assert_eq!(index_rows(&*snap(&*store, again)).len(), 4);
    let rebuilt = ok(
        store.write_schema(NESTED_SCHEMA, &mut |_| Ok(()), None),
        "schema",
    );
    assert_eq!(
        index_rows(&*snap(&*store, rebuilt)),
        ["a>b", "a>c", "b>c", "built"]
    );
}
