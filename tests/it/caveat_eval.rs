//! Caveat evaluation through the public API: CEL semantics, partial evaluation with missing
//! parameters, context conversion and evaluation errors.

use indexmap::IndexMap;
use serde_json::{Value, json};
use tessera::caveat::{CaveatError, CaveatOutcome, CaveatType, CompiledCaveat, compile};

fn params(list: &[(&str, CaveatType)]) -> IndexMap<String, CaveatType> {
    list.iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

fn caveat(list: &[(&str, CaveatType)], expr: &str) -> CompiledCaveat {
    compile("test", params(list), expr).unwrap_or_else(|d| panic!("`{expr}` failed: {d:?}"))
}

fn run(c: &CompiledCaveat, ctx: Value) -> Result<CaveatOutcome, CaveatError> {
    let ctx = ctx
        .as_object()
        .cloned()
        .expect("context must be a JSON object");
    c.evaluate(&ctx)
}

fn missing(names: &[&str]) -> CaveatOutcome {
    CaveatOutcome::MissingParameters(names.iter().map(|s| s.to_string()).collect())
}

fn eval_error(c: &CompiledCaveat, ctx: Value) -> String {
    match run(c, ctx) {
        Err(CaveatError::Evaluation { caveat, detail }) => {
            assert_eq!(caveat, "test");
            detail
        }
        other => panic!(
            "`{}`: expected an evaluation error, got {other:?}",
            c.expression_text()
        ),
    }
}

/// Every expression here must compile without parameters and evaluate to true.
#[test]
fn expressions_that_are_true() {
    let cases = [
        // literals and numbers
        "1 == 1",
        "1u == 1u",
        "0x10 == 16 && 0xFFu == 255u",
        "1.5 == 1.5 && 1e3 == 1000.0 && .5 == 0.5",
        "-1 < 0",
        "-9223372036854775808 < 0",
        "9223372036854775807 > 0",
        "18446744073709551615u > 0u",
        "null == null",
        "true // a comment\n && !false",
        // strings and bytes
        r#""a\nb" == 'a' + "\n" + 'b'"#,
        r#"r'\d' == "\\d""#,
        r#"'''x'y''' == "x'y""#,
        r#""""two
lines""" == "two\nlines""#,
        r#""\u00e9" == "é" && "\x41" == "A" && "\101" == "A""#,
        "size('héllo') == 5",
        "size(b'héllo') == 6",
        "'abc'.size() == 3",
        "b'abc' == bytes('abc')",
        r"b'\xff' != b'\x00' && size(b'\xff') == 1",
        "'abc'.contains('b') && !'abc'.contains('d')",
        "'abc'.startsWith('ab') && 'abc'.endsWith('bc')",
        "'abc123'.matches('^[a-z]+[0-9]+$')",
        "matches('abc', 'b') && !'abc'.matches('^b')",
        "'a' < 'b' && 'B' < 'a' && b'a' < b'b'",
        "'a' + 'b' == 'ab' && b'a' + b'b' == b'ab'",
        // lists
        "[1, 2, 3][1] == 2",
        "[1, 2, 3][1u] == 2",
        "size([1, 2]) == 2 && [1, 2].size() == 2",
        "2 in [1, 2, 3] && !(4 in [1, 2, 3])",
        "[1, 2] + [3] == [1, 2, 3]",
        "[] == [] && [1] != [2]",
        "[1, 'a'][1] == 'a'",
        "1.0 in [1, 2]",
        // maps
        "{'a': 1}.a == 1 && {'a': 1}['a'] == 1",
        "'a' in {'a': 1} && !('b' in {'a': 1})",
        "has({'a': 1}.a) && !has({'a': 1}.b)",
        "{1: 'x'}[1u] == 'x' && {1: 'x'}[1.0] == 'x'",
        "size({'a': 1, 'b': 2}) == 2",
        "{'a': 1, 'b': 2} == {'b': 2, 'a': 1}",
        "{'a': {'b': true}}.a.b",
        "{true: 1}[true] == 1",
        // arithmetic
        "1 + 2 * 3 == 7 && (1 + 2) * 3 == 9",
        "7 / 2 == 3 && -7 / 2 == -3",
        "7 % 3 == 1 && -7 % 3 == -1",
        "5u - 3u == 2u && 7u / 2u == 3u && 7u % 2u == 1u",
        "1.0 / 0.0 > 1e308",
        "2.5 * 2.0 == 5.0 && 1.0 - 0.5 == 0.5",
        "--1 == 1 && -(-2.5) == 2.5",
        // heterogeneous numeric comparison
        "1 == 1.0 && 1 == 1u && 1u == 1.0",
        "1 < 1.5 && 2u > 1 && -1 < 0u && 2.5 > 2u",
        "dyn(1) != 'a'",
        "dyn(1) == 1.0",
        // logic and conditionals
        "(true ? 1 : 2) == 1 && (false ? 1 : 2) == 2",
        "true && true && !(true && false)",
        "false || false || true",
        "true ? true : 1 / 0 == 1",
        // conversions
        "int('42') == 42 && int('-7') == -7",
        "int(3.9) == 3 && int(-3.9) == -3",
        "int(5u) == 5 && uint(3) == 3u && uint(3.7) == 3u",
        "double(1) == 1.0 && double(2u) == 2.0 && double('2.5') == 2.5",
        "string(1) == '1' && string(1u) == '1' && string(-9223372036854775808) == '-9223372036854775808'",
        "string(1.5) == '1.5' && string(1000000.0) == '1e+06'",
        "string(true) == 'true' && string(b'ab') == 'ab' && string('x') == 'x'",
        "bool('true') && !bool('false') && bool('1') && !bool('F')",
        "bytes('a') == b'a'",
        "uint('18446744073709551615') == 18446744073709551615u",
        "int(timestamp('1970-01-01T00:01:00Z')) == 60",
        "string(duration('1h30m')) == '5400s'",
        "string(duration('1.5s')) == '1.5s'",
        "string(timestamp('2024-01-01T00:00:00Z')) == '2024-01-01T00:00:00Z'",
        "string(timestamp('2024-01-01T02:00:00.5+02:00')) == '2024-01-01T00:00:00.5Z'",
        // timestamps and durations
        "timestamp('2024-01-01T00:00:00Z') + duration('1h') == timestamp('2024-01-01T01:00:00Z')",
        "duration('1h') + timestamp('2024-01-01T00:00:00Z') == timestamp('2024-01-01T01:00:00Z')",
        "timestamp('2024-01-02T00:00:00Z') - timestamp('2024-01-01T00:00:00Z') == duration('24h')",
        "timestamp('2024-01-01T00:01:00Z') - duration('1m') == timestamp('2024-01-01T00:00:00Z')",
        "duration('1h') > duration('59m') && duration('1h') - duration('30m') == duration('30m')",
        "duration('1h') + duration('30m') == duration('90m')",
        "-duration('1h') < duration('0')",
        "timestamp(0) == timestamp('1970-01-01T00:00:00Z')",
        "timestamp('2024-01-01T00:00:00Z') < timestamp('2024-01-01T00:00:00.001Z')",
        "timestamp('2024-03-05T10:20:30.5Z').getFullYear() == 2024",
        "timestamp('2024-03-05T10:20:30.5Z').getMonth() == 2",
        "timestamp('2024-03-05T10:20:30.5Z').getDate() == 5",
        "timestamp('2024-03-05T10:20:30.5Z').getDayOfMonth() == 4",
        "timestamp('2024-03-05T10:20:30.5Z').getDayOfWeek() == 2",
        "timestamp('2024-03-05T10:20:30.5Z').getDayOfYear() == 64",
        "timestamp('2024-03-05T10:20:30.5Z').getHours() == 10",
        "timestamp('2024-03-05T23:20:30.5Z').getHours('+02:00') == 1",
        "timestamp('2024-03-05T23:20:30.5Z').getDate('+02:00') == 6",
        "timestamp('2024-03-05T10:20:30.5Z').getHours('UTC') == 10",
        "timestamp('2024-03-05T10:20:30.5Z').getMinutes() == 20",
        "timestamp('2024-03-05T10:20:30.5Z').getSeconds() == 30",
        "timestamp('2024-03-05T10:20:30.5Z').getMilliseconds() == 500",
        "duration('90m').getHours() == 1 && duration('90m').getMinutes() == 90",
        "duration('1.5s').getSeconds() == 1 && duration('1.5s').getMilliseconds() == 1500",
        // macros
        "[1, 2, 3].all(x, x > 0) && ![1, 2, 3].all(x, x > 1)",
        "[1, 2, 3].exists(x, x == 2) && ![1, 2, 3].exists(x, x == 5)",
        "[1, 2, 3].exists_one(x, x > 2) && ![1, 2, 3].exists_one(x, x > 1)",
        "[].all(x, false) && ![].exists(x, true)",
        "[1, 2, 3].map(x, x * 2) == [2, 4, 6]",
        "[1, 2, 3].map(x, x > 1, x * 10) == [20, 30]",
        "[1, 2, 3].filter(x, x % 2 == 1) == [1, 3]",
        "{'a': 1, 'b': 2}.all(k, k in ['a', 'b'])",
        "{'a': 1}.map(k, k + '!') == ['a!']",
        "{'a': 1, 'b': 2}.filter(k, k == 'b') == ['b']",
        "[[1, 2], [3]].all(l, l.all(x, x > 0))",
        "[1, 2].exists(x, [3, 4].exists(y, x + y == 6))",
        "[1].all(x, [2].all(x, x == 2))",
        "[1, 2, 3].map(x, x * 2).filter(y, y > 2).size() == 2",
        // ip addresses
        "ipaddress('10.1.2.3').in_cidr('10.0.0.0/8')",
        "!ipaddress('11.1.2.3').in_cidr('10.0.0.0/8')",
        "ipaddress('2001:db8::1').in_cidr('2001:db8::/32')",
        "!ipaddress('2001:db9::1').in_cidr('2001:db8::/32')",
        "!ipaddress('10.0.0.1').in_cidr('::/0')",
        "ipaddress('::1') == ipaddress('::1') && ipaddress('::1') != ipaddress('::2')",
        "string(ipaddress('10.0.0.1')) == '10.0.0.1'",
        // null
        "{'a': null}.a == null && 1 != null",
    ];
    for expr in cases {
        let c = caveat(&[], expr);
        assert_eq!(run(&c, json!({})).unwrap(), CaveatOutcome::True, "`{expr}`");
    }
}

#[test]
fn expressions_that_are_false() {
    for expr in [
        "false",
        "1 > 2",
        "'b' in ['a']",
        "[1, 2, 3].exists(x, x > 3)",
        "timestamp('2024-01-01T00:00:00Z') > timestamp('2025-01-01T00:00:00Z')",
        "0.0 / 0.0 == 0.0 / 0.0",
        "0.0 / 0.0 < 1.0 || 0.0 / 0.0 >= 1.0",
    ] {
        let c = caveat(&[], expr);
        assert_eq!(
            run(&c, json!({})).unwrap(),
            CaveatOutcome::False,
            "`{expr}`"
        );
    }
}

#[test]
fn evaluation_errors_name_the_problem_and_the_expression() {
    let cases = [
        ("9223372036854775807 + 1 > 0", "integer overflow"),
        ("-9223372036854775808 - 1 < 0", "integer overflow"),
        ("9223372036854775807 * 2 > 0", "integer overflow"),
        ("-9223372036854775808 / -1 > 0", "integer overflow"),
        ("-(-9223372036854775808) > 0", "integer overflow"),
        ("0u - 1u == 0u", "unsigned integer overflow"),
        (
            "18446744073709551615u + 1u > 0u",
            "unsigned integer overflow",
        ),
        ("1 / 0 == 0", "division by zero in `1 / 0`"),
        ("1u / 0u == 0u", "division by zero"),
        ("1 % 0 == 0", "modulus by zero"),
        ("[1][5] == 1", "index out of range"),
        ("[1][-1] == 1", "index out of range"),
        ("{'a': 1}.b == 1", "no such key `b`"),
        ("{'a': 1}['b'] == 1", "no such key `b`"),
        (
            "timestamp('9999-12-31T23:59:59Z') + duration('1s') > timestamp(0)",
            "timestamp out of range",
        ),
        ("dyn('a') + 1 == 1", "cannot be applied to string and int"),
        ("dyn('a') < 1", "cannot be applied to string and int"),
        ("[1, 2].map(x, x / 0) == []", "division by zero"),
        ("dyn(1) && true", "must be bool"),
        ("dyn([1]).all(x, x)", "must be bool"),
        ("{dyn(1.5): 1}.size() == 1", "map key"),
        ("[1, 1/0].size() == 2", "division by zero"),
    ];
    for (expr, want) in cases {
        let c = caveat(&[], expr);
        let detail = eval_error(&c, json!({}));
        assert!(detail.contains(want), "`{expr}`: `{detail}` lacks `{want}`");
    }
}

#[test]
fn logical_operators_absorb_errors_on_either_side() {
    for (expr, want) in [
        ("1 / 0 == 0 || true", CaveatOutcome::True),
        ("true || 1 / 0 == 0", CaveatOutcome::True),
        ("1 / 0 == 0 && false", CaveatOutcome::False),
        ("false && 1 / 0 == 0", CaveatOutcome::False),
        ("[1, 0].exists(x, 1 / x == 1)", CaveatOutcome::True),
        ("[0, 1].all(x, 1 / x == 5)", CaveatOutcome::False),
        ("false ? 1 / 0 == 0 : true", CaveatOutcome::True),
    ] {
        let c = caveat(&[], expr);
        assert_eq!(run(&c, json!({})).unwrap(), want, "`{expr}`");
    }
    // Both sides failing is an error.
    let c = caveat(&[], "1 / 0 == 0 || 2 / 0 == 0");
    assert!(eval_error(&c, json!({})).contains("division by zero"));
}

fn partial_params() -> Vec<(&'static str, CaveatType)> {
    vec![
        ("a", CaveatType::Bool),
        ("b", CaveatType::Bool),
        ("n", CaveatType::Int),
        ("l", CaveatType::List(Box::new(CaveatType::Int))),
        ("s", CaveatType::String),
        ("m", CaveatType::Map(Box::new(CaveatType::Int))),
    ]
}

#[test]
fn partial_evaluation_decides_when_missing_parameters_do_not_matter() {
    let p = partial_params();
    let cases: Vec<(&str, Value, CaveatOutcome)> = vec![
        ("a || true", json!({}), CaveatOutcome::True),
        ("true || a", json!({}), CaveatOutcome::True),
        ("a && false", json!({}), CaveatOutcome::False),
        ("false && a", json!({}), CaveatOutcome::False),
        ("l.size() > 0 && false", json!({}), CaveatOutcome::False),
        ("a || b", json!({}), missing(&["a", "b"])),
        ("a || b", json!({"b": true}), CaveatOutcome::True),
        ("a || b", json!({"b": false}), missing(&["a"])),
        ("a && b", json!({"a": true}), missing(&["b"])),
        ("a && n > 3", json!({"n": 1}), CaveatOutcome::False),
        (
            "l.size() > 0 || n == 1",
            json!({"n": 1}),
            CaveatOutcome::True,
        ),
        ("n + 1 > 2", json!({}), missing(&["n"])),
        ("!a", json!({}), missing(&["a"])),
        ("n > 1 ? true : true", json!({}), CaveatOutcome::True),
        ("a ? b : false", json!({"b": false}), CaveatOutcome::False),
        ("a ? n > 1 : s == ''", json!({}), missing(&["a", "n", "s"])),
        (
            "a ? n > 1 : s == ''",
            json!({"a": false, "s": ""}),
            CaveatOutcome::True,
        ),
        (
            "s.startsWith('x') && 1 / 0 == 1",
            json!({}),
            missing(&["s"]),
        ),
        (
            "s.startsWith('x') || 1 / 0 == 1",
            json!({}),
            missing(&["s"]),
        ),
        ("m.x == 1", json!({}), missing(&["m"])),
        ("has(m.x) || a", json!({"m": {"x": 1}}), CaveatOutcome::True),
        ("l.exists(x, x == n)", json!({"l": [1, 2]}), missing(&["n"])),
        (
            "l.exists(x, x == n)",
            json!({"l": [1, 2], "n": 2}),
            CaveatOutcome::True,
        ),
        (
            "l.exists(x, x == n)",
            json!({"l": []}),
            CaveatOutcome::False,
        ),
        (
            "l.exists(x, x == 1 || a)",
            json!({"l": [1]}),
            CaveatOutcome::True,
        ),
        (
            "l.all(x, x > 0 || a)",
            json!({"l": [1, 2]}),
            CaveatOutcome::True,
        ),
        (
            "l.all(x, x > 1 && a)",
            json!({"l": [1, 2]}),
            CaveatOutcome::False,
        ),
        (
            "l.all(x, x > 1 || a)",
            json!({"l": [1, 2]}),
            missing(&["a"]),
        ),
        ("[n, 1].size() == 2", json!({}), missing(&["n"])),
        ("{'k': n}.k == 1", json!({}), missing(&["n"])),
        (
            "l.map(x, x + n).size() == 1",
            json!({"l": [1]}),
            missing(&["n"]),
        ),
        (
            "(b || a) && (s == 'x' || n > 0)",
            json!({"a": true}),
            missing(&["n", "s"]),
        ),
        (
            "(b || a) && (s == 'x' || n > 0)",
            json!({"a": false}),
            missing(&["b", "n", "s"]),
        ),
    ];
    for (expr, ctx, want) in cases {
        let c = caveat(&p, expr);
        assert_eq!(run(&c, ctx.clone()).unwrap(), want, "`{expr}` with {ctx}");
    }
}

#[test]
fn partial_evaluation_reports_definite_errors() {
    let p = partial_params();
    // The error happens whatever `n` is: it is reported rather than hidden behind `n`.
    let c = caveat(&p, "[n, 1 / 0].size() == 2");
    assert!(eval_error(&c, json!({})).contains("division by zero"));
}

#[test]
fn missing_parameters_are_sorted_by_name() {
    let c = caveat(
        &[
            ("zeta", CaveatType::Bool),
            ("alpha", CaveatType::Bool),
            ("mid", CaveatType::Bool),
        ],
        "zeta || alpha || mid || zeta",
    );
    assert_eq!(
        run(&c, json!({})).unwrap(),
        missing(&["alpha", "mid", "zeta"])
    );
}

#[test]
fn many_parameters_are_tracked_individually() {
    let list: Vec<(String, CaveatType)> = (0..70)
        .map(|i| (format!("p{i}"), CaveatType::Bool))
        .collect();
    let refs: Vec<(&str, CaveatType)> = list.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
    let c = caveat(&refs, "p0 && p65 && p69");
    assert_eq!(
        run(&c, json!({"p0": true, "p65": true})).unwrap(),
        missing(&["p69"])
    );
    assert_eq!(
        run(&c, json!({"p0": true})).unwrap(),
        missing(&["p65", "p69"])
    );
    assert_eq!(
        run(&c, json!({"p69": false})).unwrap(),
        CaveatOutcome::False
    );
}

fn bad_parameter(c: &CompiledCaveat, ctx: Value) -> (String, String, String) {
    match run(c, ctx) {
        Err(CaveatError::BadParameter {
            caveat,
            parameter,
            expected,
            detail,
        }) => {
            assert_eq!(caveat, "test");
            (parameter, expected, detail)
        }
        other => panic!("expected BadParameter, got {other:?}"),
    }
}

#[test]
fn context_values_convert_to_declared_types() {
    use CaveatType::*;
    let ok = |ty: CaveatType, expr: &str, value: Value| {
        let c = caveat(&[("x", ty)], expr);
        assert_eq!(
            run(&c, json!({ "x": value.clone() })).unwrap(),
            CaveatOutcome::True,
            "`{expr}` with {value}"
        );
    };
    ok(Int, "x == 5", json!(5));
    ok(Int, "x == 5", json!(5.0));
    ok(Int, "x == -9223372036854775808", json!(i64::MIN));
    ok(Uint, "x == 18446744073709551615u", json!(u64::MAX));
    ok(Uint, "x == 3u", json!(3.0));
    ok(Double, "x == 1.0", json!(1));
    ok(Double, "x == 2.5", json!(2.5));
    ok(Bool, "x", json!(true));
    ok(String, "x == 'hé'", json!("hé"));
    ok(Bytes, "x == b'hello'", json!("aGVsbG8="));
    ok(Bytes, "x == b'\\xfb\\xff'", json!("-_8"));
    ok(Duration, "x == duration('90m')", json!("1h30m"));
    ok(Duration, "x == duration('10s')", json!("10s"));
    ok(
        Timestamp,
        "x == timestamp('2024-01-01T00:00:00Z')",
        json!("2024-01-01T01:00:00+01:00"),
    );
    ok(IpAddress, "x.in_cidr('10.0.0.0/8')", json!("10.0.0.1"));
    ok(
        IpAddress,
        "x.in_cidr('2001:db8::/32')",
        json!("2001:db8::1"),
    );
    ok(List(Box::new(Int)), "x == [1, 2]", json!([1, 2]));
    ok(
        List(Box::new(List(Box::new(String)))),
        "x[1][0] == 'b'",
        json!([["a"], ["b"]]),
    );
    ok(
        Map(Box::new(String)),
        "x.a == 'b' && x['a'] == 'b'",
        json!({"a": "b"}),
    );
    ok(
        Map(Box::new(List(Box::new(Timestamp)))),
        "x.t[0] < timestamp('2025-01-01T00:00:00Z')",
        json!({"t": ["2024-06-01T00:00:00Z"]}),
    );
    ok(Any, "x == 1", json!(1));
    ok(Any, "x + 1 == 2", json!(1));
    ok(Any, "x == 1.5", json!(1.5));
    ok(Any, "x != 1", json!("a"));
    ok(Any, "x.k[0] == 1 && x.k.size() == 1", json!({"k": [1]}));
    ok(Any, "x == null", json!(null));
}

#[test]
fn context_values_of_the_wrong_shape_are_bad_parameters() {
    use CaveatType::*;
    let bad = |ty: CaveatType, value: Value, want: &str| {
        let expected_name = ty.to_string();
        let c = caveat(&[("x", ty), ("ok", Bool)], "ok || x == x");
        let (parameter, expected, detail) =
            bad_parameter(&c, json!({"x": value.clone(), "ok": true}));
        assert_eq!(parameter, "x");
        assert_eq!(expected, expected_name);
        assert!(
            detail.contains(want),
            "{value} as {expected}: `{detail}` lacks `{want}`"
        );
    };
    bad(Int, json!(5.5), "not a whole number");
    bad(Int, json!("5"), "string `5`");
    bad(Int, json!(1e19), "out of range");
    bad(Int, json!(9_223_372_036_854_775_808u64), "out of range");
    bad(Int, json!(null), "null");
    bad(Uint, json!(-1), "negative");
    bad(Uint, json!(-1.0), "out of range");
    bad(Double, json!("1.0"), "string");
    bad(Bool, json!(1), "number `1`");
    bad(String, json!(1), "number");
    bad(Bytes, json!("!!"), "base64");
    bad(Bytes, json!([1]), "base64 strings");
    bad(Duration, json!("1x"), "unknown unit");
    bad(Duration, json!(5), "strings like `1h30m`");
    bad(Timestamp, json!("2024-01-01"), "RFC 3339");
    bad(IpAddress, json!("10.0.0.256"), "invalid IP address");
    bad(IpAddress, json!("10.0.0.1/8"), "invalid IP address");
    bad(List(Box::new(Int)), json!([1, "a"]), "element 1");
    bad(List(Box::new(Int)), json!("x"), "string");
    bad(Map(Box::new(Int)), json!({"a": "b"}), "key `a`");
    bad(Map(Box::new(Int)), json!([1]), "a list");

    // The message names the caveat, the parameter and the type.
    let c = caveat(&[("x", Int)], "x > 1");
    let err = run(&c, json!({"x": "many"})).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("`test`") && text.contains("`x`") && text.contains("int"),
        "{text}"
    );
    assert_eq!(
        c.validate_context(json!({"x": "many"}).as_object().unwrap()),
        Err(err)
    );
    assert!(
        c.validate_context(json!({"x": 3}).as_object().unwrap())
            .is_ok()
    );
}

#[test]
fn unknown_context_keys_are_ignored() {
    let c = caveat(&[("x", CaveatType::Int)], "x > 1");
    assert_eq!(
        run(&c, json!({"x": 2, "other": "anything", "y": [1]})).unwrap(),
        CaveatOutcome::True
    );
    assert_eq!(run(&c, json!({"other": 1})).unwrap(), missing(&["x"]));
}

#[test]
fn time_bound_access_with_timestamp_parameters() {
    let c = caveat(
        &[
            ("now", CaveatType::Timestamp),
            ("granted", CaveatType::Timestamp),
            ("ttl", CaveatType::Duration),
        ],
        "now < granted + ttl",
    );
    let base = json!({"granted": "2024-01-01T00:00:00Z", "ttl": "1h"});
    let at = |now: &str| {
        let mut ctx = base.clone();
        ctx["now"] = json!(now);
        run(&c, ctx).unwrap()
    };
    assert_eq!(at("2024-01-01T00:59:59Z"), CaveatOutcome::True);
    assert_eq!(at("2024-01-01T01:00:00Z"), CaveatOutcome::False);
    assert_eq!(run(&c, base).unwrap(), missing(&["now"]));
}

#[test]
fn ip_allowlists_with_dynamic_cidrs() {
    let c = caveat(
        &[
            ("ip", CaveatType::IpAddress),
            ("allowed", CaveatType::List(Box::new(CaveatType::String))),
        ],
        "allowed.exists(cidr, ip.in_cidr(cidr))",
    );
    let check = |ip: &str| run(&c, json!({"ip": ip, "allowed": ["10.0.0.0/8", "fd00::/8"]}));
    assert_eq!(check("10.20.30.40").unwrap(), CaveatOutcome::True);
    assert_eq!(check("192.168.0.1").unwrap(), CaveatOutcome::False);
    assert_eq!(check("fd12::1").unwrap(), CaveatOutcome::True);
    assert_eq!(check("fe80::1").unwrap(), CaveatOutcome::False);
    let detail = eval_error(&c, json!({"ip": "10.0.0.1", "allowed": ["10.0.0.0/40"]}));
    assert!(detail.contains("invalid CIDR `10.0.0.0/40`"), "{detail}");
}

#[test]
fn attribute_matching_with_is_subtree_of() {
    let any_map = || CaveatType::Map(Box::new(CaveatType::Any));
    let c = caveat(
        &[("expected", any_map()), ("provided", any_map())],
        "expected.isSubtreeOf(provided)",
    );
    let check = |expected: Value, provided: Value| {
        run(&c, json!({"expected": expected, "provided": provided})).unwrap()
    };
    let provided = json!({"team": "eng", "level": 3, "geo": {"region": "eu", "zone": "a"}});
    assert_eq!(check(json!({}), provided.clone()), CaveatOutcome::True);
    assert_eq!(
        check(json!({"team": "eng"}), provided.clone()),
        CaveatOutcome::True
    );
    assert_eq!(
        check(
            json!({"level": 3.0, "geo": {"region": "eu"}}),
            provided.clone()
        ),
        CaveatOutcome::True
    );
    assert_eq!(
        check(json!({"team": "ops"}), provided.clone()),
        CaveatOutcome::False
    );
    assert_eq!(
        check(json!({"geo": {"region": "us"}}), provided.clone()),
        CaveatOutcome::False
    );
    assert_eq!(
        check(json!({"missing": 1}), provided.clone()),
        CaveatOutcome::False
    );
    assert_eq!(check(json!({"geo": "eu"}), provided), CaveatOutcome::False);
    assert_eq!(
        run(&c, json!({"expected": {}})).unwrap(),
        missing(&["provided"])
    );
}

#[test]
fn runtime_conversion_and_regex_errors() {
    let c = caveat(&[("s", CaveatType::String)], "int(s) > 1");
    assert_eq!(run(&c, json!({"s": "5"})).unwrap(), CaveatOutcome::True);
    assert!(eval_error(&c, json!({"s": "five"})).contains("cannot convert string `five` to int"));

    let c = caveat(&[("d", CaveatType::Double)], "int(d) > 1");
    assert!(eval_error(&c, json!({"d": 1e300})).contains("out of int range"));

    let c = caveat(
        &[("s", CaveatType::String), ("p", CaveatType::String)],
        "s.matches(p)",
    );
    assert_eq!(
        run(&c, json!({"s": "abc", "p": "^a"})).unwrap(),
        CaveatOutcome::True
    );
    assert!(eval_error(&c, json!({"s": "abc", "p": "("})).contains("invalid regular expression"));

    let c = caveat(&[("s", CaveatType::String)], "duration(s) > duration('1m')");
    assert_eq!(run(&c, json!({"s": "2m"})).unwrap(), CaveatOutcome::True);
    assert!(eval_error(&c, json!({"s": "2 minutes"})).contains("invalid duration"));

    let c = caveat(
        &[("t", CaveatType::Timestamp), ("tz", CaveatType::String)],
        "t.getHours(tz) == 1",
    );
    assert!(
        eval_error(
            &c,
            json!({"t": "2024-01-01T00:00:00Z", "tz": "Mars/Olympus"})
        )
        .contains("unsupported time zone")
    );
}

#[test]
fn non_bool_result_of_an_any_expression_is_an_error() {
    let c = caveat(&[("x", CaveatType::Any)], "x");
    assert_eq!(run(&c, json!({"x": true})).unwrap(), CaveatOutcome::True);
    assert!(eval_error(&c, json!({"x": 1})).contains("evaluated to int"));
}

#[test]
fn evaluation_is_repeatable_and_does_not_leak_state() {
    let c = caveat(
        &[("l", CaveatType::List(Box::new(CaveatType::Int)))],
        "l.map(x, x * 2).exists(y, y == 4)",
    );
    for _ in 0..3 {
        assert_eq!(run(&c, json!({"l": [1, 2]})).unwrap(), CaveatOutcome::True);
        assert_eq!(run(&c, json!({"l": [1, 3]})).unwrap(), CaveatOutcome::False);
    }
}
