//! Statuses that tonic produces before any handler runs, made as clear as the handlers' own:
//!
//! - A call to a service or method this server does not have is answered by tonic's router
//!   (unknown service) or by the generated service code (unknown method) with UNIMPLEMENTED
//!   and no message at all, which leaves the caller guessing (a typo in a method name, a
//!   client newer than the server, a wrong endpoint). Such a bare UNIMPLEMENTED gets a
//!   message naming what was called.
//! - A request message over `--grpc-max-message-bytes` gets OUT_OF_RANGE with tonic's
//!   "decoded message length too large"; it becomes INVALID_ARGUMENT naming the size, the
//!   limit and the flag, like every other limit of the API.
//!
//! Both statuses come back trailers-only (in the response headers), which is where this layer
//! looks; it never touches a response a handler produced.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

/// The layer: `services` are the names this server serves (to tell an unknown service from an
/// unknown method of a known one).
#[derive(Debug, Clone)]
pub(crate) struct EdgeStatusLayer {
    services: &'static [&'static str],
}

impl EdgeStatusLayer {
    pub(crate) fn new(services: &'static [&'static str]) -> Self {
        EdgeStatusLayer { services }
    }
}

impl<S> Layer<S> for EdgeStatusLayer {
    type Service = EdgeStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeStatus {
            inner,
            services: self.services,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct EdgeStatus<S> {
    inner: S,
    services: &'static [&'static str],
}

/// `grpc-status` values.
const INVALID_ARGUMENT: &str = "3";
const OUT_OF_RANGE: &str = "11";
const UNIMPLEMENTED: &str = "12";

/// How tonic's message for an oversized request starts.
const TOO_LARGE: &str = "Error, decoded message length too large";

impl<S, B, RB> Service<Request<B>> for EdgeStatus<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = request.uri().path().to_string();
        let services = self.services;
        let call = self.inner.call(request);
        Box::pin(async move {
            let mut response = call.await?;
            let headers = response.headers_mut();
            let status = headers.get("grpc-status").map(HeaderValue::as_bytes);
            let message = headers
                .get("grpc-message")
                .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
                .unwrap_or_default();
            if status == Some(UNIMPLEMENTED.as_bytes()) && message.is_empty() {
                if let Ok(value) = HeaderValue::from_str(&encode(&unimplemented(&path, services))) {
                    headers.insert("grpc-message", value);
                }
            } else if status == Some(OUT_OF_RANGE.as_bytes())
                && let Some(text) = too_large(&message)
                && let Ok(value) = HeaderValue::from_str(&encode(&text))
            {
                headers.insert("grpc-status", HeaderValue::from_static(INVALID_ARGUMENT));
                headers.insert("grpc-message", value);
            }
            Ok(response)
        })
    }
}

/// The message for tonic's oversized-request error (its text percent-decoded), or `None` when
/// `message` is not that error.
fn too_large(message: &str) -> Option<String> {
    let decoded = percent_decode(message);
    if !decoded.starts_with(TOO_LARGE) {
        return None;
    }
    // "…: found 5243012 bytes, the limit is: 4194304 bytes"
    let numbers: Vec<&str> = decoded
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    Some(match numbers.as_slice() {
        [found, limit] => format!(
            "the request message is {found} bytes, more than the server's limit of {limit} bytes \
             (--grpc-max-message-bytes); send less per call (fewer updates, items or \
             relationships per message)"
        ),
        _ => format!("the request message is too large: {decoded} (--grpc-max-message-bytes)"),
    })
}

/// What a call to `path` (`/package.Service/Method`) failed on.
fn unimplemented(path: &str, services: &[&str]) -> String {
    let shown = |s: &str| crate::service::cap_message(s.to_string(), 200);
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let service = parts.next().unwrap_or_default();
    let method = parts.next().unwrap_or_default();
    if services.contains(&service) {
        format!(
            "method `{}` is not implemented by service `{service}` on this server",
            shown(method)
        )
    } else {
        format!(
            "service `{}` is not served here (called `{}`); this server serves {}",
            shown(service),
            shown(path),
            services.join(", ")
        )
    }
}

/// Reverses [`encode`] (invalid escapes are kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a `grpc-message` value as the gRPC spec asks: bytes outside printable ASCII,
/// and `%` itself, as `%XX`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_service_or_the_method() {
        let services = ["authzed.api.v1.PermissionsService"];
        assert_eq!(
            unimplemented(
                "/authzed.api.v1.PermissionsService/CheckPermision",
                &services
            ),
            "method `CheckPermision` is not implemented by service \
             `authzed.api.v1.PermissionsService` on this server"
        );
        let m = unimplemented("/authzed.api.v1.ExperimentalService/BulkCheck", &services);
        assert!(
            m.starts_with("service `authzed.api.v1.ExperimentalService` is not served here"),
            "{m}"
        );
        assert!(m.ends_with("this server serves authzed.api.v1.PermissionsService"));
        // Hostile paths stay short and encodable.
        let long = format!("/{}/é", "x".repeat(10_000));
        let m = unimplemented(&long, &services);
        assert!(m.len() < 1_000, "{}", m.len());
        assert!(HeaderValue::from_str(&encode(&m)).is_ok());
        assert_eq!(encode("a%b é"), "a%25b %C3%A9");
        assert_eq!(percent_decode("a%25b %C3%A9%zz"), "a%b é%zz");
    }

    #[test]
    fn oversized_requests_name_size_limit_and_flag() {
        let m = too_large(
            "Error, decoded message length too large: found 5243012 bytes, the limit is: 4194304 bytes",
        )
        .expect("recognised");
        assert!(
            m.starts_with("the request message is 5243012 bytes, more than the server's limit of 4194304 bytes (--grpc-max-message-bytes)"),
            "{m}"
        );
        assert_eq!(too_large("something else"), None);
    }
}
