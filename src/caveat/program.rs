//! The checked program the evaluator runs: identifiers resolved to parameter or variable
//! slots, functions resolved to [`Func`], constant literals, regular expressions and CIDR
//! networks prepared once at compile time.

use std::sync::Arc;

use regex::Regex;

use super::Span;
use super::ast::{BinaryOp, MacroKind};
use super::value::{IpNet, Value};

#[derive(Debug)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

#[derive(Debug)]
pub(crate) enum NodeKind {
    Const(Value),
    /// A caveat parameter, by its index in the declaration.
    Param(usize),
    /// A comprehension variable, by its slot (the comprehension's nesting level).
    Var(usize),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Binary(BinaryOp, Box<Node>, Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Select(Box<Node>, Arc<str>),
    Has(Box<Node>, Arc<str>),
    Index(Box<Node>, Box<Node>),
    /// A function call; a method's receiver is the first argument. At most two arguments.
    Call(Func, Vec<Node>),
    Comprehension(Box<Comprehension>),
}

#[derive(Debug)]
pub(crate) struct Comprehension {
    pub kind: MacroKind,
    pub slot: usize,
    pub range: Node,
    pub predicate: Option<Node>,
    pub transform: Option<Node>,
}

/// Calendar fields of a timestamp (or totals of a duration) read by the `getX()` methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeField {
    FullYear,
    Month,
    Date,
    DayOfMonth,
    DayOfWeek,
    DayOfYear,
    Hours,
    Minutes,
    Seconds,
    Milliseconds,
}

impl TimeField {
    pub(crate) fn from_method(name: &str) -> Option<TimeField> {
        Some(match name {
            "getFullYear" => TimeField::FullYear,
            "getMonth" => TimeField::Month,
            "getDate" => TimeField::Date,
            "getDayOfMonth" => TimeField::DayOfMonth,
            "getDayOfWeek" => TimeField::DayOfWeek,
            "getDayOfYear" => TimeField::DayOfYear,
            "getHours" => TimeField::Hours,
            "getMinutes" => TimeField::Minutes,
            "getSeconds" => TimeField::Seconds,
            "getMilliseconds" => TimeField::Milliseconds,
            _ => return None,
        })
    }

    /// Durations only have the totals.
    pub(crate) fn applies_to_duration(self) -> bool {
        matches!(
            self,
            TimeField::Hours | TimeField::Minutes | TimeField::Seconds | TimeField::Milliseconds
        )
    }
}

#[derive(Debug)]
pub(crate) enum Func {
    Size,
    Contains,
    StartsWith,
    EndsWith,
    /// `s.matches(pattern)` with a pattern known only at evaluation.
    Matches,
    /// `s.matches('literal')`, compiled once.
    MatchesRegex(Regex),
    /// `ip.in_cidr(cidr)` with a network known only at evaluation.
    InCidr,
    /// `ip.in_cidr('literal')`, parsed once.
    InCidrNet(IpNet),
    /// `a.isSubtreeOf(b)` on maps (SpiceDB's attribute matching).
    IsSubtreeOf,
    ToInt,
    ToUint,
    ToDouble,
    ToString,
    ToBool,
    ToBytes,
    ToTimestamp,
    ToDuration,
    ToIpAddress,
    /// `t.getX()` or `t.getX(timezone)`.
    TimeGet(TimeField),
}
