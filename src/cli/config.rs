//! The settings of `tessera serve`: flags, `TESSERA_*` environment variables and an optional
//! TOML file, resolved with the precedence flag > environment > file > built-in default.
//!
//! Every flag's long name is also its TOML key (`grpc-addr = "0.0.0.0:50051"`); repeatable
//! flags take a TOML array (or a single string). Relative paths in the file are resolved
//! against the file's directory, so a config file can sit next to its keys.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::auth::{AuthConfig, DEFAULT_JWT_LEEWAY, JwtAlgorithm, JwtKeySource, Secret};
use crate::service::ServiceConfig;

use super::error::CliError;

/// Default `--grpc-addr`.
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
/// Default `--http-addr` (the reference's HTTP gateway port).
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8443";
/// Default `--metrics-addr`.
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9090";
/// Default `--data-dir`.
pub const DEFAULT_DATA_DIR: &str = "./tessera-data";
/// Default `--datastore-gc-window`.
pub const DEFAULT_GC_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// Default `--datastore-gc-interval`.
pub const DEFAULT_GC_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Default `--shutdown-timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `--log-level`.
pub const DEFAULT_LOG_LEVEL: &str = "info";
/// Default `--datastore-conn-pool-read-max-open`.
pub const DEFAULT_READ_POOL: usize = 20;
/// Default `--datastore-conn-pool-write-max-open`.
pub const DEFAULT_WRITE_POOL: usize = 10;

/// Where relationships are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatastoreEngine {
    /// Embedded RocksDB in `--data-dir`: one node.
    #[default]
    Rocksdb,
    /// A shared PostgreSQL database (`--datastore-conn-uri`): many nodes.
    Postgres,
}

/// The PostgreSQL datastore's settings.
#[derive(Clone)]
pub struct PostgresSettings {
    pub conn_uri: String,
    pub read_replica_conn_uri: Option<String>,
    pub read_pool: usize,
    pub write_pool: usize,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Connection strings may carry passwords: never printed.
        f.debug_struct("PostgresSettings")
            .field("read_replica", &self.read_replica_conn_uri.is_some())
            .field("read_pool", &self.read_pool)
            .field("write_pool", &self.write_pool)
            .finish_non_exhaustive()
    }
}

/// Parses a human-friendly duration: `30s`, `5m`, `24h`, `1h 30m`, `250ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("invalid duration `{text}`: {e} (examples: `30s`, `5m`, `24h`)"))
}

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `tessera serve` flags. Each is optional here so that the TOML file and the defaults can
/// fill what neither a flag nor an environment variable set.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML file with settings; its keys are these flags' long names (flags and environment
    /// variables take precedence over it).
    #[arg(long, env = "TESSERA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to serve gRPC on [default: 127.0.0.1:50051].
    #[arg(long, env = "TESSERA_GRPC_ADDR", value_name = "HOST:PORT")]
    pub grpc_addr: Option<String>,

    /// A preshared key accepted as `authorization: bearer KEY`; callers presenting one are
    /// administrators. Repeatable; the environment variable takes a comma-separated list.
    #[arg(
        long,
        env = "TESSERA_GRPC_PRESHARED_KEY",
        hide_env_values = true,
        value_delimiter = ',',
        value_name = "KEY"
    )]
    pub grpc_preshared_key: Vec<Secret>,

    /// File holding an HMAC secret (at least 32 bytes) verifying HS256/HS384/HS512 JWTs. Repeatable.
    #[arg(
        long,
        env = "TESSERA_JWT_HS_SECRET_FILE",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub jwt_hs_secret_file: Vec<PathBuf>,

    /// PEM public key file (RSA, EC P-256/P-384 or Ed25519) verifying JWTs. Repeatable.
    #[arg(
        long,
        env = "TESSERA_JWT_PUBLIC_KEY_FILE",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub jwt_public_key_file: Vec<PathBuf>,

    /// Restrict the JWT algorithms accepted (e.g. RS256, ES256, EdDSA, HS256); HS* apply to
    /// the HMAC secrets, the others to the public keys. Repeatable [default: every algorithm
    /// that fits each key].
    #[arg(
        long,
        env = "TESSERA_JWT_ALGORITHM",
        value_delimiter = ',',
        value_name = "ALG"
    )]
    pub jwt_algorithm: Vec<String>,

    /// JSON Web Key Set file; a token's `kid` header selects the key. Repeatable.
    #[arg(
        long,
        env = "TESSERA_JWT_JWKS_FILE",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    pub jwt_jwks_file: Vec<PathBuf>,

    /// Accepted JWT issuer (`iss`); when given, tokens must carry one of them. Repeatable.
    #[arg(
        long,
        env = "TESSERA_JWT_ISSUER",
        value_delimiter = ',',
        value_name = "ISS"
    )]
    pub jwt_issuer: Vec<String>,

    /// Accepted JWT audience (`aud`); when given, tokens must name one of them; when not,
    /// tokens naming any audience are refused. Repeatable.
    #[arg(
        long,
        env = "TESSERA_JWT_AUDIENCE",
        value_delimiter = ',',
        value_name = "AUD"
    )]
    pub jwt_audience: Vec<String>,

    /// Clock skew allowed when checking `exp` and `nbf` [default: 30s].
    #[arg(long, env = "TESSERA_JWT_LEEWAY", value_parser = parse_duration, value_name = "DURATION")]
    pub jwt_leeway: Option<Duration>,

    /// Accept every call without authentication, as an administrator. Development only.
    #[arg(
        long,
        env = "TESSERA_INSECURE_NO_AUTH",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub insecure_no_auth: Option<bool>,

    /// Directory of the durable RocksDB store (created when missing) [default: ./tessera-data].
    #[arg(long, env = "TESSERA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Where relationships are stored: `rocksdb` (embedded, in --data-dir) or `postgres` (a
    /// shared database, --datastore-conn-uri; many nodes may serve it) [default: rocksdb].
    #[arg(
        long,
        env = "TESSERA_DATASTORE_ENGINE",
        value_enum,
        value_name = "ENGINE"
    )]
    pub datastore_engine: Option<DatastoreEngine>,

    /// PostgreSQL connection string (`postgres://USER:PASSWORD@HOST:PORT/DATABASE`), for
    /// --datastore-engine postgres. Migrate the database first: `tessera datastore migrate`.
    #[arg(
        long,
        env = "TESSERA_DATASTORE_CONN_URI",
        hide_env_values = true,
        value_name = "URI"
    )]
    pub datastore_conn_uri: Option<String>,

    /// Connection string of a PostgreSQL read replica for `minimize_latency` reads (used only
    /// for revisions the replica has already replayed; the primary otherwise).
    #[arg(
        long,
        env = "TESSERA_DATASTORE_READ_REPLICA_CONN_URI",
        hide_env_values = true,
        value_name = "URI"
    )]
    pub datastore_read_replica_conn_uri: Option<String>,

    /// Most PostgreSQL connections for reads [default: 20].
    #[arg(
        long,
        env = "TESSERA_DATASTORE_CONN_POOL_READ_MAX_OPEN",
        value_name = "N"
    )]
    pub datastore_conn_pool_read_max_open: Option<usize>,

    /// Most PostgreSQL connections for writes (writers queue on the database for the one
    /// writer lock) [default: 10].
    #[arg(
        long,
        env = "TESSERA_DATASTORE_CONN_POOL_WRITE_MAX_OPEN",
        value_name = "N"
    )]
    pub datastore_conn_pool_write_max_open: Option<usize>,

    /// How long history stays readable: exact-snapshot reads, Watch resumption [default: 24h].
    #[arg(long, env = "TESSERA_DATASTORE_GC_WINDOW", value_parser = parse_duration, value_name = "DURATION")]
    pub datastore_gc_window: Option<Duration>,

    /// How often garbage collection runs [default: 5m].
    #[arg(long, env = "TESSERA_DATASTORE_GC_INTERVAL", value_parser = parse_duration, value_name = "DURATION")]
    pub datastore_gc_interval: Option<Duration>,

    /// How stale a `minimize_latency` read may be [default: 100ms].
    #[arg(
        long,
        env = "TESSERA_DATASTORE_REVISION_QUANTIZATION_INTERVAL",
        value_parser = parse_duration,
        value_name = "DURATION"
    )]
    pub datastore_revision_quantization_interval: Option<Duration>,

    /// Most updates one WriteRelationships call may carry [default: 1000].
    #[arg(
        long,
        env = "TESSERA_MAX_UPDATES_PER_WRITE",
        visible_alias = "write-relationships-max-updates-per-call",
        value_name = "N"
    )]
    pub max_updates_per_write: Option<usize>,

    /// Most preconditions one write or delete may carry [default: 1000].
    #[arg(
        long,
        env = "TESSERA_MAX_PRECONDITIONS_PER_WRITE",
        visible_alias = "update-relationships-max-preconditions-per-call",
        value_name = "N"
    )]
    pub max_preconditions_per_write: Option<usize>,

    /// Most items one CheckBulkPermissions call may carry [default: 1000].
    #[arg(long, env = "TESSERA_MAX_BULK_CHECK_ITEMS", value_name = "N")]
    pub max_bulk_check_items: Option<usize>,

    /// Most relationships one DeleteRelationships call may delete [default: 1000].
    #[arg(long, env = "TESSERA_MAX_DELETE_RELATIONSHIPS_LIMIT", value_name = "N")]
    pub max_delete_relationships_limit: Option<usize>,

    /// Most relationships one ReadRelationships or export page may return [default: 1000].
    #[arg(long, env = "TESSERA_MAX_READ_RELATIONSHIPS_LIMIT", value_name = "N")]
    pub max_read_relationships_limit: Option<usize>,

    /// Deepest recursion of one check, expand or lookup before it fails [default: 50].
    #[arg(long, env = "TESSERA_DISPATCH_MAX_DEPTH", value_name = "N")]
    pub dispatch_max_depth: Option<u32>,

    /// Check sub-problem answers shared across requests; 0 disables the cache
    /// [default: 262144].
    #[arg(long, env = "TESSERA_CHECK_CACHE_ENTRIES", value_name = "N")]
    pub check_cache_entries: Option<usize>,

    /// Let a cached check answer keep serving later revisions while nothing it read has been
    /// written, with the embedded RocksDB (whose writes all pass through this process; with
    /// PostgreSQL an answer serves its own revision only) [default: true].
    #[arg(long, env = "TESSERA_CHECK_CACHE_CARRY", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub check_cache_carry: Option<bool>,

    /// Serve the HTTP/JSON API (the authzed.api.v1 gateway paths and AuthZEN 1.0) on
    /// `--http-addr` [default: false].
    #[arg(
        long,
        env = "TESSERA_HTTP_ENABLED",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub http_enabled: Option<bool>,

    /// Address of the HTTP/JSON API when `--http-enabled` [default: 127.0.0.1:8443].
    #[arg(long, env = "TESSERA_HTTP_ADDR", value_name = "HOST:PORT")]
    pub http_addr: Option<String>,

    /// Largest HTTP request body accepted, in bytes (413 beyond) [default: 4194304].
    #[arg(long, env = "TESSERA_HTTP_MAX_BODY_BYTES", value_name = "N")]
    pub http_max_body_bytes: Option<usize>,

    /// Largest gRPC request message decoded, in bytes [default: 4194304 (4 MiB)].
    #[arg(long, env = "TESSERA_GRPC_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub grpc_max_message_bytes: Option<usize>,

    /// Largest caveat context stored with one relationship, in bytes of its JSON encoding
    /// [default: 4096].
    #[arg(long, env = "TESSERA_MAX_CAVEAT_CONTEXT_BYTES", value_name = "BYTES")]
    pub max_caveat_context_bytes: Option<usize>,

    /// Answer single checks on the server's async workers instead of handing each to the
    /// blocking pool, when the datastore is the embedded RocksDB (never for PostgreSQL, whose
    /// reads wait on the network) [default: true].
    #[arg(long, env = "TESSERA_INLINE_CHECKS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub inline_checks: Option<bool>,

    /// Largest schema text WriteSchema and DiffSchema accept, in bytes [default: 1048576].
    #[arg(long, env = "TESSERA_SCHEMA_MAX_BYTES", value_name = "BYTES")]
    pub schema_max_bytes: Option<usize>,

    /// Most definitions and caveats a schema may have [default: 1000].
    #[arg(long, env = "TESSERA_SCHEMA_MAX_DEFINITIONS", value_name = "N")]
    pub schema_max_definitions: Option<usize>,

    /// Most relations and permissions one definition may have [default: 1000].
    #[arg(
        long,
        env = "TESSERA_SCHEMA_MAX_RELATIONS_PER_DEFINITION",
        value_name = "N"
    )]
    pub schema_max_relations_per_definition: Option<usize>,

    /// Most subject types one relation may allow [default: 100].
    #[arg(
        long,
        env = "TESSERA_SCHEMA_MAX_SUBJECT_TYPES_PER_RELATION",
        value_name = "N"
    )]
    pub schema_max_subject_types_per_relation: Option<usize>,

    /// Address of the Prometheus metrics endpoint (`/metrics`); empty or `off` disables it
    /// [default: 127.0.0.1:9090].
    #[arg(long, env = "TESSERA_METRICS_ADDR", value_name = "HOST:PORT")]
    pub metrics_addr: Option<String>,

    /// Log format [default: text].
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log level or filter: `info`, `debug`, or per module (`info,tessera::api=debug`) [default: info].
    #[arg(long, env = "TESSERA_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// On SIGINT/SIGTERM, how long in-flight calls may take to finish before the server
    /// closes anyway [default: 30s].
    #[arg(long, env = "TESSERA_SHUTDOWN_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_timeout: Option<Duration>,
}

/// A string or a list of strings (repeatable settings in the TOML file).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The TOML file: every key optional, unknown keys refused (a typo must not be ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    grpc_addr: Option<String>,
    grpc_preshared_key: Option<OneOrMany>,
    jwt_hs_secret_file: Option<OneOrMany>,
    jwt_public_key_file: Option<OneOrMany>,
    jwt_algorithm: Option<OneOrMany>,
    jwt_jwks_file: Option<OneOrMany>,
    jwt_issuer: Option<OneOrMany>,
    jwt_audience: Option<OneOrMany>,
    jwt_leeway: Option<String>,
    insecure_no_auth: Option<bool>,
    data_dir: Option<PathBuf>,
    datastore_engine: Option<DatastoreEngine>,
    datastore_conn_uri: Option<String>,
    datastore_read_replica_conn_uri: Option<String>,
    datastore_conn_pool_read_max_open: Option<usize>,
    datastore_conn_pool_write_max_open: Option<usize>,
    datastore_gc_window: Option<String>,
    datastore_gc_interval: Option<String>,
    datastore_revision_quantization_interval: Option<String>,
    max_updates_per_write: Option<usize>,
    max_preconditions_per_write: Option<usize>,
    max_bulk_check_items: Option<usize>,
    max_delete_relationships_limit: Option<usize>,
    max_read_relationships_limit: Option<usize>,
    dispatch_max_depth: Option<u32>,
    check_cache_entries: Option<usize>,
    check_cache_carry: Option<bool>,
    http_enabled: Option<bool>,
    http_addr: Option<String>,
    http_max_body_bytes: Option<usize>,
    grpc_max_message_bytes: Option<usize>,
    max_caveat_context_bytes: Option<usize>,
    inline_checks: Option<bool>,
    schema_max_bytes: Option<usize>,
    schema_max_definitions: Option<usize>,
    schema_max_relations_per_definition: Option<usize>,
    schema_max_subject_types_per_relation: Option<usize>,
    metrics_addr: Option<String>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    shutdown_timeout: Option<String>,
}

/// Where and how the HTTP/JSON API is served.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub addr: String,
    pub config: crate::http::HttpConfig,
}

/// Everything `tessera serve` runs with, after resolution.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub grpc_addr: String,
    /// The HTTP/JSON API's address and limits; `None` unless `--http-enabled`.
    pub http: Option<HttpSettings>,
    /// `None` when the metrics endpoint is disabled.
    pub metrics_addr: Option<String>,
    /// The RocksDB directory (meaningful with [`DatastoreEngine::Rocksdb`]).
    pub data_dir: PathBuf,
    pub engine: DatastoreEngine,
    /// Set exactly when `engine` is [`DatastoreEngine::Postgres`].
    pub postgres: Option<PostgresSettings>,
    pub gc_window: Duration,
    pub gc_interval: Duration,
    pub service: ServiceConfig,
    /// gRPC transport limits.
    pub grpc: crate::api::ServerOptions,
    pub auth: AuthConfig,
    pub log_format: LogFormat,
    pub log_level: String,
    pub shutdown_timeout: Duration,
}

impl ServeArgs {
    /// Resolves flags and environment (already merged by clap) over the TOML file over the
    /// defaults.
    pub fn resolve(&self) -> Result<ServeSettings, CliError> {
        let (file, base) = match &self.config {
            None => (FileConfig::default(), None),
            Some(path) => (read_file(path)?, path.parent().map(Path::to_path_buf)),
        };
        let in_file = |p: PathBuf| match &base {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p,
        };
        let file_paths = |v: Option<OneOrMany>| -> Vec<PathBuf> {
            v.map(OneOrMany::into_vec)
                .unwrap_or_default()
                .into_iter()
                .map(|s| in_file(PathBuf::from(s)))
                .collect()
        };
        let file_duration = |key: &str, v: Option<String>| -> Result<Option<Duration>, CliError> {
            v.map(|s| parse_duration(&s).map_err(|e| file_error(&self.config, key, &e)))
                .transpose()
        };
        // Lists: the flags/environment replace the file's list rather than extend it.
        fn pick<T>(cli: &[T], file: Vec<T>) -> Vec<T>
        where
            T: Clone,
        {
            if cli.is_empty() { file } else { cli.to_vec() }
        }

        let preshared_keys = pick(
            &self.grpc_preshared_key,
            file.grpc_preshared_key
                .map(OneOrMany::into_vec)
                .unwrap_or_default()
                .into_iter()
                .map(Secret::new)
                .collect(),
        );
        let hs_files = pick(
            &self.jwt_hs_secret_file,
            file_paths(file.jwt_hs_secret_file),
        );
        let pk_files = pick(
            &self.jwt_public_key_file,
            file_paths(file.jwt_public_key_file),
        );
        let jwks_files = pick(&self.jwt_jwks_file, file_paths(file.jwt_jwks_file));
        let algorithms = pick(
            &self.jwt_algorithm,
            file.jwt_algorithm
                .map(OneOrMany::into_vec)
                .unwrap_or_default(),
        );
        let issuers = pick(
            &self.jwt_issuer,
            file.jwt_issuer.map(OneOrMany::into_vec).unwrap_or_default(),
        );
        let audiences = pick(
            &self.jwt_audience,
            file.jwt_audience
                .map(OneOrMany::into_vec)
                .unwrap_or_default(),
        );
        let jwt_keys = jwt_key_sources(hs_files, pk_files, jwks_files, &algorithms)?;
        let auth = AuthConfig {
            preshared_keys,
            jwt_keys,
            jwt_issuers: issuers,
            jwt_audiences: audiences,
            jwt_leeway: self
                .jwt_leeway
                .or(file_duration("jwt-leeway", file.jwt_leeway)?)
                .unwrap_or(DEFAULT_JWT_LEEWAY),
            insecure: self
                .insecure_no_auth
                .or(file.insecure_no_auth)
                .unwrap_or(false),
        };

        let defaults = ServiceConfig::default();
        let mut service = defaults.clone();
        service.max_updates_per_write = self
            .max_updates_per_write
            .or(file.max_updates_per_write)
            .unwrap_or(defaults.max_updates_per_write);
        service.max_preconditions_per_write = self
            .max_preconditions_per_write
            .or(file.max_preconditions_per_write)
            .unwrap_or(defaults.max_preconditions_per_write);
        service.max_bulk_check_items = self
            .max_bulk_check_items
            .or(file.max_bulk_check_items)
            .unwrap_or(defaults.max_bulk_check_items);
        service.max_delete_limit = self
            .max_delete_relationships_limit
            .or(file.max_delete_relationships_limit)
            .unwrap_or(defaults.max_delete_limit);
        service.max_read_page = self
            .max_read_relationships_limit
            .or(file.max_read_relationships_limit)
            .unwrap_or(defaults.max_read_page);
        service.max_staleness = self
            .datastore_revision_quantization_interval
            .or(file_duration(
                "datastore-revision-quantization-interval",
                file.datastore_revision_quantization_interval,
            )?)
            .unwrap_or(defaults.max_staleness);
        service.engine.max_depth = self
            .dispatch_max_depth
            .or(file.dispatch_max_depth)
            .unwrap_or(defaults.engine.max_depth);
        service.check_cache_entries = self
            .check_cache_entries
            .or(file.check_cache_entries)
            .unwrap_or(defaults.check_cache_entries);
        service.check_cache_carry = self
            .check_cache_carry
            .or(file.check_cache_carry)
            .unwrap_or(defaults.check_cache_carry);
        service.max_caveat_context_bytes = self
            .max_caveat_context_bytes
            .or(file.max_caveat_context_bytes)
            .unwrap_or(defaults.max_caveat_context_bytes);
        service.inline_checks = self
            .inline_checks
            .or(file.inline_checks)
            .unwrap_or(defaults.inline_checks);
        let limits = &mut service.schema_limits;
        limits.max_source_bytes = self
            .schema_max_bytes
            .or(file.schema_max_bytes)
            .unwrap_or(defaults.schema_limits.max_source_bytes);
        limits.max_definitions = self
            .schema_max_definitions
            .or(file.schema_max_definitions)
            .unwrap_or(defaults.schema_limits.max_definitions);
        limits.max_members_per_definition = self
            .schema_max_relations_per_definition
            .or(file.schema_max_relations_per_definition)
            .unwrap_or(defaults.schema_limits.max_members_per_definition);
        limits.max_subject_types_per_relation = self
            .schema_max_subject_types_per_relation
            .or(file.schema_max_subject_types_per_relation)
            .unwrap_or(defaults.schema_limits.max_subject_types_per_relation);
        let grpc = crate::api::ServerOptions {
            max_message_bytes: self
                .grpc_max_message_bytes
                .or(file.grpc_max_message_bytes)
                .unwrap_or(crate::api::DEFAULT_MAX_MESSAGE_BYTES),
        };
        for (flag, value) in [
            ("--grpc-max-message-bytes", grpc.max_message_bytes),
            (
                "--max-caveat-context-bytes",
                service.max_caveat_context_bytes,
            ),
            ("--schema-max-bytes", service.schema_limits.max_source_bytes),
            (
                "--schema-max-definitions",
                service.schema_limits.max_definitions,
            ),
            (
                "--schema-max-relations-per-definition",
                service.schema_limits.max_members_per_definition,
            ),
            (
                "--schema-max-subject-types-per-relation",
                service.schema_limits.max_subject_types_per_relation,
            ),
            ("--max-updates-per-write", service.max_updates_per_write),
            (
                "--max-preconditions-per-write",
                service.max_preconditions_per_write,
            ),
            ("--max-bulk-check-items", service.max_bulk_check_items),
            ("--max-delete-relationships-limit", service.max_delete_limit),
            ("--max-read-relationships-limit", service.max_read_page),
            ("--dispatch-max-depth", service.engine.max_depth as usize),
        ] {
            if value == 0 {
                return Err(CliError::Usage(format!("{flag} must be at least 1")));
            }
        }

        let gc_window = self
            .datastore_gc_window
            .or(file_duration(
                "datastore-gc-window",
                file.datastore_gc_window,
            )?)
            .unwrap_or(DEFAULT_GC_WINDOW);
        let gc_interval = self
            .datastore_gc_interval
            .or(file_duration(
                "datastore-gc-interval",
                file.datastore_gc_interval,
            )?)
            .unwrap_or(DEFAULT_GC_INTERVAL);
        if gc_interval.is_zero() {
            return Err(CliError::Usage(
                "--datastore-gc-interval must be longer than 0s".into(),
            ));
        }

        let metrics_addr = self
            .metrics_addr
            .clone()
            .or(file.metrics_addr)
            .unwrap_or_else(|| DEFAULT_METRICS_ADDR.to_string());
        // An empty environment variable counts as unset, hence `off` as a second spelling.
        let metrics_addr = metrics_addr.trim();
        let metrics_addr = (!metrics_addr.is_empty() && !metrics_addr.eq_ignore_ascii_case("off"))
            .then(|| metrics_addr.to_string());

        let http_enabled = self.http_enabled.or(file.http_enabled).unwrap_or(false);
        let http_max_body_bytes = self
            .http_max_body_bytes
            .or(file.http_max_body_bytes)
            .unwrap_or(crate::http::DEFAULT_MAX_BODY_BYTES);
        if http_max_body_bytes == 0 {
            return Err(CliError::Usage(
                "--http-max-body-bytes must be at least 1".into(),
            ));
        }
        let http = http_enabled.then(|| HttpSettings {
            addr: self
                .http_addr
                .clone()
                .or(file.http_addr.clone())
                .unwrap_or_else(|| DEFAULT_HTTP_ADDR.to_string()),
            config: crate::http::HttpConfig {
                max_body_bytes: http_max_body_bytes,
            },
        });

        let engine = self
            .datastore_engine
            .or(file.datastore_engine)
            .unwrap_or_default();
        let conn_uri = self.datastore_conn_uri.clone().or(file.datastore_conn_uri);
        let replica_uri = self
            .datastore_read_replica_conn_uri
            .clone()
            .or(file.datastore_read_replica_conn_uri);
        let read_pool = self
            .datastore_conn_pool_read_max_open
            .or(file.datastore_conn_pool_read_max_open)
            .unwrap_or(DEFAULT_READ_POOL);
        let write_pool = self
            .datastore_conn_pool_write_max_open
            .or(file.datastore_conn_pool_write_max_open)
            .unwrap_or(DEFAULT_WRITE_POOL);
        let postgres = match engine {
            DatastoreEngine::Postgres => {
                let conn_uri = conn_uri.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
                    CliError::Usage(
                        "--datastore-engine postgres needs --datastore-conn-uri \
                         (postgres://USER:PASSWORD@HOST:PORT/DATABASE)"
                            .into(),
                    )
                })?;
                for (flag, value) in [
                    ("--datastore-conn-pool-read-max-open", read_pool),
                    ("--datastore-conn-pool-write-max-open", write_pool),
                ] {
                    if value == 0 {
                        return Err(CliError::Usage(format!("{flag} must be at least 1")));
                    }
                }
                Some(PostgresSettings {
                    conn_uri,
                    read_replica_conn_uri: replica_uri.filter(|u| !u.trim().is_empty()),
                    read_pool,
                    write_pool,
                })
            }
            DatastoreEngine::Rocksdb => {
                if conn_uri.is_some() || replica_uri.is_some() {
                    return Err(CliError::Usage(
                        "--datastore-conn-uri and --datastore-read-replica-conn-uri need \
                         --datastore-engine postgres (RocksDB keeps its data in --data-dir)"
                            .into(),
                    ));
                }
                None
            }
        };

        Ok(ServeSettings {
            http,
            engine,
            postgres,
            grpc_addr: self
                .grpc_addr
                .clone()
                .or(file.grpc_addr)
                .unwrap_or_else(|| DEFAULT_GRPC_ADDR.to_string()),
            metrics_addr,
            data_dir: self
                .data_dir
                .clone()
                .or(file.data_dir.map(in_file))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            gc_window,
            gc_interval,
            service,
            grpc,
            auth,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            log_level: self
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| DEFAULT_LOG_LEVEL.to_string()),
            shutdown_timeout: self
                .shutdown_timeout
                .or(file_duration("shutdown-timeout", file.shutdown_timeout)?)
                .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
        })
    }
}

/// The data directory for commands that open the store locally (`tessera access`): the flag
/// or environment, else the config file's `data-dir`, else the default.
pub fn resolve_data_dir(flag: Option<PathBuf>, config: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    if let Some(path) = config
        && let Some(dir) = read_file(path)?.data_dir
    {
        return Ok(match path.parent() {
            Some(base) if dir.is_relative() => base.join(dir),
            _ => dir,
        });
    }
    Ok(PathBuf::from(DEFAULT_DATA_DIR))
}

/// `datastore-engine` and `datastore-conn-uri` of a `tessera serve` TOML file.
pub fn datastore_from_file(
    path: &Path,
) -> Result<(Option<DatastoreEngine>, Option<String>), CliError> {
    let file = read_file(path)?;
    Ok((file.datastore_engine, file.datastore_conn_uri))
}

fn read_file(path: &Path) -> Result<FileConfig, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the config file `{}`: {e}",
            path.display()
        ))
    })?;
    toml::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "invalid config file `{}`: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })
}

fn file_error(path: &Option<PathBuf>, key: &str, message: &str) -> CliError {
    let shown = path
        .as_deref()
        .map(Path::display)
        .map(|d| d.to_string())
        .unwrap_or_default();
    CliError::Usage(format!(
        "invalid config file `{shown}`: key `{key}`: {message}"
    ))
}

fn is_hmac(alg: JwtAlgorithm) -> bool {
    matches!(
        alg,
        JwtAlgorithm::HS256 | JwtAlgorithm::HS384 | JwtAlgorithm::HS512
    )
}

/// The key sources of the JWT flags, with `--jwt-algorithm` split between HMAC secrets and
/// public keys (JWKS keys name their own algorithms).
fn jwt_key_sources(
    hs_files: Vec<PathBuf>,
    pk_files: Vec<PathBuf>,
    jwks_files: Vec<PathBuf>,
    algorithms: &[String],
) -> Result<Vec<JwtKeySource>, CliError> {
    let mut hmac_algs = Vec::new();
    let mut public_algs = Vec::new();
    for text in algorithms {
        let alg: JwtAlgorithm = text.trim().parse().map_err(|_| {
            CliError::Usage(format!(
                "--jwt-algorithm `{text}` is not a JWT signature algorithm (HS256, HS384, HS512, \
                 RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"
            ))
        })?;
        if is_hmac(alg) {
            if hs_files.is_empty() {
                return Err(CliError::Usage(format!(
                    "--jwt-algorithm {text} needs an HMAC secret (--jwt-hs-secret-file)"
                )));
            }
            hmac_algs.push(alg);
        } else {
            if pk_files.is_empty() {
                return Err(CliError::Usage(format!(
                    "--jwt-algorithm {text} needs a public key (--jwt-public-key-file)"
                )));
            }
            public_algs.push(alg);
        }
    }
    let mut sources = Vec::new();
    for path in hs_files {
        sources.push(JwtKeySource::hmac_secret_file(path).with_algorithms(hmac_algs.clone()));
    }
    for path in pk_files {
        sources.push(JwtKeySource::public_key_file(path).with_algorithms(public_algs.clone()));
    }
    for path in jwks_files {
        sources.push(JwtKeySource::jwks_file(path));
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> ServeArgs {
        let mut argv = vec!["tessera"];
        argv.extend_from_slice(args);
        Wrapper::try_parse_from(argv).unwrap().serve
    }

    fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tessera.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults() {
        let s = parse(&[]).resolve().unwrap();
        assert_eq!(s.grpc_addr, DEFAULT_GRPC_ADDR);
        assert_eq!(s.metrics_addr.as_deref(), Some(DEFAULT_METRICS_ADDR));
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(s.gc_window, DEFAULT_GC_WINDOW);
        assert_eq!(s.service.max_updates_per_write, 1000);
        assert_eq!(s.service.max_preconditions_per_write, 1000);
        assert_eq!(s.service.engine.max_depth, 50);
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.log_level, "info");
        assert!(s.auth.preshared_keys.is_empty());
        assert!(!s.auth.insecure);
        assert_eq!(s.auth.jwt_leeway, DEFAULT_JWT_LEEWAY);
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let (dir, path) = write_config(
            r#"
            grpc-addr = "0.0.0.0:6000"
            grpc-preshared-key = ["from-file-key-1", "from-file-key-2"]
            data-dir = "data"
            datastore-gc-window = "2h"
            max-updates-per-write = 50
            dispatch-max-depth = 20
            metrics-addr = "off"
            log-format = "json"
            jwt-public-key-file = "keys/pub.pem"
            jwt-issuer = "https://issuer.example"
            "#,
        );
        let config = path.to_str().unwrap();
        let from_file = parse(&["--config", config]).resolve().unwrap();
        assert_eq!(from_file.grpc_addr, "0.0.0.0:6000");
        assert_eq!(from_file.auth.preshared_keys.len(), 2);
        assert_eq!(from_file.auth.preshared_keys[1].expose(), "from-file-key-2");
        // Relative paths in the file are relative to the file.
        assert_eq!(from_file.data_dir, dir.path().join("data"));
        assert_eq!(from_file.gc_window, Duration::from_secs(7200));
        assert_eq!(from_file.service.max_updates_per_write, 50);
        assert_eq!(from_file.service.max_preconditions_per_write, 1000);
        assert_eq!(from_file.service.engine.max_depth, 20);
        assert_eq!(from_file.metrics_addr, None);
        assert_eq!(from_file.log_format, LogFormat::Json);
        assert_eq!(
            from_file.auth.jwt_issuers,
            vec!["https://issuer.example".to_string()]
        );
        match &from_file.auth.jwt_keys[..] {
            [JwtKeySource::PublicKeyFile { path, .. }] => {
                assert_eq!(path, &dir.path().join("keys/pub.pem"))
            }
            other => panic!("unexpected key sources {other:?}"),
        }

        let flags = parse(&[
            "--config",
            config,
            "--grpc-addr",
            "127.0.0.1:7000",
            "--grpc-preshared-key",
            "flag-key",
            "--datastore-gc-window",
            "90m",
            "--write-relationships-max-updates-per-call",
            "7",
            "--metrics-addr",
            "127.0.0.1:9999",
        ])
        .resolve()
        .unwrap();
        assert_eq!(flags.grpc_addr, "127.0.0.1:7000");
        assert_eq!(flags.auth.preshared_keys.len(), 1);
        assert_eq!(flags.auth.preshared_keys[0].expose(), "flag-key");
        assert_eq!(flags.gc_window, Duration::from_secs(90 * 60));
        assert_eq!(flags.service.max_updates_per_write, 7);
        assert_eq!(flags.metrics_addr.as_deref(), Some("127.0.0.1:9999"));
        // Not overridden: still from the file.
        assert_eq!(flags.service.engine.max_depth, 20);
    }

    #[test]
    fn http_settings_from_flags_and_file() {
        assert!(parse(&[]).resolve().unwrap().http.is_none());
        let s = parse(&["--http-enabled"]).resolve().unwrap();
        let http = s.http.unwrap();
        assert_eq!(http.addr, DEFAULT_HTTP_ADDR);
        assert_eq!(
            http.config.max_body_bytes,
            crate::http::DEFAULT_MAX_BODY_BYTES
        );
        let (_dir, path) = write_config(
            "http-enabled = true\nhttp-addr = \"0.0.0.0:9443\"\nhttp-max-body-bytes = 1000\n",
        );
        let config = path.to_str().unwrap();
        let http = parse(&["--config", config])
            .resolve()
            .unwrap()
            .http
            .unwrap();
        assert_eq!(http.addr, "0.0.0.0:9443");
        assert_eq!(http.config.max_body_bytes, 1000);
        assert!(
            parse(&["--config", config, "--http-enabled=false"])
                .resolve()
                .unwrap()
                .http
                .is_none()
        );
    }

    /// A boolean service setting that defaults to true: `--NAME=false` and `NAME = false` in
    /// the config file turn it off, and a bare `--NAME` on the command line wins over the file.
    fn true_by_default(name: &str, get: fn(&ServiceConfig) -> bool) {
        let service = |args: &[&str]| parse(args).resolve().unwrap().service;
        assert!(get(&service(&[])), "{name} defaults to true");
        assert!(
            !get(&service(&[&format!("--{name}=false")])),
            "--{name}=false"
        );
        let (_dir, path) = write_config(&format!("{name} = false\n"));
        let config = path.to_str().unwrap();
        assert!(
            !get(&service(&["--config", config])),
            "{name} = false in the file"
        );
        let flag = format!("--{name}");
        assert!(
            get(&service(&["--config", config, &flag])),
            "--{name} over the file"
        );
    }

    #[test]
    fn inline_checks_from_flags_and_file() {
        true_by_default("inline-checks", |s| s.inline_checks);
    }

    #[test]
    fn check_cache_carry_from_flags_and_file() {
        true_by_default("check-cache-carry", |s| s.check_cache_carry);
    }

    #[test]
    fn insecure_flag_forms() {
        assert!(
            parse(&["--insecure-no-auth"])
                .resolve()
                .unwrap()
                .auth
                .insecure
        );
        assert!(
            !parse(&["--insecure-no-auth=false"])
                .resolve()
                .unwrap()
                .auth
                .insecure
        );
        let (_dir, path) = write_config("insecure-no-auth = true\n");
        let config = path.to_str().unwrap();
        assert!(
            parse(&["--config", config])
                .resolve()
                .unwrap()
                .auth
                .insecure
        );
        // An explicit `false` on the command line beats the file.
        assert!(
            !parse(&["--config", config, "--insecure-no-auth=false"])
                .resolve()
                .unwrap()
                .auth
                .insecure
        );
    }

    #[test]
    fn bad_files_are_usage_errors_naming_the_problem() {
        let (_d, path) = write_config("grpc-adr = \"x\"\n");
        let err = parse(&["--config", path.to_str().unwrap()])
            .resolve()
            .unwrap_err();
        assert!(
            matches!(&err, CliError::Usage(m) if m.contains("grpc-adr")),
            "{err}"
        );

        let (_d, path) = write_config("datastore-gc-window = \"soon\"\n");
        let err = parse(&["--config", path.to_str().unwrap()])
            .resolve()
            .unwrap_err();
        assert!(
            matches!(&err, CliError::Usage(m) if m.contains("datastore-gc-window") && m.contains("soon")),
            "{err}"
        );

        let err = parse(&["--config", "/nonexistent/tessera.toml"])
            .resolve()
            .unwrap_err();
        assert!(
            matches!(&err, CliError::Usage(m) if m.contains("/nonexistent/tessera.toml")),
            "{err}"
        );
    }

    #[test]
    fn bad_flags() {
        let mut argv = vec!["tessera", "--datastore-gc-window", "forever"];
        assert!(Wrapper::try_parse_from(&argv).is_err());
        argv = vec!["tessera", "--max-updates-per-write", "0"];
        let err = Wrapper::try_parse_from(&argv)
            .unwrap()
            .serve
            .resolve()
            .unwrap_err();
        assert!(matches!(err, CliError::Usage(_)));
    }

    #[test]
    fn datastore_engine_flags_file_and_their_usage_errors() {
        let s = parse(&[]).resolve().unwrap();
        assert_eq!(
            (s.engine, s.postgres.is_none()),
            (DatastoreEngine::Rocksdb, true)
        );
        let s = parse(&[
            "--datastore-engine",
            "postgres",
            "--datastore-conn-uri",
            "postgres://tessera:secret@db:5432/authz",
            "--datastore-conn-pool-read-max-open",
            "7",
        ])
        .resolve()
        .unwrap();
        let pg = s.postgres.unwrap();
        assert_eq!(s.engine, DatastoreEngine::Postgres);
        assert_eq!((pg.read_pool, pg.write_pool), (7, DEFAULT_WRITE_POOL));
        assert!(!format!("{pg:?}").contains("secret"), "{pg:?}");

        let (_d, path) = write_config(
            "datastore-engine = \"postgres\"\n\
             datastore-conn-uri = \"postgres://u@h/db\"\n\
             datastore-read-replica-conn-uri = \"postgres://u@replica/db\"\n\
             datastore-conn-pool-write-max-open = 3\n",
        );
        let s = parse(&["--config", path.to_str().unwrap()])
            .resolve()
            .unwrap();
        let pg = s.postgres.unwrap();
        assert_eq!(pg.conn_uri, "postgres://u@h/db");
        assert_eq!(
            pg.read_replica_conn_uri.as_deref(),
            Some("postgres://u@replica/db")
        );
        assert_eq!(pg.write_pool, 3);

        for args in [
            &["--datastore-engine", "postgres"][..],
            &["--datastore-conn-uri", "postgres://u@h/db"][..],
            &[
                "--datastore-engine",
                "postgres",
                "--datastore-conn-uri",
                "postgres://u@h/db",
                "--datastore-conn-pool-write-max-open",
                "0",
            ][..],
        ] {
            let err = parse(args).resolve().unwrap_err();
            assert!(matches!(err, CliError::Usage(_)), "{args:?}: {err}");
        }
    }

    #[test]
    fn jwt_algorithms_are_split_by_key_family() {
        let s = parse(&[
            "--jwt-hs-secret-file",
            "/k/secret",
            "--jwt-public-key-file",
            "/k/pub.pem",
            "--jwt-algorithm",
            "HS512,ES256",
        ])
        .resolve()
        .unwrap();
        match &s.auth.jwt_keys[..] {
            [
                JwtKeySource::HmacSecretFile { algorithms: hs, .. },
                JwtKeySource::PublicKeyFile { algorithms: pk, .. },
            ] => {
                assert_eq!(hs, &vec![JwtAlgorithm::HS512]);
                assert_eq!(pk, &vec![JwtAlgorithm::ES256]);
            }
            other => panic!("unexpected key sources {other:?}"),
        }
        let err = parse(&[
            "--jwt-public-key-file",
            "/k/pub.pem",
            "--jwt-algorithm",
            "HS256",
        ])
        .resolve()
        .unwrap_err();
        assert!(
            matches!(&err, CliError::Usage(m) if m.contains("--jwt-hs-secret-file")),
            "{err}"
        );
        let err = parse(&[
            "--jwt-public-key-file",
            "/k/pub.pem",
            "--jwt-algorithm",
            "none",
        ])
        .resolve()
        .unwrap_err();
        assert!(
            matches!(&err, CliError::Usage(m) if m.contains("`none`")),
            "{err}"
        );
    }
}
