//! Caveats: CEL expressions over typed parameters, compiled (type-checked) once when the
//! schema is compiled and evaluated with a context to true, false, or "missing parameters".
//!
//! PUBLIC API CONTRACT (other modules depend on exactly this; implementation may change):
//! - `CaveatType` — the parameter types of the schema language.
//! - `compile(name, params, expression) -> Result<CompiledCaveat, Vec<CaveatDiagnostic>>`
//! - `CompiledCaveat::evaluate(&Context) -> Result<CaveatOutcome, CaveatError>`
//! - `CompiledCaveat::{name, parameters, expression_text}` accessors.

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

/// A type-checked caveat, ready to evaluate. Immutable; shared behind `Arc` by the schema.
#[derive(Debug)]
pub struct CompiledCaveat {
    name: String,
    parameters: indexmap::IndexMap<String, CaveatType>,
    expression: String,
}

impl CompiledCaveat {
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn parameters(&self) -> &indexmap::IndexMap<String, CaveatType> {
        &self.parameters
    }
    /// The CEL source, as written in the schema (trimmed).
    pub fn expression_text(&self) -> &str {
        &self.expression
    }

    /// Evaluates with `context` (relationship context merged with request context by the caller).
    pub fn evaluate(&self, _context: &Context) -> Result<CaveatOutcome, CaveatError> {
        // PLACEHOLDER until the CEL implementation lands.
        Err(CaveatError::Evaluation {
            caveat: self.name.clone(),
            detail: "CEL evaluation not implemented yet".into(),
        })
    }
}

/// Parses and type-checks `expression` against `parameters`.
pub fn compile(
    name: &str,
    parameters: indexmap::IndexMap<String, CaveatType>,
    expression: &str,
) -> Result<CompiledCaveat, Vec<CaveatDiagnostic>> {
    // PLACEHOLDER until the CEL implementation lands.
    Ok(CompiledCaveat {
        name: name.to_string(),
        parameters,
        expression: expression.trim().to_string(),
    })
}
