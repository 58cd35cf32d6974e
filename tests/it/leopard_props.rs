//! Property tests of the nested-group index (`store/leopard.rs`, `engine/leopard.rs`).
//!
//! Random histories of writes over deeply nested groups — fast nestings, caveated ones,
//! expiring ones (some already expired when evaluated), cycles, wildcards, another type's
//! usersets nesting back into groups — applied in several transactions (touches, deletes,
//! deletes by filter), so the index is maintained incrementally, then:
//! - the index rows at the head are exactly what a from-scratch computation over the live
//!   relationships gives (closure of the fast edges, irregular objects, the `built` row);
//! - every check, LookupResources and LookupSubjects over the index agrees with the naive
//!   reference evaluator over the live relationships.
//!
//! `PROPTEST_CASES` raises the number of cases (64 by default, each a few hundred checks).

use crate::reference::{self, Reference};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use reference::{Choices, kind, lookup_subjects_outcome, paged_lookup};
use tessera::engine::{CheckOutcome, EngineConfig, Evaluator};
use tessera::model::{
    CaveatRef, Context, ObjectRef, Relationship, RelationshipFilter, SubjectRef, Timestamp,
};
use tessera::store::clock::ManualClock;
use tessera::store::leopard::{
    BUILT, IRREGULAR, STATE_TYPE_PREFIX, closure_type, covered_relations, state_type,
};
use tessera::store::memory::{MemoryOptions, MemoryStore};
use tessera::store::{DeleteByFilter, RelationshipUpdate, Store, WriteOp, WriteTransaction};

const SCHEMA: &str = "
use expiration

caveat positive(a int) {
    a > 0
}

definition user {}

definition team {
    relation member: user | group#member
}

definition group {
    relation member: user | user:* | user with positive | user with expiration | group#member | group#member with positive | group#member with expiration | team#member
    relation owner: user
    permission admin = owner + member
}

definition document {
    relation viewer: user | group#member | team#member
    relation banned: user
    permission view = viewer - banned
}
";

const GROUPS: usize = 10;
const TEAMS: usize = 2;
const USERS: usize = 4;
const DOCS: usize = 3;

fn start() -> Timestamp {
    Utc.timestamp_opt(1_800_000_000, 0)
        .single()
        .expect("valid time")
}

/// When the relationships are evaluated: `SOON` has passed, `LATER` has not.
fn evaluated_at() -> Timestamp {
    start() + Duration::seconds(100)
}
const SOON: i64 = 10;
const LATER: i64 = 1000;

fn group(i: usize) -> String {
    format!("g{i}")
}

/// A random relationship of the schema; nestings between groups are the most likely.
fn random_relationship(c: &mut Choices) -> Relationship {
    let g = group(c.pick(GROUPS));
    let (resource, relation, subject) = match c.pick(12) {
        0..=5 => (
            ObjectRef::new("group", g),
            "member",
            SubjectRef::new("group", &group(c.pick(GROUPS)), Some("member")),
        ),
        6 | 7 => (
            ObjectRef::new("group", g),
            "member",
            SubjectRef::new("user", &format!("u{}", c.pick(USERS)), None),
        ),
        8 => {
            // Wildcards only where the schema allows them (`member`).
            let relation = if c.pick(2) == 0 { "member" } else { "owner" };
            let subject = if relation == "member" && c.pick(4) == 0 {
                SubjectRef::new("user", "*", None)
            } else {
                SubjectRef::new("user", &format!("u{}", c.pick(USERS)), None)
            };
            (ObjectRef::new("group", g), relation, subject)
        }
        9 => {
            let t = format!("t{}", c.pick(TEAMS));
            if c.pick(2) == 0 {
                (
                    ObjectRef::new("group", g),
                    "member",
                    SubjectRef::new("team", &t, Some("member")),
                )
            } else {
                (
                    ObjectRef::new("team", t),
                    "member",
                    if c.pick(2) == 0 {
                        SubjectRef::new("group", &g, Some("member"))
                    } else {
                        SubjectRef::new("user", &format!("u{}", c.pick(USERS)), None)
                    },
                )
            }
        }
        10 => (
            ObjectRef::new("document", format!("d{}", c.pick(DOCS))),
            "viewer",
            match c.pick(3) {
                0 => SubjectRef::new("group", &g, Some("member")),
                1 => SubjectRef::new("team", &format!("t{}", c.pick(TEAMS)), Some("member")),
                _ => SubjectRef::new("user", &format!("u{}", c.pick(USERS)), None),
            },
        ),
        _ => (
            ObjectRef::new("document", format!("d{}", c.pick(DOCS))),
            "banned",
            SubjectRef::new("user", &format!("u{}", c.pick(USERS)), None),
        ),
    };
    let mut r = Relationship::new(resource, relation, subject);
    let plain_user = r.subject.object.object_type == "user" && !r.subject.is_wildcard();
    let on_group_member = r.resource.object_type == "group" && r.relation == "member";
    let nesting = on_group_member && r.subject.object.object_type == "group";
    if on_group_member && (nesting || plain_user) {
        match c.pick(6) {
            0 => {
                let mut context = Context::new();
                match c.pick(3) {
                    0 => {}
                    1 => {
                        context.insert("a".into(), 1.into());
                    }
                    _ => {
                        context.insert("a".into(), (-1).into());
                    }
                }
                r.caveat = Some(CaveatRef {
                    name: "positive".into(),
                    context,
                });
            }
            1 => {
                let secs = if c.pick(2) == 0 { SOON } else { LATER };
                r.expiration = Some(start() + Duration::seconds(secs));
            }
            _ => {}
        }
    }
    r
}

/// A history of transactions over a fresh store: the store at the end.
fn apply_history(bytes: &[u8]) -> (MemoryStore, Arc<ManualClock>) {
    let mut c = Choices { bytes, pos: 0 };
    let clock = Arc::new(ManualClock::new(start()));
    let store = MemoryStore::with_options(MemoryOptions {
        clock: clock.clone(),
        ..MemoryOptions::default()
    });
    store
        .write_schema(SCHEMA, &mut |_| Ok(()), None)
        .expect("schema");
    // One chain through every group now and then: the deepest nesting the ids allow.
    if c.pick(3) == 0 {
        let chain = (0..GROUPS - 1)
            .map(|i| RelationshipUpdate {
                op: WriteOp::Touch,
                relationship: Relationship::new(
                    ObjectRef::new("group", group(i)),
                    "member",
                    SubjectRef::new("group", &group(i + 1), Some("member")),
                ),
            })
            .collect();
        store
            .write(WriteTransaction {
                updates: chain,
                ..Default::default()
            })
            .expect("chain");
    }
    let mut written: Vec<Relationship> = Vec::new();
    for _ in 0..2 + c.pick(5) {
        let mut updates: Vec<RelationshipUpdate> = Vec::new();
        for _ in 0..1 + c.pick(12) {
            let deleting = !written.is_empty() && c.pick(4) == 0;
            let (op, relationship) = if deleting {
                let victim = written[c.pick(written.len())].clone();
                (WriteOp::Delete, victim)
            } else {
                (WriteOp::Touch, random_relationship(&mut c))
            };
            if updates
                .iter()
                .any(|u| u.relationship.key() == relationship.key())
            {
                continue;
            }
            if op == WriteOp::Touch {
                written.push(relationship.clone());
            }
            updates.push(RelationshipUpdate { op, relationship });
        }
        store
            .write(WriteTransaction {
                updates,
                ..Default::default()
            })
            .expect("write");
        if c.pick(6) == 0 {
            // A delete by filter: every nesting into one group.
            store
                .delete_by_filter(DeleteByFilter {
                    filter: RelationshipFilter {
                        resource_type: Some("group".into()),
                        resource_id: Some(group(c.pick(GROUPS))),
                        relation: Some("member".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .expect("delete by filter");
        }
    }
    clock.set(evaluated_at());
    (store, clock)
}

/// Every relationship of the user schema live at the head (what the reference evaluates).
fn live(store: &MemoryStore) -> Vec<Relationship> {
    let snap = store
        .snapshot(store.head_revision().expect("head"))
        .expect("snapshot");
    snap.query(&RelationshipFilter::default(), None)
        .expect("query")
        .map(|r| r.expect("row"))
        .filter(|r| !r.resource.object_type.starts_with("tessera/"))
        .collect()
}

/// The index rows at the head, as text with expiry.
fn stored_index(store: &MemoryStore) -> BTreeSet<String> {
    let snap = store
        .snapshot(store.head_revision().expect("head"))
        .expect("snapshot");
    snap.query(&RelationshipFilter::default(), None)
        .expect("query")
        .map(|r| r.expect("row"))
        .filter(|r| r.resource.object_type.starts_with("tessera/leopard"))
        .map(|r| format!("{} {:?}", r.key(), r.expiration))
        .collect()
}

/// The index of `group#member` computed from scratch over `rels`.
fn expected_index(rels: &[Relationship]) -> BTreeSet<String> {
    let fast = |r: &Relationship| {
        r.resource.object_type == "group"
            && r.relation == "member"
            && r.subject.object.object_type == "group"
            && r.subject.relation.as_deref() == Some("member")
            && r.caveat.is_none()
            && r.expiration.is_none()
    };
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for r in rels.iter().filter(|r| fast(r)) {
        edges
            .entry(&r.resource.object_id)
            .or_default()
            .push(&r.subject.object.object_id);
    }
    let mut out = BTreeSet::new();
    let row = |text: String, exp: Option<Timestamp>| format!("{text} {exp:?}");
    let st = state_type("group");
    out.push_row(row(format!("{st}:member#{BUILT}@{st}:member"), None));
    for a in edges.keys() {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = edges[a].clone();
        while let Some(z) = stack.pop() {
            if z == *a || !seen.insert(z) {
                continue;
            }
            stack.extend(edges.get(z).into_iter().flatten());
        }
        for b in seen {
            out.push_row(row(
                format!("{}:{a}#member@group:{b}#member", closure_type("group")),
                None,
            ));
        }
    }
    let mut irregular: BTreeMap<&str, (bool, Option<Timestamp>)> = BTreeMap::new();
    for r in rels {
        let userset = r.subject.relation.is_some() && !r.subject.is_wildcard();
        if r.resource.object_type == "group" && r.relation == "member" && userset && !fast(r) {
            let e = irregular.entry(&r.resource.object_id).or_default();
            match r.expiration {
                None => e.0 = true,
                Some(t) => e.1 = Some(e.1.map_or(t, |x: Timestamp| x.max(t))),
            }
        }
    }
    for (x, (forever, latest)) in irregular {
        let exp = if forever { None } else { latest };
        out.push_row(row(
            format!("{st}:member#{IRREGULAR}@group:{x}#member"),
            exp,
        ));
    }
    out
}

trait PushRow {
    fn push_row(&mut self, s: String);
}

impl PushRow for BTreeSet<String> {
    fn push_row(&mut self, s: String) {
        self.insert(s);
    }
}

fn data_has_cycle(rels: &[Relationship]) -> bool {
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rels.iter().filter(|r| !r.subject.is_wildcard()) {
        edges
            .entry(r.resource.to_string())
            .or_default()
            .push(r.subject.object.to_string());
    }
    fn visit(
        n: &str,
        edges: &BTreeMap<String, Vec<String>>,
        state: &mut BTreeMap<String, u8>,
    ) -> bool {
        match state.get(n) {
            Some(1) => return true,
            Some(_) => return false,
            None => {}
        }
        state.insert(n.to_string(), 1);
        for m in edges.get(n).into_iter().flatten() {
            if visit(m, edges, state) {
                return true;
            }
        }
        state.insert(n.to_string(), 2);
        false
    }
    let mut state = BTreeMap::new();
    edges.keys().any(|n| visit(n, &edges, &mut state))
}

/// The live relationships and the index, for failure messages.
fn dump(rels: &[Relationship], index: &BTreeSet<String>) -> String {
    let mut out = String::from("--- relationships ---\n");
    for r in rels {
        out.push_str(&format!("{r}\n"));
    }
    out.push_str("--- index ---\n");
    for r in index {
        out.push_str(&format!("{r}\n"));
    }
    out
}

fn run_case(bytes: &[u8]) -> Result<(), TestCaseError> {
    let (store, _clock) = apply_history(bytes);
    let rels = live(&store);

    // The index is exactly the from-scratch one.
    let stored = stored_index(&store);
    let want = expected_index(&rels);
    prop_assert_eq!(&stored, &want, "index rows");

    let schema = tessera::schema::compile("s.zed", SCHEMA)
        .expect("schema")
        .schema;
    assert_eq!(covered_relations(&schema).len(), 1);
    let snap = store
        .snapshot(store.head_revision().expect("head"))
        .expect("snapshot");
    let config = EngineConfig { max_depth: 1000 };
    let ev = Evaluator::new(&schema, &*snap, &config);
    let reference = Reference::new(&schema, &rels);
    let exact = !data_has_cycle(&rels);
    let same = |a: &CheckOutcome, b: &CheckOutcome| if exact { a == b } else { kind(a) == kind(b) };

    let mut subjects: Vec<SubjectRef> = (0..USERS)
        .map(|u| SubjectRef::new("user", &format!("u{u}"), None))
        .collect();
    subjects.extend((0..GROUPS).map(|g| SubjectRef::new("group", &group(g), Some("member"))));
    subjects.extend((0..TEAMS).map(|t| SubjectRef::new("team", &format!("t{t}"), Some("member"))));
    let mut resources: Vec<(ObjectRef, &str)> = Vec::new();
    for g in 0..GROUPS {
        for p in ["member", "admin"] {
            resources.push((ObjectRef::new("group", group(g)), p));
        }
    }
    for t in 0..TEAMS {
        resources.push((ObjectRef::new("team", format!("t{t}")), "member"));
    }
    for d in 0..DOCS {
        resources.push((ObjectRef::new("document", format!("d{d}")), "view"));
    }
    let mut with_a = Context::new();
    with_a.insert("a".into(), 1.into());
    for context in [Context::new(), with_a] {
        for (resource, permission) in &resources {
            for s in &subjects {
                let got = ev
                    .check(resource, permission, s, &context)
                    .map_err(|e| TestCaseError::fail(format!("check: {e}")))?;
                let want = reference.check(resource, permission, s, &context);
                prop_assert!(
                    same(&got, &want),
                    "check {}#{}@{} {:?}: index {:?}, reference {:?}\n{}",
                    resource,
                    permission,
                    s,
                    context,
                    got,
                    want,
                    dump(&rels, &stored)
                );
            }
        }
        for (t, p, ids) in [
            (
                "group",
                "member",
                (0..GROUPS).map(group).collect::<Vec<_>>(),
            ),
            ("group", "admin", (0..GROUPS).map(group).collect()),
            (
                "team",
                "member",
                (0..TEAMS).map(|t| format!("t{t}")).collect(),
            ),
            (
                "document",
                "view",
                (0..DOCS).map(|d| format!("d{d}")).collect(),
            ),
        ] {
            for s in &subjects {
                let found = ev
                    .lookup_resources(t, p, s, &context)
                    .map_err(|e| TestCaseError::fail(format!("lookup_resources: {e}")))?;
                let want = reference.lookup_resources(t, p, s, &context, &ids);
                let got: Vec<(&str, &str)> = found
                    .iter()
                    .map(|r| (r.resource_id.as_str(), kind(&r.outcome)))
                    .collect();
                let want: Vec<(&str, &str)> =
                    want.iter().map(|(id, o)| (id.as_str(), kind(o))).collect();
                prop_assert_eq!(
                    got,
                    want,
                    "lookup_resources {}#{}@{}\n{}",
                    t,
                    p,
                    s,
                    dump(&rels, &stored)
                );
                for replan in [false, true] {
                    let paged = paged_lookup(&ev, t, p, s, &context, 2, replan)
                        .map_err(|e| TestCaseError::fail(format!("paged lookup: {e}")))?;
                    prop_assert_eq!(&paged, &found, "paged lookup_resources {}#{}@{}", t, p, s);
                }
            }
        }
        for (resource, permission) in &resources {
            for (st, srel, ids) in [
                (
                    "user",
                    None,
                    (0..USERS).map(|u| format!("u{u}")).collect::<Vec<_>>(),
                ),
                ("group", Some("member"), (0..GROUPS).map(group).collect()),
                (
                    "team",
                    Some("member"),
                    (0..TEAMS).map(|t| format!("t{t}")).collect(),
                ),
            ] {
                let found = ev
                    .lookup_subjects(resource, permission, st, srel, &context)
                    .map_err(|e| TestCaseError::fail(format!("lookup_subjects: {e}")))?;
                for id in &ids {
                    let s = SubjectRef::new(st, id, srel);
                    let got = lookup_subjects_outcome(&found, id);
                    let want = reference.check(resource, permission, &s, &context);
                    prop_assert!(
                        same(&got, &want),
                        "lookup_subjects {}#{}@{}: got {:?} from {:?}, reference {:?}\n{}",
                        resource,
                        permission,
                        s,
                        got,
                        found,
                        want,
                        dump(&rels, &stored)
                    );
                }
            }
        }
    }
    // The reserved rows are the index's only.
    prop_assert!(
        stored
            .iter()
            .all(|r| r.starts_with(STATE_TYPE_PREFIX) || r.starts_with("tessera/leopard/"))
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_index_is_exact_and_evaluation_over_it_agrees_with_the_reference(
        bytes in proptest::collection::vec(any::<u8>(), 64..400)
    ) {
        run_case(&bytes)?;
    }
}
