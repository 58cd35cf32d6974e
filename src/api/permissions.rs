//! `authzed.api.v1.PermissionsService`: checks, expansion, lookups, and relationship reads,
//! writes, deletes, imports and exports. Each RPC is a translation of its messages to and from
//! one service request ([`Unary`]/[`ServerStream`]); the service decides everything else.

use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

use crate::api::proto::authzed::api::v1 as pb;
use crate::auth::Caller;
use crate::engine::{CheckOutcome, LookupSubject};
use crate::model::RelationshipFilter;
use crate::service::{self, CheckAnswer, IMPORT_BATCH, PageToken, ServiceError};

use super::call::{Backend, GrpcStream, Producer, Rpc, RpcType, ServerStream, Sink, Unary};
use super::convert;
use super::error::{self, invalid};
use pb::permissions_service_server::PermissionsService;

const SERVICE: &str = "authzed.api.v1.PermissionsService";

/// The PermissionsService implementation.
pub struct PermissionsApi {
    backend: Backend,
}

impl PermissionsApi {
    pub(crate) fn new(backend: Backend) -> Self {
        PermissionsApi { backend }
    }
}

fn cursor(c: Option<&pb::Cursor>) -> Option<PageToken> {
    c.map(|c| PageToken::cursor(c.token.clone()))
}

fn pb_cursor(token: String) -> pb::Cursor {
    pb::Cursor { token }
}

/// A traced check's debug information: the answer at the root (Tessera's evaluator does not
/// record sub-problems) and the schema it was computed against.
fn debug_information(
    item: &service::CheckItem,
    answer: &CheckAnswer,
) -> Option<pb::DebugInformation> {
    use pb::check_debug_trace::{PermissionType, Permissionship};
    let trace = answer.trace.as_ref()?;
    let permission_type = match trace.is_permission {
        Some(true) => PermissionType::Permission,
        Some(false) => PermissionType::Relation,
        None => PermissionType::Unspecified,
    };
    let result = match answer.outcome {
        CheckOutcome::Has => Permissionship::HasPermission,
        CheckOutcome::No => Permissionship::NoPermission,
        CheckOutcome::Conditional { .. } => Permissionship::ConditionalPermission,
    };
    Some(pb::DebugInformation {
        check: Some(pb::CheckDebugTrace {
            resource: Some(convert::object_ref_to_proto(&item.resource)),
            permission: item.permission.clone(),
            permission_type: permission_type as i32,
            subject: Some(convert::subject_ref_to_proto(&item.subject)),
            result: result as i32,
            duration: Some(prost_types::Duration {
                seconds: trace.duration.as_secs() as i64,
                nanos: trace.duration.subsec_nanos() as i32,
            }),
            source: "tessera".into(),
            ..Default::default()
        }),
        schema_used: trace.schema_text.clone(),
    })
}

/// One item of a (bulk) check, validated; `prefix` names its place in the request.
pub(crate) fn check_item(
    prefix: &str,
    resource: Option<&pb::ObjectReference>,
    permission: &str,
    subject: Option<&pb::SubjectReference>,
    context: Option<&prost_types::Struct>,
) -> Result<service::CheckItem, ServiceError> {
    Ok(service::CheckItem {
        resource: convert::object_ref(&format!("{prefix}resource"), resource)?,
        permission: convert::relation(&format!("{prefix}permission"), permission)?,
        subject: convert::concrete_subject(&format!("{prefix}subject"), subject)?,
        context: convert::context(&format!("{prefix}context"), context)?,
    })
}

fn resolved_subject(s: &LookupSubject) -> Option<pb::ResolvedSubject> {
    let (permissionship, partial) = convert::lookup_permissionship(&s.outcome)?;
    Some(pb::ResolvedSubject {
        subject_object_id: s.subject_id.clone(),
        permissionship: permissionship as i32,
        partial_caveat_info: partial,
    })
}

// ---- unary RPCs ---------------------------------------------------------------------------

pub struct CheckPermission;

impl Unary for CheckPermission {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "CheckPermission";
    type Request = pb::CheckPermissionRequest;
    type Response = pb::CheckPermissionResponse;
    type Op = TracedCheck;

    fn request(req: pb::CheckPermissionRequest) -> Result<TracedCheck, ServiceError> {
        Ok(TracedCheck(service::Check {
            consistency: convert::consistency(req.consistency.as_ref())?,
            item: check_item(
                "",
                req.resource.as_ref(),
                &req.permission,
                req.subject.as_ref(),
                req.context.as_ref(),
            )?,
            with_tracing: req.with_tracing,
        }))
    }

    fn response(
        (out, item): (service::CheckResult, service::CheckItem),
    ) -> Result<pb::CheckPermissionResponse, ServiceError> {
        let (permissionship, partial_caveat_info) = convert::permissionship(&out.answer.outcome);
        Ok(pb::CheckPermissionResponse {
            checked_at: Some(convert::zookie(out.revision)),
            permissionship: permissionship as i32,
            partial_caveat_info,
            debug_trace: debug_information(&item, &out.answer),
            optional_expires_at: None,
        })
    }
}

/// A check that keeps its item for the debug trace of the response.
pub struct TracedCheck(service::Check);

impl service::Request for TracedCheck {
    type Output = (service::CheckResult, service::CheckItem);
    fn operation(&self) -> crate::auth::Operation {
        self.0.operation()
    }
    fn short(&self) -> bool {
        self.0.short()
    }
    fn run(self, t: &service::Tessera, caller: &Caller) -> Result<Self::Output, ServiceError> {
        let item = self.0.item.clone();
        Ok((self.0.run(t, caller)?, item))
    }
}

pub struct CheckBulkPermissions;

impl Unary for CheckBulkPermissions {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "CheckBulkPermissions";
    type Request = pb::CheckBulkPermissionsRequest;
    type Response = pb::CheckBulkPermissionsResponse;
    type Op = BulkCheck;

    fn request(req: pb::CheckBulkPermissionsRequest) -> Result<BulkCheck, ServiceError> {
        let consistency = convert::consistency(req.consistency.as_ref())?;
        let items = req
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                check_item(
                    &format!("items[{i}]."),
                    item.resource.as_ref(),
                    &item.permission,
                    item.subject.as_ref(),
                    item.context.as_ref(),
                )
            })
            .collect();
        Ok(BulkCheck {
            check: service::CheckBulk {
                consistency,
                items,
                with_tracing: req.with_tracing,
                stop_after: None,
            },
            wire_items: req.items,
        })
    }

    fn response(
        (result, wire_items, checked): (
            service::CheckBulkResult,
            Vec<pb::CheckBulkPermissionsRequestItem>,
            Vec<Option<service::CheckItem>>,
        ),
    ) -> Result<pb::CheckBulkPermissionsResponse, ServiceError> {
        use pb::check_bulk_permissions_pair::Response as PairResponse;
        let pairs = result
            .answers
            .into_iter()
            .zip(wire_items)
            .zip(checked)
            .map(|((answer, request), item)| {
                let response = match (answer, item) {
                    (Ok(answer), Some(item)) => {
                        let (permissionship, partial_caveat_info) =
                            convert::permissionship(&answer.outcome);
                        PairResponse::Item(pb::CheckBulkPermissionsResponseItem {
                            permissionship: permissionship as i32,
                            partial_caveat_info,
                            debug_trace: debug_information(&item, &answer),
                        })
                    }
                    (Err(e), _) => PairResponse::Error(error::rpc_status(&e)),
                    (Ok(_), None) => PairResponse::Error(error::rpc_status(&error::internal(
                        "a bulk check item was answered without having been validated",
                    ))),
                };
                pb::CheckBulkPermissionsPair {
                    request: Some(request),
                    response: Some(response),
                }
            })
            .collect();
        Ok(pb::CheckBulkPermissionsResponse {
            checked_at: Some(convert::zookie(result.revision)),
            pairs,
        })
    }
}

/// A bulk check that keeps the request's items to echo them in the response pairs.
pub struct BulkCheck {
    check: service::CheckBulk,
    wire_items: Vec<pb::CheckBulkPermissionsRequestItem>,
}

impl service::Request for BulkCheck {
    type Output = (
        service::CheckBulkResult,
        Vec<pb::CheckBulkPermissionsRequestItem>,
        Vec<Option<service::CheckItem>>,
    );
    fn validate(&self, config: &service::ServiceConfig) -> Result<(), ServiceError> {
        self.check.validate(config)
    }
    fn operation(&self) -> crate::auth::Operation {
        self.check.operation()
    }
    fn run(self, t: &service::Tessera, caller: &Caller) -> Result<Self::Output, ServiceError> {
        let items = self
            .check
            .items
            .iter()
            .map(|i| i.as_ref().ok().cloned())
            .collect();
        let result = self.check.run(t, caller)?;
        Ok((result, self.wire_items, items))
    }
}

pub struct ExpandPermissionTree;

impl Unary for ExpandPermissionTree {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "ExpandPermissionTree";
    type Request = pb::ExpandPermissionTreeRequest;
    type Response = pb::ExpandPermissionTreeResponse;
    type Op = service::Expand;

    fn request(req: pb::ExpandPermissionTreeRequest) -> Result<service::Expand, ServiceError> {
        Ok(service::Expand {
            consistency: convert::consistency(req.consistency.as_ref())?,
            resource: convert::object_ref("resource", req.resource.as_ref())?,
            permission: convert::relation("permission", &req.permission)?,
        })
    }

    fn response(
        (tree, revision): (crate::engine::ExpandTree, crate::model::Revision),
    ) -> Result<pb::ExpandPermissionTreeResponse, ServiceError> {
        Ok(pb::ExpandPermissionTreeResponse {
            expanded_at: Some(convert::zookie(revision)),
            tree_root: Some(convert::expand_tree(&tree, None)),
        })
    }
}

pub struct WriteRelationships;

impl Unary for WriteRelationships {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "WriteRelationships";
    type Request = pb::WriteRelationshipsRequest;
    type Response = pb::WriteRelationshipsResponse;
    type Op = service::WriteRelationships;

    fn request(
        req: pb::WriteRelationshipsRequest,
    ) -> Result<service::WriteRelationships, ServiceError> {
        let updates = req
            .updates
            .iter()
            .enumerate()
            .map(|(i, u)| convert::update(&format!("updates[{i}]"), u))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(service::WriteRelationships {
            updates,
            preconditions: convert::preconditions(&req.optional_preconditions)?,
            metadata: convert::transaction_metadata(
                "optional_transaction_metadata",
                req.optional_transaction_metadata.as_ref(),
            )?,
        })
    }

    fn response(
        revision: crate::model::Revision,
    ) -> Result<pb::WriteRelationshipsResponse, ServiceError> {
        Ok(pb::WriteRelationshipsResponse {
            written_at: Some(convert::zookie(revision)),
        })
    }
}

pub struct DeleteRelationships;

impl Unary for DeleteRelationships {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "DeleteRelationships";
    type Request = pb::DeleteRelationshipsRequest;
    type Response = pb::DeleteRelationshipsResponse;
    type Op = service::DeleteRelationships;

    fn request(
        req: pb::DeleteRelationshipsRequest,
    ) -> Result<service::DeleteRelationships, ServiceError> {
        Ok(service::DeleteRelationships {
            filter: convert::relationship_filter(
                "relationship_filter",
                req.relationship_filter.as_ref(),
            )?,
            preconditions: convert::preconditions(&req.optional_preconditions)?,
            limit: req.optional_limit,
            allow_partial: req.optional_allow_partial_deletions,
            metadata: convert::transaction_metadata(
                "optional_transaction_metadata",
                req.optional_transaction_metadata.as_ref(),
            )?,
        })
    }

    fn response(
        outcome: crate::store::DeleteOutcome,
    ) -> Result<pb::DeleteRelationshipsResponse, ServiceError> {
        use pb::delete_relationships_response::DeletionProgress;
        let progress = if outcome.partial {
            DeletionProgress::Partial
        } else {
            DeletionProgress::Complete
        };
        Ok(pb::DeleteRelationshipsResponse {
            deleted_at: Some(convert::zookie(outcome.revision)),
            deletion_progress: progress as i32,
            relationships_deleted_count: outcome.deleted,
        })
    }
}

// ---- server-streaming RPCs ----------------------------------------------------------------

pub struct ReadRelationships;

impl ServerStream for ReadRelationships {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "ReadRelationships";
    type Request = pb::ReadRelationshipsRequest;
    type Item = pb::ReadRelationshipsResponse;
    type Op = service::ReadRelationships;

    fn request(
        req: pb::ReadRelationshipsRequest,
    ) -> Result<service::ReadRelationships, ServiceError> {
        Ok(service::ReadRelationships {
            consistency: convert::consistency(req.consistency.as_ref())?,
            filter: convert::relationship_filter(
                "relationship_filter",
                req.relationship_filter.as_ref(),
            )?,
            limit: req.optional_limit,
            cursor: cursor(req.optional_cursor.as_ref()),
        })
    }

    fn producer(backend: &Backend, pages: service::RelationshipPages) -> Producer<Self::Item> {
        let tessera = backend.tessera.clone();
        Producer::Blocking(Box::new(move |sink: &Sink<Self::Item>| {
            let read_at = convert::zookie(pages.revision());
            pages.for_each(&tessera, |r, c| {
                sink.send_blocking(pb::ReadRelationshipsResponse {
                    read_at: Some(read_at.clone()),
                    relationship: Some(convert::relationship_to_proto(&r)),
                    after_result_cursor: Some(pb_cursor(c)),
                })
            })
        }))
    }
}

pub struct LookupResources;

impl ServerStream for LookupResources {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "LookupResources";
    type Request = pb::LookupResourcesRequest;
    type Item = pb::LookupResourcesResponse;
    type Op = service::LookupResources;

    fn request(req: pb::LookupResourcesRequest) -> Result<service::LookupResources, ServiceError> {
        Ok(service::LookupResources {
            consistency: convert::consistency(req.consistency.as_ref())?,
            resource_type: convert::object_type("resource_object_type", &req.resource_object_type)?,
            permission: convert::relation("permission", &req.permission)?,
            subject: convert::concrete_subject("subject", req.subject.as_ref())?,
            context: convert::context("context", req.context.as_ref())?,
            limit: (req.optional_limit > 0).then_some(req.optional_limit as usize),
            cursor: cursor(req.optional_cursor.as_ref()),
        })
    }

    fn producer(backend: &Backend, pages: service::ResourcePages) -> Producer<Self::Item> {
        let tessera = backend.tessera.clone();
        Producer::Blocking(Box::new(move |sink: &Sink<Self::Item>| {
            let looked_up_at = convert::zookie(pages.revision());
            pages.for_each(&tessera, |r, c| {
                let Some((permissionship, partial_caveat_info)) =
                    convert::lookup_permissionship(&r.outcome)
                else {
                    return Ok(());
                };
                sink.send_blocking(pb::LookupResourcesResponse {
                    looked_up_at: Some(looked_up_at.clone()),
                    resource_object_id: r.resource_id,
                    permissionship: permissionship as i32,
                    partial_caveat_info,
                    after_result_cursor: Some(pb_cursor(c)),
                })
            })?;
            Ok(())
        }))
    }
}

pub struct LookupSubjects;

impl ServerStream for LookupSubjects {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "LookupSubjects";
    type Request = pb::LookupSubjectsRequest;
    type Item = pb::LookupSubjectsResponse;
    type Op = service::LookupSubjects;

    fn request(req: pb::LookupSubjectsRequest) -> Result<service::LookupSubjects, ServiceError> {
        use pb::lookup_subjects_request::WildcardOption;
        let include_wildcards = match WildcardOption::try_from(req.wildcard_option) {
            Ok(WildcardOption::Unspecified | WildcardOption::IncludeWildcards) => true,
            Ok(WildcardOption::ExcludeWildcards) => false,
            Err(_) => {
                return Err(invalid(
                    "wildcard_option",
                    format!("unknown value {}", req.wildcard_option),
                ));
            }
        };
        Ok(service::LookupSubjects {
            consistency: convert::consistency(req.consistency.as_ref())?,
            resource: convert::object_ref("resource", req.resource.as_ref())?,
            permission: convert::relation("permission", &req.permission)?,
            subject_type: convert::object_type("subject_object_type", &req.subject_object_type)?,
            subject_relation: convert::optional_relation(
                "optional_subject_relation",
                &req.optional_subject_relation,
            )?,
            context: convert::context("context", req.context.as_ref())?,
            concrete_limit: (req.optional_concrete_limit > 0)
                .then_some(req.optional_concrete_limit as usize),
            include_wildcards,
            cursor: cursor(req.optional_cursor.as_ref()),
        })
    }

    fn producer(_: &Backend, page: service::LookupPage<LookupSubject>) -> Producer<Self::Item> {
        Producer::Blocking(Box::new(move |sink: &Sink<Self::Item>| {
            let looked_up_at = convert::zookie(page.revision);
            for (s, c) in page.items {
                let Some(subject) = resolved_subject(&s) else {
                    continue;
                };
                let excluded_subjects: Vec<pb::ResolvedSubject> =
                    s.excluded.iter().filter_map(resolved_subject).collect();
                // The deprecated fields are still filled, as the reference does, for older
                // clients.
                #[allow(deprecated)]
                let response = pb::LookupSubjectsResponse {
                    looked_up_at: Some(looked_up_at.clone()),
                    subject_object_id: subject.subject_object_id.clone(),
                    excluded_subject_ids: excluded_subjects
                        .iter()
                        .map(|e| e.subject_object_id.clone())
                        .collect(),
                    permissionship: subject.permissionship,
                    partial_caveat_info: subject.partial_caveat_info.clone(),
                    subject: Some(subject),
                    excluded_subjects,
                    after_result_cursor: Some(pb_cursor(c)),
                };
                sink.send_blocking(response)?;
            }
            Ok(())
        }))
    }
}

pub struct ExportBulkRelationships;

impl ServerStream for ExportBulkRelationships {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "ExportBulkRelationships";
    type Request = pb::ExportBulkRelationshipsRequest;
    type Item = pb::ExportBulkRelationshipsResponse;
    type Op = service::ExportRelationships;

    fn request(
        req: pb::ExportBulkRelationshipsRequest,
    ) -> Result<service::ExportRelationships, ServiceError> {
        let filter = match &req.optional_relationship_filter {
            Some(f) => convert::any_relationship_filter("optional_relationship_filter", f)?,
            None => RelationshipFilter::default(),
        };
        Ok(service::ExportRelationships {
            consistency: convert::consistency(req.consistency.as_ref())?,
            filter,
            chunk: req.optional_limit,
            cursor: cursor(req.optional_cursor.as_ref()),
        })
    }

    fn producer(backend: &Backend, chunks: service::ExportChunks) -> Producer<Self::Item> {
        let tessera = backend.tessera.clone();
        Producer::Blocking(Box::new(move |sink: &Sink<Self::Item>| {
            chunks.for_each(&tessera, |page, c| {
                sink.send_blocking(pb::ExportBulkRelationshipsResponse {
                    after_result_cursor: c.map(pb_cursor),
                    relationships: page.iter().map(convert::relationship_to_proto).collect(),
                })
            })
        }))
    }
}

#[tonic::async_trait]
impl PermissionsService for PermissionsApi {
    type ReadRelationshipsStream = GrpcStream<pb::ReadRelationshipsResponse>;
    type LookupResourcesStream = GrpcStream<pb::LookupResourcesResponse>;
    type LookupSubjectsStream = GrpcStream<pb::LookupSubjectsResponse>;
    type ExportBulkRelationshipsStream = GrpcStream<pb::ExportBulkRelationshipsResponse>;

    async fn read_relationships(
        &self,
        request: Request<pb::ReadRelationshipsRequest>,
    ) -> Result<Response<Self::ReadRelationshipsStream>, Status> {
        self.backend.grpc_stream::<ReadRelationships>(request).await
    }

    async fn write_relationships(
        &self,
        request: Request<pb::WriteRelationshipsRequest>,
    ) -> Result<Response<pb::WriteRelationshipsResponse>, Status> {
        self.backend.grpc_unary::<WriteRelationships>(request).await
    }

    async fn delete_relationships(
        &self,
        request: Request<pb::DeleteRelationshipsRequest>,
    ) -> Result<Response<pb::DeleteRelationshipsResponse>, Status> {
        self.backend
            .grpc_unary::<DeleteRelationships>(request)
            .await
    }

    async fn check_permission(
        &self,
        request: Request<pb::CheckPermissionRequest>,
    ) -> Result<Response<pb::CheckPermissionResponse>, Status> {
        self.backend.grpc_unary::<CheckPermission>(request).await
    }

    async fn check_bulk_permissions(
        &self,
        request: Request<pb::CheckBulkPermissionsRequest>,
    ) -> Result<Response<pb::CheckBulkPermissionsResponse>, Status> {
        self.backend
            .grpc_unary::<CheckBulkPermissions>(request)
            .await
    }

    async fn expand_permission_tree(
        &self,
        request: Request<pb::ExpandPermissionTreeRequest>,
    ) -> Result<Response<pb::ExpandPermissionTreeResponse>, Status> {
        self.backend
            .grpc_unary::<ExpandPermissionTree>(request)
            .await
    }

    async fn lookup_resources(
        &self,
        request: Request<pb::LookupResourcesRequest>,
    ) -> Result<Response<Self::LookupResourcesStream>, Status> {
        self.backend.grpc_stream::<LookupResources>(request).await
    }

    async fn lookup_subjects(
        &self,
        request: Request<pb::LookupSubjectsRequest>,
    ) -> Result<Response<Self::LookupSubjectsStream>, Status> {
        self.backend.grpc_stream::<LookupSubjects>(request).await
    }

    async fn import_bulk_relationships(
        &self,
        request: Request<Streaming<pb::ImportBulkRelationshipsRequest>>,
    ) -> Result<Response<pb::ImportBulkRelationshipsResponse>, Status> {
        let rpc = Rpc::grpc(SERVICE, "ImportBulkRelationships", RpcType::ClientStream);
        let backend = self.backend.clone();
        rpc.unary(async move {
            let caller = backend.authenticate(&request)?;
            let mut stream = request.into_inner();
            let mut importer = Importer::new(backend, caller);
            let mut seen = 0usize;
            loop {
                let message = match stream.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(status) => {
                        return Err(importer
                            .stopped(ServiceError::new(
                                crate::service::ErrorKind::InvalidArgument,
                                format!("the request stream failed: {}", status.message()),
                            ))
                            .await);
                    }
                };
                for r in &message.relationships {
                    let converted =
                        convert::relationship(&format!("relationships[{seen}]"), Some(r));
                    seen += 1;
                    match converted {
                        Ok(r) => importer.push(r).await?,
                        Err(e) => return Err(importer.stopped(e).await),
                    }
                }
            }
            let loaded = importer.finish().await?;
            Ok(pb::ImportBulkRelationshipsResponse { num_loaded: loaded })
        })
        .await
    }

    async fn export_bulk_relationships(
        &self,
        request: Request<pb::ExportBulkRelationshipsRequest>,
    ) -> Result<Response<Self::ExportBulkRelationshipsStream>, Status> {
        self.backend
            .grpc_stream::<ExportBulkRelationships>(request)
            .await
    }
}

/// Commits an import stream in batches of [`IMPORT_BATCH`]: while one batch commits (through
/// the one authorized path, so each batch's resource types are authorized) the next is
/// received, so network and storage work overlap.
struct Importer {
    backend: Backend,
    caller: Caller,
    buffer: Vec<crate::model::Relationship>,
    in_flight: Option<tokio::task::JoinHandle<Result<usize, ServiceError>>>,
    loaded: u64,
}

impl Importer {
    fn new(backend: Backend, caller: Caller) -> Self {
        Importer {
            backend,
            caller,
            buffer: Vec::with_capacity(IMPORT_BATCH),
            in_flight: None,
            loaded: 0,
        }
    }

    async fn push(&mut self, r: crate::model::Relationship) -> Result<(), ServiceError> {
        self.buffer.push(r);
        if self.buffer.len() >= IMPORT_BATCH {
            self.flush().await?;
        }
        Ok(())
    }

    /// Waits for the batch being committed, adding its count; its error says how much of the
    /// import was committed before it.
    async fn settle(&mut self) -> Result<(), ServiceError> {
        if let Some(task) = self.in_flight.take() {
            let n = task
                .await
                .map_err(error::join)
                .and_then(|r| r)
                .map_err(|e| self.with_progress(e))?;
            self.loaded += n as u64;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ServiceError> {
        self.settle().await?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.buffer, Vec::with_capacity(IMPORT_BATCH));
        let backend = self.backend.clone();
        let caller = self.caller.clone();
        self.in_flight = Some(tokio::spawn(
            async move {
                backend
                    .execute(
                        caller,
                        service::ImportRelationships {
                            relationships: batch,
                        },
                    )
                    .await
            }
            .in_current_span(),
        ));
        Ok(())
    }

    async fn finish(mut self) -> Result<u64, ServiceError> {
        self.flush().await?;
        self.settle().await?;
        Ok(self.loaded)
    }

    /// The error that ends an import, saying how much of it was committed.
    async fn stopped(&mut self, e: ServiceError) -> ServiceError {
        // Earlier batches may still be committing: count them before reporting.
        match self.settle().await {
            Ok(()) => self.with_progress(e),
            Err(first) => first,
        }
    }

    fn with_progress(&self, e: ServiceError) -> ServiceError {
        if self.loaded == 0 {
            return e;
        }
        let message = format!(
            "{} (the {} relationships imported before this point are committed)",
            e.message, self.loaded
        );
        e.with_message(message)
    }
}
