//! Rust types generated from the hand-written protos under `proto/`: the `authzed.api.v1` API
//! and Tessera's own `tessera.admin.v1` admin API.
//!
//! Messages are prost structs, services are tonic client and server modules; the module tree
//! mirrors the proto packages (`authzed::api::v1`, `google::rpc`, `tessera::admin::v1`).
//! Well-known types map to `prost_types`.

// Generated code: its shape is dictated by the protos, not by this crate's style rules.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    missing_docs,
    rustdoc::all,
    unused_qualifications
)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/tessera_protos.rs"));
}

pub use generated::*;

/// The encoded `google.protobuf.FileDescriptorSet` of every proto Tessera compiles, including the
/// well-known types they import and their source comments. Served by gRPC server reflection and
/// compared against the reference descriptors by the wire compatibility test.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tessera_descriptor.bin"));
