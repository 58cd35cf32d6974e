//! The schema language (`.zed`): lexer → parser (AST with byte spans) → checker → compiled,
//! immutable [`Schema`]; diagnostics with file, line, column and a caret; a canonical formatter.
//!
//! PUBLIC API CONTRACT (other modules depend on exactly this):
//! - `compile(file_name, source) -> Result<CompileOutput, Diagnostics>`
//! - `Diagnostics`: every error (and warning) of a file; `Display` renders them all with
//!   `file:line:column`, the source line and a caret under the offending text, and a hint.
//! - `format_source(file_name, source) -> Result<String, Diagnostics>`: canonical text.

pub mod compiled;

pub use compiled::*;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

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
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // PLACEHOLDER rendering until the diagnostics renderer lands.
        for d in &self.items {
            writeln!(f, "{}: {} ({:?})", self.file_name, d.message, d.span)?;
        }
        Ok(())
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
pub fn compile(file_name: &str, source: &str) -> Result<CompileOutput, Diagnostics> {
    // PLACEHOLDER until the compiler lands.
    Err(Diagnostics {
        file_name: file_name.to_string(),
        source: source.to_string(),
        items: vec![Diagnostic {
            severity: Severity::Error,
            message: "schema compiler not implemented yet".into(),
            span: 0..0,
            hint: None,
        }],
    })
}
