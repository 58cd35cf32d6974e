//! Compiles the hand-written `authzed.api.v1` protos and Tessera's own admin API
//! (`tessera.admin.v1`) under `proto/` into Rust (prost messages and tonic services) and writes
//! their file descriptor set for server reflection and the wire compatibility test.
//!
//! `protoc` comes from the `protoc-bin-vendored` crate, together with the well-known type
//! definitions it ships, so no system installation is needed.

use std::error::Error;
use std::path::PathBuf;

/// The proto files Tessera serves; their imports are resolved from `proto/` and the vendored
/// protoc include directory.
const PROTOS: &[&str] = &[
    "proto/authzed/api/v1/core.proto",
    "proto/authzed/api/v1/debug.proto",
    "proto/authzed/api/v1/error_reason.proto",
    "proto/authzed/api/v1/permission_service.proto",
    "proto/authzed/api/v1/schema_service.proto",
    "proto/authzed/api/v1/watch_service.proto",
    "proto/google/rpc/error_details.proto",
    "proto/google/rpc/status.proto",
    "proto/tessera/admin/v1/access_service.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    // Only the protos (and this script) affect the output; a directory entry makes cargo watch
    // every file below it.
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build.rs");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known_includes = protoc_bin_vendored::include_path()?;

    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    // `prost::Name` on every message: the HTTP/JSON transport finds each message's descriptor
    // (for the JSON mapping and the OpenAPI schemas) by its full protobuf name.
    config.enable_type_names();

    let protos: Vec<PathBuf> = PROTOS.iter().map(PathBuf::from).collect();
    let includes = [PathBuf::from("proto"), well_known_includes];
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // The per-directory rerun lines above are coarser and cheaper than one per file.
        .emit_rerun_if_changed(false)
        // tonic-prost's codec, but a request nested past the decoder's limit is the caller's
        // INVALID_ARGUMENT (src/api/codec.rs).
        .codec_path("crate::api::codec::TesseraCodec")
        .file_descriptor_set_path(out_dir.join("tessera_descriptor.bin"))
        .include_file("tessera_protos.rs")
        .compile_with_config(config, &protos, &includes)?;
    Ok(())
}
