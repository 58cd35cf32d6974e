//! `tessera bench load|run|noop|depth|sweep|plot`: the load generator's command line.
//!
//! Every subcommand except `plot` talks to a server through the public `authzed.api.v1` API
//! only (`--endpoint`, `--token`), so the same commands measure Tessera, SpiceDB or any other
//! implementation. Tables go to stdout (or the JSON report with `--json`); `--output FILE`
//! also writes the JSON report to a file. Progress and warnings go to stderr.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::bench::BenchError;
use crate::bench::dataset::{CHAIN_DEPTHS, DATASET_VERSION, Dataset, DatasetSpec};
use crate::bench::load::{LoadOptions, load};
use crate::bench::lookups::{LookupPlan, pick_targets, run_lookups};
use crate::bench::mix::Mix;
use crate::bench::plot::charts;
use crate::bench::report::{
    Report, render_depth, render_machine, render_run, render_sweep_summary,
};
use crate::bench::workload::{
    BenchConsistency, DepthPlan, MixPlan, Window, connect, lookup_consistency, run_depth, run_mix,
    run_noop,
};

use super::client::{ClientArgs, Connection};
use super::config::parse_duration;
use super::error::{CliError, EXIT_FAILURE, EXIT_OK};

/// The default mix of `bench run`.
pub const DEFAULT_MIX: &str = "check=70,check_bulk=5,lookup_resources=5,lookup_subjects=5,write=15";

#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// Write the benchmark schema and a seeded synthetic dataset (plus deep-nesting chains)
    /// with TOUCH batches; re-running is harmless. Replaces the server's schema.
    Load(LoadArgs),
    /// Drive a mix of checks, bulk checks, lookups and writes for a while and report QPS and
    /// latency percentiles per operation.
    Run(RunArgs),
    /// Measure the round-trip floor: health checks over the same connection setup.
    Noop(NoopArgs),
    /// Measure check latency over group chains of increasing nesting depth.
    Depth(DepthArgs),
    /// Measure large lookups one at a time: LookupResources of every document a user can view
    /// (whole stream, first result, and page by page) and LookupSubjects of a document.
    Lookup(LookupArgs),
    /// Run check workloads and the noop floor at several concurrencies (and the depth
    /// measurement) in one invocation, for one JSON report.
    Sweep(SweepArgs),
    /// Draw SVG charts from JSON reports.
    Plot(PlotArgs),
}

/// The seed and sizes of the dataset (`load` writes it, `run` regenerates its model).
#[derive(Debug, Clone, Args)]
pub struct DatasetArgs {
    /// Seed of the generator: the same seed and sizes give the same relationships.
    #[arg(long, default_value_t = 42, value_name = "N")]
    pub seed: u64,
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub users: u32,
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub groups: u32,
    /// Levels of group nesting.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub group_depth: u32,
    #[arg(long, default_value_t = 5_000, value_name = "N")]
    pub folders: u32,
    /// Levels of the folder tree.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub folder_depth: u32,
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub documents: u32,
}

impl DatasetArgs {
    fn spec(&self) -> DatasetSpec {
        DatasetSpec {
            version: DATASET_VERSION,
            seed: self.seed,
            users: self.users,
            groups: self.groups,
            group_depth: self.group_depth,
            folders: self.folders,
            folder_depth: self.folder_depth,
            documents: self.documents,
        }
    }

    fn generate(&self) -> Result<Dataset, CliError> {
        Dataset::generate(self.spec()).map_err(usage)
    }
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Updates per WriteRelationships request (the API's default limit is 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    pub batch_size: u32,
    /// WriteRelationships requests in flight.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256), value_name = "N")]
    pub parallel: u32,
    /// Depths of the group chains for `bench depth`.
    #[arg(long, value_delimiter = ',', default_values_t = CHAIN_DEPTHS, value_name = "D,…")]
    pub chain_depths: Vec<u32>,
    /// Do not write the schema (it is already in place).
    #[arg(long)]
    pub skip_schema: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags shared by the measuring subcommands.
#[derive(Debug, Clone, Args)]
pub struct DriverArgs {
    /// HTTP/2 connections to spread requests over [default: min(concurrency, 4)].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024), value_name = "N")]
    pub connections: Option<u32>,
    /// Worker threads of the client [default: the CPU count, at most 4].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256), value_name = "N")]
    pub client_threads: Option<u32>,
    /// Deadline of each request (a request over it counts as DEADLINE_EXCEEDED).
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Print the JSON report instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Measured time (after the warm-up).
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Duration,
    /// Time before measuring (requests are sent, not counted).
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub warmup: Duration,
    /// Requests in flight.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    pub concurrency: u32,
    /// Operations and their weights.
    #[arg(long, default_value = DEFAULT_MIX, value_name = "OP=W,…")]
    pub mix: String,
    /// Consistency of the reads.
    #[arg(long, value_enum, default_value_t = BenchConsistency::MinimizeLatency, value_name = "MODE")]
    pub consistency: BenchConsistency,
    /// Check every answer against the dataset; wrong answers count as WRONG_ANSWER errors and
    /// the exit code is 1 when any request failed.
    #[arg(long)]
    pub verify: bool,
    /// Items per CheckBulkPermissions request.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000), value_name = "N")]
    pub bulk_size: u32,
    /// Draw checks (single ones and bulk items) from a fixed set of N per check kind, the same
    /// for every worker, instead of from the whole dataset: a workload whose checks repeat.
    /// 0: the whole dataset.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=1_000_000), value_name = "N")]
    pub hot_checks: u32,
    #[command(flatten)]
    pub driver: DriverArgs,
}

#[derive(Debug, Clone, Args)]
pub struct NoopArgs {
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Duration,
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub warmup: Duration,
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    pub concurrency: u32,
    #[command(flatten)]
    pub driver: DriverArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DepthArgs {
    /// Chain depths to measure (written by `bench load --chain-depths`).
    #[arg(long, value_delimiter = ',', default_values_t = CHAIN_DEPTHS, value_name = "D,…")]
    pub depths: Vec<u32>,
    /// Measured time per depth.
    #[arg(long, default_value = "3s", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Duration,
    /// Warm-up per depth.
    #[arg(long, default_value = "500ms", value_parser = parse_duration, value_name = "DURATION")]
    pub warmup: Duration,
    /// Requests in flight (1: sequential latency).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    pub concurrency: u32,
    #[arg(long, value_enum, default_value_t = BenchConsistency::MinimizeLatency, value_name = "MODE")]
    pub consistency: BenchConsistency,
    /// Check every answer (allowed at the bottom of the chain, denied outside it).
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub driver: DriverArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LookupArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// The user whose documents are looked up [default: the user who can view the most].
    #[arg(long, value_name = "N")]
    pub user: Option<u32>,
    /// The document whose viewers are looked up [default: the one with the most viewers].
    #[arg(long, value_name = "N")]
    pub document: Option<u32>,
    /// Page size (`optional_limit`) of the paged LookupResources.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    pub limit: u32,
    /// Rounds (each: an unpaged and a paged LookupResources, one LookupSubjects).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000), value_name = "N")]
    pub rounds: u32,
    /// Pause between requests.
    #[arg(long, default_value = "200ms", value_parser = parse_duration, value_name = "DURATION")]
    pub pause: Duration,
    #[arg(long, value_enum, default_value_t = BenchConsistency::MinimizeLatency, value_name = "MODE")]
    pub consistency: BenchConsistency,
    /// Check every answer against the dataset's exact result.
    #[arg(long)]
    pub verify: bool,
    /// The server's Prometheus endpoint (`http://HOST:PORT/metrics`): also report the server's
    /// own handling time of each lookup, from `grpc_server_handling_seconds_sum`.
    #[arg(long, value_name = "URL")]
    pub metrics_url: Option<String>,
    #[command(flatten)]
    pub driver: DriverArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Concurrencies to measure, each with the mix and with noop.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 8, 64], value_name = "N,…")]
    pub concurrencies: Vec<u32>,
    /// Measured time of each run.
    #[arg(long, default_value = "20s", value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Duration,
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    pub warmup: Duration,
    /// The workload at each concurrency (checks of every kind by default).
    #[arg(long, default_value = "check=100", value_name = "OP=W,…")]
    pub mix: String,
    #[arg(long, value_enum, default_value_t = BenchConsistency::MinimizeLatency, value_name = "MODE")]
    pub consistency: BenchConsistency,
    #[arg(long)]
    pub verify: bool,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000), value_name = "N")]
    pub bulk_size: u32,
    /// Skip the noop runs.
    #[arg(long)]
    pub no_noop: bool,
    /// Skip the depth measurement.
    #[arg(long)]
    pub no_depth: bool,
    /// Chain depths of the depth measurement.
    #[arg(long, value_delimiter = ',', default_values_t = CHAIN_DEPTHS, value_name = "D,…")]
    pub depths: Vec<u32>,
    /// Measured time per depth.
    #[arg(long, default_value = "3s", value_parser = parse_duration, value_name = "DURATION")]
    pub depth_duration: Duration,
    /// Requests in flight during the depth measurement.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    pub depth_concurrency: u32,
    #[command(flatten)]
    pub driver: DriverArgs,
}

#[derive(Debug, Clone, Args)]
pub struct PlotArgs {
    /// JSON reports written by `bench run|noop|depth|sweep --json/--output`.
    #[arg(long, short, required = true, num_args = 1.., value_name = "FILE")]
    pub input: Vec<PathBuf>,
    /// Directory for the SVG files (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn usage(e: BenchError) -> CliError {
    match e {
        BenchError::Report { .. } => CliError::Failed(e.to_string()),
        _ => CliError::Usage(e.to_string()),
    }
}

fn client_threads(driver: Option<&DriverArgs>) -> u32 {
    driver.and_then(|d| d.client_threads).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
    })
}

/// Runs a future on a multi-threaded runtime with `threads` workers.
fn block_on<F, T>(threads: u32, future: F) -> Result<T, CliError>
where
    F: std::future::Future<Output = Result<T, CliError>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1) as usize)
        .enable_all()
        .build()
        .map_err(|e| CliError::io("cannot start the async runtime", e))?;
    runtime.block_on(future)
}

fn connections(driver: &DriverArgs, concurrency: u32) -> u32 {
    driver.connections.unwrap_or(concurrency.clamp(1, 4))
}

fn check_depths(depths: &[u32]) -> Result<(), CliError> {
    if depths.is_empty() {
        return Err(CliError::Usage("--depths is empty".into()));
    }
    if let Some(d) = depths.iter().find(|d| !(1..=1000).contains(*d)) {
        return Err(CliError::Usage(format!(
            "depth `{d}` must be between 1 and 1000"
        )));
    }
    Ok(())
}

/// Prints the report (tables or JSON), writes `--output`, and picks the exit code.
fn emit(
    report: &mut Report,
    driver: &DriverArgs,
    tables: String,
    fail_on_errors: bool,
) -> Result<u8, CliError> {
    report.finish();
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| CliError::Failed(format!("cannot encode the report: {e}")))?;
    if let Some(path) = &driver.output {
        std::fs::write(path, format!("{json}\n"))
            .map_err(|e| CliError::io(format!("cannot write `{}`", path.display()), e))?;
    }
    if driver.json {
        println!("{json}");
    } else {
        print!("{tables}{}", render_machine(&report.machine));
    }
    let errors = report.error_count();
    if fail_on_errors && errors > 0 {
        eprintln!("error: {errors} request(s) failed or were answered wrongly");
        return Ok(EXIT_FAILURE);
    }
    Ok(EXIT_OK)
}

/// Runs `tessera bench …`; returns the exit code.
pub fn run(command: &BenchCommand) -> Result<u8, CliError> {
    match command {
        BenchCommand::Load(args) => run_load(args),
        BenchCommand::Run(args) => run_run(args),
        BenchCommand::Noop(args) => run_noop_cmd(args),
        BenchCommand::Depth(args) => run_depth_cmd(args),
        BenchCommand::Lookup(args) => run_lookup_cmd(args),
        BenchCommand::Sweep(args) => run_sweep(args),
        BenchCommand::Plot(args) => run_plot(args),
    }
}

fn run_load(args: &LoadArgs) -> Result<u8, CliError> {
    check_depths(&args.chain_depths)?;
    let dataset = args.dataset.generate()?;
    let options = LoadOptions {
        batch_size: args.batch_size as usize,
        parallel: args.parallel as usize,
        quiet: args.quiet,
        skip_schema: args.skip_schema,
        chain_depths: args.chain_depths.clone(),
    };
    let threads = client_threads(None);
    let summary = block_on(threads, async {
        let mut conns = connect(&args.client, args.parallel.min(4)).await?;
        load(&mut conns, &dataset, &options).await
    })?;
    let spec = dataset.spec();
    if let Some(z) = &summary.schema_zookie {
        println!("schema written (zookie {z})");
    }
    println!(
        "dataset v{} seed {}: {} users, {} groups (depth {}), {} folders (depth {}), {} documents",
        spec.version,
        spec.seed,
        spec.users,
        spec.groups,
        spec.group_depth,
        spec.folders,
        spec.folder_depth,
        spec.documents
    );
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "wrote {} relationships with TOUCH in {} batches of ≤{} ({} in flight) in {:.1} s ({:.0} relationships/s)",
        summary.total,
        summary.batches,
        args.batch_size,
        args.parallel,
        secs,
        if secs > 0.0 {
            summary.total as f64 / secs
        } else {
            0.0
        }
    );
    for (relation, n) in &summary.by_relation {
        println!("  {relation:<20} {n:>9}");
    }
    let depths: Vec<String> = args.chain_depths.iter().map(u32::to_string).collect();
    println!(
        "  {:<20} {:>9}",
        format!("chains {}", depths.join(",")),
        summary.chain_relationships
    );
    println!("zookie: {}", summary.zookie);
    Ok(EXIT_OK)
}

fn run_run(args: &RunArgs) -> Result<u8, CliError> {
    let mix = Mix::parse(&args.mix).map_err(usage)?;
    let dataset = Arc::new(args.dataset.generate()?);
    let mut report = Report::new("run", &args.driver.client.endpoint);
    let threads = client_threads(Some(&args.driver));
    let plan = MixPlan {
        dataset,
        mix,
        concurrency: args.concurrency,
        consistency: args.consistency,
        verify: args.verify,
        bulk_size: args.bulk_size,
        hot_checks: args.hot_checks,
        timeout: args.driver.timeout,
        window: Window {
            warmup: args.warmup,
            duration: args.duration,
        },
        client_threads: threads,
    };
    let n = connections(&args.driver, args.concurrency);
    let run = block_on(threads, async {
        let mut conns = connect(&args.driver.client, n).await?;
        run_mix(&mut conns, &plan).await
    })?;
    let tables = render_run(&run);
    report.runs.push(run);
    emit(&mut report, &args.driver, tables, args.verify)
}

fn run_noop_cmd(args: &NoopArgs) -> Result<u8, CliError> {
    let mut report = Report::new("noop", &args.driver.client.endpoint);
    let threads = client_threads(Some(&args.driver));
    let n = connections(&args.driver, args.concurrency);
    let window = Window {
        warmup: args.warmup,
        duration: args.duration,
    };
    let run = block_on(threads, async {
        let conns = connect(&args.driver.client, n).await?;
        run_noop(
            &conns,
            args.concurrency,
            window,
            args.driver.timeout,
            threads,
        )
        .await
    })?;
    let tables = render_run(&run);
    report.runs.push(run);
    emit(&mut report, &args.driver, tables, false)
}

fn run_depth_cmd(args: &DepthArgs) -> Result<u8, CliError> {
    check_depths(&args.depths)?;
    let mut report = Report::new("depth", &args.driver.client.endpoint);
    let threads = client_threads(Some(&args.driver));
    let n = connections(&args.driver, args.concurrency);
    let plan = DepthPlan {
        depths: args.depths.clone(),
        concurrency: args.concurrency,
        consistency: args.consistency,
        verify: args.verify,
        timeout: args.driver.timeout,
        window: Window {
            warmup: args.warmup,
            duration: args.duration,
        },
    };
    let depth = block_on(threads, async {
        let mut conns = connect(&args.driver.client, n).await?;
        run_depth(&mut conns, &plan).await
    })?;
    let tables = render_depth(&depth);
    report.depth.push(depth);
    emit(&mut report, &args.driver, tables, args.verify)
}

fn run_lookup_cmd(args: &LookupArgs) -> Result<u8, CliError> {
    let dataset = args.dataset.generate()?;
    if args.user.is_none() || args.document.is_none() {
        eprintln!("finding the heaviest user and document of the dataset…");
    }
    let targets = pick_targets(&dataset, args.user, args.document)?;
    let mut report = Report::new("lookup", &args.driver.client.endpoint);
    let threads = client_threads(Some(&args.driver));
    let run = block_on(threads, async {
        let mut conn = Connection::open(&args.driver.client).await?;
        let consistency = lookup_consistency(&mut conn, args.consistency).await?;
        let plan = LookupPlan {
            user: targets.user,
            user_documents: targets.user_documents,
            document: targets.document,
            document_viewers: targets.document_viewers,
            page_limit: args.limit,
            rounds: args.rounds,
            pause: args.pause,
            verify: args.verify,
            timeout: args.driver.timeout,
            metrics_url: args.metrics_url.clone(),
            consistency,
        };
        run_lookups(&mut conn, &plan).await
    })?;
    let mut run = run;
    run.dataset = Some(*dataset.spec());
    run.consistency = Some(args.consistency.name().into());
    let tables = render_run(&run);
    report.runs.push(run);
    emit(&mut report, &args.driver, tables, args.verify)
}

fn run_sweep(args: &SweepArgs) -> Result<u8, CliError> {
    let mix = Mix::parse(&args.mix).map_err(usage)?;
    if args.concurrencies.is_empty() || args.concurrencies.contains(&0) {
        return Err(CliError::Usage(
            "--concurrencies must list numbers of at least 1".into(),
        ));
    }
    if !args.no_depth {
        check_depths(&args.depths)?;
    }
    let dataset = Arc::new(args.dataset.generate()?);
    let threads = client_threads(Some(&args.driver));
    let window = Window {
        warmup: args.warmup,
        duration: args.duration,
    };
    let mut report = Report::new("sweep", &args.driver.client.endpoint);
    let mut tables = String::new();
    block_on(threads, async {
        for &c in &args.concurrencies {
            let n = connections(&args.driver, c);
            let mut conns = connect(&args.driver.client, n).await?;
            if !args.no_noop {
                eprintln!("noop at concurrency {c}…");
                let run = run_noop(&conns, c, window, args.driver.timeout, threads).await?;
                tables.push_str(&render_run(&run));
                tables.push('\n');
                report.runs.push(run);
            }
            eprintln!("{} at concurrency {c}…", args.mix);
            let plan = MixPlan {
                dataset: dataset.clone(),
                mix: mix.clone(),
                concurrency: c,
                consistency: args.consistency,
                verify: args.verify,
                bulk_size: args.bulk_size,
                hot_checks: 0,
                timeout: args.driver.timeout,
                window,
                client_threads: threads,
            };
            let run = run_mix(&mut conns, &plan).await?;
            tables.push_str(&render_run(&run));
            tables.push('\n');
            report.runs.push(run);
        }
        if !args.no_depth {
            eprintln!("depth {:?}…", args.depths);
            let c = args.depth_concurrency;
            let mut conns = connect(&args.driver.client, connections(&args.driver, c)).await?;
            let plan = DepthPlan {
                depths: args.depths.clone(),
                concurrency: c,
                consistency: args.consistency,
                verify: args.verify,
                timeout: args.driver.timeout,
                window: Window {
                    warmup: Duration::from_millis(500).min(args.warmup),
                    duration: args.depth_duration,
                },
            };
            let depth = run_depth(&mut conns, &plan).await?;
            tables.push_str(&render_depth(&depth));
            tables.push('\n');
            report.depth.push(depth);
        }
        Ok(())
    })?;
    tables.push_str("summary (check = all check kinds of the mix; noop = health check):\n");
    tables.push_str(&render_sweep_summary(&report));
    emit(&mut report, &args.driver, tables, args.verify)
}

fn run_plot(args: &PlotArgs) -> Result<u8, CliError> {
    let mut reports = Vec::new();
    for path in &args.input {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::io(format!("cannot read `{}`", path.display()), e))?;
        let report: Report = serde_json::from_str(&text).map_err(|e| {
            usage(BenchError::Report {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        })?;
        reports.push(report);
    }
    let figures = charts(&reports).map_err(usage)?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| CliError::io(format!("cannot create `{}`", args.out.display()), e))?;
    for (name, svg) in figures {
        let path = args.out.join(name);
        std::fs::write(&path, svg)
            .map_err(|e| CliError::io(format!("cannot write `{}`", path.display()), e))?;
        println!("{}", path.display());
    }
    Ok(EXIT_OK)
}
