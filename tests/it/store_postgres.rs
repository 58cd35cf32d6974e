//! The PostgreSQL store against a private cluster: the shared conformance suite, plus what only
//! a shared, migrated, network-attached store has: several stores (nodes) on one database,
//! migrations, garbage collection with a moved clock, a read replica, bulk import through
//! COPY, and failing fast while the server is down (see also `multi_node` and `crash`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera::model::{Relationship, RelationshipFilter, Revision, parse_relationship};
use tessera::store::clock::ManualClock;
use tessera::store::postgres::{self, OpenError, PostgresOptions, PostgresStore};
use tessera::store::{RelationshipUpdate, Store, StoreError, WriteOp, WriteTransaction};

use crate::pg_support::{self, Cluster};

tessera::store_conformance_tests!(|| -> Box<dyn Store> { Box::new(pg_support::fresh_store()) });

fn rel(text: &str) -> Relationship {
    parse_relationship(text).unwrap()
}

fn touch(store: &dyn Store, texts: &[&str]) -> Revision {
    store
        .write(WriteTransaction {
            updates: texts
                .iter()
                .map(|t| RelationshipUpdate {
                    op: WriteOp::Touch,
                    relationship: rel(t),
                })
                .collect(),
            ..Default::default()
        })
        .unwrap()
}

fn all(store: &dyn Store, at: Revision) -> Vec<String> {
    store
        .snapshot(at)
        .unwrap()
        .query(&RelationshipFilter::default(), None)
        .unwrap()
        .map(|r| r.unwrap().to_string())
        .collect()
}

/// Two stores ("nodes") on one database: one revision sequence, each sees the other's writes,
/// schemas and head; a revision beyond the head is refused on both.
#[test]
fn nodes_on_one_database_share_revisions_data_and_schemas() {
    let c = pg_support::cluster();
    let uri = c.uri(&c.fresh_database());
    let a = PostgresStore::open(pg_support::options(&uri)).unwrap();
    let b = PostgresStore::open(pg_support::options(&uri)).unwrap();
    // Reads wait on the network: requests must never run them on an async worker.
    assert!(!a.local_reads());
    let r1 = touch(&a, &["doc:1#viewer@user:x"]);
    let r2 = touch(&b, &["doc:2#viewer@user:y"]);
    let r3 = a
        .write_schema("definition user {}", &mut |_| Ok(()), Some("admin".into()))
        .unwrap();
    assert_eq!((r1, r2, r3), (Revision(1), Revision(2), Revision(3)));
    // B's head is the database's, not a cached one.
    assert_eq!(b.head_revision().unwrap(), r3);
    assert_eq!(all(&b, r2), ["doc:1#viewer@user:x", "doc:2#viewer@user:y"]);
    assert_eq!(all(&a, r1), ["doc:1#viewer@user:x"]);
    let schema = b.snapshot(r3).unwrap().schema().unwrap().unwrap();
    assert_eq!(
        (&*schema.text, schema.written_at),
        ("definition user {}", r3)
    );
    assert_eq!(b.snapshot(r2).unwrap().schema().unwrap(), None);
    // A zookie from node A is honoured on node B even before B has heard of it.
    let r4 = touch(&a, &["doc:3#viewer@user:z"]);
    assert_eq!(all(&b, r4).len(), 3);
    for s in [&a, &b] {
        match s.snapshot(Revision(99)) {
            Err(StoreError::RevisionInFuture { requested, head }) => {
                assert_eq!((requested, head), (Revision(99), r4))
            }
            other => panic!("expected RevisionInFuture, got {:?}", other.map(|_| ())),
        }
    }
    // Change feeds on B carry A's transactions, in order, with their callers.
    let sets = b.read_changes(Revision::ZERO, 10).unwrap();
    let revisions: Vec<u64> = sets.iter().map(|s| s.revision.0).collect();
    assert_eq!(revisions, [1, 2, 3, 4]);
    assert_eq!(sets[2].caller.as_deref(), Some("admin"));
    assert!(sets[2].schema_changed);
}

/// Writers on several nodes at once: every revision is used exactly once, in commit order,
/// and each revision's change set is exactly that writer's transaction.
#[test]
fn concurrent_writers_on_several_nodes_get_dense_revisions() {
    let c = pg_support::cluster();
    let uri = c.uri(&c.fresh_database());
    let nodes: Vec<Arc<PostgresStore>> = (0..3)
        .map(|_| Arc::new(PostgresStore::open(pg_support::options(&uri)).unwrap()))
        .collect();
    let per_writer = 25;
    let threads: Vec<_> = (0..6)
        .map(|w| {
            let node = nodes[w % nodes.len()].clone();
            std::thread::spawn(move || {
                (0..per_writer)
                    .map(|i| {
                        let text = format!("doc:w{w}i{i}#viewer@user:u{w}");
                        (touch(&*node, &[&text]), text)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut written: Vec<(Revision, String)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    written.sort();
    let total = 6 * per_writer;
    let revisions: Vec<u64> = written.iter().map(|(r, _)| r.0).collect();
    assert_eq!(revisions, (1..=total as u64).collect::<Vec<_>>());
    let sets = nodes[1].read_changes(Revision::ZERO, total + 1).unwrap();
    assert_eq!(sets.len(), total);
    for (set, (rev, text)) in sets.iter().zip(&written) {
        assert_eq!(set.revision, *rev);
        assert_eq!(set.changes.len(), 1);
        assert_eq!(set.changes[0].relationship.to_string(), *text);
        assert!(set.changes[0].op == WriteOp::Touch);
    }
    assert!(
        sets.windows(2)
            .all(|w| w[0].committed_at <= w[1].committed_at),
        "commit times follow revisions"
    );
    // Every node's snapshot at revision r shows exactly the first r writes.
    for r in [1, total / 2, total] {
        for node in &nodes {
            assert_eq!(all(&**node, Revision(r as u64)).len(), r);
        }
    }
}

/// Migrations are idempotent, a database that was never migrated is refused with the command
/// that fixes it, and a database migrated by a newer Tessera is refused by both `open` and
/// `migrate` without being touched.
#[test]
fn migrations_are_idempotent_and_newer_databases_are_refused() {
    let c = pg_support::cluster();
    let db = c.empty_database();
    let uri = c.uri(&db);
    assert_eq!(postgres::database_version(&uri).unwrap(), None);
    match PostgresStore::open(pg_support::options(&uri)) {
        Err(e @ OpenError::NotMigrated { found: None, .. }) => {
            assert!(e.to_string().contains("tessera datastore migrate"), "{e}")
        }
        other => panic!("expected NotMigrated, got {:?}", other.map(|_| ())),
    }
    let first = postgres::migrate(&uri).unwrap();
    assert_eq!((first.from, first.to), (None, postgres::LATEST_VERSION));
    assert!(!first.applied.is_empty());
    let again = postgres::migrate(&uri).unwrap();
    assert_eq!(again.from, Some(postgres::LATEST_VERSION));
    assert!(
        again.applied.is_empty(),
        "a second migration applies nothing"
    );
    let store = PostgresStore::open(pg_support::options(&uri)).unwrap();
    touch(&store, &["doc:1#viewer@user:x"]);
    drop(store);

    let newer = postgres::LATEST_VERSION + 1;
    c.psql(
        &db,
        &format!(
            "INSERT INTO tessera_migrations (version, description) VALUES ({newer}, 'future')"
        ),
    )
    .unwrap();
    for err in [
        PostgresStore::open(pg_support::options(&uri))
            .map(|_| ())
            .unwrap_err(),
        postgres::migrate(&uri).map(|_| ()).unwrap_err(),
    ] {
        assert_eq!(
            err,
            OpenError::TooNew {
                found: newer,
                supported: postgres::LATEST_VERSION
            }
        );
        assert!(err.to_string().contains("newer Tessera"), "{err}");
    }
    // Untouched: the data is still there.
    assert_eq!(
        c.psql(&db, "SELECT count(*) FROM tessera_relationships")
            .unwrap(),
        "1"
    );
}

/// GC keeps the window, removes what fell out of it (superseded versions, change sets,
/// expired relationships), refuses reads below the new edge, and leaves reads above exact.
#[test]
fn gc_keeps_the_window_and_guards_older_reads() {
    let c = pg_support::cluster();
    let db = c.fresh_database();
    let t0 = chrono::DateTime::parse_from_rfc3339("2030-06-01T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let clock = Arc::new(ManualClock::new(t0));
    let store = PostgresStore::open(PostgresOptions {
        gc_window: Duration::from_secs(60),
        clock: clock.clone(),
        ..pg_support::options(&c.uri(&db))
    })
    .unwrap();
    let r1 = touch(&store, &["doc:a#viewer@user:x", "doc:b#viewer@user:x"]);
    let expiring = "doc:e#viewer@user:x[expiration:2030-06-01T12:00:05Z]";
    touch(&store, &[expiring]);
    clock.advance(chrono::Duration::seconds(10));
    let r3 = touch(&store, &["doc:a#viewer@user:x[c1]"]);
    let old = store.snapshot(r1).unwrap();
    clock.advance(chrono::Duration::seconds(10));
    let r4 = touch(&store, &["doc:c#viewer@user:y"]);
    // Nothing is old enough yet.
    let stats = store.collect_garbage().unwrap();
    assert_eq!(stats.oldest_readable, Revision::ZERO);
    clock.advance(chrono::Duration::seconds(55));
    let stats = store.collect_garbage().unwrap();
    // Now t0 + 75s: revisions committed at or before t0 + 15s (r1..r3) fall out; r4 stays.
    assert_eq!(stats.oldest_readable, r3);
    assert!(stats.versions_removed >= 1, "{stats:?}");
    assert_eq!(store.oldest_readable_revision().unwrap(), r3);
    assert!(matches!(
        store.snapshot(r1).map(|_| ()),
        Err(StoreError::RevisionTooOld { .. })
    ));
    // A snapshot taken before GC fails its next read instead of reading partial data.
    assert!(matches!(
        old.query(&RelationshipFilter::default(), None).map(|_| ()),
        Err(StoreError::RevisionTooOld { .. })
    ));
    assert!(matches!(
        store.read_changes(r1, 10),
        Err(StoreError::RevisionTooOld { .. })
    ));
    let after = store.read_changes(r3, 10).unwrap();
    assert_eq!(after.iter().map(|s| s.revision).collect::<Vec<_>>(), [r4]);
    assert_eq!(
        all(&store, r3),
        ["doc:a#viewer@user:x[c1]", "doc:b#viewer@user:x"]
    );
    assert_eq!(all(&store, r4).len(), 3);
    // The expired relationship's row is gone (it expired before the window).
    assert_eq!(
        c.psql(
            &db,
            "SELECT count(*) FROM tessera_relationships WHERE resource_id = 'e'"
        )
        .unwrap(),
        "0"
    );
}

/// Bulk imports large enough to go through binary COPY: every relationship at one revision,
/// recorded as CREATE, and all-or-nothing when one already exists.
#[test]
fn large_bulk_imports_use_copy_and_stay_atomic() {
    let store = pg_support::fresh_store();
    let batch = |from: usize, n: usize| -> Vec<Relationship> {
        (from..from + n)
            .map(|i| rel(&format!("doc:d{i}#viewer@user:u{}", i % 97)))
            .collect()
    };
    let r1 = store
        .bulk_import(batch(0, 3000), Some("importer".into()))
        .unwrap();
    let err = store.bulk_import(batch(2999, 3000), None).unwrap_err();
    assert_eq!(
        err,
        StoreError::AlreadyExists(rel("doc:d2999#viewer@user:u89").key())
    );
    assert_eq!(store.head_revision().unwrap(), r1);
    let r2 = store.bulk_import(batch(3000, 3000), None).unwrap();
    assert_eq!(all(&store, r2).len(), 6000);
    let sets = store.read_changes(Revision::ZERO, 10).unwrap();
    assert_eq!(sets[0].changes.len(), 3000);
    assert!(sets[0].changes.iter().all(|c| c.op == WriteOp::Create));
    assert_eq!(sets[0].caller.as_deref(), Some("importer"));
}

/// `minimize_latency` reads go to the replica only for revisions it has; otherwise (or when it
/// cannot be reached) to the primary. The "replica" here is another database whose content
/// differs, so the test can tell which one answered.
#[test]
fn replica_reads_only_revisions_the_replica_has() {
    let c = pg_support::cluster();
    let primary = c.uri(&c.fresh_database());
    let replica = c.uri(&c.fresh_database());
    {
        let r = PostgresStore::open(pg_support::options(&replica)).unwrap();
        touch(&r, &["doc:from-replica#viewer@user:x"]);
    }
    let store = PostgresStore::open(PostgresOptions {
        read_replica_conn_uri: Some(replica),
        ..pg_support::options(&primary)
    })
    .unwrap();
    let r1 = touch(&store, &["doc:from-primary#viewer@user:x"]);
    let r2 = touch(&store, &["doc:second#viewer@user:x"]);
    let read = |s: Arc<dyn tessera::store::Snapshot>| -> Vec<String> {
        s.query(&RelationshipFilter::default(), None)
            .unwrap()
            .map(|r| r.unwrap().to_string())
            .collect()
    };
    // The replica has revision 1 (its own data stands in for replayed WAL)...
    assert_eq!(
        read(store.replica_snapshot(r1).unwrap()),
        ["doc:from-replica#viewer@user:x"]
    );
    // ...but not revision 2: the primary answers.
    assert_eq!(read(store.replica_snapshot(r2).unwrap()).len(), 2);
    // Exact reads never use the replica.
    assert_eq!(
        read(store.snapshot(r1).unwrap()),
        ["doc:from-primary#viewer@user:x"]
    );
}

/// While the server is down, calls fail fast with `Unavailable` and a clear message (never
/// hang, never a generic backend error), the store reports itself unavailable, and it
/// recovers by itself once the server is back.
#[test]
fn a_restarting_database_fails_fast_and_recovers() {
    let c = Cluster::start().unwrap_or_else(|e| panic!("a private PostgreSQL cluster: {e}"));
    let db = c.fresh_database();
    let store = PostgresStore::open(pg_support::options(&c.uri(&db))).unwrap();
    let r1 = touch(&store, &["doc:1#viewer@user:x"]);
    assert!(store.availability().is_ok());

    c.stop();
    let started = Instant::now();
    for attempt in 0..3 {
        let outcomes = [
            store.head_revision().map(|_| ()),
            store.snapshot(Revision(500)).map(|_| ()),
            store
                .write(WriteTransaction {
                    updates: vec![RelationshipUpdate {
                        op: WriteOp::Touch,
                        relationship: rel("doc:2#viewer@user:x"),
                    }],
                    ..Default::default()
                })
                .map(|_| ()),
            store.read_changes(Revision::ZERO, 10).map(|_| ()),
            store
                .snapshot(r1)
                .and_then(|s| s.query(&RelationshipFilter::default(), None).map(|_| ())),
        ];
        for (i, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Err(StoreError::Unavailable(m)) => {
                    assert!(m.contains("PostgreSQL"), "attempt {attempt}, call {i}: {m}")
                }
                other => panic!("attempt {attempt}, call {i}: expected Unavailable, got {other:?}"),
            }
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "failing took {:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.availability().is_ok() {
        assert!(
            Instant::now() < deadline,
            "the probe never noticed the outage"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(matches!(
        store.availability(),
        Err(StoreError::Unavailable(_))
    ));

    c.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let r2 = loop {
        match store.write(WriteTransaction {
            updates: vec![RelationshipUpdate {
                op: WriteOp::Touch,
                relationship: rel("doc:2#viewer@user:x"),
            }],
            ..Default::default()
        }) {
            Ok(r) => break r,
            Err(StoreError::Unavailable(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("after the restart: {e}"),
        }
    };
    assert_eq!(
        r2,
        r1.next(),
        "no half-applied or lost transaction in between"
    );
    assert_eq!(all(&store, r2).len(), 2);
    while store.availability().is_err() {
        assert!(
            Instant::now() < deadline,
            "the probe never noticed the recovery"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
