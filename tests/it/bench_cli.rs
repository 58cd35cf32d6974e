//! `tessera bench` against a real `tessera serve`: load a tiny dataset, run the mixed workload
//! with answer verification, the noop floor, the depth measurement, large lookups, a small
//! sweep, and plot the JSON reports.

#![allow(clippy::unwrap_used)]

use crate::cli_support;

use cli_support::Server;
use serde_json::Value;

const TINY: &[&str] = &[
    "--seed",
    "7",
    "--users",
    "60",
    "--groups",
    "12",
    "--group-depth",
    "3",
    "--folders",
    "30",
    "--folder-depth",
    "3",
    "--documents",
    "300",
];

fn with_tiny<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend_from_slice(TINY);
    v
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn op<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["operations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["operation"] == name)
        .unwrap_or_else(|| panic!("no operation {name} in {run}"))
}

#[test]
fn load_run_noop_depth_sweep_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));

    // Load: schema, dataset, chains; idempotent (TOUCH), so a second load succeeds too.
    let load_args = with_tiny(&["bench", "load", "--quiet", "--batch-size", "100"]);
    let out = server.cli(&load_args);
    let text = out.ok();
    assert!(text.contains("schema written"), "{text}");
    assert!(text.contains("document#owner"), "{text}");
    assert!(text.contains("chains 1,2,4,8,16,32"), "{text}");
    let zookie = text
        .lines()
        .find_map(|l| l.strip_prefix("zookie: "))
        .expect("a final zookie");
    assert!(!zookie.is_empty());
    server.cli(&load_args).ok();

    // The data is really there: a direct grant and the deepest chain.
    let check = server.cli(&["check", "document:chaindoc32", "view", "user:chainuser32"]);
    assert_eq!(check.stdout.trim(), "true", "{}", check.stderr);

    // The mixed workload, every answer verified.
    let run_json = dir.path().join("run.json");
    let run_args = with_tiny(&[
        "bench",
        "run",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--concurrency",
        "4",
        "--consistency",
        "full",
        "--verify",
        "--json",
        "--output",
        run_json.to_str().unwrap(),
    ]);
    let out = server.cli(&run_args);
    let report = json(out.ok());
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["command"], "run");
    let run = &report["runs"][0];
    assert_eq!(run["verify"], true);
    assert_eq!(run["total"]["error_count"], 0, "{run}");
    for name in [
        "check.direct",
        "check.nested_group",
        "check.folder_parent",
        "check.negative",
        "check_bulk",
        "lookup_resources",
        "lookup_subjects",
        "write",
    ] {
        let o = op(run, name);
        assert!(o["count"].as_u64().unwrap() > 0, "{name}: {o}");
        assert_eq!(o["error_count"], 0, "{name}: {o}");
        let l = &o["latency_ms"];
        assert!(
            l["p50"].as_f64().unwrap() <= l["p99"].as_f64().unwrap(),
            "{o}"
        );
        assert!(
            l["p99"].as_f64().unwrap() <= l["max"].as_f64().unwrap(),
            "{o}"
        );
    }
    assert!(op(run, "check")["aggregate"].as_bool().unwrap());
    assert!(op(run, "lookup_resources")["items_mean"].as_f64().unwrap() >= 1.0);
    assert_eq!(
        std::fs::read_to_string(&run_json).unwrap().trim(),
        out.stdout.trim()
    );

    // Verification is real: against a dataset the server does not hold (another seed), the
    // expected answers differ, so wrong answers are counted and the exit code is 1.
    let mut wrong_args = run_args.clone();
    let seed = wrong_args.iter().position(|a| *a == "7").unwrap();
    wrong_args[seed] = "8";
    let out_path = wrong_args.iter().position(|a| *a == "--output").unwrap();
    wrong_args.drain(out_path..out_path + 2);
    let out = server.cli(&wrong_args);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = json(&out.stdout);
    assert!(
        report["runs"][0]["total"]["errors"]["WRONG_ANSWER"]
            .as_u64()
            .unwrap()
            > 0
    );

    // Repeated checks under at_least_as_fresh with writes: answers carried across revisions
    // by the check cache stay right.
    let out = server.cli(&with_tiny(&[
        "bench",
        "run",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--concurrency",
        "4",
        "--consistency",
        "at_least_as_fresh",
        "--mix",
        "check=3,check_bulk=1,write=1",
        "--hot-checks",
        "3",
        "--verify",
        "--json",
    ]));
    let report = json(out.ok());
    let run = &report["runs"][0];
    assert_eq!(run["hot_checks"], 3);
    assert_eq!(run["total"]["error_count"], 0, "{run}");

    // Table output names every operation.
    let out = server.cli(&with_tiny(&[
        "bench",
        "run",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
        "--mix",
        "check=1,write=1",
        "--concurrency",
        "2",
    ]));
    let table = out.ok();
    for needle in [
        "check.direct",
        "write",
        "total",
        "p99 ms",
        "client CPU",
        "load average",
    ] {
        assert!(table.contains(needle), "{needle}:\n{table}");
    }

    // The noop floor.
    let noop_json = dir.path().join("noop.json");
    let out = server.cli(&[
        "bench",
        "noop",
        "--duration",
        "1s",
        "--warmup",
        "100ms",
        "--concurrency",
        "2",
        "--json",
        "--output",
        noop_json.to_str().unwrap(),
    ]);
    let report = json(out.ok());
    let noop = &report["runs"][0];
    assert_eq!(noop["workload"], "noop");
    assert!(noop["total"]["count"].as_u64().unwrap() > 0);
    assert_eq!(noop["total"]["error_count"], 0);

    // Depth: every chain answers correctly.
    let depth_json = dir.path().join("depth.json");
    let out = server.cli(&[
        "bench",
        "depth",
        "--duration",
        "400ms",
        "--warmup",
        "0s",
        "--verify",
        "--json",
        "--output",
        depth_json.to_str().unwrap(),
    ]);
    let report = json(out.ok());
    let rows = report["depth"][0]["rows"].as_array().unwrap();
    let depths: Vec<u64> = rows.iter().map(|r| r["depth"].as_u64().unwrap()).collect();
    assert_eq!(depths, [1, 2, 4, 8, 16, 32]);
    for r in rows {
        for side in [
            "positive",
            "negative",
            "lookup_resources",
            "lookup_subjects",
        ] {
            assert!(r[side]["count"].as_u64().unwrap() > 0, "{r}");
            assert_eq!(r[side]["error_count"], 0, "{r}");
        }
    }

    // Large lookups one at a time: the heaviest user and document, every answer verified
    // exactly, paged lookups included.
    let out = server.cli(&with_tiny(&[
        "bench", "lookup", "--rounds", "2", "--pause", "0s", "--limit", "7", "--verify", "--json",
    ]));
    let report = json(out.ok());
    let run = &report["runs"][0];
    assert_eq!(run["workload"], "lookup");
    assert_eq!(run["total"]["error_count"], 0, "{run}");
    for name in [
        "lookup_resources",
        "lookup_resources.first",
        "lookup_resources.paged",
        "lookup_subjects",
    ] {
        assert_eq!(op(run, name)["count"], 2, "{name}: {run}");
    }
    assert!(op(run, "lookup_resources")["items_mean"].as_f64().unwrap() > 7.0);
    assert_eq!(
        op(run, "lookup_resources")["items_mean"],
        op(run, "lookup_resources.paged")["items_mean"]
    );

    // A small sweep: noop and checks at two concurrencies, no depth.
    let sweep_json = dir.path().join("sweep.json");
    let out = server.cli(&with_tiny(&[
        "bench",
        "sweep",
        "--concurrencies",
        "1,4",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
        "--no-depth",
        "--verify",
        "--output",
        sweep_json.to_str().unwrap(),
    ]));
    let table = out.ok();
    assert!(table.contains("check/noop p50"), "{table}");
    let report = json(&std::fs::read_to_string(&sweep_json).unwrap());
    let runs = report["runs"].as_array().unwrap();
    let shape: Vec<(String, u64)> = runs
        .iter()
        .map(|r| {
            (
                r["workload"].as_str().unwrap().to_string(),
                r["concurrency"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            ("noop".to_string(), 1),
            ("mix".to_string(), 1),
            ("noop".to_string(), 4),
            ("mix".to_string(), 4)
        ]
    );

    // Plots from every report.
    let plots = dir.path().join("plots");
    let out = tessera_plot(&[&run_json, &noop_json, &depth_json, &sweep_json], &plots);
    out.ok();
    for name in [
        "latency-by-operation.svg",
        "latency-by-depth.svg",
        "throughput-by-concurrency.svg",
        "latency-by-concurrency.svg",
    ] {
        let svg = std::fs::read_to_string(plots.join(name)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
    }
    let ops = std::fs::read_to_string(plots.join("latency-by-operation.svg")).unwrap();
    assert!(ops.contains("lookup_resources") && ops.contains("noop (health)"));

    // Bad input is a usage error, not a panic.
    let out = server.cli(&["bench", "run", "--mix", "check=x"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("--mix"), "{}", out.stderr);
    let out = tessera_plot(&[&dir.path().join("missing.json")], &plots);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("missing.json"), "{}", out.stderr);
}

fn tessera_plot(inputs: &[&std::path::Path], out: &std::path::Path) -> cli_support::Run {
    let mut cmd = cli_support::tessera();
    cmd.args(["bench", "plot", "--out"]).arg(out).arg("--input");
    for i in inputs {
        cmd.arg(i);
    }
    cmd.output().unwrap().into()
}
