//! What a schema may cost: limits on the size of its text and on the counts that drive the
//! checker's and the engine's work, plus the fixed caps on what diagnostics may hold.
//!
//! Schema text comes from callers (WriteSchema, DiffSchema, validation files), so every cost
//! it drives must be bounded by something documented. Size and counts are checked right after
//! parsing (a linear pass), before the checker runs; names are capped by the lexer; nesting by
//! the parser ([`super::parser::MAX_NESTING`]).

use super::ast::{Item, Member, SchemaAst};
use super::{Diagnostic, Severity};

/// Limits a schema must stay within to be compiled. [`Default`] is what the server enforces
/// unless configured otherwise; stored schemas (already accepted once) compile
/// [`unlimited`](SchemaLimits::unlimited), so lowering a limit never makes a server unable to
/// load the schema it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaLimits {
    /// Bytes of schema text (UTF-8). Default 1 MiB: about 25,000 lines of a typical schema.
    pub max_source_bytes: usize,
    /// Definitions plus caveats. Default 1,000.
    pub max_definitions: usize,
    /// Relations plus permissions of one definition. Default 1,000.
    pub max_members_per_definition: usize,
    /// Allowed subject types of one relation (`user | group#member | user:* | …`). Default 100.
    pub max_subject_types_per_relation: usize,
}

impl Default for SchemaLimits {
    fn default() -> Self {
        SchemaLimits {
            max_source_bytes: 1 << 20,
            max_definitions: 1_000,
            max_members_per_definition: 1_000,
            max_subject_types_per_relation: 100,
        }
    }
}

impl SchemaLimits {
    /// No size or count limits (the fixed caps on names, nesting and diagnostics still apply).
    pub fn unlimited() -> Self {
        SchemaLimits {
            max_source_bytes: usize::MAX,
            max_definitions: usize::MAX,
            max_members_per_definition: usize::MAX,
            max_subject_types_per_relation: usize::MAX,
        }
    }
}

/// Longest name (a word of the schema language: type, relation, permission, caveat or
/// parameter name, with `prefix/` segments) in bytes. No valid name is longer: object types
/// are at most 128 bytes, relations and permissions 64, caveats 128.
pub const MAX_NAME_BYTES: usize = 128;

/// Most diagnostics one compilation keeps. Beyond this they are only counted
/// (`DiagnosticSink::omitted_errors` and `omitted_warnings`): nobody reads the thousandth error, and a hostile source
/// can make one per token.
pub const MAX_DIAGNOSTICS: usize = 200;

/// Source text quoted in a diagnostic message or hint is cut to this many characters.
pub const MAX_QUOTED_CHARS: usize = 64;

/// `text` for quoting in a message: at most [`MAX_QUOTED_CHARS`] characters, the middle
/// elided when longer, so a message never grows with the input.
pub(crate) fn quoted(text: &str) -> String {
    let count = text.chars().count();
    if count <= MAX_QUOTED_CHARS {
        return text.to_string();
    }
    let head = MAX_QUOTED_CHARS * 2 / 3;
    let tail = MAX_QUOTED_CHARS - head - 1;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

/// Longest message (and hint) a kept diagnostic carries, in bytes.
const MAX_MESSAGE_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
fn shorten(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max.saturating_sub('…'.len_utf8());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// A diagnostics list that keeps the first [`MAX_DIAGNOSTICS`] items and counts the rest.
#[derive(Debug, Default)]
pub(crate) struct DiagnosticSink {
    pub items: Vec<Diagnostic>,
    /// Errors not kept.
    pub omitted_errors: usize,
    /// Warnings not kept.
    pub omitted_warnings: usize,
}

impl DiagnosticSink {
    pub(crate) fn push(&mut self, mut d: Diagnostic) {
        if self.items.len() < MAX_DIAGNOSTICS {
            // Messages quote names; a few (CEL) may quote longer text: keep each item small.
            d.message = shorten(d.message, MAX_MESSAGE_BYTES);
            d.hint = d.hint.map(|h| shorten(h, MAX_MESSAGE_BYTES));
            self.items.push(d);
        } else if d.severity == Severity::Error {
            self.omitted_errors += 1;
        } else {
            self.omitted_warnings += 1;
        }
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.omitted_errors > 0 || self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub(crate) fn append(&mut self, other: DiagnosticSink) {
        for d in other.items {
            self.push(d);
        }
        self.omitted_errors += other.omitted_errors;
        self.omitted_warnings += other.omitted_warnings;
    }
}

/// A limit error at `span`: `what` exceeds `limit` (naming the limit and its value).
fn over_limit(span: std::ops::Range<usize>, what: String, limit: usize, hint: &str) -> Diagnostic {
    Diagnostic {
        severity: Severity::Error,
        message: format!("{what}, more than the limit of {limit}"),
        span,
        hint: Some(hint.to_string()),
    }
}

/// Checks the counts of a parsed schema against `limits`, reporting the first item past each
/// limit (one diagnostic per limit kind and place, never one per excess item).
pub(crate) fn check_counts(ast: &SchemaAst, limits: &SchemaLimits, out: &mut DiagnosticSink) {
    let definitions = ast
        .items
        .iter()
        .filter(|i| matches!(i, Item::Definition(_) | Item::Caveat(_)))
        .count();
    if definitions > limits.max_definitions {
        let past = ast
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Definition(d) => Some(d.name.span.clone()),
                Item::Caveat(c) => Some(c.name.span.clone()),
                Item::Use(_) => None,
            })
            .nth(limits.max_definitions)
            .unwrap_or_default();
        out.push(over_limit(
            past,
            format!("the schema has {definitions} definitions and caveats"),
            limits.max_definitions,
            "split the model, or raise the server's schema limits",
        ));
    }
    for item in &ast.items {
        let Item::Definition(d) = item else { continue };
        if d.members.len() > limits.max_members_per_definition {
            let past = d.members[limits.max_members_per_definition].name();
            out.push(over_limit(
                past.span.clone(),
                format!(
                    "definition `{}` has {} relations and permissions",
                    quoted(&d.name.name),
                    d.members.len()
                ),
                limits.max_members_per_definition,
                "split the definition, or raise the server's schema limits",
            ));
        }
        for m in &d.members {
            let Member::Relation(r) = m else { continue };
            if r.types.len() > limits.max_subject_types_per_relation {
                out.push(over_limit(
                    r.types[limits.max_subject_types_per_relation].span.clone(),
                    format!(
                        "relation `{}#{}` allows {} subject types",
                        quoted(&d.name.name),
                        quoted(&r.name.name),
                        r.types.len()
                    ),
                    limits.max_subject_types_per_relation,
                    "group subject types behind a relation of another definition, or raise the \
                     server's schema limits",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_elides_the_middle_of_long_text() {
        assert_eq!(quoted("user"), "user");
        let long: String = "abcdefghij".repeat(20);
        let q = quoted(&long);
        assert_eq!(q.chars().count(), MAX_QUOTED_CHARS);
        assert!(q.starts_with("abcdefghij") && q.ends_with("ghij") && q.contains('…'));
        let wide = "é".repeat(1000);
        assert_eq!(quoted(&wide).chars().count(), MAX_QUOTED_CHARS);
    }

    #[test]
    fn the_sink_keeps_the_first_items_and_counts_the_rest() {
        let item = |severity| Diagnostic {
            severity,
            message: "m".into(),
            span: 0..0,
            hint: None,
        };
        let mut sink = DiagnosticSink::default();
        for _ in 0..MAX_DIAGNOSTICS + 7 {
            sink.push(item(Severity::Warning));
        }
        assert_eq!(sink.items.len(), MAX_DIAGNOSTICS);
        assert_eq!((sink.omitted_errors, sink.omitted_warnings), (0, 7));
        // Many warnings are still only warnings.
        assert!(!sink.has_errors());
        // An error past the cap is counted, and the schema is still rejected.
        sink.push(item(Severity::Error));
        assert_eq!(sink.omitted_errors, 1);
        assert!(sink.has_errors());
    }
}
