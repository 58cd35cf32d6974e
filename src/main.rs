//! The `tessera` command line: parses arguments and calls the library; nothing else.
//!
//! Each subcommand is one variant of [`Command`] with its own argument struct and one
//! `run_*` function returning the process exit code, so `serve`, `check` and the other client
//! subcommands slot in beside `validate` without touching the rest.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tessera::cli;

/// mimalloc instead of the system allocator: evaluation allocates many small, short-lived
/// strings and maps per request from several threads, where glibc's allocator spent up to
/// 40 % of a bulk check's time (BENCHMARKS.md, "The physical floor").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tessera: a Zanzibar-style relationship-based authorization engine.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check validation files (schema, relationships, assertions, expected relations)
    /// in-process; exits 0 when everything holds, 1 otherwise.
    Validate(ValidateArgs),
    /// Run the durable gRPC server (settings by flag, TESSERA_* environment variable or
    /// --config TOML file, in that order of precedence).
    Serve(Box<cli::config::ServeArgs>),
    /// Write or read the schema of a server.
    #[command(subcommand)]
    Schema(cli::schema::SchemaCommand),
    /// Check one permission; prints true, false or caveated. Exit code: 0 true, 1 false,
    /// 3 caveated (missing context), 2 usage error.
    Check(cli::check::CheckArgs),
    /// Create, touch, delete or read relationships.
    #[command(subcommand, visible_alias = "rel")]
    Relationship(cli::relationship::RelationshipCommand),
    /// Show a permission's userset tree, as text or Graphviz DOT.
    Expand(cli::expand::ExpandArgs),
    /// Bulk-import relationships from a file (text syntax or JSON lines), with progress.
    Import(cli::transfer::ImportArgs),
    /// Bulk-export relationships to a file or stdout, resumable, with progress.
    Export(cli::transfer::ExportArgs),
    /// Manage what JWT callers may do: on the running server (admin token), or offline in a
    /// stopped server's data directory with --data-dir.
    #[command(subcommand)]
    Access(cli::access::AccessCommand),
    /// Operate on the datastore: `migrate` creates or upgrades the PostgreSQL tables.
    #[command(subcommand)]
    Datastore(cli::datastore::DatastoreCommand),
    /// Load generator for any authzed.api.v1 server: load a synthetic dataset, run
    /// workloads, measure the noop floor and nesting depth, plot the results.
    #[command(subcommand)]
    Bench(cli::bench::BenchCommand),
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// Validation files in the `zed validate` YAML format.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

fn run_validate(args: &ValidateArgs) -> ExitCode {
    let options = tessera::validate::ValidateOptions::default();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = tessera::validate::run(&args.files, &options, &mut out).and_then(|ok| {
        out.flush()?;
        Ok(ok)
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: cannot write the report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    // Usage errors exit with status 2 (clap's convention).
    let cli = Cli::parse();
    match &cli.command {
        Command::Validate(args) => run_validate(args),
        Command::Serve(args) => cli::finish(cli::serve::run(args)),
        Command::Schema(command) => cli::finish(cli::schema::run(command)),
        Command::Check(args) => cli::finish(cli::check::run(args)),
        Command::Relationship(command) => cli::finish(cli::relationship::run(command)),
        Command::Expand(args) => cli::finish(cli::expand::run(args)),
        Command::Import(args) => cli::finish(cli::transfer::import(args)),
        Command::Export(args) => cli::finish(cli::transfer::export(args)),
        Command::Access(command) => cli::finish(cli::access::run(command)),
        Command::Bench(command) => cli::finish(cli::bench::run(command)),
        Command::Datastore(command) => cli::finish(cli::datastore::run(command)),
    }
}
