//! The `tessera` command line (placeholder until the CLI lands).
fn main() {}
