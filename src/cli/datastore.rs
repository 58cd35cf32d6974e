//! `tessera datastore`: operations on the datastore itself, before or besides serving.
//!
//! `migrate` creates or upgrades the PostgreSQL datastore's tables. It is idempotent (a
//! database already at this build's version is left as it is) and refuses a database written
//! by a newer Tessera. `tessera serve --datastore-engine postgres` refuses to start on a
//! database that is not at exactly this build's version, so upgrades are explicit: stop or
//! drain the nodes, run `migrate` once, start the new build everywhere.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::store::postgres::{self, OpenError};

use super::config::{DatastoreEngine, datastore_from_file};
use super::error::{CliError, EXIT_OK};

#[derive(Debug, Subcommand)]
pub enum DatastoreCommand {
    /// Create or upgrade the datastore's tables (idempotent; refuses a newer database).
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The datastore to migrate; only `postgres` has anything to migrate.
    #[arg(
        long,
        env = "TESSERA_DATASTORE_ENGINE",
        value_enum,
        value_name = "ENGINE"
    )]
    pub datastore_engine: Option<DatastoreEngine>,

    /// PostgreSQL connection string (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`).
    #[arg(
        long,
        env = "TESSERA_DATASTORE_CONN_URI",
        hide_env_values = true,
        value_name = "URI"
    )]
    pub datastore_conn_uri: Option<String>,

    /// A `tessera serve` TOML file to take `datastore-engine` and `datastore-conn-uri` from
    /// (flags and environment variables take precedence).
    #[arg(long, env = "TESSERA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs a `tessera datastore` subcommand; returns the exit code.
pub fn run(command: &DatastoreCommand) -> Result<u8, CliError> {
    match command {
        DatastoreCommand::Migrate(args) => migrate(args),
    }
}

fn migrate(args: &MigrateArgs) -> Result<u8, CliError> {
    let (file_engine, file_uri) = match &args.config {
        Some(path) => datastore_from_file(path)?,
        None => (None, None),
    };
    let engine = args.datastore_engine.or(file_engine).unwrap_or_default();
    if engine == DatastoreEngine::Rocksdb {
        eprintln!(
            "nothing to migrate: a RocksDB data directory is upgraded when `tessera serve` opens it \
             (use --datastore-engine postgres to migrate a PostgreSQL datastore)"
        );
        return Ok(EXIT_OK);
    }
    let uri = args
        .datastore_conn_uri
        .clone()
        .or(file_uri)
        .ok_or_else(|| {
            CliError::Usage(
                "--datastore-engine postgres needs --datastore-conn-uri \
                 (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
                    .into(),
            )
        })?;
    let report = postgres::migrate(&uri).map_err(|e| match e {
        OpenError::InvalidUri(_) => CliError::Usage(e.to_string()),
        other => CliError::Failed(other.to_string()),
    })?;
    if report.applied.is_empty() {
        println!(
            "the PostgreSQL datastore is already at version {}; nothing to do",
            report.to
        );
    } else {
        let from = report
            .from
            .map_or("an empty database".to_string(), |v| format!("version {v}"));
        println!(
            "migrated the PostgreSQL datastore from {from} to version {}",
            report.to
        );
        for (version, description) in &report.applied {
            println!("  applied {version}: {description}");
        }
    }
    Ok(EXIT_OK)
}
