//! End-to-end tests of the client subcommands against a real `tessera serve`: schema,
//! relationships, checks (true / false / caveated, exit codes), expand (text and DOT),
//! import/export round trips with resumption, and error reporting.

// Test helpers outside `#[test]` functions unwrap too: a failure is the test failing.
#![allow(clippy::unwrap_used)]

use crate::cli_support;

use std::collections::BTreeSet;

use cli_support::{Server, run, unused_port};

const SCHEMA: &str = r#"
use expiration

caveat weekday(day string) {
    day != "saturday" && day != "sunday"
}

definition user {}

definition group {
    relation member: user | group#member
}

definition document {
    relation owner: user
    relation viewer: user | user with weekday | group#member
    relation banned: user | user with expiration
    permission edit = owner
    permission view = (viewer + owner) - banned
}
"#;

fn lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn write_schema(server: &Server, dir: &std::path::Path) {
    let path = dir.join("schema.zed");
    std::fs::write(&path, SCHEMA).unwrap();
    let zookie = server.cli(&["schema", "write", path.to_str().unwrap()]);
    assert!(
        !zookie.ok().trim().is_empty(),
        "schema write prints its zookie"
    );
}

#[test]
fn schema_relationships_check_and_expand() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));

    write_schema(&server, dir.path());
    let schema = server.cli(&["schema", "read"]);
    assert!(
        schema.ok().contains("definition document"),
        "{}",
        schema.stdout
    );
    // Writing again from stdin works too.
    server
        .cli_with_stdin(&["schema", "write", "-"], SCHEMA)
        .ok();

    let created = server.cli(&[
        "relationship",
        "create",
        "document:readme#owner@user:alice",
        "document:readme#viewer@group:eng#member",
        "group:eng#member@user:bob",
    ]);
    let zookie = created.ok().trim().to_string();
    assert!(!zookie.is_empty());
    assert!(
        created.stderr.contains("created 3 relationships"),
        "{}",
        created.stderr
    );

    // CREATE of an existing relationship fails with the server's code and message.
    let again = server.cli(&["relationship", "create", "document:readme#owner@user:alice"]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("ALREADY_EXISTS"), "{}", again.stderr);

    // Checks: true exits 0, false exits 1; the zookie is printed on stderr.
    let yes = server.cli(&[
        "check",
        "document:readme",
        "view",
        "user:bob",
        "--zookie",
        &zookie,
    ]);
    assert_eq!(
        (yes.code, yes.stdout.as_str()),
        (0, "true\n"),
        "{}",
        yes.stderr
    );
    assert!(yes.stderr.contains("checked at zookie "), "{}", yes.stderr);
    let no = server.cli(&["check", "document:readme", "view", "user:mallory"]);
    assert_eq!(
        (no.code, no.stdout.as_str()),
        (1, "false\n"),
        "{}",
        no.stderr
    );
    let edit = server.cli(&[
        "check",
        "document:readme",
        "edit",
        "user:alice",
        "--consistency",
        "minimize-latency",
    ]);
    assert_eq!(edit.stdout, "true\n", "{}", edit.stderr);

    // Caveated: exit 3 naming the missing context; with context it is decided.
    server
        .cli(&[
            "relationship",
            "touch",
            "document:readme#viewer@user:carol[weekday]",
        ])
        .ok();
    let maybe = server.cli(&["check", "document:readme", "view", "user:carol"]);
    assert_eq!(maybe.code, 3, "{}", maybe.stderr);
    assert_eq!(maybe.stdout, "caveated (missing context: day)\n");
    let monday = server.cli(&[
        "check",
        "document:readme",
        "view",
        "user:carol",
        "--context",
        r#"{"day":"monday"}"#,
    ]);
    assert_eq!(
        (monday.code, monday.stdout.as_str()),
        (0, "true\n"),
        "{}",
        monday.stderr
    );
    let sunday = server.cli(&[
        "check",
        "document:readme",
        "view",
        "user:carol",
        "--context",
        r#"{"day":"sunday"}"#,
    ]);
    assert_eq!(
        (sunday.code, sunday.stdout.as_str()),
        (1, "false\n"),
        "{}",
        sunday.stderr
    );

    // Reads print the text syntax.
    let viewers = server.cli(&["relationship", "read", "document:readme#viewer"]);
    assert_eq!(
        lines(viewers.ok()),
        lines(
            "document:readme#viewer@group:eng#member\ndocument:readme#viewer@user:carol[weekday]\n"
        )
    );
    let by_subject = server.cli(&["relationship", "read", "group@user:bob"]);
    assert_eq!(by_subject.ok(), "group:eng#member@user:bob\n");
    let everything = server.cli(&["relationship", "read"]);
    assert_eq!(lines(everything.ok()).len(), 4, "{}", everything.stdout);

    // Expand as a text tree and as DOT.
    let tree = server.cli(&["expand", "document:readme", "view"]);
    let text = tree.ok();
    assert!(
        text.starts_with("document:readme#view (exclusion)\n"),
        "{text}"
    );
    for needle in [
        "document:readme#viewer",
        "group:eng#member",
        "user:carol",
        "user:alice",
        "document:readme#banned",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    let dot = server.cli(&["expand", "document:readme", "view", "--format", "dot"]);
    let dot = dot.ok();
    assert!(
        dot.starts_with("digraph expand {") && dot.trim_end().ends_with('}'),
        "{dot}"
    );
    assert!(
        dot.contains("\"user:alice\"") && dot.contains(" -> "),
        "{dot}"
    );

    // Delete revokes.
    let deleted = server.cli(&["relationship", "delete", "group:eng#member@user:bob"]);
    let after = deleted.ok().trim().to_string();
    let gone = server.cli(&[
        "check",
        "document:readme",
        "view",
        "user:bob",
        "--zookie",
        &after,
    ]);
    assert_eq!(
        (gone.code, gone.stdout.as_str()),
        (1, "false\n"),
        "{}",
        gone.stderr
    );
}

#[test]
fn errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    write_schema(&server, dir.path());

    // A wrong token: the server's code, plus a hint.
    let denied = run(&[
        "schema",
        "read",
        "--endpoint",
        &server.endpoint,
        "--token",
        "wrong",
    ]);
    assert_eq!(denied.code, 1);
    assert!(
        denied.stderr.contains("UNAUTHENTICATED"),
        "{}",
        denied.stderr
    );
    assert!(denied.stderr.contains("--token"), "{}", denied.stderr);

    // Unknown types come back as FAILED_PRECONDITION naming them.
    let unknown = server.cli(&["check", "folder:x", "view", "user:bob"]);
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("FAILED_PRECONDITION") && unknown.stderr.contains("folder"),
        "{}",
        unknown.stderr
    );

    // Bad input is a usage error (exit 2) and never reaches the server.
    let bad = server.cli(&["relationship", "create", "document:readme#viewer"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let bad_ctx = server.cli(&[
        "check",
        "document:readme",
        "view",
        "user:bob",
        "--context",
        "[1]",
    ]);
    assert_eq!(bad_ctx.code, 2, "{}", bad_ctx.stderr);
    let no_zookie = server.cli(&[
        "check",
        "document:readme",
        "view",
        "user:bob",
        "--consistency",
        "at-exact-snapshot",
    ]);
    assert_eq!(no_zookie.code, 2, "{}", no_zookie.stderr);
    assert!(
        no_zookie.stderr.contains("--zookie"),
        "{}",
        no_zookie.stderr
    );
    let clap_usage = server.cli(&["check", "document:readme"]);
    assert_eq!(clap_usage.code, 2);

    // A schema that does not compile is reported with the file name and nothing is written.
    let broken = dir.path().join("broken.zed");
    std::fs::write(
        &broken,
        "definition document {\n  relation viewer: nobody\n}\n",
    )
    .unwrap();
    let rejected = server.cli(&["schema", "write", broken.to_str().unwrap()]);
    assert_eq!(rejected.code, 1);
    assert!(
        rejected.stderr.contains("broken.zed:2"),
        "{}",
        rejected.stderr
    );
    assert!(
        server
            .cli(&["schema", "read"])
            .ok()
            .contains("definition group")
    );

    // Nothing listening.
    let port = unused_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let unreachable = run(&["schema", "read", "--endpoint", &endpoint]);
    assert_eq!(unreachable.code, 1);
    assert!(
        unreachable.stderr.contains(&format!(
            "cannot connect to {endpoint}: is `tessera serve` running?"
        )),
        "{}",
        unreachable.stderr
    );
}

#[test]
fn import_export_round_trip_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    write_schema(&server, dir.path());

    // 2500 relationships, alternating the text syntax and JSON lines, with comments.
    let mut input = String::from("// generated\n\n");
    let mut expected = BTreeSet::new();
    for i in 0..2500 {
        let text = format!("document:doc{i}#viewer@user:u{}", i % 97);
        if i % 2 == 0 {
            input.push_str(&text);
        } else {
            input.push_str(&format!(
                r#"{{"resource":{{"objectType":"document","objectId":"doc{i}"}},"relation":"viewer","subject":{{"object":{{"objectType":"user","objectId":"u{}"}}}}}}"#,
                i % 97
            ));
        }
        input.push('\n');
        expected.insert(text);
    }
    input.push_str("document:doc0#banned@user:x[expiration:2999-01-01T00:00:00Z]\n");
    expected.insert("document:doc0#banned@user:x[expiration:2999-01-01T00:00:00Z]".to_string());
    let file = dir.path().join("rels.txt");
    std::fs::write(&file, &input).unwrap();

    let imported = server.cli(&["import", file.to_str().unwrap(), "--batch-size", "700"]);
    imported.ok();
    assert!(
        imported.stderr.contains("imported 2501 relationships"),
        "{}",
        imported.stderr
    );

    // Text export to a file equals the input.
    let out = dir.path().join("export.txt");
    server.cli(&["export", out.to_str().unwrap()]).ok();
    let exported = std::fs::read_to_string(&out).unwrap();
    assert_eq!(exported.lines().count(), 2501);
    assert_eq!(lines(&exported), expected);

    // JSON lines to stdout, imported (from stdin) into a second server, exported again.
    let jsonl = server.cli(&["export", "--format", "jsonl"]);
    let jsonl = jsonl.ok();
    assert!(
        jsonl
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    let other = Server::start(&dir.path().join("data2"));
    write_schema(&other, dir.path());
    other.cli_with_stdin(&["import", "-"], jsonl).ok();
    assert_eq!(lines(other.cli(&["export"]).ok()), expected);
    // `-` is standard output too (as `import -` is standard input), never a file named `-`
    // in the working directory (the child inherits this process's).
    let dash_file = std::env::current_dir().unwrap().join("-");
    assert!(
        !dash_file.exists(),
        "a file named `-` exists before the test"
    );
    assert_eq!(lines(other.cli(&["export", "-"]).ok()), expected);
    assert!(!dash_file.exists(), "`export -` created a file named `-`");

    // Export in two parts: --limit prints the cursor, --resume-cursor appends the rest.
    let parts = dir.path().join("parts.txt");
    let first = server.cli(&["export", parts.to_str().unwrap(), "--limit", "1200"]);
    first.ok();
    assert_eq!(
        std::fs::read_to_string(&parts).unwrap().lines().count(),
        1200
    );
    let cursor = first
        .stderr
        .split("--resume-cursor ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no cursor in: {}", first.stderr))
        .to_string();
    server
        .cli(&[
            "export",
            parts.to_str().unwrap(),
            "--resume-cursor",
            &cursor,
        ])
        .ok();
    let joined = std::fs::read_to_string(&parts).unwrap();
    assert_eq!(
        joined.lines().count(),
        2501,
        "no duplicates, nothing missing"
    );
    assert_eq!(lines(&joined), expected);

    // A file with a bad line imports nothing and names the line.
    let bad = dir.path().join("bad.txt");
    std::fs::write(
        &bad,
        "document:new1#viewer@user:a\n\ndocument:new2#viewer\n",
    )
    .unwrap();
    let rejected = server.cli(&["import", bad.to_str().unwrap()]);
    assert_eq!(rejected.code, 1);
    assert!(
        rejected.stderr.contains("bad.txt:3:"),
        "{}",
        rejected.stderr
    );
    assert!(
        rejected.stderr.contains("nothing was imported"),
        "{}",
        rejected.stderr
    );
    assert_eq!(
        server.cli(&["relationship", "read", "document:new1"]).ok(),
        ""
    );

    // Importing relationships that already exist fails (CREATE semantics).
    let dup = server.cli(&["import", file.to_str().unwrap()]);
    assert_eq!(dup.code, 1, "{}", dup.stderr);
    assert!(dup.stderr.contains("ALREADY_EXISTS"), "{}", dup.stderr);
}
