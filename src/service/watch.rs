//! Watch: a feed of committed changes, from a revision or from now, for any transport.
//!
//! A [`WatchFeed`] reads the store's change log after its position and yields one
//! [`WatchEvent`] per revision with matching changes (its `revision` is where a client resumes),
//! waiting for the next commit when caught up. Commits made through the service wake it at
//! once; a short poll interval covers anything else. Changes to Tessera's reserved namespace
//! never appear.
//!
//! Each event's metadata is what the writer attached to the transaction plus the
//! authenticated writer under [`CALLER_METADATA_KEY`] (a key writers may not use).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Caller, Operation};
use crate::model::{Context, RelationshipFilter, Revision};
use crate::store::{ChangeSet, RelationshipUpdate};

use super::{ErrorKind, Request, ServiceError, Tessera};

/// Change sets read from the log per round trip to the store.
const CHANGES_PER_READ: usize = 256;
/// How long a caught-up feed waits for a commit signal before re-reading the log anyway.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The key of the writer's identity in each event's transaction metadata. Reserved: a write
/// whose own metadata uses it is refused.
pub const CALLER_METADATA_KEY: &str = "tessera_caller";

/// Which changes a watcher wants.
#[derive(Debug, Clone, Default)]
pub struct WatchSelection {
    /// Only relationships whose resource has one of these types (empty: any).
    pub object_types: BTreeSet<String>,
    /// Only relationships matching one of these (empty: any).
    pub filters: Vec<RelationshipFilter>,
    /// Relationship changes are reported.
    pub relationships: bool,
    /// Schema changes are reported.
    pub schema: bool,
    /// A checkpoint is reported when a read of the log found only unwanted changes.
    pub checkpoints: bool,
}

/// One revision's worth of wanted changes, or a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// The revision through which changes are reported: resume after it.
    pub revision: Revision,
    pub updates: Vec<RelationshipUpdate>,
    pub schema_updated: bool,
    /// The writer's transaction metadata plus [`CALLER_METADATA_KEY`]; `None` when neither.
    pub metadata: Option<Context>,
    pub is_checkpoint: bool,
}

impl WatchSelection {
    fn matches(&self, u: &RelationshipUpdate) -> bool {
        let r = &u.relationship;
        if !self.object_types.is_empty() && !self.object_types.contains(&r.resource.object_type) {
            return false;
        }
        self.filters.is_empty() || self.filters.iter().any(|f| f.matches(r))
    }

    /// The event for one change set, or `None` when nothing in it is wanted.
    pub fn event(&self, set: &ChangeSet) -> Option<WatchEvent> {
        let updates: Vec<RelationshipUpdate> = if self.relationships {
            set.changes
                .iter()
                .filter(|u| self.matches(u))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let schema_updated = self.schema && set.schema_changed;
        if updates.is_empty() && !schema_updated {
            return None;
        }
        Some(WatchEvent {
            revision: set.revision,
            updates,
            schema_updated,
            metadata: transaction_metadata(set),
            is_checkpoint: false,
        })
    }
}

/// The writer's metadata of a change set plus its caller, or `None` when there is neither.
fn transaction_metadata(set: &ChangeSet) -> Option<Context> {
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
    Some(m)
}

/// The error that ends a feed when the server shuts down.
pub fn shutting_down() -> ServiceError {
    ServiceError::new(
        ErrorKind::Unavailable,
        "the server is shutting down; resume the watch from the last changes_through token",
    )
}

/// Watch: follow the change log after `start` (or from the newest revision).
#[derive(Debug, Clone)]
pub struct Watch {
    pub start: Option<Revision>,
    pub selection: WatchSelection,
}

/// A validated feed position; [`WatchFeed::next`] waits for events.
pub struct WatchFeed {
    position: Revision,
    selection: WatchSelection,
    commits: tokio::sync::watch::Receiver<Revision>,
}

impl Request for Watch {
    type Output = WatchFeed;
    fn operation(&self) -> Operation {
        Operation::Watch
    }
    fn run(self, t: &Tessera, _: &Caller) -> Result<WatchFeed, ServiceError> {
        let start = match self.start {
            Some(s) => s,
            None => t.head_revision()?,
        };
        // Validates the start against the readable window before streaming.
        t.changes_after(start, 0).map_err(|e| match e.kind {
            ErrorKind::FailedPrecondition => ServiceError::new(
                e.kind,
                format!(
                    "optional_start_cursor: {}; the change history only covers the GC window, so start a new watch without a cursor after re-reading the current state",
                    e.message
                ),
            ),
            _ => e,
        })?;
        Ok(WatchFeed {
            position: start,
            selection: self.selection,
            commits: t.subscribe_commits(),
        })
    }
}

impl WatchFeed {
    /// The revision the feed has reported changes through.
    pub fn position(&self) -> Revision {
        self.position
    }

    /// Waits for the next events (at least one) after the feed's position. Cancel-safe: a
    /// cancelled call loses nothing, the position only moves with events returned.
    pub async fn next(&mut self, tessera: &Arc<Tessera>) -> Result<Vec<WatchEvent>, ServiceError> {
        loop {
            // Mark the current commit signal as seen before reading, so a commit landing after
            // the read wakes the wait below.
            self.commits.borrow_and_update();
            let t = tessera.clone();
            let after = self.position;
            let span = tracing::Span::current();
            let sets = tokio::task::spawn_blocking(move || {
                span.in_scope(|| t.changes_after(after, CHANGES_PER_READ))
            })
            .await
            .map_err(|e| {
                ServiceError::new(
                    ErrorKind::Internal,
                    format!("the watch's worker task failed: {e}"),
                )
            })??;
            if sets.is_empty() {
                tokio::select! {
                    changed = self.commits.changed() => {
                        // The service is gone only when the server is; fall back to polling.
                        if changed.is_err() {
                            tokio::time::sleep(POLL_INTERVAL).await;
                        }
                    }
                    _ = tokio::time::sleep(POLL_INTERVAL) => {}
                }
                continue;
            }
            let mut events = Vec::new();
            let mut silent = false;
            for set in &sets {
                self.position = set.revision;
                match self.selection.event(set) {
                    Some(e) => {
                        events.push(e);
                        silent = false;
                    }
                    None => silent = true,
                }
            }
            // Changes the watcher filtered out still move its position: say so when asked.
            if silent && self.selection.checkpoints {
                events.push(WatchEvent {
                    revision: self.position,
                    updates: Vec::new(),
                    schema_updated: false,
                    metadata: None,
                    is_checkpoint: true,
                });
            }
            if !events.is_empty() {
                return Ok(events);
            }
        }
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

    fn relationships() -> WatchSelection {
        WatchSelection {
            relationships: true,
            ..Default::default()
        }
    }

    #[test]
    fn selections_pick_changes_by_type() {
        let f = WatchSelection {
            object_types: ["folder".to_string()].into(),
            ..relationships()
        };
        let s = set(4, &["document:a#viewer@user:x", "folder:f#viewer@user:x"]);
        let e = f.event(&s).unwrap();
        assert_eq!(e.updates.len(), 1);
        assert_eq!(e.revision, Revision(4));
        assert_eq!(
            e.metadata.unwrap()[CALLER_METADATA_KEY],
            serde_json::json!("svc-a")
        );
        assert!(f.event(&set(5, &["document:a#viewer@user:y"])).is_none());
    }

    #[test]
    fn writer_metadata_comes_with_the_caller() {
        let mut s = set(6, &["document:a#viewer@user:x"]);
        let serde_json::Value::Object(m) = serde_json::json!({"reason": "ticket-7", "attempt": 2})
        else {
            unreachable!()
        };
        s.metadata = m;
        let e = relationships().event(&s).unwrap();
        let metadata = e.metadata.unwrap();
        assert_eq!(metadata.len(), 3);
        assert_eq!(metadata["reason"], serde_json::json!("ticket-7"));
        // Neither caller nor metadata: nothing to report.
        s.caller = None;
        s.metadata.clear();
        assert!(relationships().event(&s).unwrap().metadata.is_none());
    }

    #[test]
    fn schema_changes_only_when_asked() {
        let mut s = set(3, &[]);
        s.schema_changed = true;
        assert!(relationships().event(&s).is_none());
        let with_schema = WatchSelection {
            schema: true,
            ..relationships()
        };
        assert!(with_schema.event(&s).unwrap().schema_updated);
    }
}
