//! The type checker: resolves identifiers against the declared parameters and comprehension
//! variables, checks every operator and function against its operand types, and lowers the
//! syntax tree to the [`Node`] program. All type errors of an expression are reported.

use std::sync::Arc;

use indexmap::IndexMap;

use super::ast::{BinaryOp, Expr, ExprKind, MacroKind, UnaryOp};
use super::functions;
use super::program::{Comprehension, Func, Node, NodeKind, TimeField};
use super::types::Ty;
use super::value::{IpNet, Key, MapValue, Value};
use super::{CaveatDiagnostic, CaveatType, Span};

/// A checked expression, ready to evaluate.
#[derive(Debug)]
pub(crate) struct Checked {
    pub program: Node,
    /// Number of comprehension variable slots the program needs.
    pub slots: usize,
}

/// Type-checks `expr` against `params` and lowers it.
pub(crate) fn check(
    expr: &Expr,
    params: &IndexMap<String, CaveatType>,
) -> Result<Checked, Vec<CaveatDiagnostic>> {
    let mut checker = Checker {
        params,
        param_types: params.values().map(Ty::from_caveat_type).collect(),
        scopes: Vec::new(),
        slots: 0,
        diagnostics: Vec::new(),
    };
    let (program, ty) = checker.check(expr);
    if !ty.fits(&Ty::Bool) {
        checker.diag(
            expr.span,
            format!("a caveat expression must be of type bool, found `{ty}`"),
        );
    }
    if checker.diagnostics.is_empty() {
        Ok(Checked {
            program,
            slots: checker.slots,
        })
    } else {
        Err(checker.diagnostics)
    }
}

type Typed = (Node, Ty);

/// An argument (or receiver) after checking: its program, type and source span.
struct Arg {
    node: Node,
    ty: Ty,
    span: Span,
}

struct Checker<'a> {
    params: &'a IndexMap<String, CaveatType>,
    param_types: Vec<Ty>,
    /// Comprehension variables in scope, innermost last; the position is the slot.
    scopes: Vec<(&'a str, Ty)>,
    slots: usize,
    diagnostics: Vec<CaveatDiagnostic>,
}

fn node(kind: NodeKind, span: Span) -> Node {
    Node { kind, span }
}

fn constant(n: &Node) -> Option<&Value> {
    match &n.kind {
        NodeKind::Const(v) => Some(v),
        _ => None,
    }
}

const GLOBAL_FUNCTIONS: &[&str] = &[
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "timestamp",
    "duration",
    "ipaddress",
    "dyn",
];
const METHODS: &[&str] = &[
    "contains",
    "startsWith",
    "endsWith",
    "in_cidr",
    "isSubtreeOf",
];

impl<'a> Checker<'a> {
    fn diag(&mut self, span: Span, message: impl Into<String>) {
        self.diagnostics.push(CaveatDiagnostic {
            message: message.into(),
            span: span.range(),
        });
    }

    fn error(&mut self, span: Span, message: impl Into<String>) -> Typed {
        self.diag(span, message);
        (node(NodeKind::Const(Value::Null), span), Ty::Error)
    }

    fn check(&mut self, e: &'a Expr) -> Typed {
        let span = e.span;
        match &e.kind {
            ExprKind::Null => (node(NodeKind::Const(Value::Null), span), Ty::Null),
            ExprKind::Bool(b) => (node(NodeKind::Const(Value::Bool(*b)), span), Ty::Bool),
            ExprKind::Int(i) => (node(NodeKind::Const(Value::Int(*i)), span), Ty::Int),
            ExprKind::Uint(u) => (node(NodeKind::Const(Value::Uint(*u)), span), Ty::Uint),
            ExprKind::Double(d) => (node(NodeKind::Const(Value::Double(*d)), span), Ty::Double),
            ExprKind::String(s) => (node(NodeKind::Const(Value::string(s)), span), Ty::String),
            ExprKind::Bytes(b) => (
                node(NodeKind::Const(Value::Bytes(Arc::from(b.as_slice()))), span),
                Ty::Bytes,
            ),
            ExprKind::Ident(name) => self.ident(name, span),
            ExprKind::Select { operand, field, .. } => self.select(operand, field, span),
            ExprKind::Index { operand, index } => self.index(operand, index, span),
            ExprKind::Call {
                target,
                name,
                name_span,
                args,
            } => self.call(target.as_deref(), name, *name_span, args, span),
            ExprKind::List(items) => self.list(items, span),
            ExprKind::Map(entries) => self.map(entries, span),
            ExprKind::Unary { op, operand } => self.unary(*op, operand, span),
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, span),
            ExprKind::And(items) => self.logical(items, "&&", span, NodeKind::And),
            ExprKind::Or(items) => self.logical(items, "||", span, NodeKind::Or),
            ExprKind::Cond {
                cond,
                then,
                otherwise,
            } => {
                let (c, ct) = self.check(cond);
                if !ct.fits(&Ty::Bool) {
                    self.diag(
                        cond.span,
                        format!("the condition of `?:` must be bool, found `{ct}`"),
                    );
                }
                let (t, tt) = self.check(then);
                let (o, ot) = self.check(otherwise);
                let ty = tt.join(&ot);
                (
                    node(NodeKind::Cond(Box::new(c), Box::new(t), Box::new(o)), span),
                    ty,
                )
            }
            ExprKind::Has { operand, field } => {
                let (o, ot) = self.check(operand);
                match &ot {
                    Ty::Map(k, _) if k.fits(&Ty::String) => {}
                    t if t.is_open() => {}
                    _ => {
                        return self.error(
                            span,
                            format!("`has` needs a map with string keys, found `{ot}`"),
                        );
                    }
                }
                (
                    node(NodeKind::Has(Box::new(o), Arc::from(field.as_str())), span),
                    Ty::Bool,
                )
            }
            ExprKind::Comprehension {
                kind,
                var,
                range,
                predicate,
                transform,
                ..
            } => self.comprehension(
                *kind,
                var,
                range,
                predicate.as_deref(),
                transform.as_deref(),
                span,
            ),
        }
    }

    fn ident(&mut self, name: &str, span: Span) -> Typed {
        if let Some(slot) = self.scopes.iter().rposition(|(n, _)| *n == name) {
            let ty = self.scopes[slot].1.clone();
            return (node(NodeKind::Var(slot), span), ty);
        }
        if let Some(index) = self.params.get_index_of(name) {
            let ty = self.param_types[index].clone();
            return (node(NodeKind::Param(index), span), ty);
        }
        let mut message = format!("unknown identifier `{name}`");
        if self.params.is_empty() {
            message.push_str(" (the caveat has no parameters)");
        } else {
            let names: Vec<String> = self.params.keys().map(|k| format!("`{k}`")).collect();
            message.push_str(&format!(" (parameters: {})", names.join(", ")));
        }
        self.error(span, message)
    }

    fn select(&mut self, operand: &'a Expr, field: &str, span: Span) -> Typed {
        let (o, ot) = self.check(operand);
        let ty = match &ot {
            Ty::Map(k, v) if k.fits(&Ty::String) => (**v).clone(),
            Ty::Error => Ty::Error,
            Ty::Dyn => Ty::Dyn,
            _ => {
                return self.error(
                    span,
                    format!("cannot select field `{field}` from a value of type `{ot}`"),
                );
            }
        };
        (
            node(NodeKind::Select(Box::new(o), Arc::from(field)), span),
            ty,
        )
    }

    fn index(&mut self, operand: &'a Expr, index: &'a Expr, span: Span) -> Typed {
        let (o, ot) = self.check(operand);
        let (i, it) = self.check(index);
        let ty = match &ot {
            Ty::List(el) => {
                if !(it.is_open() || matches!(it, Ty::Int | Ty::Uint)) {
                    self.diag(
                        index.span,
                        format!("a list index must be int, found `{it}`"),
                    );
                }
                (**el).clone()
            }
            Ty::Map(k, v) => {
                if !it.comparable_eq(k) {
                    self.diag(
                        index.span,
                        format!("this map has keys of type `{k}`, the index is `{it}`"),
                    );
                }
                (**v).clone()
            }
            Ty::Error => Ty::Error,
            Ty::Dyn => Ty::Dyn,
            _ => return self.error(span, format!("cannot index a value of type `{ot}`")),
        };
        (node(NodeKind::Index(Box::new(o), Box::new(i)), span), ty)
    }

    fn list(&mut self, items: &'a [Expr], span: Span) -> Typed {
        let mut nodes = Vec::with_capacity(items.len());
        let mut elem: Option<Ty> = None;
        for item in items {
            let (n, t) = self.check(item);
            elem = Some(match elem {
                None => t,
                Some(prev) => prev.join(&t),
            });
            nodes.push(n);
        }
        let ty = Ty::List(Box::new(elem.unwrap_or(Ty::Dyn)));
        if let Some(values) = nodes
            .iter()
            .map(|n| constant(n).cloned())
            .collect::<Option<Vec<Value>>>()
        {
            return (
                node(NodeKind::Const(Value::List(Arc::from(values))), span),
                ty,
            );
        }
        (node(NodeKind::List(nodes), span), ty)
    }

    fn map(&mut self, entries: &'a [(Expr, Expr)], span: Span) -> Typed {
        let mut nodes = Vec::with_capacity(entries.len());
        let mut key_ty: Option<Ty> = None;
        let mut value_ty: Option<Ty> = None;
        for (k, v) in entries {
            let (kn, kt) = self.check(k);
            if !(kt.is_open() || matches!(kt, Ty::Int | Ty::Uint | Ty::Bool | Ty::String)) {
                self.diag(
                    k.span,
                    format!("a map key must be int, uint, bool or string, found `{kt}`"),
                );
            }
            let (vn, vt) = self.check(v);
            key_ty = Some(key_ty.map_or(kt.clone(), |p| p.join(&kt)));
            value_ty = Some(value_ty.map_or(vt.clone(), |p| p.join(&vt)));
            nodes.push((kn, vn));
        }
        let ty = Ty::Map(
            Box::new(key_ty.unwrap_or(Ty::Dyn)),
            Box::new(value_ty.unwrap_or(Ty::Dyn)),
        );
        // Only fold when every key is valid; otherwise the evaluator reports the bad key.
        let all_const = nodes.iter().all(|(k, v)| {
            constant(k).is_some_and(|k| Key::from_value(k).is_ok()) && constant(v).is_some()
        });
        if all_const {
            let mut map = MapValue::with_capacity(nodes.len());
            for ((kn, vn), (k_expr, _)) in nodes.iter().zip(entries) {
                let (Some(kv), Some(vv)) = (constant(kn), constant(vn)) else {
                    continue;
                };
                if let Ok(key) = Key::from_value(kv)
                    && map.insert(key, vv.clone()).is_some()
                {
                    self.diag(k_expr.span, "duplicate key in map literal");
                }
            }
            return (node(NodeKind::Const(Value::Map(Arc::new(map))), span), ty);
        }
        (node(NodeKind::Map(nodes), span), ty)
    }

    fn unary(&mut self, op: UnaryOp, operand: &'a Expr, span: Span) -> Typed {
        let (o, ot) = self.check(operand);
        match op {
            UnaryOp::Not => {
                if !ot.fits(&Ty::Bool) {
                    return self.error(span, format!("operator `!` needs a bool, found `{ot}`"));
                }
                (node(NodeKind::Not(Box::new(o)), span), Ty::Bool)
            }
            UnaryOp::Neg => {
                if !(ot.is_open() || matches!(ot, Ty::Int | Ty::Double | Ty::Duration)) {
                    return self.error(
                        span,
                        format!("operator `-` cannot negate a value of type `{ot}`"),
                    );
                }
                // Fold negative literals so `-5` costs nothing at evaluation.
                let folded = match constant(&o) {
                    Some(Value::Int(i)) => i.checked_neg().map(Value::Int),
                    Some(Value::Double(d)) => Some(Value::Double(-d)),
                    _ => None,
                };
                match folded {
                    Some(v) => (node(NodeKind::Const(v), span), ot),
                    None => (node(NodeKind::Neg(Box::new(o)), span), ot),
                }
            }
        }
    }

    fn binary(&mut self, op: BinaryOp, lhs: &'a Expr, rhs: &'a Expr, span: Span) -> Typed {
        let (l, lt) = self.check(lhs);
        let (r, rt) = self.check(rhs);
        let result = match op {
            BinaryOp::Eq | BinaryOp::Ne => lt.comparable_eq(&rt).then_some(Ty::Bool),
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
                lt.orderable(&rt).then_some(Ty::Bool)
            }
            BinaryOp::In => match &rt {
                Ty::List(el) => lt.comparable_eq(el).then_some(Ty::Bool),
                Ty::Map(k, _) => lt.comparable_eq(k).then_some(Ty::Bool),
                t if t.is_open() => Some(Ty::Bool),
                _ => {
                    return self.error(
                        span,
                        format!("operator `in` needs a list or map on the right, found `{rt}`"),
                    );
                }
            },
            _ => arithmetic_type(op, &lt, &rt),
        };
        let Some(ty) = result else {
            let mut message = format!(
                "operator `{}` cannot be applied to `{lt}` and `{rt}`",
                op.symbol()
            );
            if lt.is_numeric() && rt.is_numeric() && op != BinaryOp::In {
                message.push_str(" (convert one side with `int()`, `uint()` or `double()`)");
            }
            return self.error(span, message);
        };
        (
            node(NodeKind::Binary(op, Box::new(l), Box::new(r)), span),
            ty,
        )
    }

    fn logical(
        &mut self,
        items: &'a [Expr],
        symbol: &str,
        span: Span,
        make: fn(Vec<Node>) -> NodeKind,
    ) -> Typed {
        let mut nodes = Vec::with_capacity(items.len());
        for item in items {
            let (n, t) = self.check(item);
            if !t.fits(&Ty::Bool) {
                self.diag(
                    item.span,
                    format!("operands of `{symbol}` must be bool, found `{t}`"),
                );
            }
            nodes.push(n);
        }
        (node(make(nodes), span), Ty::Bool)
    }

    fn comprehension(
        &mut self,
        kind: MacroKind,
        var: &'a str,
        range: &'a Expr,
        predicate: Option<&'a Expr>,
        transform: Option<&'a Expr>,
        span: Span,
    ) -> Typed {
        let (r, rt) = self.check(range);
        let var_ty = match &rt {
            Ty::List(el) => (**el).clone(),
            Ty::Map(k, _) => (**k).clone(),
            Ty::Dyn => Ty::Dyn,
            Ty::Error => Ty::Error,
            _ => {
                self.diag(
                    range.span,
                    format!("`{}` needs a list or map, found `{rt}`", kind.name()),
                );
                Ty::Error
            }
        };
        let slot = self.scopes.len();
        self.scopes.push((var, var_ty.clone()));
        self.slots = self.slots.max(slot + 1);
        let predicate = predicate.map(|p| {
            let (n, t) = self.check(p);
            if !t.fits(&Ty::Bool) {
                self.diag(
                    p.span,
                    format!(
                        "the predicate of `{}` must be bool, found `{t}`",
                        kind.name()
                    ),
                );
            }
            n
        });
        let transform = transform.map(|t| self.check(t));
        self.scopes.pop();
        let (transform, ty) = match kind {
            MacroKind::All | MacroKind::Exists | MacroKind::ExistsOne => (None, Ty::Bool),
            MacroKind::Filter => (None, Ty::List(Box::new(var_ty))),
            MacroKind::Map => match transform {
                Some((n, t)) => (Some(n), Ty::List(Box::new(t))),
                None => (None, Ty::List(Box::new(Ty::Dyn))),
            },
        };
        (
            node(
                NodeKind::Comprehension(Box::new(Comprehension {
                    kind,
                    slot,
                    range: r,
                    predicate,
                    transform,
                })),
                span,
            ),
            ty,
        )
    }

    // ---- function calls ----------------------------------------------------------------

    fn call(
        &mut self,
        target: Option<&'a Expr>,
        name: &str,
        name_span: Span,
        args: &'a [Expr],
        span: Span,
    ) -> Typed {
        let receiver = target.map(|t| {
            let (node, ty) = self.check(t);
            Arg {
                node,
                ty,
                span: t.span,
            }
        });
        let args: Vec<Arg> = args
            .iter()
            .map(|a| {
                let (node, ty) = self.check(a);
                Arg {
                    node,
                    ty,
                    span: a.span,
                }
            })
            .collect();
        let is_method = receiver.is_some();
        // Methods take their receiver as the first argument from here on.
        let mut all: Vec<Arg> = receiver.into_iter().chain(args).collect();
        let explicit = all.len() - usize::from(is_method);

        match (name, is_method) {
            ("size", _) => {
                if !self.arity(name, span, explicit, usize::from(!is_method)) {
                    return (node(NodeKind::Const(Value::Null), span), Ty::Error);
                }
                let ok = |t: &Ty| {
                    t.is_open() || matches!(t, Ty::String | Ty::Bytes | Ty::List(_) | Ty::Map(..))
                };
                self.want(&all[0], ok, "`size`", "a string, bytes, list or map");
                self.finish(Func::Size, all, span, Ty::Int)
            }
            ("contains" | "startsWith" | "endsWith", true) => {
                if !self.arity(name, span, explicit, 1) {
                    return (node(NodeKind::Const(Value::Null), span), Ty::Error);
                }
                let what = format!("`{name}`");
                self.want(&all[0], is_string, &what, "a string receiver");
                self.want(&all[1], is_string, &what, "a string argument");
                let func = match name {
                    "contains" => Func::Contains,
                    "startsWith" => Func::StartsWith,
                    _ => Func::EndsWith,
                };
                self.finish(func, all, span, Ty::Bool)
            }
            ("matches", _) => {
                if !self.arity(name, span, explicit, if is_method { 1 } else { 2 }) {
                    return (node(NodeKind::Const(Value::Null), span), Ty::Error);
                }
                self.want(&all[0], is_string, "`matches`", "a string to match");
                self.want(&all[1], is_string, "`matches`", "a string pattern");
                if let Some(Value::String(pattern)) = constant(&all[1].node) {
                    match functions::compile_regex(pattern) {
                        Ok(re) => {
                            all.truncate(1);
                            return self.finish(Func::MatchesRegex(re), all, span, Ty::Bool);
                        }
                        Err(e) => {
                            let at = all[1].span;
                            return self.error(at, e);
                        }
                    }
                }
                self.finish(Func::Matches, all, span, Ty::Bool)
            }
            ("isSubtreeOf", true) => {
                if !self.arity(name, span, explicit, 1) {
                    return (node(NodeKind::Const(Value::Null), span), Ty::Error);
                }
                let is_map = |t: &Ty| t.is_open() || matches!(t, Ty::Map(..));
                self.want(&all[0], is_map, "`isSubtreeOf`", "a map receiver");
                self.want(&all[1], is_map, "`isSubtreeOf`", "a map argument");
                self.finish(Func::IsSubtreeOf, all, span, Ty::Bool)
            }
            ("in_cidr", true) => {
                if !self.arity(name, span, explicit, 1) {
                    return (node(NodeKind::Const(Value::Null), span), Ty::Error);
                }
                let is_ip = |t: &Ty| t.fits(&Ty::IpAddress);
                self.want(&all[0], is_ip, "`in_cidr`", "an ipaddress receiver");
                self.want(&all[1], is_string, "`in_cidr`", "a string CIDR argument");
                if let Some(Value::String(cidr)) = constant(&all[1].node) {
                    match IpNet::parse(cidr) {
                        Ok(net) => {
                            all.truncate(1);
                            return self.finish(Func::InCidrNet(net), all, span, Ty::Bool);
                        }
                        Err(e) => {
                            let at = all[1].span;
                            return self.error(at, e);
                        }
                    }
                }
                self.finish(Func::InCidr, all, span, Ty::Bool)
            }
            (conversion, false) if GLOBAL_FUNCTIONS.contains(&conversion) => {
                if !self.arity(name, span, explicit, 1) {
                    return (node(NodeKind::Const(Value::Null), span), Ty::Error);
                }
                self.conversion(conversion, all, span)
            }
            (getter, true) if TimeField::from_method(getter).is_some() => {
                let Some(field) = TimeField::from_method(getter) else {
                    return self.error(name_span, format!("unknown method `{name}`"));
                };
                self.time_getter(name, field, all, explicit, span)
            }
            (_, true) if GLOBAL_FUNCTIONS.contains(&name) => self.error(
                name_span,
                format!("`{name}` is a function, not a method: write `{name}(x)`"),
            ),
            (_, false) if METHODS.contains(&name) || TimeField::from_method(name).is_some() => self
                .error(
                    name_span,
                    format!("`{name}` is a method: write `x.{name}(...)`"),
                ),
            (_, true) => self.error(name_span, format!("unknown method `{name}`")),
            (_, false) => self.error(name_span, format!("unknown function `{name}`")),
        }
    }

    /// Reports a wrong argument count; `expected` excludes a method's receiver.
    fn arity(&mut self, name: &str, span: Span, found: usize, expected: usize) -> bool {
        if found == expected {
            return true;
        }
        let plural = if expected == 1 { "" } else { "s" };
        self.diag(
            span,
            format!("`{name}` takes {expected} argument{plural}, found {found}"),
        );
        false
    }

    fn want(&mut self, arg: &Arg, ok: impl Fn(&Ty) -> bool, what: &str, expected: &str) -> bool {
        if ok(&arg.ty) {
            return true;
        }
        let message = format!("{what} needs {expected}, found `{}`", arg.ty);
        self.diag(arg.span, message);
        false
    }

    fn finish(&mut self, func: Func, args: Vec<Arg>, span: Span, ty: Ty) -> Typed {
        let nodes = args.into_iter().map(|a| a.node).collect();
        (node(NodeKind::Call(func, nodes), span), ty)
    }

    fn conversion(&mut self, name: &str, mut args: Vec<Arg>, span: Span) -> Typed {
        use Ty::*;
        let (func, result, accepted): (Option<Func>, Ty, &[Ty]) = match name {
            "int" => (
                Some(Func::ToInt),
                Int,
                &[Int, Uint, Double, String, Timestamp],
            ),
            "uint" => (Some(Func::ToUint), Uint, &[Int, Uint, Double, String]),
            "double" => (Some(Func::ToDouble), Double, &[Int, Uint, Double, String]),
            "string" => (
                Some(Func::ToString),
                String,
                &[
                    Int, Uint, Double, String, Bool, Bytes, Timestamp, Duration, IpAddress,
                ],
            ),
            "bool" => (Some(Func::ToBool), Bool, &[Bool, String]),
            "bytes" => (Some(Func::ToBytes), Bytes, &[Bytes, String]),
            "timestamp" => (
                Some(Func::ToTimestamp),
                Timestamp,
                &[Timestamp, String, Int],
            ),
            "duration" => (Some(Func::ToDuration), Duration, &[Duration, String]),
            "ipaddress" => (Some(Func::ToIpAddress), IpAddress, &[IpAddress, String]),
            _ => (None, Dyn, &[]),
        };
        let Some(func) = func else {
            // `dyn(x)`: only changes the static type.
            let Some(arg) = args.pop() else {
                return (node(NodeKind::Const(Value::Null), span), Ty::Error);
            };
            return (arg.node, Ty::Dyn);
        };
        let arg_ty = args[0].ty.clone();
        if !(arg_ty.is_open() || accepted.contains(&arg_ty)) {
            let names: Vec<std::string::String> = accepted.iter().map(|t| t.to_string()).collect();
            let at = args[0].span;
            return self.error(
                at,
                format!(
                    "`{name}` cannot convert a value of type `{arg_ty}` (it accepts {})",
                    names.join(", ")
                ),
            );
        }
        // Conversions of constants (`timestamp('2024-01-01T00:00:00Z')`, `duration('1h')`)
        // run once here, so a malformed literal is a compile error with a span.
        if let Some(value) = constant(&args[0].node) {
            return match functions::call(&func, std::slice::from_ref(value)) {
                Ok(v) => (node(NodeKind::Const(v), span), result),
                Err(e) => {
                    let at = args[0].span;
                    self.error(at, e)
                }
            };
        }
        self.finish(func, args, span, result)
    }

    fn time_getter(
        &mut self,
        name: &str,
        field: TimeField,
        args: Vec<Arg>,
        explicit: usize,
        span: Span,
    ) -> Typed {
        let receiver_ty = args[0].ty.clone();
        match receiver_ty {
            Ty::Timestamp => {
                if explicit > 1 {
                    self.arity(name, span, explicit, 1);
                    return (node(NodeKind::Const(Value::Null), span), Ty::Error);
                }
                if explicit == 1 {
                    self.want(
                        &args[1],
                        is_string,
                        &format!("`{name}`"),
                        "a string time zone",
                    );
                }
            }
            Ty::Duration => {
                if !field.applies_to_duration() {
                    let at = args[0].span;
                    return self.error(
                        at,
                        format!("`{name}` needs a timestamp receiver, found `duration`"),
                    );
                }
                if !self.arity(name, span, explicit, 0) {
                    return (node(NodeKind::Const(Value::Null), span), Ty::Error);
                }
            }
            Ty::Dyn | Ty::Error => {
                if explicit > 1 {
                    self.arity(name, span, explicit, 1);
                    return (node(NodeKind::Const(Value::Null), span), Ty::Error);
                }
            }
            other => {
                let at = args[0].span;
                let expected = if field.applies_to_duration() {
                    "a timestamp or duration receiver"
                } else {
                    "a timestamp receiver"
                };
                return self.error(at, format!("`{name}` needs {expected}, found `{other}`"));
            }
        }
        self.finish(Func::TimeGet(field), args, span, Ty::Int)
    }
}

fn is_string(t: &Ty) -> bool {
    t.fits(&Ty::String)
}

/// The result type of an arithmetic operator, or `None` when the operands do not fit.
fn arithmetic_type(op: BinaryOp, a: &Ty, b: &Ty) -> Option<Ty> {
    use Ty::*;
    if matches!(a, Error) || matches!(b, Error) {
        return Some(Error);
    }
    let capable = |t: &Ty| match op {
        BinaryOp::Add => matches!(
            t,
            Int | Uint | Double | String | Bytes | List(_) | Timestamp | Duration
        ),
        BinaryOp::Sub => matches!(t, Int | Uint | Double | Timestamp | Duration),
        BinaryOp::Mul | BinaryOp::Div => matches!(t, Int | Uint | Double),
        _ => matches!(t, Int | Uint),
    };
    if a.is_open() || b.is_open() {
        let other = if a.is_open() { b } else { a };
        return (other.is_open() || capable(other)).then_some(Dyn);
    }
    match (op, a, b) {
        (BinaryOp::Rem, Int, Int) => Some(Int),
        (BinaryOp::Rem, Uint, Uint) => Some(Uint),
        (BinaryOp::Rem, _, _) => None,
        (_, x, y) if x == y && x.is_numeric() => Some(x.clone()),
        (BinaryOp::Add, String, String) => Some(String),
        (BinaryOp::Add, Bytes, Bytes) => Some(Bytes),
        (BinaryOp::Add, List(x), List(y)) => Some(List(Box::new(x.join(y)))),
        (BinaryOp::Add, Timestamp, Duration) | (BinaryOp::Add, Duration, Timestamp) => {
            Some(Timestamp)
        }
        (BinaryOp::Add | BinaryOp::Sub, Duration, Duration) => Some(Duration),
        (BinaryOp::Sub, Timestamp, Timestamp) => Some(Duration),
        (BinaryOp::Sub, Timestamp, Duration) => Some(Timestamp),
        _ => None,
    }
}
