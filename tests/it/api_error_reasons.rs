//! Every error reason Tessera emits, provoked over gRPC and read back the way clients read it:
//! a `google.rpc.Status` in the `grpc-status-details-bin` trailer whose details hold a
//! `google.rpc.ErrorInfo` (domain `authzed.com`, reason the `ERROR_REASON_*` value name).

use std::collections::BTreeSet;
use std::sync::Arc;

use prost::Message;
use tessera::api::proto::google::rpc;
use tessera::service::{ErrorReason, ServiceConfig};
use tessera::store::memory::MemoryStore;
use tonic::Code;

use crate::api_support::*;
use tessera::api::proto::authzed::api::v1 as pb;

const SCHEMA: &str = r#"
caveat ratio(n int) { 10 / n > 1 }
caveat weekday(day int) { day < 6 }
definition user {}
definition group {
    relation member: user | group#everyone
    permission everyone = member
}
definition document {
    relation viewer: user | user with ratio | user with weekday | group#everyone
    relation owner: user
    permission view = viewer + owner
}
"#;

/// The reason and metadata of a failed call.
#[track_caller]
fn reason_of<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
) -> (String, std::collections::HashMap<String, String>) {
    let status = result.expect_err("expected the call to fail");
    assert_eq!(status.code(), code, "{}", status.message());
    let details = rpc::Status::decode(status.details()).expect("status details decode");
    assert_eq!(details.code, code as i32);
    assert_eq!(details.message, status.message());
    assert_eq!(details.details.len(), 1, "{:?}", details.details);
    assert_eq!(
        details.details[0].type_url,
        "type.googleapis.com/google.rpc.ErrorInfo"
    );
    let info = rpc::ErrorInfo::decode(&details.details[0].value[..]).expect("ErrorInfo decodes");
    assert_eq!(info.domain, "authzed.com");
    (info.reason, info.metadata)
}

fn check(resource: &str, permission: &str, subject_text: &str) -> pb::CheckPermissionRequest {
    let (t, id) = resource.split_once(':').unwrap();
    pb::CheckPermissionRequest {
        consistency: fully_consistent(),
        resource: Some(obj(t, id)),
        permission: permission.into(),
        subject: Some(subject(subject_text)),
        ..Default::default()
    }
}

fn filter(resource_type: &str) -> pb::RelationshipFilter {
    pb::RelationshipFilter {
        resource_type: resource_type.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reason_reaches_grpc_clients_as_error_info() {
    let mut config = ServiceConfig {
        max_updates_per_write: 3,
        max_preconditions_per_write: 1,
        max_bulk_check_items: 2,
        ..ServiceConfig::default()
    };
    config.engine.max_depth = 3;
    let s = TestServer::with_store(Arc::new(MemoryStore::new()), config).await;
    let mut seen = BTreeSet::new();
    let mut expect = |result: (String, std::collections::HashMap<String, String>),
                      reason: ErrorReason,
                      metadata: &[(&str, &str)]| {
        assert_eq!(result.0, reason.name());
        for (k, v) in metadata {
            assert_eq!(result.1.get(*k).map(String::as_str), Some(*v), "{k}");
        }
        seen.insert(reason);
    };

    // Schema errors: syntax, then types.
    let r = s
        .schema()
        .write_schema(pb::WriteSchemaRequest {
            schema: "definition {".into(),
        })
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::SchemaParseError,
        &[],
    );
    let r = s
        .schema()
        .write_schema(pb::WriteSchemaRequest {
            schema: "definition document { relation viewer: nosuchtype }".into(),
        })
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::SchemaTypeError,
        &[],
    );
    s.write_schema(SCHEMA).await;
    // Three at a time: this server allows three updates per write.
    for chunk in [
        "document:a#viewer@user:alice",
        "document:b#viewer@user:alice",
        // Nesting through a permission (not a relation allowing its own userset, which the
        // nested-group index would answer without recursion) still walks, level by level.
        "group:g1#member@group:g2#everyone",
        "group:g2#member@group:g3#everyone",
        "group:g3#member@group:g4#everyone",
        "group:g4#member@user:deep",
        "document:deep#viewer@group:g1#everyone",
        "document:c#viewer@user:carol[ratio]",
        "document:d#viewer@user:dave[weekday]",
    ]
    .chunks(3)
    {
        s.touch(chunk).await;
    }

    // Unknown names.
    let r = s
        .perms()
        .check_permission(check("nope:a", "view", "user:alice"))
        .await;
    expect(
        reason_of(r, Code::FailedPrecondition),
        ErrorReason::UnknownDefinition,
        &[("definition_name", "nope")],
    );
    let r = s
        .perms()
        .check_permission(check("document:a", "nope", "user:alice"))
        .await;
    expect(
        reason_of(r, Code::FailedPrecondition),
        ErrorReason::UnknownRelationOrPermission,
        &[
            ("definition_name", "document"),
            ("relation_or_permission_name", "nope"),
        ],
    );
    let r = s
        .write(vec![update(Op::Touch, "document:a#viewer@user:x[nope]")])
        .await;
    expect(
        reason_of(r, Code::FailedPrecondition),
        ErrorReason::UnknownCaveat,
        &[("caveat_name", "nope")],
    );

    // Writes the schema refuses.
    let r = s
        .write(vec![update(Op::Touch, "document:a#owner@group:g1#member")])
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::InvalidSubjectType,
        &[],
    );
    let r = s
        .write(vec![update(Op::Touch, "document:a#view@user:x")])
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::CannotUpdatePermission,
        &[("permission_name", "view")],
    );
    let r = s
        .write(vec![
            update(Op::Touch, "document:a#owner@user:x"),
            update(Op::Touch, "document:a#owner@user:x"),
        ])
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::UpdatesOnSameRelationship,
        &[],
    );
    let r = s
        .write(vec![update(Op::Create, "document:a#viewer@user:alice")])
        .await;
    expect(
        reason_of(r, Code::AlreadyExists),
        ErrorReason::AttemptToRecreateRelationship,
        &[("relationship", "document:a#viewer@user:alice")],
    );

    // Limits.
    let r = s
        .write(
            ["x1", "x2", "x3", "x4"]
                .iter()
                .map(|u| update(Op::Touch, &format!("document:a#owner@user:{u}")))
                .collect(),
        )
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::TooManyUpdatesInRequest,
        &[("update_count", "4"), ("update_limit", "3")],
    );
    let must_match = |f: pb::RelationshipFilter| pb::Precondition {
        operation: pb::precondition::Operation::MustMatch as i32,
        filter: Some(f),
    };
    let r = s
        .perms()
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![update(Op::Touch, "document:a#owner@user:x")],
            optional_preconditions: vec![
                must_match(filter("document")),
                must_match(filter("group")),
            ],
            ..Default::default()
        })
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::TooManyPreconditionsInRequest,
        &[("precondition_count", "2"), ("precondition_limit", "1")],
    );
    let r = s
        .perms()
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![update(Op::Touch, "document:a#owner@user:x")],
            optional_preconditions: vec![must_match(pb::RelationshipFilter {
                resource_type: "document".into(),
                optional_resource_id: "never".into(),
                ..Default::default()
            })],
            ..Default::default()
        })
        .await;
    expect(
        reason_of(r, Code::FailedPrecondition),
        ErrorReason::WriteOrDeletePreconditionFailure,
        &[("precondition_index", "0")],
    );
    let r = s
        .perms()
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![update(Op::Touch, "document:a#owner@user:x")],
            optional_preconditions: vec![must_match(pb::RelationshipFilter::default())],
            ..Default::default()
        })
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::EmptyPrecondition,
        &[],
    );
    let r = s
        .perms()
        .write_relationships(pb::WriteRelationshipsRequest {
            updates: vec![update(Op::Touch, "document:a#owner@user:x")],
            optional_transaction_metadata: context(&format!(
                r#"{{"note": "{}"}}"#,
                "x".repeat(5000)
            )),
            ..Default::default()
        })
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::TransactionMetadataTooLarge,
        &[("maximum_metadata_byte_size", "4096")],
    );
    let r = s
        .write(vec![update(
            Op::Touch,
            &format!(
                r#"document:d#viewer@user:zz[weekday:{{"day":"{}"}}]"#,
                "x".repeat(5000)
            ),
        )])
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::MaxRelationshipContextSize,
        &[("maximum_context_byte_size", "4096")],
    );
    let r = s
        .perms()
        .delete_relationships(pb::DeleteRelationshipsRequest {
            relationship_filter: Some(pb::RelationshipFilter {
                resource_type: "document".into(),
                optional_relation: "viewer".into(),
                ..Default::default()
            }),
            optional_limit: 1,
            ..Default::default()
        })
        .await;
    expect(
        reason_of(r, Code::FailedPrecondition),
        ErrorReason::TooManyRelationshipsForTransactionalDelete,
        &[("limit", "1")],
    );
    let r = s
        .perms()
        .read_relationships(pb::ReadRelationshipsRequest {
            relationship_filter: Some(filter("document")),
            optional_limit: 5000,
            ..Default::default()
        })
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::ExceedsMaximumAllowableLimit,
        &[
            ("limit_provided", "5000"),
            ("maximum_limit_allowed", "1000"),
        ],
    );
    let r = s
        .perms()
        .read_relationships(pb::ReadRelationshipsRequest {
            relationship_filter: Some(pb::RelationshipFilter::default()),
            ..Default::default()
        })
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::InvalidFilter,
        &[],
    );
    let item = || pb::CheckBulkPermissionsRequestItem {
        resource: Some(obj("document", "a")),
        permission: "view".into(),
        subject: Some(subject("user:alice")),
        context: None,
    };
    let r = s
        .perms()
        .check_bulk_permissions(pb::CheckBulkPermissionsRequest {
            items: vec![item(), item(), item()],
            ..Default::default()
        })
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::TooManyChecksInRequest,
        &[("check_count", "3"), ("maximum_checks_allowed", "2")],
    );

    // Evaluation.
    let r = s
        .perms()
        .check_permission(check("document:a", "view", "user:*"))
        .await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::WildcardNotAllowed,
        &[],
    );
    let r = s
        .perms()
        .check_permission(check("document:deep", "view", "user:deep"))
        .await;
    expect(
        reason_of(r, Code::ResourceExhausted),
        ErrorReason::MaximumDepthExceeded,
        &[("maximum_depth_allowed", "3")],
    );
    let mut with_context = check("document:d", "view", "user:dave");
    with_context.context = context(r#"{"day": "monday"}"#);
    let r = s.perms().check_permission(with_context).await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::CaveatParameterTypeError,
        &[("caveat_name", "weekday"), ("parameter_name", "day")],
    );
    let mut with_context = check("document:c", "view", "user:carol");
    with_context.context = context(r#"{"n": 0}"#);
    let r = s.perms().check_permission(with_context).await;
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::CaveatEvaluationError,
        &[("caveat_name", "ratio")],
    );
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
    expect(
        reason_of(r, Code::InvalidArgument),
        ErrorReason::InvalidCursor,
        &[],
    );

    let all: BTreeSet<ErrorReason> = ErrorReason::ALL.into_iter().collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    assert!(missing.is_empty(), "reasons never provoked: {missing:?}");

    // An error without a reason carries no details at all.
    let r = s
        .perms()
        .check_permission(check("document:a b", "view", "user:alice"))
        .await;
    let status = r.expect_err("a bad id fails");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.details().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_check_items_carry_their_reason_inline() {
    let s = TestServer::memory().await;
    s.write_schema(SCHEMA).await;
    let response = s
        .perms()
        .check_bulk_permissions(pb::CheckBulkPermissionsRequest {
            consistency: fully_consistent(),
            items: vec![pb::CheckBulkPermissionsRequestItem {
                resource: Some(obj("nope", "a")),
                permission: "view".into(),
                subject: Some(subject("user:alice")),
                context: None,
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::check_bulk_permissions_pair::Response::Error(status)) =
        &response.pairs[0].response
    else {
        panic!("expected an inline error: {response:?}");
    };
    let info = rpc::ErrorInfo::decode(&status.details[0].value[..]).unwrap();
    assert_eq!(info.reason, "ERROR_REASON_UNKNOWN_DEFINITION");
    assert_eq!(info.metadata["definition_name"], "nope");
}
