//! LookupResources and LookupSubjects over hand-written schemas.

use crate::reference;

use reference::{Fixture, cond, ctx, lookup_subjects_outcome, object, subject_ref};
use serde_json::json;
use tessera::engine::{CheckOutcome, LookupResource, LookupSubject};
use tessera::model::Context;

use CheckOutcome::{Has, No};

const SCHEMA: &str = r#"
caveat flag_on(flag bool) {
    flag
}

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
    relation viewer: user | user:* | group#member | user with flag_on
    relation banned: user | group#member | user with flag_on
    relation reviewer: folder
    permission view = (owner + viewer + folder->view) - banned
    permission owned_and_viewed = owner & viewer
    permission approved = reviewer.all(view)
}
"#;

fn ids(results: &[LookupResource]) -> Vec<&str> {
    results.iter().map(|r| r.resource_id.as_str()).collect()
}

fn lookup_resources(
    f: &Fixture,
    ty: &str,
    perm: &str,
    subject: &str,
    c: &Context,
) -> Vec<LookupResource> {
    f.evaluator()
        .lookup_resources(ty, perm, &subject_ref(subject), c)
        .expect("lookup_resources succeeds")
}

fn lookup_subjects(
    f: &Fixture,
    resource: &str,
    perm: &str,
    ty: &str,
    rel: Option<&str>,
    c: &Context,
) -> Vec<LookupSubject> {
    f.evaluator()
        .lookup_subjects(&object(resource), perm, ty, rel, c)
        .expect("lookup_subjects succeeds")
}

#[test]
fn lookup_resources_follows_groups_and_folders_sorted() {
    let f = Fixture::new(
        SCHEMA,
        &[
            "group:eng#member@user:alice",
            "folder:root#viewer@group:eng#member",
            "folder:sub#parent@folder:root",
            "document:z#folder@folder:sub",
            "document:a#folder@folder:root",
            "document:m#owner@user:alice",
            "document:q#viewer@user:bob",
            "document:a#viewer@user:alice",
        ],
    );
    let none = Context::new();
    let r = lookup_resources(&f, "document", "view", "user:alice", &none);
    assert_eq!(ids(&r), ["a", "m", "z"]);
    assert!(r.iter().all(|x| x.outcome == Has));
    assert_eq!(
        ids(&lookup_resources(&f, "folder", "view", "user:alice", &none)),
        ["root", "sub"]
    );
    assert_eq!(
        ids(&lookup_resources(&f, "document", "view", "user:bob", &none)),
        ["q"]
    );
    assert!(lookup_resources(&f, "document", "view", "user:nobody", &none).is_empty());
    // A userset subject: everything its members reach through it.
    assert_eq!(
        ids(&lookup_resources(
            &f,
            "folder",
            "view",
            "group:eng#member",
            &none
        )),
        ["root", "sub"]
    );
}

#[test]
fn lookup_resources_confirms_exclusions_intersections_and_all_arrows() {
    let f = Fixture::new(
        SCHEMA,
        &[
            "document:a#viewer@user:alice",
            "document:b#viewer@user:alice",
            "document:b#banned@user:alice",
            "document:c#owner@user:alice",
            "document:c#viewer@user:alice",
            "document:d#owner@user:alice",
            "folder:f1#viewer@user:alice",
            "folder:f2#viewer@user:bob",
            "document:r1#reviewer@folder:f1",
            "document:r2#reviewer@folder:f1",
            "document:r2#reviewer@folder:f2",
        ],
    );
    let none = Context::new();
    assert_eq!(
        ids(&lookup_resources(
            &f,
            "document",
            "view",
            "user:alice",
            &none
        )),
        ["a", "c", "d"]
    );
    assert_eq!(
        ids(&lookup_resources(
            &f,
            "document",
            "owned_and_viewed",
            "user:alice",
            &none
        )),
        ["c"]
    );
    assert_eq!(
        ids(&lookup_resources(
            &f,
            "document",
            "approved",
            "user:alice",
            &none
        )),
        ["r1"]
    );
}

#[test]
fn lookup_resources_with_wildcards_and_caveats() {
    let f = Fixture::new(
        SCHEMA,
        &[
            "document:public#viewer@user:*",
            "document:flagged#viewer@user:alice[flag_on]",
            "document:public#banned@user:mallory",
            "document:maybe_banned#viewer@user:*",
            "document:maybe_banned#banned@user:alice[flag_on]",
        ],
    );
    let none = Context::new();
    let r = lookup_resources(&f, "document", "view", "user:alice", &none);
    assert_eq!(
        r,
        vec![
            LookupResource {
                resource_id: "flagged".into(),
                outcome: cond(&["flag"])
            },
            LookupResource {
                resource_id: "maybe_banned".into(),
                outcome: cond(&["flag"])
            },
            LookupResource {
                resource_id: "public".into(),
                outcome: Has
            },
        ]
    );
    let on = ctx(json!({"flag": true}));
    assert_eq!(
        ids(&lookup_resources(&f, "document", "view", "user:alice", &on)),
        ["flagged", "public"]
    );
    assert_eq!(
        ids(&lookup_resources(
            &f,
            "document",
            "view",
            "user:mallory",
            &none
        )),
        ["maybe_banned"]
    );
}

#[test]
fn lookup_resources_terminates_on_cycles() {
    let f = Fixture::new(
        SCHEMA,
        &[
            "group:a#member@group:b#member",
            "group:b#member@group:a#member",
            "group:a#member@user:alice",
            "folder:x#parent@folder:y",
            "folder:y#parent@folder:x",
            "folder:y#viewer@group:b#member",
        ],
    );
    let none = Context::new();
    assert_eq!(
        ids(&lookup_resources(&f, "folder", "view", "user:alice", &none)),
        ["x", "y"]
    );
    assert_eq!(
        ids(&lookup_resources(
            &f,
            "group",
            "member",
            "user:alice",
            &none
        )),
        ["a", "b"]
    );
}

#[test]
fn lookup_subjects_reports_wildcard_with_exclusions() {
    let f = Fixture::new(
        SCHEMA,
        &[
            "document:d#viewer@user:*",
            "document:d#viewer@user:alice",
            "document:d#banned@user:bob",
            "document:d#banned@user:carol[flag_on]",
        ],
    );
    let none = Context::new();
    let r = lookup_subjects(&f, "document:d", "view", "user", None, &none);
    // Like the reference, alice is listed although the wildcard covers her too.
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0].subject_id, "*");
    assert_eq!((r[1].subject_id.as_str(), &r[1].outcome), ("alice", &Has));
    assert_eq!(r[0].outcome, Has);
    let excluded: Vec<(&str, CheckOutcome)> = r[0]
        .excluded
        .iter()
        .map(|e| (e.subject_id.as_str(), e.outcome.clone()))
        .collect();
    assert_eq!(excluded, [("bob", Has), ("carol", cond(&["flag"]))]);
    assert_eq!(lookup_subjects_outcome(&r, "alice"), Has);
    assert_eq!(lookup_subjects_outcome(&r, "bob"), No);
    assert_eq!(lookup_subjects_outcome(&r, "carol"), cond(&["flag"]));
    assert_eq!(lookup_subjects_outcome(&r, "anyone"), Has);

    // Relation alone: the wildcard and alice, each as stored.
    let viewers = lookup_subjects(&f, "document:d", "viewer", "user", None, &none);
    let listed: Vec<&str> = viewers.iter().map(|v| v.subject_id.as_str()).collect();
    assert_eq!(listed, ["*", "alice"]);
    assert!(viewers[0].excluded.is_empty());
    // Banned subjects are exclusions only, never listed as granted.
    assert!(!listed.contains(&"bob"));
}

#[test]
fn lookup_subjects_concrete_sorted_through_groups_and_folders() {
    let f = Fixture::new(
        SCHEMA,
        &[
            "group:eng#member@user:carol",
            "group:eng#member@group:sub#member",
            "group:sub#member@user:bob",
            "folder:root#viewer@group:eng#member",
            "folder:leaf#parent@folder:root",
            "document:d#folder@folder:leaf",
            "document:d#owner@user:alice",
            "document:d#banned@user:bob",
            "document:d#viewer@user:dan[flag_on]",
        ],
    );
    let none = Context::new();
    let r = lookup_subjects(&f, "document:d", "view", "user", None, &none);
    let got: Vec<(&str, CheckOutcome)> = r
        .iter()
        .map(|s| (s.subject_id.as_str(), s.outcome.clone()))
        .collect();
    assert_eq!(
        got,
        [("alice", Has), ("carol", Has), ("dan", cond(&["flag"]))]
    );
    // Usersets as subjects: group#member sets with the permission.
    let groups = lookup_subjects(&f, "folder:leaf", "view", "group", Some("member"), &none);
    let got: Vec<&str> = groups.iter().map(|s| s.subject_id.as_str()).collect();
    assert_eq!(got, ["eng", "sub"]);
    // Plain group objects have nothing.
    assert!(lookup_subjects(&f, "folder:leaf", "view", "group", None, &none).is_empty());
}

#[test]
fn lookups_and_check_agree_on_a_small_world() {
    let f = Fixture::new(
        SCHEMA,
        &[
            "group:g1#member@user:u1",
            "group:g1#member@group:g2#member",
            "group:g2#member@user:u2",
            "group:g2#member@group:g1#member",
            "folder:f1#viewer@group:g1#member",
            "folder:f2#parent@folder:f1",
            "folder:f2#viewer@user:u3",
            "document:d1#folder@folder:f2",
            "document:d1#banned@user:u2",
            "document:d2#viewer@user:*",
            "document:d2#banned@group:g2#member",
            "document:d3#owner@user:u3",
            "document:d3#viewer@user:u3[flag_on]",
            "document:d4#reviewer@folder:f1",
            "document:d4#reviewer@folder:f2",
        ],
    );
    let users = ["u1", "u2", "u3", "u4"];
    let docs = ["d1", "d2", "d3", "d4", "d5"];
    for c in [
        Context::new(),
        ctx(json!({"flag": true})),
        ctx(json!({"flag": false})),
    ] {
        for perm in ["view", "owned_and_viewed", "approved", "viewer", "banned"] {
            for u in users {
                let subject = format!("user:{u}");
                let lr = lookup_resources(&f, "document", perm, &subject, &c);
                for d in docs {
                    let resource = format!("document:{d}");
                    let expected = f.check_with(&resource, perm, &subject, &c);
                    let reference =
                        f.reference()
                            .check(&object(&resource), perm, &subject_ref(&subject), &c);
                    assert_eq!(expected, reference, "{resource}#{perm}@{subject} {c:?}");
                    let found = lr
                        .iter()
                        .find(|r| r.resource_id == d)
                        .map(|r| r.outcome.clone());
                    assert_eq!(
                        found.unwrap_or(No),
                        expected,
                        "lookup_resources {resource}#{perm}@{subject}"
                    );
                    let ls = lookup_subjects(&f, &resource, perm, "user", None, &c);
                    assert_eq!(
                        lookup_subjects_outcome(&ls, u),
                        expected,
                        "lookup_subjects {resource}#{perm}@{subject}"
                    );
                }
            }
        }
    }
}

#[test]
fn lookup_resources_respects_bans_inherited_through_arrows() {
    let f = Fixture::new(
        r#"
        definition user {}
        definition folder {
            relation parent: folder
            relation viewer: user
            relation banned: user
            permission blocked = banned + parent->blocked
            permission view = (viewer + parent->view) - blocked
        }
        definition document {
            relation folder: folder
            relation viewer: user
            permission view = (viewer + folder->view) - folder->blocked
        }
        "#,
        &[
            "folder:root#viewer@user:alice",
            "folder:root#viewer@user:bob",
            "folder:mid#parent@folder:root",
            "folder:mid#banned@user:bob",
            "folder:leaf#parent@folder:mid",
            "document:top#folder@folder:root",
            "document:deep#folder@folder:leaf",
            "document:own#viewer@user:bob",
            "document:own#folder@folder:leaf",
        ],
    );
    let none = Context::new();
    assert_eq!(
        ids(&lookup_resources(
            &f,
            "document",
            "view",
            "user:alice",
            &none
        )),
        ["deep", "own", "top"]
    );
    // Bob is banned from mid and below: even his direct grant on `own` is blocked.
    assert_eq!(
        ids(&lookup_resources(&f, "document", "view", "user:bob", &none)),
        ["top"]
    );
    assert_eq!(
        ids(&lookup_resources(&f, "folder", "view", "user:bob", &none)),
        ["root"]
    );
    for d in ["top", "deep", "own"] {
        for u in ["alice", "bob"] {
            let resource = format!("document:{d}");
            let subject = format!("user:{u}");
            let expected = f.check(&resource, "view", &subject);
            let listed = lookup_resources(&f, "document", "view", &subject, &none)
                .iter()
                .any(|r| r.resource_id == d);
            assert_eq!(listed, expected == Has, "{resource}@{subject}");
        }
    }
}
