//! `tessera bench`: a load generator for any server speaking `authzed.api.v1` (Tessera,
//! SpiceDB, …), driven only through the public gRPC API.
//!
//! - [`dataset`]: the schema and a synthetic dataset generated from a seed (users, nested
//!   groups, a folder forest, documents, deep-nesting chains), reproducible forever thanks to
//!   the crate's own PRNG ([`prng`]); the model also knows the answer of every check it samples.
//! - [`load`]: writes the schema and dataset (`bench load`).
//! - [`workload`]: concurrent workers over a pool of HTTP/2 connections (`bench run`, `noop`,
//!   `depth`, `sweep`), with warm-up, a measurement window and optional answer verification.
//! - [`lookups`]: large lookups one at a time (`bench lookup`): whole stream, first result,
//!   page by page, and optionally the server's own handling time.
//! - [`mix`]: the operations and the `--mix` parser.
//! - [`report`]: exact latency percentiles, the JSON report and its text tables.
//! - [`plot`]: hand-written SVG charts of reports (`bench plot`).
//!
//! Like `cli/`, this module is a gRPC *client*: it names tonic and prost types, and nothing in
//! the server depends on it.
//!
//! # JSON report (`--json`, `--output`), schema version 1
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "tool": "tessera bench 0.1.0",
//!   "command": "run" | "noop" | "depth" | "sweep" | "lookup",
//!   "endpoint": "http://127.0.0.1:50051",
//!   "started_at": "2026-05-01T12:00:00Z",
//!   "machine": { "os": "linux", "arch": "x86_64", "cpus": 2,
//!                "load_average_before": [1.0, 0.8, 0.5] | null,
//!                "load_average_after": [..] | null },
//!   "runs": [ {                              // run, noop, lookup: 1; sweep: noop + mix per concurrency
//!       "workload": "mix" | "noop" | "lookup",
//!       "concurrency": 8, "connections": 4, "client_threads": 2,
//!       "consistency": "minimize_latency" | "full" | "at_least_as_fresh" | null,
//!       "mix": "check.direct=17.5000,…" | null,   // percent of requests per operation
//!       "dataset": { "version": 1, "seed": 42, "users": 10000, "groups": 1000,
//!                    "group_depth": 4, "folders": 5000, "folder_depth": 5,
//!                    "documents": 100000 } | null,
//!       "verify": false, "warmup_s": 2.0, "duration_s": 20.0,
//!       "client_cpu": { "seconds": 3.1, "percent_of_one_core": 15.5 } | null,
//!       "operations": [ OpStats, … ],          // then the "check" aggregate (several kinds)
//!       "total": OpStats } ],
//!   "depth": [ {                             // depth: 1; sweep: 1 unless --no-depth
//!       "concurrency": 1, "connections": 1, "consistency": "…", "verify": true,
//!       "warmup_s": 0.5, "duration_s": 3.0,  // per depth
//!       "client_cpu": {…} | null,
//!       "rows": [ { "depth": 1, "positive": OpStats, "negative": OpStats,
//!                   "lookup_resources": OpStats | null, "lookup_subjects": OpStats | null },
//!                 … ] } ]
//! }
//! OpStats = { "operation": "check.direct", "count": 1234, "qps": 61.7,
//!             "latency_ms": { "mean", "min", "p50", "p95", "p99", "max" } | null,
//!             "error_count": 0, "errors": { "UNAVAILABLE": 2, "WRONG_ANSWER": 1 },
//!             "items_mean": 12.5 | null, "aggregate": false }
//! ```
//!
//! Operation names: `check.direct`, `check.nested_group`, `check.folder_parent`,
//! `check.negative`, `check_bulk`, `lookup_resources`, `lookup_subjects`, `write`, `noop`;
//! aggregates `check` and `total`; `bench lookup` adds `lookup_resources.first` (the first
//! result), `lookup_resources.paged` (all pages of one paged lookup), `….server` (the server's
//! handling time, with `--metrics-url`) and `lookup_subjects.first`. Counts and rates are of *successful* requests that started
//! inside the measurement window; latencies are exact nearest-rank percentiles over every one
//! of them; `errors` are keyed by gRPC code name, `DEADLINE_EXCEEDED` for the client's own
//! timeout and `WRONG_ANSWER` for an answer `--verify` refuted. Fields are only ever added in
//! version 1; a change of meaning bumps `schema_version`.

pub mod dataset;
pub mod load;
pub mod lookups;
pub mod mix;
pub mod plot;
pub mod prng;
pub mod report;
pub mod workload;

/// Why a benchmark input was refused.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Dataset sizes the generator cannot honour.
    #[error("invalid dataset: {0}")]
    Dataset(String),
    /// A `--mix` that cannot be parsed.
    #[error("{0}")]
    Mix(String),
    /// A report file that cannot be read.
    #[error("cannot read report `{path}`: {reason}")]
    Report { path: String, reason: String },
    /// Nothing to plot, or a chart that cannot be written.
    #[error("{0}")]
    Plot(String),
}
