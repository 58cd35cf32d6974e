//! Every parser of caller input (schema, CEL caveats, relationship text, zookies, validation
//! YAML) against arbitrary bytes and structured garbage: it returns (a value or an error) in
//! bounded time and memory, and its error text stays bounded.
//!
//! Memory is bounded for real: the parent test re-runs this test binary as a child
//! (`parser_fuzz::fuzz_child`) with its address space capped (RLIMIT_AS, set by the shell
//! that execs it), so an input that makes a parser allocate without bound fails the test
//! instead of the machine. Time: each call must finish within a generous bound (a quadratic
//! blow-up on these input sizes takes far longer); the child as a whole has a deadline.
//! `PROPTEST_CASES` sets the number of cases (cargo fuzz needs a nightly toolchain, which
//! these machines cannot fetch, hence proptest).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tessera::consistency::Zookie;
use tessera::validate::{ValidateOptions, validate_source};

/// Set in the child's environment.
const CHILD_VAR: &str = "TESSERA_PARSER_FUZZ_CHILD";
/// The child's address space.
const ADDRESS_SPACE_KB: u64 = 1536 * 1024;
/// How long one parser call may take (debug build, busy machine).
const PER_CALL: Duration = Duration::from_secs(5);
/// How long the whole child may take.
const DEADLINE: Duration = Duration::from_secs(600);

#[test]
fn parsers_survive_garbage_within_memory_and_time_bounds() {
    let exe = std::env::current_exe().expect("test binary path");
    let started = Instant::now();
    let mut child = Command::new("bash")
        .args(["-c", r#"ulimit -v "$1" && shift && exec "$@""#, "bash"])
        .arg(ADDRESS_SPACE_KB.to_string())
        .arg(&exe)
        .args([
            "parser_fuzz::fuzz_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, "1")
        .env("MALLOC_ARENA_MAX", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the fuzz child");
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                status.success() && text.contains("1 passed"),
                "the parser fuzz child failed ({status}):\n{}",
                text.chars()
                    .rev()
                    .take(6000)
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>()
            );
            return;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the parser fuzz child did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `f`, failing when it takes longer than [`PER_CALL`].
fn timed<T>(what: &str, input: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    if took > PER_CALL {
        let shown: String = input.chars().take(200).collect();
        return Err(TestCaseError::fail(format!(
            "{what} took {took:?} on {} bytes starting `{shown}`",
            input.len()
        )));
    }
    Ok(out)
}

/// Valid inputs of every parser, the seeds that structured garbage is made from.
fn corpus() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema-examples");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .expect("schema-examples")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    out.extend(
        [
            r#"document:readme#viewer@user:alice[in_region:{"region":"eu","n":[1,2.5,true]}][expiration:2030-01-01T00:00:00Z]"#,
            "group:eng#member@group:leads#member",
            "a.b(c) && (x + 1 > 2 || y in [1, 2, 3]) ? 'x' : \"y\"",
            "ip.in_cidr('10.0.0.0/8') && now < timestamp('2030-01-01T00:00:00Z') + duration('1h')",
            "CgQIARAB",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    out
}

/// Structured garbage: a corpus entry with one of several edits that tend to break parsers
/// (truncation, repetition that deepens nesting, insertion of odd characters, splicing).
fn mutated() -> impl Strategy<Value = String> {
    let corpus = corpus();
    let n = corpus.len();
    (
        0..n,
        0usize..6,
        any::<u16>(),
        any::<u16>(),
        "\\PC{0,8}",
        1usize..2000,
    )
        .prop_map(move |(i, op, a, b, junk, times)| {
            let s = &corpus[i];
            let cut = |x: u16| {
                let mut at = usize::from(x) % (s.len() + 1);
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                at
            };
            let (x, y) = {
                let (x, y) = (cut(a), cut(b));
                (x.min(y), x.max(y))
            };
            match op {
                0 => s[..x].to_string(),
                1 => format!("{}{}{}", &s[..x], &s[x..y].repeat(times.min(200)), &s[y..]),
                2 => format!("{}{junk}{}", &s[..x], &s[x..]),
                3 => format!("{}{}", &s[..x], &s[y..]),
                4 => format!("{}{}{}", "(".repeat(times), &s[x..y], ")".repeat(times)),
                _ => format!("{}{}{}", &s[..x], "[{\"".repeat(times), &s[x..]),
            }
        })
}

fn garbage() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..4096)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        "[a-z_#@:|&+\\-(){}\\[\\].,\"'\\n*/ ]{0,4000}",
        mutated(),
    ]
}

fn exercise(input: &str) -> Result<(), TestCaseError> {
    let schema = timed("schema::compile", input, || {
        tessera::schema::compile("f.zed", input)
    })?;
    if let Err(d) = schema {
        let rendered = timed("render_within", input, || d.render_within(4096))?;
        prop_assert!(rendered.len() <= 4096, "{} bytes", rendered.len());
        let shown = timed("Diagnostics::to_string", input, || d.to_string())?;
        // 50 items of a bounded excerpt and capped message each.
        prop_assert!(shown.len() <= 50 * 4096, "{} bytes", shown.len());
    }
    let params: indexmap::IndexMap<String, tessera::caveat::CaveatType> = [
        ("a".to_string(), tessera::caveat::CaveatType::Int),
        ("b".to_string(), tessera::caveat::CaveatType::String),
    ]
    .into_iter()
    .collect();
    timed("caveat::compile", input, || {
        let _ = tessera::caveat::compile("c", params.clone(), input);
    })?;
    timed("parse_relationship", input, || {
        if let Err(e) = tessera::model::parse_relationship(input) {
            assert!(e.to_string().len() < 2048, "{}", e.to_string().len());
        }
    })?;
    timed("parse_subject", input, || {
        let _ = tessera::model::parse_subject(input);
    })?;
    timed("Zookie::decode", input, || {
        if let Err(e) = Zookie::decode(input) {
            assert!(e.to_string().len() < 2048);
        }
    })?;
    let dir = std::env::temp_dir();
    let report = timed("validate_source", input, || {
        validate_source("f.yaml", input, &dir, &ValidateOptions::default())
    })?;
    let text = timed("FileReport::to_string", input, || report.to_string())?;
    prop_assert!(text.len() <= 4 << 20, "{} bytes of report", text.len());
    Ok(())
}

#[test]
fn fuzz_child() {
    if std::env::var_os(CHILD_VAR).is_none() {
        return; // Runs only as the child of the test above.
    }
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256u32);
    let config = ProptestConfig {
        cases,
        // Seeds are the parent's business; a failing input is printed in full.
        failure_persistence: None,
        // Shrinking large garbage can run for many minutes; a failure half-shrunk is enough.
        max_shrink_time: 30_000,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let result = runner.run(&garbage(), |input| exercise(&input));
    if let Err(e) = result {
        panic!("{e}");
    }
    // Hand-made worst cases, beyond what random generation reaches.
    let billion_laughs = {
        let mut t = String::from("schema: &l0 [\"abcdefghijklmnopqrstuvwxyz\"]\n");
        for i in 1..12 {
            t.push_str(&format!(
                "l{i}: &l{i} [{}]\n",
                vec![format!("*l{}", i - 1); 10].join(", ")
            ));
        }
        t
    };
    let many_keys: String = (0..200_000).map(|i| format!("k{i}: 1\n")).collect();
    let deep_json = format!(
        "document:a#viewer@user:b[c:{}1{}]",
        "{\"a\":[".repeat(5000),
        "]}".repeat(5000)
    );
    let long_line = format!("definition d {{ relation r: {} }}", "x | ".repeat(200_000));
    let cel_chain = format!(
        "caveat c(a int) {{ {} }}\ndefinition user {{}}",
        "a + ".repeat(100_000) + "1 > 0"
    );
    for input in [billion_laughs, many_keys, deep_json, long_line, cel_chain] {
        if let Err(e) = exercise(&input) {
            panic!("{e}");
        }
    }
}
