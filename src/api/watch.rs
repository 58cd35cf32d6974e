//! `authzed.api.v1.WatchService`: a stream of committed changes, from a zookie or from now.
//!
//! The feed itself (reading the change log, waiting for commits, filtering, the writer's
//! metadata) is the service's [`WatchFeed`]; this module translates the request into a
//! [`WatchSelection`], each event into a `WatchResponse` (`changes_through` is where a client
//! resumes, by passing it back as `optional_start_cursor`), and ends the stream with
//! UNAVAILABLE when the server shuts down.

use tonic::{Request, Response, Status};

use crate::api::proto::authzed::api::v1 as pb;
use crate::service::{self, ServiceError, WatchEvent, WatchFeed, WatchSelection};

use super::call::{Backend, GrpcStream, Producer, ServerStream, Sink, StreamEnd};
use super::convert;
use super::error::invalid;
use pb::watch_service_server::WatchService;

pub use crate::service::CALLER_METADATA_KEY;

const SERVICE: &str = "authzed.api.v1.WatchService";

/// The WatchService implementation.
pub struct WatchApi {
    backend: Backend,
}

impl WatchApi {
    pub(crate) fn new(backend: Backend) -> Self {
        WatchApi { backend }
    }
}

/// The selection of a WatchRequest.
fn selection(req: &pb::WatchRequest) -> Result<WatchSelection, ServiceError> {
    if !req.optional_object_types.is_empty() && !req.optional_relationship_filters.is_empty() {
        return Err(invalid(
            "optional_relationship_filters",
            "cannot be combined with optional_object_types",
        ));
    }
    crate::service::check_filter_count("optional_object_types", req.optional_object_types.len())?;
    crate::service::check_filter_count(
        "optional_relationship_filters",
        req.optional_relationship_filters.len(),
    )?;
    let object_types = req
        .optional_object_types
        .iter()
        .enumerate()
        .map(|(i, t)| convert::object_type(&format!("optional_object_types[{i}]"), t))
        .collect::<Result<_, _>>()?;
    let filters = req
        .optional_relationship_filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            convert::any_relationship_filter(&format!("optional_relationship_filters[{i}]"), f)
        })
        .collect::<Result<_, _>>()?;
    let (mut relationships, mut schema, mut checkpoints) = (false, false, false);
    for (i, k) in req.optional_update_kinds.iter().enumerate() {
        match pb::WatchKind::try_from(*k) {
            Ok(pb::WatchKind::Unspecified | pb::WatchKind::IncludeRelationshipUpdates) => {
                relationships = true
            }
            Ok(pb::WatchKind::IncludeSchemaUpdates) => schema = true,
            Ok(pb::WatchKind::IncludeCheckpoints) => checkpoints = true,
            Err(_) => {
                return Err(invalid(
                    &format!("optional_update_kinds[{i}]"),
                    format!("unknown kind {k}"),
                ));
            }
        }
    }
    if req.optional_update_kinds.is_empty() {
        relationships = true;
    }
    Ok(WatchSelection {
        object_types,
        filters,
        relationships,
        schema,
        checkpoints,
    })
}

/// The response of one event.
fn response(e: WatchEvent) -> pb::WatchResponse {
    let metadata = e.metadata.as_ref().map(convert::context_to_proto);
    pb::WatchResponse {
        updates: e.updates.iter().map(convert::update_to_proto).collect(),
        changes_through: Some(convert::zookie(e.revision)),
        full_revision_metadata: metadata.iter().cloned().collect(),
        optional_transaction_metadata: metadata,
        schema_updated: e.schema_updated,
        is_checkpoint: e.is_checkpoint,
    }
}

/// Resolves once the server starts shutting down.
pub(crate) async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await: it is dropped right here.
    let _ = shutdown.wait_for(|s| *s).await.map(|_| ());
}

/// Streams the feed until the client leaves or the server shuts down.
async fn follow(
    backend: Backend,
    mut feed: WatchFeed,
    sink: Sink<pb::WatchResponse>,
) -> Result<(), StreamEnd> {
    let mut shutdown = backend.shutdown.clone();
    loop {
        tokio::select! {
            biased;
            () = stopping(&mut shutdown) => {
                return Err(StreamEnd::Failed(service::shutting_down()));
            }
            _ = sink.closed() => return Err(StreamEnd::ClientGone),
            events = feed.next(&backend.tessera) => {
                for e in events? {
                    sink.send(response(e)).await?;
                }
            }
        }
    }
}

pub struct Watch;

impl ServerStream for Watch {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "Watch";
    type Request = pb::WatchRequest;
    type Item = pb::WatchResponse;
    type Op = service::Watch;

    fn request(req: pb::WatchRequest) -> Result<service::Watch, ServiceError> {
        Ok(service::Watch {
            selection: selection(&req)?,
            start: req
                .optional_start_cursor
                .as_ref()
                .map(|z| convert::revision("optional_start_cursor", z))
                .transpose()?,
        })
    }

    fn producer(backend: &Backend, feed: WatchFeed) -> Producer<pb::WatchResponse> {
        let backend = backend.clone();
        Producer::Async(Box::new(move |sink| Box::pin(follow(backend, feed, sink))))
    }
}

#[tonic::async_trait]
impl WatchService for WatchApi {
    type WatchStream = GrpcStream<pb::WatchResponse>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.backend.grpc_stream::<Watch>(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Revision, parse_relationship};
    use crate::store::{RelationshipUpdate, WriteOp};

    #[test]
    fn requests_become_selections() {
        let s = selection(&pb::WatchRequest {
            optional_object_types: vec!["folder".into()],
            optional_update_kinds: vec![pb::WatchKind::IncludeSchemaUpdates as i32],
            ..Default::default()
        })
        .unwrap();
        assert!(s.object_types.contains("folder"));
        assert!(s.schema && !s.relationships && !s.checkpoints);
        assert!(
            selection(&pb::WatchRequest::default())
                .unwrap()
                .relationships
        );
    }

    #[test]
    fn conflicting_filters_are_refused() {
        let req = pb::WatchRequest {
            optional_object_types: vec!["folder".into()],
            optional_relationship_filters: vec![pb::RelationshipFilter {
                resource_type: "document".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = selection(&req).err().unwrap();
        assert!(err.message.starts_with("optional_relationship_filters: "));
    }

    #[test]
    fn events_become_responses_with_metadata() {
        use prost_types::value::Kind;
        let mut metadata = crate::model::Context::new();
        metadata.insert(CALLER_METADATA_KEY.into(), serde_json::json!("svc-a"));
        let r = response(WatchEvent {
            revision: Revision(4),
            updates: vec![RelationshipUpdate {
                op: WriteOp::Touch,
                relationship: parse_relationship("folder:f#viewer@user:x").unwrap(),
            }],
            schema_updated: false,
            metadata: Some(metadata),
            is_checkpoint: false,
        });
        assert_eq!(r.updates.len(), 1);
        assert_eq!(r.changes_through, Some(convert::zookie(Revision(4))));
        let caller = &r.optional_transaction_metadata.as_ref().unwrap().fields[CALLER_METADATA_KEY];
        assert_eq!(caller.kind, Some(Kind::StringValue("svc-a".into())));
        assert_eq!(
            r.full_revision_metadata,
            [r.optional_transaction_metadata.unwrap()]
        );
    }
}
