//! `tessera validate FILE...` end to end: the built binary on the fixtures in tests/validate/.

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// Runs `tessera validate` from the `tests/` directory so reported paths are `validate/...`.
fn validate(files: &[&str]) -> Run {
    run_in(&fixtures(), files)
}

fn run_in(dir: &Path, files: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("validate")
        .args(files)
        .current_dir(dir)
        .output()
        .expect("the tessera binary runs");
    Run {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
    }
}

fn assert_contains(run: &Run, needle: &str) {
    assert!(
        run.stdout.contains(needle),
        "output lacks {needle:?}:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
}

fn error_lines(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .filter(|l| l.contains(": error: "))
        .collect()
}

#[test]
fn passing_file_exits_zero_with_summary() {
    let run = validate(&["validate/pass.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_eq!(
        run.stdout.trim(),
        "validate/pass.yaml: ok: 9 relationships loaded, 9 assertions run, 5 expected relations validated"
    );
}

#[test]
fn failing_assertions_name_line_entry_expected_and_found() {
    let run = validate(&["validate/fail_assertions.yaml"]);
    assert_eq!(run.code, 1);
    assert_eq!(error_lines(&run).len(), 6, "{}", run.stdout);
    assert_contains(
        &run,
        "validate/fail_assertions.yaml:16:7: error: assertTrue failed for `document:readme#view@user:bob`\n    expected: has permission\n    found:    no permission\n",
    );
    // A caveated answer is not a "true": the missing parameters are named.
    assert_contains(
        &run,
        "validate/fail_assertions.yaml:17:7: error: assertTrue failed for `document:readme#view@user:carol`\n    expected: has permission\n    found:    conditional permission (missing caveat context: day)\n",
    );
    assert_contains(
        &run,
        "validate/fail_assertions.yaml:19:7: error: assertFalse failed for `document:readme#view@user:alice`\n    expected: no permission\n    found:    has permission\n",
    );
    // The context given with `with {...}` is used.
    assert_contains(
        &run,
        "validate/fail_assertions.yaml:20:7: error: assertFalse failed for `document:readme#view@user:carol with {\"day\":1}`",
    );
    assert_contains(
        &run,
        "validate/fail_assertions.yaml:22:7: error: assertCaveated failed for `document:readme#view@user:alice`\n    expected: conditional permission (caveated)\n    found:    has permission\n",
    );
    assert_contains(
        &run,
        "validate/fail_assertions.yaml:23:7: error: assertCaveated failed",
    );
    assert_contains(
        &run,
        "validate/fail_assertions.yaml: FAILED with 6 errors: 2 relationships loaded, 7 assertions run, 0 expected relations validated",
    );
    // Assertions that hold are not reported.
    assert!(!run.stdout.contains(":15:"), "{}", run.stdout);
}

#[test]
fn wrong_expected_relations_report_missing_extra_and_different_subjects() {
    let run = validate(&["validate/fail_expected.yaml"]);
    assert_eq!(run.code, 1);
    assert_eq!(error_lines(&run).len(), 6, "{}", run.stdout);
    // An extra subject is reported at the key, ready to paste.
    assert_contains(
        &run,
        "validate/fail_expected.yaml:23:3: error: `user:erin` has `document:a#view` but is not listed\n    expected: not listed\n    found:    \"[user:erin] is <group:eng#member>\"\n",
    );
    // A missing subject is reported at its entry.
    assert_contains(
        &run,
        "validate/fail_expected.yaml:27:7: error: `user:zed` is expected to have `document:a#view` but does not\n    expected: [user:zed] is <document:a#viewer>\n    found:    no such subject\n",
    );
    assert_contains(
        &run,
        "validate/fail_expected.yaml:29:7: error: `user:*` on `document:b#view`: the excluded subjects differ\n    expected: [user:* - {user:bob}] is <document:b#viewer>\n    found:    [user:* - {user:bob, user:carol}] is <document:b#viewer>\n",
    );
    assert_contains(
        &run,
        "validate/fail_expected.yaml:31:7: error: `user:cam` on `document:c#view`: the subject holds it only conditionally (caveated)",
    );
    assert_contains(
        &run,
        "    found:    [user:cam[on_weekday]] is <document:c#viewer>\n",
    );
    assert_contains(
        &run,
        "validate/fail_expected.yaml:33:7: error: `user:alice` on `document:a#viewer`: the relations through which it is found differ\n    expected: [user:alice] is <document:b#viewer>\n    found:    [user:alice] is <document:a#viewer>\n",
    );
    // The userset entry and alice on document:a#view hold and are not reported.
    assert!(!run.stdout.contains(":25:"), "{}", run.stdout);
    assert!(!run.stdout.contains(":26:"), "{}", run.stdout);
}

/// The caret line points at the same column as the named text in the quoted source line.
fn assert_caret_under(run: &Run, source_fragment: &str, underlined: &str) {
    let lines: Vec<&str> = run.stdout.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.contains(source_fragment))
        .unwrap_or_else(|| panic!("no source line with {source_fragment:?}:\n{}", run.stdout));
    let caret_line = lines.get(i + 1).expect("a caret line follows");
    let caret_at = caret_line.find('^').expect("a caret");
    assert_eq!(
        caret_at,
        lines[i]
            .find(underlined)
            .expect("underlined text in the line"),
        "caret misplaced:\n{}\n{}",
        lines[i],
        caret_line
    );
    assert_eq!(caret_line.matches('^').count(), underlined.len());
}

#[test]
fn inline_schema_errors_use_the_yaml_files_lines() {
    let run = validate(&["validate/schema_error.yaml"]);
    assert_eq!(run.code, 1);
    assert_contains(&run, "`editor`");
    // Line 9, column 34 of the YAML file, not of the schema block.
    assert_contains(&run, "validate/schema_error.yaml:9:34");
    assert_caret_under(&run, "permission view = viewer + editor", "editor");
    assert_contains(&run, "not evaluated because of the errors above");
    assert!(!run.stdout.contains("assertTrue failed"), "{}", run.stdout);
}

#[test]
fn schema_file_is_resolved_relative_to_the_yaml_file() {
    let run = validate(&["validate/schema_file.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_contains(
        &run,
        "validate/schema_file.yaml: ok: 1 relationship loaded, 2 assertions run, 1 expected relation validated",
    );
    // The same from another working directory.
    let run = run_in(&fixtures().join("validate"), &["schema_file.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let run = run_in(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &["tests/validate/schema_file.yaml"],
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn schema_file_errors_point_into_the_schema_file() {
    let run = validate(&["validate/schema_file_error.yaml"]);
    assert_eq!(run.code, 1);
    assert_contains(&run, "validate/schemas/broken.zed:4:22");
    assert_contains(&run, "`usr`");
    assert_caret_under(&run, "relation viewer: usr", "usr");
}

#[test]
fn missing_schema_file_is_a_located_error() {
    let run = validate(&["validate/schema_file_missing.yaml"]);
    assert_eq!(run.code, 1);
    assert_contains(
        &run,
        "validate/schema_file_missing.yaml:2:13: error: cannot read schema file `validate/schemas/does-not-exist.zed`",
    );
}

#[test]
fn bad_relationship_lines_are_reported_at_their_line_and_column() {
    let run = validate(&["validate/bad_relationship.yaml"]);
    assert_eq!(run.code, 1);
    assert_eq!(error_lines(&run).len(), 4, "{}", run.stdout);
    assert_contains(
        &run,
        "validate/bad_relationship.yaml:9:5: error: invalid relationship: cannot parse relationship `document:a#viewer@`",
    );
    assert_contains(
        &run,
        "validate/bad_relationship.yaml:10:3: error: relationship `document:a#view@user:bob` does not fit the schema:",
    );
    assert_contains(
        &run,
        "validate/bad_relationship.yaml:11:3: error: relationship `document:a#viewer@group:eng#member` does not fit the schema:",
    );
    assert_contains(
        &run,
        "validate/bad_relationship.yaml:12:3: error: duplicate relationship `document:a#viewer@user:alice` (first given at line 8)",
    );
    assert_contains(&run, "not evaluated because of the errors above");
}

#[test]
fn bad_yaml_is_a_located_error_not_a_panic() {
    let run = validate(&["validate/bad_yaml.yaml"]);
    assert_eq!(run.code, 1);
    assert_contains(&run, "validate/bad_yaml.yaml:4:11: error: invalid YAML: ");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn malformed_entries_are_reported_and_the_rest_still_evaluated() {
    let run = validate(&["validate/bad_entries.yaml"]);
    assert_eq!(run.code, 1);
    assert_contains(
        &run,
        "validate/bad_entries.yaml:11:39: error: invalid assertTrue entry: the context after `with` must be a JSON object, found `[1]`",
    );
    assert_contains(
        &run,
        "validate/bad_entries.yaml:12:7: error: invalid assertTrue entry:",
    );
    assert_contains(
        &run,
        "validate/bad_entries.yaml:13:7: error: assertTrue `document:a#vew@user:alice`: `document` has no relation or permission `vew`",
    );
    assert_contains(
        &run,
        "validate/bad_entries.yaml:15:7: error: assertFalse `document:a#view@unknown:bob`: subject definition `unknown` is not in the schema",
    );
    assert_contains(
        &run,
        "validate/bad_entries.yaml:16:3: error: unknown assertion kind `assertMaybe`",
    );
    assert_contains(
        &run,
        "validate/bad_entries.yaml:20:8: error: invalid expected subject:",
    );
    assert_contains(
        &run,
        "validate/bad_entries.yaml:21:25: error: invalid expected subject:",
    );
    assert_contains(
        &run,
        "validate/bad_entries.yaml:22:3: error: invalid expected-relations key:",
    );
    assert_eq!(error_lines(&run).len(), 8, "{}", run.stdout);
}

#[test]
fn unreadable_file_fails_without_panicking() {
    let run = validate(&["validate/no-such-file.yaml"]);
    assert_eq!(run.code, 1);
    assert_contains(
        &run,
        "validate/no-such-file.yaml:1:1: error: cannot read validation file",
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn several_files_fail_if_any_fails() {
    let run = validate(&["validate/pass.yaml", "validate/fail_assertions.yaml"]);
    assert_eq!(run.code, 1);
    assert_contains(&run, "validate/pass.yaml: ok:");
    assert_contains(&run, "validate/fail_assertions.yaml: FAILED with 6 errors");
    assert_contains(&run, "2 files validated: 1 passed, 1 failed");

    let run = validate(&["validate/pass.yaml", "validate/schema_file.yaml"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert_contains(&run, "2 files validated: 2 passed, 0 failed");
}

#[test]
fn usage_errors_exit_two() {
    let run = validate(&[]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("FILE"), "{}", run.stderr);

    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("no-such-subcommand")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn file_shape_errors_are_located() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[(&str, &str, &str)] = &[
        (
            "empty.yaml",
            "",
            "empty.yaml:1:1: error: the validation file is empty",
        ),
        (
            "list.yaml",
            "- a\n- b\n",
            "list.yaml:1:1: error: a validation file must be a mapping",
        ),
        (
            "no_schema.yaml",
            "relationships: ''\n",
            "no_schema.yaml:1:1: error: missing `schema` (inline schema text) or `schemaFile`",
        ),
        (
            "both.yaml",
            "schema: 'definition user {}'\nschemaFile: x.zed\n",
            "both.yaml:1:1: error: both `schema` and `schemaFile` are given",
        ),
        (
            "unknown_key.yaml",
            "schema: 'definition user {}'\nassertion:\n  assertTrue: []\n",
            "unknown_key.yaml:2:1: error: unknown key `assertion`",
        ),
        (
            "dup_key.yaml",
            "schema: 'definition user {}'\nschema: 'definition user {}'\n",
            "dup_key.yaml:2:1: error: duplicate key `schema` (first defined at line 1)",
        ),
        (
            "rel_list.yaml",
            "schema: 'definition user {}'\nrelationships:\n  - a\n",
            "rel_list.yaml:3:3: error: `relationships` must be a block of text",
        ),
        (
            "assert_shape.yaml",
            "schema: 'definition user {}'\nassertions:\n  assertTrue: document:a#view@user:a\n",
            "assert_shape.yaml:3:15: error: `assertTrue` must be a list of strings",
        ),
    ];
    for (name, text, expected) in cases {
        std::fs::write(dir.path().join(name), text).expect("write fixture");
        let run = run_in(dir.path(), &[name]);
        assert_eq!(run.code, 1, "{name}: {}", run.stdout);
        assert_contains(&run, expected);
    }
}

#[test]
fn every_schema_example_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema-examples");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.iter().any(|f| f == "authzen-todo.yaml"), "{files:?}");
    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let run = run_in(&dir, &args);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.matches(": ok:").count(),
        files.len(),
        "{}",
        run.stdout
    );
}
