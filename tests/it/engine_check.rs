//! Check and Expand over hand-written schemas: every rewrite kind, wildcards, usersets,
//! caveats, cycles and the depth limit.

use crate::reference;

use reference::{Fixture, cond, ctx, object, subject_ref};
use serde_json::json;
use tessera::engine::{CheckOutcome, EngineConfig, EngineError, Evaluator, ExpandNode};
use tessera::model::Context;

use CheckOutcome::{Has, No};

const DOCS: &str = r#"
definition user {}

definition group {
    relation member: user | group#member
}

definition folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer + parent->view
}

definition document {
    relation folder: folder
    relation owner: user
    relation editor: user | group#member
    relation viewer: user | user:* | group#member
    relation banned: user | group#member
    relation approver: user
    relation reviewer: folder
    permission edit = owner + editor
    permission view = (edit + viewer + folder->view) - banned
    permission both = edit & viewer
    permission nobody = nil
    permission approved = reviewer.all(view)
    permission any_review = reviewer.any(view)
}
"#;

fn docs(rels: &[&str]) -> Fixture {
    Fixture::new(DOCS, rels)
}

#[test]
fn direct_relationship_and_absent_subject() {
    let f = docs(&["document:d#owner@user:alice"]);
    assert_eq!(f.check("document:d", "owner", "user:alice"), Has);
    assert_eq!(f.check("document:d", "owner", "user:bob"), No);
    assert_eq!(f.check("document:other", "owner", "user:alice"), No);
}

#[test]
fn computed_union_and_intersection() {
    let f = docs(&[
        "document:d#owner@user:alice",
        "document:d#editor@user:bob",
        "document:d#viewer@user:bob",
        "document:d#viewer@user:carol",
    ]);
    assert_eq!(f.check("document:d", "edit", "user:alice"), Has);
    assert_eq!(f.check("document:d", "edit", "user:bob"), Has);
    assert_eq!(f.check("document:d", "edit", "user:carol"), No);
    assert_eq!(f.check("document:d", "view", "user:carol"), Has);
    // both = edit & viewer
    assert_eq!(f.check("document:d", "both", "user:bob"), Has);
    assert_eq!(f.check("document:d", "both", "user:alice"), No);
    assert_eq!(f.check("document:d", "both", "user:carol"), No);
    assert_eq!(f.check("document:d", "nobody", "user:alice"), No);
}

#[test]
fn exclusion_removes_banned_subjects_however_they_got_access() {
    let f = docs(&[
        "document:d#owner@user:alice",
        "document:d#banned@user:alice",
        "document:d#viewer@group:eng#member",
        "group:eng#member@user:bob",
        "group:eng#member@user:carol",
        "document:d#banned@group:interns#member",
        "group:interns#member@user:carol",
    ]);
    assert_eq!(f.check("document:d", "edit", "user:alice"), Has);
    assert_eq!(f.check("document:d", "view", "user:alice"), No);
    assert_eq!(f.check("document:d", "view", "user:bob"), Has);
    assert_eq!(f.check("document:d", "view", "user:carol"), No);
}

#[test]
fn wildcard_grants_every_object_of_its_type_but_not_usersets() {
    let f = docs(&["document:d#viewer@user:*", "document:d#banned@user:mallory"]);
    assert_eq!(f.check("document:d", "viewer", "user:anyone"), Has);
    assert_eq!(f.check("document:d", "view", "user:anyone"), Has);
    assert_eq!(f.check("document:d", "view", "user:mallory"), No);
    // A wildcard of users does not contain groups or usersets.
    assert_eq!(f.check("document:d", "viewer", "group:eng#member"), No);
    assert_eq!(f.check("document:d", "viewer", "group:eng"), No);
}

#[test]
fn nested_groups_and_userset_subjects() {
    let f = docs(&[
        "document:d#viewer@group:all#member",
        "group:all#member@group:eng#member",
        "group:eng#member@group:backend#member",
        "group:backend#member@user:dana",
    ]);
    assert_eq!(f.check("document:d", "view", "user:dana"), Has);
    assert_eq!(f.check("group:all", "member", "user:dana"), Has);
    assert_eq!(f.check("group:backend", "member", "user:erin"), No);
    // A userset as the subject: contained directly, transitively, and in itself.
    assert_eq!(f.check("document:d", "viewer", "group:all#member"), Has);
    assert_eq!(f.check("document:d", "viewer", "group:backend#member"), Has);
    assert_eq!(f.check("group:eng", "member", "group:eng#member"), Has);
    assert_eq!(f.check("group:backend", "member", "group:eng#member"), No);
    // The group object itself is not its member set.
    assert_eq!(f.check("document:d", "viewer", "group:all"), No);
}

#[test]
fn arrows_walk_the_folder_tree() {
    let f = docs(&[
        "folder:root#viewer@user:alice",
        "folder:mid#parent@folder:root",
        "folder:leaf#parent@folder:mid",
        "document:d#folder@folder:leaf",
        "folder:other#viewer@user:bob",
    ]);
    assert_eq!(f.check("document:d", "view", "user:alice"), Has);
    assert_eq!(f.check("folder:leaf", "view", "user:alice"), Has);
    assert_eq!(f.check("document:d", "view", "user:bob"), No);
}

#[test]
fn all_arrow_requires_every_object_and_at_least_one() {
    let f = docs(&[
        "document:none#owner@user:x",
        "document:one#reviewer@folder:f1",
        "document:two#reviewer@folder:f1",
        "document:two#reviewer@folder:f2",
        "folder:f1#viewer@user:alice",
        "folder:f1#viewer@user:bob",
        "folder:f2#viewer@user:alice",
    ]);
    // No reviewer folder at all: `.all` is false, `.any` too.
    assert_eq!(f.check("document:none", "approved", "user:alice"), No);
    assert_eq!(f.check("document:one", "approved", "user:bob"), Has);
    assert_eq!(f.check("document:two", "approved", "user:alice"), Has);
    assert_eq!(f.check("document:two", "approved", "user:bob"), No);
    assert_eq!(f.check("document:two", "any_review", "user:bob"), Has);
}

#[test]
fn data_cycles_terminate_with_the_least_fixpoint() {
    let f = docs(&[
        "group:a#member@group:b#member",
        "group:b#member@group:a#member",
        "group:b#member@group:c#member",
        "group:c#member@group:a#member",
        "group:c#member@user:carol",
        "folder:x#parent@folder:y",
        "folder:y#parent@folder:x",
        "folder:y#viewer@user:yolanda",
    ]);
    assert_eq!(f.check("group:a", "member", "user:carol"), Has);
    assert_eq!(f.check("group:b", "member", "user:carol"), Has);
    assert_eq!(f.check("group:a", "member", "user:nobody"), No);
    assert_eq!(f.check("group:c", "member", "group:b#member"), Has);
    assert_eq!(f.check("folder:x", "view", "user:yolanda"), Has);
    assert_eq!(f.check("folder:x", "view", "user:nobody"), No);
    // Repeated checks against a fresh memo agree.
    for _ in 0..3 {
        assert_eq!(f.check("group:b", "member", "user:carol"), Has);
    }
}

#[test]
fn cycle_results_are_not_memoised_when_cut_short() {
    // Checking a#both evaluates a#member first: a -> b -> a is cut there, so b's answer at
    // that point ("nothing") is partial. It must not be remembered, because a#other then
    // needs b#member in full, which includes alice through a and d.
    let f = Fixture::new(
        r#"
        definition user {}
        definition group {
            relation member: user | group#member
            relation other: group#member
            permission both = member & other
        }
        "#,
        &[
            "group:a#member@group:b#member",
            "group:b#member@group:a#member",
            "group:a#member@group:d#member",
            "group:d#member@user:alice",
            "group:a#other@group:b#member",
        ],
    );
    assert_eq!(f.check("group:b", "member", "user:alice"), Has);
    assert_eq!(f.check("group:a", "other", "user:alice"), Has);
    assert_eq!(f.check("group:a", "both", "user:alice"), Has);
    let ev = f.evaluator();
    let found = ev
        .lookup_subjects(&object("group:a"), "both", "user", None, &Context::new())
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].subject_id, "alice");
}

fn chain_fixture(len: usize) -> Fixture {
    // document:d#viewer@group:g0#member, g0 ∋ g1 ∋ ... ∋ g{len-1} ∋ user:deep
    let mut rels = vec!["document:d#viewer@group:g0#member".to_string()];
    for i in 0..len - 1 {
        rels.push(format!("group:g{i}#member@group:g{}#member", i + 1));
    }
    rels.push(format!("group:g{}#member@user:deep", len - 1));
    let refs: Vec<&str> = rels.iter().map(String::as_str).collect();
    Fixture::new(DOCS, &refs)
}

#[test]
fn depth_limit_is_an_error_naming_where() {
    // document#view -> viewer -> g0#member -> ... : 2 + len levels.
    let mut f = chain_fixture(60);
    let err = f
        .try_check("document:d", "view", "user:deep", &Context::new())
        .unwrap_err();
    match &err {
        EngineError::DepthExceeded { limit, at } => {
            assert_eq!(*limit, 50);
            assert!(at.starts_with("group:g"), "{at}");
            assert!(at.ends_with("#member"), "{at}");
        }
        other => panic!("expected DepthExceeded, got {other:?}"),
    }
    assert!(err.to_string().contains("maximum depth of 50"));
    f.config = EngineConfig { max_depth: 62 };
    assert_eq!(f.check("document:d", "view", "user:deep"), Has);
    f.config = EngineConfig { max_depth: 61 };
    assert!(matches!(
        f.try_check("document:d", "view", "user:deep", &Context::new()),
        Err(EngineError::DepthExceeded { .. })
    ));
}

#[test]
fn default_depth_fits_a_small_thread_stack() {
    // Threads of async runtimes have 2 MiB stacks; a check using the whole default depth
    // budget (and one failing beyond it) must fit comfortably, even in debug builds.
    let handle = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(|| {
            let ok = chain_fixture(48);
            assert_eq!(ok.check("document:d", "view", "user:deep"), Has);
            let too_deep = chain_fixture(200);
            assert!(matches!(
                too_deep.try_check("document:d", "view", "user:deep", &Context::new()),
                Err(EngineError::DepthExceeded { .. })
            ));
            let lookups = chain_fixture(48);
            let ev = lookups.evaluator();
            let subjects = ev
                .lookup_subjects(&object("document:d"), "view", "user", None, &Context::new())
                .unwrap();
            assert_eq!(subjects.len(), 1);
            assert!(ev.expand(&object("document:d"), "view").is_ok());
        })
        .unwrap();
    handle.join().expect("no stack overflow");
}

#[test]
fn unknown_names_are_errors() {
    let f = docs(&[]);
    let c = Context::new();
    assert_eq!(
        f.try_check("nope:x", "view", "user:a", &c),
        Err(EngineError::UnknownDefinition("nope".into()))
    );
    assert_eq!(
        f.try_check("document:x", "nope", "user:a", &c),
        Err(EngineError::UnknownRelation {
            object_type: "document".into(),
            relation: "nope".into()
        })
    );
    assert!(matches!(
        f.try_check("document:x", "view", "ghost:a", &c),
        Err(EngineError::UnknownDefinition(t)) if t == "ghost"
    ));
    assert!(matches!(
        f.try_check("document:x", "view", "group:a#ghost", &c),
        Err(EngineError::UnknownRelation { relation, .. }) if relation == "ghost"
    ));
}

const CAVEATS: &str = r#"
caveat under_limit(count int, limit int) {
    count < limit
}

caveat flag_on(flag bool) {
    flag
}

definition user {}

definition group {
    relation member: user | user with flag_on
}

definition document {
    relation viewer: user with under_limit | group#member | group#member with flag_on | user:* with flag_on
    relation owner: user
    relation banned: user with flag_on
    relation parent: document | document with flag_on
    permission view = viewer - banned
    permission both = viewer & owner
    permission inherited = parent->view
    permission all_inherited = parent.all(owner)
}
"#;

#[test]
fn caveat_context_merges_with_relationship_values_winning() {
    let f = Fixture::new(
        CAVEATS,
        &[r#"document:d#viewer@user:alice[under_limit:{"limit":5}]"#],
    );
    let check = |c: serde_json::Value| f.check_with("document:d", "viewer", "user:alice", &ctx(c));
    assert_eq!(check(json!({"count": 3})), Has);
    assert_eq!(check(json!({"count": 7})), No);
    assert_eq!(check(json!({})), cond(&["count"]));
    // The request cannot raise the limit the relationship fixed.
    assert_eq!(check(json!({"count": 7, "limit": 100})), No);
}

#[test]
fn caveats_combine_three_valued() {
    let f = Fixture::new(
        CAVEATS,
        &[
            r#"document:d#viewer@user:alice[under_limit:{"limit":5}]"#,
            "document:d#owner@user:alice",
            "document:d#viewer@user:bob[under_limit]",
            "document:d#banned@user:bob[flag_on]",
            "document:d#viewer@group:g#member",
            "group:g#member@user:carol[flag_on]",
            "document:e#viewer@user:*[flag_on]",
        ],
    );
    let none = Context::new();
    // Intersection with a conditional side stays conditional.
    assert_eq!(
        f.check_with("document:d", "both", "user:alice", &none),
        cond(&["count"])
    );
    // Exclusion: conditional base minus conditional ban.
    assert_eq!(
        f.check_with("document:d", "view", "user:bob", &none),
        cond(&["count", "flag", "limit"])
    );
    assert_eq!(
        f.check_with(
            "document:d",
            "view",
            "user:bob",
            &ctx(json!({"flag": true}))
        ),
        No
    );
    assert_eq!(
        f.check_with(
            "document:d",
            "view",
            "user:bob",
            &ctx(json!({"flag": false, "count": 1, "limit": 2}))
        ),
        Has
    );
    // Caveats deep in a userset chain.
    assert_eq!(
        f.check_with("document:d", "view", "user:carol", &none),
        cond(&["flag"])
    );
    assert_eq!(
        f.check_with(
            "document:d",
            "view",
            "user:carol",
            &ctx(json!({"flag": true}))
        ),
        Has
    );
    // Caveated wildcard.
    assert_eq!(
        f.check_with("document:e", "viewer", "user:zed", &none),
        cond(&["flag"])
    );
}

#[test]
fn caveated_tupleset_relationships_gate_arrows() {
    let f = Fixture::new(
        CAVEATS,
        &[
            "document:child#parent@document:p1[flag_on]",
            "document:p1#viewer@user:alice",
            "document:p1#owner@user:alice",
            "document:child2#parent@document:p1[flag_on]",
            "document:child2#parent@document:p2",
            "document:p2#owner@user:bob",
        ],
    );
    let none = Context::new();
    let on = ctx(json!({"flag": true}));
    let off = ctx(json!({"flag": false}));
    assert_eq!(
        f.check_with("document:child", "inherited", "user:alice", &none),
        cond(&["flag"])
    );
    assert_eq!(
        f.check_with("document:child", "inherited", "user:alice", &on),
        Has
    );
    assert_eq!(
        f.check_with("document:child", "inherited", "user:alice", &off),
        No
    );
    // .all: every parent relationship contributes (its caveat ∧ the permission on it). With
    // the caveat false, p1's relationship makes `.all()` false (it is not skipped as absent);
    // with it true, p1 lacks the permission; unknown, p1's conjunct is conditional... and
    // bob lacks the permission on p1 whatever the flag: No in every case.
    assert_eq!(
        f.check_with("document:child2", "all_inherited", "user:bob", &off),
        No
    );
    assert_eq!(
        f.check_with("document:child2", "all_inherited", "user:bob", &on),
        No
    );
    assert_eq!(
        f.check_with("document:child2", "all_inherited", "user:bob", &none),
        No
    );
    // alice has the permission on p1 but not on p2: No; on child, whose only parent is p1
    // behind the caveat, the answer is the caveat's.
    assert_eq!(
        f.check_with("document:child2", "all_inherited", "user:alice", &on),
        No
    );
    assert_eq!(
        f.check_with("document:child", "all_inherited", "user:alice", &off),
        No
    );
    assert_eq!(
        f.check_with("document:child", "all_inherited", "user:alice", &on),
        Has
    );
    assert_eq!(
        f.check_with("document:child", "all_inherited", "user:alice", &none),
        cond(&["flag"])
    );
    // A sole parent behind an unknown caveat, lacking the permission: no in every case.
    assert_eq!(
        f.check_with("document:child", "all_inherited", "user:bob", &none),
        No
    );
}

#[test]
fn relationship_with_unknown_caveat_is_an_error() {
    let f = Fixture::new(CAVEATS, &["document:d#owner@user:alice[mystery]"]);
    assert_eq!(
        f.try_check("document:d", "owner", "user:alice", &Context::new()),
        Err(EngineError::UnknownCaveat("mystery".into()))
    );
}

#[test]
fn expand_relation_is_a_leaf_of_direct_subjects() {
    let f = docs(&[
        "document:d#viewer@user:alice",
        "document:d#viewer@group:eng#member",
        "document:d#viewer@user:*",
        "group:eng#member@user:bob",
    ]);
    let tree = f
        .evaluator()
        .expand(&object("document:d"), "viewer")
        .unwrap();
    assert_eq!(
        tree.expanded,
        Some((object("document:d"), "viewer".to_string()))
    );
    let ExpandNode::Leaf(subjects) = &tree.node else {
        panic!("expected a leaf, got {tree:?}");
    };
    let names: Vec<String> = subjects.iter().map(|s| s.subject.to_string()).collect();
    // Usersets are listed, not followed: bob does not appear.
    assert_eq!(names.len(), 3);
    assert!(names.contains(&"group:eng#member".to_string()));
    assert!(names.contains(&"user:*".to_string()));
    assert!(names.contains(&"user:alice".to_string()));
}

#[test]
fn expand_permission_mirrors_the_rewrite() {
    let f = docs(&[
        "document:d#owner@user:alice",
        "document:d#folder@folder:f",
        "folder:f#viewer@user:bob",
        "document:d#banned@user:carol",
    ]);
    let tree = f.evaluator().expand(&object("document:d"), "view").unwrap();
    assert_eq!(
        tree.expanded,
        Some((object("document:d"), "view".to_string()))
    );
    let ExpandNode::Exclusion(parts) = &tree.node else {
        panic!("expected exclusion, got {tree:?}");
    };
    assert_eq!(parts.len(), 2);
    let ExpandNode::Union(base) = &parts[0].node else {
        panic!("expected union base");
    };
    assert_eq!(base.len(), 3);
    // edit = owner + editor, expanded in place and named.
    assert_eq!(
        base[0].expanded,
        Some((object("document:d"), "edit".to_string()))
    );
    // folder->view: one child per folder, each the expansion of folder:f#view.
    let ExpandNode::Union(arrow) = &base[2].node else {
        panic!("expected arrow union");
    };
    assert_eq!(arrow.len(), 1);
    assert_eq!(
        arrow[0].expanded,
        Some((object("folder:f"), "view".to_string()))
    );
    assert_eq!(
        parts[1].expanded,
        Some((object("document:d"), "banned".to_string()))
    );
    for (who, expected) in [
        ("user:alice", Has),
        ("user:bob", Has),
        ("user:carol", No),
        ("user:x", No),
    ] {
        let s = subject_ref(who);
        let implied = reference::expand_implies(&tree, &s, &mut |o, r| {
            f.evaluator().check(o, r, &s, &Context::new()).unwrap()
        });
        assert_eq!(implied, expected, "{who}");
    }
}

#[test]
fn expand_terminates_on_arrow_cycles() {
    let f = docs(&[
        "folder:x#parent@folder:y",
        "folder:y#parent@folder:x",
        "folder:y#viewer@user:yolanda",
    ]);
    let tree = f.evaluator().expand(&object("folder:x"), "view").unwrap();
    let s = subject_ref("user:yolanda");
    let implied = reference::expand_implies(&tree, &s, &mut |o, r| {
        f.evaluator().check(o, r, &s, &Context::new()).unwrap()
    });
    assert_eq!(implied, Has);
}

#[test]
fn evaluator_with_prebuilt_index_matches() {
    let f = docs(&["document:d#owner@user:alice"]);
    let index = tessera::engine::SchemaIndex::new(&f.schema);
    assert!(index.is_stratified());
    let ev = Evaluator::with_index(&f.schema, &index, &*f.snapshot, &f.config);
    assert_eq!(
        ev.check(
            &object("document:d"),
            "view",
            &subject_ref("user:alice"),
            &Context::new()
        )
        .unwrap(),
        Has
    );
}

/// The cache shared across requests is keyed by revision, but expiry moves with time: an
/// answer resting on a relationship, however deep, must stop being served once it expires,
/// even to a request at the very same revision.
#[test]
fn shared_cache_never_serves_an_answer_past_an_expiration() {
    use std::sync::atomic::Ordering;
    use tessera::engine::{CheckCache, SchemaIndex};
    use tessera::model::{ObjectRef, SubjectRef, parse_relationship};
    use tessera::store::{RelationshipUpdate, Store, WriteOp, WriteTransaction};

    let (store, offset) = crate::reference::store_at_2030();
    let updates = [
        "group:inner#member@user:alice[expiration:2030-01-01T00:01:00Z]",
        "group:outer#member@group:inner#member",
        "folder:root#viewer@group:outer#member",
        "document:doc#folder@folder:root",
    ]
    .iter()
    .map(|t| RelationshipUpdate {
        op: WriteOp::Touch,
        relationship: parse_relationship(t).expect("relationship"),
    })
    .collect();
    let revision = store
        .write(WriteTransaction {
            updates,
            ..WriteTransaction::default()
        })
        .expect("write");

    let schema = tessera::schema::compile("docs.zed", DOCS)
        .expect("schema")
        .schema;
    let index = SchemaIndex::new(&schema);
    let config = EngineConfig::default();
    let cache = CheckCache::new(1024);
    let doc = ObjectRef::new("document", "doc");
    let alice = SubjectRef::new("user", "alice", None);
    let check = || {
        let snapshot = store.snapshot(revision).expect("snapshot");
        Evaluator::with_index(&schema, &index, &*snapshot, &config)
            .with_cache(&cache)
            .check(&doc, "view", &alice, &Context::new())
            .expect("check")
    };

    // The cache stores an answer the second time it is computed (its doorkeeper).
    assert_eq!(check(), Has);
    assert_eq!(check(), Has);
    assert_eq!(check(), Has, "a warm cache gives the same answer");
    assert!(
        cache.stats().hits > 0,
        "the third check was served by the cache"
    );
    offset.store(59, Ordering::SeqCst);
    assert_eq!(check(), Has, "one second before the expiration");
    offset.store(60, Ordering::SeqCst);
    assert_eq!(
        check(),
        No,
        "the membership expired; the cached answer must not be served"
    );
    // Nor does an answer computed after the expiration leak back to an earlier snapshot time.
    offset.store(120, Ordering::SeqCst);
    assert_eq!(check(), No);
}
