//! The `tessera` subcommands besides `validate`: `serve` runs the durable gRPC server; the
//! client subcommands (`schema`, `check`, `relationship`, `expand`, `import`, `export`) talk
//! to a server over gRPC; `access` manages callers' capabilities through the server's admin
//! service (or, with `--data-dir`, offline in a stopped server's data directory); `datastore`
//! migrates the PostgreSQL datastore.
//!
//! Each subcommand has a clap argument struct (or subcommand enum) and a `run` function
//! returning the exit code; [`finish`] turns an error into a message on stderr.
//!
//! Output conventions: the primary result goes to stdout (a check's answer, a schema, the
//! zookie of a write, relationships); notes, progress bars and errors go to stderr.
//! Exit codes: 0 success (a check answered true), 1 failure (a check answered false),
//! 2 usage or configuration error, 3 a check whose answer depends on missing caveat context.

pub mod access;
pub mod bench;
pub mod check;
pub mod client;
pub mod config;
pub mod datastore;
mod error;
pub mod expand;
mod metrics;
pub mod relationship;
pub mod schema;
pub mod serve;
pub mod transfer;
mod wire;

pub use error::{CliError, EXIT_CAVEATED, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, finish};
