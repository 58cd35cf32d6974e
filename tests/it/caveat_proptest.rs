//! Property test: random boolean caveat expressions agree with a direct Rust evaluation, and
//! partial evaluation is sound and exactly as precise as documented.
//!
//! The documented approximation (see `src/caveat/eval.rs`): missing parameters are treated
//! with Kleene's three-valued logic — `&&`/`||` decide as soon as one operand decides, `?:`
//! decides when its condition is known or both branches agree, every other operator needs all
//! of its operands. So the outcome is `True`/`False` only if every completion of the missing
//! parameters gives that value (soundness), and the reference below, written independently
//! with the same rules, predicts the exact outcome including the reported parameter names.
//! A tautology over a missing parameter such as `p0 || !p0` is reported as missing `p0`, as
//! the reference implementation does.

use std::collections::BTreeSet;

use indexmap::IndexMap;
use proptest::prelude::*;
use tessera::caveat::{CaveatOutcome, CaveatType, CompiledCaveat, compile};

const VARS: usize = 4;

#[derive(Debug, Clone)]
enum B {
    Lit(bool),
    Var(usize),
    Not(Box<B>),
    And(Box<B>, Box<B>),
    Or(Box<B>, Box<B>),
    Eq(Box<B>, Box<B>),
    Ne(Box<B>, Box<B>),
    Cond(Box<B>, Box<B>, Box<B>),
    /// `(a || b || c)` (`true`) or `(a && b && c)` (`false`): a flat chain, which the parser
    /// keeps as one n-ary node.
    Chain(bool, Vec<B>),
}

fn render(e: &B) -> String {
    match e {
        B::Lit(b) => b.to_string(),
        B::Var(i) => format!("p{i}"),
        B::Not(x) => format!("!({})", render(x)),
        B::And(a, b) => format!("({} && {})", render(a), render(b)),
        B::Or(a, b) => format!("({} || {})", render(a), render(b)),
        B::Eq(a, b) => format!("({} == {})", render(a), render(b)),
        B::Ne(a, b) => format!("({} != {})", render(a), render(b)),
        B::Cond(c, t, f) => format!("({} ? {} : {})", render(c), render(t), render(f)),
        B::Chain(or, items) => {
            let op = if *or { " || " } else { " && " };
            let parts: Vec<String> = items.iter().map(render).collect();
            format!("({})", parts.join(op))
        }
    }
}

fn direct(e: &B, env: &[bool]) -> bool {
    match e {
        B::Lit(b) => *b,
        B::Var(i) => env[*i],
        B::Not(x) => !direct(x, env),
        B::And(a, b) => direct(a, env) && direct(b, env),
        B::Or(a, b) => direct(a, env) || direct(b, env),
        B::Eq(a, b) => direct(a, env) == direct(b, env),
        B::Ne(a, b) => direct(a, env) != direct(b, env),
        B::Cond(c, t, f) => {
            if direct(c, env) {
                direct(t, env)
            } else {
                direct(f, env)
            }
        }
        B::Chain(true, items) => items.iter().any(|x| direct(x, env)),
        B::Chain(false, items) => items.iter().all(|x| direct(x, env)),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tri {
    Known(bool),
    Unknown(BTreeSet<usize>),
}

fn unknowns(rs: &[&Tri]) -> BTreeSet<usize> {
    rs.iter()
        .flat_map(|r| match r {
            Tri::Unknown(s) => s.clone(),
            Tri::Known(_) => BTreeSet::new(),
        })
        .collect()
}

/// Kleene three-valued evaluation, tracking which missing variables an unknown came from.
fn kleene(e: &B, env: &[Option<bool>]) -> Tri {
    match e {
        B::Lit(b) => Tri::Known(*b),
        B::Var(i) => match env[*i] {
            Some(b) => Tri::Known(b),
            None => Tri::Unknown(BTreeSet::from([*i])),
        },
        B::Not(x) => match kleene(x, env) {
            Tri::Known(b) => Tri::Known(!b),
            u => u,
        },
        B::And(a, b) | B::Or(a, b) => {
            let decisive = matches!(e, B::Or(..));
            let (ra, rb) = (kleene(a, env), kleene(b, env));
            match (&ra, &rb) {
                (Tri::Known(x), _) if *x == decisive => Tri::Known(decisive),
                (_, Tri::Known(y)) if *y == decisive => Tri::Known(decisive),
                (Tri::Known(_), Tri::Known(_)) => Tri::Known(!decisive),
                _ => Tri::Unknown(unknowns(&[&ra, &rb])),
            }
        }
        B::Eq(a, b) | B::Ne(a, b) => {
            let (ra, rb) = (kleene(a, env), kleene(b, env));
            match (&ra, &rb) {
                (Tri::Known(x), Tri::Known(y)) => Tri::Known((x == y) == matches!(e, B::Eq(..))),
                _ => Tri::Unknown(unknowns(&[&ra, &rb])),
            }
        }
        B::Cond(c, t, f) => match kleene(c, env) {
            Tri::Known(true) => kleene(t, env),
            Tri::Known(false) => kleene(f, env),
            rc => {
                let (rt, rf) = (kleene(t, env), kleene(f, env));
                match (&rt, &rf) {
                    (Tri::Known(x), Tri::Known(y)) if x == y => Tri::Known(*x),
                    _ => Tri::Unknown(unknowns(&[&rc, &rt, &rf])),
                }
            }
        },
        B::Chain(decisive, items) => {
            let rs: Vec<Tri> = items.iter().map(|x| kleene(x, env)).collect();
            if rs.contains(&Tri::Known(*decisive)) {
                Tri::Known(*decisive)
            } else if rs.iter().all(|r| matches!(r, Tri::Known(_))) {
                Tri::Known(!decisive)
            } else {
                Tri::Unknown(unknowns(&rs.iter().collect::<Vec<_>>()))
            }
        }
    }
}

fn expr_strategy() -> impl Strategy<Value = B> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(B::Lit),
        (0..VARS).prop_map(B::Var),
        (0..VARS).prop_map(B::Var),
    ];
    leaf.prop_recursive(6, 48, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|x| B::Not(Box::new(x))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| B::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| B::Or(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| B::Eq(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| B::Ne(Box::new(a), Box::new(b))),
            (
                any::<bool>(),
                proptest::collection::vec(inner.clone(), 3..6)
            )
                .prop_map(|(or, items)| B::Chain(or, items)),
            (inner.clone(), inner.clone(), inner).prop_map(|(c, t, f)| B::Cond(
                Box::new(c),
                Box::new(t),
                Box::new(f)
            )),
        ]
    })
}

fn compile_bool_caveat(e: &B) -> CompiledCaveat {
    let params: IndexMap<String, CaveatType> = (0..VARS)
        .map(|i| (format!("p{i}"), CaveatType::Bool))
        .collect();
    let text = render(e);
    compile("prop", params, &text).unwrap_or_else(|d| panic!("`{text}`: {d:?}"))
}

fn evaluate(c: &CompiledCaveat, env: &[Option<bool>]) -> CaveatOutcome {
    let mut ctx = serde_json::Map::new();
    for (i, v) in env.iter().enumerate() {
        if let Some(b) = v {
            ctx.insert(format!("p{i}"), serde_json::Value::Bool(*b));
        }
    }
    c.evaluate(&ctx)
        .unwrap_or_else(|e| panic!("`{}`: {e}", c.expression_text()))
}

/// Every completion of the missing variables of `env`.
fn completions(env: &[Option<bool>]) -> Vec<Vec<bool>> {
    let missing: Vec<usize> = (0..env.len()).filter(|i| env[*i].is_none()).collect();
    (0..1u32 << missing.len())
        .map(|bits| {
            let mut full: Vec<bool> = env.iter().map(|v| v.unwrap_or(false)).collect();
            for (k, i) in missing.iter().enumerate() {
                full[*i] = bits & (1 << k) != 0;
            }
            full
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn full_contexts_agree_with_rust(e in expr_strategy(), env in proptest::collection::vec(any::<bool>(), VARS)) {
        let c = compile_bool_caveat(&e);
        let partial: Vec<Option<bool>> = env.iter().copied().map(Some).collect();
        let want = if direct(&e, &env) { CaveatOutcome::True } else { CaveatOutcome::False };
        prop_assert_eq!(evaluate(&c, &partial), want, "`{}`", render(&e));
    }

    #[test]
    fn partial_contexts_are_sound_and_match_kleene_logic(
        e in expr_strategy(),
        env in proptest::collection::vec(proptest::option::of(any::<bool>()), VARS),
    ) {
        let c = compile_bool_caveat(&e);
        let got = evaluate(&c, &env);
        let text = render(&e);

        // Exact agreement with the independent three-valued reference.
        let want = match kleene(&e, &env) {
            Tri::Known(true) => CaveatOutcome::True,
            Tri::Known(false) => CaveatOutcome::False,
            Tri::Unknown(set) => CaveatOutcome::MissingParameters(
                set.into_iter().map(|i| format!("p{i}")).collect(),
            ),
        };
        prop_assert_eq!(&got, &want, "`{}` with {:?}", text, env);

        // Soundness: a definite answer holds for every completion of the missing variables,
        // and completions that disagree always yield MissingParameters.
        let answers: BTreeSet<bool> = completions(&env).iter().map(|full| direct(&e, full)).collect();
        match &got {
            CaveatOutcome::True => prop_assert_eq!(&answers, &BTreeSet::from([true])),
            CaveatOutcome::False => prop_assert_eq!(&answers, &BTreeSet::from([false])),
            CaveatOutcome::MissingParameters(names) => {
                prop_assert!(!names.is_empty());
                let mut sorted = names.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(&sorted, names);
                for name in names {
                    let i: usize = name[1..].parse().expect("pN");
                    prop_assert!(env[i].is_none(), "`{}` reported present `{}`", text, name);
                }
            }
        }
        if answers.len() == 2 {
            prop_assert!(matches!(got, CaveatOutcome::MissingParameters(_)), "`{}`", text);
        }
    }
}

#[test]
fn documented_approximation_for_tautologies() {
    let e = B::Or(Box::new(B::Var(0)), Box::new(B::Not(Box::new(B::Var(0)))));
    let c = compile_bool_caveat(&e);
    assert_eq!(
        evaluate(&c, &[None, None, None, None]),
        CaveatOutcome::MissingParameters(vec!["p0".into()])
    );
}

const TOKENS: &[&str] = &[
    "n",
    "s",
    "l",
    "m",
    "x",
    "b",
    "t",
    "ip",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ".",
    ",",
    ":",
    "?",
    "+",
    "-",
    "*",
    "/",
    "%",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "&&",
    "||",
    "!",
    "in",
    "0",
    "1",
    "-1",
    "1u",
    "2.5",
    "'a'",
    "b'x'",
    "true",
    "false",
    "null",
    "size",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "timestamp",
    "duration",
    "all",
    "exists",
    "exists_one",
    "map",
    "filter",
    "has",
    "contains",
    "startsWith",
    "matches",
    "in_cidr",
    "ipaddress",
    "isSubtreeOf",
    "getHours",
    "'10.0.0.0/8'",
    "'1h'",
    "'2024-01-01T00:00:00Z'",
    "9223372036854775807",
    "dyn",
    "v",
    "'+01:00'",
];

fn mixed_params() -> IndexMap<String, CaveatType> {
    use CaveatType::*;
    [
        ("n", Int),
        ("s", String),
        ("l", List(Box::new(Int))),
        ("m", Map(Box::new(Any))),
        ("x", Any),
        ("b", Bool),
        ("t", Timestamp),
        ("ip", IpAddress),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

const LEAVES: &[&str] = &[
    "n",
    "s",
    "l",
    "m",
    "x",
    "b",
    "t",
    "ip",
    "v",
    "0",
    "1",
    "-1",
    "1u",
    "2.5",
    "'a'",
    "b'x'",
    "true",
    "false",
    "null",
    "[]",
    "{}",
    "[1, 2]",
    "{'y': 0}",
    "m.y",
    "x.y",
    "l[0]",
    "duration('1h')",
    "timestamp('2024-01-01T00:00:00Z')",
    "9223372036854775807",
    "'10.0.0.0/8'",
];
const BINARY: &[&str] = &[
    "+", "-", "*", "/", "%", "==", "!=", "<", ">=", "&&", "||", "in",
];
const UNARY_CALLS: &[&str] = &[
    "!({})",
    "-({})",
    "({}).size()",
    "int({})",
    "uint({})",
    "double({})",
    "string({})",
    "dyn({})",
    "size({})",
    "({}).getHours()",
    "({}).getHours('+01:00')",
    "timestamp({})",
    "duration({})",
    "ipaddress({})",
    "bool({})",
    "bytes({})",
];
const BINARY_CALLS: &[&str] = &[
    "({}).contains({})",
    "({}).startsWith({})",
    "({}).matches({})",
    "({}).in_cidr({})",
    "({}).isSubtreeOf({})",
    "({})[{}]",
    "[{}, {}]",
    "{{{}: {}}}",
    "({}).all(v, {})",
    "({}).exists(v, {})",
    "({}).exists_one(v, {})",
    "({}).map(v, {})",
    "({}).filter(v, {})",
];

/// Random, mostly well-formed CEL over the `mixed_params` parameters. Values of type `any`
/// are frequent so that many combinations pass the checker and reach the evaluator.
fn cel_strategy() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        proptest::sample::select(LEAVES).prop_map(str::to_string),
        proptest::sample::select(&["x", "m.y", "x.y", "dyn(n)", "dyn(s)", "dyn(l)"][..])
            .prop_map(str::to_string),
    ];
    leaf.prop_recursive(5, 40, 3, |inner| {
        let fill = |template: &str, args: &[String]| {
            let mut out = template.to_string();
            for a in args {
                out = out.replacen("{}", a, 1);
            }
            out
        };
        prop_oneof![
            (
                inner.clone(),
                proptest::sample::select(BINARY),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (proptest::sample::select(UNARY_CALLS), inner.clone())
                .prop_map(move |(t, a)| fill(t, &[a])),
            (
                proptest::sample::select(BINARY_CALLS),
                inner.clone(),
                inner.clone()
            )
                .prop_map(move |(t, a, b)| fill(t, &[a, b])),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
        ]
    })
}

fn evaluate_all_ways(text: &str, present: &[bool], n: i64, x: &serde_json::Value) {
    let Ok(c) = compile("fuzz", mixed_params(), text) else {
        return;
    };
    let full = serde_json::json!({
        "n": n, "s": "a", "l": [1, 0, -1], "m": {"y": 0, "a": [1]}, "x": x,
        "b": true, "t": "2024-01-01T00:00:00Z", "ip": "10.1.2.3",
    });
    let full = full.as_object().cloned().expect("object");
    let partial: serde_json::Map<String, serde_json::Value> = full
        .iter()
        .zip(present)
        .filter(|(_, keep)| **keep)
        .map(|((k, v), _)| (k.clone(), v.clone()))
        .collect();
    let outcome = c.evaluate(&full);
    // With every parameter present nothing can be missing.
    assert!(
        !matches!(outcome, Ok(CaveatOutcome::MissingParameters(_))),
        "`{text}`: {outcome:?}"
    );
    let _ = c.evaluate(&partial);
    let _ = c.evaluate(&serde_json::Map::new());
}

fn json_any() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::json!(1)),
        Just(serde_json::json!("a")),
        Just(serde_json::json!([1, "a"])),
        Just(serde_json::json!({"y": 0})),
        Just(serde_json::json!(null)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Random expressions never panic the compiler, and whatever compiles evaluates to an
    /// outcome or an error (never a panic) with full, partial and empty contexts.
    #[test]
    fn generated_expressions_never_panic(
        text in cel_strategy().prop_map(|e| format!("dyn({e}) == x || b")),
        present in proptest::collection::vec(any::<bool>(), 8),
        n in any::<i64>(),
        x in json_any(),
    ) {
        evaluate_all_ways(&text, &present, n, &x);
    }

    /// Arbitrary token soup never panics the lexer, parser or checker.
    #[test]
    fn arbitrary_token_sequences_never_panic(
        tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 1..24),
        present in proptest::collection::vec(any::<bool>(), 8),
        n in any::<i64>(),
        x in json_any(),
    ) {
        evaluate_all_ways(&tokens.join(" "), &present, n, &x);
    }

    /// Arbitrary text (any characters) never panics the lexer or parser, and every reported
    /// span lies within the text on character boundaries.
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,40}") {
        if let Err(diagnostics) = compile("fuzz", mixed_params(), &text) {
            for d in diagnostics {
                prop_assert!(d.span.start <= d.span.end && d.span.end <= text.len());
                prop_assert!(text.is_char_boundary(d.span.start) && text.is_char_boundary(d.span.end));
            }
        }
    }
}
