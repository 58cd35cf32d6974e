//! The evaluator, with partial evaluation: a parameter absent from the context evaluates to
//! "unknown", which propagates through strict operations and is absorbed by `&&`, `||`,
//! `?:` and the `all`/`exists` macros exactly where the known operands decide the result.
//!
//! The approximation is sound: a definite `true`/`false` is only returned when it holds for
//! every value of the absent parameters. It is Kleene's three-valued logic, so a result that
//! only a case analysis could decide (`x || !x`) stays unknown, as in the reference.

use std::sync::Arc;

use super::ast::MacroKind;
use super::functions;
use super::program::{Comprehension, Node, NodeKind};
use super::value::{Key, KeyRef, MapValue, Value, values_equal};

/// A set of parameter indices: the first 64 inline (no allocation for ordinary caveats),
/// the rest in a growable bit vector.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ParamSet {
    low: u64,
    high: Vec<u64>,
}

impl ParamSet {
    pub(crate) fn single(index: usize) -> ParamSet {
        let mut set = ParamSet::default();
        if index < 64 {
            set.low = 1 << index;
        } else {
            let word = index / 64 - 1;
            set.high = vec![0; word + 1];
            set.high[word] = 1 << (index % 64);
        }
        set
    }

    fn union(mut self, other: ParamSet) -> ParamSet {
        self.low |= other.low;
        if self.high.len() < other.high.len() {
            self.high.resize(other.high.len(), 0);
        }
        for (w, o) in self.high.iter_mut().zip(other.high) {
            *w |= o;
        }
        self
    }

    /// The indices in increasing order.
    pub(crate) fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.low)
            .chain(self.high.iter().copied())
            .enumerate()
            .flat_map(|(wi, w)| {
                (0..64)
                    .filter(move |b| w & (1 << b) != 0)
                    .map(move |b| wi * 64 + b)
            })
    }
}

/// Why evaluation of a subexpression produced no value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Halt {
    /// The value depends on these absent parameters.
    Unknown(ParamSet),
    /// A definite failure, whatever the absent parameters are.
    Error(String),
}

type Eval = Result<Value, Halt>;

/// For strict operations: an error wins (it happens whatever the unknowns turn out to be),
/// unknowns merge.
fn strict_merge(a: Halt, b: Halt) -> Halt {
    match (a, b) {
        (Halt::Error(e), _) | (_, Halt::Error(e)) => Halt::Error(e),
        (Halt::Unknown(x), Halt::Unknown(y)) => Halt::Unknown(x.union(y)),
    }
}

/// For `&&`, `||`, `all`, `exists`: an unknown wins over an error, because supplying the
/// parameter could make the deciding operand absorb the error.
fn logical_merge(acc: Option<Halt>, h: Halt) -> Halt {
    match (acc, h) {
        (None, h) => h,
        (Some(Halt::Unknown(x)), Halt::Unknown(y)) => Halt::Unknown(x.union(y)),
        (Some(Halt::Unknown(x)), Halt::Error(_)) | (Some(Halt::Error(_)), Halt::Unknown(x)) => {
            Halt::Unknown(x)
        }
        (Some(Halt::Error(e)), Halt::Error(_)) => Halt::Error(e),
    }
}

/// Evaluation state: the bound parameters and the comprehension variables.
pub(crate) struct Env<'a> {
    params: &'a [Option<Value>],
    vars: Vec<Value>,
    source: &'a str,
}

impl<'a> Env<'a> {
    pub(crate) fn new(params: &'a [Option<Value>], slots: usize, source: &'a str) -> Env<'a> {
        Env {
            params,
            vars: vec![Value::Null; slots],
            source,
        }
    }

    /// Wraps an operation's failure with the text of the expression that failed.
    fn fail(&self, node: &Node, message: String) -> Halt {
        let text = self
            .source
            .get(node.span.start..node.span.end)
            .unwrap_or_default();
        let mut shown: String = text.chars().take(80).collect();
        if shown.len() < text.len() {
            shown.push_str("...");
        }
        Halt::Error(format!("{message} in `{shown}`"))
    }
}

fn expect_bool(env: &Env<'_>, node: &Node, v: Value, what: &str) -> Result<bool, Halt> {
    match v {
        Value::Bool(b) => Ok(b),
        other => Err(env.fail(
            node,
            format!("{what} needs a bool, found {}", other.type_name()),
        )),
    }
}

/// Evaluates `node`.
pub(crate) fn eval(node: &Node, env: &mut Env<'_>) -> Eval {
    match &node.kind {
        NodeKind::Const(v) => Ok(v.clone()),
        NodeKind::Param(i) => match env.params.get(*i) {
            Some(Some(v)) => Ok(v.clone()),
            _ => Err(Halt::Unknown(ParamSet::single(*i))),
        },
        NodeKind::Var(slot) => env
            .vars
            .get(*slot)
            .cloned()
            .ok_or_else(|| Halt::Error("internal error: unbound comprehension variable".into())),
        NodeKind::List(items) => {
            let values = eval_all(items, env)?;
            Ok(Value::List(Arc::from(values)))
        }
        NodeKind::Map(entries) => {
            let mut halt: Option<Halt> = None;
            let mut map = MapValue::with_capacity(entries.len());
            for (k, v) in entries {
                let (k_res, v_res) = (eval(k, env), eval(v, env));
                match (k_res, v_res) {
                    (Ok(kv), Ok(vv)) if halt.is_none() => {
                        let key = Key::from_value(&kv).map_err(|e| env.fail(k, e))?;
                        if map.insert(key, vv).is_some() {
                            return Err(env.fail(k, "repeated key in map literal".into()));
                        }
                    }
                    (Ok(_), Ok(_)) => {}
                    (Err(h), Ok(_)) | (Ok(_), Err(h)) => {
                        halt = Some(halt.map_or(h.clone(), |a| strict_merge(a, h)));
                    }
                    (Err(h1), Err(h2)) => {
                        let h = strict_merge(h1, h2);
                        halt = Some(halt.map_or(h.clone(), |a| strict_merge(a, h)));
                    }
                }
            }
            match halt {
                Some(h) => Err(h),
                None => Ok(Value::Map(Arc::new(map))),
            }
        }
        NodeKind::Not(x) => {
            let v = eval(x, env)?;
            Ok(Value::Bool(!expect_bool(env, node, v, "operator `!`")?))
        }
        NodeKind::Neg(x) => {
            let v = eval(x, env)?;
            functions::negate(&v).map_err(|e| env.fail(node, e))
        }
        NodeKind::Binary(op, l, r) => {
            let lv = eval(l, env);
            if let Err(Halt::Error(e)) = lv {
                return Err(Halt::Error(e));
            }
            let rv = eval(r, env);
            let (a, b) = both(lv, rv)?;
            functions::binary(*op, &a, &b).map_err(|e| env.fail(node, e))
        }
        NodeKind::And(items) => logical(items, env, false, node),
        NodeKind::Or(items) => logical(items, env, true, node),
        NodeKind::Cond(c, t, e) => match eval(c, env) {
            Ok(v) => {
                if expect_bool(env, c, v, "the condition of `?:`")? {
                    eval(t, env)
                } else {
                    eval(e, env)
                }
            }
            Err(Halt::Error(msg)) => Err(Halt::Error(msg)),
            Err(Halt::Unknown(unknown)) => {
                // Both branches agreeing decides the result whatever the condition is.
                match (eval(t, env), eval(e, env)) {
                    (Ok(a), Ok(b)) if a.type_name() == b.type_name() && values_equal(&a, &b) => {
                        Ok(a)
                    }
                    (ta, eb) => {
                        let mut set = unknown;
                        for h in [ta.err(), eb.err()].into_iter().flatten() {
                            if let Halt::Unknown(s) = h {
                                set = set.union(s);
                            }
                        }
                        Err(Halt::Unknown(set))
                    }
                }
            }
        },
        NodeKind::Select(x, field) => {
            let v = eval(x, env)?;
            match &v {
                Value::Map(m) => m
                    .get(&KeyRef::Str(field))
                    .cloned()
                    .ok_or_else(|| env.fail(node, format!("no such key `{field}`"))),
                other => Err(env.fail(
                    node,
                    format!("cannot select field `{field}` from {}", other.type_name()),
                )),
            }
        }
        NodeKind::Has(x, field) => {
            let v = eval(x, env)?;
            match &v {
                Value::Map(m) => Ok(Value::Bool(m.contains_key(&KeyRef::Str(field)))),
                other => Err(env.fail(
                    node,
                    format!("`has` needs a map, found {}", other.type_name()),
                )),
            }
        }
        NodeKind::Index(x, i) => {
            let (container, index) = both(eval(x, env), eval(i, env))?;
            index_value(&container, &index).map_err(|e| env.fail(node, e))
        }
        NodeKind::Call(func, args) => {
            let mut buf = [Value::Null, Value::Null];
            if args.len() > buf.len() {
                return Err(Halt::Error(
                    "internal error: too many call arguments".into(),
                ));
            }
            let mut halt: Option<Halt> = None;
            for (slot, arg) in buf.iter_mut().zip(args) {
                match eval(arg, env) {
                    Ok(v) => *slot = v,
                    Err(Halt::Error(e)) => return Err(Halt::Error(e)),
                    Err(h) => halt = Some(halt.map_or(h.clone(), |a| strict_merge(a, h))),
                }
            }
            if let Some(h) = halt {
                return Err(h);
            }
            functions::call(func, &buf[..args.len()]).map_err(|e| env.fail(node, e))
        }
        NodeKind::Comprehension(c) => comprehension(c, env, node),
    }
}

fn both(a: Eval, b: Eval) -> Result<(Value, Value), Halt> {
    match (a, b) {
        (Ok(x), Ok(y)) => Ok((x, y)),
        (Err(h), Ok(_)) | (Ok(_), Err(h)) => Err(h),
        (Err(h1), Err(h2)) => Err(strict_merge(h1, h2)),
    }
}

fn eval_all(items: &[Node], env: &mut Env<'_>) -> Result<Vec<Value>, Halt> {
    let mut values = Vec::with_capacity(items.len());
    let mut halt: Option<Halt> = None;
    for item in items {
        match eval(item, env) {
            Ok(v) => values.push(v),
            Err(Halt::Error(e)) => return Err(Halt::Error(e)),
            Err(h) => halt = Some(halt.map_or(h.clone(), |a| strict_merge(a, h))),
        }
    }
    match halt {
        Some(h) => Err(h),
        None => Ok(values),
    }
}

fn index_value(container: &Value, index: &Value) -> Result<Value, String> {
    match container {
        Value::List(items) => {
            let i = match index {
                Value::Int(i) => usize::try_from(*i).ok(),
                Value::Uint(u) => usize::try_from(*u).ok(),
                Value::Double(d) if d.fract() == 0.0 && *d >= 0.0 => Some(*d as usize),
                other => {
                    return Err(format!(
                        "a list index must be int, found {}",
                        other.type_name()
                    ));
                }
            };
            i.and_then(|i| items.get(i)).cloned().ok_or_else(|| {
                format!("index out of range (the list has {} elements)", items.len())
            })
        }
        Value::Map(m) => KeyRef::from_value(index)
            .and_then(|k| m.get(&k))
            .cloned()
            .ok_or_else(|| match key_text(index) {
                Some(k) => format!("no such key `{k}`"),
                None => format!("no such key of type {}", index.type_name()),
            }),
        other => Err(format!("cannot index {}", other.type_name())),
    }
}

fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Uint(u) => Some(u.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `&&` (`decisive == false`) and `||` (`decisive == true`): the first operand equal to
/// `decisive` decides, whatever the others (unknown or failing) are.
fn logical(items: &[Node], env: &mut Env<'_>, decisive: bool, node: &Node) -> Eval {
    let mut halt: Option<Halt> = None;
    let symbol = if decisive { "`||`" } else { "`&&`" };
    for item in items {
        match eval(item, env) {
            Ok(Value::Bool(b)) if b == decisive => return Ok(Value::Bool(decisive)),
            Ok(Value::Bool(_)) => {}
            Ok(other) => {
                let e = env.fail(
                    node,
                    format!(
                        "operands of {symbol} must be bool, found {}",
                        other.type_name()
                    ),
                );
                halt = Some(logical_merge(halt, e));
            }
            Err(h) => halt = Some(logical_merge(halt, h)),
        }
    }
    match halt {
        Some(h) => Err(h),
        None => Ok(Value::Bool(!decisive)),
    }
}

fn comprehension(c: &Comprehension, env: &mut Env<'_>, node: &Node) -> Eval {
    let range = eval(&c.range, env)?;
    let elements: Vec<Value>;
    let items: &[Value] = match &range {
        Value::List(items) => items,
        Value::Map(m) => {
            elements = m.keys().map(Key::to_value).collect();
            &elements
        }
        other => {
            return Err(env.fail(
                node,
                format!(
                    "`{}` needs a list or map, found {}",
                    c.kind.name(),
                    other.type_name()
                ),
            ));
        }
    };
    let mut halt: Option<Halt> = None;
    let mut count = 0usize;
    let mut out: Vec<Value> = Vec::new();
    for item in items {
        match env.vars.get_mut(c.slot) {
            Some(var) => *var = item.clone(),
            None => return Err(Halt::Error("internal error: missing variable slot".into())),
        }
        let pred = match &c.predicate {
            Some(p) => match eval(p, env) {
                Ok(Value::Bool(b)) => Ok(b),
                Ok(other) => Err(env.fail(
                    p,
                    format!(
                        "the predicate of `{}` must be bool, found {}",
                        c.kind.name(),
                        other.type_name()
                    ),
                )),
                Err(h) => Err(h),
            },
            None => Ok(true),
        };
        match c.kind {
            MacroKind::All | MacroKind::Exists => {
                let decisive = c.kind == MacroKind::Exists;
                match pred {
                    Ok(b) if b == decisive => return Ok(Value::Bool(decisive)),
                    Ok(_) => {}
                    Err(h) => halt = Some(logical_merge(halt, h)),
                }
            }
            MacroKind::ExistsOne | MacroKind::Filter | MacroKind::Map => {
                let keep = match pred {
                    Ok(b) => b,
                    Err(Halt::Error(e)) => return Err(Halt::Error(e)),
                    Err(h) => {
                        halt = Some(halt.map_or(h.clone(), |a| strict_merge(a, h)));
                        continue;
                    }
                };
                if !keep {
                    continue;
                }
                match c.kind {
                    MacroKind::ExistsOne => count += 1,
                    MacroKind::Filter => out.push(item.clone()),
                    _ => {
                        let Some(t) = &c.transform else {
                            return Err(Halt::Error(
                                "internal error: `map` without transform".into(),
                            ));
                        };
                        match eval(t, env) {
                            Ok(v) => out.push(v),
                            Err(Halt::Error(e)) => return Err(Halt::Error(e)),
                            Err(h) => halt = Some(halt.map_or(h.clone(), |a| strict_merge(a, h))),
                        }
                    }
                }
            }
        }
    }
    if let Some(h) = halt {
        return Err(h);
    }
    Ok(match c.kind {
        MacroKind::All => Value::Bool(true),
        MacroKind::Exists => Value::Bool(false),
        MacroKind::ExistsOne => Value::Bool(count == 1),
        MacroKind::Filter | MacroKind::Map => Value::List(Arc::from(out)),
    })
}
