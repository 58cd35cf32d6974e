//! The new-enemy guarantee under concurrency, over the real gRPC API.
//!
//! Writers repeatedly revoke and re-grant alice's access to their own document (directly, or
//! through group membership) and publish the zookie of each revocation. Checkers concurrently
//! ask `view` with `at_least_as_fresh(latest revocation zookie they saw)`.
//!
//! Every answer is then judged against the full, ordered history of grants and revocations:
//! - the answer's `checked_at` must be at least the zookie the checker passed;
//! - the answer must be exactly the state at `checked_at` (the last grant or revocation at or
//!   before it), so a check that sees a revoked grant, or any stale or mislabelled snapshot,
//!   fails the test.
//!
//! The service is configured with a very long `minimize_latency` staleness, so a consistency
//! mode that fell back to the cached revision would be caught at once.

// Test helpers outside `#[test]` functions fail loudly by design.
#![allow(clippy::unwrap_used)]

use crate::api_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_support::*;
use parking_lot::Mutex;
use tessera::api::proto::authzed::api::v1 as pb;
use tessera::model::Revision;
use tessera::service::ServiceConfig;
use tessera::store::memory::MemoryStore;

const SCHEMA: &str = r#"
definition user {}
definition group {
    relation member: user
}
definition document {
    relation viewer: user | group#member
    permission view = viewer
}
"#;

const DOCS: usize = 4;
const CHECKERS: usize = 4;
const RUN_FOR: Duration = Duration::from_secs(3);

/// How a document's grant to alice is revoked and restored.
#[derive(Clone, Copy)]
enum Path {
    /// `document:dN#viewer@user:alice`, revoked with a DELETE update.
    DirectUpdate,
    /// The same relationship, revoked with DeleteRelationships.
    DirectFilter,
    /// `document:dN#viewer@group:gN#member` stays; `group:gN#member@user:alice` is revoked.
    Group,
}

fn path(doc: usize) -> Path {
    match doc % 3 {
        0 => Path::DirectUpdate,
        1 => Path::DirectFilter,
        _ => Path::Group,
    }
}

fn grant_text(doc: usize) -> String {
    match path(doc) {
        Path::DirectUpdate | Path::DirectFilter => format!("document:d{doc}#viewer@user:alice"),
        Path::Group => format!("group:g{doc}#member@user:alice"),
    }
}

/// Per document: its ordered history (revision, granted) and the latest revocation token.
#[derive(Default)]
struct DocState {
    history: Vec<(Revision, bool)>,
    latest_revoke: Option<pb::ZedToken>,
}

struct Observation {
    doc: usize,
    requested: Revision,
    checked_at: Revision,
    has: bool,
}

/// A tiny deterministic generator (no extra dependency) for pauses and document choice.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

async fn revoke(
    s: &TestServer,
    perms: &mut PermissionsServiceClient<tonic::transport::Channel>,
    doc: usize,
) -> pb::ZedToken {
    match path(doc) {
        Path::DirectUpdate | Path::Group => s
            .write(vec![update(Op::Delete, &grant_text(doc))])
            .await
            .unwrap(),
        Path::DirectFilter => perms
            .delete_relationships(pb::DeleteRelationshipsRequest {
                relationship_filter: Some(pb::RelationshipFilter {
                    resource_type: "document".into(),
                    optional_resource_id: format!("d{doc}"),
                    optional_relation: "viewer".into(),
                    optional_subject_filter: Some(pb::SubjectFilter {
                        subject_type: "user".into(),
                        optional_subject_id: "alice".into(),
                        optional_relation: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .deleted_at
            .unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_check_at_least_as_fresh_as_a_revocation_sees_the_revoked_grant() {
    let config = ServiceConfig {
        max_staleness: Duration::from_secs(60),
        ..ServiceConfig::default()
    };
    let s = Arc::new(TestServer::with_store(Arc::new(MemoryStore::new()), config).await);
    s.write_schema(SCHEMA).await;

    let mut setup: Vec<String> = (0..DOCS).map(grant_text).collect();
    for doc in 0..DOCS {
        if let Path::Group = path(doc) {
            setup.push(format!("document:d{doc}#viewer@group:g{doc}#member"));
        }
    }
    let initial = s
        .touch(&setup.iter().map(String::as_str).collect::<Vec<_>>())
        .await;
    // Warm the minimize_latency cache at the initial revision: from now on it is stale.
    let mut perms = s.perms();
    perms
        .check_permission(pb::CheckPermissionRequest {
            resource: Some(obj("document", "d0")),
            permission: "view".into(),
            subject: Some(subject("user:alice")),
            ..Default::default()
        })
        .await
        .unwrap();

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
    let deadline = Instant::now() + RUN_FOR;

    let mut writers = Vec::new();
    for doc in 0..DOCS {
        let s = s.clone();
        let states = states.clone();
        writers.push(tokio::spawn(async move {
            let mut perms = s.perms();
            let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ (doc as u64 + 1));
            let mut cycles = 0u32;
            while Instant::now() < deadline {
                let z = revoke(&s, &mut perms, doc).await;
                {
                    let mut st = states[doc].lock();
                    st.history.push((revision(&z), false));
                    st.latest_revoke = Some(z);
                }
                // Leave the grant revoked for a moment so checkers can land in the gap.
                tokio::time::sleep(Duration::from_micros(rng.next() % 3000)).await;
                let z = s.touch(&[&grant_text(doc)]).await;
                states[doc].lock().history.push((revision(&z), true));
                tokio::time::sleep(Duration::from_micros(rng.next() % 1000)).await;
                cycles += 1;
            }
            cycles
        }));
    }

    let mut checkers = Vec::new();
    for c in 0..CHECKERS {
        let s = s.clone();
        let states = states.clone();
        checkers.push(tokio::spawn(async move {
            let mut perms = s.perms();
            let mut rng = XorShift(0xD1B5_4A32_D192_ED03 ^ (c as u64 + 7));
            let mut seen = Vec::new();
            while Instant::now() < deadline {
                let doc = (rng.next() % DOCS as u64) as usize;
                let Some(token) = states[doc].lock().latest_revoke.clone() else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let r = perms
                    .check_permission(pb::CheckPermissionRequest {
                        consistency: at_least(&token),
                        resource: Some(obj("document", &format!("d{doc}"))),
                        permission: "view".into(),
                        subject: Some(subject("user:alice")),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                seen.push(Observation {
                    doc,
                    requested: revision(&token),
                    checked_at: revision(r.checked_at.as_ref().unwrap()),
                    has: r.permissionship
                        == pb::check_permission_response::Permissionship::HasPermission as i32,
                });
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
    for o in &observations {
        assert!(
            o.checked_at >= o.requested,
            "document d{}: asked at least as fresh as revision {}, answered at {}",
            o.doc,
            o.requested,
            o.checked_at
        );
        let st = states[o.doc].lock();
        let truth = st
            .history
            .iter()
            .filter(|(rev, _)| *rev <= o.checked_at)
            .max_by_key(|(rev, _)| *rev)
            .map(|(_, granted)| *granted)
            .expect("the initial grant precedes every check");
        assert_eq!(
            o.has,
            truth,
            "document d{}: at revision {} the grant was {}, but the check answered {}",
            o.doc,
            o.checked_at,
            if truth { "present" } else { "revoked" },
            if o.has {
                "HAS_PERMISSION"
            } else {
                "NO_PERMISSION"
            }
        );
        if !truth {
            revoked_answers += 1;
        }
    }
    // The run must actually have exercised the interesting case.
    assert!(cycles >= 20, "only {cycles} revoke/grant cycles ran");
    assert!(
        observations.len() >= 100,
        "only {} checks ran",
        observations.len()
    );
    assert!(
        revoked_answers >= 10,
        "only {revoked_answers} checks landed while revoked"
    );
}
