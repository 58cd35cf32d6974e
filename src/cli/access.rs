//! `tessera access grant|revoke|list`: manage what JWT callers may do.
//!
//! By default the commands talk to a running server (`--endpoint`, `--token` with an admin's
//! token: a preshared key or the JWT of a caller holding `admin`) through its
//! `tessera.admin.v1.AccessService`, so a grant or a revocation applies to the caller's very next
//! call without a restart.
//!
//! Offline mode, for bootstrapping before the server's first start or while it is down: with
//! `--data-dir DIR` (or `--config FILE`, to read its `data-dir`) the commands open the data
//! directory directly. RocksDB allows one process per directory, so this fails with a clear
//! message while a server runs on it. Preshared-key callers are administrators and need no grant.
//!
//! Both modes print the same: the zookie of a grant or revocation on stdout, the grants of
//! `list` as `CALLER<TAB>CAPABILITY` lines, notes on stderr.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use crate::api::proto::tessera::admin::v1 as pb;
use crate::auth::{self, AccessGrant, Capability, Revocation};
use crate::consistency::Zookie;
use crate::service::{ServiceConfig, Tessera};
use crate::store::rocks::{RocksOptions, RocksStore};

use super::client::{ClientArgs, Connection, block_on};
use super::config::resolve_data_dir;
use super::error::{CliError, EXIT_OK};

/// Said after every `access` subcommand's options.
const TARGET_HELP: &str = "By default the command calls the running server at --endpoint with \
an administrator's --token (a preshared key, or the JWT of a caller granted `admin`); changes \
apply to the caller's next call. With --data-dir (or --config) it opens a stopped server's data \
directory instead, e.g. to grant the first administrator before the first start.";

/// `tessera access …`
#[derive(Debug, Clone, Subcommand)]
pub enum AccessCommand {
    /// Grant a capability to a caller (a JWT subject); prints the write's zookie.
    #[command(after_help = TARGET_HELP)]
    Grant(GrantArgs),
    /// Revoke a capability (or `--all`) from a caller; prints the revision's zookie.
    #[command(after_help = TARGET_HELP)]
    Revoke(RevokeArgs),
    /// List the stored grants, of every caller or of one (`CALLER<TAB>CAPABILITY` lines).
    #[command(after_help = TARGET_HELP)]
    List(ListArgs),
}

/// Where the grants are: a running server (default) or, offline, a data directory.
///
/// `--data-dir`/`--config` exclude `--endpoint`, `--token` and `--connect-timeout` given on the
/// command line; the `TESSERA_ENDPOINT`/`TESSERA_TOKEN` environment variables are defaults, so
/// an explicit offline flag overrides them rather than conflicting (clap's own conflicts would
/// count environment values too, hence the hand-written [`clap::Args`] impl).
#[derive(Debug, Clone)]
pub struct AccessTargetArgs {
    /// The server connection; the token must be an admin's (a preshared key, or the JWT of a
    /// caller holding `admin`).
    pub client: ClientArgs,
    /// Offline mode: the data directory to open.
    pub data_dir: Option<PathBuf>,
    /// Offline mode: the server config file naming the data directory.
    pub config: Option<PathBuf>,
}

/// The offline flags of [`AccessTargetArgs`].
#[derive(Debug, Clone, Args)]
struct OfflineArgs {
    /// Offline mode: open this data directory directly instead of calling the server. Only
    /// while no server runs on it (bootstrapping, or the server is down).
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Offline mode (server stopped)"
    )]
    data_dir: Option<PathBuf>,

    /// Offline mode: open the `data-dir` of this server TOML config file (./tessera-data when
    /// it sets none). Only while no server runs on it.
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Offline mode (server stopped)"
    )]
    config: Option<PathBuf>,
}

/// The connection flags that make no sense offline, by clap id and flag.
const CONNECTION_FLAGS: [(&str, &str); 3] = [
    ("endpoint", "--endpoint"),
    ("token", "--token"),
    ("connect_timeout", "--connect-timeout"),
];

impl clap::FromArgMatches for AccessTargetArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let client = ClientArgs::from_arg_matches(matches)?;
        let offline = OfflineArgs::from_arg_matches(matches)?;
        let offline_flag = match (&offline.data_dir, &offline.config) {
            (Some(_), _) => Some("--data-dir"),
            (None, Some(_)) => Some("--config"),
            (None, None) => None,
        };
        if let Some(offline_flag) = offline_flag {
            for (id, flag) in CONNECTION_FLAGS {
                if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                    return Err(clap::Error::raw(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "the argument '{offline_flag}' cannot be used with '{flag}': \
                             {offline_flag} opens a stopped server's data directory directly, \
                             {flag} is for talking to a running server; drop one of them"
                        ),
                    ));
                }
            }
        }
        Ok(AccessTargetArgs {
            client,
            data_dir: offline.data_dir,
            config: offline.config,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for AccessTargetArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        OfflineArgs::augment_args(ClientArgs::augment_args(cmd))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        OfflineArgs::augment_args_for_update(ClientArgs::augment_args_for_update(cmd))
    }
}

impl AccessTargetArgs {
    fn offline(&self) -> bool {
        self.data_dir.is_some() || self.config.is_some()
    }
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
    pub target: AccessTargetArgs,
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
    pub target: AccessTargetArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only this caller's grants.
    #[arg(value_name = "CALLER")]
    pub caller: Option<String>,
    #[command(flatten)]
    pub target: AccessTargetArgs,
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

// ---- output, shared by both modes -----------------------------------------------------

fn print_granted(caller: &str, capability: &Capability, zookie: &str) {
    println!("{zookie}");
    eprintln!("granted `{capability}` to `{caller}`");
}

fn print_revoked(caller: &str, asked: Option<&Capability>, revoked: &[String], zookie: &str) {
    println!("{zookie}");
    match (asked, revoked.is_empty()) {
        (Some(c), true) => eprintln!("`{caller}` did not hold `{c}`; nothing to revoke"),
        (None, true) => eprintln!("`{caller}` held no capabilities; nothing to revoke"),
        (Some(c), false) => eprintln!("revoked `{c}` from `{caller}`"),
        (None, false) => eprintln!("revoked {} from `{caller}`", revoked.join(", ")),
    }
}

fn print_grants<'a>(grants: impl ExactSizeIterator<Item = (&'a str, &'a str)>) {
    if grants.len() == 0 {
        eprintln!("no grants");
    }
    for (caller, capability) in grants {
        println!("{caller}\t{capability}");
    }
}

// ---- the commands ----------------------------------------------------------------------

fn grant(args: &GrantArgs) -> Result<u8, CliError> {
    let capability = parse_capability(&args.capability)?;
    if args.target.offline() {
        let tessera = open_offline(&args.target, true)?;
        let revision = auth::grant(&tessera, &args.caller, &capability, Some(&operator()))
            .map_err(access_error)?;
        print_granted(&args.caller, &capability, &Zookie::encode(revision));
        return Ok(EXIT_OK);
    }
    block_on(async {
        let mut conn = Connection::open(&args.target.client).await?;
        let response = conn
            .access
            .grant(pb::GrantRequest {
                caller: args.caller.clone(),
                capability: capability.to_string(),
            })
            .await
            .map_err(|s| conn.error(s))?
            .into_inner();
        let zookie = response.written_at.map(|z| z.token).unwrap_or_default();
        print_granted(&args.caller, &capability, &zookie);
        Ok(EXIT_OK)
    })
}

fn revoke(args: &RevokeArgs) -> Result<u8, CliError> {
    let capability = args
        .capability
        .as_deref()
        .map(parse_capability)
        .transpose()?;
    if args.target.offline() {
        let tessera = open_offline(&args.target, false)?;
        let Revocation { revoked, revision } = match &capability {
            Some(c) => auth::revoke_with_revision(&tessera, &args.caller, c, Some(&operator())),
            None => auth::revoke_all_with_revision(&tessera, &args.caller, Some(&operator())),
        }
        .map_err(access_error)?;
        let revoked: Vec<String> = revoked.iter().map(ToString::to_string).collect();
        print_revoked(
            &args.caller,
            capability.as_ref(),
            &revoked,
            &Zookie::encode(revision),
        );
        return Ok(EXIT_OK);
    }
    block_on(async {
        let mut conn = Connection::open(&args.target.client).await?;
        let response = conn
            .access
            .revoke(pb::RevokeRequest {
                caller: args.caller.clone(),
                capability: capability
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                all: capability.is_none(),
            })
            .await
            .map_err(|s| conn.error(s))?
            .into_inner();
        let zookie = response.written_at.map(|z| z.token).unwrap_or_default();
        print_revoked(
            &args.caller,
            capability.as_ref(),
            &response.revoked,
            &zookie,
        );
        Ok(EXIT_OK)
    })
}

fn list(args: &ListArgs) -> Result<u8, CliError> {
    if args.target.offline() {
        let tessera = open_offline(&args.target, false)?;
        let (grants, _) =
            auth::list_with_revision(&tessera, args.caller.as_deref()).map_err(access_error)?;
        let rows: Vec<(String, String)> = grants
            .into_iter()
            .map(|AccessGrant { caller, capability }| (caller, capability.to_string()))
            .collect();
        print_grants(rows.iter().map(|(a, c)| (a.as_str(), c.as_str())));
        return Ok(EXIT_OK);
    }
    block_on(async {
        let mut conn = Connection::open(&args.target.client).await?;
        let response = conn
            .access
            .list(pb::ListRequest {
                caller: args.caller.clone().unwrap_or_default(),
            })
            .await
            .map_err(|s| conn.error(s))?
            .into_inner();
        print_grants(
            response
                .grants
                .iter()
                .map(|g| (g.caller.as_str(), g.capability.as_str())),
        );
        Ok(EXIT_OK)
    })
}

// ---- offline mode ----------------------------------------------------------------------

/// Opens the data directory of `--data-dir`/`--config`. `create` is for grants made before
/// the server's first start.
fn open_offline(args: &AccessTargetArgs, create: bool) -> Result<Tessera, CliError> {
    let dir = resolve_data_dir(args.data_dir.clone(), args.config.as_deref())?;
    if !create && !dir.exists() {
        return Err(CliError::Failed(format!(
            "there is no data directory at `{}` (check --data-dir, or drop it to ask the server)",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir).map_err(|e| {
        CliError::io(
            format!("cannot create the data directory `{}`", dir.display()),
            e,
        )
    })?;
    // A short-lived process: no background garbage collection.
    let options = RocksOptions {
        gc_interval: None,
        ..RocksOptions::default()
    };
    let store = RocksStore::open(&dir, options).map_err(|e| open_error(&dir, &e.to_string()))?;
    Ok(Tessera::new(Arc::new(store), ServiceConfig::default()))
}

/// Explains the usual failure: a server holds the directory's lock.
fn open_error(dir: &Path, message: &str) -> CliError {
    if message.to_ascii_lowercase().contains("lock") {
        CliError::Failed(format!(
            "the data directory `{}` is in use by another process, most likely a running \
             `tessera serve`; drop --data-dir/--config to manage access through the running \
             server instead (with --endpoint and an admin's --token, or TESSERA_ENDPOINT and \
             TESSERA_TOKEN) ({message})",
            dir.display()
        ))
    } else {
        CliError::Failed(format!(
            "cannot open the data directory `{}`: {message}",
            dir.display()
        ))
    }
}

/// Who made an offline change, for the change log: the local operator.
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: AccessCommand,
    }

    fn parse(args: &[&str]) -> Result<AccessCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("access").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn server_is_the_default_and_data_dir_selects_offline_mode() {
        let AccessCommand::Grant(g) = parse(&["grant", "svc", "read"]).unwrap() else {
            panic!("grant expected")
        };
        assert!(!g.target.offline());
        let AccessCommand::List(l) = parse(&["list", "--data-dir", "d"]).unwrap() else {
            panic!("list expected")
        };
        assert!(l.target.offline());
        let AccessCommand::Revoke(r) =
            parse(&["revoke", "svc", "--all", "--config", "t.toml"]).unwrap()
        else {
            panic!("revoke expected")
        };
        assert!(r.target.offline() && r.all);
    }

    #[test]
    fn offline_flags_conflict_with_connection_flags() {
        for args in [
            &["list", "--data-dir", "d", "--endpoint", "localhost:1"][..],
            &["list", "--config", "t.toml", "--token", "k"][..],
            &[
                "grant",
                "svc",
                "read",
                "--data-dir",
                "d",
                "--endpoint",
                "h:1",
            ][..],
        ] {
            let e = parse(args).expect_err("conflicting flags");
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{args:?}: {e}"
            );
        }
    }

    #[test]
    fn a_locked_directory_points_to_the_server() {
        let e = open_error(
            Path::new("/srv/data"),
            "IO error: lock hold by current process",
        );
        let m = e.to_string();
        assert!(
            m.contains("in use") && m.contains("drop --data-dir") && m.contains("/srv/data"),
            "{m}"
        );
        let m = open_error(Path::new("d"), "corruption").to_string();
        assert!(m.contains("cannot open") && m.contains("corruption"), "{m}");
    }
}
