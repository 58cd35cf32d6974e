//! The in-memory store: the shared conformance suite plus clock-driven GC and expiry tests.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tessera::model::{Relationship, RelationshipFilter, Revision, Timestamp, parse_relationship};
use tessera::store::clock::Clock;
use tessera::store::memory::{MemoryOptions, MemoryStore};
use tessera::store::{RelationshipUpdate, Store, StoreError, WriteOp, WriteTransaction};

tessera::store_conformance_tests!(|| -> Box<dyn Store> { Box::new(MemoryStore::new()) });

/// A clock the test moves by hand.
#[derive(Clone)]
struct TestClock(Arc<Mutex<Timestamp>>);

impl TestClock {
    fn at(t: Timestamp) -> Self {
        TestClock(Arc::new(Mutex::new(t)))
    }
    fn now(&self) -> Timestamp {
        *self.0.lock()
    }
    fn set(&self, t: Timestamp) {
        *self.0.lock() = t;
    }
    fn advance(&self, d: chrono::Duration) -> Timestamp {
        let mut t = self.0.lock();
        *t += d;
        *t
    }
    fn clock(&self) -> Arc<dyn Clock> {
        let inner = Arc::clone(&self.0);
        Arc::new(move || *inner.lock())
    }
}

fn start() -> Timestamp {
    chrono::DateTime::parse_from_rfc3339("2030-06-01T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc)
}

fn hours(h: i64) -> chrono::Duration {
    chrono::Duration::hours(h)
}

fn minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

/// A store with a one-hour GC window and a hand-moved clock starting at `start()`.
fn clocked() -> (MemoryStore, TestClock) {
    let clock = TestClock::at(start());
    let store = MemoryStore::with_options(MemoryOptions {
        gc_window: Duration::from_secs(3600),
        clock: clock.clock(),
    });
    (store, clock)
}

fn rel(text: &str) -> Relationship {
    parse_relationship(text).unwrap()
}

fn write(store: &MemoryStore, ops: &[(WriteOp, &str)]) -> Revision {
    store
        .write(WriteTransaction {
            updates: ops
                .iter()
                .map(|(op, t)| RelationshipUpdate {
                    op: *op,
                    relationship: rel(t),
                })
                .collect(),
            ..Default::default()
        })
        .unwrap()
}

fn all_at(store: &MemoryStore, rev: Revision) -> Vec<String> {
    let s = store.snapshot(rev).unwrap();
    s.query(&RelationshipFilter::default(), None)
        .unwrap()
        .map(|r| r.unwrap().to_string())
        .collect()
}

#[test]
fn default_gc_window_is_one_day() {
    assert_eq!(
        MemoryStore::new().options().gc_window,
        Duration::from_secs(24 * 3600)
    );
}

#[test]
fn commit_times_come_from_the_clock_and_never_go_back() {
    let (store, clock) = clocked();
    write(&store, &[(WriteOp::Touch, "document:a#viewer@user:x")]);
    clock.advance(minutes(5));
    write(&store, &[(WriteOp::Touch, "document:b#viewer@user:x")]);
    clock.set(start() - hours(1));
    write(&store, &[(WriteOp::Touch, "document:c#viewer@user:x")]);
    let times: Vec<Timestamp> = store
        .read_changes(Revision::ZERO, 10)
        .unwrap()
        .iter()
        .map(|c| c.committed_at)
        .collect();
    assert_eq!(
        times,
        vec![start(), start() + minutes(5), start() + minutes(5)]
    );
}

#[test]
fn gc_makes_revisions_older_than_the_window_unreadable() {
    let (store, clock) = clocked();
    let r1 = write(&store, &[(WriteOp::Create, "document:a#viewer@user:x")]);
    clock.advance(hours(1));
    let r2 = write(&store, &[(WriteOp::Create, "document:b#viewer@user:x")]);
    clock.advance(hours(1));
    let r3 = write(&store, &[(WriteOp::Delete, "document:a#viewer@user:x")]);
    let now = clock.advance(minutes(30));

    // Cutoff = now - 1h = start + 1h30: r2 was current then, so it is the oldest readable.
    let report = store.collect_garbage(now);
    assert_eq!(report.oldest_readable, r2);
    assert_eq!(report.change_sets_removed, 2);
    assert_eq!(store.oldest_readable_revision().unwrap(), r2);
    assert_eq!(
        store.snapshot(r1).err(),
        Some(StoreError::RevisionTooOld {
            requested: r1,
            oldest: r2
        })
    );
    assert_eq!(
        all_at(&store, r2),
        vec!["document:a#viewer@user:x", "document:b#viewer@user:x"]
    );
    assert_eq!(all_at(&store, r3), vec!["document:b#viewer@user:x"]);

    // The change log keeps what follows the oldest readable revision.
    assert!(matches!(
        store.read_changes(r1, 10),
        Err(StoreError::RevisionTooOld { .. })
    ));
    let rest = store.read_changes(r2, 10).unwrap();
    assert_eq!(
        rest.iter().map(|c| c.revision).collect::<Vec<_>>(),
        vec![r3]
    );
}

#[test]
fn gc_drops_versions_no_readable_snapshot_can_see() {
    let (store, clock) = clocked();
    write(&store, &[(WriteOp::Create, "document:a#viewer@user:x[c1]")]);
    write(&store, &[(WriteOp::Touch, "document:a#viewer@user:x[c2]")]);
    write(&store, &[(WriteOp::Create, "document:b#viewer@user:x")]);
    let r4 = write(&store, &[(WriteOp::Delete, "document:b#viewer@user:x")]);
    let now = clock.advance(hours(2));
    let report = store.collect_garbage(now);
    // Everything was committed before the cutoff: the head is the oldest readable state.
    assert_eq!(report.oldest_readable, r4);
    // c1 (replaced at 2) and b (deleted at 4) are gone; the c2 version stays.
    assert_eq!(report.versions_removed, 2);
    assert_eq!(all_at(&store, r4), vec!["document:a#viewer@user:x[c2]"]);
    // A second pass finds nothing more.
    let again = store.collect_garbage(now);
    assert_eq!((again.versions_removed, again.change_sets_removed), (0, 0));
    // The store keeps working after GC.
    let r5 = write(&store, &[(WriteOp::Create, "document:b#viewer@user:x")]);
    assert_eq!(r5, r4.next());
    assert_eq!(all_at(&store, r5).len(), 2);
    let reverse = store.snapshot(r5).unwrap();
    let subject = tessera::model::SubjectFilter {
        subject_type: "user".into(),
        subject_id: Some("x".into()),
        relation: Default::default(),
    };
    assert_eq!(
        reverse.reverse_query(&subject, None, None).unwrap().count(),
        2
    );
}

#[test]
fn gc_inside_the_window_keeps_everything() {
    let (store, clock) = clocked();
    write(&store, &[(WriteOp::Create, "document:a#viewer@user:x")]);
    write(&store, &[(WriteOp::Delete, "document:a#viewer@user:x")]);
    let report = store.collect_garbage(clock.advance(minutes(30)));
    assert_eq!(report.oldest_readable, Revision::ZERO);
    assert_eq!(
        (report.versions_removed, report.change_sets_removed),
        (0, 0)
    );
    assert_eq!(
        all_at(&store, Revision(1)),
        vec!["document:a#viewer@user:x"]
    );
    assert_eq!(store.read_changes(Revision::ZERO, 10).unwrap().len(), 2);
}

#[test]
fn a_held_snapshot_overtaken_by_gc_fails_instead_of_reading_holes() {
    let (store, clock) = clocked();
    let r1 = write(&store, &[(WriteOp::Create, "document:a#viewer@user:x")]);
    let held = store.snapshot(r1).unwrap();
    let mut iter = held.query(&RelationshipFilter::default(), None).unwrap();
    clock.advance(hours(2));
    write(&store, &[(WriteOp::Delete, "document:a#viewer@user:x")]);
    store.collect_garbage(clock.advance(hours(2)));
    // The first batch was read before GC; later reads report the lost revision.
    assert_eq!(
        iter.next().unwrap().unwrap().to_string(),
        "document:a#viewer@user:x"
    );
    assert!(iter.next().is_none());
    assert!(matches!(
        held.query(&RelationshipFilter::default(), None).err(),
        Some(StoreError::RevisionTooOld { requested, .. }) if requested == r1
    ));
    assert!(matches!(
        held.schema(),
        Err(StoreError::RevisionTooOld { .. })
    ));
}

#[test]
fn expiry_is_judged_at_the_snapshots_own_now() {
    let (store, clock) = clocked();
    let rev = write(
        &store,
        &[(
            WriteOp::Create,
            "document:a#viewer@user:x[expiration:2030-06-01T12:10:00Z]",
        )],
    );
    let early = store.snapshot(rev).unwrap();
    assert_eq!(early.now(), clock.now());
    clock.advance(minutes(10));
    let late = store.snapshot(rev).unwrap();
    let count = |s: &Arc<dyn tessera::store::Snapshot>| {
        s.query(&RelationshipFilter::default(), None)
            .unwrap()
            .count()
    };
    assert_eq!(count(&early), 1, "taken before the expiry");
    assert_eq!(count(&late), 0, "taken at the expiry instant");
    // A CREATE at or after the expiry succeeds over the expired relationship.
    write(&store, &[(WriteOp::Create, "document:a#viewer@user:x")]);
}

#[test]
fn gc_drops_long_expired_relationships() {
    let (store, clock) = clocked();
    write(
        &store,
        &[
            (
                WriteOp::Create,
                "document:a#viewer@user:x[expiration:2030-06-01T12:10:00Z]",
            ),
            (
                WriteOp::Create,
                "document:b#viewer@user:x[expiration:2030-06-01T20:00:00Z]",
            ),
        ],
    );
    let early = store.snapshot(Revision(1)).unwrap();
    let now = clock.advance(hours(2));
    let report = store.collect_garbage(now);
    assert_eq!(
        report.versions_removed, 1,
        "only `a` expired before the cutoff"
    );
    assert_eq!(
        all_at(&store, Revision(1)),
        vec!["document:b#viewer@user:x[expiration:2030-06-01T20:00:00Z]"]
    );
    // The snapshot taken before `a` expired could have seen it: it is refused now.
    assert!(matches!(
        early.query(&RelationshipFilter::default(), None).err(),
        Some(StoreError::RevisionTooOld { .. })
    ));
}

#[test]
fn gc_keeps_the_schema_in_force_at_the_oldest_revision() {
    let (store, clock) = clocked();
    let s1 = store
        .write_schema("definition user {}", &mut |_| Ok(()), None)
        .unwrap();
    clock.advance(hours(1));
    let s2 = store
        .write_schema("definition member {}", &mut |_| Ok(()), None)
        .unwrap();
    clock.advance(hours(1));
    let r3 = write(&store, &[(WriteOp::Create, "document:a#viewer@user:x")]);
    clock.advance(hours(1));
    let r4 = write(&store, &[(WriteOp::Create, "document:b#viewer@user:x")]);

    // Cutoff = start + 1h30: s2 is the oldest readable revision; s1 is gone.
    let report = store.collect_garbage(start() + hours(2) + minutes(30));
    assert_eq!(report.oldest_readable, s2);
    assert!(store.snapshot(s1).is_err());
    for rev in [s2, r3] {
        let schema = store.snapshot(rev).unwrap().schema().unwrap().unwrap();
        assert_eq!(
            (&*schema.text, schema.written_at),
            ("definition member {}", s2)
        );
    }
    // Cutoff past everything: the head stays readable with its schema.
    store.collect_garbage(start() + hours(10));
    assert_eq!(store.oldest_readable_revision().unwrap(), r4);
    let schema = store.snapshot(r4).unwrap().schema().unwrap().unwrap();
    assert_eq!(schema.written_at, s2);
}

#[test]
fn background_collector_advances_the_oldest_revision() {
    let clock = TestClock::at(start());
    let store = Arc::new(MemoryStore::with_options(MemoryOptions {
        gc_window: Duration::from_secs(60),
        clock: clock.clock(),
    }));
    write(&store, &[(WriteOp::Create, "document:a#viewer@user:x")]);
    clock.advance(minutes(1));
    let r2 = write(&store, &[(WriteOp::Create, "document:b#viewer@user:x")]);
    clock.advance(minutes(10));
    let task = store
        .spawn_garbage_collector(Duration::from_millis(5))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.oldest_readable_revision().unwrap() != r2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the background GC never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(task);
    assert_eq!(all_at(&store, r2).len(), 2);
}

#[test]
fn background_collector_stops_when_the_store_is_dropped() {
    let store = Arc::new(MemoryStore::new());
    let task = store
        .spawn_garbage_collector(Duration::from_millis(1))
        .unwrap();
    assert!(task.is_running());
    drop(store);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while task.is_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the GC thread outlived its store"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
