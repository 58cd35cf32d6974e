//! Many nodes, one truth: three Tessera nodes — each an in-process gRPC server with its own
//! `PostgresStore`, check cache, schema cache and snapshot chooser — over one database of the
//! tests' private PostgreSQL cluster.
//!
//! - new enemy across nodes under concurrent writes: a revocation's zookie from one node is
//!   honoured by every other (answers judged against the full ordered history);
//! - Watch on one node streams every node's writes, in order, and resumes on another node;
//! - a schema written on one node is used by the next request on another, and schema changes
//!   racing relationship writes on other nodes never leave relationships the schema forbids;
//! - a capability revoked on one node is refused on the next call to another;
//! - while the database is down, health turns NOT_SERVING and calls fail with UNAVAILABLE;
//!   both recover by themselves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tessera::api::proto::authzed::api::v1 as pb;
use tessera::auth::{self, Auth, AuthError, Caller, CallerKind, Capability};
use tessera::model::{RelationshipFilter, Revision};
use tessera::service::ServiceConfig;
use tessera::store::postgres::PostgresStore;

use crate::api_support::*;
use crate::pg_support::{self, Cluster};

const SCHEMA: &str = r#"
definition user {}
definition group {
    relation member: user
}
definition document {
    relation viewer: user | group#member
    relation editor: user
    permission view = viewer + editor
}
"#;

/// Nodes on one database of `cluster` (a long `minimize_latency` staleness, so a consistency
/// mode that fell back to a node's cached revision would be caught).
async fn nodes_on(cluster: &Cluster, db: &str, n: usize) -> Vec<Arc<TestServer>> {
    let config = ServiceConfig {
        max_staleness: Duration::from_secs(60),
        ..ServiceConfig::default()
    };
    let mut nodes = Vec::new();
    for _ in 0..n {
        let store = PostgresStore::open(pg_support::options(&cluster.uri(db))).unwrap();
        nodes.push(Arc::new(
            TestServer::with_store(Arc::new(store), config.clone()).await,
        ));
    }
    nodes
}

async fn three_nodes() -> Vec<Arc<TestServer>> {
    let c = pg_support::cluster();
    let db = c.fresh_database();
    nodes_on(c, &db, 3).await
}

async fn check(
    node: &TestServer,
    consistency: Option<pb::Consistency>,
    doc: &str,
    permission: &str,
    user: &str,
) -> (bool, Revision) {
    let r = node
        .perms()
        .check_permission(pb::CheckPermissionRequest {
            consistency,
            resource: Some(obj("document", doc)),
            permission: permission.into(),
            subject: Some(subject(user)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    (
        r.permissionship == pb::check_permission_response::Permissionship::HasPermission as i32,
        revision(r.checked_at.as_ref().unwrap()),
    )
}

fn grant_text(doc: usize) -> String {
    if doc.is_multiple_of(2) {
        format!("document:d{doc}#viewer@user:alice")
    } else {
        format!("group:g{doc}#member@user:alice")
    }
}

#[derive(Default)]
struct DocState {
    history: Vec<(Revision, bool)>,
    latest_revoke: Option<pb::ZedToken>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_node_answers_a_check_at_least_as_fresh_as_a_revocation_with_the_revoked_grant() {
    let nodes = three_nodes().await;
    nodes[0].write_schema(SCHEMA).await;
    const DOCS: usize = 4;
    let mut setup: Vec<String> = (0..DOCS).map(grant_text).collect();
    for doc in (0..DOCS).filter(|d| d % 2 == 1) {
        setup.push(format!("document:d{doc}#viewer@group:g{doc}#member"));
    }
    let initial = nodes[1]
        .touch(&setup.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    // Warm every node's minimize_latency revision and check cache at the initial revision.
    for node in &nodes {
        for doc in 0..DOCS {
            check(node, None, &format!("d{doc}"), "view", "user:alice").await;
        }
    }
    let states: Arc<Vec<Mutex<DocState>>> = Arc::new(
        (0..DOCS)
            .map(|_| {
                Mutex::new(DocState {
                    history: vec![(revision(&initial), true)],
                    latest_revoke: None,
                })
            })
            .collect(),
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut writers = Vec::new();
    for doc in 0..DOCS {
        let node = nodes[doc % nodes.len()].clone();
        let states = states.clone();
        writers.push(tokio::spawn(async move {
            let mut cycles = 0u32;
            while Instant::now() < deadline {
                let z = node
                    .write(vec![update(Op::Delete, &grant_text(doc))])
                    .await
                    .unwrap();
                {
                    let mut st = states[doc].lock();
                    st.history.push((revision(&z), false));
                    st.latest_revoke = Some(z);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                let z = node.touch(&[&grant_text(doc)]).await;
                states[doc].lock().history.push((revision(&z), true));
                cycles += 1;
            }
            cycles
        }));
    }
    let mut checkers = Vec::new();
    for c in 0..6usize {
        let node = nodes[(c + 1) % nodes.len()].clone();
        let states = states.clone();
        checkers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut i = c;
            while Instant::now() < deadline {
                i += 1;
                let doc = i % DOCS;
                let Some(token) = states[doc].lock().latest_revoke.clone() else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let (has, at) = check(
                    &node,
                    at_least(&token),
                    &format!("d{doc}"),
                    "view",
                    "user:alice",
                )
                .await;
                seen.push((doc, revision(&token), at, has));
            }
            seen
        }));
    }
    let mut cycles = 0;
    for w in writers {
        cycles += w.await.unwrap();
    }
    let mut observations = Vec::new();
    for c in checkers {
        observations.extend(c.await.unwrap());
    }
    let mut revoked_answers = 0;
    for (doc, requested, at, has) in &observations {
        assert!(
            at >= requested,
            "d{doc}: asked for at least {requested}, answered at {at}"
        );
        let truth = states[*doc]
            .lock()
            .history
            .iter()
            .filter(|(rev, _)| rev <= at)
            .max_by_key(|(rev, _)| *rev)
            .map(|(_, granted)| *granted)
            .unwrap();
        assert_eq!(*has, truth, "d{doc} at revision {at}");
        if !truth {
            revoked_answers += 1;
        }
    }
    assert!(cycles >= 10, "only {cycles} revoke/grant cycles ran");
    assert!(
        observations.len() >= 50,
        "only {} checks ran",
        observations.len()
    );
    assert!(
        revoked_answers >= 5,
        "only {revoked_answers} checks landed while revoked"
    );
}

async fn next_response(stream: &mut tonic::Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a Watch response within 10s")
        .unwrap()
        .expect("the stream is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_on_one_node_streams_every_nodes_writes_in_order_and_resumes_elsewhere() {
    let nodes = three_nodes().await;
    nodes[0].write_schema(SCHEMA).await;
    let mut stream = nodes[1]
        .watch()
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut written = Vec::new();
    for i in 0..9usize {
        // Writes land on nodes 0 and 2 only; the watcher is on node 1.
        let node = &nodes[if i % 2 == 0 { 0 } else { 2 }];
        let text = format!("document:w{i}#viewer@user:u{i}");
        let z = node.touch(&[&text]).await;
        written.push((revision(&z), text));
    }
    let mut seen = Vec::new();
    let started = Instant::now();
    while seen.len() < written.len() {
        let r = next_response(&mut stream).await;
        for u in &r.updates {
            seen.push((
                revision(r.changes_through.as_ref().unwrap()),
                rel_text(u.relationship.as_ref().unwrap()),
            ));
        }
    }
    assert_eq!(seen, written, "every write, in revision order");
    // Notifications, not the 500 ms poll, wake the stream: nine writes arrive promptly.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // Resume on node 2 from the fifth write's token.
    let cursor = tessera::api::convert::zookie(written[4].0);
    let mut resumed = nodes[2]
        .watch()
        .watch(pb::WatchRequest {
            optional_start_cursor: Some(cursor),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut rest = Vec::new();
    while rest.len() < 4 {
        let r = next_response(&mut resumed).await;
        for u in &r.updates {
            rest.push(rel_text(u.relationship.as_ref().unwrap()));
        }
    }
    let expected: Vec<String> = written[5..].iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(rest, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schema_written_on_one_node_is_used_by_the_next_request_on_another() {
    let nodes = three_nodes().await;
    let v1 = "definition user {}\ndefinition document {\n    relation viewer: user\n    permission view = viewer\n}\n";
    nodes[0].write_schema(v1).await;
    nodes[1].touch(&["document:a#viewer@user:x"]).await;
    // Node 2 has cached schema v1 (it compiled it for this check).
    assert!(
        check(&nodes[2], fully_consistent(), "a", "view", "user:x")
            .await
            .0
    );
    let v2 = "definition user {}\ndefinition document {\n    relation viewer: user\n    relation owner: user\n    permission view = viewer + owner\n    permission own = owner\n}\n";
    let z = nodes[0].write_schema(v2).await;
    // Writes validate against the head schema: node 2 accepts `owner` at once.
    nodes[2].touch(&["document:b#owner@user:y"]).await;
    let (has, at) = check(&nodes[1], at_least(&z), "b", "own", "user:y").await;
    assert!(has && at > revision(&z));
    let read = nodes[1]
        .schema()
        .read_schema(pb::ReadSchemaRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        read.schema_text.contains("permission own"),
        "{}",
        read.schema_text
    );
}

/// Node 0 flips the schema between a version with `document#viewer` and one without, while
/// nodes 1 and 2 keep creating and deleting viewers. Each side's check runs under the
/// database-wide writer lock, so whatever interleaving happens, no revision ever holds a
/// viewer relationship under a schema without `viewer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_changes_racing_writes_on_other_nodes_never_orphan_relationships() {
    let nodes = three_nodes().await;
    let with = "definition user {}\ndefinition document {\n    relation viewer: user\n    relation editor: user\n}\n";
    let without = "definition user {}\ndefinition document {\n    relation editor: user\n}\n";
    nodes[0].write_schema(with).await;
    // The race runs until both sides made progress (schema flips need a moment without
    // viewers, which the flipper makes by deleting them first; writers may add one back in
    // between, which is the race under test), or 60 s at most on a very busy machine.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hard_deadline = Instant::now() + Duration::from_secs(60);
    let flips = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flipper = {
        let node = nodes[0].clone();
        let (done, flips) = (done.clone(), flips.clone());
        tokio::spawn(async move {
            let mut i = 0usize;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let removing = i.is_multiple_of(2);
                if removing {
                    let _ = node
                        .perms()
                        .delete_relationships(pb::DeleteRelationshipsRequest {
                            relationship_filter: Some(pb::RelationshipFilter {
                                resource_type: "document".into(),
                                optional_relation: "viewer".into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        })
                        .await;
                }
                let text = if removing { without } else { with };
                match node
                    .schema()
                    .write_schema(pb::WriteSchemaRequest {
                        schema: text.into(),
                    })
                    .await
                {
                    Ok(_) => {
                        flips.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        i += 1;
                    }
                    Err(s) => {
                        assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{}", s.message());
                    }
                }
            }
        })
    };
    let mut writers = Vec::new();
    for (w, node) in nodes.iter().enumerate().skip(1) {
        let node = node.clone();
        let (done, written) = (done.clone(), written.clone());
        writers.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                // Touch a viewer, then delete the same one.
                let text = format!("document:n{w}#viewer@user:u{}", (i / 2) % 3);
                let op = if i.is_multiple_of(2) {
                    Op::Touch
                } else {
                    Op::Delete
                };
                match node.write(vec![update(op, &text)]).await {
                    Ok(_) => {
                        written.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(s) => {
                        // Refused by the schema, or (rarely) the schema kept changing under
                        // the write through all its retries.
                        assert!(
                            matches!(
                                s.code(),
                                tonic::Code::FailedPrecondition | tonic::Code::Unavailable
                            ),
                            "{:?}: {}",
                            s.code(),
                            s.message()
                        );
                    }
                }
                // Deletes of a relation the schema no longer has are refused too: advance
                // anyway so the writer does not retry the same delete forever.
                i += 1;
            }
        }));
    }
    let progressed = || {
        flips.load(std::sync::atomic::Ordering::SeqCst) >= 4
            && written.load(std::sync::atomic::Ordering::SeqCst) >= 20
    };
    while !progressed() && Instant::now() < hard_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A little longer, so the race also runs once both sides are warm.
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    flipper.await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    assert!(
        progressed(),
        "schemas {}, writes {}",
        flips.load(std::sync::atomic::Ordering::SeqCst),
        written.load(std::sync::atomic::Ordering::SeqCst)
    );

    // Every revision's relationships are valid under that revision's schema.
    let store = nodes[2].tessera.store().clone();
    let head = store.head_revision().unwrap();
    let mut checked = 0;
    for r in 1..=head.0 {
        let snapshot = store.snapshot(Revision(r)).unwrap();
        let Some(stored) = snapshot.schema().unwrap() else {
            continue;
        };
        let schema = tessera::schema::compile("schema", &stored.text)
            .unwrap()
            .schema;
        for rel in snapshot
            .query(&RelationshipFilter::default(), None)
            .unwrap()
        {
            let rel = rel.unwrap();
            assert!(
                schema.validate_relationship(&rel).is_ok(),
                "revision {r}: `{rel}` under the schema of revision {}",
                stored.written_at
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_capability_revoked_on_one_node_is_refused_on_the_next_call_to_another() {
    let nodes = three_nodes().await;
    nodes[0].write_schema(SCHEMA).await;
    let auth = Auth::from_config(auth::AuthConfig {
        preshared_keys: vec![auth::Secret::new("ops-key-for-the-multi-node-test")],
        ..Default::default()
    })
    .unwrap();
    let caller = Caller {
        id: "svc-billing".into(),
        kind: CallerKind::Jwt,
    };
    let capability: Capability = "write:document".parse().unwrap();
    let (a, b, c) = (
        nodes[0].tessera.clone(),
        nodes[1].tessera.clone(),
        nodes[2].tessera.clone(),
    );
    tokio::task::spawn_blocking(move || {
        for round in 0..10 {
            auth::grant(&a, "svc-billing", &capability, Some("ops")).unwrap();
            for t in [&b, &c] {
                auth.authorize(t, &caller, &capability)
                    .unwrap_or_else(|e| panic!("round {round}: granted on node 0: {e:?}"));
            }
            assert!(auth::revoke(&a, "svc-billing", &capability, Some("ops")).unwrap());
            for t in [&b, &c] {
                match auth.authorize(t, &caller, &capability) {
                    Err(AuthError::PermissionDenied(_)) => {}
                    other => panic!("round {round}: revoked on node 0, yet {other:?}"),
                }
            }
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_the_database_is_down_health_is_not_serving_and_calls_are_unavailable() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("a private PostgreSQL cluster: {e}"));
    let cluster = Arc::new(cluster);
    let db = {
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.fresh_database())
            .await
            .unwrap()
    };
    let nodes = nodes_on(&cluster, &db, 2).await;
    nodes[0].write_schema(SCHEMA).await;
    nodes[0].touch(&["document:a#viewer@user:x"]).await;
    let status = |node: Arc<TestServer>| async move {
        HealthClient::new(node.channel.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    };
    let wait_for = |want: ServingStatus, node: Arc<TestServer>| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        while status(node.clone()).await != want as i32 {
            assert!(Instant::now() < deadline, "health never became {want:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    wait_for(ServingStatus::Serving, nodes[1].clone()).await;

    {
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.stop()).await.unwrap();
    }
    for node in &nodes {
        wait_for(ServingStatus::NotServing, node.clone()).await;
    }
    let started = Instant::now();
    let result = nodes[1]
        .perms()
        .check_permission(pb::CheckPermissionRequest {
            consistency: fully_consistent(),
            resource: Some(obj("document", "a")),
            permission: "view".into(),
            subject: Some(subject("user:x")),
            ..Default::default()
        })
        .await;
    assert_status(
        result,
        tonic::Code::Unavailable,
        &["datastore is unavailable", "PostgreSQL"],
    );
    let result = nodes[0]
        .write(vec![update(Op::Touch, "document:b#viewer@user:y")])
        .await;
    assert_status(
        result,
        tonic::Code::Unavailable,
        &["datastore is unavailable"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );

    {
        let c = cluster.clone();
        tokio::task::spawn_blocking(move || c.restart())
            .await
            .unwrap();
    }
    for node in &nodes {
        wait_for(ServingStatus::Serving, node.clone()).await;
    }
    // Both nodes serve again without a restart of their own.
    let z = nodes[0].touch(&["document:b#viewer@user:y"]).await;
    assert!(
        check(&nodes[1], at_least(&z), "b", "view", "user:y")
            .await
            .0
    );
}
