//! The `authzed.api.v1` JSON gateway: each route runs the gRPC RPC's own translation
//! ([`Unary`]/[`ServerStream`] from `api/`) between the protobuf JSON mapping ([`super::json`])
//! and the service. Server streams are newline-delimited JSON: one `{"result": …}` object per
//! response message, and on failure a final `{"error": …}` line (the error body of
//! [`super::error`]), as the reference gateway streams them.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_stream::StreamExt as _;
use tracing::Instrument as _;

use crate::api::call::{Rpc, ServerStream, Unary};

use super::error::{self, HttpError};
use super::{Call, json, respond_json};

/// A unary RPC over HTTP.
pub async fn unary<U: Unary>(mut call: Call) -> Response {
    let rpc = Rpc::http(call.route);
    let span = rpc.span.clone();
    let outcome = async {
        let caller = call.authenticate()?;
        let body = call.body().await?;
        let request: U::Request = json::decode(&body)?;
        let response = call.backend.call::<U>(caller, request).await?;
        Ok::<_, HttpError>(json::encode(&response)?)
    }
    .instrument(span)
    .await;
    match outcome {
        Ok(v) => {
            rpc.succeed();
            respond_json(StatusCode::OK, &v)
        }
        Err(e) => {
            let error = rpc.fail(e.error);
            HttpError {
                status: e.status,
                error,
            }
            .into_response()
        }
    }
}

/// One NDJSON line.
fn line(v: &serde_json::Value) -> Bytes {
    let mut bytes = v.to_string().into_bytes();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// A server-streaming RPC over HTTP, as newline-delimited JSON.
pub async fn stream<S: ServerStream>(mut call: Call) -> Response {
    let rpc = Rpc::http(call.route);
    let span = rpc.span.clone();
    let opened = async {
        let caller = call.authenticate()?;
        let body = call.body().await?;
        let request: S::Request = json::decode(&body)?;
        Ok::<_, HttpError>(call.backend.open::<S>(caller, request).await?)
    }
    .instrument(span)
    .await;
    let producer = match opened {
        Ok(p) => p,
        Err(e) => {
            let error = rpc.fail(e.error);
            return HttpError {
                status: e.status,
                error,
            }
            .into_response();
        }
    };
    let lines = rpc.run(producer).map(|item| {
        let v = match item.and_then(|m| json::encode(&m)) {
            Ok(result) => json!({ "result": result }),
            Err(e) => json!({ "error": error::body(&e) }),
        };
        Ok::<_, std::convert::Infallible>(line(&v))
    });
    let mut response = Response::new(Body::from_stream(lines));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::NDJSON),
    );
    response
}
