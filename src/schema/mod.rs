//! The schema language (`.zed`): lexer → parser (AST with byte spans) → checker → compiled,
//! immutable [`Schema`]; diagnostics with file, line, column and a caret; a canonical formatter.
//!
//! PUBLIC API CONTRACT (other modules depend on exactly this):
//! - `compile(file_name, source) -> Result<CompileOutput, Diagnostics>`
//! - `Diagnostics`: every error (and warning) of a file; `Display` renders them all with
//!   `file:line:column`, the source line and a caret under the offending text, and a hint.
//! - `format_source(file_name, source) -> Result<String, Diagnostics>`: canonical text.
//! - `format_schema(&Schema) -> String`: canonical text of a compiled schema.
//! - `Schema::validate_relationship(&Relationship) -> Result<(), SchemaViolation>`.
//! - `dependent_relations` / `computable_permissions`: transitive dependency walks between
//!   relations and permissions ([`RelationRef`], [`DependencyError`]).
//! - `diff_schemas(&existing, &comparison) -> Vec<SchemaDiff>`: what changes between schemas.
//!
//! The language is SpiceDB's. Statements end at a line break or `;`. Permission operators
//! bind, from loosest to tightest: `-`, `&`, `+`, then arrows (`a - b & c + d` is
//! `a - (b & (c + d))`), as in the reference; mixing operators without parentheses is
//! compiled as the reference does and draws a warning. Comments directly above a
//! definition, relation, permission or caveat are kept as its doc.
//!
//! When a file has syntax errors, only those are reported (every one of them); the type
//! checker runs, and reports all of its errors, once the file parses.

mod ast;
mod checker;
pub mod compiled;
mod deps;
mod diff;
mod format;
mod lexer;
mod limits;
mod parser;
mod render;
mod violation;

pub use compiled::*;
pub use deps::{DependencyError, RelationRef, computable_permissions, dependent_relations};
pub use diff::{CaveatEntry, MemberRef, ParameterRef, SchemaDiff, diff_schemas};
pub use format::{doc_comment_source, format_schema};
pub use limits::{MAX_DIAGNOSTICS, MAX_NAME_BYTES, MAX_QUOTED_CHARS, SchemaLimits};
pub use violation::SchemaViolation;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// True when `source` does not parse (or is too long to be parsed under `limits`), as opposed
/// to having only type errors or none: the API reports the two with different reasons.
pub fn has_syntax_errors(source: &str, limits: &SchemaLimits) -> bool {
    source.len() > limits.max_source_bytes || parser::parse(source).diagnostics.has_errors()
}

/// How bad a [`Diagnostic`] is: errors reject the schema, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a schema source, located by a byte span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub span: Range<usize>,
    pub hint: Option<String>,
}

/// All diagnostics of one source file, with what is needed to render them. At most
/// [`MAX_DIAGNOSTICS`] are kept; the rest are only counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    pub file_name: String,
    pub source: String,
    pub items: Vec<Diagnostic>,
    /// Errors found beyond the ones kept in `items`.
    pub omitted_errors: usize,
    /// Warnings found beyond the ones kept in `items`.
    pub omitted_warnings: usize,
}

impl Diagnostics {
    /// True when at least one item is an error (not just warnings).
    pub fn has_errors(&self) -> bool {
        self.omitted_errors > 0 || self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Number of errors found, including those not kept.
    pub fn error_count(&self) -> usize {
        self.errors().count() + self.omitted_errors
    }

    /// The diagnostics rendered within `max_bytes` (as for an error message sent to a
    /// client): as many whole items as fit, then a line saying how many more errors and
    /// warnings there are. Each item's source excerpt is bounded, so this costs
    /// O(`max_bytes`) whatever the source.
    pub fn render_within(&self, max_bytes: usize) -> String {
        render::render_within(self, max_bytes)
    }

    /// The errors only.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    /// 1-based line and column (in characters) of a byte offset of the source.
    pub fn line_column(&self, offset: usize) -> (usize, usize) {
        render::LineIndex::new(&self.source).line_column(offset)
    }
}

/// Renders the first `render::DISPLAY_ITEMS` items as `error: message`,
/// `--> file:line:column`, an excerpt of the source line (long lines are cut around the
/// caret) with a caret under the span, and `= help: hint` when there is one; items are
/// separated by a blank line, and a last line counts the items not shown.
impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render::render(self, f)
    }
}

impl std::error::Error for Diagnostics {}

/// A successfully compiled schema and any warnings about it.
#[derive(Debug, Clone)]
pub struct CompileOutput {
    pub schema: Arc<Schema>,
    pub warnings: Diagnostics,
}

/// Compiles schema source text within the default [`SchemaLimits`]. `file_name` is used only
/// in diagnostics.
///
/// On success the warnings (possibly none) come with the schema; on failure the errors and
/// warnings are returned (the first [`MAX_DIAGNOSTICS`] of them, ordered by position; the
/// rest counted).
pub fn compile(file_name: &str, source: &str) -> Result<CompileOutput, Diagnostics> {
    compile_with(file_name, source, &SchemaLimits::default())
}

/// [`compile`] within `limits`. Time and memory are linear in the source: the source size and
/// the counts that drive the checker are checked before it runs, names are capped by the
/// lexer, nesting by the parser, and diagnostics (and their hints) by [`MAX_DIAGNOSTICS`].
pub fn compile_with(
    file_name: &str,
    source: &str,
    limits: &SchemaLimits,
) -> Result<CompileOutput, Diagnostics> {
    if source.len() > limits.max_source_bytes {
        // Not even lexed: the one error points at where the limit was crossed.
        let mut at = limits.max_source_bytes;
        while !source.is_char_boundary(at) {
            at -= 1;
        }
        return Err(Diagnostics {
            file_name: file_name.to_string(),
            source: source.to_string(),
            items: vec![Diagnostic {
                severity: Severity::Error,
                message: format!(
                    "the schema is {} bytes long, more than the limit of {} bytes",
                    source.len(),
                    limits.max_source_bytes
                ),
                span: at..at,
                hint: Some("split the model, or raise the server's schema limits".into()),
            }],
            omitted_errors: 0,
            omitted_warnings: 0,
        });
    }
    let parsed = parser::parse(source);
    let mut sink = parsed.diagnostics;
    if !sink.has_errors() {
        limits::check_counts(&parsed.ast, limits, &mut sink);
    }
    let schema = if sink.has_errors() {
        None
    } else {
        checker::check(source, &parsed.ast, &mut sink)
    };
    let mut items = sink.items;
    items.sort_by_key(|d| (d.span.start, d.span.end));
    let diagnostics = Diagnostics {
        file_name: file_name.to_string(),
        source: source.to_string(),
        items,
        omitted_errors: sink.omitted_errors,
        omitted_warnings: sink.omitted_warnings,
    };
    match schema {
        Some(schema) if !diagnostics.has_errors() => Ok(CompileOutput {
            schema: Arc::new(schema),
            warnings: diagnostics,
        }),
        _ => Err(diagnostics),
    }
}

/// Compiles `source` and returns its canonical text ([`format_schema`]). Warnings are not
/// reported; errors are.
pub fn format_source(file_name: &str, source: &str) -> Result<String, Diagnostics> {
    compile(file_name, source).map(|out| format_schema(&out.schema))
}
