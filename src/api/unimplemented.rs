//! UNIMPLEMENTED with a message. A call to a service or method this server does not have is
//! answered by tonic's router (unknown service) or by the generated service code (unknown
//! method) with status 12 and no message at all, which leaves the caller guessing (a typo in
//! a method name, a client newer than the server, a wrong endpoint). This layer sees every
//! response and, for such a bare UNIMPLEMENTED, names what was called.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use tower::{Layer, Service};

/// The layer: `services` are the names this server serves (to tell an unknown service from an
/// unknown method of a known one).
#[derive(Debug, Clone)]
pub(crate) struct NameUnimplementedLayer {
    services: &'static [&'static str],
}

impl NameUnimplementedLayer {
    pub(crate) fn new(services: &'static [&'static str]) -> Self {
        NameUnimplementedLayer { services }
    }
}

impl<S> Layer<S> for NameUnimplementedLayer {
    type Service = NameUnimplemented<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NameUnimplemented {
            inner,
            services: self.services,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct NameUnimplemented<S> {
    inner: S,
    services: &'static [&'static str],
}

/// The `grpc-status` value of UNIMPLEMENTED.
const UNIMPLEMENTED: &str = "12";

impl<S, B, RB> Service<Request<B>> for NameUnimplemented<S>
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
            let bare = headers
                .get("grpc-status")
                .is_some_and(|v| v.as_bytes() == UNIMPLEMENTED.as_bytes())
                && headers.get("grpc-message").is_none_or(|m| m.is_empty());
            if bare && let Ok(value) = HeaderValue::from_str(&encode(&message(&path, services))) {
                headers.insert("grpc-message", value);
            }
            Ok(response)
        })
    }
}

/// What a call to `path` (`/package.Service/Method`) failed on.
fn message(path: &str, services: &[&str]) -> String {
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
            message(
                "/authzed.api.v1.PermissionsService/CheckPermision",
                &services
            ),
            "method `CheckPermision` is not implemented by service \
             `authzed.api.v1.PermissionsService` on this server"
        );
        let m = message("/authzed.api.v1.ExperimentalService/BulkCheck", &services);
        assert!(
            m.starts_with("service `authzed.api.v1.ExperimentalService` is not served here"),
            "{m}"
        );
        assert!(m.ends_with("this server serves authzed.api.v1.PermissionsService"));
        // Hostile paths stay short and encodable.
        let long = format!("/{}/é", "x".repeat(10_000));
        let m = message(&long, &services);
        assert!(m.len() < 1_000, "{}", m.len());
        assert!(HeaderValue::from_str(&encode(&m)).is_ok());
        assert_eq!(encode("a%b é"), "a%25b %C3%A9");
    }
}
