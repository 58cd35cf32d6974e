//! The gRPC server: the three `authzed.api.v1` services, Tessera's admin
//! `tessera.admin.v1.AccessService`, `grpc.health.v1` health and server reflection (v1 and
//! v1alpha), with graceful shutdown.
//!
//! Shutdown sequence: the shutdown future resolves → health turns NOT_SERVING, Watch streams
//! end with UNAVAILABLE (clients resume from their last token elsewhere) → the listener stops
//! accepting → in-flight calls finish → [`serve`] returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;
use tonic::transport::Server;

use crate::api::proto::authzed::api::v1 as pb;
use crate::api::proto::tessera::admin::v1 as admin_pb;
use crate::auth::Auth;
use crate::service::Tessera;

use super::access::AccessApi;
use super::call::Backend;
use super::edge_status::EdgeStatusLayer;
use super::permissions::PermissionsApi;
use super::schema::SchemaApi;
use super::watch::WatchApi;

/// Transport limits of the gRPC server. Every one bounds what a single caller can make the
/// server hold in memory before any authentication or validation runs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest request message decoded, in bytes (gRPC's own default: 4 MiB). A larger one
    /// is refused with RESOURCE_EXHAUSTED naming the sizes. Import streams send many
    /// messages, each within this.
    pub max_message_bytes: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// The default of [`ServerOptions::max_message_bytes`].
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 << 20;

/// The HTTP/2 header-list limit announced to clients, in bytes: room for an `authorization`
/// value several times [`crate::auth::MAX_AUTHORIZATION_LEN`], so an oversized token still
/// reaches the authenticator and gets UNAUTHENTICATED with a message (only headers beyond
/// this are refused by HTTP/2 itself, as its default of 16 KiB refused a 16 KiB token).
pub const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot read the listening address: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Serves Tessera's gRPC API on `listener` until `shutdown` resolves, then shuts down
/// gracefully: no new connections or calls are accepted, in-flight calls finish, and Watch
/// streams are closed.
pub async fn serve(
    listener: TcpListener,
    tessera: Arc<Tessera>,
    auth: Arc<Auth>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let max_message = options.max_message_bytes;
    let (stop_tx, stop_rx) = watch::channel(false);
    let backend = Backend {
        tessera: tessera.clone(),
        auth,
        shutdown: stop_rx.clone(),
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    let permissions = pb::permissions_service_server::PermissionsServiceServer::new(
        PermissionsApi::new(backend.clone()),
    )
    .max_decoding_message_size(max_message);
    let schema =
        pb::schema_service_server::SchemaServiceServer::new(SchemaApi::new(backend.clone()))
            .max_decoding_message_size(max_message);
    let access =
        admin_pb::access_service_server::AccessServiceServer::new(AccessApi::new(backend.clone()))
            .max_decoding_message_size(max_message);
    let watch_service = pb::watch_service_server::WatchServiceServer::new(WatchApi::new(backend))
        .max_decoding_message_size(max_message);
    let names = [
        service_name(&permissions),
        service_name(&schema),
        service_name(&watch_service),
        service_name(&access),
    ];
    let served: &'static [&'static str] = &[
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        <pb::permissions_service_server::PermissionsServiceServer<PermissionsApi> as NamedService>::NAME,
        <pb::schema_service_server::SchemaServiceServer<SchemaApi> as NamedService>::NAME,
        <pb::watch_service_server::WatchServiceServer<WatchApi> as NamedService>::NAME,
        <admin_pb::access_service_server::AccessServiceServer<AccessApi> as NamedService>::NAME,
    ];
    for name in names {
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    let follow_store = tokio::spawn(follow_store_health(tessera, health.clone(), names, stop_rx));

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::api::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::api::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: refusing new calls, finishing in-flight ones");
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        for name in names {
            health
                .set_service_status(name, tonic_health::ServingStatus::NotServing)
                .await;
        }
        // Ends Watch streams, which would otherwise keep the server draining forever.
        let _ = stop_tx.send(true);
    };

    // Checks are small request/response exchanges: Nagle's algorithm would delay them.
    let incoming = TcpListenerStream::new(listener).map(|conn| {
        conn.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot disable Nagle's algorithm on a connection");
            }
        })
    });

    Server::builder()
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .layer(EdgeStatusLayer::new(served))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(permissions)
        .add_service(schema)
        .add_service(watch_service)
        .add_service(access)
        .serve_with_incoming_shutdown(incoming, signal)
        .await?;
    follow_store.abort();
    tracing::info!("gRPC server stopped");
    Ok(())
}

/// How often health follows the datastore's reachability.
const STORE_HEALTH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Reports NOT_SERVING (overall and per service) while the datastore cannot be reached (a
/// shared database that is down), SERVING again once it answers; stops at shutdown, which
/// sets NOT_SERVING for good.
async fn follow_store_health(
    tessera: Arc<Tessera>,
    health: tonic_health::server::HealthReporter,
    names: [&'static str; 4],
    mut stopping: watch::Receiver<bool>,
) {
    let mut serving = true;
    loop {
        tokio::select! {
            () = tokio::time::sleep(STORE_HEALTH_INTERVAL) => {}
            _ = stopping.changed() => return,
        }
        if *stopping.borrow() {
            return;
        }
        let reachable = tessera.store().availability().is_ok();
        if reachable == serving {
            continue;
        }
        serving = reachable;
        let status = if reachable {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        health.set_service_status("", status).await;
        for name in names {
            health.set_service_status(name, status).await;
        }
    }
}

fn service_name<S: NamedService>(_: &S) -> &'static str {
    S::NAME
}

/// A server running in the background: its address, and a way to stop it.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl ServerHandle {
    /// Starts [`serve`] with default [`ServerOptions`] on `listener` in a background task.
    pub fn start(
        listener: TcpListener,
        tessera: Arc<Tessera>,
        auth: Arc<Auth>,
    ) -> Result<ServerHandle, ServeError> {
        Self::start_with(listener, tessera, auth, ServerOptions::default())
    }

    /// Starts [`serve`] on `listener` in a background task.
    pub fn start_with(
        listener: TcpListener,
        tessera: Arc<Tessera>,
        auth: Arc<Auth>,
        options: ServerOptions,
    ) -> Result<ServerHandle, ServeError> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, tessera, auth, options, async move {
            // A dropped handle also stops the server.
            let _ = stopped.await;
        }));
        Ok(ServerHandle {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }
}
