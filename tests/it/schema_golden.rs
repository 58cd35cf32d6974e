//! Golden tests of the schema compiler: every `tests/schema/*.zed` is compiled and the result
//! compared with its sibling `.expected` file.
//!
//! - `ok_*.zed` must compile. Expected: the canonical formatted schema, then, if there are
//!   warnings, a `--- warnings ---` line and the rendered warnings. The canonical text must
//!   also compile to the same schema, without warnings, and format to itself.
//! - `err_*.zed` must be rejected. Expected: the full rendered diagnostics.
//!
//! Run with `UPDATE_GOLDEN=1` to rewrite the expected files from the current output (then
//! review the diff: the expected files are the specification).

use std::fs;
use std::path::{Path, PathBuf};

use tessera::schema::{compile, format_schema, format_source};

const WARNINGS_MARKER: &str = "--- warnings ---\n";

fn cases() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schema");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "zed"))
        .collect();
    files.sort();
    files
}

fn case_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Produces the actual output for one case, or a failure description.
fn run_case(path: &Path) -> Result<String, String> {
    let name = case_name(path);
    let source = fs::read_to_string(path).expect("readable case file");
    let expect_ok = name.starts_with("ok_");
    if !expect_ok && !name.starts_with("err_") {
        return Err(format!(
            "{name}: case names must start with `ok_` or `err_`"
        ));
    }
    match compile(&name, &source) {
        Ok(out) => {
            if !expect_ok {
                return Err(format!("{name}: expected errors, but the schema compiled"));
            }
            let text = format_schema(&out.schema);
            // The canonical text is stable and means the same schema.
            let again = compile("canonical.zed", &text)
                .map_err(|d| format!("{name}: canonical text does not compile:\n{d}\n{text}"))?;
            if !again.warnings.items.is_empty() {
                return Err(format!(
                    "{name}: canonical text has warnings:\n{}",
                    again.warnings
                ));
            }
            if *again.schema != *out.schema {
                return Err(format!(
                    "{name}: canonical text compiles to a different schema:\n{text}"
                ));
            }
            let reformatted = format_source("canonical.zed", &text).map_err(|d| d.to_string())?;
            if reformatted != text {
                return Err(format!(
                    "{name}: formatting is not idempotent:\n{text}\n---\n{reformatted}"
                ));
            }
            if out.warnings.items.is_empty() {
                Ok(text)
            } else {
                Ok(format!("{text}{WARNINGS_MARKER}{}", out.warnings))
            }
        }
        Err(diags) => {
            if expect_ok {
                return Err(format!("{name}: expected to compile, got:\n{diags}"));
            }
            if !diags.has_errors() {
                return Err(format!("{name}: rejected without an error"));
            }
            Ok(diags.to_string())
        }
    }
}

#[test]
fn golden_schema_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let cases = cases();
    let accepted = cases
        .iter()
        .filter(|p| case_name(p).starts_with("ok_"))
        .count();
    assert!(
        accepted >= 15 && cases.len() - accepted >= 30,
        "the golden suite lost cases: {accepted} accepted, {} rejected",
        cases.len() - accepted
    );
    let mut failures = Vec::new();
    for path in &cases {
        let actual = match run_case(path) {
            Ok(a) => a,
            Err(f) => {
                failures.push(f);
                continue;
            }
        };
        let expected_path = path.with_extension("expected");
        if update {
            fs::write(&expected_path, &actual).expect("writable expected file");
            continue;
        }
        match fs::read_to_string(&expected_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => failures.push(format!(
                "{}: output differs from {}\n--- expected\n{expected}--- actual\n{actual}",
                path.display(),
                expected_path.display()
            )),
            Err(_) => failures.push(format!(
                "{}: missing {} (run with UPDATE_GOLDEN=1)",
                path.display(),
                expected_path.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A large generated schema compiles quickly (the checker is linear).
#[test]
fn thousand_definitions_compile_fast() {
    let mut src = String::from("definition user {}\n");
    // 999 + `user`: the default limit of 1,000 definitions.
    for i in 0..999 {
        let parent = if i == 0 { 0 } else { i - 1 };
        src.push_str(&format!(
            "definition res_{i} {{\n    relation parent: res_{parent}\n    relation owner: user\n    relation viewer: user | user:* | res_{parent}#view_all\n    permission edit = owner + parent->edit\n    permission view_all = viewer + edit - parent->view_all & owner\n}}\n"
        ));
    }
    let started = std::time::Instant::now();
    let out = compile("big.zed", &src).unwrap_or_else(|d| panic!("{d}"));
    let elapsed = started.elapsed();
    assert_eq!(out.schema.definitions.len(), 1000);
    assert_eq!(
        out.warnings.items.len() + out.warnings.omitted_warnings,
        999,
        "one precedence warning per definition"
    );
    assert_eq!(out.warnings.items.len(), tessera::schema::MAX_DIAGNOSTICS);
    // Generous even for an unoptimised build on a busy machine; typical is a few ms.
    assert!(
        elapsed < std::time::Duration::from_secs(2),
        "compiling took {elapsed:?}"
    );
}

mod robustness {
    use proptest::prelude::*;
    use tessera::schema::{compile, format_schema};

    const PIECES: &[&str] = &[
        "definition ",
        "relation ",
        "permission ",
        "caveat ",
        "use ",
        "expiration",
        " with ",
        " and ",
        "user",
        "doc_type",
        "viewer",
        "editor",
        "{",
        "}",
        "(",
        ")",
        ":",
        "|",
        "#",
        "*",
        "=",
        "+",
        "&",
        "-",
        "->",
        ".",
        "any",
        "all",
        "nil",
        ",",
        ";",
        "<",
        ">",
        "\n",
        " ",
        "// c\n",
        "/*",
        "*/",
        "/** d */",
        "\"",
        "'",
        "int",
        "list",
        "map",
        "string",
        "é",
        "@",
        "\t",
        "flag == 1",
        "tenant/user",
    ];

    fn source() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(PIECES), 0..80).prop_map(|v| v.concat())
    }

    /// A random permission expression over the relations every generated definition has.
    fn expression() -> impl Strategy<Value = String> {
        let leaf = prop::sample::select(vec![
            "rel_0",
            "rel_1",
            "nil",
            "rel_0->rel_1",
            "rel_0.any(rel_0)",
            "rel_0.all(rel_1)",
        ])
        .prop_map(str::to_string);
        leaf.prop_recursive(5, 40, 4, |inner| {
            (
                prop::collection::vec(inner, 2..4),
                prop::sample::select(vec![" + ", " & ", " - "]),
                any::<bool>(),
            )
                .prop_map(|(parts, op, paren)| {
                    let joined = parts.join(op);
                    if paren { format!("({joined})") } else { joined }
                })
        })
    }

    /// A valid schema: every definition has `rel_0` (no wildcard, so arrows over it are
    /// allowed) and `rel_1`, plus permissions built from them.
    fn schema_source() -> impl Strategy<Value = String> {
        let definition = (
            prop::collection::vec(0usize..3, 1..3),
            any::<bool>(),
            prop::collection::vec(expression(), 0..3),
        );
        prop::collection::vec(definition, 1..4).prop_map(|defs| {
            let n = defs.len();
            let mut out = String::from("caveat cav(flag bool) { flag }\n");
            for (i, (targets, wildcard, perms)) in defs.into_iter().enumerate() {
                let mut types: Vec<String> =
                    targets.iter().map(|t| format!("def_{}", t % n)).collect();
                types.dedup();
                types.sort();
                types.dedup();
                let mut rel1 = format!("def_{}#rel_0 | def_{} with cav", i, (i + 1) % n);
                if wildcard {
                    rel1.push_str(&format!(" | def_{}:*", i));
                }
                out.push_str(&format!(
                    "/** Definition {i}. */\ndefinition def_{i} {{\n  relation rel_0: {}\n  relation rel_1: {rel1}\n",
                    types.join(" | ")
                ));
                for (j, e) in perms.iter().enumerate() {
                    out.push_str(&format!("  permission perm_{j} = {e}\n"));
                }
                out.push_str("}\n");
            }
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Arbitrary token soup never panics; whatever compiles formats to canonical text
        /// that compiles back to the same schema; diagnostics always render.
        #[test]
        fn compile_never_panics_and_round_trips(src in source()) {
            match compile("fuzz.zed", &src) {
                Ok(out) => {
                    let text = format_schema(&out.schema);
                    let again = compile("canonical.zed", &text);
                    prop_assert!(again.is_ok(), "canonical text failed: {text}");
                    if let Ok(again) = again {
                        prop_assert_eq!(&*again.schema, &*out.schema);
                        prop_assert_eq!(format_schema(&again.schema), text);
                    }
                }
                Err(diags) => {
                    prop_assert!(diags.has_errors());
                    prop_assert!(!diags.to_string().is_empty());
                }
            }
        }

        /// Valid generated schemas compile, and their canonical text is stable, warning-free
        /// and compiles to the same schema.
        #[test]
        fn generated_schemas_round_trip(src in schema_source()) {
            let out = compile("gen.zed", &src);
            prop_assert!(out.is_ok(), "{}\n{}", src, out.err().map(|d| d.to_string()).unwrap_or_default());
            if let Ok(out) = out {
                let text = format_schema(&out.schema);
                let again = compile("canonical.zed", &text);
                prop_assert!(again.is_ok(), "canonical text failed: {text}");
                if let Ok(again) = again {
                    prop_assert!(again.warnings.items.is_empty(), "{}", again.warnings);
                    prop_assert_eq!(&*again.schema, &*out.schema);
                    prop_assert_eq!(format_schema(&again.schema), text);
                }
            }
        }
    }
}
