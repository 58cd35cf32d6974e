//! `bench lookup`: the latency of large lookups, one request at a time.
//!
//! Each round sends, with a pause between requests (so one request's tail does not queue the
//! next one's start on a 2-core machine):
//! - LookupResources of every document a user can view, unpaged: the whole stream
//!   (`lookup_resources`) and the first result (`lookup_resources.first`);
//! - the same lookup read page by page with `optional_limit` and the cursors
//!   (`lookup_resources.paged`: all pages together);
//! - LookupSubjects of every user who can view a document (`lookup_subjects`).
//!
//! The user and the document default to the dataset's heaviest (the most viewable documents,
//! the most viewers), computed from the model, which also knows the exact answers (`--verify`).
//! With `--metrics-url` (a Prometheus endpoint exporting the gRPC server metrics of the Go
//! middleware, as Tessera and the reference server do), the server's own handling time of each
//! request is recorded too (`….server` rows), read from `grpc_server_handling_seconds_sum`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::api::proto::authzed::api::v1 as pb;
use crate::cli::CliError;
use crate::cli::client::{Connection, code_name};

use super::dataset::{Dataset, document_id, user_id};
use super::report::{CpuMeter, OpRecord, RunResult, WRONG_ANSWER};
use super::workload::{document_ref, user_ref};

/// What a lookup measurement needs besides the connection.
#[derive(Debug, Clone)]
pub struct LookupPlan {
    /// The user whose documents are looked up, and how many they can view.
    pub user: u32,
    pub user_documents: Vec<u32>,
    /// The document whose viewers are looked up, and who they are.
    pub document: u32,
    pub document_viewers: Vec<u32>,
    /// Page size of the paged LookupResources.
    pub page_limit: u32,
    pub rounds: u32,
    pub pause: Duration,
    pub verify: bool,
    pub timeout: Duration,
    /// A Prometheus endpoint of the server (`http://host:port/metrics`).
    pub metrics_url: Option<String>,
    pub consistency: pb::Consistency,
}

/// The server's cumulative handling time of one gRPC method, from its metrics endpoint.
async fn server_seconds(url: &str, method: &str) -> Result<f64, CliError> {
    let url = url.to_string();
    let text = tokio::task::spawn_blocking(move || fetch_metrics(&url))
        .await
        .map_err(|e| CliError::Failed(format!("reading the metrics failed: {e}")))??;
    Ok(handling_seconds(&text, method))
}

/// The sum of `grpc_server_handling_seconds_sum` over the series of `method`.
fn handling_seconds(text: &str, method: &str) -> f64 {
    let needle = format!("grpc_method=\"{method}\"");
    text.lines()
        .filter(|l| l.starts_with("grpc_server_handling_seconds_sum{") && l.contains(&needle))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A plain HTTP/1.0 GET of `url` (`http://host:port/path`), returning the body.
fn fetch_metrics(url: &str) -> Result<String, CliError> {
    use std::io::{Read, Write};
    let bad = || {
        CliError::Usage(format!(
            "--metrics-url `{url}` is not http://HOST:PORT/PATH"
        ))
    };
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let mut stream = std::net::TcpStream::connect(host)
        .map_err(|e| CliError::io(format!("cannot connect to `{url}`"), e))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| CliError::io("metrics connection", e))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")
        .map_err(|e| CliError::io(format!("cannot read `{url}`"), e))?;
    let mut body = String::new();
    stream
        .read_to_string(&mut body)
        .map_err(|e| CliError::io(format!("cannot read `{url}`"), e))?;
    match body.split_once("\r\n\r\n") {
        Some((head, rest)) if head.starts_with("HTTP/1.") && head.contains(" 200") => {
            Ok(rest.to_string())
        }
        _ => Err(CliError::Failed(format!("`{url}` did not answer 200 OK"))),
    }
}

/// One lookup's results and timings.
struct Streamed {
    ids: Vec<String>,
    first: Option<Duration>,
    total: Duration,
    pages: u32,
}

async fn lookup_resources(
    conn: &mut Connection,
    plan: &LookupPlan,
    limit: u32,
) -> Result<Streamed, tonic::Status> {
    let started = Instant::now();
    let mut ids = Vec::new();
    let mut first = None;
    let mut cursor: Option<pb::Cursor> = None;
    let mut pages = 0;
    loop {
        let req = pb::LookupResourcesRequest {
            consistency: Some(plan.consistency.clone()),
            resource_object_type: "document".into(),
            permission: "view".into(),
            subject: Some(user_ref(user_id(plan.user))),
            context: None,
            optional_limit: limit,
            optional_cursor: cursor.take(),
            with_debug: false,
        };
        let mut stream = conn.permissions.lookup_resources(req).await?.into_inner();
        pages += 1;
        let mut in_page = 0u32;
        while let Some(msg) = stream.message().await? {
            if first.is_none() {
                first = Some(started.elapsed());
            }
            in_page += 1;
            ids.push(msg.resource_object_id);
            cursor = msg.after_result_cursor;
        }
        if limit == 0 || in_page < limit || cursor.is_none() {
            break;
        }
    }
    Ok(Streamed {
        ids,
        first,
        total: started.elapsed(),
        pages,
    })
}

async fn lookup_subjects(
    conn: &mut Connection,
    plan: &LookupPlan,
) -> Result<Streamed, tonic::Status> {
    let started = Instant::now();
    let req = pb::LookupSubjectsRequest {
        consistency: Some(plan.consistency.clone()),
        resource: Some(document_ref(document_id(plan.document))),
        permission: "view".into(),
        subject_object_type: "user".into(),
        optional_subject_relation: String::new(),
        context: None,
        optional_concrete_limit: 0,
        optional_cursor: None,
        wildcard_option: 0,
    };
    let mut stream = conn.permissions.lookup_subjects(req).await?.into_inner();
    let mut ids = Vec::new();
    let mut first = None;
    while let Some(msg) = stream.message().await? {
        if first.is_none() {
            first = Some(started.elapsed());
        }
        #[allow(deprecated)] // servers predating `subject` fill the deprecated field only
        let id = match msg.subject {
            Some(s) => s.subject_object_id,
            None => msg.subject_object_id,
        };
        ids.push(id);
    }
    Ok(Streamed {
        ids,
        first,
        total: started.elapsed(),
        pages: 1,
    })
}

/// Whether `ids` are exactly `want` (in any order).
fn same_ids(ids: &[String], want: &[String]) -> bool {
    let mut got: Vec<&str> = ids.iter().map(String::as_str).collect();
    got.sort_unstable();
    let mut want: Vec<&str> = want.iter().map(String::as_str).collect();
    want.sort_unstable();
    got == want
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The measured rows, keyed by operation name.
#[derive(Default)]
struct Rows(BTreeMap<&'static str, OpRecord>);

impl Rows {
    fn sample(&mut self, op: &'static str, d: Duration, items: u64) {
        let r = self.0.entry(op).or_default();
        r.samples_ns.push(nanos(d));
        r.items += items;
    }

    fn error(&mut self, op: &'static str, code: &str) {
        self.0.entry(op).or_default().error(code);
    }

    /// Records one lookup: its latency, first result, server time; or its failure.
    #[allow(clippy::too_many_arguments)] // reason: a private recorder of one measured call
    fn record(
        &mut self,
        op: &'static str,
        first_op: Option<&'static str>,
        server_op: &'static str,
        result: Result<Streamed, tonic::Status>,
        want: &[String],
        verify: bool,
        server: Option<f64>,
    ) -> Option<u32> {
        match result {
            Err(status) => {
                self.error(op, code_name(status.code()));
                None
            }
            Ok(s) if verify && !same_ids(&s.ids, want) => {
                self.error(op, WRONG_ANSWER);
                None
            }
            Ok(s) => {
                let n = s.ids.len() as u64;
                self.sample(op, s.total, n);
                if let (Some(first_op), Some(first)) = (first_op, s.first) {
                    self.sample(first_op, first, 0);
                }
                if let Some(secs) = server {
                    self.sample(server_op, Duration::from_secs_f64(secs.max(0.0)), n);
                }
                Some(s.pages)
            }
        }
    }
}

/// Runs the rounds of a lookup measurement over `conn`.
pub async fn run_lookups(conn: &mut Connection, plan: &LookupPlan) -> Result<RunResult, CliError> {
    let docs: Vec<String> = plan
        .user_documents
        .iter()
        .map(|&n| document_id(n))
        .collect();
    let users: Vec<String> = plan.document_viewers.iter().map(|&n| user_id(n)).collect();
    let metrics = plan.metrics_url.as_deref();
    let server = |method: &'static str| async move {
        match metrics {
            Some(url) => server_seconds(url, method).await.map(Some),
            None => Ok(None),
        }
    };
    let mut rows = Rows::default();
    let mut pages = 0u64;
    let meter = CpuMeter::start();
    let started = Instant::now();
    for _ in 0..plan.rounds {
        let before = server("LookupResources").await?;
        let r = lookup_resources(conn, plan, 0).await;
        let after = server("LookupResources").await?;
        let spent = before.zip(after).map(|(b, a)| a - b);
        rows.record(
            "lookup_resources",
            Some("lookup_resources.first"),
            "lookup_resources.server",
            r,
            &docs,
            plan.verify,
            spent,
        );
        tokio::time::sleep(plan.pause).await;

        let before = server("LookupResources").await?;
        let r = lookup_resources(conn, plan, plan.page_limit).await;
        let after = server("LookupResources").await?;
        let spent = before.zip(after).map(|(b, a)| a - b);
        if let Some(p) = rows.record(
            "lookup_resources.paged",
            Some("lookup_resources.paged.first"),
            "lookup_resources.paged.server",
            r,
            &docs,
            plan.verify,
            spent,
        ) {
            pages += u64::from(p);
        }
        tokio::time::sleep(plan.pause).await;

        let before = server("LookupSubjects").await?;
        let r = lookup_subjects(conn, plan).await;
        let after = server("LookupSubjects").await?;
        let spent = before.zip(after).map(|(b, a)| a - b);
        rows.record(
            "lookup_subjects",
            Some("lookup_subjects.first"),
            "lookup_subjects.server",
            r,
            &users,
            plan.verify,
            spent,
        );
        tokio::time::sleep(plan.pause).await;
    }
    let window_s = started.elapsed().as_secs_f64();
    let cpu = meter.stop(window_s);
    let operations: Vec<_> = rows.0.iter().map(|(op, r)| r.stats(op, window_s)).collect();
    let mut all = OpRecord::default();
    for r in rows.0.values() {
        all.merge(r);
    }
    let mut total = all.stats("total", window_s);
    total.aggregate = true;
    let paged_rounds = operations
        .iter()
        .find(|o| o.operation == "lookup_resources.paged")
        .map_or(0, |o| o.count);
    let mix = format!(
        "user u{} ({} documents), document d{} ({} viewers), page limit {}, {} pages per paged lookup",
        plan.user,
        plan.user_documents.len(),
        plan.document,
        plan.document_viewers.len(),
        plan.page_limit,
        pages.checked_div(paged_rounds).unwrap_or(0)
    );
    Ok(RunResult {
        workload: "lookup".into(),
        concurrency: 1,
        connections: 1,
        client_threads: 1,
        consistency: None,
        mix: Some(mix),
        dataset: None,
        verify: plan.verify,
        hot_checks: None,
        warmup_s: 0.0,
        duration_s: window_s,
        client_cpu: cpu,
        operations,
        total,
    })
}

/// The subjects of a lookup measurement and their exact answers.
#[derive(Debug, Clone)]
pub struct Targets {
    pub user: u32,
    /// The documents `user` can view.
    pub user_documents: Vec<u32>,
    pub document: u32,
    /// The users who can view `document`.
    pub document_viewers: Vec<u32>,
}

/// Picks the user and document of a lookup measurement (the heaviest unless given).
pub fn pick_targets(
    dataset: &Dataset,
    user: Option<u32>,
    document: Option<u32>,
) -> Result<Targets, CliError> {
    let spec = dataset.spec();
    if user.is_some_and(|u| u >= spec.users) {
        return Err(CliError::Usage(format!(
            "--user must be below --users ({})",
            spec.users
        )));
    }
    if document.is_some_and(|d| d >= spec.documents) {
        return Err(CliError::Usage(format!(
            "--document must be below --documents ({})",
            spec.documents
        )));
    }
    let model = dataset.lookup_model();
    let user = user.unwrap_or_else(|| model.heaviest_user().0);
    let document = document.unwrap_or_else(|| model.heaviest_document().0);
    Ok(Targets {
        user,
        user_documents: model.viewable_documents(user),
        document,
        document_viewers: model.document_viewers(document),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_time_is_read_from_the_handling_histogram() {
        let text = "\
# TYPE grpc_server_handling_seconds histogram
grpc_server_handling_seconds_bucket{grpc_method=\"LookupResources\",le=\"0.1\"} 3
grpc_server_handling_seconds_sum{grpc_method=\"LookupResources\",grpc_service=\"x\",grpc_type=\"server_stream\"} 0.25
grpc_server_handling_seconds_sum{grpc_method=\"LookupSubjects\",grpc_service=\"x\",grpc_type=\"server_stream\"} 1.5
grpc_server_handling_seconds_count{grpc_method=\"LookupResources\"} 3
";
        assert_eq!(handling_seconds(text, "LookupResources"), 0.25);
        assert_eq!(handling_seconds(text, "LookupSubjects"), 1.5);
        assert_eq!(handling_seconds(text, "CheckPermission"), 0.0);
    }

    #[test]
    fn ids_compare_in_any_order() {
        let a = vec!["d2".to_string(), "d1".to_string()];
        let b = vec!["d1".to_string(), "d2".to_string()];
        assert!(same_ids(&a, &b));
        assert!(!same_ids(&a, &b[..1]));
    }
}
