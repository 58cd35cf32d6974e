//! The schema reflection RPCs (ComputablePermissions, DependentRelations, DiffSchema) and
//! transaction metadata (WriteRelationships/DeleteRelationships → Watch) over a real socket.

// Test helpers outside `#[test]` functions fail loudly by design.
#![allow(clippy::unwrap_used)]

use crate::api_support;

use std::sync::Arc;
use std::time::Duration;

use api_support::*;
use pb::reflection_schema_diff::Diff;
use prost_types::value::Kind;
use tessera::api::proto::authzed::api::v1 as pb;
use tessera::service::ServiceConfig;
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

definition organization {
    relation admin: user
    permission manage = admin
}

definition folder {
    relation org: organization
    relation parent: folder
    relation viewer: user
    permission view = viewer + parent->view + org->manage
}

definition document {
    relation folder: folder
    relation owner: user
    relation viewer: user | group#member | user with on_weekday
    relation banned: user
    permission edit = owner
    permission view = (viewer + edit + folder->view) - banned
}
"#;

async fn server() -> (TestServer, pb::ZedToken) {
    let s = TestServer::memory().await;
    let z = s.write_schema(SCHEMA).await;
    (s, z)
}

fn refs(list: &[pb::ReflectionRelationReference]) -> Vec<String> {
    list.iter()
        .map(|r| {
            let kind = if r.is_permission {
                "permission"
            } else {
                "relation"
            };
            format!("{}#{} {kind}", r.definition_name, r.relation_name)
        })
        .collect()
}

fn computable(definition: &str, relation: &str, filter: &str) -> pb::ComputablePermissionsRequest {
    pb::ComputablePermissionsRequest {
        consistency: fully_consistent(),
        definition_name: definition.into(),
        relation_name: relation.into(),
        optional_definition_name_filter: filter.into(),
    }
}

fn dependent(definition: &str, permission: &str) -> pb::DependentRelationsRequest {
    pb::DependentRelationsRequest {
        consistency: fully_consistent(),
        definition_name: definition.into(),
        permission_name: permission.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computable_permissions_walk_every_path_that_uses_a_relation() {
    let (s, z) = server().await;
    let mut schema = s.schema();
    let r = schema
        .computable_permissions(computable("organization", "admin", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        refs(&r.permissions),
        [
            "document#view permission",
            "folder#view permission",
            "organization#manage permission",
        ]
    );
    assert_eq!(r.read_at.as_ref(), Some(&z));

    // Subject sets count: group membership flows into `document#viewer` and on.
    let r = schema
        .computable_permissions(computable("group", "member", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        refs(&r.permissions),
        ["document#view permission", "document#viewer relation"]
    );

    // The filter keeps results whose definition starts with it.
    let r = schema
        .computable_permissions(computable("user", "", "fold"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        refs(&r.permissions),
        ["folder#view permission", "folder#viewer relation"]
    );

    let r = schema
        .computable_permissions(computable("document", "view", ""))
        .await
        .unwrap()
        .into_inner();
    assert!(r.permissions.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependent_relations_list_what_a_permission_is_computed_from() {
    let (s, z) = server().await;
    let mut schema = s.schema();
    let r = schema
        .dependent_relations(dependent("document", "view"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        refs(&r.relations),
        [
            "document#banned relation",
            "document#edit permission",
            "document#folder relation",
            "document#owner relation",
            "document#viewer relation",
            "folder#org relation",
            "folder#parent relation",
            "folder#view permission",
            "folder#viewer relation",
            "group#member relation",
            "organization#admin relation",
            "organization#manage permission",
        ]
    );
    assert_eq!(r.read_at.as_ref(), Some(&z));
    let r = schema
        .dependent_relations(dependent("document", "edit"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(refs(&r.relations), ["document#owner relation"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_analyses_refuse_bad_names_with_the_reference_codes() {
    let s = TestServer::memory().await;
    let mut schema = s.schema();
    // Before any schema exists.
    let r = schema
        .dependent_relations(dependent("document", "view"))
        .await;
    assert_status(r, Code::FailedPrecondition, &["WriteSchema"]);
    s.write_schema(SCHEMA).await;

    let r = schema
        .computable_permissions(computable("", "viewer", ""))
        .await;
    assert_status(r, Code::InvalidArgument, &["definition_name"]);
    let r = schema
        .computable_permissions(computable("document", "Not-A-Name", ""))
        .await;
    assert_status(r, Code::InvalidArgument, &["relation_name"]);
    let r = schema
        .computable_permissions(computable("invoice", "viewer", ""))
        .await;
    assert_status(r, Code::FailedPrecondition, &["`invoice`"]);
    let r = schema
        .computable_permissions(computable("document", "share", ""))
        .await;
    assert_status(r, Code::FailedPrecondition, &["`share`", "`document`"]);

    let r = schema.dependent_relations(dependent("document", "")).await;
    assert_status(r, Code::InvalidArgument, &["permission_name"]);
    let r = schema
        .dependent_relations(dependent("document", "viewer"))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["document#viewer", "not a permission"],
    );
    let r = schema
        .dependent_relations(dependent("document", "share"))
        .await;
    assert_status(r, Code::FailedPrecondition, &["`share`"]);
    let r = schema
        .dependent_relations(dependent("invoice", "view"))
        .await;
    assert_status(r, Code::FailedPrecondition, &["`invoice`"]);
}

fn diff_request(text: &str) -> pb::DiffSchemaRequest {
    pb::DiffSchemaRequest {
        consistency: fully_consistent(),
        comparison_schema: text.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_schema_reports_each_kind_of_change() {
    let (s, z) = server().await;
    let mut schema = s.schema();
    let same = schema
        .diff_schema(diff_request(SCHEMA))
        .await
        .unwrap()
        .into_inner();
    assert!(same.diffs.is_empty(), "{:?}", same.diffs);
    assert_eq!(same.read_at.as_ref(), Some(&z));

    let next = SCHEMA
        .replace("/** someone who logs in */\n", "/** a person */\n")
        .replace(
            "relation member: user | group#member",
            "relation member: user\n    relation manager: user",
        )
        .replace(
            "caveat on_weekday(day int) {\n    day < 6\n}",
            "caveat on_weekday(day uint, tz string) {\n    day < 5u\n}\ncaveat fresh(age int) { age < 10 }",
        )
        .replace("permission edit = owner", "permission edit = owner + viewer")
        .replace("    relation banned: user\n", "")
        .replace(
            "permission view = (viewer + edit + folder->view) - banned",
            "permission view = viewer + edit + folder->view",
        )
        .replace(
            "definition organization {\n    relation admin: user\n    permission manage = admin\n}\n",
            "",
        )
        .replace("    relation org: organization\n", "")
        .replace(" + org->manage", "")
        + "\ndefinition team {}\n";
    let r = schema
        .diff_schema(diff_request(&next))
        .await
        .unwrap()
        .into_inner();
    let kinds: Vec<String> = r
        .diffs
        .iter()
        .map(|d| match d.diff.as_ref().unwrap() {
            Diff::DefinitionAdded(d) => format!("definition added {}", d.name),
            Diff::DefinitionRemoved(d) => format!("definition removed {}", d.name),
            Diff::DefinitionDocCommentChanged(d) => {
                format!("definition doc {} {:?}", d.name, d.comment)
            }
            Diff::RelationAdded(r) => {
                format!("relation added {}#{}", r.parent_definition_name, r.name)
            }
            Diff::RelationRemoved(r) => {
                format!("relation removed {}#{}", r.parent_definition_name, r.name)
            }
            Diff::RelationSubjectTypeRemoved(c) => {
                let r = c.relation.as_ref().unwrap();
                let t = c.changed_subject_type.as_ref().unwrap();
                format!(
                    "subject type removed {}#{} {}",
                    r.parent_definition_name, r.name, t.subject_definition_name
                )
            }
            Diff::PermissionExprChanged(p) => {
                format!("permission expr {}#{}", p.parent_definition_name, p.name)
            }
            Diff::CaveatAdded(c) => format!("caveat added {}", c.name),
            Diff::CaveatExprChanged(c) => format!("caveat expr {} {}", c.name, c.expression),
            Diff::CaveatParameterAdded(p) => {
                format!(
                    "parameter added {}.{} {}",
                    p.parent_caveat_name, p.name, p.r#type
                )
            }
            Diff::CaveatParameterTypeChanged(c) => {
                let p = c.parameter.as_ref().unwrap();
                format!(
                    "parameter type {}.{} {} -> {}",
                    p.parent_caveat_name, p.name, c.previous_type, p.r#type
                )
            }
            other => format!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "definition doc user \"/** a person */\"",
            "subject type removed group#member group",
            "relation added group#manager",
            "definition removed organization",
            "relation removed folder#org",
            "permission expr folder#view",
            "relation removed document#banned",
            "permission expr document#edit",
            "permission expr document#view",
            "definition added team",
            "parameter type on_weekday.day int -> uint",
            "parameter added on_weekday.tz string",
            "caveat expr on_weekday day < 5u",
            "caveat added fresh",
        ]
    );
    // Removed and added definitions come whole, with their members.
    let removed = r
        .diffs
        .iter()
        .find_map(|d| match d.diff.as_ref().unwrap() {
            Diff::DefinitionRemoved(d) => Some(d),
            _ => None,
        })
        .unwrap();
    assert_eq!(removed.relations[0].name, "admin");
    assert_eq!(removed.permissions[0].name, "manage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_schema_validates_the_comparison_and_works_before_any_write() {
    let s = TestServer::memory().await;
    let mut schema = s.schema();
    // Nothing stored yet: everything in the comparison is new.
    let r = schema
        .diff_schema(diff_request(
            "definition user {}\ncaveat c(x int) { x > 1 }",
        ))
        .await
        .unwrap()
        .into_inner();
    let added: Vec<bool> = r
        .diffs
        .iter()
        .map(|d| {
            matches!(
                d.diff,
                Some(Diff::DefinitionAdded(_) | Diff::CaveatAdded(_))
            )
        })
        .collect();
    assert_eq!(added, [true, true]);

    s.write_schema(SCHEMA).await;
    let r = schema
        .diff_schema(diff_request(
            "definition user {}\ndefinition document { relation viewer: usr }",
        ))
        .await;
    assert_status(r, Code::InvalidArgument, &["comparison_schema", "usr"]);
    let r = schema.diff_schema(diff_request("definition {")).await;
    assert_status(r, Code::InvalidArgument, &["comparison_schema:1:"]);
    let r = schema
        .diff_schema(pb::DiffSchemaRequest {
            consistency: Some(pb::Consistency {
                requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(pb::ZedToken {
                    token: "garbage".into(),
                })),
            }),
            comparison_schema: SCHEMA.into(),
        })
        .await;
    assert_status(r, Code::InvalidArgument, &["consistency"]);
}

// ---- transaction metadata -------------------------------------------------------------------

async fn next_event(stream: &mut tonic::Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("no watch event within 10 s")
        .unwrap()
        .expect("the watch stream ended")
}

fn string_field(s: &prost_types::Struct, key: &str) -> Option<String> {
    match &s.fields.get(key)?.kind {
        Some(Kind::StringValue(v)) => Some(v.clone()),
        _ => None,
    }
}

fn write_with(rel: &str, metadata: Option<prost_types::Struct>) -> pb::WriteRelationshipsRequest {
    pb::WriteRelationshipsRequest {
        updates: vec![update(Op::Touch, rel)],
        optional_transaction_metadata: metadata,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_returns_the_metadata_of_each_transaction() {
    let (s, _) = server().await;
    let mut watch = s
        .watch()
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut perms = s.perms();
    let z1 = perms
        .write_relationships(write_with(
            "document:a#owner@user:alice",
            context(r#"{"reason": "onboarding", "ticket": 4211, "tags": ["hr", "sync"]}"#),
        ))
        .await
        .unwrap()
        .into_inner()
        .written_at
        .unwrap();
    let e1 = next_event(&mut watch).await;
    assert_eq!(e1.changes_through.as_ref(), Some(&z1));
    let m = e1.optional_transaction_metadata.clone().unwrap();
    assert_eq!(string_field(&m, "reason").as_deref(), Some("onboarding"));
    assert_eq!(m.fields["ticket"].kind, Some(Kind::NumberValue(4211.0)));
    assert!(matches!(m.fields["tags"].kind, Some(Kind::ListValue(ref l)) if l.values.len() == 2));
    // The writer identity rides along under Tessera's reserved key.
    assert_eq!(
        string_field(&m, tessera::api::CALLER_METADATA_KEY).as_deref(),
        Some("anonymous")
    );
    assert_eq!(e1.full_revision_metadata, [m]);

    // A write without metadata carries only the writer.
    s.touch(&["document:b#owner@user:bob"]).await;
    let e2 = next_event(&mut watch).await;
    let m = e2.optional_transaction_metadata.unwrap();
    assert_eq!(m.fields.len(), 1);

    // Deletes carry their own metadata.
    let deleted = perms
        .delete_relationships(pb::DeleteRelationshipsRequest {
            relationship_filter: Some(pb::RelationshipFilter {
                resource_type: "document".into(),
                optional_resource_id: "a".into(),
                ..Default::default()
            }),
            optional_transaction_metadata: context(r#"{"reason": "offboarding"}"#),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let e3 = next_event(&mut watch).await;
    assert_eq!(e3.changes_through, deleted.deleted_at);
    assert_eq!(e3.updates.len(), 1);
    let m = e3.optional_transaction_metadata.unwrap();
    assert_eq!(string_field(&m, "reason").as_deref(), Some("offboarding"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_reserved_metadata_is_refused_and_writes_nothing() {
    let (s, z) = server().await;
    let mut perms = s.perms();
    let big = format!(r#"{{"blob": "{}"}}"#, "x".repeat(5000));
    let r = perms
        .write_relationships(write_with("document:a#owner@user:alice", context(&big)))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["optional_transaction_metadata", "4096"],
    );
    let r = perms
        .delete_relationships(pb::DeleteRelationshipsRequest {
            relationship_filter: Some(pb::RelationshipFilter {
                resource_type: "document".into(),
                ..Default::default()
            }),
            optional_transaction_metadata: context(&big),
            ..Default::default()
        })
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["optional_transaction_metadata", "4096"],
    );
    let forged = format!(r#"{{"{}": "root"}}"#, tessera::api::CALLER_METADATA_KEY);
    let r = perms
        .write_relationships(write_with("document:a#owner@user:alice", context(&forged)))
        .await;
    assert_status(
        r,
        Code::InvalidArgument,
        &[tessera::api::CALLER_METADATA_KEY, "reserved"],
    );
    // None of the refused calls committed anything.
    assert_eq!(s.tessera.head_revision().unwrap(), revision(&z));

    // Just under the limit is fine.
    let fits = format!(r#"{{"blob": "{}"}}"#, "x".repeat(4000));
    perms
        .write_relationships(write_with("document:a#owner@user:alice", context(&fits)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_survives_a_restart_of_a_rocksdb_backed_server() {
    use tessera::store::rocks::{RocksOptions, RocksStore};
    let dir = tempfile::tempdir().unwrap();
    let options = || RocksOptions {
        gc_interval: None,
        block_cache_bytes: 8 << 20,
        write_buffer_bytes: 4 << 20,
        ..RocksOptions::default()
    };
    let before = {
        let store = Arc::new(RocksStore::open(dir.path(), options()).unwrap());
        let s = TestServer::with_store(store, ServiceConfig::default()).await;
        let z = s.write_schema(SCHEMA).await;
        s.perms()
            .write_relationships(write_with(
                "document:a#owner@user:alice",
                context(r#"{"reason": "migration", "batch": {"n": 3}}"#),
            ))
            .await
            .unwrap();
        // The store's lock is released once the server has stopped and the last handle to
        // the service is gone.
        let TestServer {
            handle, tessera, ..
        } = s;
        handle.shutdown().await.unwrap();
        drop(tessera);
        z
    };
    let store = Arc::new(RocksStore::open(dir.path(), options()).unwrap());
    let s = TestServer::with_store(store, ServiceConfig::default()).await;
    let mut watch = s
        .watch()
        .watch(pb::WatchRequest {
            optional_start_cursor: Some(before),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let e = next_event(&mut watch).await;
    let m = e.optional_transaction_metadata.unwrap();
    assert_eq!(string_field(&m, "reason").as_deref(), Some("migration"));
    let Some(Kind::StructValue(batch)) = &m.fields["batch"].kind else {
        panic!("batch is not a struct: {m:?}");
    };
    assert_eq!(batch.fields["n"].kind, Some(Kind::NumberValue(3.0)));
}
