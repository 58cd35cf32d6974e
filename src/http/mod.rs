//! The HTTP/JSON transport (axum), a second edge beside gRPC: the `authzed.api.v1` JSON
//! gateway at the reference gateway's paths ([`v1`]), the OpenID AuthZEN 1.0 policy decision
//! point ([`authzen`]), the AuthZEN metadata document and `GET /openapi.json` ([`openapi`]).
//!
//! Like `api/`, it only translates: JSON into the same service requests, run through the one
//! authorized path (`api::call::Backend::execute` → `Tessera::execute`), with the same bearer
//! tokens (`Authorization: Bearer …`) and capabilities. Every route is declared once in
//! [`routes::routes`], the table both the router and the OpenAPI document are built from.
//!
//! Limits: a request body is at most `max_body_bytes` (413 beyond, read no further); the
//! request and response messages have the service's limits. Per-route metrics:
//! `http_server_requests_total{method, route, status}` and
//! `http_server_request_duration_seconds{method, route}` (for streams: until the headers).
//! `X-Request-ID` (up to [`MAX_REQUEST_ID_BYTES`]) is echoed on every response.

pub mod authzen;
pub mod error;
pub mod ids;
pub mod json;
pub mod openapi;
pub mod routes;
pub mod v1;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use crate::api::call::Backend;
use crate::auth::{Auth, Caller};
use crate::service::{ErrorKind, ServiceError, Tessera};

use error::HttpError;

/// The media type of streamed responses.
pub const NDJSON: &str = "application/x-ndjson";

/// The default `--http-max-body-bytes`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

/// Settings of the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    backend: Backend,
    config: Arc<HttpConfig>,
}

/// One request as a handler sees it.
pub struct Call {
    pub backend: Backend,
    /// The route's path template, for spans.
    pub route: &'static str,
    headers: HeaderMap,
    body: Body,
    max_body_bytes: usize,
}

impl Call {
    /// The caller, from the `Authorization` header.
    pub fn authenticate(&self) -> Result<Caller, HttpError> {
        let header = match self.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                ServiceError::new(
                    ErrorKind::Unauthenticated,
                    "the `authorization` header is not valid text",
                )
            })?),
        };
        Ok(self.backend.authenticate_header(header)?)
    }

    /// The request's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The whole body, refused with 413 beyond the limit (without reading further).
    pub async fn body(&mut self) -> Result<Bytes, HttpError> {
        let limit = self.max_body_bytes;
        let declared = self
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(HttpError::too_large(limit));
        }
        let body = std::mem::replace(&mut self.body, Body::empty());
        axum::body::to_bytes(body, limit).await.map_err(|e| {
            let inner = e.into_inner();
            if inner
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                HttpError::too_large(limit)
            } else {
                ServiceError::new(
                    ErrorKind::InvalidArgument,
                    format!("cannot read the request body: {inner}"),
                )
                .into()
            }
        })
    }
}

/// A route handler: a boxed future from a call.
pub type Handler = fn(Call) -> std::pin::Pin<Box<dyn Future<Output = Response> + Send>>;

/// A JSON response.
pub fn respond_json(status: StatusCode, value: &serde_json::Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The router of every route in [`routes::routes`], with the metrics and request-id layer.
pub fn router(backend: Backend, config: HttpConfig) -> Router {
    let state = AppState {
        backend,
        config: Arc::new(config),
    };
    let mut router = Router::new();
    for route in routes::routes() {
        let handler = route.handler;
        let path = route.path;
        let filter = if route.method == Method::GET {
            MethodFilter::GET
        } else {
            MethodFilter::POST
        };
        router = router.route(
            path,
            on(
                filter,
                move |State(state): State<AppState>, request: Request| async move {
                    let (parts, body) = request.into_parts();
                    handler(Call {
                        backend: state.backend.clone(),
                        route: path,
                        headers: parts.headers,
                        body,
                        max_body_bytes: state.config.max_body_bytes,
                    })
                    .await
                },
            ),
        );
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    HttpError {
        status: StatusCode::NOT_FOUND,
        error: ServiceError::new(
            ErrorKind::NotFound,
            format!(
                "no route {method} {}; GET /openapi.json lists every route",
                json::bounded(uri.path(), 256)
            ),
        ),
    }
    .into_response()
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    HttpError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        error: ServiceError::new(
            ErrorKind::InvalidArgument,
            format!(
                "{} does not take {method}; GET /openapi.json lists every route with its method",
                json::bounded(uri.path(), 256)
            ),
        ),
    }
    .into_response()
}

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest `X-Request-ID` echoed back (a longer one is not repeated).
pub const MAX_REQUEST_ID_BYTES: usize = 256;

/// Records per-route metrics and echoes `X-Request-ID`.
async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .filter(|v| v.len() <= MAX_REQUEST_ID_BYTES)
        .cloned();
    let mut response = next.run(request).await;
    if let Some(id) = request_id {
        response.headers_mut().insert(REQUEST_ID.clone(), id);
    }
    metrics::counter!(
        "http_server_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!(
        "http_server_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// Serves the HTTP API on `listener` until `shutdown` resolves, then shuts down gracefully:
/// no new connections, Watch streams end with UNAVAILABLE, in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    tessera: Arc<Tessera>,
    auth: Arc<Auth>,
    config: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let backend = Backend {
        tessera,
        auth,
        shutdown: stop_rx,
    };
    let app = router(backend, config);
    let signal = async move {
        shutdown.await;
        // Ends Watch streams, which would otherwise keep the server draining forever.
        let _ = stop_tx.send(true);
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .await?;
    tracing::info!("HTTP server stopped");
    Ok(())
}

/// An HTTP server running in the background: its address, and a way to stop it.
pub struct HttpHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HttpHandle {
    /// Starts [`serve`] on `listener` in a background task.
    pub fn start(
        listener: TcpListener,
        tessera: Arc<Tessera>,
        auth: Arc<Auth>,
        config: HttpConfig,
    ) -> std::io::Result<HttpHandle> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, tessera, auth, config, async move {
            // A dropped handle also stops the server.
            let _ = stopped.await;
        }));
        Ok(HttpHandle {
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
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }
}
