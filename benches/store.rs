//! RocksDB store benchmarks: durable write latency, bulk import throughput, point reads,
//! snapshot scans and open time of a 1M-relationship store.
//!
//! Run (release): `cargo bench --bench store -- --quick`. Figures go to BENCHMARKS.md.
//! The 1M-relationship store is built once per run in a temporary directory (and its import
//! rate is printed, as it is the same measurement at scale).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tessera::model::{
    ObjectRef, Relationship, RelationshipFilter, Revision, SubjectFilter, SubjectRef,
};
use tessera::store::rocks::{RocksOptions, RocksStore, keys};
use tessera::store::{RelationshipUpdate, Store, WriteOp, WriteTransaction};

const DOCS: u64 = 100_000;
const VIEWERS_PER_DOC: u64 = 10;
const USERS: u64 = 10_000;
const BATCH: u64 = 10_000;

fn options() -> RocksOptions {
    RocksOptions {
        gc_interval: None,
        ..RocksOptions::default()
    }
}

fn viewer(doc: u64, user: u64) -> Relationship {
    Relationship::new(
        ObjectRef::new("document", format!("doc{doc}")),
        "viewer",
        SubjectRef::new("user", &format!("user{user}"), None),
    )
}

/// The 1M dataset: 100k documents with 10 viewers each, spread over 10k users.
fn dataset_batch(batch: u64) -> Vec<Relationship> {
    let docs_per_batch = BATCH / VIEWERS_PER_DOC;
    (batch * docs_per_batch..(batch + 1) * docs_per_batch)
        .flat_map(|d| (0..VIEWERS_PER_DOC).map(move |v| viewer(d, (d * 7 + v * 1009) % USERS)))
        .collect()
}

struct BigStore {
    dir: tempfile::TempDir,
}

fn build_big_store() -> BigStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RocksStore::open(dir.path(), options()).expect("open");
    let batches = DOCS * VIEWERS_PER_DOC / BATCH;
    let data: Vec<Vec<Relationship>> = (0..batches).map(dataset_batch).collect();
    let start = Instant::now();
    for batch in data {
        store.bulk_import(batch, None).expect("import");
    }
    let took = start.elapsed();
    let total = DOCS * VIEWERS_PER_DOC;
    eprintln!(
        "built 1M store: {total} relationships in {took:.2?} = {:.0} relationships/s ({batches} batches of {BATCH}, one synced write each)",
        total as f64 / took.as_secs_f64()
    );
    drop(store);
    BigStore { dir }
}

fn bench_writes(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = RocksStore::open(dir.path(), options()).expect("open");
    let counter = AtomicU64::new(0);
    let mut g = c.benchmark_group("store/write");
    g.bench_function("transaction_1_touch_synced", |b| {
        b.iter(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            store
                .write(WriteTransaction {
                    updates: vec![RelationshipUpdate {
                        op: WriteOp::Touch,
                        relationship: viewer(n, n % USERS),
                    }],
                    preconditions: Vec::new(),
                    caller: None,
                    metadata: Default::default(),
                    schema_revision: None,
                })
                .expect("write")
        })
    });
    g.bench_function("transaction_10_creates_synced", |b| {
        b.iter(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            store
                .write(WriteTransaction {
                    updates: (0..10)
                        .map(|i| RelationshipUpdate {
                            op: WriteOp::Create,
                            relationship: viewer(1_000_000 + n, i),
                        })
                        .collect(),
                    preconditions: Vec::new(),
                    caller: None,
                    metadata: Default::default(),
                    schema_revision: None,
                })
                .expect("write")
        })
    });
    g.finish();

    let dir = tempfile::tempdir().expect("temp dir");
    let store = RocksStore::open(dir.path(), options()).expect("open");
    let next_batch = AtomicU64::new(0);
    let mut g = c.benchmark_group("store/bulk_import");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    g.bench_function("batch_10k", |b| {
        b.iter_batched(
            || dataset_batch(next_batch.fetch_add(1, Ordering::Relaxed)),
            |batch| store.bulk_import(batch, None).expect("import"),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench_reads(c: &mut Criterion, big: &BigStore) {
    let store = RocksStore::open(big.dir.path(), options()).expect("open");
    let head = store.head_revision().expect("head");
    let snap = store.snapshot(head).expect("snapshot");
    let mut g = c.benchmark_group("store/read_1M");
    let mut n = 0u64;
    g.bench_function("point_present", |b| {
        b.iter(|| {
            n = (n + 7919) % DOCS;
            let rel = viewer(n, (n * 7) % USERS);
            let found = snap
                .query(&RelationshipFilter::exact(&rel.key()), None)
                .expect("query")
                .count();
            assert_eq!(found, 1);
        })
    });
    g.bench_function("point_absent", |b| {
        b.iter(|| {
            n = (n + 7919) % DOCS;
            let rel = viewer(n, USERS + 1);
            black_box(
                snap.query(&RelationshipFilter::exact(&rel.key()), None)
                    .expect("query")
                    .count(),
            )
        })
    });
    g.bench_function("resource_10_viewers", |b| {
        b.iter(|| {
            n = (n + 7919) % DOCS;
            let f = RelationshipFilter {
                resource_type: Some("document".into()),
                resource_id: Some(format!("doc{n}")),
                relation: Some("viewer".into()),
                ..Default::default()
            };
            let rows = snap.query(&f, None).expect("query").count();
            assert_eq!(rows, VIEWERS_PER_DOC as usize);
        })
    });
    g.bench_function("reverse_subject_100", |b| {
        b.iter(|| {
            n = (n + 31) % USERS;
            let s = SubjectFilter {
                subject_type: "user".into(),
                subject_id: Some(format!("user{n}")),
                ..Default::default()
            };
            black_box(
                snap.reverse_query(&s, Some("document"), Some("viewer"))
                    .expect("query")
                    .count(),
            )
        })
    });
    g.throughput(Throughput::Elements(10_000));
    g.sample_size(20);
    g.bench_function("scan_10k_rows", |b| {
        b.iter(|| {
            let rows = snap
                .query(&RelationshipFilter::default(), None)
                .expect("query")
                .take(10_000)
                .count();
            assert_eq!(rows, 10_000);
        })
    });
    g.finish();
    drop(snap);
    drop(store);

    let mut g = c.benchmark_group("store/open_1M");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("open_and_read_head", |b| {
        b.iter(|| {
            let s = RocksStore::open(big.dir.path(), options()).expect("open");
            let head: Revision = s.head_revision().expect("head");
            assert!(head.0 > 0);
        })
    });
    g.finish();
}

fn bench_keys(c: &mut Criterion) {
    let rel = viewer(123_456, 789);
    let key = rel.key();
    let mut g = c.benchmark_group("store/keys");
    g.bench_function("encode_forward", |b| {
        b.iter(|| keys::forward_identity(black_box(&key)))
    });
    let encoded = keys::version_seek_key(&keys::forward_identity(&key), Revision(42));
    g.bench_function("decode_forward", |b| {
        b.iter(|| keys::decode_forward_key(black_box(&encoded)).expect("decode"))
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    bench_keys(c);
    bench_writes(c);
    let big = build_big_store();
    bench_reads(c, &big);
}

criterion_group!(benches, all);
criterion_main!(benches);
