//! Engine benchmarks on a generated dataset: users, nested groups, a folder tree, documents.
//!
//! `cargo bench --bench engine`. Checks cover a direct grant, membership through four levels
//! of nested groups, and inheritance down a folder tree through `parent` arrows;
//! LookupResources lists a few thousand documents reachable through the folder tree.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera::engine::{EngineConfig, Evaluator, SchemaIndex};
use tessera::model::{Context, ObjectRef, Relationship, SubjectRef};
use tessera::store::memory::MemoryStore;
use tessera::store::{Snapshot, Store};

const SCHEMA: &str = r#"
definition user {}

definition group {
    relation member: user | group#member
}

definition folder {
    relation parent: folder
    relation owner: user
    relation viewer: user | group#member
    permission view = owner + viewer + parent->view
}

definition document {
    relation folder: folder
    relation owner: user
    relation viewer: user | user:* | group#member
    relation banned: user
    permission edit = owner
    permission view = (owner + viewer + folder->view) - banned
}
"#;

/// Fan-out of the folder tree and its depth: 6^4 = 1296 leaf folders.
const FOLDER_FANOUT: usize = 6;
const FOLDER_DEPTH: u32 = 4;
/// Documents per leaf folder: 1296 * 3 = 3888 documents.
const DOCS_PER_LEAF: usize = 3;
const USERS: usize = 2000;

struct Dataset {
    schema: Arc<tessera::schema::Schema>,
    index: SchemaIndex,
    snapshot: Arc<dyn Snapshot>,
}

fn rel(
    resource: (&str, &str),
    relation: &str,
    subject: (&str, &str, Option<&str>),
) -> Relationship {
    Relationship::new(
        ObjectRef::new(resource.0, resource.1),
        relation,
        SubjectRef::new(subject.0, subject.1, subject.2),
    )
}

fn dataset() -> Dataset {
    let schema = tessera::schema::compile("bench.zed", SCHEMA)
        .expect("bench schema compiles")
        .schema;
    let mut rels = Vec::new();

    // Nested groups: user:nested ∈ g3 ⊂ g2 ⊂ g1 ⊂ g0, plus noise members in each.
    for level in 0..4 {
        let g = format!("g{level}");
        if level < 3 {
            rels.push(rel(
                ("group", &g),
                "member",
                ("group", &format!("g{}", level + 1), Some("member")),
            ));
        }
        for u in 0..50 {
            rels.push(rel(
                ("group", &g),
                "member",
                ("user", &format!("u{}", level * 50 + u), None),
            ));
        }
    }
    rels.push(rel(("group", "g3"), "member", ("user", "nested", None)));

    // Folder tree; the root is viewable by g0, and `user:treeowner` owns the root.
    let mut frontier = vec!["root".to_string()];
    rels.push(rel(
        ("folder", "root"),
        "viewer",
        ("group", "g0", Some("member")),
    ));
    rels.push(rel(
        ("folder", "root"),
        "owner",
        ("user", "treeowner", None),
    ));
    for _ in 0..FOLDER_DEPTH {
        let mut next = Vec::new();
        for parent in &frontier {
            for i in 0..FOLDER_FANOUT {
                let child = format!("{parent}-{i}");
                rels.push(rel(("folder", &child), "parent", ("folder", parent, None)));
                next.push(child);
            }
        }
        frontier = next;
    }
    let mut doc = 0usize;
    for leaf in &frontier {
        for _ in 0..DOCS_PER_LEAF {
            let id = format!("doc{doc}");
            rels.push(rel(("document", &id), "folder", ("folder", leaf, None)));
            rels.push(rel(
                ("document", &id),
                "owner",
                ("user", &format!("u{}", doc % USERS), None),
            ));
            doc += 1;
        }
    }
    rels.push(rel(
        ("document", "doc0"),
        "viewer",
        ("user", "direct", None),
    ));

    let store = MemoryStore::new();
    store.bulk_import(rels, None).expect("import");
    let head = store.head_revision().expect("head");
    let snapshot = store.snapshot(head).expect("snapshot");
    let index = SchemaIndex::new(&schema);
    Dataset {
        schema,
        index,
        snapshot,
    }
}

fn bench_engine(c: &mut Criterion) {
    let data = dataset();
    let config = EngineConfig::default();
    let ev = Evaluator::with_index(&data.schema, &data.index, &*data.snapshot, &config);
    let ctx = Context::new();
    let doc0 = ObjectRef::new("document", "doc0");
    let deep_doc = ObjectRef::new("document", "doc3887");
    let direct = SubjectRef::new("user", "direct", None);
    let nested = SubjectRef::new("user", "nested", None);
    let owner = SubjectRef::new("user", "treeowner", None);
    let stranger = SubjectRef::new("user", "stranger", None);

    c.bench_function("check/direct", |b| {
        b.iter(|| {
            ev.check(black_box(&doc0), "view", black_box(&direct), &ctx)
                .expect("check")
        })
    });
    c.bench_function("check/direct_new_evaluator", |b| {
        b.iter(|| {
            let ev = Evaluator::new(&data.schema, &*data.snapshot, &config);
            ev.check(black_box(&doc0), "view", black_box(&direct), &ctx)
                .expect("check")
        })
    });
    c.bench_function("check/nested_groups_depth4", |b| {
        b.iter(|| {
            ev.check(black_box(&deep_doc), "view", black_box(&nested), &ctx)
                .expect("check")
        })
    });
    c.bench_function("check/folder_tree_owner", |b| {
        b.iter(|| {
            ev.check(black_box(&deep_doc), "view", black_box(&owner), &ctx)
                .expect("check")
        })
    });
    c.bench_function("check/denied", |b| {
        b.iter(|| {
            ev.check(black_box(&deep_doc), "view", black_box(&stranger), &ctx)
                .expect("check")
        })
    });

    let mut group = c.benchmark_group("lookup_resources");
    group.sample_size(20);
    group.bench_function("folder_tree_3888_docs", |b| {
        b.iter(|| {
            let found = ev
                .lookup_resources("document", "view", black_box(&owner), &ctx)
                .expect("lookup");
            assert_eq!(found.len(), 3888);
            found
        })
    });
    group.bench_function("nested_group_3888_docs", |b| {
        b.iter(|| {
            ev.lookup_resources("document", "view", black_box(&nested), &ctx)
                .expect("lookup")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
