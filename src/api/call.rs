//! What every RPC handler shares: the backend (service, auth, shutdown signal), caller
//! authentication from request metadata, running blocking work off the async runtime, a
//! tracing span and per-RPC metrics, and the plumbing of server-streaming responses.
//!
//! Metrics follow the names of the Go gRPC Prometheus middleware, which the reference server
//! exports, so existing dashboards carry over:
//! - `grpc_server_started_total{grpc_service, grpc_method, grpc_type}`
//! - `grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}`
//! - `grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type}` (for streams: until
//!   the stream ends)

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument as _;

use crate::auth::{Auth, Caller, Capability};
use crate::service::{ErrorKind, ServiceError, Tessera};

use super::error;

/// How many responses a stream may buffer ahead of a slow client before its producer waits.
const STREAM_BUFFER: usize = 128;

/// The service, the authenticator and the server's shutdown signal, shared by all handlers.
#[derive(Clone)]
pub(crate) struct Backend {
    pub tessera: Arc<Tessera>,
    pub auth: Arc<Auth>,
    /// Becomes `true` when the server starts shutting down; long-lived streams (Watch) end.
    pub shutdown: watch::Receiver<bool>,
}

impl Backend {
    /// Authenticates the caller of `request` from its `authorization` metadata and records
    /// its identity on the current span.
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, ServiceError> {
        let header = match request.metadata().get("authorization") {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                ServiceError::new(
                    ErrorKind::Unauthenticated,
                    "the `authorization` metadata is not valid text",
                )
            })?),
        };
        let caller = self.auth.authenticate(header).map_err(error::auth)?;
        tracing::Span::current().record("caller", caller.id.as_str());
        Ok(caller)
    }

    /// Checks that `caller` may use `capability`. Blocking (the engine decides): call it
    /// inside [`Backend::blocking`].
    pub fn authorize(&self, caller: &Caller, capability: &Capability) -> Result<(), ServiceError> {
        self.auth
            .authorize(&self.tessera, caller, capability)
            .map_err(error::auth)
    }

    /// The common shape of a unary RPC: metrics and span, authentication, `prepare` (the
    /// request's validation, on the async side), then on the blocking pool the authorization
    /// of `capability` and `body`.
    pub async fn authorized_unary<Req, P, T>(
        &self,
        service: &'static str,
        method: &'static str,
        request: Request<Req>,
        capability: Capability,
        prepare: impl FnOnce(Req) -> Result<P, ServiceError>,
        body: impl FnOnce(&Backend, &Caller, P) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<Response<T>, Status>
    where
        P: Send + 'static,
        T: Send + 'static,
    {
        let rpc = Rpc::start(service, method, RpcType::Unary);
        let backend = self.clone();
        rpc.unary(async move {
            let caller = backend.authenticate(&request)?;
            let prepared = prepare(request.into_inner())?;
            backend
                .blocking(move |b| {
                    b.authorize(&caller, &capability)?;
                    body(b, &caller, prepared)
                })
                .await
        })
        .await
    }

    /// Runs synchronous store/engine work on the blocking pool, inside the current span.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&Backend) -> Result<T, ServiceError> + Send + 'static,
    {
        let backend = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&backend)))
            .await
            .map_err(error::join)?
    }
}

/// The shape of an RPC, as the metrics label it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RpcType {
    Unary,
    ServerStream,
    ClientStream,
}

impl RpcType {
    fn label(self) -> &'static str {
        match self {
            RpcType::Unary => "unary",
            RpcType::ServerStream => "server_stream",
            RpcType::ClientStream => "client_stream",
        }
    }
}

/// One RPC in flight: its span, its start time, and its metrics once it ends.
pub(crate) struct Rpc {
    service: &'static str,
    method: &'static str,
    rpc_type: RpcType,
    started: Instant,
    span: tracing::Span,
}

/// Why a stream's producer stopped early.
pub(crate) enum StreamEnd {
    /// The request failed; the status ends the stream.
    Failed(ServiceError),
    /// The client went away (cancelled or disconnected).
    ClientGone,
}

impl From<ServiceError> for StreamEnd {
    fn from(e: ServiceError) -> Self {
        StreamEnd::Failed(e)
    }
}

/// The sending side of a server stream.
pub(crate) struct Sink<T> {
    tx: mpsc::Sender<Result<T, Status>>,
}

impl<T> Sink<T> {
    /// Sends from blocking code; waits while the client is slow.
    pub fn send_blocking(&self, item: T) -> Result<(), StreamEnd> {
        self.tx
            .blocking_send(Ok(item))
            .map_err(|_| StreamEnd::ClientGone)
    }

    /// Sends from async code; waits while the client is slow.
    pub async fn send(&self, item: T) -> Result<(), StreamEnd> {
        self.tx
            .send(Ok(item))
            .await
            .map_err(|_| StreamEnd::ClientGone)
    }

    /// Resolves once the client has gone away.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// A server stream's response type.
pub(crate) type ResponseStream<T> = ReceiverStream<Result<T, Status>>;

impl Rpc {
    pub fn start(service: &'static str, method: &'static str, rpc_type: RpcType) -> Rpc {
        let span = tracing::info_span!(
            "rpc",
            service = service,
            method = method,
            caller = tracing::field::Empty
        );
        metrics::counter!(
            "grpc_server_started_total",
            "grpc_service" => service,
            "grpc_method" => method,
            "grpc_type" => rpc_type.label()
        )
        .increment(1);
        Rpc {
            service,
            method,
            rpc_type,
            started: Instant::now(),
            span,
        }
    }

    fn finish(self, code: Code) {
        let elapsed = self.started.elapsed();
        metrics::counter!(
            "grpc_server_handled_total",
            "grpc_service" => self.service,
            "grpc_method" => self.method,
            "grpc_type" => self.rpc_type.label(),
            "grpc_code" => error::code_name(code)
        )
        .increment(1);
        metrics::histogram!(
            "grpc_server_handling_seconds",
            "grpc_service" => self.service,
            "grpc_method" => self.method,
            "grpc_type" => self.rpc_type.label()
        )
        .record(elapsed.as_secs_f64());
        self.span.in_scope(|| {
            tracing::debug!(
                code = error::code_name(code),
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "rpc finished"
            );
        });
    }

    fn fail(self, e: ServiceError) -> Status {
        let status = self.span.in_scope(|| error::status(e));
        self.finish(status.code());
        status
    }

    /// Runs a unary (or client-streaming) handler body and records its outcome.
    pub async fn unary<T>(
        self,
        body: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<Response<T>, Status> {
        match body.instrument(self.span.clone()).await {
            Ok(v) => {
                self.finish(Code::Ok);
                Ok(Response::new(v))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// A server-streaming RPC whose items come from blocking code: `setup` authenticates,
    /// validates and does the first (failable) work so errors are the call's status; the
    /// producer it returns then runs on the blocking pool and feeds the stream.
    pub async fn server_stream<T, P>(
        self,
        setup: impl Future<Output = Result<P, ServiceError>>,
    ) -> Result<Response<ResponseStream<T>>, Status>
    where
        T: Send + 'static,
        P: FnOnce(&Sink<T>) -> Result<(), StreamEnd> + Send + 'static,
    {
        let producer = match setup.instrument(self.span.clone()).await {
            Ok(p) => p,
            Err(e) => return Err(self.fail(e)),
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let sink = Sink { tx: tx.clone() };
        let span = self.span.clone();
        let task = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                // A panic must end the stream with an error, never look like a complete result.
                std::panic::catch_unwind(AssertUnwindSafe(|| producer(&sink))).unwrap_or_else(
                    |_| {
                        Err(StreamEnd::Failed(error::internal(
                            "the server failed while producing this stream",
                        )))
                    },
                )
            })
        });
        tokio::spawn(async move {
            let end = task
                .await
                .unwrap_or_else(|e| Err(StreamEnd::Failed(error::join(e))));
            self.end_stream(end, tx).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    /// A server-streaming RPC whose producer is async (it waits for events, e.g. Watch).
    pub async fn server_stream_async<T, P, F>(
        self,
        setup: impl Future<Output = Result<P, ServiceError>>,
    ) -> Result<Response<ResponseStream<T>>, Status>
    where
        T: Send + 'static,
        P: FnOnce(Sink<T>) -> F + Send + 'static,
        F: Future<Output = Result<(), StreamEnd>> + Send + 'static,
    {
        let producer = match setup.instrument(self.span.clone()).await {
            Ok(p) => p,
            Err(e) => return Err(self.fail(e)),
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let sink = Sink { tx: tx.clone() };
        let task = tokio::spawn(producer(sink).instrument(self.span.clone()));
        tokio::spawn(async move {
            let end = task
                .await
                .unwrap_or_else(|e| Err(StreamEnd::Failed(error::join(e))));
            self.end_stream(end, tx).await;
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn end_stream<T>(self, end: Result<(), StreamEnd>, tx: mpsc::Sender<Result<T, Status>>) {
        match end {
            Ok(()) => self.finish(Code::Ok),
            Err(StreamEnd::ClientGone) => self.finish(Code::Cancelled),
            Err(StreamEnd::Failed(e)) => {
                let status = self.fail(e);
                // The client may be gone already; then there is nobody to tell.
                let _ = tx.send(Err(status)).await;
            }
        }
    }
}
