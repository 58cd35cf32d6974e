//! Every integration test of Tessera, in one test binary: each module was its own binary once,
//! and linking RocksDB into 23 binaries dominated a fresh build of the suite. Modules are
//! independent; the `*_support` modules and `reference` are shared helpers.

// Test code may unwrap: a panic is a test failure with its location (clippy.toml allows it in
// `#[test]` functions; this extends it to the shared helpers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// Shared helpers (each used by several modules below).
mod api_support;
mod cli_support;
mod http_support;
mod pg_support;
mod reference;

mod access_remote;
mod api_error_reasons;
mod api_grpc;
mod api_schema_rpcs;
mod auth_access;
mod auth_jwt;
mod bench_cli;
mod caveat_check;
mod caveat_eval;
mod caveat_proptest;
mod cli_client;
mod cli_postgres;
mod cli_serve;
mod crash;
mod descriptors;
mod engine_carry;
mod engine_check;
mod engine_golden;
mod engine_lookup;
mod engine_props;
mod hostile;
mod http_api;
mod http_authzen;
mod leopard_props;
mod multi_node;
mod new_enemy;
mod parser_fuzz;
mod python_client;
mod schema_golden;
mod setup_script;
mod store_memory;
mod store_postgres;
mod store_rocks;
mod validate_cli;
mod validate_semantics;
