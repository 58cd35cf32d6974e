//! `authzed.api.v1.WatchService`: a stream of committed changes, from a zookie or from now.
//!
//! The stream reads the store's change log after its position, sends one response per
//! revision with matching changes (`changes_through` is that revision: a client resumes by
//! passing it back as `optional_start_cursor`), and waits for the next commit when caught up.
//! Commits made through the service wake it at once, and so do other nodes' commits on a
//! shared store that reports them (PostgreSQL's commit notifications, see
//! `Tessera::subscribe_commits`); a short poll interval covers anything else. Changes to Tessera's reserved namespace never appear.
//!
//! Each response's `optional_transaction_metadata` is the metadata the writer attached to the
//! transaction (`optional_transaction_metadata` of WriteRelationships/DeleteRelationships),
//! plus the authenticated writer under [`CALLER_METADATA_KEY`] (a key writers may not use).

use std::collections::BTreeSet;
use std::time::Duration;

use tonic::{Request, Response, Status};

use crate::api::proto::authzed::api::v1 as pb;
use crate::auth::Capability;
use crate::model::{RelationshipFilter, Revision};
use crate::service::{ErrorKind, ServiceError};
use crate::store::{ChangeSet, RelationshipUpdate};

use super::call::{Backend, ResponseStream, Rpc, RpcType, Sink, StreamEnd};
use super::convert;
use super::error::invalid;
use pb::watch_service_server::WatchService;

const SERVICE: &str = "authzed.api.v1.WatchService";

/// Change sets read from the log per round trip to the store.
const CHANGES_PER_READ: usize = 256;
/// How long a caught-up stream waits for a commit signal before re-reading the log anyway.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The key of the writer's identity in each response's transaction metadata. Reserved: a
/// write whose own metadata uses it is refused.
pub const CALLER_METADATA_KEY: &str = "tessera_caller";

/// The WatchService implementation.
pub struct WatchApi {
    backend: Backend,
}

impl WatchApi {
    pub(crate) fn new(backend: Backend) -> Self {
        WatchApi { backend }
    }
}

/// Which changes a watcher wants.
struct WatchFilter {
    object_types: BTreeSet<String>,
    filters: Vec<RelationshipFilter>,
    relationships: bool,
    schema: bool,
    checkpoints: bool,
}

impl WatchFilter {
    fn from_request(req: &pb::WatchRequest) -> Result<WatchFilter, ServiceError> {
        if !req.optional_object_types.is_empty() && !req.optional_relationship_filters.is_empty() {
            return Err(invalid(
                "optional_relationship_filters",
                "cannot be combined with optional_object_types",
            ));
        }
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
        Ok(WatchFilter {
            object_types,
            filters,
            relationships,
            schema,
            checkpoints,
        })
    }

    fn matches(&self, u: &RelationshipUpdate) -> bool {
        let r = &u.relationship;
        if !self.object_types.is_empty() && !self.object_types.contains(&r.resource.object_type) {
            return false;
        }
        self.filters.is_empty() || self.filters.iter().any(|f| f.matches(r))
    }

    /// The response for one change set, or `None` when nothing in it is wanted.
    fn response(&self, set: &ChangeSet) -> Option<pb::WatchResponse> {
        let updates: Vec<pb::RelationshipUpdate> = if self.relationships {
            set.changes
                .iter()
                .filter(|u| self.matches(u))
                .map(convert::update_to_proto)
                .collect()
        } else {
            Vec::new()
        };
        let schema_updated = self.schema && set.schema_changed;
        if updates.is_empty() && !schema_updated {
            return None;
        }
        let metadata = transaction_metadata(set);
        Some(pb::WatchResponse {
            updates,
            changes_through: Some(convert::zookie(set.revision)),
            full_revision_metadata: metadata.iter().cloned().collect(),
            optional_transaction_metadata: metadata,
            schema_updated,
            is_checkpoint: false,
        })
    }
}

/// The writer's metadata of a change set plus its caller, or `None` when there is neither.
fn transaction_metadata(set: &ChangeSet) -> Option<prost_types::Struct> {
    if set.metadata.is_empty() && set.caller.is_none() {
        return None;
    }
    let mut m = set.metadata.clone();
    if let Some(caller) = &set.caller {
        m.insert(
            CALLER_METADATA_KEY.into(),
            serde_json::Value::String(caller.clone()),
        );
    }
    Some(convert::context_to_proto(&m))
}

fn checkpoint(revision: Revision) -> pb::WatchResponse {
    pb::WatchResponse {
        changes_through: Some(convert::zookie(revision)),
        is_checkpoint: true,
        ..Default::default()
    }
}

/// Streams changes after `position` until the client leaves or the server shuts down.
async fn follow(
    backend: Backend,
    filter: WatchFilter,
    mut position: Revision,
    sink: Sink<pb::WatchResponse>,
) -> Result<(), StreamEnd> {
    let mut commits = backend.tessera.subscribe_commits();
    let mut shutdown = backend.shutdown.clone();
    loop {
        if *shutdown.borrow_and_update() {
            return Err(StreamEnd::Failed(ServiceError::new(
                ErrorKind::Unavailable,
                "the server is shutting down; resume the watch from the last changes_through token",
            )));
        }
        // Mark the current commit signal as seen before reading, so a commit landing after
        // the read wakes the wait below.
        commits.borrow_and_update();
        let sets = backend
            .blocking(move |b| b.tessera.changes_after(position, CHANGES_PER_READ))
            .await?;
        if sets.is_empty() {
            tokio::select! {
                changed = commits.changed() => {
                    // The service is gone only when the server is; fall back to polling.
                    if changed.is_err() {
                        tokio::time::sleep(POLL_INTERVAL).await;
                    }
                }
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = shutdown.changed() => {}
                _ = sink.closed() => return Err(StreamEnd::ClientGone),
            }
            continue;
        }
        let mut silent = false;
        for set in &sets {
            position = set.revision;
            match filter.response(set) {
                Some(response) => {
                    sink.send(response).await?;
                    silent = false;
                }
                None => silent = true,
            }
        }
        // Changes the watcher filtered out still move its position: say so when asked.
        if silent && filter.checkpoints {
            sink.send(checkpoint(position)).await?;
        }
    }
}

#[tonic::async_trait]
impl WatchService for WatchApi {
    type WatchStream = ResponseStream<pb::WatchResponse>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let rpc = Rpc::start(SERVICE, "Watch", RpcType::ServerStream);
        let backend = self.backend.clone();
        rpc.server_stream_async(async move {
            let caller = backend.authenticate(&request)?;
            let req = request.into_inner();
            let filter = WatchFilter::from_request(&req)?;
            let start = req
                .optional_start_cursor
                .as_ref()
                .map(|z| convert::revision("optional_start_cursor", z))
                .transpose()?;
            let start = backend
                .blocking(move |b| {
                    b.authorize(&caller, &Capability::Read)?;
                    let start = match start {
                        Some(s) => s,
                        None => b.tessera.head_revision()?,
                    };
                    // Validates the start against the readable window before streaming.
                    b.tessera.changes_after(start, 0).map_err(|e| match e.kind {
                        ErrorKind::FailedPrecondition => ServiceError::new(
                            e.kind,
                            format!(
                                "optional_start_cursor: {}; the change history only covers the GC window, so start a new watch without a cursor after re-reading the current state",
                                e.message
                            ),
                        ),
                        _ => e,
                    })?;
                    Ok(start)
                })
                .await?;
            Ok(move |sink: Sink<pb::WatchResponse>| follow(backend, filter, start, sink))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_relationship;
    use crate::store::WriteOp;

    fn set(rev: u64, rels: &[&str]) -> ChangeSet {
        ChangeSet {
            revision: Revision(rev),
            committed_at: chrono::Utc::now(),
            caller: Some("svc-a".into()),
            changes: rels
                .iter()
                .map(|r| RelationshipUpdate {
                    op: WriteOp::Touch,
                    relationship: parse_relationship(r).unwrap(),
                })
                .collect(),
            schema_changed: false,
            metadata: Default::default(),
        }
    }

    #[test]
    fn filters_select_changes_by_type_and_filter() {
        let req = pb::WatchRequest {
            optional_object_types: vec!["folder".into()],
            ..Default::default()
        };
        let f = WatchFilter::from_request(&req).unwrap();
        let s = set(4, &["document:a#viewer@user:x", "folder:f#viewer@user:x"]);
        let r = f.response(&s).unwrap();
        assert_eq!(r.updates.len(), 1);
        assert_eq!(r.changes_through, Some(convert::zookie(Revision(4))));
        let caller = &r.optional_transaction_metadata.unwrap().fields[CALLER_METADATA_KEY];
        assert_eq!(
            caller.kind,
            Some(prost_types::value::Kind::StringValue("svc-a".into()))
        );
        assert!(f.response(&set(5, &["document:a#viewer@user:y"])).is_none());
    }

    #[test]
    fn writer_metadata_is_returned_with_the_caller() {
        use prost_types::value::Kind;
        let mut s = set(6, &["document:a#viewer@user:x"]);
        let serde_json::Value::Object(m) =
            serde_json::json!({"reason": "ticket-7", "attempt": 2, "labels": ["a"]})
        else {
            unreachable!()
        };
        s.metadata = m;
        let f = WatchFilter::from_request(&pb::WatchRequest::default()).unwrap();
        let r = f.response(&s).unwrap();
        let fields = &r.optional_transaction_metadata.as_ref().unwrap().fields;
        assert_eq!(fields.len(), 4);
        assert_eq!(
            fields["reason"].kind,
            Some(Kind::StringValue("ticket-7".into()))
        );
        assert_eq!(fields["attempt"].kind, Some(Kind::NumberValue(2.0)));
        assert_eq!(
            fields[CALLER_METADATA_KEY].kind,
            Some(Kind::StringValue("svc-a".into()))
        );
        assert_eq!(
            r.full_revision_metadata,
            [r.optional_transaction_metadata.unwrap()]
        );

        // Neither caller nor metadata: nothing to report.
        s.caller = None;
        s.metadata.clear();
        let r = f.response(&s).unwrap();
        assert!(r.optional_transaction_metadata.is_none());
        assert!(r.full_revision_metadata.is_empty());
    }

    #[test]
    fn schema_changes_only_when_asked() {
        let mut s = set(3, &[]);
        s.schema_changed = true;
        let rels_only = WatchFilter::from_request(&pb::WatchRequest::default()).unwrap();
        assert!(rels_only.response(&s).is_none());
        let with_schema = WatchFilter::from_request(&pb::WatchRequest {
            optional_update_kinds: vec![pb::WatchKind::IncludeSchemaUpdates as i32],
            ..Default::default()
        })
        .unwrap();
        assert!(with_schema.response(&s).unwrap().schema_updated);
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
        let err = WatchFilter::from_request(&req).err().unwrap();
        assert!(err.message.starts_with("optional_relationship_filters: "));
    }
}
