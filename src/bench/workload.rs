//! The load driver: concurrent workers sending `authzed.api.v1` requests over a pool of HTTP/2
//! connections, with warm-up, a measurement window and per-operation records.
//!
//! Each worker is one tokio task with its own request in flight, its own random stream and its
//! own records (no shared state on the hot path except the zookie of `at_least_as_fresh`). A
//! request counts when it *starts* inside the measurement window; its latency runs from just
//! before the call to the end of its response (the last message of a stream).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clap::ValueEnum;
use parking_lot::RwLock;
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::api::proto::authzed::api::v1 as pb;
use crate::cli::CliError;
use crate::cli::client::{Bearer, ClientArgs, Connection, code_name};
use pb::check_permission_response::Permissionship;
use pb::permissions_service_client::PermissionsServiceClient;

use super::dataset::{
    CHAIN_OUTSIDER, CheckKind, CheckSample, Dataset, HotChecks, chain_document_id, chain_user_id,
    document_id, user_id,
};
use super::mix::{Mix, Operation};
use super::prng::SplitMix64;
use super::report::{
    ClientCpu, CpuMeter, DepthResult, DepthRow, OpRecord, OpStats, RunResult, WRONG_ANSWER,
};

type Svc = InterceptedService<Channel, Bearer>;
type Permissions = PermissionsServiceClient<Svc>;
type Health = HealthClient<Svc>;

/// The consistency the read requests of a workload ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchConsistency {
    /// Any recent snapshot (the server's fastest answer).
    #[value(name = "minimize_latency", alias = "minimize-latency")]
    MinimizeLatency,
    /// The newest data.
    #[value(name = "full", alias = "fully_consistent", alias = "fully-consistent")]
    Full,
    /// At least as fresh as the newest write this client has seen (read-your-writes).
    #[value(name = "at_least_as_fresh", alias = "at-least-as-fresh")]
    AtLeastAsFresh,
}

impl BenchConsistency {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            BenchConsistency::MinimizeLatency => "minimize_latency",
            BenchConsistency::Full => "full",
            BenchConsistency::AtLeastAsFresh => "at_least_as_fresh",
        }
    }
}

/// Produces the `Consistency` of each request; for `at_least_as_fresh`, the newest zookie
/// returned to this client (the initial probe's, then each write's).
#[derive(Debug, Clone)]
struct ConsistencySource {
    mode: BenchConsistency,
    token: Arc<RwLock<String>>,
}

impl ConsistencySource {
    fn new(mode: BenchConsistency, token: String) -> Self {
        ConsistencySource {
            mode,
            token: Arc::new(RwLock::new(token)),
        }
    }

    fn get(&self) -> pb::Consistency {
        use pb::consistency::Requirement;
        let requirement = match self.mode {
            BenchConsistency::MinimizeLatency => Requirement::MinimizeLatency(true),
            BenchConsistency::Full => Requirement::FullyConsistent(true),
            BenchConsistency::AtLeastAsFresh => Requirement::AtLeastAsFresh(pb::ZedToken {
                token: self.token.read().clone(),
            }),
        };
        pb::Consistency {
            requirement: Some(requirement),
        }
    }

    fn observe(&self, token: Option<pb::ZedToken>) {
        if self.mode == BenchConsistency::AtLeastAsFresh
            && let Some(t) = token
            && !t.token.is_empty()
        {
            *self.token.write() = t.token;
        }
    }
}

/// The consistency of a one-at-a-time measurement: for `at_least_as_fresh`, the zookie of a
/// schema read now.
pub async fn lookup_consistency(
    conn: &mut Connection,
    mode: BenchConsistency,
) -> Result<pb::Consistency, CliError> {
    let token = if mode == BenchConsistency::AtLeastAsFresh {
        conn.schema
            .read_schema(pb::ReadSchemaRequest {})
            .await
            .map_err(|st| conn.error(st))?
            .into_inner()
            .read_at
            .map(|z| z.token)
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(ConsistencySource::new(mode, token).get())
}

/// Opens `n` connections (each its own HTTP/2 connection).
pub async fn connect(args: &ClientArgs, n: u32) -> Result<Vec<Connection>, CliError> {
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n.max(1) {
        out.push(Connection::open(args).await?);
    }
    Ok(out)
}

/// The warm-up and measurement window of a run.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub duration: Duration,
}

/// How one request ended.
enum Outcome {
    Ok { items: u64 },
    Failed(&'static str),
}

/// One request: what it was, how long it took, how it ended.
struct Step<K> {
    key: K,
    latency: Duration,
    outcome: Outcome,
}

/// A source of requests, one in flight at a time.
trait Worker: Send + 'static {
    type Key: Ord + Clone + Send + 'static;
    fn step(&mut self) -> impl Future<Output = Step<Self::Key>> + Send;
}

/// Records merged over every worker.
struct Measured<K> {
    records: BTreeMap<K, OpRecord>,
    window_s: f64,
    cpu: Option<ClientCpu>,
}

/// Runs every worker until the window ends and merges their records.
async fn drive<W: Worker>(workers: Vec<W>, window: Window) -> Result<Measured<W::Key>, CliError> {
    let start = Instant::now();
    let measure_start = start + window.warmup;
    let end = measure_start + window.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for mut worker in workers {
        tasks.spawn(async move {
            let mut records: BTreeMap<W::Key, OpRecord> = BTreeMap::new();
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let step = worker.step().await;
                if started >= measure_start {
                    let record = records.entry(step.key).or_default();
                    match step.outcome {
                        Outcome::Ok { items } => {
                            record
                                .samples_ns
                                .push(u64::try_from(step.latency.as_nanos()).unwrap_or(u64::MAX));
                            record.items += items;
                        }
                        Outcome::Failed(code) => record.error(code),
                    }
                }
            }
            records
        });
    }
    tokio::time::sleep_until(measure_start).await;
    let meter = CpuMeter::start();
    tokio::time::sleep_until(end).await;
    let window_s = window.duration.as_secs_f64();
    let cpu = meter.stop(window_s);
    let mut records: BTreeMap<W::Key, OpRecord> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let worker_records =
            joined.map_err(|e| CliError::Failed(format!("a benchmark worker failed: {e}")))?;
        for (key, record) in worker_records {
            records.entry(key).or_default().merge(&record);
        }
    }
    Ok(Measured {
        records,
        window_s,
        cpu,
    })
}

/// Awaits a call with a deadline, mapping failures to gRPC code names.
async fn timed<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, tonic::Status>>,
) -> (Duration, Result<T, &'static str>) {
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout, call).await {
        Err(_) => Err("DEADLINE_EXCEEDED"),
        Ok(Err(status)) => Err(code_name(status.code())),
        Ok(Ok(v)) => Ok(v),
    };
    (started.elapsed(), result)
}

/// The outcome of a streamed lookup: its failure, a wrong answer (when verifying and
/// `correct` rejects the ids), or the number of results.
fn streamed_outcome(
    result: Result<(u64, Vec<String>), &'static str>,
    verify: bool,
    correct: impl FnOnce(&[String]) -> bool,
) -> Outcome {
    match result {
        Err(code) => Outcome::Failed(code),
        Ok((_, ids)) if verify && !correct(&ids) => Outcome::Failed(WRONG_ANSWER),
        Ok((count, _)) => Outcome::Ok { items: count },
    }
}

pub(super) fn document_ref(id: String) -> pb::ObjectReference {
    pb::ObjectReference {
        object_type: "document".into(),
        object_id: id,
    }
}

pub(super) fn user_ref(id: String) -> pb::SubjectReference {
    pb::SubjectReference {
        object: Some(pb::ObjectReference {
            object_type: "user".into(),
            object_id: id,
        }),
        optional_relation: String::new(),
    }
}

fn check_request(
    consistency: pb::Consistency,
    document: String,
    user: String,
) -> pb::CheckPermissionRequest {
    pb::CheckPermissionRequest {
        consistency: Some(consistency),
        resource: Some(document_ref(document)),
        permission: "view".into(),
        subject: Some(user_ref(user)),
        context: None,
        with_tracing: false,
    }
}

fn allowed(permissionship: i32) -> bool {
    permissionship == Permissionship::HasPermission as i32
}

// ---- the mixed workload --------------------------------------------------------------------

/// What a mixed run needs to know besides the connections.
#[derive(Debug, Clone)]
pub struct MixPlan {
    pub dataset: Arc<Dataset>,
    pub mix: Mix,
    pub concurrency: u32,
    pub consistency: BenchConsistency,
    pub verify: bool,
    /// Items per CheckBulkPermissions request.
    pub bulk_size: u32,
    /// Draw checks (single and bulk items) from a fixed set of this many per kind; 0: from
    /// the whole dataset.
    pub hot_checks: u32,
    pub timeout: Duration,
    pub window: Window,
    /// Worker threads of the runtime (for the report).
    pub client_threads: u32,
}

struct MixWorker {
    client: Permissions,
    dataset: Arc<Dataset>,
    mix: Arc<Mix>,
    rng: SplitMix64,
    consistency: ConsistencySource,
    verify: bool,
    bulk_size: u32,
    hot: Option<Arc<HotChecks>>,
    timeout: Duration,
    task: u32,
    writes: u64,
    /// The relationship this worker touched last and deletes on its next write.
    pending_delete: Option<pb::Relationship>,
}

impl MixWorker {
    fn judge(&self, ok: bool) -> Outcome {
        if self.verify && !ok {
            Outcome::Failed(WRONG_ANSWER)
        } else {
            Outcome::Ok { items: 0 }
        }
    }

    fn sample(&mut self, kind: CheckKind) -> CheckSample {
        match &self.hot {
            Some(hot) => hot.pick(kind, &mut self.rng),
            None => self.dataset.sample_check(kind, &mut self.rng),
        }
    }

    async fn check(&mut self, kind: CheckKind) -> (Duration, Outcome) {
        let s = self.sample(kind);
        let req = check_request(
            self.consistency.get(),
            document_id(s.document),
            user_id(s.user),
        );
        let (latency, r) = timed(self.timeout, self.client.check_permission(req)).await;
        let outcome = match r {
            Err(code) => Outcome::Failed(code),
            Ok(resp) => self.judge(allowed(resp.into_inner().permissionship) == s.expected),
        };
        (latency, outcome)
    }

    async fn check_bulk(&mut self) -> (Duration, Outcome) {
        let samples: Vec<CheckSample> = (0..self.bulk_size)
            .map(|i| {
                let kind = CheckKind::ALL[i as usize % CheckKind::ALL.len()];
                self.sample(kind)
            })
            .collect();
        let items = samples
            .iter()
            .map(|s| pb::CheckBulkPermissionsRequestItem {
                resource: Some(document_ref(document_id(s.document))),
                permission: "view".into(),
                subject: Some(user_ref(user_id(s.user))),
                context: None,
            })
            .collect();
        let req = pb::CheckBulkPermissionsRequest {
            consistency: Some(self.consistency.get()),
            items,
            with_tracing: false,
        };
        let (latency, r) = timed(self.timeout, self.client.check_bulk_permissions(req)).await;
        let outcome = match r {
            Err(code) => Outcome::Failed(code),
            Ok(resp) => {
                let pairs = resp.into_inner().pairs;
                let mut failed = None;
                let mut right = pairs.len() == samples.len();
                for (pair, s) in pairs.iter().zip(&samples) {
                    use pb::check_bulk_permissions_pair::Response;
                    match &pair.response {
                        Some(Response::Item(item)) => {
                            right &= allowed(item.permissionship) == s.expected;
                        }
                        Some(Response::Error(status)) => {
                            failed = Some(code_name(tonic::Code::from(status.code)));
                        }
                        None => right = false,
                    }
                }
                match failed {
                    Some(code) => Outcome::Failed(code),
                    None if self.verify && !right => Outcome::Failed(WRONG_ANSWER),
                    None => Outcome::Ok {
                        items: samples.len() as u64,
                    },
                }
            }
        };
        (latency, outcome)
    }

    async fn lookup_resources(&mut self) -> (Duration, Outcome) {
        let s = self.dataset.sample_positive(&mut self.rng);
        let req = pb::LookupResourcesRequest {
            consistency: Some(self.consistency.get()),
            resource_object_type: "document".into(),
            permission: "view".into(),
            subject: Some(user_ref(user_id(s.user))),
            context: None,
            optional_limit: 0,
            optional_cursor: None,
            with_debug: false,
        };
        let verify = self.verify;
        let client = &mut self.client;
        let (latency, r) = timed(self.timeout, async move {
            let mut stream = client.lookup_resources(req).await?.into_inner();
            let mut ids = Vec::new();
            let mut count = 0u64;
            while let Some(msg) = stream.message().await? {
                count += 1;
                if verify {
                    ids.push(msg.resource_object_id);
                }
            }
            Ok((count, ids))
        })
        .await;
        let outcome = streamed_outcome(r, verify, |ids| {
            self.dataset
                .verify_lookup_resources(&s, ids.iter().map(String::as_str))
                .is_ok()
        });
        (latency, outcome)
    }

    async fn lookup_subjects(&mut self) -> (Duration, Outcome) {
        let s = self.dataset.sample_positive(&mut self.rng);
        let req = pb::LookupSubjectsRequest {
            consistency: Some(self.consistency.get()),
            resource: Some(document_ref(document_id(s.document))),
            permission: "view".into(),
            subject_object_type: "user".into(),
            optional_subject_relation: String::new(),
            context: None,
            optional_concrete_limit: 0,
            optional_cursor: None,
            wildcard_option: 0,
        };
        let verify = self.verify;
        let client = &mut self.client;
        let (latency, r) = timed(self.timeout, async move {
            let mut stream = client.lookup_subjects(req).await?.into_inner();
            let mut ids = Vec::new();
            let mut count = 0u64;
            while let Some(msg) = stream.message().await? {
                count += 1;
                if verify {
                    #[allow(deprecated)]
                    let id = match msg.subject {
                        Some(subject) => subject.subject_object_id,
                        // Servers predating `subject` fill the deprecated field only.
                        None => msg.subject_object_id,
                    };
                    ids.push(id);
                }
            }
            Ok((count, ids))
        })
        .await;
        let outcome = streamed_outcome(r, verify, |ids| {
            self.dataset
                .verify_lookup_subjects(&s, ids.iter().map(String::as_str))
                .is_ok()
        });
        (latency, outcome)
    }

    /// TOUCHes a new viewer on a scratch document (`wdoc{task}-{n}`, never read by the other
    /// operations), or DELETEs the one touched before.
    async fn write(&mut self) -> (Duration, Outcome) {
        use pb::relationship_update::Operation as Op;
        let (operation, relationship) = match self.pending_delete.take() {
            Some(r) => (Op::Delete, r),
            None => {
                self.writes += 1;
                let r = pb::Relationship {
                    resource: Some(document_ref(format!(
                        "wdoc{}-{}",
                        self.task,
                        self.writes % 1000
                    ))),
                    relation: "viewer".into(),
                    subject: Some(user_ref(format!("writer{}", self.task))),
                    optional_caveat: None,
                    optional_expires_at: None,
                };
                self.pending_delete = Some(r.clone());
                (Op::Touch, r)
            }
        };
        let req = pb::WriteRelationshipsRequest {
            updates: vec![pb::RelationshipUpdate {
                operation: operation as i32,
                relationship: Some(relationship),
            }],
            optional_preconditions: Vec::new(),
            optional_transaction_metadata: None,
        };
        let (latency, r) = timed(self.timeout, self.client.write_relationships(req)).await;
        let outcome = match r {
            Err(code) => Outcome::Failed(code),
            Ok(resp) => {
                self.consistency.observe(resp.into_inner().written_at);
                Outcome::Ok { items: 0 }
            }
        };
        (latency, outcome)
    }
}

impl Worker for MixWorker {
    type Key = Operation;

    async fn step(&mut self) -> Step<Operation> {
        let op = self.mix.pick(self.rng.below(self.mix.total()));
        let (latency, outcome) = match op {
            Operation::Check(kind) => self.check(kind).await,
            Operation::CheckBulk => self.check_bulk().await,
            Operation::LookupResources => self.lookup_resources().await,
            Operation::LookupSubjects => self.lookup_subjects().await,
            Operation::Write => self.write().await,
            // Not in a mix (Mix::parse never yields it); answered by the health service.
            Operation::Noop => (Duration::ZERO, Outcome::Failed("UNIMPLEMENTED")),
        };
        Step {
            key: op,
            latency,
            outcome,
        }
    }
}

/// A fully consistent check of a known positive: its zookie starts `at_least_as_fresh`, and
/// a denial means the server does not hold this dataset (a warning, not an error).
async fn probe(conn: &mut Connection, dataset: &Dataset) -> Result<(String, bool), CliError> {
    let mut rng = SplitMix64::new(dataset.spec().seed);
    let s = dataset.sample_positive(&mut rng);
    let req = check_request(
        pb::Consistency {
            requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
        },
        document_id(s.document),
        user_id(s.user),
    );
    let resp = conn
        .permissions
        .check_permission(req)
        .await
        .map_err(|st| conn.error(st))?
        .into_inner();
    let token = resp.checked_at.map(|z| z.token).unwrap_or_default();
    Ok((token, allowed(resp.permissionship) == s.expected))
}

fn stats_rows<K: Ord>(
    records: &BTreeMap<K, OpRecord>,
    window_s: f64,
    name: impl Fn(&K) -> String,
) -> Vec<OpStats> {
    records
        .iter()
        .map(|(k, r)| r.stats(&name(k), window_s))
        .collect()
}

fn aggregate<'a>(
    name: &str,
    records: impl Iterator<Item = &'a OpRecord>,
    window_s: f64,
) -> OpStats {
    let mut all = OpRecord::default();
    for r in records {
        all.merge(r);
    }
    let mut s = all.stats(name, window_s);
    s.aggregate = true;
    s
}

/// Runs a mixed workload over `conns` (workers spread round-robin).
pub async fn run_mix(conns: &mut [Connection], plan: &MixPlan) -> Result<RunResult, CliError> {
    let Some(first) = conns.first_mut() else {
        return Err(CliError::Failed(
            "no connection to run the workload on".into(),
        ));
    };
    let (token, dataset_ok) = probe(first, &plan.dataset).await?;
    if !dataset_ok {
        eprintln!(
            "warning: a check that the dataset allows was denied: does the server hold the \
             dataset of these flags? (run `tessera bench load` with the same --seed and sizes)"
        );
    }
    let consistency = ConsistencySource::new(plan.consistency, token);
    let mix = Arc::new(plan.mix.clone());
    let seed = plan.dataset.spec().seed;
    let hot =
        (plan.hot_checks > 0).then(|| Arc::new(plan.dataset.hot_checks(plan.hot_checks, seed)));
    let workers: Vec<MixWorker> = (0..plan.concurrency)
        .map(|task| MixWorker {
            client: conns[task as usize % conns.len()].permissions.clone(),
            dataset: plan.dataset.clone(),
            mix: mix.clone(),
            rng: SplitMix64::stream(seed, u64::from(task) + 1),
            consistency: consistency.clone(),
            verify: plan.verify,
            bulk_size: plan.bulk_size,
            hot: hot.clone(),
            timeout: plan.timeout,
            task,
            writes: 0,
            pending_delete: None,
        })
        .collect();
    let mut measured = drive(workers, plan.window).await?;
    // Every operation of the mix gets a row, even one that never completed.
    for op in plan.mix.operations() {
        measured.records.entry(op).or_default();
    }
    let mut operations = stats_rows(&measured.records, measured.window_s, |op| {
        op.name().to_string()
    });
    let checks: Vec<&OpRecord> = measured
        .records
        .iter()
        .filter(|(op, _)| matches!(op, Operation::Check(_)))
        .map(|(_, r)| r)
        .collect();
    if checks.len() > 1 {
        operations.push(aggregate("check", checks.into_iter(), measured.window_s));
    }
    Ok(RunResult {
        workload: "mix".into(),
        concurrency: plan.concurrency,
        connections: conns.len() as u32,
        client_threads: plan.client_threads,
        consistency: Some(plan.consistency.name().into()),
        mix: Some(plan.mix.to_string()),
        dataset: Some(*plan.dataset.spec()),
        verify: plan.verify,
        hot_checks: (plan.hot_checks > 0).then_some(plan.hot_checks),
        warmup_s: plan.window.warmup.as_secs_f64(),
        duration_s: measured.window_s,
        client_cpu: measured.cpu,
        total: aggregate("total", measured.records.values(), measured.window_s),
        operations,
    })
}

// ---- noop ----------------------------------------------------------------------------------

struct NoopWorker {
    client: Health,
    timeout: Duration,
}

impl Worker for NoopWorker {
    type Key = Operation;

    async fn step(&mut self) -> Step<Operation> {
        let req = HealthCheckRequest {
            service: String::new(),
        };
        let (latency, r) = timed(self.timeout, self.client.check(req)).await;
        let outcome = match r {
            Err(code) => Outcome::Failed(code),
            Ok(resp) if resp.get_ref().status == ServingStatus::Serving as i32 => {
                Outcome::Ok { items: 0 }
            }
            Ok(_) => Outcome::Failed("NOT_SERVING"),
        };
        Step {
            key: Operation::Noop,
            latency,
            outcome,
        }
    }
}

/// Health checks (`grpc.health.v1.Health/Check`, service `""`) at `concurrency`: the
/// round-trip floor of the same connection setup.
pub async fn run_noop(
    conns: &[Connection],
    concurrency: u32,
    window: Window,
    timeout: Duration,
    client_threads: u32,
) -> Result<RunResult, CliError> {
    if conns.is_empty() {
        return Err(CliError::Failed(
            "no connection to run the workload on".into(),
        ));
    }
    let workers: Vec<NoopWorker> = (0..concurrency)
        .map(|task| NoopWorker {
            client: conns[task as usize % conns.len()].health.clone(),
            timeout,
        })
        .collect();
    let mut measured = drive(workers, window).await?;
    measured.records.entry(Operation::Noop).or_default();
    let operations = stats_rows(&measured.records, measured.window_s, |op| {
        op.name().to_string()
    });
    Ok(RunResult {
        workload: "noop".into(),
        concurrency,
        connections: conns.len() as u32,
        client_threads,
        consistency: None,
        mix: None,
        dataset: None,
        verify: false,
        hot_checks: None,
        warmup_s: window.warmup.as_secs_f64(),
        duration_s: measured.window_s,
        client_cpu: measured.cpu,
        total: aggregate("total", measured.records.values(), measured.window_s),
        operations,
    })
}

// ---- depth ---------------------------------------------------------------------------------

struct DepthWorker {
    client: Permissions,
    depth: u32,
    consistency: ConsistencySource,
    verify: bool,
    timeout: Duration,
    next: DepthOp,
}

/// The requests of a depth measurement, sent in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum DepthOp {
    /// The member at the bottom of the chain: allowed.
    Allowed,
    /// A user outside the chain: denied, after exploring all of it.
    Denied,
    /// LookupResources of the bottom member's documents: the chain's document.
    LookupResources,
    /// LookupSubjects of the chain's document: the bottom member.
    LookupSubjects,
}

impl DepthOp {
    fn after(self) -> DepthOp {
        match self {
            DepthOp::Allowed => DepthOp::Denied,
            DepthOp::Denied => DepthOp::LookupResources,
            DepthOp::LookupResources => DepthOp::LookupSubjects,
            DepthOp::LookupSubjects => DepthOp::Allowed,
        }
    }
}

impl DepthWorker {
    async fn check(&mut self, positive: bool) -> (Duration, Outcome) {
        let user = if positive {
            chain_user_id(self.depth)
        } else {
            CHAIN_OUTSIDER.to_string()
        };
        let req = check_request(self.consistency.get(), chain_document_id(self.depth), user);
        let (latency, r) = timed(self.timeout, self.client.check_permission(req)).await;
        let outcome = match r {
            Err(code) => Outcome::Failed(code),
            Ok(resp) if self.verify && allowed(resp.get_ref().permissionship) != positive => {
                Outcome::Failed(WRONG_ANSWER)
            }
            Ok(_) => Outcome::Ok { items: 0 },
        };
        (latency, outcome)
    }

    async fn lookup_resources(&mut self) -> (Duration, Outcome) {
        let req = pb::LookupResourcesRequest {
            consistency: Some(self.consistency.get()),
            resource_object_type: "document".into(),
            permission: "view".into(),
            subject: Some(user_ref(chain_user_id(self.depth))),
            context: None,
            optional_limit: 0,
            optional_cursor: None,
            with_debug: false,
        };
        let client = &mut self.client;
        let (latency, r) = timed(self.timeout, async move {
            let mut stream = client.lookup_resources(req).await?.into_inner();
            let mut ids = Vec::new();
            while let Some(msg) = stream.message().await? {
                ids.push(msg.resource_object_id);
            }
            Ok((ids.len() as u64, ids))
        })
        .await;
        let want = chain_document_id(self.depth);
        let outcome = streamed_outcome(r, self.verify, |ids| ids == [want]);
        (latency, outcome)
    }

    async fn lookup_subjects(&mut self) -> (Duration, Outcome) {
        let req = pb::LookupSubjectsRequest {
            consistency: Some(self.consistency.get()),
            resource: Some(document_ref(chain_document_id(self.depth))),
            permission: "view".into(),
            subject_object_type: "user".into(),
            optional_subject_relation: String::new(),
            context: None,
            optional_concrete_limit: 0,
            optional_cursor: None,
            wildcard_option: 0,
        };
        let client = &mut self.client;
        let (latency, r) = timed(self.timeout, async move {
            let mut stream = client.lookup_subjects(req).await?.into_inner();
            let mut ids = Vec::new();
            while let Some(msg) = stream.message().await? {
                #[allow(deprecated)] // servers predating `subject` fill the deprecated field
                let id = match msg.subject {
                    Some(subject) => subject.subject_object_id,
                    None => msg.subject_object_id,
                };
                ids.push(id);
            }
            Ok((ids.len() as u64, ids))
        })
        .await;
        let want = chain_user_id(self.depth);
        let outcome = streamed_outcome(r, self.verify, |ids| ids == [want]);
        (latency, outcome)
    }
}

impl Worker for DepthWorker {
    type Key = DepthOp;

    async fn step(&mut self) -> Step<DepthOp> {
        let op = self.next;
        self.next = op.after();
        let (latency, outcome) = match op {
            DepthOp::Allowed => self.check(true).await,
            DepthOp::Denied => self.check(false).await,
            DepthOp::LookupResources => self.lookup_resources().await,
            DepthOp::LookupSubjects => self.lookup_subjects().await,
        };
        Step {
            key: op,
            latency,
            outcome,
        }
    }
}

/// What a depth measurement needs besides the connections.
#[derive(Debug, Clone)]
pub struct DepthPlan {
    pub depths: Vec<u32>,
    pub concurrency: u32,
    pub consistency: BenchConsistency,
    pub verify: bool,
    pub timeout: Duration,
    /// Warm-up and measurement per depth.
    pub window: Window,
}

/// Check and lookup latency over the chains of each depth (allowed and denied checks and the
/// two lookups take turns).
pub async fn run_depth(
    conns: &mut [Connection],
    plan: &DepthPlan,
) -> Result<DepthResult, CliError> {
    let Some(first) = conns.first_mut() else {
        return Err(CliError::Failed(
            "no connection to run the workload on".into(),
        ));
    };
    // A fully consistent probe gives the zookie for at_least_as_fresh.
    let depth0 = plan.depths.first().copied().unwrap_or(1);
    let probe = first
        .permissions
        .check_permission(check_request(
            pb::Consistency {
                requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
            },
            chain_document_id(depth0),
            chain_user_id(depth0),
        ))
        .await
        .map_err(|st| first.error(st))?
        .into_inner();
    if !allowed(probe.permissionship) {
        eprintln!(
            "warning: `document:{}` is not viewable by `user:{}`: were the chains written by \
             `tessera bench load`?",
            chain_document_id(depth0),
            chain_user_id(depth0)
        );
    }
    let consistency = ConsistencySource::new(
        plan.consistency,
        probe.checked_at.map(|z| z.token).unwrap_or_default(),
    );
    let meter = CpuMeter::start();
    let started = Instant::now();
    let mut rows = Vec::new();
    for &depth in &plan.depths {
        let workers: Vec<DepthWorker> = (0..plan.concurrency)
            .map(|task| DepthWorker {
                client: conns[task as usize % conns.len()].permissions.clone(),
                depth,
                consistency: consistency.clone(),
                verify: plan.verify,
                timeout: plan.timeout,
                next: [
                    DepthOp::Allowed,
                    DepthOp::Denied,
                    DepthOp::LookupResources,
                    DepthOp::LookupSubjects,
                ][task as usize % 4],
            })
            .collect();
        let measured = drive(workers, plan.window).await?;
        let row = |op: DepthOp, what: &str| {
            measured
                .records
                .get(&op)
                .cloned()
                .unwrap_or_default()
                .stats(&format!("depth{depth}.{what}"), measured.window_s)
        };
        rows.push(DepthRow {
            depth,
            positive: row(DepthOp::Allowed, "positive"),
            negative: row(DepthOp::Denied, "negative"),
            lookup_resources: Some(row(DepthOp::LookupResources, "lookup_resources")),
            lookup_subjects: Some(row(DepthOp::LookupSubjects, "lookup_subjects")),
        });
    }
    // CPU over every depth's warm-up and window together.
    let cpu = meter.stop(started.elapsed().as_secs_f64());
    Ok(DepthResult {
        concurrency: plan.concurrency,
        connections: conns.len() as u32,
        consistency: plan.consistency.name().into(),
        verify: plan.verify,
        warmup_s: plan.window.warmup.as_secs_f64(),
        duration_s: plan.window.duration.as_secs_f64(),
        client_cpu: cpu,
        rows,
    })
}
