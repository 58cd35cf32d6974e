//! Validation files in the format of `zed validate`: a schema, relationships, assertions and
//! expected relations, checked in-process against an in-memory store.
//!
//! ```yaml
//! schema: |-                      # or `schemaFile: path/relative/to/this/file.zed`
//!   definition user {}
//!   definition document {
//!     relation viewer: user | user:*
//!     permission view = viewer
//!   }
//! relationships: |-               # one per line; blank lines and `//` comments allowed
//!   document:readme#viewer@user:alice
//! assertions:
//!   assertTrue:                   # HAS_PERMISSION
//!     - document:readme#view@user:alice
//!   assertFalse:                  # NO_PERMISSION
//!     - document:readme#view@user:bob
//!   assertCaveated:               # CONDITIONAL_PERMISSION with the context given
//!     - 'document:readme#view@user:carol with {"day": 3}'
//! validation:                     # the exact subjects of each object#permission
//!   document:readme#view:
//!     - "[user:alice] is <document:readme#viewer>"
//! ```
//!
//! [`validate_file`] checks one file and returns a [`FileReport`], whose `Display` is the
//! human report (`file:line:column: error: ...` per failure, then a summary line);
//! [`run`] does that for several files and tells whether everything held.

pub mod entries;
mod membership;
mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use crate::engine::{CheckOutcome, EngineConfig, Evaluator};
use crate::model::{Relationship, RelationshipKey, SubjectRef, parse_relationship};
use crate::schema::{Diagnostics, Schema};
use crate::store::Store;
use crate::store::memory::MemoryStore;

use entries::{
    Assertion, ExpectedSubject, ObjectRelation, format_paths, format_subject, parse_assertion,
    parse_expected_subject, parse_object_relation,
};
use membership::{FoundSubject, Membership, SubjectSet};
pub use yaml::Pos;
use yaml::{Node, NodeKind, Source};

/// Knobs of a validation run.
#[derive(Debug, Clone, Default)]
pub struct ValidateOptions {
    /// Limits of the evaluator used for assertions (and the depth limit of expected relations).
    pub engine: EngineConfig,
}

/// What part of the file a failure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The file could not be read, is not valid YAML, or has the wrong shape.
    File,
    /// A relationship line is malformed or does not fit the schema.
    Relationship,
    /// An assertion is malformed or does not hold.
    Assertion,
    /// An expected-relations entry is malformed or does not match what was computed.
    ExpectedRelations,
}

/// One failure, located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// The file the position refers to (the validation file, or its schema file).
    pub file: String,
    pub pos: Pos,
    pub message: String,
    /// Further lines: the failing entry, what was expected and what was found.
    pub details: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}:{}: error: {}", self.file, self.pos, self.message)?;
        for d in &self.details {
            writeln!(f, "    {d}")?;
        }
        Ok(())
    }
}

/// The outcome of validating one file.
#[derive(Debug, Clone)]
pub struct FileReport {
    /// The file as named by the caller.
    pub path: String,
    /// Schema compile errors, rendered with the schema's own diagnostics (for an inline
    /// `schema:` block, with the YAML file's line numbers).
    pub schema_errors: Option<Diagnostics>,
    /// Schema warnings (do not fail the file).
    pub schema_warnings: Option<Diagnostics>,
    /// Every other failure, in file order.
    pub failures: Vec<Failure>,
    /// Relationships loaded into the store.
    pub relationships: usize,
    /// Assertions evaluated.
    pub assertions: usize,
    /// `object#permission` entries of `validation:` compared.
    pub expected_relations: usize,
    /// False when errors in the schema, relationships or file prevented evaluation.
    pub evaluated: bool,
}

impl FileReport {
    fn new(path: &str) -> Self {
        FileReport {
            path: path.to_string(),
            schema_errors: None,
            schema_warnings: None,
            failures: Vec::new(),
            relationships: 0,
            assertions: 0,
            expected_relations: 0,
            evaluated: false,
        }
    }

    /// True when the file is well-formed and every assertion and expectation holds.
    pub fn passed(&self) -> bool {
        self.schema_errors.is_none() && self.failures.is_empty()
    }

    /// Number of errors: schema diagnostics plus other failures.
    pub fn error_count(&self) -> usize {
        let schema = self.schema_errors.as_ref().map_or(0, |d| {
            d.items
                .iter()
                .filter(|i| i.severity == crate::schema::Severity::Error)
                .count()
                .max(1)
        });
        schema + self.failures.len()
    }

    fn fail(
        &mut self,
        kind: FailureKind,
        file: &str,
        pos: Pos,
        message: impl Into<String>,
        details: Vec<String>,
    ) {
        self.failures.push(Failure {
            kind,
            file: file.to_string(),
            pos,
            message: message.into(),
            details,
        });
    }

    /// The summary line: `path: ok (...)` or `path: FAILED, N errors (...)`.
    pub fn summary(&self) -> String {
        let counts = format!(
            "{} relationship{} loaded, {} assertion{} run, {} expected relation{} validated",
            self.relationships,
            plural(self.relationships),
            self.assertions,
            plural(self.assertions),
            self.expected_relations,
            plural(self.expected_relations),
        );
        if self.passed() {
            format!("{}: ok: {counts}", self.path)
        } else {
            let n = self.error_count();
            let mut s = format!(
                "{}: FAILED with {n} error{}: {counts}",
                self.path,
                plural(n)
            );
            if !self.evaluated {
                s.push_str(" (assertions and expected relations not evaluated because of the errors above)");
            }
            s
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Diagnostics blocks are followed by a blank line to set them apart from what follows.
        if let Some(w) = &self.schema_warnings {
            writeln!(f, "{w}")?;
        }
        if let Some(e) = &self.schema_errors {
            writeln!(f, "{e}")?;
        }
        for failure in self.failures.iter().take(MAX_SHOWN_FAILURES) {
            write!(f, "{failure}")?;
        }
        if self.failures.len() > MAX_SHOWN_FAILURES {
            writeln!(
                f,
                "… and {} more failures (the first {MAX_SHOWN_FAILURES} are shown)",
                self.failures.len() - MAX_SHOWN_FAILURES
            )?;
        }
        writeln!(f, "{}", self.summary())
    }
}

/// Failures a report shows (all are counted): a file with thousands of broken entries has one
/// mistake repeated, and a report must stay readable (and bounded) whatever the file.
pub const MAX_SHOWN_FAILURES: usize = 100;

/// Validates each file, writing each report to `out`. Returns true when every file passed.
pub fn run<P: AsRef<Path>>(
    paths: &[P],
    options: &ValidateOptions,
    out: &mut dyn Write,
) -> io::Result<bool> {
    let mut passed = 0;
    for p in paths {
        let report = validate_file(p.as_ref(), options);
        write!(out, "{report}")?;
        if report.passed() {
            passed += 1;
        }
    }
    if paths.len() > 1 {
        writeln!(
            out,
            "{} files validated: {passed} passed, {} failed",
            paths.len(),
            paths.len() - passed
        )?;
    }
    Ok(passed == paths.len())
}

/// Reads and validates one file. Relative `schemaFile` paths are resolved against the
/// directory of `path`.
pub fn validate_file(path: &Path, options: &ValidateOptions) -> FileReport {
    let display = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let base = path.parent().unwrap_or_else(|| Path::new(""));
            validate_source(&display, &text, base, options)
        }
        Err(e) => {
            let mut report = FileReport::new(&display);
            report.fail(
                FailureKind::File,
                &display,
                Pos::new(1, 1),
                format!("cannot read validation file `{display}`: {e}"),
                Vec::new(),
            );
            report
        }
    }
}

/// Validates the text of a validation file named `name` (used in messages), resolving a
/// relative `schemaFile` against `base_dir`.
pub fn validate_source(
    name: &str,
    text: &str,
    base_dir: &Path,
    options: &ValidateOptions,
) -> FileReport {
    let source = Source::new(text);
    let parsed = source.parse();
    let mut v = Validator {
        name,
        source: &source,
        base_dir,
        options,
        report: FileReport::new(name),
    };
    v.run(&parsed);
    let mut report = v.report;
    report.failures.sort_by_key(|f| f.pos);
    report
}

/// An entry waiting for evaluation, with the position of its text.
struct Placed<T> {
    pos: Pos,
    item: T,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    True,
    False,
    Caveated,
}

impl Expect {
    fn key(self) -> &'static str {
        match self {
            Expect::True => "assertTrue",
            Expect::False => "assertFalse",
            Expect::Caveated => "assertCaveated",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Expect::True => "has permission",
            Expect::False => "no permission",
            Expect::Caveated => "conditional permission (caveated)",
        }
    }

    fn holds(self, outcome: &CheckOutcome) -> bool {
        matches!(
            (self, outcome),
            (Expect::True, CheckOutcome::Has)
                | (Expect::False, CheckOutcome::No)
                | (Expect::Caveated, CheckOutcome::Conditional { .. })
        )
    }
}

fn describe_outcome(outcome: &CheckOutcome) -> String {
    match outcome {
        CheckOutcome::Has => "has permission".into(),
        CheckOutcome::No => "no permission".into(),
        CheckOutcome::Conditional { missing } if missing.is_empty() => {
            "conditional permission".into()
        }
        CheckOutcome::Conditional { missing } => format!(
            "conditional permission (missing caveat context: {})",
            missing.join(", ")
        ),
    }
}

struct ExpectedBlock {
    key_pos: Pos,
    key: ObjectRelation,
    subjects: Vec<Placed<ExpectedSubject>>,
    /// Some entries could not be parsed (already reported): comparing the rest would report
    /// their subjects as unlisted, so the block is not compared.
    malformed: bool,
}

struct Validator<'a> {
    name: &'a str,
    source: &'a Source<'a>,
    base_dir: &'a Path,
    options: &'a ValidateOptions,
    report: FileReport,
}

const TOP_LEVEL_KEYS: &str = "`schema`, `schemaFile`, `relationships`, `assertions`, `validation`";

impl<'a> Validator<'a> {
    fn fail(
        &mut self,
        kind: FailureKind,
        pos: Pos,
        message: impl Into<String>,
        details: Vec<String>,
    ) {
        let name = self.name;
        self.report.fail(kind, name, pos, message, details);
    }

    fn run(&mut self, parsed: &'a Result<Option<Node>, yaml::YamlError>) {
        let root = match parsed {
            Ok(Some(root)) => root,
            Ok(None) => {
                self.fail(
                    FailureKind::File,
                    Pos::new(1, 1),
                    format!("the validation file is empty; expected the keys {TOP_LEVEL_KEYS}"),
                    Vec::new(),
                );
                return;
            }
            Err(e) => {
                self.fail(FailureKind::File, e.pos, e.message.clone(), Vec::new());
                return;
            }
        };
        let NodeKind::Mapping(pairs) = &root.kind else {
            self.fail(
                FailureKind::File,
                root.pos,
                format!(
                    "a validation file must be a mapping with the keys {TOP_LEVEL_KEYS}, found {}",
                    root.kind_name()
                ),
                Vec::new(),
            );
            return;
        };

        let mut schema_node = None;
        let mut schema_file_node = None;
        let mut relationships_node = None;
        let mut assertions_node = None;
        let mut validation_node = None;
        for (k, v) in pairs {
            match k.as_str().unwrap_or_default() {
                "schema" => schema_node = Some((k, v)),
                "schemaFile" => schema_file_node = Some((k, v)),
                "relationships" => relationships_node = Some(v),
                "assertions" => assertions_node = Some(v),
                "validation" => validation_node = Some(v),
                other => self.fail(
                    FailureKind::File,
                    k.pos,
                    format!("unknown key `{other}`; expected one of {TOP_LEVEL_KEYS}"),
                    Vec::new(),
                ),
            }
        }

        let schema = self.load_schema(root, schema_node, schema_file_node);
        let relationships = self.load_relationships(relationships_node, schema.as_deref());
        let assertions = assertions_node
            .map(|n| self.parse_assertions(n))
            .unwrap_or_default();
        let expected = validation_node
            .map(|n| self.parse_validation(n))
            .unwrap_or_default();

        let (Some(schema), Some(relationships)) = (schema, relationships) else {
            return;
        };
        self.evaluate(&schema, relationships, assertions, expected);
    }

    /// Compiles the schema; `None` (with failures recorded) when there is none or it is invalid.
    fn load_schema(
        &mut self,
        root: &Node,
        inline: Option<(&Node, &'a Node)>,
        file: Option<(&Node, &Node)>,
    ) -> Option<Arc<Schema>> {
        let (file_name, text) = match (inline, file) {
            (Some((k, _)), Some(_)) => {
                self.fail(
                    FailureKind::File,
                    k.pos,
                    "both `schema` and `schemaFile` are given; use one",
                    Vec::new(),
                );
                return None;
            }
            (None, None) => {
                self.fail(
                    FailureKind::File,
                    root.pos,
                    "missing `schema` (inline schema text) or `schemaFile` (path to a .zed file)",
                    Vec::new(),
                );
                return None;
            }
            (Some((_, node)), None) => {
                if node.as_str().is_none() {
                    self.fail(
                        FailureKind::File,
                        node.pos,
                        format!(
                            "`schema` must be the schema text (a string), found {}",
                            node.kind_name()
                        ),
                        Vec::new(),
                    );
                    return None;
                }
                // Compile the block in place so diagnostics carry the YAML file's positions.
                (self.name.to_string(), self.source.embedded_text(node))
            }
            (None, Some((_, node))) => {
                let Some(rel) = node.as_str().filter(|s| !s.trim().is_empty()) else {
                    self.fail(
                        FailureKind::File,
                        node.pos,
                        format!("`schemaFile` must be a path, found {}", node.kind_name()),
                        Vec::new(),
                    );
                    return None;
                };
                let path = self.base_dir.join(rel.trim());
                let shown = path.display().to_string();
                match std::fs::read_to_string(&path) {
                    Ok(text) => (shown, text),
                    Err(e) => {
                        self.fail(
                            FailureKind::File,
                            node.pos,
                            format!("cannot read schema file `{shown}`: {e}"),
                            Vec::new(),
                        );
                        return None;
                    }
                }
            }
        };
        match crate::schema::compile(&file_name, &text) {
            Ok(out) => {
                if !out.warnings.items.is_empty() {
                    self.report.schema_warnings = Some(out.warnings);
                }
                Some(out.schema)
            }
            Err(diagnostics) => {
                self.report.schema_errors = Some(diagnostics);
                None
            }
        }
    }

    /// Parses (and, with a schema, type-checks) the relationships. `None` when any is bad.
    fn load_relationships(
        &mut self,
        node: Option<&'a Node>,
        schema: Option<&Schema>,
    ) -> Option<Vec<Relationship>> {
        let Some(node) = node.filter(|n| !n.is_null()) else {
            return Some(Vec::new());
        };
        if node.as_str().is_none() {
            self.fail(
                FailureKind::File,
                node.pos,
                format!(
                    "`relationships` must be a block of text with one relationship per line, found {}",
                    node.kind_name()
                ),
                Vec::new(),
            );
            return None;
        }
        let mut ok = true;
        let mut seen: HashMap<RelationshipKey, usize> = HashMap::new();
        let mut out = Vec::new();
        for line in self.source.scalar_lines(node) {
            let text = line.text.trim_start();
            if text.is_empty() || text.starts_with("//") {
                continue;
            }
            let lead = line.text.len() - text.len();
            let pos = Pos::new(
                line.pos.line,
                line.pos.column + line.text[..lead].chars().count(),
            );
            let text = text.trim_end();
            let r = match parse_relationship(text) {
                Ok(r) => r,
                Err(e) => {
                    self.fail(
                        FailureKind::Relationship,
                        pos,
                        format!("invalid relationship: {e}"),
                        Vec::new(),
                    );
                    ok = false;
                    continue;
                }
            };
            if let Some(schema) = schema
                && let Err(violation) = schema.validate_relationship(&r)
            {
                self.fail(
                    FailureKind::Relationship,
                    pos,
                    format!("relationship `{text}` does not fit the schema: {violation}"),
                    Vec::new(),
                );
                ok = false;
                continue;
            }
            if let Some(first) = seen.insert(r.key(), pos.line) {
                self.fail(
                    FailureKind::Relationship,
                    pos,
                    format!(
                        "duplicate relationship `{}` (first given at line {first})",
                        r.key()
                    ),
                    Vec::new(),
                );
                ok = false;
                continue;
            }
            out.push(r);
        }
        ok.then_some(out)
    }

    fn parse_assertions(&mut self, node: &'a Node) -> Vec<Placed<(Expect, Assertion)>> {
        let mut out = Vec::new();
        if node.is_null() {
            return out;
        }
        let NodeKind::Mapping(pairs) = &node.kind else {
            self.fail(
                FailureKind::File,
                node.pos,
                format!(
                    "`assertions` must be a mapping with `assertTrue`, `assertFalse` and/or `assertCaveated`, found {}",
                    node.kind_name()
                ),
                Vec::new(),
            );
            return out;
        };
        for (k, list) in pairs {
            let expect = match k.as_str().unwrap_or_default() {
                "assertTrue" => Expect::True,
                "assertFalse" => Expect::False,
                "assertCaveated" => Expect::Caveated,
                other => {
                    self.fail(
                        FailureKind::File,
                        k.pos,
                        format!("unknown assertion kind `{other}`; expected `assertTrue`, `assertFalse` or `assertCaveated`"),
                        Vec::new(),
                    );
                    continue;
                }
            };
            for entry in self.string_list(list, expect.key()) {
                let text = entry.as_str().unwrap_or_default();
                match parse_assertion(text) {
                    Ok(a) => out.push(Placed {
                        pos: entry.pos,
                        item: (expect, a),
                    }),
                    Err(e) => {
                        let pos = self.source.pos_in_scalar(entry, e.offset);
                        self.fail(
                            FailureKind::Assertion,
                            pos,
                            format!("invalid {} entry: {}", expect.key(), e.message),
                            vec![format!("entry: {}", text.trim())],
                        );
                    }
                }
            }
        }
        out
    }

    /// The string items of a list node (null is an empty list); reports other shapes.
    fn string_list(&mut self, list: &'a Node, what: &str) -> Vec<&'a Node> {
        if list.is_null() {
            return Vec::new();
        }
        let NodeKind::Sequence(items) = &list.kind else {
            self.fail(
                FailureKind::File,
                list.pos,
                format!(
                    "`{what}` must be a list of strings, found {}",
                    list.kind_name()
                ),
                Vec::new(),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            if item.as_str().is_some() && !item.is_null() {
                out.push(item);
            } else {
                self.fail(
                    FailureKind::File,
                    item.pos,
                    format!(
                        "entries of `{what}` must be strings, found {}",
                        item.kind_name()
                    ),
                    Vec::new(),
                );
            }
        }
        out
    }

    fn parse_validation(&mut self, node: &'a Node) -> Vec<ExpectedBlock> {
        let mut out = Vec::new();
        if node.is_null() {
            return out;
        }
        let NodeKind::Mapping(pairs) = &node.kind else {
            self.fail(
                FailureKind::File,
                node.pos,
                format!(
                    "`validation` must map `type:id#permission` to lists of expected subjects, found {}",
                    node.kind_name()
                ),
                Vec::new(),
            );
            return out;
        };
        for (k, list) in pairs {
            let key_text = k.as_str().unwrap_or_default();
            let key = match parse_object_relation(key_text) {
                Ok(key) => Some(key),
                Err(e) => {
                    let pos = self.source.pos_in_scalar(k, e.offset);
                    self.fail(
                        FailureKind::ExpectedRelations,
                        pos,
                        format!("invalid expected-relations key: {}", e.message),
                        Vec::new(),
                    );
                    None
                }
            };
            let mut subjects: Vec<Placed<ExpectedSubject>> = Vec::new();
            let mut malformed = false;
            for entry in self.string_list(list, key_text) {
                let text = entry.as_str().unwrap_or_default();
                match parse_expected_subject(text) {
                    Ok(e) => {
                        if let Some(prev) = subjects.iter().find(|p| p.item.subject == e.subject) {
                            let line = prev.pos.line;
                            self.fail(
                                FailureKind::ExpectedRelations,
                                entry.pos,
                                format!(
                                    "subject `{}` is listed twice (first at line {line})",
                                    e.subject
                                ),
                                Vec::new(),
                            );
                        } else {
                            subjects.push(Placed {
                                pos: entry.pos,
                                item: e,
                            });
                        }
                    }
                    Err(e) => {
                        malformed = true;
                        let pos = self.source.pos_in_scalar(entry, e.offset);
                        self.fail(
                            FailureKind::ExpectedRelations,
                            pos,
                            format!("invalid expected subject: {}", e.message),
                            vec![format!("entry: {}", text.trim())],
                        );
                    }
                }
            }
            if let Some(key) = key {
                out.push(ExpectedBlock {
                    key_pos: k.pos,
                    key,
                    subjects,
                    malformed,
                });
            }
        }
        out
    }

    fn evaluate(
        &mut self,
        schema: &Schema,
        relationships: Vec<Relationship>,
        assertions: Vec<Placed<(Expect, Assertion)>>,
        expected: Vec<ExpectedBlock>,
    ) {
        let count = relationships.len();
        let store = MemoryStore::new();
        let loaded = match store.bulk_import(relationships, None) {
            Ok(rev) => store.snapshot(rev),
            Err(e) => Err(e),
        };
        let snapshot = match loaded {
            Ok(s) => s,
            Err(e) => {
                self.fail(
                    FailureKind::Relationship,
                    Pos::new(1, 1),
                    format!("cannot load the relationships: {e}"),
                    Vec::new(),
                );
                return;
            }
        };
        self.report.relationships = count;
        self.report.evaluated = true;
        let config = &self.options.engine;
        let evaluator = Evaluator::new(schema, snapshot.as_ref(), config);

        for Placed {
            pos,
            item: (expect, a),
        } in assertions
        {
            self.report.assertions += 1;
            if let Err(message) = check_names(
                schema,
                &ObjectRelation {
                    object: a.resource.clone(),
                    relation: a.permission.clone(),
                },
                Some(&a.subject),
            ) {
                self.fail(
                    FailureKind::Assertion,
                    pos,
                    format!("{} `{a}`: {message}", expect.key()),
                    Vec::new(),
                );
                continue;
            }
            match evaluator.check(&a.resource, &a.permission, &a.subject, &a.context) {
                Ok(outcome) if expect.holds(&outcome) => {}
                Ok(outcome) => self.fail(
                    FailureKind::Assertion,
                    pos,
                    format!("{} failed for `{a}`", expect.key()),
                    vec![
                        format!("expected: {}", expect.describe()),
                        format!("found:    {}", describe_outcome(&outcome)),
                    ],
                ),
                Err(e) => self.fail(
                    FailureKind::Assertion,
                    pos,
                    format!("{} `{a}` could not be evaluated: {e}", expect.key()),
                    Vec::new(),
                ),
            }
        }

        let mut membership = Membership::new(schema, snapshot.as_ref(), config.max_depth);
        for block in expected.into_iter().filter(|b| !b.malformed) {
            self.report.expected_relations += 1;
            if let Err(message) = check_names(schema, &block.key, None) {
                self.fail(
                    FailureKind::ExpectedRelations,
                    block.key_pos,
                    format!("expected relations for `{}`: {message}", block.key),
                    Vec::new(),
                );
                continue;
            }
            match membership.subjects(&block.key) {
                Ok(found) => self.compare_expected(&block, found),
                Err(e) => self.fail(
                    FailureKind::ExpectedRelations,
                    block.key_pos,
                    format!("cannot compute the subjects of `{}`: {e}", block.key),
                    Vec::new(),
                ),
            }
        }
    }

    fn compare_expected(&mut self, block: &ExpectedBlock, mut found: SubjectSet) {
        let key = &block.key;
        for Placed { pos, item: e } in &block.subjects {
            let Some(f) = found.subjects.remove(&e.subject) else {
                self.fail(
                    FailureKind::ExpectedRelations,
                    *pos,
                    format!("`{}` is expected to have `{key}` but does not", e.subject),
                    vec![
                        format!("expected: {e}"),
                        "found:    no such subject".to_string(),
                    ],
                );
                continue;
            };
            let mut differences = Vec::new();
            if e.caveat.is_some() != f.caveated {
                differences.push(if f.caveated {
                    "the subject holds it only conditionally (caveated), but is expected unconditionally"
                } else {
                    "the subject holds it unconditionally, but is expected as caveated"
                });
            }
            if e.excluded != f.excluded {
                differences.push("the excluded subjects differ");
            }
            if let Some(paths) = &e.paths
                && *paths != f.paths
                && *paths != f.paths.union(&f.wildcard_paths).cloned().collect()
            {
                differences.push("the relations through which it is found differ");
            }
            if !differences.is_empty() {
                self.fail(
                    FailureKind::ExpectedRelations,
                    *pos,
                    format!("`{}` on `{key}`: {}", e.subject, differences.join("; ")),
                    vec![
                        format!("expected: {e}"),
                        format!("found:    {}", render_found(&e.subject, &f)),
                    ],
                );
            }
        }
        for (s, f) in found.subjects {
            self.fail(
                FailureKind::ExpectedRelations,
                block.key_pos,
                format!("`{s}` has `{key}` but is not listed"),
                vec![
                    "expected: not listed".to_string(),
                    format!("found:    \"{}\"", render_found(&s, &f)),
                ],
            );
        }
    }
}

/// Renders a computed subject in the expected-subject syntax, ready to paste.
fn render_found(subject: &SubjectRef, f: &FoundSubject) -> String {
    format!(
        "{} is {}",
        format_subject(subject, f.caveat_marker().as_deref(), &f.excluded),
        format_paths(&f.paths)
    )
}

/// Checks that `onr`'s type and relation, and the subject's type and relation, exist, so a
/// typo fails loudly instead of vacuously satisfying an `assertFalse`.
fn check_names(
    schema: &Schema,
    onr: &ObjectRelation,
    subject: Option<&SubjectRef>,
) -> Result<(), String> {
    let t = &onr.object.object_type;
    let def = schema
        .definition(t)
        .ok_or_else(|| format!("definition `{t}` is not in the schema"))?;
    if !def.relations.contains_key(&onr.relation) {
        return Err(format!(
            "`{t}` has no relation or permission `{}`",
            onr.relation
        ));
    }
    if let Some(s) = subject {
        let st = &s.object.object_type;
        let sdef = schema
            .definition(st)
            .ok_or_else(|| format!("subject definition `{st}` is not in the schema"))?;
        if let Some(r) = &s.relation
            && !sdef.relations.contains_key(r)
        {
            return Err(format!(
                "subject type `{st}` has no relation or permission `{r}`"
            ));
        }
    }
    Ok(())
}
