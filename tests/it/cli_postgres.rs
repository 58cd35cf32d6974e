//! `tessera datastore migrate` and `tessera serve --datastore-engine postgres`, as an
//! operator runs them: real processes against a database of the tests' private cluster.

use crate::cli_support::{KEY, Server, run, tessera};
use crate::pg_support;

#[test]
fn migrate_then_serve_two_nodes_on_one_database() {
    let c = pg_support::cluster();
    let uri = c.uri(&c.empty_database());
    let dir = tempfile::tempdir().unwrap();
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--grpc-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "",
            "--grpc-preshared-key",
            KEY,
            "--datastore-engine",
            "postgres",
            "--datastore-conn-uri",
            &uri,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };

    // Not migrated: serve refuses, naming the fix.
    let refused = serve(&[]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("tessera datastore migrate"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stderr.contains("password"), "{}", refused.stderr);

    let migrate = [
        "datastore",
        "migrate",
        "--datastore-engine",
        "postgres",
        "--datastore-conn-uri",
        &uri,
    ];
    let first = run(&migrate);
    assert!(first.ok().contains("to version 1"), "{}", first.stdout);
    // Idempotent, and the environment variables work as the flags do.
    let again = tessera()
        .args(["datastore", "migrate"])
        .env("TESSERA_DATASTORE_ENGINE", "postgres")
        .env("TESSERA_DATASTORE_CONN_URI", &uri)
        .output()
        .unwrap();
    let again: crate::cli_support::Run = again.into();
    assert!(
        again.ok().contains("already at version 1"),
        "{}",
        again.stdout
    );

    // Usage errors are usage errors.
    let missing = run(&["datastore", "migrate", "--datastore-engine", "postgres"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    let bad = run(&[
        "datastore",
        "migrate",
        "--datastore-engine",
        "postgres",
        "--datastore-conn-uri",
        "not a uri at all",
    ]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);

    // Two nodes on the database: a write on one is read on the other with its zookie.
    let flags = [
        "--datastore-engine",
        "postgres",
        "--datastore-conn-uri",
        &uri,
        "--grpc-preshared-key",
        KEY,
        "--metrics-addr",
        "",
    ];
    let a = Server::start_with(dir.path(), &flags);
    let b = Server::start_with(dir.path(), &flags);
    assert!(a.logs().contains("postgres at 127.0.0.1"), "{}", a.logs());
    let schema = dir.path().join("schema.zed");
    std::fs::write(
        &schema,
        "definition user {}\ndefinition document {\n    relation viewer: user\n    permission view = viewer\n}\n",
    )
    .unwrap();
    a.cli(&["schema", "write", schema.to_str().unwrap()]).ok();
    let z = a.cli(&[
        "relationship",
        "create",
        "document:readme#viewer@user:alice",
    ]);
    let z = z.ok().trim().to_string();
    let check = b.cli(&[
        "check",
        "document:readme",
        "view",
        "user:alice",
        "--zookie",
        &z,
    ]);
    assert_eq!(check.ok().trim(), "true");
    // Each node stops cleanly; the data stays in the database.
    let (status, _) = a.stop("TERM");
    assert!(status.success());
    let check = b.cli(&[
        "check",
        "document:readme",
        "view",
        "user:alice",
        "--consistency",
        "fully-consistent",
    ]);
    assert_eq!(check.ok().trim(), "true");
}
