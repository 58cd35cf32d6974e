//! The RocksDB store: the shared conformance suite, plus what only a durable, garbage-collected
//! store has (reopen, GC window, format version, concurrency under real I/O).

use std::sync::Arc;
use std::time::Duration;

use tessera::consistency::{Consistency, SnapshotChooser};
use tessera::model::{
    Relationship, RelationshipFilter, RelationshipKey, Revision, SubjectFilter, Timestamp,
    parse_relationship,
};
use tessera::store::rocks::{ManualClock, RocksOptions, RocksStore};
use tessera::store::{
    BulkImport, ChangeSet, DeleteByFilter, DeleteOutcome, Precondition, PreconditionKind,
    RelationshipUpdate, SchemaCheck, Snapshot, Store, StoreError, WriteOp, WriteTransaction,
};

/// A store in its own temporary directory, removed when the store is dropped.
struct TempRocks {
    store: RocksStore,
    _dir: tempfile::TempDir,
}

impl TempRocks {
    fn new() -> TempRocks {
        TempRocks::with_options(test_options())
    }

    fn with_options(options: RocksOptions) -> TempRocks {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = RocksStore::open(dir.path(), options).expect("open store");
        TempRocks { store, _dir: dir }
    }
}

fn test_options() -> RocksOptions {
    RocksOptions {
        gc_interval: None,
        block_cache_bytes: 8 << 20,
        write_buffer_bytes: 4 << 20,
        ..RocksOptions::default()
    }
}

impl Store for TempRocks {
    fn head_revision(&self) -> Result<Revision, StoreError> {
        self.store.head_revision()
    }
    fn oldest_readable_revision(&self) -> Result<Revision, StoreError> {
        self.store.oldest_readable_revision()
    }
    fn snapshot(&self, revision: Revision) -> Result<Arc<dyn Snapshot>, StoreError> {
        self.store.snapshot(revision)
    }
    fn write(&self, txn: WriteTransaction) -> Result<Revision, StoreError> {
        self.store.write(txn)
    }
    fn delete_by_filter(&self, request: DeleteByFilter) -> Result<DeleteOutcome, StoreError> {
        self.store.delete_by_filter(request)
    }
    fn write_schema(
        &self,
        text: &str,
        check: SchemaCheck<'_>,
        caller: Option<String>,
    ) -> Result<Revision, StoreError> {
        self.store.write_schema(text, check, caller)
    }
    fn import(&self, request: BulkImport) -> Result<Revision, StoreError> {
        self.store.import(request)
    }
    fn read_changes(&self, after: Revision, limit: usize) -> Result<Vec<ChangeSet>, StoreError> {
        self.store.read_changes(after, limit)
    }
}

tessera::store_conformance_tests!(|| -> Box<dyn Store> { Box::new(TempRocks::new()) });

// ---------------------------------------------------------------------------------------

fn rel(text: &str) -> Relationship {
    parse_relationship(text).expect("test relationship")
}

fn txn(ops: &[(WriteOp, &str)]) -> WriteTransaction {
    WriteTransaction {
        updates: ops
            .iter()
            .map(|(op, t)| RelationshipUpdate {
                op: *op,
                relationship: rel(t),
            })
            .collect(),
        preconditions: Vec::new(),
        caller: None,
        metadata: Default::default(),
        schema_revision: None,
    }
}

fn all(snapshot: &dyn Snapshot) -> Vec<String> {
    snapshot
        .query(&RelationshipFilter::default(), None)
        .expect("query")
        .map(|r| r.expect("row").to_string())
        .collect()
}

fn at(store: &dyn Store, rev: Revision) -> Vec<String> {
    all(&*store.snapshot(rev).expect("snapshot"))
}

fn t0() -> Timestamp {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("valid time")
}

fn no_check() -> impl FnMut(&dyn Snapshot) -> Result<(), StoreError> {
    |_| Ok(())
}

#[test]
fn reopen_restores_head_data_schema_and_change_log() {
    let dir = tempfile::tempdir().unwrap();
    let (r1, r2, r3);
    {
        let s = RocksStore::open(dir.path(), test_options()).unwrap();
        r1 = s
            .write(txn(&[(
                WriteOp::Create,
                "doc:a#viewer@user:x[cav:{\"k\":1}]",
            )]))
            .unwrap();
        r2 = s
            .write_schema("definition user {}", &mut no_check(), Some("admin".into()))
            .unwrap();
        r3 = s
            .write(txn(&[
                (WriteOp::Delete, "doc:a#viewer@user:x"),
                (WriteOp::Touch, "doc:b#viewer@user:y"),
            ]))
            .unwrap();
    }
    let s = RocksStore::open(dir.path(), test_options()).unwrap();
    assert_eq!(s.head_revision().unwrap(), r3);
    assert_eq!(at(&s, r1), vec!["doc:a#viewer@user:x[cav:{\"k\":1}]"]);
    assert_eq!(at(&s, r3), vec!["doc:b#viewer@user:y"]);
    let schema = s.snapshot(r3).unwrap().schema().unwrap().unwrap();
    assert_eq!(
        (&*schema.text, schema.written_at),
        ("definition user {}", r2)
    );
    assert_eq!(s.snapshot(r1).unwrap().schema().unwrap(), None);
    let changes = s.read_changes(Revision::ZERO, 10).unwrap();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[1].caller.as_deref(), Some("admin"));
    assert!(changes[1].schema_changed);
    // Writes continue at the next revision, and commit times never go backwards.
    let r4 = s
        .write(txn(&[(WriteOp::Create, "doc:c#viewer@user:z")]))
        .unwrap();
    assert_eq!(r4, r3.next());
    let changes = s.read_changes(r3, 10).unwrap();
    assert!(changes[0].committed_at >= s.read_changes(r2, 1).unwrap()[0].committed_at);
}

#[test]
fn opening_a_locked_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let _first = RocksStore::open(dir.path(), test_options()).unwrap();
    let err = RocksStore::open(dir.path(), test_options()).unwrap_err();
    assert!(
        matches!(err, StoreError::Backend(ref m) if m.contains("cannot open store")),
        "{err}"
    );
}

fn gc_store(window_secs: u64) -> (TempRocks, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(t0()));
    let store = TempRocks::with_options(RocksOptions {
        gc_window: Duration::from_secs(window_secs),
        clock: clock.clone(),
        ..test_options()
    });
    (store, clock)
}

#[test]
fn gc_keeps_the_window_and_removes_what_fell_out_of_it() {
    let (s, clock) = gc_store(60);
    let r1 = s
        .write(txn(&[
            (WriteOp::Create, "doc:a#viewer@user:x"),
            (WriteOp::Create, "doc:b#viewer@user:x"),
        ]))
        .unwrap();
    clock.advance(chrono::Duration::seconds(10));
    let r2 = s
        .write(txn(&[
            (WriteOp::Touch, "doc:a#viewer@user:x[cav]"),
            (WriteOp::Delete, "doc:b#viewer@user:x"),
        ]))
        .unwrap();
    clock.advance(chrono::Duration::seconds(10));
    let r3 = s
        .write(txn(&[(WriteOp::Create, "doc:c#viewer@user:x")]))
        .unwrap();

    // Nothing is older than the window yet.
    let stats = s.store.collect_garbage().unwrap();
    assert_eq!(stats.oldest_readable, Revision::ZERO);
    assert_eq!(stats.versions_removed, 0);
    assert_eq!(
        at(&s, r1),
        vec!["doc:a#viewer@user:x", "doc:b#viewer@user:x"]
    );

    // r1 and r2 fall out of the window; r2 stays readable (the newest revision before the edge).
    clock.advance(chrono::Duration::seconds(55));
    let stats = s.store.collect_garbage().unwrap();
    assert_eq!(stats.oldest_readable, r2);
    assert_eq!(s.oldest_readable_revision().unwrap(), r2);
    // doc:a's first version and doc:b's version and tombstone.
    assert_eq!(stats.versions_removed, 3);
    assert_eq!(stats.change_sets_removed, 2);
    assert_eq!(
        s.snapshot(r1).err(),
        Some(StoreError::RevisionTooOld {
            requested: r1,
            oldest: r2
        })
    );
    assert_eq!(at(&s, r2), vec!["doc:a#viewer@user:x[cav]"]);
    assert_eq!(
        at(&s, r3),
        vec!["doc:a#viewer@user:x[cav]", "doc:c#viewer@user:x"]
    );
    let reverse: Vec<String> = s
        .snapshot(r3)
        .unwrap()
        .reverse_query(
            &SubjectFilter {
                subject_type: "user".into(),
                subject_id: Some("x".into()),
                ..Default::default()
            },
            None,
            None,
        )
        .unwrap()
        .map(|r| r.unwrap().to_string())
        .collect();
    assert_eq!(reverse.len(), 2);
    assert!(matches!(
        s.read_changes(r1, 10),
        Err(StoreError::RevisionTooOld { .. })
    ));
    assert_eq!(s.read_changes(r2, 10).unwrap().len(), 1);

    // The edge survives a reopen.
    let dir = s._dir;
    drop(s.store);
    let reopened = RocksStore::open(dir.path(), test_options()).unwrap();
    assert_eq!(reopened.oldest_readable_revision().unwrap(), r2);
    assert!(matches!(
        reopened.snapshot(r1),
        Err(StoreError::RevisionTooOld { .. })
    ));
    assert_eq!(at(&reopened, r3).len(), 2);
}

#[test]
fn gc_never_moves_past_the_head() {
    let (s, clock) = gc_store(1);
    let r1 = s
        .write(txn(&[(WriteOp::Touch, "doc:a#viewer@user:x")]))
        .unwrap();
    let r2 = s
        .write(txn(&[(WriteOp::Delete, "doc:a#viewer@user:x")]))
        .unwrap();
    clock.advance(chrono::Duration::days(3));
    let stats = s.store.collect_garbage().unwrap();
    assert_eq!(stats.oldest_readable, r2);
    assert!(at(&s, r2).is_empty());
    assert!(s.snapshot(r1).is_err());
    // A second pass has nothing left to do.
    let again = s.store.collect_garbage().unwrap();
    assert_eq!((again.versions_removed, again.change_sets_removed), (0, 0));
    // Writes go on normally after GC removed the tombstone.
    let r3 = s
        .write(txn(&[(WriteOp::Create, "doc:a#viewer@user:x")]))
        .unwrap();
    assert_eq!(at(&s, r3), vec!["doc:a#viewer@user:x"]);
}

#[test]
fn gc_removes_expired_relationships_once_past_the_window() {
    let (s, clock) = gc_store(60);
    let exp =
        (t0() + chrono::Duration::seconds(30)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let expiring = format!("doc:a#viewer@user:x[expiration:{exp}]");
    let r1 = s
        .write(txn(&[
            (WriteOp::Create, &expiring),
            (WriteOp::Create, "doc:b#viewer@user:x"),
        ]))
        .unwrap();
    assert_eq!(at(&s, r1).len(), 2);
    clock.advance(chrono::Duration::seconds(31));
    // Expired: invisible at once, but kept until the expiry is older than the window.
    assert_eq!(at(&s, r1), vec!["doc:b#viewer@user:x"]);
    let r2 = s
        .write(txn(&[(WriteOp::Touch, "doc:c#viewer@user:x")]))
        .unwrap();
    let stats = s.store.collect_garbage().unwrap();
    assert_eq!(stats.versions_removed, 0);
    clock.advance(chrono::Duration::seconds(120));
    let stats = s.store.collect_garbage().unwrap();
    assert_eq!(stats.oldest_readable, r2);
    assert_eq!(stats.versions_removed, 1, "the expired relationship");
    // A snapshot taken as if before the expiry no longer finds it: it is really gone.
    let filter = RelationshipFilter::exact(&rel("doc:a#viewer@user:x").key());
    let snap = s.snapshot(r2).unwrap();
    assert_eq!(snap.query(&filter, None).unwrap().count(), 0);
    // And creating it again works.
    s.write(txn(&[(WriteOp::Create, "doc:a#viewer@user:x")]))
        .unwrap();
}

#[test]
fn gc_drops_replaced_schema_versions() {
    let (s, clock) = gc_store(10);
    let r1 = s
        .write_schema("definition a {}", &mut no_check(), None)
        .unwrap();
    let r2 = s
        .write_schema("definition b {}", &mut no_check(), None)
        .unwrap();
    clock.advance(chrono::Duration::seconds(5));
    let r3 = s
        .write_schema("definition c {}", &mut no_check(), None)
        .unwrap();
    clock.advance(chrono::Duration::seconds(7));
    let stats = s.store.collect_garbage().unwrap();
    assert_eq!(stats.oldest_readable, r2);
    assert_eq!(stats.schemas_removed, 1);
    assert!(s.snapshot(r1).is_err());
    assert_eq!(
        s.snapshot(r2)
            .unwrap()
            .schema()
            .unwrap()
            .unwrap()
            .text
            .as_ref(),
        "definition b {}"
    );
    assert_eq!(
        s.snapshot(r3)
            .unwrap()
            .schema()
            .unwrap()
            .unwrap()
            .text
            .as_ref(),
        "definition c {}"
    );
}

#[test]
fn a_held_snapshot_fails_loudly_once_gc_passes_it() {
    let (s, clock) = gc_store(1);
    let r1 = s
        .write(txn(&[(WriteOp::Touch, "doc:a#viewer@user:x")]))
        .unwrap();
    let snap = s.snapshot(r1).unwrap();
    s.write(txn(&[(WriteOp::Delete, "doc:a#viewer@user:x")]))
        .unwrap();
    clock.advance(chrono::Duration::seconds(5));
    s.store.collect_garbage().unwrap();
    // Never silently wrong: the snapshot's data may be gone, so it refuses to read.
    assert!(matches!(
        snap.query(&RelationshipFilter::default(), None),
        Err(StoreError::RevisionTooOld { .. })
    ));
}

#[test]
fn background_gc_runs_on_its_interval() {
    let clock = Arc::new(ManualClock::new(t0()));
    let s = TempRocks::with_options(RocksOptions {
        gc_window: Duration::from_secs(1),
        gc_interval: Some(Duration::from_millis(20)),
        clock: clock.clone(),
        ..test_options()
    });
    s.write(txn(&[(WriteOp::Touch, "doc:a#viewer@user:x")]))
        .unwrap();
    let r2 = s
        .write(txn(&[(WriteOp::Touch, "doc:a#viewer@user:y")]))
        .unwrap();
    clock.advance(chrono::Duration::seconds(10));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.oldest_readable_revision().unwrap() != r2 {
        assert!(
            std::time::Instant::now() < deadline,
            "background GC did not run"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn snapshots_read_history_while_writers_race() {
    let s = Arc::new(TempRocks::new());
    let mut expected = Vec::new();
    for i in 0..30 {
        let r = s
            .write(txn(&[(
                WriteOp::Touch,
                &format!("doc:d{i}#viewer@user:u{i}"),
            )]))
            .unwrap();
        expected.push((r, i + 1));
    }
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..30 {
                s.write(txn(&[(
                    WriteOp::Delete,
                    &format!("doc:d{i}#viewer@user:u{i}"),
                )]))
                .unwrap();
            }
        })
    };
    for _ in 0..5 {
        for (r, n) in &expected {
            assert_eq!(at(&*s, *r).len(), *n);
        }
    }
    writer.join().unwrap();
    assert!(at(&*s, s.head_revision().unwrap()).is_empty());
}

#[test]
fn new_enemy_revocation_is_never_missed_with_at_least_as_fresh() {
    let s = Arc::new(TempRocks::new());
    let chooser = Arc::new(SnapshotChooser::new(Duration::from_secs(60)));
    let grant = "doc:secret#viewer@user:enemy";
    let filter = RelationshipFilter::exact(&rel(grant).key());
    for round in 0..20 {
        s.write(txn(&[(WriteOp::Touch, grant)])).unwrap();
        // Warm the shared cache with the state that still has the grant.
        let _ = chooser.revision(&*s, Consistency::MinimizeLatency).unwrap();
        let s2 = s.clone();
        let revoke =
            std::thread::spawn(move || s2.write(txn(&[(WriteOp::Delete, grant)])).unwrap());
        let z = revoke.join().unwrap();
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (s, chooser, filter) = (s.clone(), chooser.clone(), filter.clone());
                std::thread::spawn(move || {
                    let snap = chooser
                        .snapshot(&*s, Consistency::AtLeastAsFresh(z))
                        .unwrap();
                    assert!(snap.revision() >= z);
                    snap.query(&filter, None).unwrap().count()
                })
            })
            .collect();
        for r in readers {
            assert_eq!(r.join().unwrap(), 0, "round {round}: revoked grant visible");
        }
    }
}

#[test]
fn bulk_import_chunks_large_change_sets() {
    let s = TempRocks::new();
    let rels: Vec<Relationship> = (0..5000)
        .map(|i| rel(&format!("doc:d{i}#viewer@user:u{}", i % 7)))
        .collect();
    let r = s.bulk_import(rels, Some("importer".into())).unwrap();
    let changes = s.read_changes(Revision::ZERO, 10).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].revision, r);
    assert_eq!(changes[0].changes.len(), 5000);
    assert!(changes[0].changes.iter().all(|c| c.op == WriteOp::Create));
    assert_eq!(at(&s, r).len(), 5000);
    // The reverse index sees them all too.
    let by_subject = s
        .snapshot(r)
        .unwrap()
        .reverse_query(
            &SubjectFilter {
                subject_type: "user".into(),
                subject_id: Some("u3".into()),
                ..Default::default()
            },
            Some("doc"),
            Some("viewer"),
        )
        .unwrap()
        .count();
    assert_eq!(by_subject, (0..5000).filter(|i| i % 7 == 3).count());
    // A batch with one existing relationship fails whole.
    let again = vec![rel("doc:new#viewer@user:x"), rel("doc:d42#viewer@user:u0")];
    assert!(matches!(
        s.bulk_import(again, None),
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(s.head_revision().unwrap(), r);
}

#[test]
fn many_versions_of_one_relationship_read_correctly_at_every_revision() {
    let s = TempRocks::new();
    let mut revs = Vec::new();
    for i in 0..40 {
        let text = if i % 3 == 2 {
            s.write(txn(&[(WriteOp::Delete, "doc:a#viewer@user:x")]))
                .unwrap();
            None
        } else {
            let t = format!("doc:a#viewer@user:x[c{i}]");
            s.write(txn(&[
                (WriteOp::Touch, &t),
                (WriteOp::Touch, &format!("doc:b{i}#viewer@user:x")),
            ]))
            .unwrap();
            Some(t)
        };
        revs.push((s.head_revision().unwrap(), text));
    }
    let filter = RelationshipFilter {
        resource_type: Some("doc".into()),
        resource_id: Some("a".into()),
        ..Default::default()
    };
    for (r, text) in &revs {
        let got: Vec<String> = s
            .snapshot(*r)
            .unwrap()
            .query(&filter, None)
            .unwrap()
            .map(|x| x.unwrap().to_string())
            .collect();
        assert_eq!(got, text.iter().cloned().collect::<Vec<_>>(), "at {r}");
    }
    // A scan over many identities with deep histories stays in order and complete.
    let head = s.head_revision().unwrap();
    let rows = at(&s, head);
    let mut sorted = rows.clone();
    sorted.sort_by_key(|t| rel(t).key());
    assert_eq!(rows, sorted);
    assert_eq!(rows.len(), 28);
}

#[test]
fn precondition_and_create_races_serialize() {
    let s = Arc::new(TempRocks::new());
    let lock = RelationshipFilter::exact(&rel("lock:l#holder@user:any").key());
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (s, lock) = (s.clone(), lock.clone());
            std::thread::spawn(move || {
                let mut t = txn(&[
                    (WriteOp::Touch, "lock:l#holder@user:any"),
                    (WriteOp::Touch, &format!("log:w#writer@user:w{i}")),
                ]);
                t.preconditions.push(Precondition {
                    kind: PreconditionKind::MustNotMatch,
                    filter: lock,
                });
                s.write(t).is_ok()
            })
        })
        .collect();
    let winners = handles
        .into_iter()
        .filter_map(|h| h.join().ok())
        .filter(|ok| *ok)
        .count();
    assert_eq!(winners, 1);
    assert_eq!(s.head_revision().unwrap(), Revision(1));
}

#[test]
fn export_streams_everything_at_one_revision_with_a_cursor() {
    let s = TempRocks::new();
    let rels: Vec<Relationship> = (0..250)
        .map(|i| rel(&format!("doc:d{i:03}#viewer@user:u")))
        .collect();
    let r = s.bulk_import(rels, None).unwrap();
    s.write(txn(&[(WriteOp::Delete, "doc:d000#viewer@user:u")]))
        .unwrap();
    let snap = s.snapshot(r).unwrap();
    let mut cursor: Option<RelationshipKey> = None;
    let mut seen = 0;
    loop {
        let page: Vec<Relationship> = snap
            .query(&RelationshipFilter::default(), cursor.as_ref())
            .unwrap()
            .take(64)
            .map(|r| r.unwrap())
            .collect();
        if page.is_empty() {
            break;
        }
        seen += page.len();
        cursor = page.last().map(Relationship::key);
    }
    assert_eq!(seen, 250);
}
