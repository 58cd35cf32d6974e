//! The gRPC face of Tessera: the `authzed.api.v1` services over the library face
//! ([`crate::service::Tessera`]), Tessera's own admin service `tessera.admin.v1.AccessService`
//! (callers' capabilities, admins only), plus health and reflection.
//!
//! Handlers only translate: they authenticate the caller (`authorization` metadata),
//! validate and convert the request ([`convert`]), authorize the capability it needs, run the
//! service call on the blocking pool and convert the result back. Every error reaches the
//! wire through [`error`], the one mapping to gRPC status codes.

mod access;
mod call;
pub mod codec;
pub mod convert;
mod cursor;
mod edge_status;
pub mod error;
mod permissions;
pub mod proto;
mod schema;
mod server;
mod watch;

pub use access::AccessApi;
pub use permissions::PermissionsApi;
pub use schema::SchemaApi;
pub use server::{
    DEFAULT_MAX_MESSAGE_BYTES, MAX_HEADER_LIST_BYTES, ServeError, ServerHandle, ServerOptions,
    serve,
};
pub use watch::{CALLER_METADATA_KEY, WatchApi};
