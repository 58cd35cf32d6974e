//! Hostile input against the real server: `tessera serve` over a socket, its address space
//! capped (RLIMIT_AS) so a runaway allocation fails this test instead of the machine. Every RPC
//! gets oversized, deeply nested, malformed, type-confused and unicode inputs; each case must
//! end with a clear status (never UNKNOWN, never a dropped connection; INTERNAL only for bytes
//! that are not a valid protobuf message, gRPC's own convention) with a non-empty message of
//! at most 4 KiB, and afterwards the data is unchanged and a valid Check still answers.

use std::future::Future;
use std::pin::Pin;

use prost::Message as _;
use prost_types::value::Kind;
use tessera::api::proto::authzed::api::v1 as pb;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::api_support::{
    Op, PermissionsServiceClient, SchemaServiceClient, WatchServiceClient, authed, obj, update,
};
use crate::cli_support::{KEY, Server};

/// The server's address space: far above what it needs (about 0.5 GiB here) and far below
/// what the attacks of issue 9 made it allocate (3 to 24 GB).
const ADDRESS_SPACE: u64 = 2 << 30;

const SCHEMA: &str = r#"
definition user {}
caveat in_region(region string, allowed list<string>) { region in allowed }
definition group {
    relation member: user | group#member
}
definition document {
    relation owner: user
    relation viewer: user | user:* | group#member | user with in_region
    relation parent: document
    permission edit = owner
    permission view = viewer + edit + parent->view
    permission strict = parent.all(view)
}
"#;

const RELATIONSHIPS: &[&str] = &[
    "document:readme#owner@user:alice",
    "document:readme#viewer@group:eng#member",
    "group:eng#member@user:bob",
    "document:child#parent@document:readme",
];

type Outcome = Result<(), Status>;
type Case<'a> = (String, Pin<Box<dyn Future<Output = Outcome> + 'a>>);

struct Clients {
    perms: PermissionsServiceClient<Channel>,
    schema: SchemaServiceClient<Channel>,
    watch: WatchServiceClient<Channel>,
    channel: Channel,
}

fn req<T>(message: T) -> tonic::Request<T> {
    authed(message, KEY)
}

fn consistency() -> Option<pb::Consistency> {
    crate::api_support::fully_consistent()
}

fn zookie(token: impl Into<String>) -> Option<pb::Consistency> {
    Some(pb::Consistency {
        requirement: Some(pb::consistency::Requirement::AtLeastAsFresh(pb::ZedToken {
            token: token.into(),
        })),
    })
}

fn check(
    resource: pb::ObjectReference,
    permission: &str,
    subject: pb::SubjectReference,
) -> pb::CheckPermissionRequest {
    pb::CheckPermissionRequest {
        consistency: consistency(),
        resource: Some(resource),
        permission: permission.into(),
        subject: Some(subject),
        context: None,
        with_tracing: false,
    }
}

fn user(id: &str) -> pb::SubjectReference {
    pb::SubjectReference {
        object: Some(obj("user", id)),
        optional_relation: String::new(),
    }
}

/// A `google.protobuf.Struct` nested `depth` levels deep.
fn nested_struct(depth: usize) -> prost_types::Struct {
    let mut inner = prost_types::Struct::default();
    for _ in 0..depth {
        let mut outer = prost_types::Struct::default();
        outer.fields.insert(
            "x".into(),
            prost_types::Value {
                kind: Some(Kind::StructValue(inner)),
            },
        );
        inner = outer;
    }
    inner
}

/// A struct with `n` string fields of `len` bytes.
fn wide_struct(n: usize, len: usize) -> prost_types::Struct {
    let mut s = prost_types::Struct::default();
    for i in 0..n {
        s.fields.insert(
            format!("k{i}"),
            prost_types::Value {
                kind: Some(Kind::StringValue("v".repeat(len))),
            },
        );
    }
    s
}

const UNICODE: &[&str] = &[
    "é",
    "文書",
    "🦀",
    "a\u{200b}b",
    "\u{202e}txt",
    "nul\0byte",
    "line\nbreak",
    "  ",
    "%00",
    "*",
    "a:b",
    "a#b",
    "a@b",
    "../..",
];

/// Collects a server stream, returning its first error (of the call or of the stream).
async fn drain<T>(
    call: impl Future<Output = Result<tonic::Response<tonic::Streaming<T>>, Status>>,
) -> Outcome {
    let mut stream = call.await?.into_inner();
    while stream.message().await?.is_some() {}
    Ok(())
}

/// Raw bytes as a gRPC message body (to send what no protobuf encoder would).
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = bytes::Buf::remaining(src);
        let mut out = vec![0; n];
        bytes::Buf::copy_to_slice(src, &mut out);
        Ok(Some(out))
    }
}

async fn raw(channel: &Channel, path: &'static str, body: Vec<u8>) -> Outcome {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(
        req(body),
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|_| ())
}

/// Touches a caveated relationship whose caveat context is the JSON `context`.
async fn write_with_context(mut p: PermissionsServiceClient<Channel>, context: String) -> Outcome {
    let mut u = update(Op::Touch, "document:readme#viewer@user:carol[in_region]");
    if let Some(c) = u
        .relationship
        .as_mut()
        .and_then(|r| r.optional_caveat.as_mut())
    {
        c.context = Some(crate::api_support::context(&context).unwrap_or_default());
    }
    p.write_relationships(req(pb::WriteRelationshipsRequest {
        updates: vec![u],
        ..Default::default()
    }))
    .await
    .map(|_| ())
}

/// Every hostile case, named; each must fail with a clear status.
fn cases<'a>(c: &'a Clients) -> Vec<Case<'a>> {
    let mut out: Vec<Case<'a>> = Vec::new();
    let mut must_fail = |name: &str, f: Pin<Box<dyn Future<Output = Outcome> + 'a>>| {
        out.push((name.to_string(), f));
    };
    let big_id = "a".repeat(2 << 20);
    let long_name = "n".repeat(100_000);

    // ---- CheckPermission -------------------------------------------------------------
    let mut p = c.perms.clone();
    must_fail(
        "check: 2 MiB object id",
        Box::pin(async move {
            p.check_permission(req(check(
                obj("document", &"a".repeat(2 << 20)),
                "view",
                user("alice"),
            )))
            .await
            .map(|_| ())
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "check: 100 KB permission name",
        Box::pin(async move {
            p.check_permission(req(check(
                obj("document", "readme"),
                &"v".repeat(100_000),
                user("alice"),
            )))
            .await
            .map(|_| ())
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "check: message over the 4 MiB limit",
        Box::pin(async move {
            let mut r = check(obj("document", "readme"), "view", user("alice"));
            r.context = Some(wide_struct(5, 1 << 20));
            p.check_permission(req(r)).await.map(|_| ())
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "check: context nested 120 deep",
        Box::pin(async move {
            let mut r = check(obj("document", "readme"), "view", user("alice"));
            r.context = Some(nested_struct(120));
            p.check_permission(req(r)).await.map(|_| ())
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "check: garbage zookie",
        Box::pin(async move {
            let mut r = check(obj("document", "readme"), "view", user("alice"));
            r.consistency = zookie("\u{0}\u{ffff}💥not-a-token");
            p.check_permission(req(r)).await.map(|_| ())
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "check: 1 MiB zookie",
        Box::pin(async move {
            let mut r = check(obj("document", "readme"), "view", user("alice"));
            r.consistency = zookie("A".repeat(1 << 20));
            p.check_permission(req(r)).await.map(|_| ())
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "check: type-confused subject (a user with a relation it has not)",
        Box::pin(async move {
            let s = pb::SubjectReference {
                object: Some(obj("user", "alice")),
                optional_relation: "member".into(),
            };
            p.check_permission(req(check(obj("document", "readme"), "view", s)))
                .await
                .map(|_| ())
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "check: missing resource",
        Box::pin(async move {
            let mut r = check(obj("document", "readme"), "view", user("alice"));
            r.resource = None;
            p.check_permission(req(r)).await.map(|_| ())
        }),
    );
    for u in UNICODE {
        let mut p = c.perms.clone();
        let t = format!("doc{u}");
        must_fail(
            &format!("check: unicode in a type `{}`", u.escape_debug()),
            Box::pin(async move {
                p.check_permission(req(check(obj(&t, "readme"), "view", user("alice"))))
                    .await
                    .map(|_| ())
            }),
        );
        let mut p = c.perms.clone();
        let id = format!("id{u}");
        must_fail(
            &format!("check: unicode in an id `{}`", u.escape_debug()),
            Box::pin(async move {
                p.check_permission(req(check(obj("document", &id), "view", user("alice"))))
                    .await
                    .map(|_| ())
            }),
        );
    }

    // ---- CheckBulkPermissions --------------------------------------------------------
    let mut p = c.perms.clone();
    must_fail(
        "checkbulk: 1,001 items",
        Box::pin(async move {
            let item = pb::CheckBulkPermissionsRequestItem {
                resource: Some(obj("document", "readme")),
                permission: "view".into(),
                subject: Some(user("alice")),
                context: None,
            };
            p.check_bulk_permissions(req(pb::CheckBulkPermissionsRequest {
                consistency: consistency(),
                items: vec![item; 1001],
                with_tracing: false,
            }))
            .await
            .map(|_| ())
        }),
    );

    // ---- ExpandPermissionTree --------------------------------------------------------
    let mut p = c.perms.clone();
    must_fail(
        "expand: unknown permission with a long name",
        Box::pin(async move {
            p.expand_permission_tree(req(pb::ExpandPermissionTreeRequest {
                consistency: consistency(),
                resource: Some(obj("document", "readme")),
                permission: "x".repeat(70_000),
            }))
            .await
            .map(|_| ())
        }),
    );

    // ---- LookupResources / LookupSubjects --------------------------------------------
    let mut p = c.perms.clone();
    must_fail(
        "lookup resources: garbage cursor",
        Box::pin(async move {
            drain(p.lookup_resources(req(pb::LookupResourcesRequest {
                consistency: consistency(),
                resource_object_type: "document".into(),
                permission: "view".into(),
                subject: Some(user("alice")),
                context: None,
                optional_limit: 10,
                optional_cursor: Some(pb::Cursor {
                    token: "🦀".repeat(10_000),
                }),
                with_debug: false,
            })))
            .await
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "lookup resources: deep context",
        Box::pin(async move {
            drain(p.lookup_resources(req(pb::LookupResourcesRequest {
                consistency: consistency(),
                resource_object_type: "document".into(),
                permission: "view".into(),
                subject: Some(user("alice")),
                context: Some(nested_struct(200)),
                optional_limit: 0,
                optional_cursor: None,
                with_debug: false,
            })))
            .await
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "lookup subjects: unknown subject type with unicode",
        Box::pin(async move {
            drain(p.lookup_subjects(req(pb::LookupSubjectsRequest {
                consistency: consistency(),
                resource: Some(obj("document", "readme")),
                permission: "view".into(),
                subject_object_type: "usér".into(),
                optional_subject_relation: String::new(),
                context: None,
                optional_concrete_limit: 0,
                optional_cursor: Some(pb::Cursor {
                    token: "x".repeat(100_000),
                }),
                wildcard_option: 0,
            })))
            .await
        }),
    );

    // ---- ReadRelationships / Export ---------------------------------------------------
    let mut p = c.perms.clone();
    let prefix = big_id.clone();
    must_fail(
        "read: 2 MiB id prefix",
        Box::pin(async move {
            drain(p.read_relationships(req(pb::ReadRelationshipsRequest {
                consistency: consistency(),
                relationship_filter: Some(pb::RelationshipFilter {
                    resource_type: "document".into(),
                    optional_resource_id_prefix: prefix,
                    ..Default::default()
                }),
                optional_limit: 0,
                optional_cursor: None,
            })))
            .await
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "export: garbage cursor",
        Box::pin(async move {
            drain(
                p.export_bulk_relationships(req(pb::ExportBulkRelationshipsRequest {
                    consistency: consistency(),
                    optional_limit: 0,
                    optional_cursor: Some(pb::Cursor {
                        token: "AAAA".repeat(1000),
                    }),
                    optional_relationship_filter: None,
                })),
            )
            .await
        }),
    );

    // ---- WriteRelationships ----------------------------------------------------------
    let mut p = c.perms.clone();
    must_fail(
        "write: 1,001 updates",
        Box::pin(async move {
            let updates = (0..1001)
                .map(|i| update(Op::Touch, &format!("document:d{i}#owner@user:x")))
                .collect();
            p.write_relationships(req(pb::WriteRelationshipsRequest {
                updates,
                ..Default::default()
            }))
            .await
            .map(|_| ())
        }),
    );
    let list: Vec<String> = (0..1000).map(|i| format!("\"region-{i}\"")).collect();
    for (name, context) in [
        (
            "write: caveat context with an unknown parameter",
            r#"{"regoin": "eu"}"#.to_string(),
        ),
        (
            "write: caveat context of the wrong type",
            r#"{"allowed": "eu"}"#.to_string(),
        ),
        (
            "write: caveat context over 4 KiB",
            format!(r#"{{"allowed": [{}]}}"#, list.join(",")),
        ),
    ] {
        must_fail(name, Box::pin(write_with_context(c.perms.clone(), context)));
    }
    let mut p = c.perms.clone();
    must_fail(
        "write: expiration in year 10000",
        Box::pin(async move {
            let mut u = update(Op::Touch, "document:readme#viewer@user:carol");
            if let Some(r) = u.relationship.as_mut() {
                r.optional_expires_at = Some(prost_types::Timestamp {
                    seconds: 253_402_300_800,
                    nanos: 0,
                });
            }
            p.write_relationships(req(pb::WriteRelationshipsRequest {
                updates: vec![u],
                ..Default::default()
            }))
            .await
            .map(|_| ())
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "write: MUST_NOT_MATCH precondition on an unknown type",
        Box::pin(async move {
            p.write_relationships(req(pb::WriteRelationshipsRequest {
                updates: vec![update(Op::Touch, "document:readme#viewer@user:carol")],
                optional_preconditions: vec![pb::Precondition {
                    operation: pb::precondition::Operation::MustNotMatch as i32,
                    filter: Some(pb::RelationshipFilter {
                        resource_type: "documnet".into(),
                        ..Default::default()
                    }),
                }],
                optional_transaction_metadata: None,
            }))
            .await
            .map(|_| ())
        }),
    );
    let mut p = c.perms.clone();
    must_fail(
        "write: transaction metadata of 1 MiB",
        Box::pin(async move {
            p.write_relationships(req(pb::WriteRelationshipsRequest {
                updates: vec![update(Op::Touch, "document:readme#viewer@user:carol")],
                optional_preconditions: Vec::new(),
                optional_transaction_metadata: Some(wide_struct(1, 1 << 20)),
            }))
            .await
            .map(|_| ())
        }),
    );
    let mut p = c.perms.clone();
    let id = long_name.clone();
    must_fail(
        "write: 100 KB object id",
        Box::pin(async move {
            let mut u = update(Op::Touch, "document:readme#viewer@user:carol");
            if let Some(r) = u.relationship.as_mut() {
                r.resource = Some(obj("document", &id));
            }
            p.write_relationships(req(pb::WriteRelationshipsRequest {
                updates: vec![u],
                ..Default::default()
            }))
            .await
            .map(|_| ())
        }),
    );

    // ---- DeleteRelationships ---------------------------------------------------------
    let mut p = c.perms.clone();
    must_fail(
        "delete: unknown relation",
        Box::pin(async move {
            p.delete_relationships(req(pb::DeleteRelationshipsRequest {
                relationship_filter: Some(pb::RelationshipFilter {
                    resource_type: "document".into(),
                    optional_relation: "ownr".into(),
                    ..Default::default()
                }),
                optional_limit: 10,
                ..Default::default()
            }))
            .await
            .map(|_| ())
        }),
    );

    // ---- ImportBulkRelationships -----------------------------------------------------
    let mut p = c.perms.clone();
    must_fail(
        "import: a bad relationship in the second chunk",
        Box::pin(async move {
            let good = pb::ImportBulkRelationshipsRequest {
                relationships: vec![crate::api_support::rel("document:imported#owner@user:zed")],
            };
            let bad = pb::ImportBulkRelationshipsRequest {
                relationships: vec![
                    crate::api_support::rel("document:other#owner@user:zed"),
                    pb::Relationship::default(),
                ],
            };
            p.import_bulk_relationships(req(tokio_stream::iter(vec![good, bad])))
                .await
                .map(|_| ())
        }),
    );

    // ---- SchemaService ---------------------------------------------------------------
    let mut s = c.schema.clone();
    must_fail(
        "write schema: one relation allowing 10,000 subject types",
        Box::pin(async move {
            let types: Vec<String> = (0..10_000).map(|i| format!("type_{i}")).collect();
            let text = format!(
                "definition user {{}}\ndefinition doc {{\n relation viewer: {}\n}}\n",
                types.join(" | ")
            );
            s.write_schema(req(pb::WriteSchemaRequest { schema: text }))
                .await
                .map(|_| ())
        }),
    );
    let mut s = c.schema.clone();
    must_fail(
        "write schema: 10,000 errors on one line",
        Box::pin(async move {
            // 100 relations of 100 unknown types each: within every count limit.
            let relations: Vec<String> = (0..100)
                .map(|r| {
                    let types: Vec<String> = (0..100).map(|i| format!("t{r:03}_{i:03}")).collect();
                    format!("relation r_{r:03}: {}", types.join(" | "))
                })
                .collect();
            let text = format!("definition doc {{ {} }}", relations.join("; "));
            s.write_schema(req(pb::WriteSchemaRequest { schema: text }))
                .await
                .map(|_| ())
        }),
    );
    let mut s = c.schema.clone();
    must_fail(
        "write schema: 100,000 nested parentheses",
        Box::pin(async move {
            let text = format!(
                "definition user {{}}\ndefinition doc {{ relation r: user\n permission p = {}r{} }}",
                "(".repeat(100_000),
                ")".repeat(100_000)
            );
            s.write_schema(req(pb::WriteSchemaRequest { schema: text }))
                .await
                .map(|_| ())
        }),
    );
    let mut s = c.schema.clone();
    must_fail(
        "write schema: 3 MiB of unicode garbage",
        Box::pin(async move {
            s.write_schema(req(pb::WriteSchemaRequest {
                schema: "ü∑🦀\u{202e}".repeat(300_000),
            }))
            .await
            .map(|_| ())
        }),
    );
    let mut s = c.schema.clone();
    must_fail(
        "write schema: deeply nested caveat expression",
        Box::pin(async move {
            let text = format!(
                "caveat c(x int) {{ {}x{} > 1 }}\ndefinition user {{}}",
                "(".repeat(50_000),
                ")".repeat(50_000)
            );
            s.write_schema(req(pb::WriteSchemaRequest { schema: text }))
                .await
                .map(|_| ())
        }),
    );
    let mut s = c.schema.clone();
    must_fail(
        "diff schema: 3.5 MiB comparison schema",
        Box::pin(async move {
            let text: String = (0..60_000)
                .map(|i| format!("definition type_{i:06} {{ relation r: missing }}\n"))
                .collect();
            s.diff_schema(req(pb::DiffSchemaRequest {
                consistency: consistency(),
                comparison_schema: text,
            }))
            .await
            .map(|_| ())
        }),
    );
    let mut s = c.schema.clone();
    must_fail(
        "diff schema: a near-limit schema of errors",
        Box::pin(async move {
            // 1,000 definitions (the limit) of 30 misspelled relations each, about 1 MiB:
            // 30,000 errors, each a candidate for a "did you mean" hint.
            let text: String = (0..1000)
                .map(|d| {
                    let members: String = (0..30)
                        .map(|r| format!(" relation r{r:02}: d_{:03}x\n", (d + 1) % 1000))
                        .collect();
                    format!("definition d_{d:03} {{\n{members}}}\n")
                })
                .collect();
            s.diff_schema(req(pb::DiffSchemaRequest {
                consistency: consistency(),
                comparison_schema: text,
            }))
            .await
            .map(|_| ())
        }),
    );
    let mut s = c.schema.clone();
    let n = long_name.clone();
    must_fail(
        "computable permissions: unknown 100 KB definition",
        Box::pin(async move {
            s.computable_permissions(req(pb::ComputablePermissionsRequest {
                consistency: consistency(),
                definition_name: n,
                relation_name: "viewer".into(),
                optional_definition_name_filter: String::new(),
            }))
            .await
            .map(|_| ())
        }),
    );
    let mut s = c.schema.clone();
    must_fail(
        "dependent relations: a relation, not a permission",
        Box::pin(async move {
            s.dependent_relations(req(pb::DependentRelationsRequest {
                consistency: consistency(),
                definition_name: "document".into(),
                permission_name: "owner".into(),
            }))
            .await
            .map(|_| ())
        }),
    );

    // ---- Watch -----------------------------------------------------------------------
    let mut w = c.watch.clone();
    must_fail(
        "watch: garbage start cursor",
        Box::pin(async move {
            drain(w.watch(req(pb::WatchRequest {
                optional_object_types: Vec::new(),
                optional_start_cursor: Some(pb::ZedToken {
                    token: "💥".repeat(5000),
                }),
                optional_relationship_filters: Vec::new(),
                optional_update_kinds: Vec::new(),
            })))
            .await
        }),
    );
    let mut w = c.watch.clone();
    must_fail(
        "watch: an unknown update kind",
        Box::pin(async move {
            drain(w.watch(req(pb::WatchRequest {
                optional_object_types: Vec::new(),
                optional_start_cursor: None,
                optional_relationship_filters: Vec::new(),
                optional_update_kinds: vec![42],
            })))
            .await
        }),
    );
    let mut w = c.watch.clone();
    must_fail(
        "watch: 10,000 object types with unicode",
        Box::pin(async move {
            drain(w.watch(req(pb::WatchRequest {
                optional_object_types: (0..10_000).map(|i| format!("tÿpe_{i}")).collect(),
                optional_start_cursor: None,
                optional_relationship_filters: Vec::new(),
                optional_update_kinds: Vec::new(),
            })))
            .await
        }),
    );
    let mut s = c.schema.clone();
    must_fail(
        "reflect schema: 10,000 filters with unicode names",
        Box::pin(async move {
            s.reflect_schema(req(pb::ReflectSchemaRequest {
                consistency: consistency(),
                optional_filters: (0..10_000)
                    .map(|i| pb::ReflectionSchemaFilter {
                        optional_definition_name_filter: format!("dëf_{i}"),
                        ..Default::default()
                    })
                    .collect(),
            }))
            .await
            .map(|_| ())
        }),
    );

    // ---- bytes that are not the message at all ----------------------------------------
    let ch = c.channel.clone();
    must_fail(
        "raw: random bytes to CheckPermission",
        Box::pin(async move {
            raw(
                &ch,
                "/authzed.api.v1.PermissionsService/CheckPermission",
                vec![0xff; 64],
            )
            .await
        }),
    );
    let ch = c.channel.clone();
    must_fail(
        "raw: a string field that is not UTF-8",
        Box::pin(async move {
            // A valid request whose permission's bytes are then made invalid UTF-8.
            let mut body = check(obj("document", "readme"), "vqew", user("alice")).encode_to_vec();
            let at = body
                .windows(4)
                .position(|w| w == b"vqew")
                .unwrap_or_default();
            body[at + 1] = 0xc3;
            body[at + 2] = 0x28;
            raw(
                &ch,
                "/authzed.api.v1.PermissionsService/CheckPermission",
                body,
            )
            .await
        }),
    );
    let ch = c.channel.clone();
    must_fail(
        "raw: unknown method",
        Box::pin(async move {
            raw(
                &ch,
                "/authzed.api.v1.PermissionsService/CheckPermision",
                Vec::new(),
            )
            .await
        }),
    );
    let ch = c.channel.clone();
    must_fail(
        "raw: unknown service",
        Box::pin(async move {
            raw(
                &ch,
                "/authzed.api.v1.ExperimentalService/BulkCheckPermission",
                Vec::new(),
            )
            .await
        }),
    );
    let ch = c.channel.clone();
    must_fail(
        "raw: a valid request nested past the decoder's limit",
        Box::pin(async move {
            let mut r = check(obj("document", "readme"), "view", user("alice"));
            r.context = Some(nested_struct(300));
            raw(
                &ch,
                "/authzed.api.v1.PermissionsService/CheckPermission",
                r.encode_to_vec(),
            )
            .await
        }),
    );

    // ---- authorization -----------------------------------------------------------------
    let mut p = c.perms.clone();
    must_fail(
        "auth: a 40 KB token",
        Box::pin(async move {
            p.check_permission(authed(
                check(obj("document", "readme"), "view", user("alice")),
                &"t".repeat(40_000),
            ))
            .await
            .map(|_| ())
        }),
    );
    out
}

/// The codes a hostile case may end with. Never UNKNOWN (an unclassified failure) or
/// UNAVAILABLE/CANCELLED (a dropped connection); INTERNAL only for undecodable bytes.
fn clear_code(name: &str, code: Code) -> bool {
    match code {
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::NotFound
        | Code::ResourceExhausted
        | Code::OutOfRange
        | Code::Unauthenticated
        | Code::Unimplemented => true,
        Code::Internal => name.starts_with("raw:"),
        _ => false,
    }
}

/// Everything a caller can read back: the schema and every relationship, in order.
async fn state(c: &Clients) -> (String, Vec<String>) {
    let schema = c
        .schema
        .clone()
        .read_schema(req(pb::ReadSchemaRequest {}))
        .await
        .unwrap()
        .into_inner()
        .schema_text;
    let mut stream = c
        .perms
        .clone()
        .export_bulk_relationships(req(pb::ExportBulkRelationshipsRequest {
            consistency: consistency(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut rels = Vec::new();
    while let Some(batch) = stream.message().await.unwrap() {
        rels.extend(batch.relationships.iter().map(crate::api_support::rel_text));
    }
    rels.sort();
    (schema, rels)
}

/// A valid check still gets its answer.
async fn answers(c: &Clients) -> Result<(), String> {
    let r = c
        .perms
        .clone()
        .check_permission(req(check(obj("document", "child"), "view", user("bob"))))
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    if r.permissionship == pb::check_permission_response::Permissionship::HasPermission as i32 {
        Ok(())
    } else {
        Err(format!("wrong answer: {r:?}"))
    }
}

#[test]
fn hostile_inputs_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_capped(
        &dir.path().join("data"),
        ADDRESS_SPACE,
        &["--grpc-preshared-key", KEY, "--metrics-addr", ""],
    );
    // Deeply nested messages are built, encoded and dropped recursively on the client side.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(64 << 20)
        .build()
        .unwrap();
    let failures = rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(server.endpoint.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let big = 64 << 20;
        let c = Clients {
            perms: PermissionsServiceClient::new(channel.clone())
                .max_decoding_message_size(big)
                .max_encoding_message_size(big),
            schema: SchemaServiceClient::new(channel.clone())
                .max_decoding_message_size(big)
                .max_encoding_message_size(big),
            watch: WatchServiceClient::new(channel.clone()),
            channel,
        };
        c.schema
            .clone()
            .write_schema(req(pb::WriteSchemaRequest {
                schema: SCHEMA.into(),
            }))
            .await
            .unwrap();
        c.perms
            .clone()
            .write_relationships(req(pb::WriteRelationshipsRequest {
                updates: RELATIONSHIPS.iter().map(|r| update(Op::Touch, r)).collect(),
                ..Default::default()
            }))
            .await
            .unwrap();
        let before = state(&c).await;
        answers(&c).await.unwrap();

        let mut failures = Vec::new();
        for (name, case) in cases(&c) {
            let outcome = tokio::time::timeout(std::time::Duration::from_secs(120), case).await;
            if std::env::var_os("TESSERA_HOSTILE_VERBOSE").is_some() {
                match &outcome {
                    Ok(Err(s)) => eprintln!(
                        "{name}: {:?} ({} bytes) {}",
                        s.code(),
                        s.message().len(),
                        cut(s.message())
                    ),
                    other => eprintln!(
                        "{name}: {}",
                        if other.is_ok() {
                            "accepted"
                        } else {
                            "timed out"
                        }
                    ),
                }
            }
            let problem = match outcome {
                Err(_) => Some("no answer within 120 s".to_string()),
                Ok(Ok(())) => Some("accepted; it must be refused".to_string()),
                Ok(Err(status)) => {
                    let m = status.message();
                    if !clear_code(&name, status.code()) {
                        Some(format!(
                            "unclear code {:?}: {}",
                            status.code(),
                            crate::hostile::cut(m)
                        ))
                    } else if m.trim().is_empty() {
                        Some(format!("{:?} without a message", status.code()))
                    } else if m.len() > 4096 {
                        Some(format!(
                            "{:?} with a message of {} bytes",
                            status.code(),
                            m.len()
                        ))
                    } else {
                        None
                    }
                }
            };
            if let Some(p) = problem {
                failures.push(format!("{name}: {p}"));
            }
            if let Err(e) = answers(&c).await {
                failures.push(format!("{name}: afterwards a valid check failed: {e}"));
                break;
            }
        }
        assert_eq!(state(&c).await, before, "hostile calls changed the data");
        failures
    });
    assert!(server.is_running(), "the server died:\n{}", server.logs());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The first 300 characters of a message (for failure reports).
fn cut(m: &str) -> String {
    m.chars().take(300).collect()
}
