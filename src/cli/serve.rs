//! `tessera serve`: the durable gRPC server, and with `--http-enabled` the HTTP/JSON API.
//!
//! Startup: resolve settings → logging → authentication (refusing to run with no credentials
//! unless `--insecure-no-auth`) → open the datastore (RocksDB in `--data-dir`, or a migrated
//! PostgreSQL database; background GC on) → bind the gRPC, HTTP and metrics listeners → serve.
//!
//! Shutdown on SIGINT or SIGTERM: both servers stop accepting, let in-flight calls finish (for
//! at most `--shutdown-timeout`; a second signal cuts the wait short), flush and close the
//! store, exit 0.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::auth::{Auth, AuthConfig, JwtKeySource};
use crate::service::Tessera;
use crate::store::Store;
use crate::store::postgres::{OpenError, PostgresOptions, PostgresStore};
use crate::store::rocks::{RocksOptions, RocksStore};

use super::config::{DatastoreEngine, LogFormat, PostgresSettings, ServeArgs, ServeSettings};
use super::error::{CliError, EXIT_OK};
use super::metrics;

/// How long, after the server stops, background tasks still holding the store may take.
const RUNTIME_DRAIN: Duration = Duration::from_secs(5);

/// Runs `tessera serve`; returns the process exit code.
pub fn run(args: &ServeArgs) -> Result<u8, CliError> {
    let settings = args.resolve()?;
    init_logging(settings.log_format, &settings.log_level)?;
    let auth = build_auth(&settings.auth)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tessera")
        .build()
        .map_err(|e| CliError::io("cannot start the async runtime", e))?;
    let result = runtime.block_on(serve(settings, auth));
    // Tasks still running (e.g. calls cut off by the shutdown timeout) are dropped here, which
    // releases their hold on the store before it closes.
    runtime.shutdown_timeout(RUNTIME_DRAIN);
    let store = result?;
    drop(store);
    tracing::info!("store closed; goodbye");
    Ok(EXIT_OK)
}

/// Transport crates whose debug output is frame-level noise (and could echo request
/// headers): kept at `warn` unless the filter names them explicitly.
const QUIET_CRATES: &[&str] = &["h2", "hyper", "hyper_util", "tower", "tonic"];

/// The log filter for `--log-level`: the operator's filter plus [`QUIET_CRATES`] at `warn`.
fn log_filter(level: &str) -> String {
    let mut filter = level.trim().to_string();
    for name in QUIET_CRATES {
        let named = filter
            .split(',')
            .any(|d| d.trim().split(['=', ':', '[']).next() == Some(*name));
        if !named {
            filter.push_str(&format!(",{name}=warn"));
        }
    }
    filter
}

fn init_logging(format: LogFormat, level: &str) -> Result<(), CliError> {
    let filter = EnvFilter::try_new(log_filter(level))
        .map_err(|e| CliError::Usage(format!("invalid --log-level `{level}`: {e}")))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    installed.map_err(|e| CliError::Failed(format!("cannot set up logging: {e}")))
}

fn build_auth(config: &AuthConfig) -> Result<Arc<Auth>, CliError> {
    let auth = Auth::from_config(config.clone()).map_err(|e| {
        use crate::auth::AuthConfigError as E;
        match e {
            E::NoCredentials | E::InsecureWithCredentials | E::LeewayTooLarge { .. } => {
                CliError::Usage(e.to_string())
            }
            other => CliError::Failed(other.to_string()),
        }
    })?;
    if auth.is_insecure() {
        tracing::warn!(
            "AUTHENTICATION IS DISABLED (--insecure-no-auth): every caller is an anonymous \
             administrator who may read and change everything. Never use this outside development."
        );
    } else {
        let count =
            |pred: fn(&JwtKeySource) -> bool| config.jwt_keys.iter().filter(|k| pred(k)).count();
        // Counts and paths only: never a key or a secret.
        tracing::info!(
            preshared_keys = config.preshared_keys.len(),
            jwt_hmac_secrets = count(|k| matches!(
                k,
                JwtKeySource::HmacSecret { .. } | JwtKeySource::HmacSecretFile { .. }
            )),
            jwt_public_keys = count(|k| matches!(k, JwtKeySource::PublicKeyFile { .. })),
            jwt_jwks_files = count(|k| matches!(k, JwtKeySource::JwksFile { .. })),
            jwt_issuers = ?config.jwt_issuers,
            jwt_audiences = ?config.jwt_audiences,
            jwt_leeway = ?config.jwt_leeway,
            "authentication configured"
        );
    }
    Ok(Arc::new(auth))
}

/// Opens the store in `settings.data_dir`, explaining the usual failure (another process).
pub(crate) fn open_store(
    data_dir: &std::path::Path,
    options: RocksOptions,
) -> Result<RocksStore, CliError> {
    if let Err(e) = std::fs::create_dir_all(data_dir) {
        return Err(CliError::io(
            format!("cannot create the data directory `{}`", data_dir.display()),
            e,
        ));
    }
    RocksStore::open(data_dir, options).map_err(|e| {
        let message = e.to_string();
        if message.to_ascii_lowercase().contains("lock") {
            CliError::Failed(format!(
                "the data directory `{}` is in use by another process (is `tessera serve` \
                 running on it?): {message}",
                data_dir.display()
            ))
        } else {
            CliError::Failed(message)
        }
    })
}

/// Opens the PostgreSQL datastore, explaining the usual failures (not migrated, unreachable).
fn open_postgres(
    settings: &PostgresSettings,
    gc_window: Duration,
    gc_interval: Duration,
) -> Result<PostgresStore, CliError> {
    let options = PostgresOptions {
        read_replica_conn_uri: settings.read_replica_conn_uri.clone(),
        read_pool_size: settings.read_pool,
        write_pool_size: settings.write_pool,
        gc_window,
        gc_interval: Some(gc_interval),
        ..PostgresOptions::new(settings.conn_uri.clone())
    };
    PostgresStore::open(options).map_err(|e| match e {
        OpenError::InvalidUri(_) => CliError::Usage(format!("--datastore-conn-uri: {e}")),
        other => CliError::Failed(other.to_string()),
    })
}

/// The open datastore, for what only one engine does at shutdown.
enum Opened {
    Rocks(Arc<RocksStore>),
    Postgres,
}

/// Waits for SIGINT or SIGTERM; returns the signal's name.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, CliError> {
        let install =
            |kind| signal(kind).map_err(|e| CliError::io("cannot install signal handlers", e));
        Ok(Signals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

async fn bind(addr: &str, what: &str, flag: &str) -> Result<TcpListener, CliError> {
    TcpListener::bind(addr).await.map_err(|e| {
        CliError::Failed(format!(
            "cannot listen for {what} on `{addr}` ({flag}): {e}"
        ))
    })
}

/// Serves until a signal and a graceful drain; returns the store for the caller to close
/// once the runtime (and every task holding the store) is gone.
async fn serve(settings: ServeSettings, auth: Arc<Auth>) -> Result<Arc<dyn Store>, CliError> {
    // Installed first, so a signal during startup is not fatal and still shuts down cleanly.
    let mut signals = Signals::install()?;

    let metrics_handle = match &settings.metrics_addr {
        Some(_) => Some(metrics::install_recorder()?),
        None => None,
    };

    let (opened, store, datastore): (Opened, Arc<dyn Store>, String) =
        match (settings.engine, &settings.postgres) {
            (DatastoreEngine::Postgres, Some(pg)) => {
                let pg = pg.clone();
                let (window, interval) = (settings.gc_window, settings.gc_interval);
                let store = Arc::new(
                    tokio::task::spawn_blocking(move || open_postgres(&pg, window, interval))
                        .await
                        .map_err(|e| {
                            CliError::Failed(format!("opening the datastore failed: {e}"))
                        })??,
                );
                let described = format!("postgres at {}", store.target());
                (Opened::Postgres, store, described)
            }
            _ => {
                let options = RocksOptions {
                    gc_window: settings.gc_window,
                    gc_interval: Some(settings.gc_interval),
                    ..RocksOptions::default()
                };
                let data_dir = settings.data_dir.clone();
                let rocks = Arc::new(
                    tokio::task::spawn_blocking(move || open_store(&data_dir, options))
                        .await
                        .map_err(|e| {
                            CliError::Failed(format!("opening the store failed: {e}"))
                        })??,
                );
                let described = format!("rocksdb in {}", settings.data_dir.display());
                (Opened::Rocks(rocks.clone()), rocks, described)
            }
        };
    let head = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.head_revision())
            .await
            .map_err(|e| CliError::Failed(format!("reading the head revision failed: {e}")))?
            .map_err(|e| CliError::Failed(e.to_string()))?
    };
    let tessera = Arc::new(Tessera::new(store.clone(), settings.service.clone()));
    // Nested-group indexes a store written by an older version lacks are built in the
    // background: evaluation walks those relations until then, so serving need not wait.
    {
        let tessera = tessera.clone();
        tokio::task::spawn_blocking(move || match tessera.rebuild_indexes() {
            Ok(Some(revision)) => {
                tracing::info!(revision = revision.0, "built the nested-group indexes")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e.message, "building the nested-group indexes failed; evaluation walks nested groups until a schema write builds them")
            }
        });
    }

    let grpc_listener = bind(&settings.grpc_addr, "gRPC", "--grpc-addr").await?;
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|e| CliError::io("cannot read the gRPC listening address", e))?;
    let http_listener = match &settings.http {
        Some(http) => {
            let listener = bind(&http.addr, "HTTP", "--http-addr").await?;
            let addr = listener
                .local_addr()
                .map_err(|e| CliError::io("cannot read the HTTP listening address", e))?;
            Some((listener, addr, http.config.clone()))
        }
        None => None,
    };
    let mut background = Vec::new();
    let metrics_addr = match (&settings.metrics_addr, metrics_handle) {
        (Some(addr), Some(handle)) => {
            let listener = bind(addr, "metrics", "--metrics-addr").await?;
            let bound = listener
                .local_addr()
                .map_err(|e| CliError::io("cannot read the metrics listening address", e))?;
            background.push(tokio::spawn(metrics::run_upkeep(handle.clone())));
            background.push(tokio::spawn(metrics::serve(listener, handle)));
            let disk = matches!(opened, Opened::Rocks(_)).then(|| settings.data_dir.clone());
            background.push(tokio::spawn(metrics::run_store_gauges(
                tessera.clone(),
                disk,
            )));
            Some(bound.to_string())
        }
        _ => None,
    };

    let http_addr = http_listener
        .as_ref()
        .map_or_else(|| "disabled".to_string(), |(_, addr, _)| addr.to_string());
    tracing::info!(
        grpc_addr = %grpc_addr,
        http_addr = %http_addr,
        metrics_addr = metrics_addr.as_deref().unwrap_or("disabled"),
        datastore = %datastore,
        head_revision = head.0,
        gc_window = %humantime::format_duration(settings.gc_window),
        version = env!("CARGO_PKG_VERSION"),
        "tessera is serving"
    );

    // `stopping` turns true on the first signal; the server drains from then on.
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let mut drain_deadline = stopping_rx.clone();
    let shutdown_timeout = settings.shutdown_timeout;
    let mut http_stopping = stopping_rx.clone();
    let grpc = crate::api::serve(
        grpc_listener,
        tessera.clone(),
        auth.clone(),
        settings.grpc.clone(),
        async move {
            let _ = stopping_rx.wait_for(|s| *s).await;
        },
    );
    let http_tessera = tessera.clone();
    let http = async move {
        match http_listener {
            Some((listener, _, config)) => {
                crate::http::serve(listener, http_tessera, auth, config, async move {
                    let _ = http_stopping.wait_for(|s| *s).await;
                })
                .await
            }
            None => Ok(()),
        }
    };
    // Both servers run until both have stopped; either failing stops the other and the process.
    let server = async {
        tokio::try_join!(async { grpc.await.map_err(|e| e.to_string()) }, async {
            http.await
                .map_err(|e| format!("the HTTP server failed: {e}"))
        },)
        .map(drop)
    };
    tokio::pin!(server);

    let first_signal = async {
        let name = signals.next().await;
        tracing::info!(
            signal = name,
            "shutting down: no new calls; waiting for in-flight calls"
        );
        let _ = stopping_tx.send(true);
    };
    let outcome = tokio::select! {
        result = &mut server => Some(result),
        () = first_signal => None,
    };
    let outcome = match outcome {
        Some(result) => result,
        None => {
            let cut_short = async {
                let _ = drain_deadline.wait_for(|s| *s).await;
                tokio::select! {
                    () = tokio::time::sleep(shutdown_timeout) => {
                        tracing::warn!(
                            timeout = %humantime::format_duration(shutdown_timeout),
                            "in-flight calls did not finish in time; closing them"
                        );
                    }
                    name = signals.next() => {
                        tracing::warn!(signal = name, "second signal: closing in-flight calls now");
                    }
                }
            };
            tokio::select! {
                result = &mut server => result,
                () = cut_short => Ok(()),
            }
        }
    };
    for task in background {
        task.abort();
    }
    drop(tessera);
    if let Err(e) = outcome {
        // The store is still closed properly by the caller.
        tracing::error!(error = %e, "a server failed");
        return Err(CliError::Failed(e));
    }
    if let Opened::Rocks(rocks) = &opened {
        match rocks.flush() {
            Ok(()) => tracing::info!("store flushed"),
            Err(e) => {
                tracing::warn!(error = %e, "flushing the store failed; it will replay its log on the next start")
            }
        }
    }
    drop(opened);
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_crates_stay_quiet_unless_named() {
        assert_eq!(
            log_filter("debug"),
            "debug,h2=warn,hyper=warn,hyper_util=warn,tower=warn,tonic=warn"
        );
        assert_eq!(
            log_filter("info,h2=trace,tonic::transport=debug"),
            "info,h2=trace,tonic::transport=debug,hyper=warn,hyper_util=warn,tower=warn"
        );
        assert!(EnvFilter::try_new(log_filter("info,tessera::api=debug")).is_ok());
    }
}
