//! The gRPC face of Tessera: the `authzed.api.v1` services over the library face
//! ([`crate::service::Tessera`]), Tessera's own admin service `tessera.admin.v1.AccessService`
//! (callers' capabilities, admins only), plus health and reflection.
//!
//! Handlers only translate: they authenticate the caller (`authorization` metadata),
//! validate and convert the request ([`convert`]) into a service request, and hand it to the
//! one authorized path ([`call::Backend::execute`] → `Tessera::execute`: limits, the
//! capability table of `auth`, the operation), then convert the result back. Each RPC's
//! translation is written once ([`call::Unary`], [`call::ServerStream`]) and also run by the
//! HTTP/JSON gateway (`crate::http`). Every error reaches the wire through [`error`], the one
//! mapping to gRPC status codes.

pub mod access;
pub mod call;
pub mod codec;
pub mod convert;
mod edge_status;
pub mod error;
pub mod permissions;
pub mod proto;
pub mod schema;
mod server;
pub mod watch;

pub use access::AccessApi;
pub use permissions::PermissionsApi;
pub use schema::SchemaApi;
pub use server::{
    DEFAULT_MAX_MESSAGE_BYTES, MAX_HEADER_LIST_BYTES, ServeError, ServerHandle, ServerOptions,
    serve,
};
pub use watch::{CALLER_METADATA_KEY, WatchApi};
