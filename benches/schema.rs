//! Schema compile cost: the shipped example models and a generated large schema.
//!
//! Run: `cargo bench --bench schema`.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A schema with `n` document-like definitions, each with relations, nested permissions and
/// arrows to the previous definition, so the checker resolves cross-definition references.
fn generated_schema(n: usize) -> String {
    let mut s = String::from(
        "definition user {}\n\ndefinition group {\n    relation member: user | group#member\n}\n\n",
    );
    for i in 0..n {
        let parent = if i == 0 {
            "group".to_string()
        } else {
            format!("res{}", i - 1)
        };
        let parent_perm = if i == 0 { "member" } else { "view" };
        let _ = write!(
            s,
            "/** resource {i} */\ndefinition res{i} {{\n    relation parent: {parent}\n    relation owner: user\n    relation editor: user | group#member\n    relation viewer: user | group#member | user:*\n    relation banned: user\n    permission edit = owner + editor + parent->{parent_perm}\n    permission view = (edit + viewer) - banned\n}}\n\n"
        );
    }
    s
}

fn bench_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("schema_compile");
    let examples = std::fs::read_dir("schema-examples")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "zed"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for path in examples {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("example/{name}"), |b| {
            b.iter(|| tessera::schema::compile("bench.zed", black_box(&text)).is_ok())
        });
    }
    for n in [100, 1000] {
        let text = generated_schema(n);
        assert!(
            tessera::schema::compile("gen.zed", &text).is_ok(),
            "generated schema must compile"
        );
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("generated/{n}_definitions"), |b| {
            b.iter(|| tessera::schema::compile("gen.zed", black_box(&text)).is_ok())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_compile);
criterion_main!(benches);
