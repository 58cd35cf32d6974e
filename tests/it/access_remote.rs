//! Access management on a running server: `tessera access grant|revoke|list` through the
//! `tessera.admin.v1.AccessService`, revocations applying to the caller's very next call without
//! a restart, the service refusing non-admins, and the offline `--data-dir` mode for a stopped
//! server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::api_support;
use crate::cli_support;

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::json;
use tessera::api::proto::tessera::admin::v1 as admin;
use tessera::auth::{Auth, AuthConfig, JwtKeySource, Secret};
use tessera::service::ServiceConfig;
use tessera::store::WriteOp;
use tessera::store::memory::MemoryStore;
use tonic::Code;
use tonic::transport::Channel;

use admin::access_service_client::AccessServiceClient;
use api_support::{TestServer, assert_status, authed, revision};
use cli_support::{KEY, Run, Server, tessera};

const HMAC_SECRET: &str = "access-remote-hmac-secret-0123456789abcdef";

const SCHEMA: &str = "definition user {}\n\ndefinition document {\n    relation viewer: user\n    permission view = viewer\n}\n";

/// A JWT for `sub`, valid for ten minutes, signed with [`HMAC_SECRET`].
fn jwt(sub: &str) -> String {
    let claims = json!({ "sub": sub, "exp": get_current_timestamp() + 600 });
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(HMAC_SECRET.as_bytes()),
    )
    .unwrap()
}

// ---- the real binary ----------------------------------------------------------------------

/// Starts `tessera serve` on `data` accepting [`KEY`] and JWTs signed with [`HMAC_SECRET`].
fn start_server(dir: &Path, data: &Path) -> Server {
    let secret = dir.join("hmac.secret");
    if !secret.exists() {
        std::fs::write(&secret, HMAC_SECRET).unwrap();
    }
    Server::start_with(
        data,
        &[
            "--grpc-preshared-key",
            KEY,
            "--jwt-hs-secret-file",
            secret.to_str().unwrap(),
            "--metrics-addr",
            "",
        ],
    )
}

/// Runs a client subcommand against `server` with `token` (or none).
fn cli_as(server: &Server, token: Option<&str>, args: &[&str]) -> Run {
    let mut cmd = tessera();
    cmd.args(args).env("TESSERA_ENDPOINT", &server.endpoint);
    if let Some(token) = token {
        cmd.env("TESSERA_TOKEN", token);
    }
    cmd.output().expect("run tessera").into()
}

#[track_caller]
fn assert_failed_with(run: &Run, code: &str) {
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.contains(code), "{code} not in: {}", run.stderr);
}

#[test]
fn revocation_through_the_running_server_applies_on_the_very_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(dir.path(), &dir.path().join("data"));
    server
        .cli_with_stdin(&["schema", "write", "-"], SCHEMA)
        .ok();
    let reader = jwt("svc-reader");
    let read_schema = |token: &str| cli_as(&server, Some(token), &["schema", "read"]);
    let check = |token: &str| {
        cli_as(
            &server,
            Some(token),
            &["check", "document:readme", "view", "user:alice"],
        )
    };

    // No grant yet: the caller is authenticated but may not read.
    let denied = read_schema(&reader);
    assert_failed_with(&denied, "PERMISSION_DENIED");
    assert!(
        denied
            .stderr
            .contains("tessera access grant svc-reader read"),
        "{}",
        denied.stderr
    );

    // The admin grants `read` through the running server.
    let granted = server.cli(&["access", "grant", "svc-reader", "read"]);
    let zookie = granted.ok().trim().to_string();
    assert!(!zookie.is_empty(), "the grant prints its zookie");
    assert!(
        granted.stderr.contains("granted `read` to `svc-reader`"),
        "{}",
        granted.stderr
    );
    assert_eq!(read_schema(&reader).ok(), SCHEMA);
    // A check answers false (exit 1 without an error), not PERMISSION_DENIED.
    let answered = check(&reader);
    assert_eq!(answered.stdout.trim(), "false", "{}", answered.stderr);

    // `list` shows the grant, for everyone and for the one caller.
    server
        .cli(&["access", "grant", "ops@example.com", "admin"])
        .ok();
    assert_eq!(
        server.cli(&["access", "list"]).ok(),
        "ops@example.com\tadmin\nsvc-reader\tread\n"
    );
    assert_eq!(
        server.cli(&["access", "list", "svc-reader"]).ok(),
        "svc-reader\tread\n"
    );

    // Reading does not make the caller an admin: the access service refuses it.
    assert_failed_with(
        &cli_as(&server, Some(&reader), &["access", "list"]),
        "PERMISSION_DENIED",
    );
    assert_failed_with(
        &cli_as(
            &server,
            Some(&reader),
            &["access", "grant", "svc-reader", "admin"],
        ),
        "PERMISSION_DENIED",
    );
    // Without a token the service does not know who is asking.
    assert_failed_with(
        &cli_as(&server, None, &["access", "list"]),
        "UNAUTHENTICATED",
    );

    // A JWT caller granted `admin` manages access too; it revokes the reader's `read`.
    let ops = jwt("ops@example.com");
    let revoked = cli_as(
        &server,
        Some(&ops),
        &["access", "revoke", "svc-reader", "read"],
    );
    revoked.ok();
    assert!(
        revoked.stderr.contains("revoked `read` from `svc-reader`"),
        "{}",
        revoked.stderr
    );
    // The very next call of the caller is refused: no restart, no cache to expire.
    assert_failed_with(&read_schema(&reader), "PERMISSION_DENIED");
    assert_failed_with(&check(&reader), "PERMISSION_DENIED");

    // Revoking what is not held says so and still succeeds.
    let again = server.cli(&["access", "revoke", "svc-reader", "read"]);
    again.ok();
    assert!(
        again.stderr.contains("did not hold `read`"),
        "{}",
        again.stderr
    );
    // `--all` removes every grant of a caller at once.
    server
        .cli(&["access", "grant", "svc-reader", "write:document"])
        .ok();
    let all = server.cli(&["access", "revoke", "svc-reader", "--all"]);
    all.ok();
    assert!(all.stderr.contains("write:document"), "{}", all.stderr);
    assert_eq!(
        server.cli(&["access", "list"]).ok(),
        "ops@example.com\tadmin\n"
    );
    let empty = server.cli(&["access", "list", "svc-reader"]);
    assert_eq!(empty.ok(), "");
    assert!(empty.stderr.contains("no grants"), "{}", empty.stderr);

    // A malformed capability is a usage error before anything is sent.
    let bad = server.cli(&["access", "grant", "svc-reader", "owner"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("invalid capability `owner`"),
        "{}",
        bad.stderr
    );
    // A reserved caller id is refused by the server, naming the problem.
    let reserved = server.cli(&["access", "grant", "preshared-key:0", "read"]);
    assert_failed_with(&reserved, "INVALID_ARGUMENT");
    assert!(reserved.stderr.contains("reserved"), "{}", reserved.stderr);

    let (status, _) = server.stop("TERM");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn offline_mode_works_on_a_stopped_server_and_points_to_the_server_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();

    // Bootstrapping: grants before the server's first start.
    let granted = tessera()
        .args([
            "access",
            "grant",
            "svc-reader",
            "read",
            "--data-dir",
            data_arg,
        ])
        .output()
        .unwrap();
    let granted = Run::from(granted);
    assert!(
        !granted.ok().trim().is_empty(),
        "offline grants print a zookie"
    );

    // The server starts on that directory and honours the grant.
    let server = start_server(dir.path(), &data);
    server
        .cli_with_stdin(&["schema", "write", "-"], SCHEMA)
        .ok();
    let reader = jwt("svc-reader");
    cli_as(&server, Some(&reader), &["schema", "read"]).ok();
    assert_eq!(server.cli(&["access", "list"]).ok(), "svc-reader\tread\n");

    // While it runs, the offline mode cannot open the directory and says what to do instead.
    let busy = Run::from(
        tessera()
            .args([
                "access",
                "revoke",
                "svc-reader",
                "read",
                "--data-dir",
                data_arg,
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(busy.code, 1, "{}", busy.stderr);
    for needle in ["in use", "drop --data-dir", data_arg] {
        assert!(
            busy.stderr.contains(needle),
            "{needle} not in: {}",
            busy.stderr
        );
    }
    // …and nothing changed: the reader still reads.
    cli_as(&server, Some(&reader), &["schema", "read"]).ok();

    let (status, _) = server.stop("TERM");
    assert_eq!(status.code(), Some(0));

    // Stopped again: offline revocation, and the server's `--config` file finds the directory.
    let config = dir.path().join("tessera.toml");
    std::fs::write(&config, "data-dir = \"data\"\n").unwrap();
    let config_arg = config.to_str().unwrap();
    let revoked = Run::from(
        tessera()
            .args([
                "access",
                "revoke",
                "svc-reader",
                "--all",
                "--config",
                config_arg,
            ])
            .output()
            .unwrap(),
    );
    revoked.ok();
    assert!(
        revoked.stderr.contains("revoked read"),
        "{}",
        revoked.stderr
    );
    let listed = Run::from(
        tessera()
            .args(["access", "list", "--data-dir", data_arg])
            .output()
            .unwrap(),
    );
    assert_eq!(listed.ok(), "");

    // The revocation holds once the server is back.
    let server = start_server(dir.path(), &data);
    assert_failed_with(
        &cli_as(&server, Some(&reader), &["schema", "read"]),
        "PERMISSION_DENIED",
    );
}

#[test]
fn offline_flags_exclude_the_connection_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data_arg = dir.path().to_str().unwrap();
    let conflict = Run::from(
        tessera()
            .args([
                "access",
                "list",
                "--data-dir",
                data_arg,
                "--endpoint",
                "127.0.0.1:1",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(conflict.code, 2, "{}", conflict.stderr);
    assert!(
        conflict.stderr.contains("--data-dir") && conflict.stderr.contains("--endpoint"),
        "{}",
        conflict.stderr
    );

    // The environment's connection settings are defaults: an explicit --data-dir wins.
    let offline = Run::from(
        tessera()
            .args(["access", "grant", "svc", "read", "--data-dir", data_arg])
            .env("TESSERA_ENDPOINT", "127.0.0.1:1")
            .env("TESSERA_TOKEN", KEY)
            .output()
            .unwrap(),
    );
    offline.ok();
    let listed = Run::from(
        tessera()
            .args(["access", "list", "--data-dir", data_arg])
            .env("TESSERA_ENDPOINT", "127.0.0.1:1")
            .output()
            .unwrap(),
    );
    assert_eq!(listed.ok(), "svc\tread\n");

    // Without --data-dir the command goes to the server, and says so when none runs.
    let port = cli_support::unused_port();
    let unreachable = Run::from(
        tessera()
            .args(["access", "list", "--endpoint", &format!("127.0.0.1:{port}")])
            .output()
            .unwrap(),
    );
    assert_eq!(unreachable.code, 1, "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("cannot connect"),
        "{}",
        unreachable.stderr
    );

    let help = Run::from(
        tessera()
            .args(["access", "grant", "--help"])
            .output()
            .unwrap(),
    );
    for needle in [
        "--endpoint",
        "--token",
        "--data-dir",
        "--config",
        "Offline mode",
    ] {
        assert!(
            help.ok().contains(needle),
            "{needle} not in:\n{}",
            help.stdout
        );
    }
}

// ---- the gRPC service, in process -----------------------------------------------------

async fn jwt_server() -> TestServer {
    let auth = Auth::from_config(AuthConfig {
        preshared_keys: vec![Secret::new(KEY)],
        jwt_keys: vec![JwtKeySource::hmac_secret(HMAC_SECRET)],
        ..AuthConfig::default()
    })
    .unwrap();
    let s =
        TestServer::with_auth(Arc::new(MemoryStore::new()), ServiceConfig::default(), auth).await;
    s.tessera.write_schema(SCHEMA, None).unwrap();
    s
}

fn access(s: &TestServer) -> AccessServiceClient<Channel> {
    AccessServiceClient::new(s.channel.clone())
}

fn grant_req(caller: &str, capability: &str) -> admin::GrantRequest {
    admin::GrantRequest {
        caller: caller.into(),
        capability: capability.into(),
    }
}

fn revoke_req(caller: &str, capability: &str, all: bool) -> admin::RevokeRequest {
    admin::RevokeRequest {
        caller: caller.into(),
        capability: capability.into(),
        all,
    }
}

fn list_req(caller: &str) -> admin::ListRequest {
    admin::ListRequest {
        caller: caller.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_may_call_the_access_service() {
    let s = jwt_server().await;
    let mut c = access(&s);

    // No token: UNAUTHENTICATED, for every RPC.
    assert_status(
        c.list(list_req("")).await,
        Code::Unauthenticated,
        &["authorization"],
    );
    assert_status(
        c.grant(grant_req("svc", "read")).await,
        Code::Unauthenticated,
        &[],
    );
    assert_status(
        c.revoke(revoke_req("svc", "read", false)).await,
        Code::Unauthenticated,
        &[],
    );

    // A JWT caller without `admin`: PERMISSION_DENIED, even holding every other capability.
    let svc = jwt("svc");
    for capability in ["read", "schema-write", "write:*"] {
        c.grant(authed(grant_req("svc", capability), KEY))
            .await
            .unwrap();
    }
    assert_status(
        c.list(authed(list_req(""), &svc)).await,
        Code::PermissionDenied,
        &["`svc`", "manage access"],
    );
    assert_status(
        c.grant(authed(grant_req("svc", "admin"), &svc)).await,
        Code::PermissionDenied,
        &["`svc`"],
    );
    // Refused before its input is looked at: a non-admin learns nothing from a bad request.
    assert_status(
        c.revoke(authed(revoke_req("", "nonsense", true), &svc))
            .await,
        Code::PermissionDenied,
        &[],
    );

    // Once granted `admin`, the same token may; once revoked, the next call is refused again.
    c.grant(authed(grant_req("svc", "admin"), KEY))
        .await
        .unwrap();
    let listed = c
        .list(authed(list_req("svc"), &svc))
        .await
        .unwrap()
        .into_inner();
    let caps: Vec<&str> = listed
        .grants
        .iter()
        .map(|g| g.capability.as_str())
        .collect();
    assert_eq!(caps, ["admin", "schema-write", "read", "write:*"]);
    c.revoke(authed(revoke_req("svc", "admin", false), KEY))
        .await
        .unwrap();
    assert_status(
        c.list(authed(list_req(""), &svc)).await,
        Code::PermissionDenied,
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_capabilities_and_callers_are_invalid_arguments() {
    let s = jwt_server().await;
    let mut c = access(&s);
    assert_status(
        c.grant(authed(grant_req("svc", "owner"), KEY)).await,
        Code::InvalidArgument,
        &["capability", "`owner`", "write:<resource type>"],
    );
    assert_status(
        c.grant(authed(grant_req("svc", ""), KEY)).await,
        Code::InvalidArgument,
        &["capability", "required"],
    );
    assert_status(
        c.grant(authed(grant_req("svc", "write:tessera/caller"), KEY))
            .await,
        Code::InvalidArgument,
        &["reserved"],
    );
    assert_status(
        c.grant(authed(grant_req("", "read"), KEY)).await,
        Code::InvalidArgument,
        &["invalid caller", "empty"],
    );
    assert_status(
        c.grant(authed(grant_req("preshared-key:0", "read"), KEY))
            .await,
        Code::InvalidArgument,
        &["`preshared-key:0`", "reserved"],
    );
    assert_status(
        c.grant(authed(grant_req(&"x".repeat(300), "read"), KEY))
            .await,
        Code::InvalidArgument,
        &["256 bytes"],
    );
    assert_status(
        c.revoke(authed(revoke_req("svc", "read", true), KEY)).await,
        Code::InvalidArgument,
        &["not both"],
    );
    assert_status(
        c.revoke(authed(revoke_req("svc", "", false), KEY)).await,
        Code::InvalidArgument,
        &["capability", "`all`"],
    );
    assert_status(
        c.revoke(authed(revoke_req("svc", "write", false), KEY))
            .await,
        Code::InvalidArgument,
        &["write:*"],
    );
    assert_status(
        c.list(authed(list_req("anonymous"), KEY)).await,
        Code::InvalidArgument,
        &["`anonymous`", "reserved"],
    );
    // Nothing was written by the refused calls.
    let listed = c
        .list(authed(list_req(""), KEY))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.grants.is_empty(), "{:?}", listed.grants);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_and_revocations_are_ordinary_writes_with_revisions() {
    let s = jwt_server().await;
    let mut c = access(&s);
    let store = s.tessera.store().clone();
    let before = store.head_revision().unwrap();

    let granted = c
        .grant(authed(grant_req("svc@example.com", "write:document"), KEY))
        .await
        .unwrap()
        .into_inner();
    let granted_at = revision(granted.written_at.as_ref().unwrap());
    assert!(granted_at > before);
    assert_eq!(store.head_revision().unwrap(), granted_at);

    // The change log records the grant with the admin as its writer.
    let changes = store.read_changes(before, 100).unwrap();
    let entry = changes
        .iter()
        .find(|c| c.revision == granted_at)
        .expect("the grant is in the change log");
    assert_eq!(entry.caller.as_deref(), Some("preshared-key:0"));
    assert_eq!(entry.changes.len(), 1);
    assert_eq!(entry.changes[0].op, WriteOp::Touch);
    assert_eq!(
        entry.changes[0].relationship.resource.object_type,
        "tessera/resource_type"
    );

    // The listing is read at the newest revision.
    let listed = c
        .list(authed(list_req(""), KEY))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revision(listed.read_at.as_ref().unwrap()), granted_at);
    assert_eq!(
        listed.grants,
        [admin::AccessGrant {
            caller: "svc@example.com".into(),
            capability: "write:document".into(),
        }]
    );

    // Revoking writes a new revision; revoking what is gone writes nothing and answers the
    // revision at which it was seen gone.
    let revoked = c
        .revoke(authed(
            revoke_req("svc@example.com", "write:document", false),
            KEY,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.revoked, ["write:document"]);
    let revoked_at = revision(revoked.written_at.as_ref().unwrap());
    assert!(revoked_at > granted_at);
    let entry = store.read_changes(granted_at, 100).unwrap();
    assert_eq!(entry.len(), 1);
    assert_eq!(entry[0].revision, revoked_at);
    assert_eq!(entry[0].caller.as_deref(), Some("preshared-key:0"));
    assert_eq!(entry[0].changes[0].op, WriteOp::Delete);

    let nothing = c
        .revoke(authed(revoke_req("svc@example.com", "", true), KEY))
        .await
        .unwrap()
        .into_inner();
    assert!(nothing.revoked.is_empty());
    assert_eq!(revision(nothing.written_at.as_ref().unwrap()), revoked_at);
    assert_eq!(store.head_revision().unwrap(), revoked_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_service_is_in_health_and_reflection() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let s = jwt_server().await;
    let status = HealthClient::new(s.channel.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: "tessera.admin.v1.AccessService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, ServingStatus::Serving as i32);

    let requests = tokio_stream::iter(vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "tessera.admin.v1.AccessService".into(),
            )),
        },
    ]);
    let responses = api_support::collect(
        ServerReflectionClient::new(s.channel.clone())
            .server_reflection_info(requests)
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = &responses[0].message_response else {
        panic!("expected a service list");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "tessera.admin.v1.AccessService"),
        "{:?}",
        list.service
    );
    let Some(MessageResponse::FileDescriptorResponse(files)) = &responses[1].message_response
    else {
        panic!("expected file descriptors");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}
