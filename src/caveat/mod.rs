//! Caveats: CEL expressions over typed parameters, compiled (type-checked) once when the
//! schema is compiled and evaluated with a context to true, false, or "missing parameters".
//!
//! PUBLIC API CONTRACT (other modules depend on exactly this; implementation may change):
//! - `CaveatType` — the parameter types of the schema language.
//! - `compile(name, params, expression) -> Result<CompiledCaveat, Vec<CaveatDiagnostic>>`
//! - `CompiledCaveat::evaluate(&Context) -> Result<CaveatOutcome, CaveatError>`
//! - `CompiledCaveat::{name, parameters, expression_text}` accessors.
//!
//! Why our own CEL implementation rather than the `cel` crate (cel-rust): the crate parses and
//! interprets dynamically but has no static type checker (it is an open upstream issue), so
//! `int > string`, unknown identifiers or wrong function arguments would only fail at
//! evaluation, never at schema compile time with a byte span as the schema language requires.
//! It also has no partial evaluation: a parameter absent from the context is an error there,
//! while we must answer true/false when the result does not depend on it and otherwise name
//! exactly the absent parameters it depends on. Adding both would mean writing our own checker
//! and our own evaluator over its AST anyway, and SpiceDB's caveat dialect is a small, closed
//! subset of CEL (no protobuf messages, a handful of functions plus `ipaddress`), so a
//! self-contained lexer → parser → checker → evaluator covers it fully. Owning it also pins the
//! semantics we must match (overflow and division errors, commutative `&&`/`||` that absorb
//! errors, heterogeneous numeric equality) and keeps evaluation cheap: parameters resolved to
//! slots, constants folded, regular expressions and CIDR networks compiled once.
//!
//! Pipeline (private submodules): `lexer` → `parser` (syntax tree with byte spans, nesting
//! capped) → `checker` (types, lowering to a `program`) → `eval` (partial evaluation, with
//! `context` converting the JSON context to typed values and `functions` the operators).

mod ast;
mod checker;
mod context;
mod eval;
mod functions;
mod lexer;
mod parser;
mod program;
mod types;
mod value;

use std::fmt;

use crate::model::Context;

/// A parameter type: `int`, `uint`, `double`, `bool`, `string`, `bytes`, `duration`,
/// `timestamp`, `ipaddress`, `list<T>`, `map<T>`, `any`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CaveatType {
    Int,
    Uint,
    Double,
    Bool,
    String,
    Bytes,
    Duration,
    Timestamp,
    IpAddress,
    List(Box<CaveatType>),
    Map(Box<CaveatType>),
    Any,
}

impl fmt::Display for CaveatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaveatType::Int => f.write_str("int"),
            CaveatType::Uint => f.write_str("uint"),
            CaveatType::Double => f.write_str("double"),
            CaveatType::Bool => f.write_str("bool"),
            CaveatType::String => f.write_str("string"),
            CaveatType::Bytes => f.write_str("bytes"),
            CaveatType::Duration => f.write_str("duration"),
            CaveatType::Timestamp => f.write_str("timestamp"),
            CaveatType::IpAddress => f.write_str("ipaddress"),
            CaveatType::List(t) => write!(f, "list<{t}>"),
            CaveatType::Map(t) => write!(f, "map<{t}>"),
            CaveatType::Any => f.write_str("any"),
        }
    }
}

/// The result of evaluating a caveat against a context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaveatOutcome {
    True,
    False,
    /// The result depends on parameters the context did not supply (sorted, deduplicated).
    MissingParameters(Vec<String>),
}

/// A compile-time problem in a caveat expression. `span` is a byte range within the
/// expression text passed to [`compile`], so the schema checker can point a caret at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaveatDiagnostic {
    pub message: String,
    pub span: std::ops::Range<usize>,
}

/// An evaluation-time failure (a context value of the wrong type, overflow, bad regex ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaveatError {
    #[error("caveat `{caveat}`: parameter `{parameter}` must be {expected}: {detail}")]
    BadParameter {
        caveat: String,
        parameter: String,
        expected: String,
        detail: String,
    },
    #[error("caveat `{caveat}` failed to evaluate: {detail}")]
    Evaluation { caveat: String, detail: String },
}

/// A byte range in the expression text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub(crate) fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// A type-checked caveat, ready to evaluate. Immutable; shared behind `Arc` by the schema.
#[derive(Debug)]
pub struct CompiledCaveat {
    name: String,
    parameters: indexmap::IndexMap<String, CaveatType>,
    expression: String,
    /// The expression exactly as passed to [`compile`]; node spans index into it.
    source: String,
    program: program::Node,
    /// Comprehension variable slots the program needs.
    slots: usize,
}

impl CompiledCaveat {
    /// The caveat's name in the schema.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The declared parameters, in declaration order.
    pub fn parameters(&self) -> &indexmap::IndexMap<String, CaveatType> {
        &self.parameters
    }
    /// The CEL source, as written in the schema (trimmed).
    pub fn expression_text(&self) -> &str {
        &self.expression
    }

    /// Evaluates with `context` (relationship context merged with request context by the caller).
    ///
    /// Declared parameters absent from `context` are unknown: the outcome is `True`/`False`
    /// when it holds whatever they are, otherwise `MissingParameters` with the absent
    /// parameters the result depends on. Keys that are not parameters are ignored; every
    /// declared parameter that is present must convert to its type (`BadParameter` otherwise),
    /// even where the expression would not read it.
    pub fn evaluate(&self, context: &Context) -> Result<CaveatOutcome, CaveatError> {
        let params = self.bind(context)?;
        let mut env = eval::Env::new(&params, self.slots, &self.source);
        match eval::eval(&self.program, &mut env) {
            Ok(value::Value::Bool(true)) => Ok(CaveatOutcome::True),
            Ok(value::Value::Bool(false)) => Ok(CaveatOutcome::False),
            Ok(other) => Err(CaveatError::Evaluation {
                caveat: self.name.clone(),
                detail: format!(
                    "the expression evaluated to {}, not bool",
                    other.type_name()
                ),
            }),
            Err(eval::Halt::Unknown(set)) => {
                let mut names: Vec<String> = set
                    .indices()
                    .filter_map(|i| self.parameters.get_index(i).map(|(n, _)| n.clone()))
                    .collect();
                names.sort();
                names.dedup();
                Ok(CaveatOutcome::MissingParameters(names))
            }
            Err(eval::Halt::Error(detail)) => Err(CaveatError::Evaluation {
                caveat: self.name.clone(),
                detail,
            }),
        }
    }

    /// Checks that every declared parameter present in `context` has the declared type
    /// (e.g. when a relationship with a caveat context is written), without evaluating.
    pub fn validate_context(&self, context: &Context) -> Result<(), CaveatError> {
        self.bind(context).map(|_| ())
    }

    /// Converts the context values of the declared parameters, in declaration order.
    fn bind(&self, context: &Context) -> Result<Vec<Option<value::Value>>, CaveatError> {
        self.parameters
            .iter()
            .map(|(name, ty)| match context.get(name) {
                None => Ok(None),
                Some(json) => context::convert(json, ty).map(Some).map_err(|detail| {
                    CaveatError::BadParameter {
                        caveat: self.name.clone(),
                        parameter: name.clone(),
                        expected: ty.to_string(),
                        detail,
                    }
                }),
            })
            .collect()
    }
}

/// Parses and type-checks `expression` against `parameters`. Diagnostic spans are byte
/// ranges in `expression` as given (not trimmed).
pub fn compile(
    name: &str,
    parameters: indexmap::IndexMap<String, CaveatType>,
    expression: &str,
) -> Result<CompiledCaveat, Vec<CaveatDiagnostic>> {
    let ast = parser::parse(expression).map_err(|e| {
        vec![CaveatDiagnostic {
            message: e.message,
            span: e.span.range(),
        }]
    })?;
    let checked = checker::check(&ast, &parameters)?;
    Ok(CompiledCaveat {
        name: name.to_string(),
        parameters,
        expression: expression.trim().to_string(),
        source: expression.to_string(),
        program: checked.program,
        slots: checked.slots,
    })
}
