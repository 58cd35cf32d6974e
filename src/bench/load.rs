//! `bench load`: writes the schema, the generated relationships and the deep-nesting chains
//! through WriteSchema and WriteRelationships.
//!
//! Relationships go in batches of TOUCH updates (idempotent, so a load can be re-run or
//! resumed), several batches in flight; a batch failing with a transient code (`UNAVAILABLE`,
//! `ABORTED`, `RESOURCE_EXHAUSTED`) is retried a few times with a growing pause. The chains
//! are written last, after every other batch was acknowledged, so the zookie of that final
//! write covers the whole dataset.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::api::proto::authzed::api::v1 as pb;
use crate::cli::CliError;
use crate::cli::client::{Bearer, Connection, status_error};
use pb::permissions_service_client::PermissionsServiceClient;

type Permissions = PermissionsServiceClient<InterceptedService<Channel, Bearer>>;

use super::dataset::{Dataset, SCHEMA, Tuple, chain_relationships};

/// Retries of a batch that failed with a transient code.
const RETRIES: u32 = 4;

/// How `bench load` writes.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Updates per WriteRelationships request.
    pub batch_size: usize,
    /// Requests in flight.
    pub parallel: usize,
    /// Do not draw a progress bar.
    pub quiet: bool,
    /// Do not write the schema (it is already there).
    pub skip_schema: bool,
    /// Depths of the chains to write.
    pub chain_depths: Vec<u32>,
}

/// What `bench load` wrote.
#[derive(Debug, Clone)]
pub struct LoadSummary {
    /// Zookie of the schema write (when written).
    pub schema_zookie: Option<String>,
    /// Relationships per `type#relation`, chains counted separately.
    pub by_relation: BTreeMap<String, u64>,
    pub chain_relationships: u64,
    pub total: u64,
    pub batches: u64,
    pub elapsed: Duration,
    /// The zookie of the last write: reading at least as fresh as it sees everything.
    pub zookie: String,
}

fn to_proto(t: &Tuple) -> pb::RelationshipUpdate {
    pb::RelationshipUpdate {
        operation: pb::relationship_update::Operation::Touch as i32,
        relationship: Some(pb::Relationship {
            resource: Some(pb::ObjectReference {
                object_type: t.resource_type.into(),
                object_id: t.resource_id.clone(),
            }),
            relation: t.relation.into(),
            subject: Some(pb::SubjectReference {
                object: Some(pb::ObjectReference {
                    object_type: t.subject_type.into(),
                    object_id: t.subject_id.clone(),
                }),
                optional_relation: t.subject_relation.unwrap_or_default().into(),
            }),
            optional_caveat: None,
            optional_expires_at: None,
        }),
    }
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    // The stderr target draws nothing when stderr is not a terminal.
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} relationships ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// One WriteRelationships call with retries of transient failures.
async fn write_batch(
    client: &mut Permissions,
    endpoint: &str,
    updates: Vec<pb::RelationshipUpdate>,
) -> Result<String, CliError> {
    let mut attempt = 0;
    loop {
        let req = pb::WriteRelationshipsRequest {
            updates: updates.clone(),
            optional_preconditions: Vec::new(),
            optional_transaction_metadata: None,
        };
        match client.write_relationships(req).await {
            Ok(resp) => {
                return Ok(resp
                    .into_inner()
                    .written_at
                    .map(|z| z.token)
                    .unwrap_or_default());
            }
            Err(status)
                if attempt < RETRIES
                    && matches!(
                        status.code(),
                        tonic::Code::Unavailable
                            | tonic::Code::Aborted
                            | tonic::Code::ResourceExhausted
                    ) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            Err(status) => return Err(status_error(endpoint, status)),
        }
    }
}

/// Writes the schema, the dataset and the chains over `conns` (batches spread round-robin).
pub async fn load(
    conns: &mut [Connection],
    dataset: &Dataset,
    options: &LoadOptions,
) -> Result<LoadSummary, CliError> {
    if conns.is_empty() {
        return Err(CliError::Failed("no connection to load through".into()));
    }
    let started = Instant::now();
    let schema_zookie = if options.skip_schema {
        None
    } else {
        let conn = &mut conns[0];
        let resp = conn
            .schema
            .write_schema(pb::WriteSchemaRequest {
                schema: SCHEMA.to_string(),
            })
            .await
            .map_err(|s| conn.error(s))?;
        Some(
            resp.into_inner()
                .written_at
                .map(|z| z.token)
                .unwrap_or_default(),
        )
    };

    let chains = chain_relationships(&options.chain_depths);
    let total = dataset.relationship_count() + chains.len() as u64;
    let bar = progress_bar(total, options.quiet);
    let mut by_relation: BTreeMap<String, u64> = BTreeMap::new();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut batches = 0u64;
    let mut batch = Vec::with_capacity(options.batch_size);
    let mut tuples = dataset.relationships();
    let parallel = options.parallel.max(1);
    // Batches go round-robin over the connections (each its own HTTP/2 connection).
    let mut next_conn = 0usize;
    loop {
        let next = tuples.next();
        if let Some(t) = &next {
            *by_relation
                .entry(format!("{}#{}", t.resource_type, t.relation))
                .or_insert(0) += 1;
            batch.push(to_proto(t));
        }
        let full = batch.len() >= options.batch_size.max(1);
        if (full || next.is_none()) && !batch.is_empty() {
            while in_flight.len() >= parallel {
                finish_one(&mut in_flight, &bar).await?;
            }
            let conn = &conns[next_conn % conns.len()];
            let mut client = conn.permissions.clone();
            let endpoint = conn.endpoint.clone();
            next_conn += 1;
            let updates = std::mem::take(&mut batch);
            batches += 1;
            in_flight.spawn(async move {
                let n = updates.len() as u64;
                write_batch(&mut client, &endpoint, updates)
                    .await
                    .map(|_| n)
            });
        }
        if next.is_none() {
            break;
        }
    }
    while !in_flight.is_empty() {
        finish_one(&mut in_flight, &bar).await?;
    }

    // The chains last, sequentially: the final zookie follows every acknowledged batch.
    let mut zookie = String::new();
    let conn = &mut conns[0];
    for chunk in chains.chunks(options.batch_size.max(1)) {
        zookie = write_batch(
            &mut conn.permissions,
            &conn.endpoint,
            chunk.iter().map(to_proto).collect(),
        )
        .await?;
        batches += 1;
        bar.inc(chunk.len() as u64);
    }
    if chains.is_empty() {
        // Nothing after the batches: a fully consistent read gives a zookie covering them.
        zookie = head_zookie(conn).await?;
    }
    bar.finish_and_clear();
    Ok(LoadSummary {
        schema_zookie,
        by_relation,
        chain_relationships: chains.len() as u64,
        total,
        batches,
        elapsed: started.elapsed(),
        zookie,
    })
}

async fn finish_one(
    in_flight: &mut tokio::task::JoinSet<Result<u64, CliError>>,
    bar: &ProgressBar,
) -> Result<(), CliError> {
    if let Some(joined) = in_flight.join_next().await {
        let written =
            joined.map_err(|e| CliError::Failed(format!("a write task failed: {e}")))??;
        bar.inc(written);
    }
    Ok(())
}

/// The zookie of a fully consistent read (the current head).
async fn head_zookie(conn: &mut Connection) -> Result<String, CliError> {
    let req = pb::CheckPermissionRequest {
        consistency: Some(pb::Consistency {
            requirement: Some(pb::consistency::Requirement::FullyConsistent(true)),
        }),
        resource: Some(pb::ObjectReference {
            object_type: "document".into(),
            object_id: super::dataset::document_id(0),
        }),
        permission: "view".into(),
        subject: Some(pb::SubjectReference {
            object: Some(pb::ObjectReference {
                object_type: "user".into(),
                object_id: super::dataset::user_id(0),
            }),
            optional_relation: String::new(),
        }),
        context: None,
        with_tracing: false,
    };
    let resp = conn
        .permissions
        .check_permission(req)
        .await
        .map_err(|s| conn.error(s))?;
    Ok(resp
        .into_inner()
        .checked_at
        .map(|z| z.token)
        .unwrap_or_default())
}
