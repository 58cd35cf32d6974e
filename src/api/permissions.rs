//! `authzed.api.v1.PermissionsService`: checks, expansion, lookups, and relationship reads,
//! writes, deletes, imports and exports. Each handler authenticates, translates the request,
//! authorizes the capability it needs and calls the service; nothing more.

use std::collections::BTreeSet;
use std::time::Instant;

use tonic::{Request, Response, Status, Streaming};

use crate::api::proto::authzed::api::v1 as pb;
use crate::auth::{Caller, Capability};
use crate::consistency::Consistency;
use crate::engine::{CheckOutcome, LookupSubject};
use crate::model::{
    Context, ObjectRef, Relationship, RelationshipFilter, RelationshipKey, SubjectRef,
};
use crate::service::{ReadView, ServiceError, Tessera};

use super::call::{Backend, ResponseStream, Rpc, RpcType, Sink, StreamEnd};
use super::convert;
use super::cursor::{self, Cursor, CursorKind, Fingerprint};
use super::error::{self, invalid};
use pb::permissions_service_server::PermissionsService;

const SERVICE: &str = "authzed.api.v1.PermissionsService";

/// Relationships buffered from an import stream before they are committed as one batch.
const IMPORT_BATCH: usize = 10_000;

/// The PermissionsService implementation.
pub struct PermissionsApi {
    backend: Backend,
}

impl PermissionsApi {
    pub(crate) fn new(backend: Backend) -> Self {
        PermissionsApi { backend }
    }
}

/// A limit field: 0 means none; above `max` is refused.
fn limit(field: &str, value: u32, max: usize) -> Result<Option<usize>, ServiceError> {
    match value as usize {
        0 => Ok(None),
        l if l > max => Err(invalid(field, format!("{l} exceeds the maximum of {max}"))),
        l => Ok(Some(l)),
    }
}

/// The view a paged request reads: the cursor's snapshot when resuming, else the one its
/// consistency selects.
fn paged_view(
    t: &Tessera,
    cursor: Option<&Cursor>,
    consistency: Consistency,
) -> Result<ReadView, ServiceError> {
    match cursor {
        Some(c) => t.view_at(c.revision),
        None => t.view(consistency),
    }
}

fn filter_fingerprint(kind: CursorKind, f: &RelationshipFilter) -> u64 {
    let mut fp = Fingerprint::new(kind)
        .opt(f.resource_type.as_deref())
        .opt(f.resource_id.as_deref())
        .opt(f.resource_id_prefix.as_deref())
        .opt(f.relation.as_deref());
    if let Some(s) = &f.subject {
        fp = fp
            .str(&s.subject_type)
            .opt(s.subject_id.as_deref())
            .str(&format!("{:?}", s.relation));
    }
    fp.finish()
}

fn context_fingerprint(fp: Fingerprint, c: &Context) -> Fingerprint {
    fp.str(&serde_json::Value::Object(c.clone()).to_string())
}

fn decode_cursor(
    c: Option<&pb::Cursor>,
    kind: CursorKind,
    fingerprint: u64,
) -> Result<Option<Cursor>, ServiceError> {
    c.map(|c| Cursor::decode(&c.token, kind, fingerprint))
        .transpose()
}

/// A lookup's cursor and the id its page continues after.
fn decode_lookup_cursor(
    c: Option<&pb::Cursor>,
    kind: CursorKind,
    fingerprint: u64,
) -> Result<(Option<Cursor>, Option<String>), ServiceError> {
    let cursor = decode_cursor(c, kind, fingerprint)?;
    let after = cursor
        .as_ref()
        .map(|c| cursor::id_from_fields(&c.fields))
        .transpose()?;
    Ok((cursor, after))
}

fn encode_cursor(
    kind: CursorKind,
    view: &ReadView,
    fingerprint: u64,
    fields: Vec<String>,
) -> pb::Cursor {
    pb::Cursor {
        token: Cursor {
            kind,
            revision: view.revision(),
            fingerprint,
            fields,
        }
        .encode(),
    }
}

/// A traced check's debug information: the answer at the root (Tessera's evaluator does not
/// record sub-problems) and the schema it was computed against.
fn debug_information(
    view: &ReadView,
    resource: &ObjectRef,
    permission: &str,
    subject: &SubjectRef,
    outcome: &CheckOutcome,
    started: Instant,
) -> Result<pb::DebugInformation, ServiceError> {
    use pb::check_debug_trace::{PermissionType, Permissionship};
    let schema = view.schema()?;
    let permission_type = match schema.relation(&resource.object_type, permission) {
        Some(r) if r.is_permission() => PermissionType::Permission,
        Some(_) => PermissionType::Relation,
        None => PermissionType::Unspecified,
    };
    let result = match outcome {
        CheckOutcome::Has => Permissionship::HasPermission,
        CheckOutcome::No => Permissionship::NoPermission,
        CheckOutcome::Conditional { .. } => Permissionship::ConditionalPermission,
    };
    let elapsed = started.elapsed();
    let schema_used = view
        .snapshot()
        .schema()?
        .map(|s| s.text.to_string())
        .unwrap_or_default();
    Ok(pb::DebugInformation {
        check: Some(pb::CheckDebugTrace {
            resource: Some(convert::object_ref_to_proto(resource)),
            permission: permission.to_string(),
            permission_type: permission_type as i32,
            subject: Some(convert::subject_ref_to_proto(subject)),
            result: result as i32,
            duration: Some(prost_types::Duration {
                seconds: elapsed.as_secs() as i64,
                nanos: elapsed.subsec_nanos() as i32,
            }),
            source: "tessera".into(),
            ..Default::default()
        }),
        schema_used,
    })
}

/// One validated item of a (bulk) check.
struct CheckItem {
    resource: ObjectRef,
    permission: String,
    subject: SubjectRef,
    context: Context,
}

fn check_item(
    prefix: &str,
    resource: Option<&pb::ObjectReference>,
    permission: &str,
    subject: Option<&pb::SubjectReference>,
    context: Option<&prost_types::Struct>,
) -> Result<CheckItem, ServiceError> {
    Ok(CheckItem {
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

/// Sends `page` and further pages of a relationship read, each item with its cursor.
fn stream_read(
    t: &Tessera,
    view: &ReadView,
    filter: &RelationshipFilter,
    first: Vec<Relationship>,
    page_size: usize,
    mut remaining: Option<usize>,
    mut emit: impl FnMut(Relationship) -> Result<(), StreamEnd>,
) -> Result<(), StreamEnd> {
    let mut page = first;
    loop {
        let n = page.len();
        let mut last: Option<RelationshipKey> = None;
        for r in page {
            last = Some(r.key());
            emit(r)?;
        }
        if let Some(rem) = remaining.as_mut() {
            *rem -= n;
            if *rem == 0 {
                return Ok(());
            }
        }
        let Some(last) = last.filter(|_| n == page_size) else {
            return Ok(());
        };
        let next = remaining.map_or(page_size, |r| r.min(page_size));
        page = t.read_relationships(view, filter, Some(&last), Some(next))?;
        if page.is_empty() {
            return Ok(());
        }
    }
}

#[tonic::async_trait]
impl PermissionsService for PermissionsApi {
    type ReadRelationshipsStream = ResponseStream<pb::ReadRelationshipsResponse>;
    type LookupResourcesStream = ResponseStream<pb::LookupResourcesResponse>;
    type LookupSubjectsStream = ResponseStream<pb::LookupSubjectsResponse>;
    type ExportBulkRelationshipsStream = ResponseStream<pb::ExportBulkRelationshipsResponse>;

    async fn read_relationships(
        &self,
        request: Request<pb::ReadRelationshipsRequest>,
    ) -> Result<Response<Self::ReadRelationshipsStream>, Status> {
        let rpc = Rpc::start(SERVICE, "ReadRelationships", RpcType::ServerStream);
        let backend = self.backend.clone();
        rpc.server_stream(async move {
            let caller = backend.authenticate(&request)?;
            let req = request.into_inner();
            let consistency = convert::consistency(req.consistency.as_ref())?;
            let filter = convert::relationship_filter(
                "relationship_filter",
                req.relationship_filter.as_ref(),
            )?;
            let max = backend.tessera.config().max_read_page;
            let limit = limit("optional_limit", req.optional_limit, max)?;
            const KIND: CursorKind = CursorKind::ReadRelationships;
            let fp = filter_fingerprint(KIND, &filter);
            let cursor = decode_cursor(req.optional_cursor.as_ref(), KIND, fp)?;
            let after = cursor
                .as_ref()
                .map(|c| cursor::key_from_fields(&c.fields))
                .transpose()?;
            let page_size = limit.unwrap_or(max).min(max);
            let (view, first, filter) = backend
                .blocking(move |b| {
                    b.authorize(&caller, &Capability::Read)?;
                    let view = paged_view(&b.tessera, cursor.as_ref(), consistency)?;
                    let first = b.tessera.read_relationships(
                        &view,
                        &filter,
                        after.as_ref(),
                        Some(page_size),
                    )?;
                    Ok((view, first, filter))
                })
                .await?;
            Ok(move |sink: &Sink<pb::ReadRelationshipsResponse>| {
                let read_at = convert::zookie(view.revision());
                stream_read(
                    &backend.tessera,
                    &view,
                    &filter,
                    first,
                    page_size,
                    limit,
                    |r| {
                        let after_result_cursor =
                            encode_cursor(KIND, &view, fp, cursor::key_fields(&r.key()));
                        sink.send_blocking(pb::ReadRelationshipsResponse {
                            read_at: Some(read_at.clone()),
                            relationship: Some(convert::relationship_to_proto(&r)),
                            after_result_cursor: Some(after_result_cursor),
                        })
                    },
                )
            })
        })
        .await
    }

    async fn write_relationships(
        &self,
        request: Request<pb::WriteRelationshipsRequest>,
    ) -> Result<Response<pb::WriteRelationshipsResponse>, Status> {
        let rpc = Rpc::start(SERVICE, "WriteRelationships", RpcType::Unary);
        let backend = self.backend.clone();
        rpc.unary(async move {
            let caller = backend.authenticate(&request)?;
            let req = request.into_inner();
            let updates = req
                .updates
                .iter()
                .enumerate()
                .map(|(i, u)| convert::update(&format!("updates[{i}]"), u))
                .collect::<Result<Vec<_>, _>>()?;
            let preconditions = convert::preconditions(&req.optional_preconditions)?;
            let metadata = convert::transaction_metadata(
                "optional_transaction_metadata",
                req.optional_transaction_metadata.as_ref(),
            )?;
            let types: BTreeSet<String> = updates
                .iter()
                .map(|u| u.relationship.resource.object_type.clone())
                .collect();
            let revision = backend
                .blocking(move |b| {
                    for t in types {
                        b.authorize(
                            &caller,
                            &Capability::WriteRelationships { resource_type: t },
                        )?;
                    }
                    // Preconditions read data: a writer must also be allowed to read.
                    if !preconditions.is_empty() {
                        b.authorize(&caller, &Capability::Read)?;
                    }
                    b.tessera
                        .write_relationships(updates, preconditions, Some(caller.id), metadata)
                })
                .await?;
            Ok(pb::WriteRelationshipsResponse {
                written_at: Some(convert::zookie(revision)),
            })
        })
        .await
    }

    async fn delete_relationships(
        &self,
        request: Request<pb::DeleteRelationshipsRequest>,
    ) -> Result<Response<pb::DeleteRelationshipsResponse>, Status> {
        use pb::delete_relationships_response::DeletionProgress;
        let rpc = Rpc::start(SERVICE, "DeleteRelationships", RpcType::Unary);
        let backend = self.backend.clone();
        rpc.unary(async move {
            let caller = backend.authenticate(&request)?;
            let req = request.into_inner();
            let filter = convert::relationship_filter(
                "relationship_filter",
                req.relationship_filter.as_ref(),
            )?;
            // Deletes are authorized per resource type, so the type must be named.
            let resource_type = filter.resource_type.clone().ok_or_else(|| {
                invalid(
                    "relationship_filter.resource_type",
                    "is required: deletes are authorized per resource type",
                )
            })?;
            let preconditions = convert::preconditions(&req.optional_preconditions)?;
            let limit = (req.optional_limit > 0).then_some(req.optional_limit as usize);
            let allow_partial = req.optional_allow_partial_deletions;
            let metadata = convert::transaction_metadata(
                "optional_transaction_metadata",
                req.optional_transaction_metadata.as_ref(),
            )?;
            let outcome = backend
                .blocking(move |b| {
                    b.authorize(&caller, &Capability::WriteRelationships { resource_type })?;
                    if !preconditions.is_empty() {
                        b.authorize(&caller, &Capability::Read)?;
                    }
                    b.tessera.delete_relationships(
                        filter,
                        preconditions,
                        limit,
                        allow_partial,
                        Some(caller.id),
                        metadata,
                    )
                })
                .await?;
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
        })
        .await
    }

    async fn check_permission(
        &self,
        request: Request<pb::CheckPermissionRequest>,
    ) -> Result<Response<pb::CheckPermissionResponse>, Status> {
        let started = Instant::now();
        self.backend
            .authorized_unary(
                SERVICE,
                "CheckPermission",
                request,
                Capability::Read,
                |req| {
                    let consistency = convert::consistency(req.consistency.as_ref())?;
                    let item = check_item(
                        "",
                        req.resource.as_ref(),
                        &req.permission,
                        req.subject.as_ref(),
                        req.context.as_ref(),
                    )?;
                    Ok((consistency, item, req.with_tracing))
                },
                move |b, _, (consistency, item, tracing)| {
                    let view = b.tessera.view(consistency)?;
                    let outcome = b.tessera.check(
                        &view,
                        &item.resource,
                        &item.permission,
                        &item.subject,
                        &item.context,
                    )?;
                    let debug_trace = if tracing {
                        Some(debug_information(
                            &view,
                            &item.resource,
                            &item.permission,
                            &item.subject,
                            &outcome,
                            started,
                        )?)
                    } else {
                        None
                    };
                    let (permissionship, partial_caveat_info) = convert::permissionship(&outcome);
                    Ok(pb::CheckPermissionResponse {
                        checked_at: Some(convert::zookie(view.revision())),
                        permissionship: permissionship as i32,
                        partial_caveat_info,
                        debug_trace,
                        optional_expires_at: None,
                    })
                },
            )
            .await
    }

    async fn check_bulk_permissions(
        &self,
        request: Request<pb::CheckBulkPermissionsRequest>,
    ) -> Result<Response<pb::CheckBulkPermissionsResponse>, Status> {
        use pb::check_bulk_permissions_pair::Response as PairResponse;
        let started = Instant::now();
        let max = self.backend.tessera.config().max_bulk_check_items;
        self.backend
            .authorized_unary(
                SERVICE,
                "CheckBulkPermissions",
                request,
                Capability::Read,
                |req| {
                    let consistency = convert::consistency(req.consistency.as_ref())?;
                    if req.items.len() > max {
                        return Err(invalid(
                            "items",
                            format!(
                                "{} items exceed the limit of {max} per request",
                                req.items.len()
                            ),
                        ));
                    }
                    Ok((consistency, req))
                },
                move |b, _, (consistency, req)| {
                    let tracing = req.with_tracing;
                    // One snapshot for every item.
                    let view = b.tessera.view(consistency)?;
                    let pairs = req
                        .items
                        .into_iter()
                        .enumerate()
                        .map(|(i, item)| {
                            let answer = check_item(
                                &format!("items[{i}]."),
                                item.resource.as_ref(),
                                &item.permission,
                                item.subject.as_ref(),
                                item.context.as_ref(),
                            )
                            .and_then(|c| {
                                let outcome = b.tessera.check(
                                    &view,
                                    &c.resource,
                                    &c.permission,
                                    &c.subject,
                                    &c.context,
                                )?;
                                let debug_trace = if tracing {
                                    Some(debug_information(
                                        &view,
                                        &c.resource,
                                        &c.permission,
                                        &c.subject,
                                        &outcome,
                                        started,
                                    )?)
                                } else {
                                    None
                                };
                                let (permissionship, partial_caveat_info) =
                                    convert::permissionship(&outcome);
                                Ok(pb::CheckBulkPermissionsResponseItem {
                                    permissionship: permissionship as i32,
                                    partial_caveat_info,
                                    debug_trace,
                                })
                            });
                            let response = match answer {
                                Ok(item) => PairResponse::Item(item),
                                Err(e) => PairResponse::Error(error::rpc_status(&e)),
                            };
                            pb::CheckBulkPermissionsPair {
                                request: Some(item),
                                response: Some(response),
                            }
                        })
                        .collect();
                    Ok(pb::CheckBulkPermissionsResponse {
                        checked_at: Some(convert::zookie(view.revision())),
                        pairs,
                    })
                },
            )
            .await
    }

    async fn expand_permission_tree(
        &self,
        request: Request<pb::ExpandPermissionTreeRequest>,
    ) -> Result<Response<pb::ExpandPermissionTreeResponse>, Status> {
        self.backend
            .authorized_unary(
                SERVICE,
                "ExpandPermissionTree",
                request,
                Capability::Read,
                |req| {
                    Ok((
                        convert::consistency(req.consistency.as_ref())?,
                        convert::object_ref("resource", req.resource.as_ref())?,
                        convert::relation("permission", &req.permission)?,
                    ))
                },
                |b, _, (consistency, resource, permission)| {
                    let view = b.tessera.view(consistency)?;
                    let tree = b.tessera.expand(&view, &resource, &permission)?;
                    Ok(pb::ExpandPermissionTreeResponse {
                        expanded_at: Some(convert::zookie(view.revision())),
                        tree_root: Some(convert::expand_tree(&tree, None)),
                    })
                },
            )
            .await
    }

    async fn lookup_resources(
        &self,
        request: Request<pb::LookupResourcesRequest>,
    ) -> Result<Response<Self::LookupResourcesStream>, Status> {
        let rpc = Rpc::start(SERVICE, "LookupResources", RpcType::ServerStream);
        let backend = self.backend.clone();
        rpc.server_stream(async move {
            let caller = backend.authenticate(&request)?;
            let req = request.into_inner();
            let consistency = convert::consistency(req.consistency.as_ref())?;
            let resource_type =
                convert::object_type("resource_object_type", &req.resource_object_type)?;
            let permission = convert::relation("permission", &req.permission)?;
            let subject = convert::concrete_subject("subject", req.subject.as_ref())?;
            let context = convert::context("context", req.context.as_ref())?;
            let limit = (req.optional_limit > 0).then_some(req.optional_limit as usize);
            const KIND: CursorKind = CursorKind::LookupResources;
            let fp = Fingerprint::new(KIND)
                .str(&resource_type)
                .str(&permission)
                .str(&subject.to_string());
            let fp = context_fingerprint(fp, &context).finish();
            let (cursor, after) = decode_lookup_cursor(req.optional_cursor.as_ref(), KIND, fp)?;
            let (view, found) = backend
                .blocking(move |b| {
                    b.authorize(&caller, &Capability::Read)?;
                    let view = paged_view(&b.tessera, cursor.as_ref(), consistency)?;
                    let found = b.tessera.lookup_resources(
                        &view,
                        &resource_type,
                        &permission,
                        &subject,
                        &context,
                        after.as_deref(),
                        limit,
                    )?;
                    Ok((view, found))
                })
                .await?;
            Ok(move |sink: &Sink<pb::LookupResourcesResponse>| {
                let looked_up_at = convert::zookie(view.revision());
                for r in found {
                    let Some((permissionship, partial_caveat_info)) =
                        convert::lookup_permissionship(&r.outcome)
                    else {
                        continue;
                    };
                    let after_result_cursor =
                        encode_cursor(KIND, &view, fp, vec![r.resource_id.clone()]);
                    sink.send_blocking(pb::LookupResourcesResponse {
                        looked_up_at: Some(looked_up_at.clone()),
                        resource_object_id: r.resource_id,
                        permissionship: permissionship as i32,
                        partial_caveat_info,
                        after_result_cursor: Some(after_result_cursor),
                    })?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn lookup_subjects(
        &self,
        request: Request<pb::LookupSubjectsRequest>,
    ) -> Result<Response<Self::LookupSubjectsStream>, Status> {
        use pb::lookup_subjects_request::WildcardOption;
        let rpc = Rpc::start(SERVICE, "LookupSubjects", RpcType::ServerStream);
        let backend = self.backend.clone();
        rpc.server_stream(async move {
            let caller = backend.authenticate(&request)?;
            let req = request.into_inner();
            let consistency = convert::consistency(req.consistency.as_ref())?;
            let resource = convert::object_ref("resource", req.resource.as_ref())?;
            let permission = convert::relation("permission", &req.permission)?;
            let subject_type =
                convert::object_type("subject_object_type", &req.subject_object_type)?;
            let subject_relation = convert::optional_relation(
                "optional_subject_relation",
                &req.optional_subject_relation,
            )?;
            let context = convert::context("context", req.context.as_ref())?;
            let concrete_limit =
                (req.optional_concrete_limit > 0).then_some(req.optional_concrete_limit as usize);
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
            const KIND: CursorKind = CursorKind::LookupSubjects;
            let fp = Fingerprint::new(KIND)
                .str(&resource.to_string())
                .str(&permission)
                .str(&subject_type)
                .opt(subject_relation.as_deref())
                .str(if include_wildcards {
                    "wildcards"
                } else {
                    "concrete"
                });
            let fp = context_fingerprint(fp, &context).finish();
            let (cursor, after) = decode_lookup_cursor(req.optional_cursor.as_ref(), KIND, fp)?;
            let (view, found) = backend
                .blocking(move |b| {
                    b.authorize(&caller, &Capability::Read)?;
                    let view = paged_view(&b.tessera, cursor.as_ref(), consistency)?;
                    let found = b.tessera.lookup_subjects(
                        &view,
                        &resource,
                        &permission,
                        &subject_type,
                        subject_relation.as_deref(),
                        &context,
                        after.as_deref(),
                        None,
                    )?;
                    Ok((view, found))
                })
                .await?;
            Ok(move |sink: &Sink<pb::LookupSubjectsResponse>| {
                let looked_up_at = convert::zookie(view.revision());
                let mut concrete = 0usize;
                for s in found {
                    let wildcard = s.subject_id == crate::model::WILDCARD_ID;
                    if wildcard && !include_wildcards {
                        continue;
                    }
                    // The limit counts concrete subjects; the wildcard rides along on the first page.
                    if !wildcard {
                        if concrete_limit.is_some_and(|l| concrete >= l) {
                            break;
                        }
                        concrete += 1;
                    }
                    let Some(subject) = resolved_subject(&s) else {
                        continue;
                    };
                    let excluded_subjects: Vec<pb::ResolvedSubject> =
                        s.excluded.iter().filter_map(resolved_subject).collect();
                    let after_result_cursor =
                        encode_cursor(KIND, &view, fp, vec![s.subject_id.clone()]);
                    // The deprecated fields are still filled, as the reference does, for older clients.
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
                        after_result_cursor: Some(after_result_cursor),
                    };
                    sink.send_blocking(response)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn import_bulk_relationships(
        &self,
        request: Request<Streaming<pb::ImportBulkRelationshipsRequest>>,
    ) -> Result<Response<pb::ImportBulkRelationshipsResponse>, Status> {
        let rpc = Rpc::start(SERVICE, "ImportBulkRelationships", RpcType::ClientStream);
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
        let rpc = Rpc::start(SERVICE, "ExportBulkRelationships", RpcType::ServerStream);
        let backend = self.backend.clone();
        rpc.server_stream(async move {
            let caller = backend.authenticate(&request)?;
            let req = request.into_inner();
            let consistency = convert::consistency(req.consistency.as_ref())?;
            let filter = match &req.optional_relationship_filter {
                Some(f) => convert::any_relationship_filter("optional_relationship_filter", f)?,
                None => RelationshipFilter::default(),
            };
            // The chunk size is only a hint: larger requests are served in chunks of the maximum.
            let max = backend.tessera.config().max_read_page;
            let chunk = match req.optional_limit as usize {
                0 => max,
                l => l.min(max),
            };
            const KIND: CursorKind = CursorKind::ExportRelationships;
            let fp = filter_fingerprint(KIND, &filter);
            let cursor = decode_cursor(req.optional_cursor.as_ref(), KIND, fp)?;
            let after = cursor
                .as_ref()
                .map(|c| cursor::key_from_fields(&c.fields))
                .transpose()?;
            let (view, first, filter) = backend
                .blocking(move |b| {
                    b.authorize(&caller, &Capability::Read)?;
                    let view = paged_view(&b.tessera, cursor.as_ref(), consistency)?;
                    let first = b.tessera.read_relationships(
                        &view,
                        &filter,
                        after.as_ref(),
                        Some(chunk),
                    )?;
                    Ok((view, first, filter))
                })
                .await?;
            Ok(move |sink: &Sink<pb::ExportBulkRelationshipsResponse>| {
                let t = &backend.tessera;
                let mut page = first;
                while !page.is_empty() {
                    let full = page.len() == chunk;
                    let last = page.last().map(Relationship::key);
                    let after_result_cursor = last
                        .as_ref()
                        .map(|k| encode_cursor(KIND, &view, fp, cursor::key_fields(k)));
                    sink.send_blocking(pb::ExportBulkRelationshipsResponse {
                        after_result_cursor,
                        relationships: page.iter().map(convert::relationship_to_proto).collect(),
                    })?;
                    match last {
                        Some(last) if full => {
                            page =
                                t.read_relationships(&view, &filter, Some(&last), Some(chunk))?;
                        }
                        _ => break,
                    }
                }
                Ok(())
            })
        })
        .await
    }
}

/// A committed import batch: how many relationships, and the resource types it authorized.
type BatchDone = (usize, BTreeSet<String>);

/// Commits an import stream in batches: relationships are buffered up to [`IMPORT_BATCH`],
/// and while one batch commits on the blocking pool the next is received, so network and
/// storage work overlap. Each resource type is authorized once per stream.
struct Importer {
    backend: Backend,
    caller: Caller,
    buffer: Vec<Relationship>,
    authorized: BTreeSet<String>,
    in_flight: Option<tokio::task::JoinHandle<Result<BatchDone, ServiceError>>>,
    loaded: u64,
}

impl Importer {
    fn new(backend: Backend, caller: Caller) -> Self {
        Importer {
            backend,
            caller,
            buffer: Vec::with_capacity(IMPORT_BATCH),
            authorized: BTreeSet::new(),
            in_flight: None,
            loaded: 0,
        }
    }

    async fn push(&mut self, r: Relationship) -> Result<(), ServiceError> {
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
            let (n, types) = task
                .await
                .map_err(error::join)
                .and_then(|r| r)
                .map_err(|e| self.with_progress(e))?;
            self.loaded += n as u64;
            self.authorized.extend(types);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ServiceError> {
        self.settle().await?;
        if self.buffer.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.buffer, Vec::with_capacity(IMPORT_BATCH));
        let new_types: BTreeSet<String> = batch
            .iter()
            .map(|r| &r.resource.object_type)
            .filter(|t| !self.authorized.contains(*t))
            .cloned()
            .collect();
        let backend = self.backend.clone();
        let caller = self.caller.clone();
        let span = tracing::Span::current();
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                for t in &new_types {
                    backend.authorize(
                        &caller,
                        &Capability::WriteRelationships {
                            resource_type: t.clone(),
                        },
                    )?;
                }
                let n = batch.len();
                backend.tessera.import(batch, Some(caller.id.clone()))?;
                Ok((n, new_types))
            })
        }));
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
        ServiceError::new(
            e.kind,
            format!(
                "{} (the {} relationships imported before this point are committed)",
                e.message, self.loaded
            ),
        )
    }
}
