//! Wire compatibility of Tessera's hand-written `authzed.api.v1` protos with the official client.
//!
//! The Python side lives in `tests/clients/`: `setup.sh` installs the pinned official `authzed`
//! package into `tests/clients/.venv` (PyPI access needed on the first run only),
//! `compare_descriptors.py` compares descriptors field by field, and `wire_roundtrip.py` encodes
//! and decodes sample messages with the official classes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use prost::Message;
use prost_types::value::Kind;
use prost_types::{FileDescriptorSet, ListValue, Struct, Value};
use tessera::api::proto::FILE_DESCRIPTOR_SET;
use tessera::api::proto::authzed::api::v1 as api;
use tessera::api::proto::authzed::api::v1::check_bulk_permissions_pair::Response as PairResponse;
use tessera::api::proto::authzed::api::v1::check_debug_trace::Resolution;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// The venv's interpreter, after running `setup.sh` once per test process.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let setup = clients_dir().join("setup.sh");
        let output = Command::new("bash")
            .arg(&setup)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", setup.display()));
        assert!(
            output.status.success(),
            "tests/clients/setup.sh failed to install the official authzed Python client \
             (python3 with venv and PyPI access are needed on the first run):\n{}",
            describe(&output)
        );
        clients_dir().join(".venv/bin/python")
    })
}

fn run_script(script: &str, args: &[&str]) -> Output {
    let path = clients_dir().join(script);
    Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()))
}

fn describe(output: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    let text = text.trim();
    assert!(
        text.len().is_multiple_of(2),
        "odd-length hex from python: {text}"
    );
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("python printed invalid hex"))
        .collect()
}

#[test]
fn embedded_descriptor_set_declares_the_three_services() {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let methods = |service: &str| -> Vec<String> {
        set.file
            .iter()
            .filter(|f| f.package() == "authzed.api.v1")
            .flat_map(|f| &f.service)
            .filter(|s| s.name() == service)
            .flat_map(|s| s.method.iter().map(|m| m.name().to_owned()))
            .collect()
    };
    let permissions = methods("PermissionsService");
    for rpc in [
        "CheckPermission",
        "CheckBulkPermissions",
        "ExpandPermissionTree",
        "LookupResources",
        "LookupSubjects",
        "ReadRelationships",
        "WriteRelationships",
        "DeleteRelationships",
        "ImportBulkRelationships",
        "ExportBulkRelationships",
    ] {
        assert!(
            permissions.iter().any(|m| m == rpc),
            "PermissionsService lacks {rpc}"
        );
    }
    let schema = methods("SchemaService");
    assert!(schema.iter().any(|m| m == "ReadSchema") && schema.iter().any(|m| m == "WriteSchema"));
    assert_eq!(methods("WatchService"), ["Watch"]);
    // Tessera's admin service rides in the same set (for reflection) under its own package.
    let admin: Vec<&str> = set
        .file
        .iter()
        .filter(|f| f.package() == "tessera.admin.v1")
        .flat_map(|f| &f.service)
        .filter(|s| s.name() == "AccessService")
        .flat_map(|s| s.method.iter().map(|m| m.name()))
        .collect();
    assert_eq!(admin, ["Grant", "Revoke", "List"]);
    // Reflection needs the imported well-known types in the same set.
    assert!(
        set.file
            .iter()
            .any(|f| f.name() == "google/protobuf/struct.proto")
    );
}

#[test]
fn descriptors_match_the_official_authzed_package() {
    // Tessera's own admin API (`tessera.admin.v1`) has no counterpart in the authzed package;
    // every other file, and so every authzed.* declaration, is compared.
    let mut set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let before = set.file.len();
    set.file.retain(|f| !f.package().starts_with("tessera."));
    assert_eq!(
        before - set.file.len(),
        1,
        "one tessera.admin.v1 file expected"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tessera.fds");
    std::fs::write(&path, set.encode_to_vec()).expect("write descriptor set");
    let path = path.to_str().expect("temp path is UTF-8");

    let output = run_script("compare_descriptors.py", &[path]);
    print!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "Tessera's protos differ from the official authzed package (fix proto/ to match):\n{}",
        describe(&output)
    );
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

/// Mirrors `sample_check_request` in tests/clients/wire_roundtrip.py.
fn sample_check_request() -> api::CheckPermissionRequest {
    let nested = Struct {
        fields: [
            (
                "ok".to_owned(),
                Value {
                    kind: Some(Kind::BoolValue(true)),
                },
            ),
            (
                "none".to_owned(),
                Value {
                    kind: Some(Kind::NullValue(0)),
                },
            ),
        ]
        .into_iter()
        .collect(),
    };
    let context = Struct {
        fields: [
            ("ip".to_owned(), string("10.0.0.1")),
            (
                "attempts".to_owned(),
                Value {
                    kind: Some(Kind::NumberValue(3.0)),
                },
            ),
            (
                "tags".to_owned(),
                Value {
                    kind: Some(Kind::ListValue(ListValue {
                        values: vec![string("a"), string("b")],
                    })),
                },
            ),
            (
                "nested".to_owned(),
                Value {
                    kind: Some(Kind::StructValue(nested)),
                },
            ),
        ]
        .into_iter()
        .collect(),
    };
    api::CheckPermissionRequest {
        consistency: Some(api::Consistency {
            requirement: Some(api::consistency::Requirement::AtLeastAsFresh(
                api::ZedToken {
                    token: "GhUKEzE3MDAwMDAwMDA=".to_owned(),
                },
            )),
        }),
        resource: Some(api::ObjectReference {
            object_type: "docs/document".to_owned(),
            object_id: "readme".to_owned(),
        }),
        permission: "view".to_owned(),
        subject: Some(api::SubjectReference {
            object: Some(api::ObjectReference {
                object_type: "docs/group".to_owned(),
                object_id: "eng".to_owned(),
            }),
            optional_relation: "member".to_owned(),
        }),
        context: Some(context),
        with_tracing: true,
    }
}

#[test]
fn check_permission_request_encodes_identically_in_rust_and_python() {
    let bytes = sample_check_request().encode_to_vec();
    let output = run_script("wire_roundtrip.py", &["check-request", &hex(&bytes)]);
    print!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "the official client reads Tessera's CheckPermissionRequest differently:\n{}",
        describe(&output)
    );
}

#[test]
fn bulk_check_response_from_python_decodes_in_rust() {
    let output = run_script("wire_roundtrip.py", &["bulk-check-response"]);
    assert!(
        output.status.success(),
        "wire_roundtrip.py failed:\n{}",
        describe(&output)
    );
    let bytes = unhex(&String::from_utf8_lossy(&output.stdout));
    let response = api::CheckBulkPermissionsResponse::decode(bytes.as_slice())
        .expect("Tessera decodes the official client's CheckBulkPermissionsResponse");

    assert_eq!(
        response.checked_at.as_ref().map(|t| t.token.as_str()),
        Some("GgYKBDEyMzQ=")
    );
    let [answered, failed] = response.pairs.as_slice() else {
        panic!("expected two pairs, got {:?}", response.pairs);
    };

    let request = answered
        .request
        .as_ref()
        .expect("first pair has its request");
    assert_eq!(request.permission, "view");
    assert_eq!(
        request.resource.as_ref().map(|r| r.object_id.as_str()),
        Some("plan")
    );
    let Some(PairResponse::Item(item)) = &answered.response else {
        panic!(
            "first pair should carry an item, got {:?}",
            answered.response
        );
    };
    assert_eq!(
        item.permissionship(),
        api::check_permission_response::Permissionship::ConditionalPermission
    );
    assert_eq!(
        item.partial_caveat_info
            .as_ref()
            .map(|p| p.missing_required_context.clone()),
        Some(vec!["ip".to_owned()])
    );
    let debug = item.debug_trace.as_ref().expect("debug trace present");
    assert_eq!(debug.schema_used, "definition user {}");
    let root = debug.check.as_ref().expect("root trace present");
    assert_eq!(
        root.permission_type(),
        api::check_debug_trace::PermissionType::Permission
    );
    assert_eq!(
        root.duration,
        Some(prost_types::Duration {
            seconds: 0,
            nanos: 1500
        })
    );
    assert_eq!(
        root.optional_expires_at.map(|t| t.seconds),
        Some(1_767_225_600)
    );
    assert_eq!(root.trace_operation_id, "op-1");
    let Some(Resolution::SubProblems(sub)) = &root.resolution else {
        panic!(
            "root trace should have sub-problems, got {:?}",
            root.resolution
        );
    };
    let [leaf] = sub.traces.as_slice() else {
        panic!("expected one sub-trace, got {:?}", sub.traces);
    };
    assert_eq!(leaf.resolution, Some(Resolution::WasCachedResult(true)));
    assert_eq!(leaf.source, "tessera");
    let caveat = leaf
        .caveat_evaluation_info
        .as_ref()
        .expect("caveat info present");
    assert_eq!(
        caveat.result(),
        api::caveat_eval_info::Result::MissingSomeContext
    );
    assert_eq!(caveat.caveat_name, "on_network");

    let Some(PairResponse::Error(status)) = &failed.response else {
        panic!(
            "second pair should carry an error, got {:?}",
            failed.response
        );
    };
    assert_eq!(status.code, 9);
    assert_eq!(status.message, "object definition `nope` not found");
    assert_eq!(status.details.len(), 1);
    assert_eq!(
        status.details[0].type_url,
        "type.googleapis.com/google.rpc.ErrorInfo"
    );

    // Nothing was dropped as unknown: re-encoding gives back the official client's exact bytes.
    assert_eq!(hex(&response.encode_to_vec()), hex(&bytes));
}
