//! Caveat compilation through the public API: syntax and type errors with byte spans, and the
//! accessors of a compiled caveat.

use indexmap::IndexMap;
use tessera::caveat::{CaveatDiagnostic, CaveatType, compile};

fn params() -> IndexMap<String, CaveatType> {
    use CaveatType::*;
    [
        ("n", Int),
        ("u", Uint),
        ("d", Double),
        ("b", Bool),
        ("s", String),
        ("by", Bytes),
        ("dur", Duration),
        ("t", Timestamp),
        ("ip", IpAddress),
        ("l", List(Box::new(Int))),
        ("m", Map(Box::new(String))),
        ("x", Any),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

fn errors(expr: &str) -> Vec<CaveatDiagnostic> {
    match compile("c", params(), expr) {
        Ok(_) => panic!("`{expr}` compiled but should not"),
        Err(d) => {
            assert!(!d.is_empty());
            for diag in &d {
                assert!(
                    diag.span.start <= diag.span.end && diag.span.end <= expr.len(),
                    "`{expr}`: span {:?} outside the text",
                    diag.span
                );
            }
            d
        }
    }
}

/// Asserts a single diagnostic containing `want`, pointing at the text `at`.
fn error_at(expr: &str, want: &str, at: &str) {
    let d = errors(expr);
    assert_eq!(d.len(), 1, "`{expr}`: {d:?}");
    assert!(
        d[0].message.contains(want),
        "`{expr}`: `{}` lacks `{want}`",
        d[0].message
    );
    assert_eq!(
        &expr[d[0].span.clone()],
        at,
        "`{expr}`: span of `{}`",
        d[0].message
    );
}

#[test]
fn type_errors_point_at_the_offending_text() {
    let cases = [
        ("y > 1", "unknown identifier `y`", "y"),
        ("n > 1 && y", "unknown identifier `y`", "y"),
        (
            "n > s",
            "operator `>` cannot be applied to `int` and `string`",
            "n > s",
        ),
        (
            "n == s",
            "cannot be applied to `int` and `string`",
            "n == s",
        ),
        ("1 + 1u == 2", "convert one side", "1 + 1u"),
        ("s - s == ''", "operator `-` cannot be applied", "s - s"),
        ("d % 2.0 == 0.0", "operator `%`", "d % 2.0"),
        ("t + t > t", "`timestamp` and `timestamp`", "t + t"),
        ("ip < ip", "operator `<`", "ip < ip"),
        ("n + 1", "must be of type bool, found `int`", "n + 1"),
        ("  s  ", "must be of type bool, found `string`", "s"),
        (
            "s.startsWith(1)",
            "`startsWith` needs a string argument, found `int`",
            "1",
        ),
        (
            "n.startsWith('a')",
            "needs a string receiver, found `int`",
            "n",
        ),
        (
            "s.contains()",
            "`contains` takes 1 argument, found 0",
            "s.contains()",
        ),
        (
            "s.size(1) == 1",
            "`size` takes 0 arguments, found 1",
            "s.size(1)",
        ),
        (
            "size(s, s) == 1",
            "`size` takes 1 argument, found 2",
            "size(s, s)",
        ),
        (
            "size(n) == 1",
            "`size` needs a string, bytes, list or map",
            "n",
        ),
        ("foo(1)", "unknown function `foo`", "foo"),
        ("s.foo()", "unknown method `foo`", "foo"),
        ("contains(s, 'a')", "is a method", "contains"),
        ("s.int() == 1", "is a function", "int"),
        ("s.matches('(')", "invalid regular expression", "'('"),
        ("ip.in_cidr('10.0.0.0/33')", "invalid CIDR", "'10.0.0.0/33'"),
        (
            "s.in_cidr('10.0.0.0/8')",
            "needs an ipaddress receiver, found `string`",
            "s",
        ),
        (
            "t < timestamp('nope')",
            "invalid RFC 3339 timestamp `nope`",
            "'nope'",
        ),
        ("dur > duration('1x')", "invalid duration `1x`", "'1x'"),
        (
            "ipaddress('300.1.1.1') == ip",
            "invalid IP address",
            "'300.1.1.1'",
        ),
        ("int('x') == n", "cannot convert string `x` to int", "'x'"),
        (
            "int(b) == 1",
            "`int` cannot convert a value of type `bool`",
            "b",
        ),
        (
            "duration(n) > dur",
            "`duration` cannot convert a value of type `int`",
            "n",
        ),
        ("l[0] == 'a'", "`int` and `string`", "l[0] == 'a'"),
        (
            "l['a'] == 1",
            "a list index must be int, found `string`",
            "'a'",
        ),
        ("m[1] == 'a'", "this map has keys of type `string`", "1"),
        ("m.k + 1 == 2", "`string` and `int`", "m.k + 1"),
        (
            "n.k == 1",
            "cannot select field `k` from a value of type `int`",
            "n.k",
        ),
        (
            "s[0] == 'a'",
            "cannot index a value of type `string`",
            "s[0]",
        ),
        (
            "1 in n",
            "`in` needs a list or map on the right, found `int`",
            "1 in n",
        ),
        ("'a' in l", "`string` and `list<int>`", "'a' in l"),
        (
            "l.all(v, v)",
            "the predicate of `all` must be bool, found `int`",
            "v",
        ),
        (
            "n.exists(v, true)",
            "`exists` needs a list or map, found `int`",
            "n",
        ),
        ("l.map(v, w).size() == 1", "unknown identifier `w`", "w"),
        ("l.all(v, true) && v > 1", "unknown identifier `v`", "v"),
        (
            "n ? true : false",
            "the condition of `?:` must be bool, found `int`",
            "n",
        ),
        ("!n", "operator `!` needs a bool, found `int`", "!n"),
        ("-u < 0u", "cannot negate a value of type `uint`", "-u"),
        ("b && n", "operands of `&&` must be bool, found `int`", "n"),
        ("n || b", "operands of `||` must be bool, found `int`", "n"),
        (
            "has(n.f)",
            "`has` needs a map with string keys, found `int`",
            "has(n.f)",
        ),
        (
            "n.getHours() == 1",
            "needs a timestamp or duration receiver, found `int`",
            "n",
        ),
        (
            "dur.getFullYear() == 1",
            "needs a timestamp receiver, found `duration`",
            "dur",
        ),
        (
            "t.getHours(1) == 1",
            "needs a string time zone, found `int`",
            "1",
        ),
        (
            "{[1]: 1}.size() == 1",
            "a map key must be int, uint, bool or string",
            "[1]",
        ),
        ("{'a': 1, 'a': 2}.size() == 2", "duplicate key", "'a'"),
    ];
    for (expr, want, at) in cases {
        error_at(expr, want, at);
    }
}

#[test]
fn syntax_errors_point_at_the_offending_text() {
    let cases = [
        (
            "n > ",
            "expected an expression, found the end of the expression",
            "",
        ),
        (
            "n > 1 )",
            "expected the end of the expression, found `)`",
            ")",
        ),
        ("(n > 1", "expected `)`", ""),
        ("n = 1", "use `==`", "="),
        ("s == 'abc", "unterminated string literal", "'abc"),
        ("s == '\\q'", "unknown escape sequence", "\\q"),
        ("if > 1", "reserved word", "if"),
        (
            "n > 99999999999999999999",
            "out of range",
            "99999999999999999999",
        ),
        ("has(n)", "field selection", "n"),
        ("", "empty", ""),
        ("   ", "empty", ""),
    ];
    for (expr, want, at) in cases {
        error_at(expr, want, at);
    }
}

#[test]
fn all_type_errors_are_reported() {
    let d = errors("y > 1 && n > s && s.foo()");
    let messages: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(d.len(), 3, "{messages:?}");
    assert!(messages[0].contains("unknown identifier `y`"));
    assert!(messages[1].contains("`int` and `string`"));
    assert!(messages[2].contains("unknown method `foo`"));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for expr in [
        format!("{}b{}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("{}b", "!".repeat(10_000)),
        format!("{}1{} == []", "[".repeat(5_000), "]".repeat(5_000)),
        format!("{} > 0", vec!["n"; 5_000].join(" + ")),
        "l.all(v, ".repeat(2_000) + "true" + &")".repeat(2_000),
    ] {
        let d = errors(&expr);
        assert!(
            d[0].message.contains("nested too deeply"),
            "{}",
            d[0].message
        );
    }
    // Long flat chains of `&&`/`||` are fine.
    let long = vec!["b"; 10_000].join(" || ");
    assert!(compile("c", params(), &long).is_ok());
}

#[test]
fn dynamic_values_are_checked_at_evaluation() {
    for expr in [
        "x.foo.bar > 1 && x[0] == 'a'",
        "x + 1 == 2",
        "x.exists(v, v == 1)",
        "dyn(n) == 'a'",
        "x",
        "x.getHours() == 1",
        "x.startsWith('a')",
        "size(x) > 0",
        "x in x",
    ] {
        if let Err(d) = compile("c", params(), expr) {
            panic!("`{expr}`: {d:?}");
        }
    }
}

#[test]
fn compiled_caveat_keeps_name_parameters_and_trimmed_text() {
    let c = compile("allowed_ip", params(), "\n  ip.in_cidr('10.0.0.0/8')  \n").unwrap();
    assert_eq!(c.name(), "allowed_ip");
    assert_eq!(c.expression_text(), "ip.in_cidr('10.0.0.0/8')");
    assert_eq!(c.parameters(), &params());
    // Spans of errors are relative to the untrimmed text.
    let d = compile("c", params(), "\n  y").unwrap_err();
    assert_eq!(d[0].span, 3..4);
}

#[test]
fn expressions_at_the_nesting_limit_evaluate_without_overflow() {
    let ctx = serde_json::json!({"b": true, "l": [1]});
    let ctx = ctx.as_object().unwrap();
    let nots = format!("{}b", "!".repeat(62));
    let c = compile("c", params(), &nots).unwrap();
    assert_eq!(c.evaluate(ctx), Ok(tessera::caveat::CaveatOutcome::True));
    let comprehensions = "l.all(v, ".repeat(60) + "b" + &")".repeat(60);
    let c = compile("c", params(), &comprehensions).unwrap();
    assert_eq!(c.evaluate(ctx), Ok(tessera::caveat::CaveatOutcome::True));
    let parens = format!("{}b{}", "(".repeat(60), ")".repeat(60));
    assert!(compile("c", params(), &parens).is_ok());
}

#[test]
fn compiled_caveats_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<tessera::caveat::CompiledCaveat>();
    let c = std::sync::Arc::new(compile("c", params(), "s.matches('^a') && n > 1").unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let c = c.clone();
            std::thread::spawn(move || {
                let ctx = serde_json::json!({"s": "abc", "n": i});
                c.evaluate(ctx.as_object().unwrap()).unwrap()
            })
        })
        .collect();
    let outcomes: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    use tessera::caveat::CaveatOutcome::{False, True};
    assert_eq!(outcomes, vec![False, False, True, True]);
}
