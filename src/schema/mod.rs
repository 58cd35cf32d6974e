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
mod parser;
mod render;
mod violation;

pub use compiled::*;
pub use deps::{DependencyError, RelationRef, computable_permissions, dependent_relations};
pub use diff::{CaveatEntry, MemberRef, ParameterRef, SchemaDiff, diff_schemas};
pub use format::{doc_comment_source, format_schema};
pub use violation::SchemaViolation;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// True when `source` has syntax errors, as opposed to only type errors (or none): the API
/// reports the two with different reasons.
pub fn has_syntax_errors(source: &str) -> bool {
    parser::parse(source)
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Error)
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

/// All diagnostics of one source file, with what is needed to render them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    pub file_name: String,
    pub source: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// True when at least one item is an error (not just warnings).
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
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

/// Renders every item as `error: message`, `--> file:line:column`, the source line with a
/// caret under the span, and `= help: hint` when there is one; items are separated by a
/// blank line.
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

/// Compiles schema source text. `file_name` is used only in diagnostics.
///
/// On success the warnings (possibly none) come with the schema; on failure every error and
/// warning is returned, ordered by position.
pub fn compile(file_name: &str, source: &str) -> Result<CompileOutput, Diagnostics> {
    let parsed = parser::parse(source);
    let mut items = parsed.diagnostics;
    let syntax_ok = !items.iter().any(|d| d.severity == Severity::Error);
    let schema = if syntax_ok {
        checker::check(source, &parsed.ast, &mut items)
    } else {
        None
    };
    items.sort_by_key(|d| (d.span.start, d.span.end));
    let diagnostics = Diagnostics {
        file_name: file_name.to_string(),
        source: source.to_string(),
        items,
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
