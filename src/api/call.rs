//! What every call shares, whichever transport carries it: the backend (service, auth,
//! shutdown signal), caller authentication from the `authorization` value, the one authorized
//! path ([`Backend::execute`] → [`Tessera::execute`] on the blocking pool), a tracing span,
//! per-RPC metrics for gRPC, and the plumbing of server-streaming responses.
//!
//! Each RPC is described once as a [`Unary`] or [`ServerStream`]: the translation of its
//! request message into a service request, and of the result back into response messages. The
//! gRPC services and the HTTP/JSON gateway (`crate::http`) both run these descriptions, so the
//! two transports cannot drift apart.
//!
//! gRPC metrics follow the names of the Go gRPC Prometheus middleware, which the reference
//! server exports, so existing dashboards carry over:
//! - `grpc_server_started_total{grpc_service, grpc_method, grpc_type}`
//! - `grpc_server_handled_total{grpc_service, grpc_method, grpc_type, grpc_code}`
//! - `grpc_server_handling_seconds{grpc_service, grpc_method, grpc_type}` (for streams: until
//!   the stream ends)

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument as _;

use crate::auth::{Auth, Caller};
use crate::service::{self, ErrorKind, ServiceError, Tessera};

use super::error;

/// How many batches of responses (of at most [`SINK_BATCH`]) a stream may buffer ahead of a
/// slow client before its producer waits: with the batch the producer holds, at most 128
/// responses per stream wait in memory.
const STREAM_BUFFER: usize = 1;

/// The service, the authenticator and the server's shutdown signal, shared by all handlers.
#[derive(Clone)]
pub struct Backend {
    pub tessera: Arc<Tessera>,
    pub auth: Arc<Auth>,
    /// Becomes `true` when the server starts shutting down; long-lived streams (Watch) end.
    pub shutdown: watch::Receiver<bool>,
}

/// A unary RPC: how its request message becomes a service request and the result a response.
pub trait Unary: Send + 'static {
    /// The gRPC service and method, for spans and metrics.
    const SERVICE: &'static str;
    const METHOD: &'static str;
    type Request: prost::Message + prost::Name + Default + Send + 'static;
    type Response: prost::Message + prost::Name + Send + 'static;
    type Op: service::Request;
    /// Validates and converts the request (on the async side, before authorization).
    fn request(req: Self::Request) -> Result<Self::Op, ServiceError>;
    /// Converts the service's result.
    fn response(
        out: <Self::Op as service::Request>::Output,
    ) -> Result<Self::Response, ServiceError>;
}

/// A server-streaming RPC: its request's translation and the producer of its responses.
pub trait ServerStream: Send + 'static {
    const SERVICE: &'static str;
    const METHOD: &'static str;
    type Request: prost::Message + prost::Name + Default + Send + 'static;
    type Item: prost::Message + prost::Name + Send + 'static;
    type Op: service::Request;
    fn request(req: Self::Request) -> Result<Self::Op, ServiceError>;
    /// The producer of the stream's responses from the service's (first) result.
    fn producer(
        backend: &Backend,
        out: <Self::Op as service::Request>::Output,
    ) -> Producer<Self::Item>;
}

/// A boxed future producing a stream.
pub type ProducerFuture = Pin<Box<dyn Future<Output = Result<(), StreamEnd>> + Send>>;

/// A stream producer run on the blocking pool.
pub type BlockingProducer<T> = Box<dyn FnOnce(&Sink<T>) -> Result<(), StreamEnd> + Send>;

/// A stream producer that waits for events on the async runtime.
pub type AsyncProducer<T> = Box<dyn FnOnce(Sink<T>) -> ProducerFuture + Send>;

/// Feeds a stream: from blocking code (store reads page by page) or from async code that
/// waits for events (Watch).
pub enum Producer<T> {
    Blocking(BlockingProducer<T>),
    Async(AsyncProducer<T>),
}

impl Backend {
    /// Authenticates a caller from its `authorization` value (`bearer <token>`) and records its
    /// identity on the current span.
    pub fn authenticate_header(&self, header: Option<&str>) -> Result<Caller, ServiceError> {
        let caller = self.auth.authenticate(header).map_err(error::auth)?;
        tracing::Span::current().record("caller", caller.id.as_str());
        Ok(caller)
    }

    /// Authenticates the caller of a gRPC request from its `authorization` metadata.
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
        self.authenticate_header(header)
    }

    /// The one authorized path: runs `request` for `caller` through [`Tessera::execute`]
    /// (limits, the capability table, the operation) on the blocking pool — or right here on
    /// the async worker when the service says it is short and its reads are local
    /// ([`Tessera::runs_inline`]).
    pub async fn execute<R: service::Request>(
        &self,
        caller: Caller,
        request: R,
    ) -> Result<R::Output, ServiceError> {
        if self.tessera.runs_inline(&request) {
            return self.tessera.execute(&self.auth, &caller, request);
        }
        self.blocking(move |b| b.tessera.execute(&b.auth, &caller, request))
            .await
    }

    /// Runs a unary RPC for an authenticated caller.
    pub async fn call<U: Unary>(
        &self,
        caller: Caller,
        request: U::Request,
    ) -> Result<U::Response, ServiceError> {
        let op = U::request(request)?;
        let out = self.execute(caller, op).await?;
        U::response(out)
    }

    /// Opens a server stream for an authenticated caller: errors before the first response
    /// are the call's error.
    pub async fn open<S: ServerStream>(
        &self,
        caller: Caller,
        request: S::Request,
    ) -> Result<Producer<S::Item>, ServiceError> {
        let op = S::request(request)?;
        let out = self.execute(caller, op).await?;
        Ok(S::producer(self, out))
    }

    /// A unary RPC over gRPC: metrics and span, authentication, then [`Backend::call`].
    pub async fn grpc_unary<U: Unary>(
        &self,
        request: Request<U::Request>,
    ) -> Result<Response<U::Response>, Status> {
        let rpc = Rpc::grpc(U::SERVICE, U::METHOD, RpcType::Unary);
        rpc.unary(async {
            let caller = self.authenticate(&request)?;
            self.call::<U>(caller, request.into_inner()).await
        })
        .await
    }

    /// A server-streaming RPC over gRPC.
    pub async fn grpc_stream<S: ServerStream>(
        &self,
        request: Request<S::Request>,
    ) -> Result<Response<GrpcStream<S::Item>>, Status> {
        let rpc = Rpc::grpc(S::SERVICE, S::METHOD, RpcType::ServerStream);
        let opened = async {
            let caller = self.authenticate(&request)?;
            self.open::<S>(caller, request.into_inner()).await
        }
        .instrument(rpc.span.clone())
        .await;
        match opened {
            Ok(producer) => {
                let stream = rpc.run(producer);
                Ok(Response::new(Box::pin(
                    stream.map(|item| item.map_err(|e| error::to_status(&e))),
                )))
            }
            Err(e) => Err(rpc.fail_grpc(e)),
        }
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

/// A gRPC server stream's response type.
pub type GrpcStream<T> =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The shape of an RPC, as the metrics label it.
#[derive(Debug, Clone, Copy)]
pub enum RpcType {
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

/// Which transport a call came in on: gRPC calls record the gRPC metrics here; HTTP requests
/// are measured per route by the HTTP server's middleware.
#[derive(Debug, Clone, Copy)]
enum Transport {
    Grpc {
        service: &'static str,
        method: &'static str,
        rpc_type: RpcType,
    },
    Http,
}

/// One call in flight: its span, its start time, and its metrics once it ends.
pub struct Rpc {
    transport: Transport,
    started: Instant,
    pub span: tracing::Span,
}

/// Why a stream's producer stopped early.
pub enum StreamEnd {
    /// The request failed; the error ends the stream.
    Failed(ServiceError),
    /// The client went away (cancelled or disconnected).
    ClientGone,
}

impl From<ServiceError> for StreamEnd {
    fn from(e: ServiceError) -> Self {
        StreamEnd::Failed(e)
    }
}

/// Most responses a blocking producer gathers into one batch for the channel.
const SINK_BATCH: usize = 64;

/// The sending side of a server stream.
///
/// A blocking producer's items travel in batches: an item is held back while the consumer
/// still has earlier batches to send (so waking it again would only cost a context switch)
/// and handed over as soon as the consumer has drained the channel, or the batch is full.
/// The first response of a stream therefore leaves at once, and a long stream costs one
/// hand-over per batch instead of one per response.
pub struct Sink<T> {
    tx: mpsc::Sender<Vec<Result<T, ServiceError>>>,
    held: parking_lot::Mutex<Vec<Result<T, ServiceError>>>,
}

impl<T> Sink<T> {
    /// Sends from blocking code; waits while the client is slow.
    pub fn send_blocking(&self, item: T) -> Result<(), StreamEnd> {
        let batch = {
            let mut held = self.held.lock();
            held.push(Ok(item));
            let idle = self.tx.capacity() == self.tx.max_capacity();
            if held.len() < SINK_BATCH && !idle {
                return Ok(());
            }
            std::mem::take(&mut *held)
        };
        self.tx
            .blocking_send(batch)
            .map_err(|_| StreamEnd::ClientGone)
    }

    /// Hands over what a blocking producer still holds (when it has finished).
    fn flush_blocking(&self) -> Result<(), StreamEnd> {
        let batch = std::mem::take(&mut *self.held.lock());
        if batch.is_empty() {
            return Ok(());
        }
        self.tx
            .blocking_send(batch)
            .map_err(|_| StreamEnd::ClientGone)
    }

    /// Sends from async code; waits while the client is slow.
    pub async fn send(&self, item: T) -> Result<(), StreamEnd> {
        self.tx
            .send(vec![Ok(item)])
            .await
            .map_err(|_| StreamEnd::ClientGone)
    }

    /// Resolves once the client has gone away.
    pub async fn closed(&self) {
        self.tx.closed().await
    }
}

/// The items of a running stream: responses, then possibly one final error.
pub type ItemStream<T> =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<T, ServiceError>> + Send + 'static>>;

impl Rpc {
    /// A gRPC call: counted as started now.
    pub fn grpc(service: &'static str, method: &'static str, rpc_type: RpcType) -> Rpc {
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
            transport: Transport::Grpc {
                service,
                method,
                rpc_type,
            },
            started: Instant::now(),
            span,
        }
    }

    /// An HTTP request to `route`.
    pub fn http(route: &'static str) -> Rpc {
        let span = tracing::info_span!("http", route = route, caller = tracing::field::Empty);
        Rpc {
            transport: Transport::Http,
            started: Instant::now(),
            span,
        }
    }

    fn finish(&self, code: Code) {
        let elapsed = self.started.elapsed();
        if let Transport::Grpc {
            service,
            method,
            rpc_type,
        } = self.transport
        {
            metrics::counter!(
                "grpc_server_handled_total",
                "grpc_service" => service,
                "grpc_method" => method,
                "grpc_type" => rpc_type.label(),
                "grpc_code" => error::code_name(code)
            )
            .increment(1);
            metrics::histogram!(
                "grpc_server_handling_seconds",
                "grpc_service" => service,
                "grpc_method" => method,
                "grpc_type" => rpc_type.label()
            )
            .record(elapsed.as_secs_f64());
        }
        self.span.in_scope(|| {
            tracing::debug!(
                code = error::code_name(code),
                elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                "call finished"
            );
        });
    }

    /// Records a failed call (logging internal errors) and returns the error.
    pub fn fail(&self, e: ServiceError) -> ServiceError {
        if e.kind == ErrorKind::Internal {
            self.span
                .in_scope(|| tracing::error!(error = %e.message, "internal error"));
        }
        self.finish(error::code(e.kind));
        e
    }

    fn fail_grpc(&self, e: ServiceError) -> Status {
        error::to_status(&self.fail(e))
    }

    /// Records a successful call.
    pub fn succeed(&self) {
        self.finish(Code::Ok);
    }

    /// Runs a unary (or client-streaming) gRPC handler body and records its outcome.
    pub async fn unary<T>(
        self,
        body: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<Response<T>, Status> {
        match body.instrument(self.span.clone()).await {
            Ok(v) => {
                self.succeed();
                Ok(Response::new(v))
            }
            Err(e) => Err(self.fail_grpc(e)),
        }
    }

    /// Runs a stream's producer in the background (blocking ones on the blocking pool); the
    /// returned stream yields its items and, when it fails, one final error. The call's
    /// outcome is recorded when the producer ends.
    pub fn run<T: Send + 'static>(self, producer: Producer<T>) -> ItemStream<T> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let sink = Sink {
            tx: tx.clone(),
            held: Default::default(),
        };
        let span = self.span.clone();
        match producer {
            Producer::Blocking(produce) => {
                let task = tokio::task::spawn_blocking(move || {
                    span.in_scope(|| {
                        // A panic must end the stream with an error, never look like a
                        // complete result.
                        std::panic::catch_unwind(AssertUnwindSafe(|| {
                            // What was produced before a failure is still sent, then the error.
                            let produced = produce(&sink);
                            sink.flush_blocking().and(produced)
                        }))
                        .unwrap_or_else(|_| {
                            Err(StreamEnd::Failed(error::internal(
                                "the server failed while producing this stream",
                            )))
                        })
                    })
                });
                tokio::spawn(async move {
                    let end = task
                        .await
                        .unwrap_or_else(|e| Err(StreamEnd::Failed(error::join(e))));
                    self.end_stream(end, tx).await;
                });
            }
            Producer::Async(produce) => {
                let task = tokio::spawn(produce(sink).instrument(span));
                tokio::spawn(async move {
                    let end = task
                        .await
                        .unwrap_or_else(|e| Err(StreamEnd::Failed(error::join(e))));
                    self.end_stream(end, tx).await;
                });
            }
        }
        Box::pin(futures_util::StreamExt::flat_map(
            ReceiverStream::new(rx),
            tokio_stream::iter,
        ))
    }

    async fn end_stream<T>(
        self,
        end: Result<(), StreamEnd>,
        tx: mpsc::Sender<Vec<Result<T, ServiceError>>>,
    ) {
        match end {
            Ok(()) => self.finish(Code::Ok),
            Err(StreamEnd::ClientGone) => self.finish(Code::Cancelled),
            Err(StreamEnd::Failed(e)) => {
                let e = self.fail(e);
                // The client may be gone already; then there is nobody to tell.
                let _ = tx.send(vec![Err(e)]).await;
            }
        }
    }
}
