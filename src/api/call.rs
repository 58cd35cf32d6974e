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

use tokio::sync::watch;
use tokio_stream::StreamExt as _;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument as _;

use crate::auth::{Auth, Caller};
use crate::service::{self, ErrorKind, ServiceError, Tessera};

use super::error;

/// How many responses a stream may buffer ahead of a slow client before its producer waits.
/// The transport takes them all at once, so at most twice this many are in memory per stream.
const STREAM_BUFFER: usize = 64;

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
#[derive(Debug)]
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

/// The buffer between a stream's producer and the transport. Unlike a channel of single
/// responses, the transport takes everything buffered at once and is woken only when it is
/// waiting: a producer running ahead costs one wake-up per batch it hands over, not one per
/// response, while every response is available to the transport as soon as it is produced.
struct Pipe<T> {
    state: parking_lot::Mutex<PipeState<T>>,
    /// Wakes a blocking producer waiting for room (or for the client to leave).
    room: parking_lot::Condvar,
    /// Wakes an async producer waiting for room, or waiting for the client to leave.
    room_async: tokio::sync::Notify,
    /// Wakes the transport when responses arrive or the producer ends.
    ready: futures_util::task::AtomicWaker,
}

struct PipeState<T> {
    items: Vec<Result<T, ServiceError>>,
    /// The producer has ended (after its final error, if any).
    ended: bool,
    /// The client (the transport's stream) is gone.
    gone: bool,
}

impl<T> Pipe<T> {
    fn new() -> Arc<Self> {
        Arc::new(Pipe {
            state: parking_lot::Mutex::new(PipeState {
                items: Vec::new(),
                ended: false,
                gone: false,
            }),
            room: parking_lot::Condvar::new(),
            room_async: tokio::sync::Notify::new(),
            ready: futures_util::task::AtomicWaker::new(),
        })
    }

    /// Ends the stream, after `last` (its final error) when there is one. Never waits.
    fn finish(&self, last: Option<ServiceError>) {
        let mut state = self.state.lock();
        if let Some(e) = last
            && !state.gone
        {
            state.items.push(Err(e));
        }
        state.ended = true;
        drop(state);
        self.ready.wake();
    }
}

/// The sending side of a server stream.
pub struct Sink<T> {
    pipe: Arc<Pipe<T>>,
}

impl<T> Sink<T> {
    /// Sends from blocking code; waits while the client is slow.
    pub fn send_blocking(&self, item: T) -> Result<(), StreamEnd> {
        let mut state = self.pipe.state.lock();
        while !state.gone && state.items.len() >= STREAM_BUFFER {
            self.pipe.room.wait(&mut state);
        }
        if state.gone {
            return Err(StreamEnd::ClientGone);
        }
        state.items.push(Ok(item));
        drop(state);
        self.pipe.ready.wake();
        Ok(())
    }

    /// Sends from async code; waits while the client is slow.
    pub async fn send(&self, item: T) -> Result<(), StreamEnd> {
        let mut item = Some(item);
        loop {
            let notified = self.pipe.room_async.notified();
            tokio::pin!(notified);
            // Registered before looking, so a wake-up between the look and the wait counts.
            notified.as_mut().enable();
            {
                let mut state = self.pipe.state.lock();
                if state.gone {
                    return Err(StreamEnd::ClientGone);
                }
                if state.items.len() < STREAM_BUFFER {
                    state.items.extend(item.take().map(Ok));
                    drop(state);
                    self.pipe.ready.wake();
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    /// Resolves once the client has gone away.
    pub async fn closed(&self) {
        loop {
            let notified = self.pipe.room_async.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.pipe.state.lock().gone {
                return;
            }
            notified.await;
        }
    }
}

/// The transport's side of a [`Pipe`]: yields the responses in order, taking all that are
/// buffered at once.
struct PipeStream<T> {
    pipe: Arc<Pipe<T>>,
    batch: std::vec::IntoIter<Result<T, ServiceError>>,
}

// Nothing in it is pinned: the batch and the shared pipe move freely.
impl<T> Unpin for PipeStream<T> {}

impl<T> tokio_stream::Stream for PipeStream<T> {
    type Item = Result<T, ServiceError>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        if let Some(item) = this.batch.next() {
            return Poll::Ready(Some(item));
        }
        this.pipe.ready.register(cx.waker());
        let mut state = this.pipe.state.lock();
        if !state.items.is_empty() {
            let taken = std::mem::take(&mut state.items);
            drop(state);
            this.pipe.room.notify_all();
            this.pipe.room_async.notify_waiters();
            this.batch = taken.into_iter();
            return Poll::Ready(this.batch.next());
        }
        if state.ended {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

impl<T> Drop for PipeStream<T> {
    fn drop(&mut self) {
        let mut state = self.pipe.state.lock();
        state.gone = true;
        state.items.clear();
        drop(state);
        self.pipe.room.notify_all();
        self.pipe.room_async.notify_waiters();
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
        let pipe = Pipe::new();
        let sink = Sink {
            pipe: Arc::clone(&pipe),
        };
        let end = Arc::clone(&pipe);
        let span = self.span.clone();
        match producer {
            Producer::Blocking(produce) => {
                let task = tokio::task::spawn_blocking(move || {
                    span.in_scope(|| {
                        // A panic must end the stream with an error, never look like a
                        // complete result.
                        std::panic::catch_unwind(AssertUnwindSafe(|| produce(&sink)))
                            .unwrap_or_else(|_| {
                                Err(StreamEnd::Failed(error::internal(
                                    "the server failed while producing this stream",
                                )))
                            })
                    })
                });
                tokio::spawn(async move {
                    let result = task
                        .await
                        .unwrap_or_else(|e| Err(StreamEnd::Failed(error::join(e))));
                    self.end_stream(result, &end);
                });
            }
            Producer::Async(produce) => {
                let task = tokio::spawn(produce(sink).instrument(span));
                tokio::spawn(async move {
                    let result = task
                        .await
                        .unwrap_or_else(|e| Err(StreamEnd::Failed(error::join(e))));
                    self.end_stream(result, &end);
                });
            }
        }
        Box::pin(PipeStream {
            pipe,
            batch: Vec::new().into_iter(),
        })
    }

    fn end_stream<T>(self, end: Result<(), StreamEnd>, pipe: &Pipe<T>) {
        match end {
            Ok(()) => {
                self.finish(Code::Ok);
                pipe.finish(None);
            }
            Err(StreamEnd::ClientGone) => {
                self.finish(Code::Cancelled);
                pipe.finish(None);
            }
            // The client may be gone already; then there is nobody to tell.
            Err(StreamEnd::Failed(e)) => pipe.finish(Some(self.fail(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pipe() -> (Sink<u32>, Arc<Pipe<u32>>, PipeStream<u32>) {
        let pipe = Pipe::new();
        let stream = PipeStream {
            pipe: Arc::clone(&pipe),
            batch: Vec::new().into_iter(),
        };
        let sink = Sink {
            pipe: Arc::clone(&pipe),
        };
        (sink, pipe, stream)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn every_response_arrives_in_order_then_the_final_error() {
        let rt = runtime();
        let (sink, pipe, mut stream) = pipe();
        let producer = std::thread::spawn(move || {
            for i in 0..1000 {
                sink.send_blocking(i).unwrap();
            }
            pipe.finish(Some(ServiceError::new(ErrorKind::Internal, "the end")));
        });
        let got: Vec<Result<u32, ServiceError>> =
            rt.block_on(async { (&mut stream).collect().await });
        producer.join().unwrap();
        let (ok, errors): (Vec<_>, Vec<_>) = got.into_iter().partition(Result::is_ok);
        let ok: Vec<u32> = ok.into_iter().map(Result::unwrap).collect();
        assert_eq!(ok, (0..1000).collect::<Vec<_>>());
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn a_response_is_not_held_back_until_the_next_one() {
        // The producer sends a burst, then works for a long time: what it sent must reach
        // the transport at once, not after the next response.
        let rt = runtime();
        let (sink, pipe, mut stream) = pipe();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let producer = std::thread::spawn(move || {
            for i in 0..200 {
                sink.send_blocking(i).unwrap();
            }
            // "Long work", until the test has seen every response.
            done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            pipe.finish(None);
        });
        let seen = rt.block_on(async {
            let mut seen = Vec::new();
            while seen.len() < 200 {
                let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
                    .await
                    .expect("a sent response must arrive while the producer works");
                seen.push(next.unwrap().unwrap());
            }
            seen
        });
        done_tx.send(()).unwrap();
        producer.join().unwrap();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn a_producer_waiting_for_room_learns_the_client_left() {
        let (sink, _pipe, stream) = pipe();
        let producer = std::thread::spawn(move || {
            let mut sent = 0;
            loop {
                match sink.send_blocking(sent) {
                    Ok(()) => sent += 1,
                    Err(StreamEnd::ClientGone) => return sent,
                    Err(StreamEnd::Failed(e)) => panic!("{e:?}"),
                }
            }
        });
        // Nobody reads: the producer fills the buffer and waits; then the client leaves.
        std::thread::sleep(Duration::from_millis(100));
        drop(stream);
        let sent = producer.join().unwrap();
        assert_eq!(
            sent, STREAM_BUFFER as u32,
            "the buffer bounds what waits in memory"
        );
    }

    #[test]
    fn async_producers_wait_for_room_and_see_the_client_leave() {
        let rt = runtime();
        let (sink, _pipe, mut stream) = pipe();
        rt.block_on(async move {
            let producer = tokio::spawn(async move {
                for i in 0..(STREAM_BUFFER as u32 * 3) {
                    sink.send(i).await.unwrap();
                }
                sink.closed().await;
                sink.send(0).await
            });
            for i in 0..(STREAM_BUFFER as u32 * 3) {
                assert_eq!(stream.next().await.unwrap().unwrap(), i);
            }
            drop(stream);
            let last = tokio::time::timeout(Duration::from_secs(5), producer)
                .await
                .expect("closed() resolves when the client leaves")
                .unwrap();
            assert!(matches!(last, Err(StreamEnd::ClientGone)));
        });
    }
}
