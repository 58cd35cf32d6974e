//! Latency samples, their statistics, the JSON report and its text rendering.
//!
//! Every latency sample is kept (nanoseconds, 8 bytes each: a 20-second run at 50k requests
//! per second is 8 MB), so percentiles are exact: the nearest-rank value of the sorted
//! samples (`p`-th percentile = the smallest sample with at least `p`% of the samples at or
//! below it).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::dataset::DatasetSpec;

/// The version of the JSON report layout (see the module docs of `bench`).
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// The error code recorded when `--verify` finds a wrong answer.
pub const WRONG_ANSWER: &str = "WRONG_ANSWER";

/// What one operation's requests produced during a measurement window.
#[derive(Debug, Clone, Default)]
pub struct OpRecord {
    /// Latencies of successful requests, in nanoseconds.
    pub samples_ns: Vec<u64>,
    /// Failed requests by gRPC code name (or [`WRONG_ANSWER`]).
    pub errors: BTreeMap<String, u64>,
    /// Items handled by successful requests (lookup results, bulk check items).
    pub items: u64,
}

impl OpRecord {
    /// Adds everything of `other`.
    pub fn merge(&mut self, other: &OpRecord) {
        self.samples_ns.extend_from_slice(&other.samples_ns);
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_insert(0) += n;
        }
        self.items += other.items;
    }

    /// Counts one failed request.
    pub fn error(&mut self, code: &str) {
        *self.errors.entry(code.to_string()).or_insert(0) += 1;
    }

    /// The statistics over a window of `window_s` seconds.
    pub fn stats(&self, operation: &str, window_s: f64) -> OpStats {
        let mut sorted = self.samples_ns.clone();
        sorted.sort_unstable();
        let error_count: u64 = self.errors.values().sum();
        let count = sorted.len() as u64;
        OpStats {
            operation: operation.to_string(),
            count,
            qps: if window_s > 0.0 {
                count as f64 / window_s
            } else {
                0.0
            },
            latency_ms: Latency::of_sorted(&sorted),
            error_count,
            errors: self.errors.clone(),
            items_mean: (self.items > 0 && count > 0).then(|| self.items as f64 / count as f64),
            aggregate: false,
        }
    }
}

/// The nearest-rank percentile `p` (0 < p ≤ 100) of ascending `sorted` samples.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Latency statistics in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub mean: f64,
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latency {
    /// The statistics of ascending samples in nanoseconds; `None` without samples.
    pub fn of_sorted(sorted: &[u64]) -> Option<Latency> {
        let first = *sorted.first()?;
        let last = *sorted.last()?;
        let sum: u128 = sorted.iter().map(|&v| u128::from(v)).sum();
        let p = |q| percentile(sorted, q).map_or(0.0, ms);
        Some(Latency {
            mean: sum as f64 / sorted.len() as f64 / 1e6,
            min: ms(first),
            p50: p(50.0),
            p95: p(95.0),
            p99: p(99.0),
            max: ms(last),
        })
    }
}

/// The statistics of one operation (or an aggregate of several).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpStats {
    /// `check.direct`, `check.nested_group`, `check.folder_parent`, `check.negative`,
    /// `check_bulk`, `lookup_resources`, `lookup_subjects`, `write`, `noop`; aggregates:
    /// `check` (all check kinds) and `total`; in depth results `depth{D}.positive`/`.negative`.
    pub operation: String,
    /// Successful requests in the window.
    pub count: u64,
    /// Successful requests per second of the window.
    pub qps: f64,
    /// Latency of the successful requests; `null` when there were none.
    pub latency_ms: Option<Latency>,
    /// Failed requests (gRPC errors and wrong answers).
    pub error_count: u64,
    /// Failed requests by gRPC code name, or `WRONG_ANSWER`.
    pub errors: BTreeMap<String, u64>,
    /// Mean results per lookup, or items per bulk check.
    #[serde(default)]
    pub items_mean: Option<f64>,
    /// Whether this row merges other rows (`check`, `total`).
    #[serde(default)]
    pub aggregate: bool,
}

/// The CPU time this client process used during the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClientCpu {
    /// User plus system CPU seconds.
    pub seconds: f64,
    /// `seconds` over the window, as a percentage of one core (200 = two cores busy).
    pub percent_of_one_core: f64,
}

/// The machine the client ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub os: String,
    pub arch: String,
    /// Logical CPUs available to the client.
    pub cpus: u32,
    /// `/proc/loadavg` (1, 5, 15 minutes) before and after the measurement (Linux only).
    pub load_average_before: Option<[f64; 3]>,
    pub load_average_after: Option<[f64; 3]>,
}

impl Machine {
    /// The current machine, with the load average now as "before".
    pub fn current() -> Machine {
        Machine {
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            load_average_before: load_average(),
            load_average_after: None,
        }
    }
}

/// One measured workload at one concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// `mix` (the operations of `mix`) or `noop` (health checks).
    pub workload: String,
    /// Requests in flight at any time.
    pub concurrency: u32,
    /// HTTP/2 connections the requests were spread over.
    pub connections: u32,
    /// Worker threads of the client's runtime.
    pub client_threads: u32,
    /// `minimize_latency`, `full` or `at_least_as_fresh`; `null` for noop.
    pub consistency: Option<String>,
    /// The canonical mix (percent per operation); `null` for noop.
    pub mix: Option<String>,
    /// The dataset the expectations came from; `null` for noop.
    pub dataset: Option<DatasetSpec>,
    /// Whether answers were verified (wrong answers count as `WRONG_ANSWER` errors).
    pub verify: bool,
    /// Checks drawn from a fixed set of this many per kind (`--hot-checks`); absent: from the
    /// whole dataset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hot_checks: Option<u32>,
    pub warmup_s: f64,
    /// The measured window (after warm-up).
    pub duration_s: f64,
    /// `null` where the process CPU time cannot be read (non-Linux).
    pub client_cpu: Option<ClientCpu>,
    /// One row per operation, then the `check` aggregate when several check kinds ran.
    pub operations: Vec<OpStats>,
    /// Every operation together.
    pub total: OpStats,
}

impl RunResult {
    /// The statistics of all checks: the `check` aggregate, or the only check kind.
    pub fn check_stats(&self) -> Option<&OpStats> {
        self.operations
            .iter()
            .find(|o| o.operation == "check")
            .or_else(|| {
                let mut checks = self
                    .operations
                    .iter()
                    .filter(|o| o.operation.starts_with("check."));
                let first = checks.next()?;
                checks.next().is_none().then_some(first)
            })
    }

    /// The statistics of one operation by name.
    pub fn operation(&self, name: &str) -> Option<&OpStats> {
        self.operations.iter().find(|o| o.operation == name)
    }
}

/// Check latency by nesting depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthResult {
    pub concurrency: u32,
    pub connections: u32,
    pub consistency: String,
    pub verify: bool,
    /// Warm-up and measured window per depth.
    pub warmup_s: f64,
    pub duration_s: f64,
    pub client_cpu: Option<ClientCpu>,
    pub rows: Vec<DepthRow>,
}

/// Requests over the chain of one depth: checks of the member at the bottom (allowed) and of a
/// user outside the chain (denied, which explores the whole chain), and both lookups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepthRow {
    pub depth: u32,
    pub positive: OpStats,
    pub negative: OpStats,
    /// LookupResources of the bottom member's documents (one: the chain's document).
    #[serde(default)]
    pub lookup_resources: Option<OpStats>,
    /// LookupSubjects of the chain's document (one: the bottom member).
    #[serde(default)]
    pub lookup_subjects: Option<OpStats>,
}

/// The JSON document `bench run|noop|depth|sweep --json` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `tessera bench VERSION`.
    pub tool: String,
    /// `run`, `noop`, `depth` or `sweep`.
    pub command: String,
    pub endpoint: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub machine: Machine,
    /// Mixed and noop runs.
    #[serde(default)]
    pub runs: Vec<RunResult>,
    /// Depth measurements.
    #[serde(default)]
    pub depth: Vec<DepthResult>,
}

impl Report {
    /// An empty report for `command` against `endpoint`, stamped now.
    pub fn new(command: &str, endpoint: &str) -> Report {
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            tool: format!("tessera bench {}", env!("CARGO_PKG_VERSION")),
            command: command.to_string(),
            endpoint: endpoint.to_string(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            machine: Machine::current(),
            runs: Vec::new(),
            depth: Vec::new(),
        }
    }

    /// Stamps the load average at the end.
    pub fn finish(&mut self) {
        self.machine.load_average_after = load_average();
    }

    /// Every error of every run and depth row.
    pub fn error_count(&self) -> u64 {
        let runs: u64 = self.runs.iter().map(|r| r.total.error_count).sum();
        let depth: u64 = self
            .depth
            .iter()
            .flat_map(|d| &d.rows)
            .map(|r| {
                r.positive.error_count
                    + r.negative.error_count
                    + r.lookup_resources.as_ref().map_or(0, |s| s.error_count)
                    + r.lookup_subjects.as_ref().map_or(0, |s| s.error_count)
            })
            .sum();
        runs + depth
    }
}

// ---- process and machine figures -----------------------------------------------------------

/// Clock ticks per second of `/proc` times (`USER_HZ`): 100 on every mainstream Linux ABI.
/// (Reading `sysconf(_SC_CLK_TCK)` would need `libc` and unsafe code, which the crate forbids.)
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds of this process so far (all threads, including finished
/// ones); `None` where `/proc/self/stat` is not available.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_proc_stat_cpu(&stat)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line, in seconds.
fn parse_proc_stat_cpu(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

/// The 1, 5 and 15 minute load averages; `None` where `/proc/loadavg` is not available.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Measures the client's CPU time over a window.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    start: Option<f64>,
}

impl CpuMeter {
    /// Starts measuring now.
    pub fn start() -> CpuMeter {
        CpuMeter {
            start: process_cpu_seconds(),
        }
    }

    /// The CPU used since [`CpuMeter::start`], over a window of `window_s` seconds.
    pub fn stop(&self, window_s: f64) -> Option<ClientCpu> {
        let seconds = process_cpu_seconds()? - self.start?;
        Some(ClientCpu {
            seconds,
            percent_of_one_core: if window_s > 0.0 {
                seconds / window_s * 100.0
            } else {
                0.0
            },
        })
    }
}

// ---- text rendering ------------------------------------------------------------------------

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

fn table_header(out: &mut String, first: &str) {
    let _ = writeln!(
        out,
        "{first:<30} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "count", "qps", "mean ms", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"
    );
}

fn table_row(out: &mut String, label: &str, s: &OpStats) {
    let l = s.latency_ms.as_ref();
    let _ = writeln!(
        out,
        "{label:<30} {:>9} {:>10.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        s.count,
        s.qps,
        fmt_ms(l.map(|l| l.mean)),
        fmt_ms(l.map(|l| l.p50)),
        fmt_ms(l.map(|l| l.p95)),
        fmt_ms(l.map(|l| l.p99)),
        fmt_ms(l.map(|l| l.max)),
        s.error_count
    );
}

fn error_lines(out: &mut String, rows: &[&OpStats]) {
    for s in rows {
        if s.errors.is_empty() || s.aggregate {
            continue;
        }
        let list: Vec<String> = s.errors.iter().map(|(c, n)| format!("{c} ×{n}")).collect();
        let _ = writeln!(out, "  errors of {}: {}", s.operation, list.join(", "));
    }
}

fn cpu_line(cpu: Option<&ClientCpu>) -> String {
    match cpu {
        Some(c) => format!(
            "client CPU: {:.2} s user+system ({:.1}% of one core)",
            c.seconds, c.percent_of_one_core
        ),
        None => "client CPU: n/a (needs Linux /proc)".into(),
    }
}

/// The table of one run.
pub fn render_run(run: &RunResult) -> String {
    let mut out = String::new();
    let consistency = run.consistency.as_deref().unwrap_or("n/a");
    let _ = writeln!(
        out,
        "{} workload: concurrency {} over {} connection(s), {} client thread(s), consistency {}, \
         {:.1} s measured after {:.1} s warm-up{}",
        run.workload,
        run.concurrency,
        run.connections,
        run.client_threads,
        consistency,
        run.duration_s,
        run.warmup_s,
        if run.verify { ", answers verified" } else { "" }
    );
    if let Some(mix) = &run.mix {
        let _ = writeln!(out, "mix (% of requests): {mix}");
    }
    table_header(&mut out, "operation");
    for s in &run.operations {
        table_row(&mut out, &s.operation, s);
    }
    table_row(&mut out, "total", &run.total);
    let rows: Vec<&OpStats> = run.operations.iter().collect();
    error_lines(&mut out, &rows);
    let items: Vec<String> = run
        .operations
        .iter()
        .filter_map(|s| s.items_mean.map(|m| format!("{} {m:.1}", s.operation)))
        .collect();
    if !items.is_empty() {
        let _ = writeln!(out, "mean items per request: {}", items.join(", "));
    }
    let _ = writeln!(out, "{}", cpu_line(run.client_cpu.as_ref()));
    out
}

/// The table of a depth measurement.
pub fn render_depth(depth: &DepthResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "check and lookup latency by nesting depth: concurrency {} over {} connection(s), consistency {}, \
         {:.1} s per depth after {:.1} s warm-up{}",
        depth.concurrency,
        depth.connections,
        depth.consistency,
        depth.duration_s,
        depth.warmup_s,
        if depth.verify {
            ", answers verified"
        } else {
            ""
        }
    );
    table_header(&mut out, "depth / expected");
    let mut rows = Vec::new();
    for r in &depth.rows {
        table_row(&mut out, &format!("{:>2} allowed", r.depth), &r.positive);
        table_row(&mut out, &format!("{:>2} denied", r.depth), &r.negative);
        rows.push(&r.positive);
        rows.push(&r.negative);
        if let Some(s) = &r.lookup_resources {
            table_row(&mut out, &format!("{:>2} lookup_resources", r.depth), s);
            rows.push(s);
        }
        if let Some(s) = &r.lookup_subjects {
            table_row(&mut out, &format!("{:>2} lookup_subjects", r.depth), s);
            rows.push(s);
        }
    }
    error_lines(&mut out, &rows);
    let _ = writeln!(out, "{}", cpu_line(depth.client_cpu.as_ref()));
    out
}

/// The headline of a sweep: check and noop side by side per concurrency.
pub fn render_sweep_summary(report: &Report) -> String {
    let mut out = String::new();
    let mut concurrencies: Vec<u32> = report.runs.iter().map(|r| r.concurrency).collect();
    concurrencies.sort_unstable();
    concurrencies.dedup();
    let _ = writeln!(
        out,
        "{:>11} {:>10} {:>9} {:>9} {:>10} {:>9} {:>9} {:>14} {:>10}",
        "concurrency",
        "check qps",
        "p50 ms",
        "p99 ms",
        "noop qps",
        "p50 ms",
        "p99 ms",
        "check/noop p50",
        "client CPU"
    );
    for c in concurrencies {
        let check = report
            .runs
            .iter()
            .find(|r| r.concurrency == c && r.workload == "mix")
            .and_then(|r| r.check_stats().map(|s| (r, s)));
        let noop = report
            .runs
            .iter()
            .find(|r| r.concurrency == c && r.workload == "noop")
            .map(|r| &r.total);
        let lat = |s: Option<&OpStats>, f: fn(&Latency) -> f64| {
            fmt_ms(s.and_then(|s| s.latency_ms.as_ref()).map(f))
        };
        let check_stats = check.map(|(_, s)| s);
        let ratio = match (
            check_stats.and_then(|s| s.latency_ms),
            noop.and_then(|s| s.latency_ms),
        ) {
            (Some(c), Some(n)) if n.p50 > 0.0 => format!("{:.2}×", c.p50 / n.p50),
            _ => "-".into(),
        };
        let cpu = check.and_then(|(r, _)| r.client_cpu).map_or_else(
            || "n/a".into(),
            |c| format!("{:.0}%", c.percent_of_one_core),
        );
        let _ = writeln!(
            out,
            "{c:>11} {:>10} {:>9} {:>9} {:>10} {:>9} {:>9} {ratio:>14} {cpu:>10}",
            check_stats.map_or_else(|| "-".into(), |s| format!("{:.1}", s.qps)),
            lat(check_stats, |l| l.p50),
            lat(check_stats, |l| l.p99),
            noop.map_or_else(|| "-".into(), |s| format!("{:.1}", s.qps)),
            lat(noop, |l| l.p50),
            lat(noop, |l| l.p99),
        );
    }
    out
}

/// The machine line printed under text reports.
pub fn render_machine(m: &Machine) -> String {
    let load = |l: Option<[f64; 3]>| {
        l.map_or_else(
            || "n/a".into(),
            |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]),
        )
    };
    format!(
        "machine: {} {}, {} CPUs; load average before {}, after {}\n",
        m.os,
        m.arch,
        m.cpus,
        load(m.load_average_before),
        load(m.load_average_after)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 95.0), Some(95));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.1), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 51.0), Some(3));
        assert_eq!(percentile(&[], 50.0), None);
        // 1000 samples: p99 is the 990th, so the 10 slowest are above it.
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 99.0), Some(990));
    }

    #[test]
    fn stats_of_a_record() {
        let mut r = OpRecord {
            samples_ns: vec![3_000_000, 1_000_000, 2_000_000, 4_000_000],
            items: 8,
            ..OpRecord::default()
        };
        r.error("UNAVAILABLE");
        r.error(WRONG_ANSWER);
        r.error(WRONG_ANSWER);
        let s = r.stats("check.direct", 2.0);
        assert_eq!(s.count, 4);
        assert_eq!(s.qps, 2.0);
        assert_eq!(s.error_count, 3);
        assert_eq!(s.errors[WRONG_ANSWER], 2);
        assert_eq!(s.items_mean, Some(2.0));
        let l = s.latency_ms.unwrap();
        assert_eq!((l.min, l.p50, l.max, l.mean), (1.0, 2.0, 4.0, 2.5));
        let empty = OpRecord::default().stats("noop", 1.0);
        assert_eq!((empty.count, empty.latency_ms), (0, None));

        let mut merged = OpRecord::default();
        merged.merge(&r);
        merged.merge(&r);
        assert_eq!(merged.samples_ns.len(), 8);
        assert_eq!(merged.errors[WRONG_ANSWER], 4);
    }

    #[test]
    fn proc_stat_cpu_fields() {
        // The command may contain spaces and parentheses.
        let line = "1234 (tessera (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 100 0 0";
        assert_eq!(parse_proc_stat_cpu(line), Some(3.0));
        assert_eq!(parse_proc_stat_cpu("garbage"), None);
        if cfg!(target_os = "linux") {
            assert!(process_cpu_seconds().is_some());
            assert!(load_average().is_some());
        }
    }

    #[test]
    fn report_round_trips_through_json() {
        let mut report = Report::new("run", "http://127.0.0.1:1");
        let rec = OpRecord {
            samples_ns: vec![1_000_000],
            ..OpRecord::default()
        };
        let stats = rec.stats("check.direct", 1.0);
        report.runs.push(RunResult {
            workload: "mix".into(),
            concurrency: 1,
            connections: 1,
            client_threads: 1,
            consistency: Some("full".into()),
            mix: Some("check.direct=100.0000".into()),
            dataset: Some(DatasetSpec::default()),
            verify: true,
            hot_checks: None,
            warmup_s: 0.0,
            duration_s: 1.0,
            client_cpu: None,
            operations: vec![stats.clone()],
            total: OpStats {
                operation: "total".into(),
                aggregate: true,
                ..stats
            },
        });
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
        assert_eq!(
            back.runs[0].check_stats().unwrap().operation,
            "check.direct"
        );
        let text = render_run(&back.runs[0]);
        assert!(text.contains("check.direct"), "{text}");
        assert!(render_sweep_summary(&back).contains("1.000"));
    }
}
