//! Tests of `tessera serve` as a process: refusing to start without authentication, the
//! insecure mode's warning, configuration by TOML file and environment, graceful shutdown on
//! SIGTERM and SIGINT with the data durable across restarts, the metrics endpoint, and
//! `tessera access` on a stopped data directory.

// Test helpers outside `#[test]` functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use crate::cli_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cli_support::{KEY, Server, run, tessera};

const SCHEMA: &str = "definition user {}\n\ndefinition document {\n    relation viewer: user\n    permission view = viewer\n}\n";

#[test]
fn refuses_to_start_without_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let refused = run(&[
        "serve",
        "--grpc-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    for needle in ["--grpc-preshared-key", "--insecure-no-auth"] {
        assert!(
            refused.stderr.contains(needle),
            "{needle} not in {}",
            refused.stderr
        );
    }
    assert!(
        !data.exists(),
        "a refused start must not create the data directory"
    );

    // Insecure mode together with a key is contradictory: refused too.
    let both = run(&[
        "serve",
        "--insecure-no-auth",
        "--grpc-preshared-key",
        KEY,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(both.code, 2, "{}", both.stderr);

    // A missing config file is a usage error naming it.
    let missing = run(&["serve", "--config", "/nonexistent/tessera.toml"]);
    assert_eq!(missing.code, 2);
    assert!(
        missing.stderr.contains("/nonexistent/tessera.toml"),
        "{}",
        missing.stderr
    );
}

#[test]
fn insecure_mode_warns_loudly_and_accepts_anonymous_calls() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--insecure-no-auth", "--metrics-addr", ""],
    );
    let logs = server.logs();
    assert!(
        logs.contains("WARN") && logs.contains("AUTHENTICATION IS DISABLED"),
        "{logs}"
    );
    let written = tessera()
        .args(["schema", "write", "-", "--endpoint", &server.endpoint])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(SCHEMA.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
}

#[test]
fn sigterm_and_sigint_shut_down_cleanly_and_data_survives() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let server = Server::start(&data);
    server
        .cli_with_stdin(&["schema", "write", "-"], SCHEMA)
        .ok();
    server
        .cli(&[
            "relationship",
            "create",
            "document:a#viewer@user:alice",
            "document:b#viewer@user:bob",
        ])
        .ok();
    let (status, logs) = server.stop("TERM");
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(
        logs.contains("SIGTERM") && logs.contains("store closed"),
        "{logs}"
    );

    let server = Server::start(&data);
    assert_eq!(
        server.cli(&["relationship", "read", "document"]).ok(),
        "document:a#viewer@user:alice\ndocument:b#viewer@user:bob\n"
    );
    assert_eq!(
        server
            .cli(&["check", "document:b", "view", "user:bob"])
            .ok(),
        "true\n"
    );
    server
        .cli(&["relationship", "delete", "document:a#viewer@user:alice"])
        .ok();
    let (status, logs) = server.stop("INT");
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(logs.contains("SIGINT"), "{logs}");

    let server = Server::start(&data);
    assert_eq!(
        server.cli(&["relationship", "read", "document"]).ok(),
        "document:b#viewer@user:bob\n"
    );
}

#[test]
fn config_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        "grpc-preshared-key = [\"key-from-the-config-file-0001\"]\ndata-dir = \"from-config\"\nmetrics-addr = \"\"\nlog-level = \"info\"\n",
    )
    .unwrap();
    let mut child = tessera()
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("TESSERA_GRPC_ADDR", "127.0.0.1:0")
        .env("TESSERA_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // JSON logs: find the startup line and its address.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut endpoint = None;
    for _ in 0..50 {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() == 0 {
            break;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["fields"]["message"] == "tessera is serving" {
            endpoint = Some(format!(
                "http://{}",
                v["fields"]["grpc_addr"].as_str().unwrap()
            ));
            break;
        }
    }
    let endpoint = endpoint.expect("startup line");
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    // The relative data-dir of the file is relative to the file.
    assert!(dir.path().join("from-config").is_dir());

    let ok = run(&[
        "schema",
        "write",
        "/dev/null",
        "--endpoint",
        &endpoint,
        "--token",
        "key-from-the-config-file-0001",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let denied = run(&["schema", "read", "--endpoint", &endpoint, "--token", KEY]);
    assert!(
        denied.stderr.contains("UNAUTHENTICATED"),
        "{}",
        denied.stderr
    );

    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn metrics_endpoint_reports_rpcs_and_store_gauges() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--grpc-preshared-key", KEY, "--metrics-addr", "127.0.0.1:0"],
    );
    let addr = server
        .metrics_addr
        .clone()
        .expect("metrics address in the startup line");
    server
        .cli_with_stdin(&["schema", "write", "-"], SCHEMA)
        .ok();
    server.cli(&["check", "document:a", "view", "user:alice"]);

    let response = http_get(&addr, "/metrics");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    for needle in [
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "CheckPermission",
        "tessera_store_head_revision",
        "tessera_store_disk_bytes",
        "tessera_check_cache_hits_total",
        "tessera_check_cache_entries",
    ] {
        assert!(
            response.contains(needle),
            "{needle} missing from:\n{response}"
        );
    }
    assert!(http_get(&addr, "/nope").starts_with("HTTP/1.1 404"));
}

/// A request with a JSON body over a plain socket; returns the whole response.
fn http_post(addr: &str, path: &str, token: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn http_api_serves_beside_grpc_with_metrics_and_stops_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &[
            "--grpc-preshared-key",
            KEY,
            "--metrics-addr",
            "127.0.0.1:0",
            "--http-enabled",
            "--http-addr",
            "127.0.0.1:0",
            "--http-max-body-bytes",
            "4096",
        ],
    );
    let http = server
        .http_addr
        .clone()
        .expect("http_addr in the startup line");
    let metrics = server.metrics_addr.clone().expect("metrics address");

    let schema = serde_json::json!({ "schema": SCHEMA }).to_string();
    let response = http_post(&http, "/v1/schema/write", KEY, &schema);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("writtenAt"), "{response}");
    // Written over HTTP, read over gRPC.
    assert!(
        server
            .cli(&["schema", "read"])
            .ok()
            .contains("definition document")
    );
    let response = http_post(&http, "/v1/schema/read", "wrong-key", "{}");
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    let response = http_post(&http, "/v1/schema/write", KEY, &"x".repeat(5000));
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");

    let response = http_get(&metrics, "/metrics");
    for needle in [
        "http_server_requests_total",
        "route=\"/v1/schema/write\"",
        "status=\"413\"",
        "status=\"401\"",
        "http_server_request_duration_seconds",
    ] {
        assert!(
            response.contains(needle),
            "{needle} missing from:\n{response}"
        );
    }

    let (status, logs) = server.stop("TERM");
    assert_eq!(status.code(), Some(0), "{logs}");
    assert!(logs.contains("HTTP server stopped"), "{logs}");
    assert!(logs.contains("gRPC server stopped"), "{logs}");
}

#[test]
fn access_grants_on_a_stopped_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();

    run(&[
        "access",
        "grant",
        "svc-billing",
        "write:invoice",
        "--data-dir",
        data_arg,
    ])
    .ok();
    run(&[
        "access",
        "grant",
        "svc-billing",
        "read",
        "--data-dir",
        data_arg,
    ])
    .ok();
    run(&[
        "access",
        "grant",
        "ops@example.com",
        "admin",
        "--data-dir",
        data_arg,
    ])
    .ok();
    assert_eq!(
        run(&["access", "list", "--data-dir", data_arg]).ok(),
        "ops@example.com\tadmin\nsvc-billing\tread\nsvc-billing\twrite:invoice\n"
    );
    let revoked = run(&[
        "access",
        "revoke",
        "svc-billing",
        "read",
        "--data-dir",
        data_arg,
    ]);
    revoked.ok();
    assert!(
        revoked.stderr.contains("revoked `read`"),
        "{}",
        revoked.stderr
    );
    assert_eq!(
        run(&["access", "list", "svc-billing", "--data-dir", data_arg]).ok(),
        "svc-billing\twrite:invoice\n"
    );
    assert_eq!(
        run(&["access", "grant", "svc", "fly", "--data-dir", data_arg]).code,
        2
    );

    // The grants survive in the store the server uses; while it runs, the directory is busy.
    let server = Server::start(&data);
    let busy = run(&["access", "list", "--data-dir", data_arg]);
    assert_eq!(busy.code, 1);
    assert!(busy.stderr.contains("in use"), "{}", busy.stderr);
    let (status, _) = server.stop("TERM");
    assert_eq!(status.code(), Some(0));
    run(&[
        "access",
        "revoke",
        "svc-billing",
        "--all",
        "--data-dir",
        data_arg,
    ])
    .ok();
    assert_eq!(
        run(&["access", "list", "--data-dir", data_arg]).ok(),
        "ops@example.com\tadmin\n"
    );
}
