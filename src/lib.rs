//! Tessera: a Zanzibar-style relationship-based authorization engine.
//!
//! The library face: domain types ([`model`]), the schema compiler ([`schema`]), caveats
//! ([`caveat`]), stores ([`store`]), the evaluator ([`engine`]) and validation files
//! ([`validate`]). The `tessera` binary is a thin CLI over these.

pub mod api;
pub mod auth;
pub mod bench;
pub mod caveat;
pub mod cli;
pub mod consistency;
pub mod engine;
pub mod http;
pub mod model;
pub mod schema;
pub mod service;
pub mod store;
pub mod validate;
