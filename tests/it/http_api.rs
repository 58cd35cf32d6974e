//! The HTTP/JSON API over a real socket with a real HTTP client: every `authzed.api.v1`
//! route in the protobuf JSON mapping, streams as NDJSON, errors with reasons and their HTTP
//! statuses, authentication and capabilities, malformed and oversized bodies, the OpenAPI
//! document against the route table, and agreement with the gRPC API on the same service.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tessera::auth::{Auth, AuthConfig, Capability, JwtKeySource, Secret};
use tessera::http::HttpConfig;
use tessera::service::ServiceConfig;

use crate::api_support::{self, PermissionsServiceClient};
use crate::http_support::*;
use tessera::api::proto::authzed::api::v1 as pb;

const SCHEMA: &str = r#"
use expiration
caveat weekday(day int) { day < 6 }
definition user {}
definition group {
    relation member: user | group#member
}
definition document {
    relation viewer: user | user:* | group#member | user with weekday | user with weekday and expiration
    relation owner: user
    permission view = viewer + owner
}
"#;

fn rel(resource: (&str, &str), relation: &str, subject: (&str, &str)) -> Value {
    json!({
        "resource": {"objectType": resource.0, "objectId": resource.1},
        "relation": relation,
        "subject": {"object": {"objectType": subject.0, "objectId": subject.1}}
    })
}

fn touch(r: Value) -> Value {
    json!({"operation": "OPERATION_TOUCH", "relationship": r})
}

fn check_body(doc: &str, permission: &str, user: &str) -> Value {
    json!({
        "consistency": {"fullyConsistent": true},
        "resource": {"objectType": "document", "objectId": doc},
        "permission": permission,
        "subject": {"object": {"objectType": "user", "objectId": user}}
    })
}

async fn with_schema() -> HttpTest {
    let t = HttpTest::start().await;
    let r = t.post("/v1/schema/write", json!({"schema": SCHEMA})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json()["writtenAt"]["token"].is_string());
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v1_routes_speak_the_json_mapping() {
    let t = with_schema().await;

    let r = t.post_raw("/v1/schema/read", "").await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["schemaText"]
            .as_str()
            .unwrap()
            .contains("definition document")
    );
    assert_eq!(r.headers["content-type"], "application/json");

    let r = t
        .post(
            "/v1/relationships/write",
            json!({"updates": [
                touch(rel(("document", "readme"), "viewer", ("user", "alice"))),
                touch(rel(("document", "readme"), "owner", ("user", "olivia"))),
                touch(rel(("document", "spec"), "viewer", ("user", "alice"))),
                {"operation": "OPERATION_TOUCH", "relationship": {
                    "resource": {"objectType": "document", "objectId": "cal"},
                    "relation": "viewer",
                    "subject": {"object": {"objectType": "user", "objectId": "carol"}},
                    "optionalCaveat": {"caveatName": "weekday"},
                    "optionalExpiresAt": "2999-01-01T00:00:00Z"
                }}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let written = r.json()["writtenAt"].clone();

    // Original (snake_case) field names are accepted as well.
    let r = t
        .post(
            "/v1/permissions/check",
            json!({
                "consistency": {"at_least_as_fresh": written},
                "resource": {"object_type": "document", "object_id": "readme"},
                "permission": "view",
                "subject": {"object": {"object_type": "user", "object_id": "alice"}}
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["permissionship"], "PERMISSIONSHIP_HAS_PERMISSION");
    assert!(r.json()["checkedAt"]["token"].is_string());

    let r = t
        .post("/v1/permissions/check", check_body("readme", "view", "bob"))
        .await;
    assert_eq!(r.json()["permissionship"], "PERMISSIONSHIP_NO_PERMISSION");

    // A conditional answer names the missing context; context is a JSON object.
    let r = t
        .post("/v1/permissions/check", check_body("cal", "view", "carol"))
        .await;
    assert_eq!(
        r.json()["permissionship"],
        "PERMISSIONSHIP_CONDITIONAL_PERMISSION"
    );
    assert_eq!(
        r.json()["partialCaveatInfo"]["missingRequiredContext"],
        json!(["day"])
    );
    let mut with_context = check_body("cal", "view", "carol");
    with_context["context"] = json!({"day": 3});
    let r = t.post("/v1/permissions/check", with_context).await;
    assert_eq!(r.json()["permissionship"], "PERMISSIONSHIP_HAS_PERMISSION");

    // Bulk: an item's error is inline, with its reason.
    let r = t
        .post(
            "/v1/permissions/checkbulk",
            json!({"consistency": {"fullyConsistent": true}, "items": [
                {"resource": {"objectType": "document", "objectId": "readme"}, "permission": "view",
                 "subject": {"object": {"objectType": "user", "objectId": "olivia"}}},
                {"resource": {"objectType": "nope", "objectId": "readme"}, "permission": "view",
                 "subject": {"object": {"objectType": "user", "objectId": "olivia"}}}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let pairs = r.json()["pairs"].clone();
    assert_eq!(
        pairs[0]["item"]["permissionship"],
        "PERMISSIONSHIP_HAS_PERMISSION"
    );
    assert_eq!(pairs[0]["request"]["resource"]["objectId"], "readme");
    assert_eq!(pairs[1]["error"]["code"], 9);
    assert_eq!(
        pairs[1]["error"]["details"][0],
        json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo",
               "reason": "ERROR_REASON_UNKNOWN_DEFINITION", "domain": "authzed.com",
               "metadata": {"definition_name": "nope"}})
    );

    let r = t
        .post(
            "/v1/permissions/expand",
            json!({"consistency": {"fullyConsistent": true},
                   "resource": {"objectType": "document", "objectId": "readme"},
                   "permission": "view"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let root = &r.json()["treeRoot"];
    assert_eq!(root["expandedRelation"], "view");
    assert_eq!(root["intermediate"]["operation"], "OPERATION_UNION");

    // Streams: one {"result": …} per line.
    let r = t
        .post(
            "/v1/relationships/read",
            json!({"consistency": {"fullyConsistent": true},
                   "relationshipFilter": {"resourceType": "document", "optionalRelation": "viewer"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/x-ndjson");
    let lines = r.lines();
    assert_eq!(lines.len(), 3, "{}", r.text);
    let cal = &lines[0]["result"]["relationship"];
    assert_eq!(cal["resource"]["objectId"], "cal");
    assert_eq!(cal["optionalCaveat"]["caveatName"], "weekday");
    assert_eq!(cal["optionalExpiresAt"], "2999-01-01T00:00:00Z");
    assert!(lines[0]["result"]["afterResultCursor"]["token"].is_string());

    // Paging with the cursor of a line.
    let r = t
        .post(
            "/v1/relationships/read",
            json!({"consistency": {"fullyConsistent": true},
                   "relationshipFilter": {"resourceType": "document", "optionalRelation": "viewer"},
                   "optionalLimit": 1,
                   "optionalCursor": lines[0]["result"]["afterResultCursor"]}),
        )
        .await;
    let page = r.lines();
    assert_eq!(page.len(), 1);
    assert_eq!(
        page[0]["result"]["relationship"]["resource"]["objectId"],
        "readme"
    );

    let r = t
        .post(
            "/v1/permissions/resources",
            json!({"consistency": {"fullyConsistent": true}, "resourceObjectType": "document",
                   "permission": "view",
                   "subject": {"object": {"objectType": "user", "objectId": "alice"}}}),
        )
        .await;
    let ids: Vec<Value> = r
        .lines()
        .iter()
        .map(|l| l["result"]["resourceObjectId"].clone())
        .collect();
    assert_eq!(ids, [json!("readme"), json!("spec")]);

    let r = t
        .post(
            "/v1/permissions/subjects",
            json!({"consistency": {"fullyConsistent": true},
                   "resource": {"objectType": "document", "objectId": "readme"},
                   "permission": "view", "subjectObjectType": "user"}),
        )
        .await;
    let ids: Vec<Value> = r
        .lines()
        .iter()
        .map(|l| l["result"]["subject"]["subjectObjectId"].clone())
        .collect();
    assert_eq!(ids, [json!("alice"), json!("olivia")]);

    // Delete by filter, with the count as an int64 string.
    let r = t
        .post(
            "/v1/relationships/delete",
            json!({"relationshipFilter": {"resourceType": "document", "optionalResourceId": "spec"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["relationshipsDeletedCount"], "1");
    assert_eq!(r.json()["deletionProgress"], "DELETION_PROGRESS_COMPLETE");

    // The gRPC API on the same service sees the HTTP writes.
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", t.grpc.local_addr()))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let grpc = PermissionsServiceClient::new(channel)
        .check_permission(pb::CheckPermissionRequest {
            consistency: api_support::fully_consistent(),
            resource: Some(api_support::obj("document", "readme")),
            permission: "view".into(),
            subject: Some(api_support::subject("user:olivia")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        grpc.permissionship,
        pb::check_permission_response::Permissionship::HasPermission as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_statuses_codes_messages_and_reasons() {
    let t = with_schema().await;
    let r = t
        .post("/v1/permissions/check", {
            let mut b = check_body("readme", "view", "alice");
            b["resource"]["objectType"] = json!("nope");
            b
        })
        .await;
    r.assert_error(412, 9, &["nope"]);
    assert_eq!(r.reason(), "ERROR_REASON_UNKNOWN_DEFINITION");
    assert_eq!(
        r.json()["details"][0]["metadata"]["definition_name"],
        "nope"
    );

    let create = json!({"updates": [{"operation": "OPERATION_CREATE",
        "relationship": rel(("document", "a"), "owner", ("user", "x"))}]});
    assert_eq!(
        t.post("/v1/relationships/write", create.clone())
            .await
            .status,
        200
    );
    let r = t.post("/v1/relationships/write", create).await;
    r.assert_error(409, 6, &["already exists"]);
    assert_eq!(r.reason(), "ERROR_REASON_ATTEMPT_TO_RECREATE_RELATIONSHIP");

    let r = t
        .post("/v1/schema/write", json!({"schema": "definition {"}))
        .await;
    r.assert_error(400, 3, &[]);
    assert_eq!(r.reason(), "ERROR_REASON_SCHEMA_PARSE_ERROR");

    let r = t
        .post(
            "/v1/relationships/read",
            json!({"relationshipFilter": {"resourceType": "document"}, "optionalLimit": 5000}),
        )
        .await;
    r.assert_error(400, 3, &["optional_limit", "5000"]);
    assert_eq!(r.reason(), "ERROR_REASON_EXCEEDS_MAXIMUM_ALLOWABLE_LIMIT");

    let r = t
        .post(
            "/v1/permissions/resources",
            json!({"resourceObjectType": "document", "permission": "view",
                   "subject": {"object": {"objectType": "user", "objectId": "x"}},
                   "optionalCursor": {"token": "garbage"}}),
        )
        .await;
    r.assert_error(400, 3, &["optional_cursor"]);
    assert_eq!(r.reason(), "ERROR_REASON_INVALID_CURSOR");

    // A field-level mistake names the field, with no reason.
    let r = t
        .post("/v1/permissions/check", check_body("a b", "view", "alice"))
        .await;
    let body = r.assert_error(400, 3, &["resource.object_id"]);
    assert_eq!(body["details"], json!([]));

    // Unknown routes and methods are JSON errors too.
    let r = t.post("/v1/nope", json!({})).await;
    r.assert_error(404, 5, &["/v1/nope"]);
    let r = t.get("/v1/permissions/check").await;
    r.assert_error(405, 3, &["GET"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_400_naming_the_problem() {
    let t = with_schema().await;
    let r = t
        .post_raw("/v1/permissions/check", "{\"permission\": ")
        .await;
    r.assert_error(400, 3, &["CheckPermissionRequest"]);
    let r = t
        .post("/v1/permissions/check", json!({"permision": "view"}))
        .await;
    r.assert_error(400, 3, &["permision"]);
    let r = t
        .post("/v1/permissions/check", json!({"permission": 7}))
        .await;
    r.assert_error(400, 3, &["string"]);
    let r = t
        .post(
            "/v1/relationships/write",
            json!({"updates": [{"operation": "OPERATION_SMASH"}]}),
        )
        .await;
    r.assert_error(400, 3, &["OPERATION_SMASH"]);
    let r = t.post_raw("/access/v1/evaluation", "[1, 2").await;
    r.assert_error(400, 3, &["/access/v1/evaluation"]);
    let r = t
        .post(
            "/access/v1/evaluation",
            json!({"subject": {"type": "user", "id": "x"}}),
        )
        .await;
    r.assert_error(400, 3, &["action"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_with_413() {
    let t = HttpTest::with(
        Auth::insecure(),
        ServiceConfig::default(),
        HttpConfig {
            max_body_bytes: 1024,
        },
    )
    .await;
    let big = json!({"schema": "x".repeat(2000)});
    let r = t.post("/v1/schema/write", big.clone()).await;
    r.assert_error(413, 3, &["1024 bytes"]);
    // Without a length up front (a chunked body), the limit still holds.
    let chunks: Vec<Result<String, std::io::Error>> = vec![
        Ok("{\"schema\": \"".into()),
        Ok("y".repeat(3000)),
        Ok("\"}".into()),
    ];
    let body = reqwest::Body::wrap_stream(futures_stream(chunks));
    let r = t.post_raw("/v1/schema/write", body).await;
    r.assert_error(413, 3, &["1024 bytes"]);
    let r = t.post_raw("/access/v1/evaluation", "z".repeat(5000)).await;
    assert_eq!(r.status, 413);
    // Under the limit, the same route works.
    let r = t
        .post("/v1/schema/write", json!({"schema": "definition user {}"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

fn futures_stream(
    items: Vec<Result<String, std::io::Error>>,
) -> impl tokio_stream::Stream<Item = Result<String, std::io::Error>> + Send + Sync + 'static {
    tokio_stream::iter(items)
}

const HMAC_SECRET: &str = "http-api-hmac-secret-0123456789abcdefghijkl";
const KEY: &str = "http-api-preshared-key-0123456789";

fn jwt(sub: &str) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
    encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": get_current_timestamp() + 600}),
        &EncodingKey::from_secret(HMAC_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_tokens_and_capabilities_as_grpc() {
    let auth = Auth::from_config(AuthConfig {
        preshared_keys: vec![Secret::new(KEY)],
        jwt_keys: vec![JwtKeySource::hmac_secret(HMAC_SECRET)],
        ..AuthConfig::default()
    })
    .unwrap();
    let mut t = HttpTest::with(auth, ServiceConfig::default(), HttpConfig::default()).await;
    tessera::auth::grant(&t.tessera, "reader", &Capability::Read, None).unwrap();

    // No token, a wrong one, a malformed header: 401 with a Bearer challenge.
    let r = t.post("/v1/schema/read", json!({})).await;
    r.assert_error(401, 16, &["authorization"]);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    t.token = Some("not-the-key".into());
    t.post("/v1/schema/read", json!({}))
        .await
        .assert_error(401, 16, &[]);
    t.post("/access/v1/evaluation", json!({}))
        .await
        .assert_error(401, 16, &[]);

    // The preshared key is an administrator.
    t.token = Some(KEY.into());
    let r = t.post("/v1/schema/write", json!({"schema": SCHEMA})).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A JWT caller with `read` may read and check, not write: 403.
    t.token = Some(jwt("reader"));
    let r = t
        .post(
            "/v1/permissions/check",
            check_body("readme", "view", "alice"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = t
        .post(
            "/v1/relationships/write",
            json!({"updates": [touch(rel(("document", "a"), "owner", ("user", "x")))]}),
        )
        .await;
    r.assert_error(403, 7, &["write:document"]);
    let r = t.post("/tessera/admin/v1/access/list", json!({})).await;
    r.assert_error(403, 7, &[]);

    // A JWT caller without grants may not even check.
    t.token = Some(jwt("stranger"));
    let r = t
        .post(
            "/access/v1/evaluation",
            json!({"subject": {"type": "user", "id": "a"}, "action": {"name": "view"},
                   "resource": {"type": "document", "id": "readme"}}),
        )
        .await;
    r.assert_error(403, 7, &[]);

    // Documents need no token.
    t.token = None;
    assert_eq!(t.get("/openapi.json").await.status, 200);
    assert_eq!(
        t.get("/.well-known/authzen-configuration").await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_changes_and_ends_with_an_error_line_on_shutdown() {
    let t = with_schema().await;
    let mut watch = t
        .open_stream(
            "/v1/watch",
            json!({"optionalUpdateKinds": ["WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES"]}),
        )
        .await;
    assert_eq!(watch.headers()["content-type"], "application/x-ndjson");
    let r = t
        .post(
            "/v1/relationships/write",
            json!({"updates": [touch(rel(("document", "w"), "viewer", ("user", "wendy")))],
                   "optionalTransactionMetadata": {"ticket": "T-1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut pending = Vec::new();
    let line = next_line(&mut watch, &mut pending).await.unwrap();
    let result = &line["result"];
    assert_eq!(
        result["updates"][0]["relationship"]["subject"]["object"]["objectId"],
        "wendy"
    );
    assert_eq!(result["updates"][0]["operation"], "OPERATION_TOUCH");
    assert_eq!(result["optionalTransactionMetadata"]["ticket"], "T-1");
    assert_eq!(result["changesThrough"], r.json()["writtenAt"]);

    // Shutting the server down ends the stream with UNAVAILABLE as a final error line.
    let HttpTest { http, grpc, .. } = t;
    let stopping = tokio::spawn(http.shutdown());
    let line = next_line(&mut watch, &mut pending).await.unwrap();
    assert_eq!(line["error"]["code"], 14, "{line}");
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down")
    );
    assert!(next_line(&mut watch, &mut pending).await.is_none());
    stopping.await.unwrap().unwrap();
    grpc.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented_and_every_documented_route_is_served() {
    let t = with_schema().await;
    let r = t.get("/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .as_object()
                .unwrap()
                .keys()
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let table: BTreeSet<(String, String)> = tessera::http::routes::routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, table);
    // The issue's routes are all there.
    for path in [
        "/v1/schema/read",
        "/v1/schema/write",
        "/v1/relationships/read",
        "/v1/relationships/write",
        "/v1/relationships/delete",
        "/v1/permissions/check",
        "/v1/permissions/checkbulk",
        "/v1/permissions/expand",
        "/v1/permissions/resources",
        "/v1/permissions/subjects",
        "/v1/watch",
        "/access/v1/evaluation",
        "/access/v1/evaluations",
        "/access/v1/search/subject",
        "/access/v1/search/resource",
        "/access/v1/search/action",
        "/.well-known/authzen-configuration",
        "/openapi.json",
    ] {
        assert!(table.iter().any(|(_, p)| p == path), "{path} is not served");
    }
    // Every documented route answers (with its own error for an empty body, never 404/405).
    for (method, path) in &documented {
        if path == "/v1/watch" {
            continue; // An open stream; covered by its own test.
        }
        let status = if method == "GET" {
            t.get(path).await.status
        } else {
            t.post_raw(path, "{}").await.status
        };
        assert!(status != 404 && status != 405, "{method} {path}: {status}");
    }
    // Request bodies reference schemas of the JSON mapping, AuthZEN ones their Rust types.
    let check = &doc["paths"]["/v1/permissions/check"]["post"];
    assert_eq!(
        check["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/authzed.api.v1.CheckPermissionRequest"
    );
    assert!(
        doc["paths"]["/v1/watch"]["post"]["responses"]["200"]["content"]["application/x-ndjson"]
            .is_object()
    );
    let evaluation = &doc["paths"]["/access/v1/evaluation"]["post"];
    assert_eq!(
        evaluation["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/EvaluationRequest"
    );
    assert!(doc["components"]["schemas"]["EvaluationRequest"]["properties"]["subject"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed() {
    let t = with_schema().await;
    let response = t
        .client
        .post(t.url("/v1/permissions/check"))
        .header("x-request-id", "req-42")
        .body(check_body("readme", "view", "alice").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let response = t
        .client
        .get(t.url("/nope"))
        .header("x-request-id", "req-43")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "req-43");
}
