//! PostgreSQL store benchmarks: synced write transactions, bulk import through COPY, point
//! reads through a snapshot reader. Needs a migrated, empty database:
//!
//! ```sh
//! tessera datastore migrate --datastore-engine postgres --datastore-conn-uri "$URI"
//! TESSERA_BENCH_PG_URI="$URI" cargo bench --bench postgres -- --quick
//! ```
//!
//! Without `TESSERA_BENCH_PG_URI` it measures nothing (the suite must not need a server).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tessera::model::{ObjectRef, Relationship, RelationshipFilter, SubjectRef};
use tessera::store::postgres::{PostgresOptions, PostgresStore};
use tessera::store::{RelationshipUpdate, Store, WriteOp, WriteTransaction};

const DOCS: u64 = 10_000;
const VIEWERS_PER_DOC: u64 = 10;
const USERS: u64 = 10_000;
const BATCH: u64 = 10_000;

fn viewer(doc: u64, user: u64) -> Relationship {
    Relationship::new(
        ObjectRef::new("document", format!("doc{doc}")),
        "viewer",
        SubjectRef::new("user", &format!("user{user}"), None),
    )
}

fn dataset_batch(batch: u64) -> Vec<Relationship> {
    let docs_per_batch = BATCH / VIEWERS_PER_DOC;
    (batch * docs_per_batch..(batch + 1) * docs_per_batch)
        .flat_map(|d| (0..VIEWERS_PER_DOC).map(move |v| viewer(d, (d * 7 + v * 1009) % USERS)))
        .collect()
}

fn all(c: &mut Criterion) {
    let Ok(uri) = std::env::var("TESSERA_BENCH_PG_URI") else {
        eprintln!("TESSERA_BENCH_PG_URI is not set: no PostgreSQL benchmarks");
        return;
    };
    let store = PostgresStore::open(PostgresOptions::new(uri)).expect("open");

    // The dataset reads use: 100k relationships in 10 imports of 10k.
    let batches = DOCS * VIEWERS_PER_DOC / BATCH;
    let start = Instant::now();
    for b in 0..batches {
        store.bulk_import(dataset_batch(b), None).expect("import");
    }
    let took = start.elapsed();
    eprintln!(
        "imported {} relationships in {took:.2?} = {:.0} relationships/s ({batches} batches of {BATCH})",
        batches * BATCH,
        (batches * BATCH) as f64 / took.as_secs_f64()
    );

    let counter = AtomicU64::new(0);
    let mut g = c.benchmark_group("postgres/write");
    g.bench_function("transaction_1_touch", |b| {
        b.iter(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            store
                .write(WriteTransaction {
                    updates: vec![RelationshipUpdate {
                        op: WriteOp::Touch,
                        relationship: viewer(1_000_000 + n, n % USERS),
                    }],
                    ..Default::default()
                })
                .expect("write")
        })
    });
    g.bench_function("transaction_10_creates", |b| {
        b.iter(|| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            store
                .write(WriteTransaction {
                    updates: (0..10)
                        .map(|i| RelationshipUpdate {
                            op: WriteOp::Create,
                            relationship: viewer(2_000_000 + n, i),
                        })
                        .collect(),
                    ..Default::default()
                })
                .expect("write")
        })
    });
    g.finish();

    let next_batch = AtomicU64::new(10_000);
    let mut g = c.benchmark_group("postgres/bulk_import");
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

    let head = store.head_revision().expect("head");
    let snap = store.snapshot(head).expect("snapshot");
    let mut g = c.benchmark_group("postgres/read");
    let mut n = 0u64;
    g.bench_function("reader_point_present", |b| {
        let mut reader = snap.reader();
        b.iter(|| {
            n = (n + 7919) % DOCS;
            let rel = viewer(n, (n * 7) % USERS);
            let rows = reader
                .read(&RelationshipFilter::exact(&rel.key()))
                .expect("read");
            assert_eq!(rows.len(), 1);
        })
    });
    g.bench_function("reader_resource_10_viewers", |b| {
        let mut reader = snap.reader();
        b.iter(|| {
            n = (n + 7919) % DOCS;
            let f = RelationshipFilter {
                resource_type: Some("document".into()),
                resource_id: Some(format!("doc{n}")),
                relation: Some("viewer".into()),
                ..Default::default()
            };
            assert_eq!(
                reader.read(&f).expect("read").len(),
                VIEWERS_PER_DOC as usize
            );
        })
    });
    g.bench_function("snapshot_and_head", |b| {
        b.iter(|| {
            let head = store.head_revision().expect("head");
            store.snapshot(head).expect("snapshot")
        })
    });
    g.finish();
}

criterion_group!(benches, all);
criterion_main!(benches);
