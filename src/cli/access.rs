//! `tessera access grant|revoke|list`: manage what JWT callers may do.
//!
//! Capabilities are relationships in Tessera's reserved `tessera/` namespace, which the public
//! API refuses to touch; so these commands open the data directory directly. RocksDB allows one
//! process per directory: stop the server first (the command says so if it is running), and
//! start it again afterwards. Preshared-key callers are administrators and need no grant.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::auth::{self, Capability};
use crate::service::{ServiceConfig, Tessera};
use crate::store::rocks::RocksOptions;

use super::config::resolve_data_dir;
use super::error::{CliError, EXIT_OK};
use super::serve::open_store;

/// `tessera access …`
#[derive(Debug, Clone, Subcommand)]
pub enum AccessCommand {
    /// Grant a capability to a caller (a JWT subject).
    Grant(GrantArgs),
    /// Revoke a capability (or `--all`) from a caller.
    Revoke(RevokeArgs),
    /// List the stored grants, of every caller or of one.
    List(ListArgs),
}

/// Where the data directory is (the server must not be running on it).
#[derive(Debug, Clone, Args)]
pub struct LocalStoreArgs {
    /// The server's data directory [default: the `data-dir` of --config, else ./tessera-data].
    #[arg(long, env = "TESSERA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The server's TOML config file, to find its `data-dir`.
    #[arg(long, env = "TESSERA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct GrantArgs {
    /// The caller: the `sub` claim of its JWTs.
    #[arg(value_name = "CALLER")]
    pub caller: String,
    /// `admin`, `schema-write`, `read`, `write:*` or `write:<resource type>`.
    #[arg(value_name = "CAPABILITY")]
    pub capability: String,
    #[command(flatten)]
    pub store: LocalStoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RevokeArgs {
    /// The caller: the `sub` claim of its JWTs.
    #[arg(value_name = "CALLER")]
    pub caller: String,
    /// The capability to revoke (exactly as granted).
    #[arg(
        value_name = "CAPABILITY",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub capability: Option<String>,
    /// Revoke every capability of the caller.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub store: LocalStoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only this caller's grants.
    #[arg(value_name = "CALLER")]
    pub caller: Option<String>,
    #[command(flatten)]
    pub store: LocalStoreArgs,
}

/// Runs `tessera access …`; returns the exit code.
pub fn run(command: &AccessCommand) -> Result<u8, CliError> {
    match command {
        AccessCommand::Grant(args) => grant(args),
        AccessCommand::Revoke(args) => revoke(args),
        AccessCommand::List(args) => list(args),
    }
}

fn parse_capability(text: &str) -> Result<Capability, CliError> {
    text.parse::<Capability>()
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// Opens the data directory. `create` is for grants made before the server's first start.
fn open(args: &LocalStoreArgs, create: bool) -> Result<Tessera, CliError> {
    let dir = resolve_data_dir(args.data_dir.clone(), args.config.as_deref())?;
    if !create && !dir.exists() {
        return Err(CliError::Failed(format!(
            "there is no data directory at `{}` (pass --data-dir)",
            dir.display()
        )));
    }
    // A short-lived process: no background garbage collection.
    let options = RocksOptions {
        gc_interval: None,
        ..RocksOptions::default()
    };
    let store = open_store(&dir, options)?;
    Ok(Tessera::new(
        std::sync::Arc::new(store),
        ServiceConfig::default(),
    ))
}

/// Who made the change, for the change log: the local operator.
fn operator() -> String {
    match std::env::var("USER") {
        Ok(user) if !user.is_empty() => format!("local-cli:{user}"),
        _ => "local-cli".to_string(),
    }
}

fn access_error(e: auth::AccessError) -> CliError {
    match e {
        auth::AccessError::InvalidCaller { .. } => CliError::Usage(e.to_string()),
        other => CliError::Failed(other.to_string()),
    }
}

fn grant(args: &GrantArgs) -> Result<u8, CliError> {
    let capability = parse_capability(&args.capability)?;
    let tessera = open(&args.store, true)?;
    auth::grant(&tessera, &args.caller, &capability, Some(&operator())).map_err(access_error)?;
    eprintln!("granted `{capability}` to `{}`", args.caller);
    Ok(EXIT_OK)
}

fn revoke(args: &RevokeArgs) -> Result<u8, CliError> {
    let capability = args
        .capability
        .as_deref()
        .map(parse_capability)
        .transpose()?;
    let tessera = open(&args.store, false)?;
    match capability {
        Some(capability) => {
            let held = auth::revoke(&tessera, &args.caller, &capability, Some(&operator()))
                .map_err(access_error)?;
            if held {
                eprintln!("revoked `{capability}` from `{}`", args.caller);
            } else {
                eprintln!(
                    "`{}` did not hold `{capability}`; nothing to revoke",
                    args.caller
                );
            }
        }
        None => {
            let revoked = auth::revoke_all(&tessera, &args.caller, Some(&operator()))
                .map_err(access_error)?;
            if revoked.is_empty() {
                eprintln!("`{}` held no capabilities; nothing to revoke", args.caller);
            } else {
                let names: Vec<String> = revoked.iter().map(ToString::to_string).collect();
                eprintln!("revoked {} from `{}`", names.join(", "), args.caller);
            }
        }
    }
    Ok(EXIT_OK)
}

fn list(args: &ListArgs) -> Result<u8, CliError> {
    let tessera = open(&args.store, false)?;
    let grants = match &args.caller {
        Some(caller) => auth::list_for(&tessera, caller),
        None => auth::list(&tessera),
    }
    .map_err(access_error)?;
    for g in &grants {
        println!("{}\t{}", g.caller, g.capability);
    }
    if grants.is_empty() {
        eprintln!("no grants");
    }
    Ok(EXIT_OK)
}
