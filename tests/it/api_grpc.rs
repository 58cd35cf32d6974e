//! The gRPC API over a real socket: every RPC of `authzed.api.v1` through the generated tonic
//! clients, against a MemoryStore-backed server (and one RocksDB-backed run).

// Test helpers outside `#[test]` functions fail loudly by design.
#![allow(clippy::unwrap_used)]

use crate::api_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use api_support::*;
use tessera::api::proto::authzed::api::v1 as pb;
use tessera::service::ServiceConfig;
use tessera::store::memory::{MemoryOptions, MemoryStore};
use tonic::Code;

const SCHEMA: &str = r#"
/** someone who logs in */
definition user {}

definition group {
    relation member: user | group#member
}

caveat on_weekday(day int) {
    day < 6
}

definition folder {
    relation viewer: user
}

definition document {
    relation owner: user
    relation viewer: user | user:* | group#member | user with on_weekday
    relation banned: user
    permission edit = owner
    permission view = (viewer + edit) - banned
}
"#;

async fn server_with_schema() -> TestServer {
    let s = TestServer::memory().await;
    s.write_schema(SCHEMA).await;
    s
}

fn check_request(
    resource: &str,
    permission: &str,
    subj: &str,
    consistency: Option<pb::Consistency>,
) -> pb::CheckPermissionRequest {
    let (t, id) = resource.split_once(':').unwrap();
    pb::CheckPermissionRequest {
        consistency,
        resource: Some(obj(t, id)),
        permission: permission.into(),
        subject: Some(subject(subj)),
        ..Default::default()
    }
}

const HAS: i32 = pb::check_permission_response::Permissionship::HasPermission as i32;
const NO: i32 = pb::check_permission_response::Permissionship::NoPermission as i32;
const CONDITIONAL: i32 =
    pb::check_permission_response::Permissionship::ConditionalPermission as i32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_tri_state_and_reads_at_the_requested_revision() {
    let s = server_with_schema().await;
    let before = s.touch(&["document:readme#owner@user:bob"]).await;
    let written = s
        .touch(&[
            "document:readme#viewer@user:alice",
            "document:readme#viewer@user:carol[on_weekday]",
            "document:readme#banned@user:bob",
        ])
        .await;
    let mut perms = s.perms();
    let check =
        |subj: &str, consistency| check_request("document:readme", "view", subj, consistency);

    let r = perms
        .check_permission(check("user:alice", at_least(&written)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.permissionship, HAS);
    assert!(revision(r.checked_at.as_ref().unwrap()) >= revision(&written));

    let r = perms
        .check_permission(check("user:dave", fully_consistent()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.permissionship, NO);

    // Carol's grant needs the caveat's `day`: without it the answer is conditional.
    let r = perms
        .check_permission(check("user:carol", at_least(&written)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.permissionship, CONDITIONAL);
    assert_eq!(
        r.partial_caveat_info.unwrap().missing_required_context,
        ["day"]
    );
    let mut with_day = check("user:carol", at_least(&written));
    with_day.context = context(r#"{"day": 3}"#);
    assert_eq!(
        perms
            .check_permission(with_day.clone())
            .await
            .unwrap()
            .into_inner()
            .permissionship,
        HAS
    );
    with_day.context = context(r#"{"day": 7}"#);
    assert_eq!(
        perms
            .check_permission(with_day)
            .await
            .unwrap()
            .into_inner()
            .permissionship,
        NO
    );

    // Bob owns the document but is banned; at the earlier snapshot he was not banned yet.
    let r = perms
        .check_permission(check("user:bob", at_least(&written)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.permissionship, NO);
    let r = perms
        .check_permission(check("user:bob", at_exact(&before)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.permissionship, HAS);
    assert_eq!(r.checked_at.unwrap(), before);

    // Tracing returns the answer and the schema it was computed against.
    let mut traced = check("user:alice", fully_consistent());
    traced.with_tracing = true;
    let debug = perms
        .check_permission(traced)
        .await
        .unwrap()
        .into_inner()
        .debug_trace
        .unwrap();
    assert!(debug.schema_used.contains("definition document"));
    assert_eq!(
        debug.check.unwrap().result,
        pb::check_debug_trace::Permissionship::HasPermission as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors_get_precise_codes_and_messages() {
    let s = server_with_schema().await;
    let written = s.touch(&["document:readme#viewer@user:alice"]).await;
    let mut perms = s.perms();

    let r = perms
        .check_permission(check_request("document:a b", "view", "user:alice", None))
        .await;
    assert_status(r, Code::InvalidArgument, &["resource.object_id"]);
    let r = perms
        .check_permission(check_request("document:readme", "View", "user:alice", None))
        .await;
    assert_status(r, Code::InvalidArgument, &["permission"]);
    let r = perms
        .check_permission(check_request("document:readme", "view", "user:*", None))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["subject.object.object_id", "wildcard"],
    );
    let r = perms
        .check_permission(check_request("spreadsheet:x", "view", "user:alice", None))
        .await;
    assert_status(r, Code::FailedPrecondition, &["spreadsheet"]);
    let r = perms
        .check_permission(check_request(
            "document:readme",
            "delete",
            "user:alice",
            None,
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, &["delete", "document"]);

    let garbage = pb::ZedToken {
        token: "not-a-zookie".into(),
    };
    let r = perms
        .check_permission(check_request(
            "document:readme",
            "view",
            "user:alice",
            at_least(&garbage),
        ))
        .await;
    assert_status(r, Code::InvalidArgument, &["consistency.at_least_as_fresh"]);
    let future = pb::ZedToken {
        token: tessera::consistency::Zookie::encode(tessera::model::Revision(
            revision(&written).0 + 1000,
        )),
    };
    let r = perms
        .check_permission(check_request(
            "document:readme",
            "view",
            "user:alice",
            at_least(&future),
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, &["newer"]);
    let r = perms
        .check_permission(check_request(
            "document:readme",
            "view",
            "user:alice",
            at_exact(&future),
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, &[]);

    // Writes: invalid ids, unknown types, disallowed subjects, the reserved namespace.
    let r = s
        .write(vec![update(Op::Touch, "document:ok#viewer@user:alice"), {
            let mut u = update(Op::Touch, "document:x#viewer@user:alice");
            u.relationship
                .as_mut()
                .unwrap()
                .resource
                .as_mut()
                .unwrap()
                .object_id = "bad id".into();
            u
        }])
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["updates[1].relationship.resource.object_id"],
    );
    let r = s
        .write(vec![update(Op::Touch, "spreadsheet:x#viewer@user:alice")])
        .await;
    assert_status(r, Code::FailedPrecondition, &["spreadsheet"]);
    let r = s
        .write(vec![update(Op::Touch, "document:x#owner@group:eng#member")])
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["group#member", "document#owner"],
    );
    let r = s
        .write(vec![update(Op::Touch, "tessera/caller:x#admin@user:alice")])
        .await;
    assert_status(r, Code::InvalidArgument, &["tessera/"]);
    let r = s
        .write(vec![pb::RelationshipUpdate {
            operation: 0,
            relationship: Some(rel("document:x#viewer@user:alice")),
        }])
        .await;
    assert_status(r, Code::InvalidArgument, &["updates[0].operation"]);
    // Nothing of the failed writes is visible.
    let r = perms
        .check_permission(check_request(
            "document:ok",
            "view",
            "user:alice",
            fully_consistent(),
        ))
        .await;
    assert_eq!(r.unwrap().into_inner().permissionship, NO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_honour_create_semantics_and_preconditions() {
    let s = server_with_schema().await;
    s.write(vec![update(Op::Create, "document:a#viewer@user:alice")])
        .await
        .unwrap();
    let r = s
        .write(vec![update(Op::Create, "document:a#viewer@user:alice")])
        .await;
    assert_status(r, Code::AlreadyExists, &["document:a#viewer@user:alice"]);
    let r = s
        .write(vec![
            update(Op::Touch, "document:a#viewer@user:bob"),
            update(Op::Delete, "document:a#viewer@user:bob"),
        ])
        .await;
    assert_status(r, Code::InvalidArgument, &["more than once"]);

    let filter = |t: &str, id: &str, rel: &str, subj: &str| pb::RelationshipFilter {
        resource_type: t.into(),
        optional_resource_id: id.into(),
        optional_relation: rel.into(),
        optional_subject_filter: Some(pb::SubjectFilter {
            subject_type: "user".into(),
            optional_subject_id: subj.into(),
            optional_relation: None,
        }),
        ..Default::default()
    };
    let precondition =
        |op: pb::precondition::Operation, f: pb::RelationshipFilter| pb::Precondition {
            operation: op as i32,
            filter: Some(f),
        };
    use pb::precondition::Operation::{MustMatch, MustNotMatch};

    let mut perms = s.perms();
    // MUST_MATCH fails: nobody owns document:a yet.
    let r = perms
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![update(Op::Touch, "document:a#viewer@user:carol")],
            optional_preconditions: vec![precondition(
                MustMatch,
                filter("document", "a", "owner", ""),
            )],
            ..Default::default()
        })
        .await;
    assert_status(r, Code::FailedPrecondition, &["precondition"]);
    // MUST_NOT_MATCH fails: alice is a viewer.
    let r = perms
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![update(Op::Touch, "document:a#viewer@user:carol")],
            optional_preconditions: vec![precondition(
                MustNotMatch,
                filter("document", "a", "viewer", "alice"),
            )],
            ..Default::default()
        })
        .await;
    assert_status(r, Code::FailedPrecondition, &[]);
    // Both hold: the write applies.
    let z = perms
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![update(Op::Touch, "document:a#viewer@user:carol")],
            optional_preconditions: vec![
                precondition(MustMatch, filter("document", "a", "viewer", "alice")),
                precondition(MustNotMatch, filter("document", "a", "owner", "")),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .written_at
        .unwrap();
    let r = perms
        .check_permission(check_request(
            "document:a",
            "view",
            "user:carol",
            at_least(&z),
        ))
        .await;
    assert_eq!(r.unwrap().into_inner().permissionship, HAS);
    let r = perms
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![update(Op::Touch, "document:a#viewer@user:dan")],
            optional_preconditions: vec![precondition(
                pb::precondition::Operation::Unspecified,
                filter("document", "", "", ""),
            )],
            ..Default::default()
        })
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["optional_preconditions[0].operation"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_by_filter_with_limits() {
    use pb::delete_relationships_response::DeletionProgress;
    let s = server_with_schema().await;
    let rels: Vec<String> = (0..10)
        .map(|i| format!("document:d{i}#viewer@user:alice"))
        .collect();
    s.touch(&rels.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    s.touch(&["document:keep#viewer@user:bob"]).await;
    let mut perms = s.perms();
    let alice_docs = pb::RelationshipFilter {
        resource_type: "document".into(),
        optional_subject_filter: Some(pb::SubjectFilter {
            subject_type: "user".into(),
            optional_subject_id: "alice".into(),
            optional_relation: None,
        }),
        ..Default::default()
    };
    let delete = |limit: u32, partial: bool| pb::DeleteRelationshipsRequest {
        relationship_filter: Some(alice_docs.clone()),
        optional_limit: limit,
        optional_allow_partial_deletions: partial,
        ..Default::default()
    };
    let r = perms.delete_relationships(delete(4, false)).await;
    assert_status(r, Code::FailedPrecondition, &["limit"]);
    let r = perms
        .delete_relationships(delete(4, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.deletion_progress, DeletionProgress::Partial as i32);
    assert_eq!(r.relationships_deleted_count, 4);
    let r = perms
        .delete_relationships(delete(0, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.deletion_progress, DeletionProgress::Complete as i32);
    assert_eq!(r.relationships_deleted_count, 6);
    let left = collect(
        perms
            .read_relationships(pb::ReadRelationshipsRequest {
                consistency: at_least(r.deleted_at.as_ref().unwrap()),
                relationship_filter: Some(pb::RelationshipFilter {
                    resource_type: "document".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        rel_text(left[0].relationship.as_ref().unwrap()),
        "document:keep#viewer@user:bob"
    );

    // Deletes are authorized per resource type, so the filter must name one.
    let r = perms
        .delete_relationships(pb::DeleteRelationshipsRequest {
            relationship_filter: Some(pb::RelationshipFilter {
                optional_relation: "viewer".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["relationship_filter.resource_type"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_check_answers_every_item_at_one_revision() {
    let s = server_with_schema().await;
    let z = s
        .touch(&[
            "document:readme#viewer@user:alice",
            "document:readme#viewer@user:carol[on_weekday]",
        ])
        .await;
    let item = |resource: &str, permission: &str, subj: &str| {
        let (t, id) = resource.split_once(':').unwrap();
        pb::CheckBulkPermissionsRequestItem {
            resource: Some(obj(t, id)),
            permission: permission.into(),
            subject: Some(subject(subj)),
            context: None,
        }
    };
    let mut bad = item("document:readme", "view", "user:alice");
    bad.resource.as_mut().unwrap().object_id = "no spaces".into();
    let items = vec![
        item("document:readme", "view", "user:alice"),
        bad,
        item("spreadsheet:x", "view", "user:alice"),
        item("document:readme", "view", "user:carol"),
        item("document:readme", "view", "user:zoe"),
    ];
    let r = s
        .perms()
        .check_bulk_permissions(pb::CheckBulkPermissionsRequest {
            consistency: at_least(&z),
            items: items.clone(),
            with_tracing: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(revision(r.checked_at.as_ref().unwrap()) >= revision(&z));
    assert_eq!(r.pairs.len(), 5);
    use pb::check_bulk_permissions_pair::Response;
    let outcome = |i: usize| r.pairs[i].response.clone().unwrap();
    for (i, p) in r.pairs.iter().enumerate() {
        assert_eq!(
            p.request.as_ref(),
            Some(&items[i]),
            "pairs echo their request"
        );
    }
    assert!(matches!(outcome(0), Response::Item(ref it) if it.permissionship == HAS));
    match outcome(1) {
        Response::Error(e) => {
            assert_eq!(e.code, Code::InvalidArgument as i32);
            assert!(
                e.message.starts_with("items[1].resource.object_id"),
                "{}",
                e.message
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
    match outcome(2) {
        Response::Error(e) => {
            assert_eq!(e.code, Code::FailedPrecondition as i32);
            assert!(e.message.contains("spreadsheet"), "{}", e.message);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    match outcome(3) {
        Response::Item(it) => {
            assert_eq!(it.permissionship, CONDITIONAL);
            assert_eq!(
                it.partial_caveat_info.unwrap().missing_required_context,
                ["day"]
            );
        }
        other => panic!("expected an answer, got {other:?}"),
    }
    assert!(matches!(outcome(4), Response::Item(ref it) if it.permissionship == NO));

    let too_many = vec![item("document:readme", "view", "user:alice"); 1001];
    let r = s
        .perms()
        .check_bulk_permissions(pb::CheckBulkPermissionsRequest {
            consistency: None,
            items: too_many,
            with_tracing: false,
        })
        .await;
    assert_status(r, Code::InvalidArgument, &["items", "1000"]);
}

/// Leaves of an expansion tree: expanded relation → subjects.
fn leaves(t: &pb::PermissionRelationshipTree, out: &mut BTreeMap<String, Vec<String>>) {
    match t.tree_type.as_ref().unwrap() {
        pb::permission_relationship_tree::TreeType::Leaf(l) => {
            let subjects = l
                .subjects
                .iter()
                .map(|s| {
                    let o = s.object.as_ref().unwrap();
                    let mut text = format!("{}:{}", o.object_type, o.object_id);
                    if !s.optional_relation.is_empty() {
                        text.push('#');
                        text.push_str(&s.optional_relation);
                    }
                    text
                })
                .collect();
            out.insert(t.expanded_relation.clone(), subjects);
        }
        pb::permission_relationship_tree::TreeType::Intermediate(i) => {
            for c in &i.children {
                leaves(c, out);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expand_returns_the_userset_tree() {
    let s = server_with_schema().await;
    let z = s
        .touch(&[
            "document:readme#viewer@user:alice",
            "document:readme#viewer@group:eng#member",
            "document:readme#owner@user:bob",
            "document:readme#banned@user:mallory",
        ])
        .await;
    let r = s
        .perms()
        .expand_permission_tree(pb::ExpandPermissionTreeRequest {
            consistency: at_least(&z),
            resource: Some(obj("document", "readme")),
            permission: "view".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revision(r.expanded_at.as_ref().unwrap()), revision(&z));
    let root = r.tree_root.unwrap();
    assert_eq!(root.expanded_object, Some(obj("document", "readme")));
    assert_eq!(root.expanded_relation, "view");
    // view = (viewer + edit) - banned: an exclusion whose first operand is a union.
    let pb::permission_relationship_tree::TreeType::Intermediate(top) =
        root.tree_type.as_ref().unwrap()
    else {
        panic!("expected an intermediate root");
    };
    assert_eq!(
        top.operation,
        pb::algebraic_subject_set::Operation::Exclusion as i32
    );
    assert_eq!(top.children.len(), 2);
    let pb::permission_relationship_tree::TreeType::Intermediate(union) =
        top.children[0].tree_type.as_ref().unwrap()
    else {
        panic!("expected a union");
    };
    assert_eq!(
        union.operation,
        pb::algebraic_subject_set::Operation::Union as i32
    );
    let mut found = BTreeMap::new();
    leaves(&root, &mut found);
    assert_eq!(found["viewer"], ["group:eng#member", "user:alice"]);
    assert_eq!(found["owner"], ["user:bob"]);
    assert_eq!(found["banned"], ["user:mallory"]);

    let r = s
        .perms()
        .expand_permission_tree(pb::ExpandPermissionTreeRequest {
            consistency: None,
            resource: Some(obj("document", "readme")),
            permission: "nope".into(),
        })
        .await;
    assert_status(r, Code::FailedPrecondition, &["nope"]);
}

async fn lookup_resources(
    s: &TestServer,
    consistency: Option<pb::Consistency>,
    limit: u32,
    cursor: Option<pb::Cursor>,
) -> Vec<pb::LookupResourcesResponse> {
    collect(
        s.perms()
            .lookup_resources(pb::LookupResourcesRequest {
                consistency,
                resource_object_type: "document".into(),
                permission: "view".into(),
                subject: Some(subject("user:alice")),
                optional_limit: limit,
                optional_cursor: cursor,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap()
}

fn ids(rs: &[pb::LookupResourcesResponse]) -> Vec<String> {
    rs.iter().map(|r| r.resource_object_id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_resources_pages_read_one_snapshot() {
    let s = server_with_schema().await;
    let mut rels: Vec<String> = (0..25)
        .map(|i| {
            if i % 2 == 0 {
                format!("document:doc{i:02}#viewer@user:alice")
            } else {
                format!("document:doc{i:02}#viewer@group:eng#member")
            }
        })
        .collect();
    rels.push("group:eng#member@user:alice".into());
    rels.push("document:doc99#viewer@user:carol[on_weekday]".into());
    rels.push("document:doc98#viewer@user:alice[on_weekday]".into());
    let z = s
        .touch(&rels.iter().map(String::as_str).collect::<Vec<_>>())
        .await;

    let all = lookup_resources(&s, at_least(&z), 0, None).await;
    let mut expected: Vec<String> = (0..25).map(|i| format!("doc{i:02}")).collect();
    expected.push("doc98".into());
    assert_eq!(ids(&all), expected);
    let conditional = all
        .iter()
        .find(|r| r.resource_object_id == "doc98")
        .unwrap();
    assert_eq!(
        conditional.permissionship,
        pb::LookupPermissionship::ConditionalPermission as i32
    );
    assert_eq!(
        conditional
            .partial_caveat_info
            .as_ref()
            .unwrap()
            .missing_required_context,
        ["day"]
    );

    let page1 = lookup_resources(&s, at_least(&z), 10, None).await;
    assert_eq!(ids(&page1), expected[..10]);
    let snapshot = page1[0].looked_up_at.clone().unwrap();
    // A write between pages must not show up in later pages: they read the first page's snapshot.
    let later = s.touch(&["document:doc10x#viewer@user:alice"]).await;
    let page2 = lookup_resources(
        &s,
        at_least(&later),
        10,
        page1[9].after_result_cursor.clone(),
    )
    .await;
    assert_eq!(ids(&page2), expected[10..20]);
    assert!(
        page2
            .iter()
            .all(|r| r.looked_up_at.as_ref() == Some(&snapshot))
    );
    let page3 = lookup_resources(&s, None, 10, page2[9].after_result_cursor.clone()).await;
    assert_eq!(ids(&page3), expected[20..]);
    let fresh = lookup_resources(&s, at_least(&later), 0, None).await;
    assert!(ids(&fresh).contains(&"doc10x".to_string()));

    // A cursor replayed with other parameters is refused.
    let r = s
        .perms()
        .lookup_resources(pb::LookupResourcesRequest {
            resource_object_type: "document".into(),
            permission: "edit".into(),
            subject: Some(subject("user:alice")),
            optional_cursor: page1[9].after_result_cursor.clone(),
            ..Default::default()
        })
        .await;
    assert_status(r, Code::FailedPrecondition, &["optional_cursor"]);
    let r = s
        .perms()
        .lookup_resources(pb::LookupResourcesRequest {
            resource_object_type: "document".into(),
            permission: "view".into(),
            subject: Some(subject("user:alice")),
            optional_cursor: Some(pb::Cursor {
                token: "garbage".into(),
            }),
            ..Default::default()
        })
        .await;
    assert_status(r, Code::InvalidArgument, &["optional_cursor"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_subjects_reports_wildcards_exclusions_and_pages() {
    let s = server_with_schema().await;
    let z = s
        .touch(&[
            "document:public#viewer@user:*",
            "document:public#banned@user:mallory",
            "document:public#viewer@user:alice",
            "document:team#viewer@user:u1",
            "document:team#viewer@user:u2",
            "document:team#viewer@user:u3",
            "document:team#viewer@user:u4",
            "document:team#viewer@user:u5[on_weekday]",
        ])
        .await;
    let lookup = |resource: &str,
                  limit: u32,
                  cursor: Option<pb::Cursor>,
                  wildcards: pb::lookup_subjects_request::WildcardOption| {
        let mut perms = s.perms();
        let req = pb::LookupSubjectsRequest {
            consistency: at_least(&z),
            resource: Some(obj("document", resource)),
            permission: "view".into(),
            subject_object_type: "user".into(),
            optional_concrete_limit: limit,
            optional_cursor: cursor,
            wildcard_option: wildcards as i32,
            ..Default::default()
        };
        async move {
            collect(perms.lookup_subjects(req).await.unwrap().into_inner())
                .await
                .unwrap()
        }
    };
    use pb::lookup_subjects_request::WildcardOption;

    let public = lookup("public", 0, None, WildcardOption::IncludeWildcards).await;
    let subjects: Vec<&str> = public
        .iter()
        .map(|r| r.subject.as_ref().unwrap().subject_object_id.as_str())
        .collect();
    // The wildcard comes first. (Concrete subjects the wildcard already covers may be folded
    // into it by the engine, so only the wildcard is asserted here.)
    assert_eq!(subjects[0], "*");
    let wildcard = &public[0];
    assert_eq!(wildcard.excluded_subjects.len(), 1);
    assert_eq!(wildcard.excluded_subjects[0].subject_object_id, "mallory");
    #[allow(deprecated)]
    {
        assert_eq!(wildcard.subject_object_id, "*");
        assert_eq!(wildcard.excluded_subject_ids, ["mallory"]);
        assert_eq!(
            wildcard.permissionship,
            pb::LookupPermissionship::HasPermission as i32
        );
    }
    let concrete_only = lookup("public", 0, None, WildcardOption::ExcludeWildcards).await;
    assert!(
        concrete_only
            .iter()
            .all(|r| r.subject.as_ref().unwrap().subject_object_id != "*")
    );

    let all = lookup("team", 0, None, WildcardOption::Unspecified).await;
    assert_eq!(all.len(), 5);
    let u5 = all[4].subject.as_ref().unwrap();
    assert_eq!(
        u5.permissionship,
        pb::LookupPermissionship::ConditionalPermission as i32
    );
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = lookup("team", 2, cursor.clone(), WildcardOption::Unspecified).await;
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        cursor = last.after_result_cursor.clone();
        pages.extend(
            page.iter()
                .map(|r| r.subject.as_ref().unwrap().subject_object_id.clone()),
        );
    }
    assert_eq!(pages, ["u1", "u2", "u3", "u4", "u5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_relationships_filters_and_pages() {
    let s = server_with_schema().await;
    let mut rels: Vec<String> = (0..12)
        .map(|i| format!("document:doc{i:02}#viewer@user:alice"))
        .collect();
    rels.push("document:doc03#viewer@group:eng#member".into());
    rels.push("document:other#viewer@user:bob[on_weekday:{\"day\":2}]".into());
    rels.push("folder:f#viewer@user:alice".into());
    let z = s
        .touch(&rels.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    let read = |filter: pb::RelationshipFilter, limit: u32, cursor: Option<pb::Cursor>| {
        let mut perms = s.perms();
        let req = pb::ReadRelationshipsRequest {
            consistency: at_least(&z),
            relationship_filter: Some(filter),
            optional_limit: limit,
            optional_cursor: cursor,
        };
        async move { collect(perms.read_relationships(req).await?.into_inner()).await }
    };
    let docs = pb::RelationshipFilter {
        resource_type: "document".into(),
        ..Default::default()
    };
    let all = read(docs.clone(), 0, None).await.unwrap();
    assert_eq!(all.len(), 14);
    let caveated = all
        .iter()
        .map(|r| rel_text(r.relationship.as_ref().unwrap()))
        .find(|t| t.starts_with("document:other"))
        .unwrap();
    assert_eq!(
        caveated,
        "document:other#viewer@user:bob[on_weekday:{\"day\":2}]"
    );

    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = read(docs.clone(), 5, cursor.clone()).await.unwrap();
        assert!(page.len() <= 5);
        let Some(last) = page.last() else { break };
        cursor = last.after_result_cursor.clone();
        paged.extend(page);
        if paged.len() > 20 {
            panic!("paging does not terminate");
        }
    }
    let texts = |v: &[pb::ReadRelationshipsResponse]| -> Vec<String> {
        v.iter()
            .map(|r| rel_text(r.relationship.as_ref().unwrap()))
            .collect()
    };
    assert_eq!(texts(&paged), texts(&all));

    let prefixed = read(
        pb::RelationshipFilter {
            resource_type: "document".into(),
            optional_resource_id_prefix: "doc0".into(),
            optional_subject_filter: Some(pb::SubjectFilter {
                subject_type: "user".into(),
                optional_subject_id: String::new(),
                // An empty relation selects plain subjects only.
                optional_relation: Some(pb::subject_filter::RelationFilter {
                    relation: String::new(),
                }),
            }),
            ..Default::default()
        },
        0,
        None,
    )
    .await
    .unwrap();
    assert_eq!(prefixed.len(), 10);

    let groups_only = read(
        pb::RelationshipFilter {
            resource_type: "document".into(),
            optional_subject_filter: Some(pb::SubjectFilter {
                subject_type: "group".into(),
                optional_subject_id: String::new(),
                optional_relation: Some(pb::subject_filter::RelationFilter {
                    relation: "member".into(),
                }),
            }),
            ..Default::default()
        },
        0,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        texts(&groups_only),
        ["document:doc03#viewer@group:eng#member"]
    );

    assert_status(
        read(docs.clone(), 5000, None).await,
        Code::InvalidArgument,
        &["optional_limit"],
    );
    assert_status(
        read(
            pb::RelationshipFilter {
                resource_type: "spreadsheet".into(),
                ..Default::default()
            },
            0,
            None,
        )
        .await,
        Code::FailedPrecondition,
        &["spreadsheet"],
    );
    assert_status(
        read(
            pb::RelationshipFilter {
                resource_type: "tessera/caller".into(),
                ..Default::default()
            },
            0,
            None,
        )
        .await,
        Code::InvalidArgument,
        &["tessera/"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_then_export_round_trips() {
    let s = server_with_schema().await;
    let texts: Vec<String> = (0..2500)
        .map(|i| match i % 3 {
            0 => format!("document:d{i:05}#viewer@user:u{}", i % 97),
            1 => format!("document:d{i:05}#viewer@group:g{}#member", i % 13),
            _ => format!(
                "document:d{i:05}#viewer@user:c{i}[on_weekday:{{\"day\":{}}}]",
                i % 7
            ),
        })
        .collect();
    let chunks: Vec<pb::ImportBulkRelationshipsRequest> = texts
        .chunks(700)
        .map(|c| pb::ImportBulkRelationshipsRequest {
            relationships: c.iter().map(|t| rel(t)).collect(),
        })
        .collect();
    let loaded = s
        .perms()
        .import_bulk_relationships(tokio_stream::iter(chunks.clone()))
        .await
        .unwrap()
        .into_inner()
        .num_loaded;
    assert_eq!(loaded, 2500);

    // Importing again fails: imports create.
    let r = s
        .perms()
        .import_bulk_relationships(tokio_stream::iter(chunks[..1].to_vec()))
        .await;
    assert_status(r, Code::AlreadyExists, &[]);
    let mut invalid = chunks[0].clone();
    invalid.relationships[3].relation = "Bad".into();
    let r = s
        .perms()
        .import_bulk_relationships(tokio_stream::iter(vec![invalid]))
        .await;
    assert_status(r, Code::InvalidArgument, &["relationships[3].relation"]);

    // Export in chunks, interrupt after the first, resume from its cursor.
    let export = |cursor: Option<pb::Cursor>| {
        let mut perms = s.perms();
        async move {
            perms
                .export_bulk_relationships(pb::ExportBulkRelationshipsRequest {
                    consistency: fully_consistent(),
                    optional_limit: 1000,
                    optional_cursor: cursor,
                    optional_relationship_filter: None,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut stream = export(None).await;
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.relationships.len(), 1000);
    drop(stream);
    // Written after the export began: a resumed export still reads the original snapshot.
    s.touch(&["document:zzz#viewer@user:late"]).await;
    let rest = collect(export(first.after_result_cursor.clone()).await)
        .await
        .unwrap();
    assert_eq!(
        rest.iter()
            .map(|c| c.relationships.len())
            .collect::<Vec<_>>(),
        [1000, 500]
    );
    let mut exported: Vec<String> = first.relationships.iter().map(rel_text).collect();
    exported.extend(
        rest.iter()
            .flat_map(|c| c.relationships.iter().map(rel_text)),
    );
    let mut expected = texts.clone();
    expected.sort();
    let mut sorted = exported.clone();
    sorted.sort();
    assert_eq!(sorted, expected);
    // Fully consistent export without a cursor sees the late write.
    let fresh: usize = collect(export(None).await)
        .await
        .unwrap()
        .iter()
        .map(|c| c.relationships.len())
        .sum();
    assert_eq!(fresh, 2501);
}

async fn next_change(stream: &mut tonic::Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("no watch event within 10 s")
        .unwrap()
        .expect("the watch stream ended")
}

fn change_texts(r: &pb::WatchResponse) -> Vec<(i32, String)> {
    r.updates
        .iter()
        .map(|u| (u.operation, rel_text(u.relationship.as_ref().unwrap())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_commits_and_resumes_from_a_token() {
    let s = server_with_schema().await;
    let mut all = s
        .watch()
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut folders = s
        .watch()
        .watch(pb::WatchRequest {
            optional_object_types: vec!["folder".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    let z1 = s.touch(&["document:a#viewer@user:alice"]).await;
    let e1 = next_change(&mut all).await;
    assert_eq!(e1.changes_through.as_ref(), Some(&z1));
    assert_eq!(
        change_texts(&e1),
        [(Op::Touch as i32, "document:a#viewer@user:alice".to_string())]
    );
    let caller = &e1.optional_transaction_metadata.as_ref().unwrap().fields
        [tessera::api::CALLER_METADATA_KEY];
    assert_eq!(
        caller.kind,
        Some(prost_types::value::Kind::StringValue("anonymous".into()))
    );

    let z2 = s
        .write(vec![update(Op::Delete, "document:a#viewer@user:alice")])
        .await
        .unwrap();
    let e2 = next_change(&mut all).await;
    assert_eq!(e2.changes_through.as_ref(), Some(&z2));
    assert_eq!(
        change_texts(&e2),
        [(
            Op::Delete as i32,
            "document:a#viewer@user:alice".to_string()
        )]
    );
    drop(all);

    let z3 = s.touch(&["folder:f#viewer@user:bob"]).await;
    let f = next_change(&mut folders).await;
    assert_eq!(f.changes_through.as_ref(), Some(&z3));
    assert_eq!(
        change_texts(&f),
        [(Op::Touch as i32, "folder:f#viewer@user:bob".to_string())]
    );

    // Resume from the first event's token: the second and third commits follow, in order.
    let mut resumed = s
        .watch()
        .watch(pb::WatchRequest {
            optional_start_cursor: Some(z1.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_change(&mut resumed).await.changes_through, Some(z2));
    assert_eq!(next_change(&mut resumed).await.changes_through, Some(z3));

    // Schema changes are reported only to watchers asking for them.
    let mut schema_watch = s
        .watch()
        .watch(pb::WatchRequest {
            optional_update_kinds: vec![pb::WatchKind::IncludeSchemaUpdates as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let zs = s
        .write_schema(&format!("{SCHEMA}\ndefinition extra {{}}"))
        .await;
    let e = next_change(&mut schema_watch).await;
    assert!(e.schema_updated);
    assert_eq!(e.changes_through, Some(zs));

    let r = s
        .watch()
        .watch(pb::WatchRequest {
            optional_start_cursor: Some(pb::ZedToken { token: "??".into() }),
            ..Default::default()
        })
        .await;
    assert_status(r, Code::InvalidArgument, &["optional_start_cursor"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_before_the_gc_window_fails_clearly() {
    let store = Arc::new(MemoryStore::with_options(MemoryOptions {
        gc_window: Duration::ZERO,
        ..MemoryOptions::default()
    }));
    let s = TestServer::with_store(store.clone(), ServiceConfig::default()).await;
    s.write_schema(SCHEMA).await;
    let old = s.touch(&["document:a#viewer@user:alice"]).await;
    s.touch(&["document:b#viewer@user:alice"]).await;
    store.collect_garbage(chrono::Utc::now() + chrono::Duration::seconds(1));
    let r = s
        .watch()
        .watch(pb::WatchRequest {
            optional_start_cursor: Some(old.clone()),
            ..Default::default()
        })
        .await;
    assert_status(
        r,
        Code::FailedPrecondition,
        &["optional_start_cursor", "GC window"],
    );
    let r = s
        .perms()
        .check_permission(check_request(
            "document:a",
            "view",
            "user:alice",
            at_exact(&old),
        ))
        .await;
    assert_status(r, Code::FailedPrecondition, &["older"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_read_write_reflect_and_orphan_protection() {
    let s = TestServer::memory().await;
    let mut schema = s.schema();
    let r = schema.read_schema(pb::ReadSchemaRequest {}).await;
    assert_status(r, Code::NotFound, &["WriteSchema"]);

    let r = schema
        .write_schema(pb::WriteSchemaRequest {
            schema: "definition user {".into(),
        })
        .await;
    assert_status(r, Code::InvalidArgument, &[]);
    let r = schema
        .write_schema(pb::WriteSchemaRequest {
            schema: "definition tessera/caller {}".into(),
        })
        .await;
    assert_status(r, Code::InvalidArgument, &["tessera/"]);

    let written = s.write_schema(SCHEMA).await;
    let read = schema
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.schema_text, SCHEMA);
    assert!(revision(read.read_at.as_ref().unwrap()) >= revision(&written));

    s.touch(&["document:a#banned@user:mallory"]).await;
    // Removing `banned` would orphan the stored relationship: refused, naming both.
    let without_banned = SCHEMA
        .replace("    relation banned: user\n", "")
        .replace("(viewer + edit) - banned", "viewer + edit");
    let r = schema
        .write_schema(pb::WriteSchemaRequest {
            schema: without_banned.clone(),
        })
        .await;
    assert_status(r, Code::FailedPrecondition, &["document#banned", "mallory"]);
    s.write(vec![update(Op::Delete, "document:a#banned@user:mallory")])
        .await
        .unwrap();
    schema
        .write_schema(pb::WriteSchemaRequest {
            schema: without_banned,
        })
        .await
        .unwrap();

    let reflected = schema
        .reflect_schema(pb::ReflectSchemaRequest {
            consistency: fully_consistent(),
            optional_filters: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = reflected
        .definitions
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["user", "group", "folder", "document"]);
    // With its delimiters, as the reference documents the field.
    assert_eq!(
        reflected.definitions[0].comment,
        "/** someone who logs in */"
    );
    assert_eq!(reflected.caveats[0].name, "on_weekday");

    let r = schema
        .computable_permissions(pb::ComputablePermissionsRequest::default())
        .await;
    assert_status(r, Code::InvalidArgument, &["definition_name"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let s = TestServer::memory().await;
    let mut health = HealthClient::new(s.channel.clone());
    for service in [
        "",
        "authzed.api.v1.PermissionsService",
        "authzed.api.v1.WatchService",
    ] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service}");
    }

    {
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new(s.channel.clone());
        let requests = tokio_stream::iter(vec![
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            },
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol(
                    "authzed.api.v1.CheckPermissionRequest".into(),
                )),
            },
        ]);
        let responses = collect(
            client
                .server_reflection_info(requests)
                .await
                .unwrap()
                .into_inner(),
        )
        .await
        .unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = &responses[0].message_response
        else {
            panic!("expected a service list");
        };
        let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
        for expected in [
            "authzed.api.v1.PermissionsService",
            "authzed.api.v1.SchemaService",
            "authzed.api.v1.WatchService",
            "grpc.health.v1.Health",
        ] {
            assert!(names.contains(&expected), "{names:?} lacks {expected}");
        }
        let Some(MessageResponse::FileDescriptorResponse(files)) = &responses[1].message_response
        else {
            panic!("expected file descriptors");
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut client = ServerReflectionClient::new(s.channel.clone());
        let requests = tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }]);
        let responses = collect(
            client
                .server_reflection_info(requests)
                .await
                .unwrap()
                .into_inner(),
        )
        .await
        .unwrap();
        assert!(matches!(
            &responses[0].message_response,
            Some(MessageResponse::ListServicesResponse(l)) if l.service.iter().any(|s| s.name == "authzed.api.v1.PermissionsService")
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_watches_and_stops_serving() {
    let s = server_with_schema().await;
    let mut watch = s
        .watch()
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let z = s.touch(&["document:a#viewer@user:alice"]).await;
    assert_eq!(next_change(&mut watch).await.changes_through, Some(z));
    let TestServer {
        handle, channel, ..
    } = s;
    tokio::time::timeout(Duration::from_secs(10), handle.shutdown())
        .await
        .expect("graceful shutdown must not hang on open watches")
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .unwrap();
    match end {
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{}", status.message()),
        Ok(None) => {}
        Ok(Some(m)) => panic!("unexpected watch event after shutdown: {m:?}"),
    }
    let r = PermissionsServiceClient::new(channel)
        .check_permission(check_request("document:a", "view", "user:alice", None))
        .await;
    assert!(r.is_err(), "a stopped server must not answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_backed_server_serves_and_persists() {
    use tessera::store::rocks::{RocksOptions, RocksStore};
    let dir = tempfile::tempdir().unwrap();
    let options = || RocksOptions {
        gc_interval: None,
        block_cache_bytes: 8 << 20,
        write_buffer_bytes: 4 << 20,
        ..RocksOptions::default()
    };
    let token = {
        let store = Arc::new(RocksStore::open(dir.path(), options()).unwrap());
        let s = TestServer::with_store(store, ServiceConfig::default()).await;
        s.write_schema(SCHEMA).await;
        let z = s
            .touch(&[
                "document:a#viewer@group:eng#member",
                "group:eng#member@user:alice",
            ])
            .await;
        let r = s
            .perms()
            .check_permission(check_request(
                "document:a",
                "view",
                "user:alice",
                at_least(&z),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.permissionship, HAS);
        s.handle.shutdown().await.unwrap();
        z
    };
    // The tessera and store of the first server are dropped; reopen the directory.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let store = Arc::new(RocksStore::open(dir.path(), options()).unwrap());
    let s = TestServer::with_store(store, ServiceConfig::default()).await;
    let r = s
        .perms()
        .check_permission(check_request(
            "document:a",
            "view",
            "user:alice",
            at_least(&token),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.permissionship, HAS);
    let exported: usize = collect(
        s.perms()
            .export_bulk_relationships(pb::ExportBulkRelationshipsRequest::default())
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap()
    .iter()
    .map(|c| c.relationships.len())
    .sum();
    assert_eq!(exported, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_authenticated_and_authorized_on_every_call() {
    use jsonwebtoken::{EncodingKey, Header, encode, get_current_timestamp};
    use tessera::auth::{Auth, AuthConfig, Capability, JwtKeySource, Secret, grant, revoke};
    const PSK: &str = "preshared-key-for-the-api-tests";
    const HMAC: &str = "an-hmac-secret-of-at-least-thirty-two-bytes";
    let auth = Auth::from_config(AuthConfig {
        preshared_keys: vec![Secret::new(PSK)],
        jwt_keys: vec![JwtKeySource::hmac_secret(Secret::new(HMAC))],
        ..AuthConfig::default()
    })
    .unwrap();
    let s =
        TestServer::with_auth(Arc::new(MemoryStore::new()), ServiceConfig::default(), auth).await;
    let jwt = |sub: &str| {
        let claims = serde_json::json!({ "sub": sub, "exp": get_current_timestamp() + 600 });
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(HMAC.as_bytes()),
        )
        .unwrap()
    };
    let svc = jwt("svc-a");
    let mut schema = s.schema();
    let mut perms = s.perms();

    // No or wrong credentials: UNAUTHENTICATED, whatever the RPC.
    let r = schema.read_schema(pb::ReadSchemaRequest {}).await;
    assert_status(r, Code::Unauthenticated, &[]);
    let r = perms
        .check_permission(authed(
            check_request("document:a", "view", "user:alice", None),
            "wrong",
        ))
        .await;
    assert_status(r, Code::Unauthenticated, &[]);

    // The preshared key is an administrator.
    schema
        .write_schema(authed(
            pb::WriteSchemaRequest {
                schema: SCHEMA.into(),
            },
            PSK,
        ))
        .await
        .unwrap();

    // A JWT caller with no grants may do nothing, and its refused write leaves no trace.
    let write = |text: &str| pb::WriteRelationshipsRequest {
        updates: vec![update(Op::Touch, text)],
        ..Default::default()
    };
    let r = perms
        .write_relationships(authed(write("document:a#viewer@user:alice"), &svc))
        .await;
    assert_status(r, Code::PermissionDenied, &[]);
    let r = perms
        .check_permission(authed(
            check_request("document:a", "view", "user:alice", None),
            &svc,
        ))
        .await;
    assert_status(r, Code::PermissionDenied, &[]);
    let r = schema
        .write_schema(authed(
            pb::WriteSchemaRequest {
                schema: SCHEMA.into(),
            },
            &svc,
        ))
        .await;
    assert_status(r, Code::PermissionDenied, &[]);

    // Granted read and writes of documents only.
    grant(&s.tessera, "svc-a", &Capability::Read, Some("test")).unwrap();
    let documents = Capability::WriteRelationships {
        resource_type: "document".into(),
    };
    grant(&s.tessera, "svc-a", &documents, Some("test")).unwrap();
    let mut watch = s
        .watch()
        .watch(authed(pb::WatchRequest::default(), &svc))
        .await
        .unwrap()
        .into_inner();
    let z = perms
        .write_relationships(authed(write("document:a#viewer@user:alice"), &svc))
        .await
        .unwrap()
        .into_inner()
        .written_at
        .unwrap();
    let r = perms
        .write_relationships(authed(write("folder:f#viewer@user:alice"), &svc))
        .await;
    assert_status(r, Code::PermissionDenied, &[]);
    let event = next_change(&mut watch).await;
    assert_eq!(event.changes_through.as_ref(), Some(&z));
    let who =
        &event.optional_transaction_metadata.unwrap().fields[tessera::api::CALLER_METADATA_KEY];
    assert_eq!(
        who.kind,
        Some(prost_types::value::Kind::StringValue("svc-a".into()))
    );
    // Grants live in the reserved namespace and never show in reads or exports.
    let exported: Vec<String> = collect(
        perms
            .export_bulk_relationships(authed(pb::ExportBulkRelationshipsRequest::default(), &svc))
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap()
    .iter()
    .flat_map(|c| c.relationships.iter().map(rel_text))
    .collect();
    assert_eq!(exported, ["document:a#viewer@user:alice"]);
    let r = perms
        .check_permission(authed(
            check_request("document:a", "view", "user:alice", at_least(&z)),
            &svc,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.permissionship, HAS);

    // Revocation takes effect on the very next call.
    revoke(&s.tessera, "svc-a", &Capability::Read, Some("test")).unwrap();
    let r = perms
        .check_permission(authed(
            check_request("document:a", "view", "user:alice", None),
            &svc,
        ))
        .await;
    assert_status(r, Code::PermissionDenied, &[]);
}
