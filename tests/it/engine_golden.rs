//! Engine cases as data: each `tests/engine/*.yaml` is a zed validation file (schema,
//! relationships, assertions) that must pass in full. Add a case by adding a file.

use std::path::Path;

use tessera::validate::{ValidateOptions, validate_file};

#[test]
fn every_engine_case_holds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/engine");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no cases in {}", dir.display());
    let mut failed = Vec::new();
    for file in &files {
        let report = validate_file(file, &ValidateOptions::default());
        if !report.passed() || report.assertions == 0 {
            failed.push(report.to_string());
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
