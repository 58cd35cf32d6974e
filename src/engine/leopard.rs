//! Evaluation over the nested-group index (`store/leopard.rs`): membership through nesting as
//! a set probe instead of a walk down (check, LookupSubjects) or up (LookupResources) the
//! nesting, whatever its depth.
//!
//! For a relation `T#r` that allows its own userset ([`Node::nests`](super::analysis::Node)),
//! the index stores, per object `a`, the objects nested in it through *fast edges* (nestings
//! without caveat or expiration), and lists the *irregular* objects (those with any other
//! userset relationship on `T#r`). Then for any subject `s`:
//!
//! > `a#r` holds `s` ⇔ some `b ∈ {a} ∪ nested(a)` has a relationship `b#r@s` (or a matching
//! > wildcard), or some irregular `b ∈ {a} ∪ nested(a)` holds `s` through one of its
//! > irregular relationships.
//!
//! That is the relation's own definition (a union over its relationships) with every fast
//! edge followed at once: a fast edge contributes its target's value unchanged. Irregular
//! relationships are evaluated as before (caveats, expiry, other types' usersets), through
//! the ordinary recursion with its cycle cutting and depth limit. The index is used only when
//! the snapshot holds its `built` row, so a store that has not built it (or a relation whose
//! index was switched off) is simply walked.

use std::collections::HashMap;
use std::rc::Rc;

use super::analysis::NodeId;
use super::{EngineError, Evaluator};
use crate::model::Relationship;
use crate::store::SnapshotReader;
use crate::store::leopard::{
    IndexState, closure_filter, closure_type, nested_subject, state_filter,
};

/// The index as one evaluation sees it: per node, its state read at most once.
#[derive(Default)]
pub(crate) struct NestedIndex {
    states: HashMap<NodeId, Option<Rc<IndexState>>>,
    /// Per node, what the caller noted about the read of its state (a check run: the span of
    /// its noted reads, replayed at each reuse).
    notes: HashMap<NodeId, Option<(u32, u32)>>,
}

impl NestedIndex {
    /// The index state of `node` when it is a nesting relation whose index the snapshot has
    /// complete; `None` means "walk it".
    pub(crate) fn state(
        &mut self,
        ev: &Evaluator<'_>,
        reader: &mut dyn SnapshotReader,
        node: NodeId,
    ) -> Result<Option<Rc<IndexState>>, EngineError> {
        let n = ev.index().get(node);
        if !n.nests {
            return Ok(None);
        }
        if let Some(s) = self.states.get(&node) {
            return Ok(s.clone());
        }
        let rows = reader.read(&state_filter(&n.type_name, &n.name))?;
        let state = IndexState::from_rows(&rows);
        let state = state.built.then(|| Rc::new(state));
        self.states.insert(node, state.clone());
        Ok(state)
    }

    /// What the caller noted about `node`'s state read ([`NestedIndex::note`]); `None` before
    /// it is read.
    pub(crate) fn noted(&self, node: NodeId) -> Option<Option<(u32, u32)>> {
        self.notes.get(&node).copied()
    }

    /// Keeps `note` with `node`'s state, for [`NestedIndex::noted`].
    pub(crate) fn note(&mut self, node: NodeId, note: Option<(u32, u32)>) {
        self.notes.insert(node, note);
    }

    /// Whether `node` is a nesting relation with a complete index in the snapshot. Kept out of
    /// line so the evaluators' recursive frames stay small.
    #[inline(never)]
    pub(crate) fn covers(
        &mut self,
        ev: &Evaluator<'_>,
        reader: &mut dyn SnapshotReader,
        node: NodeId,
    ) -> Result<bool, EngineError> {
        Ok(self.state(ev, reader, node)?.is_some())
    }
}

/// Whether `b` is nested in `a` (through fast edges; never true for `a == b`).
pub(crate) fn contains(
    ev: &Evaluator<'_>,
    reader: &mut dyn SnapshotReader,
    node: NodeId,
    a: &str,
    b: &str,
) -> Result<bool, EngineError> {
    let n = ev.index().get(node);
    Ok(!reader
        .read(&closure_filter(&n.type_name, &n.name, a, Some(b)))?
        .is_empty())
}

/// The objects nested in `a`, ascending.
pub(crate) fn nested(
    ev: &Evaluator<'_>,
    reader: &mut dyn SnapshotReader,
    node: NodeId,
    a: &str,
) -> Result<Vec<String>, EngineError> {
    let n = ev.index().get(node);
    Ok(reader
        .read(&closure_filter(&n.type_name, &n.name, a, None))?
        .into_iter()
        .map(|r| r.subject.object.object_id)
        .collect())
}

/// The objects `b` is nested in, ascending.
pub(crate) fn nested_in(
    ev: &Evaluator<'_>,
    reader: &mut dyn SnapshotReader,
    node: NodeId,
    b: &str,
) -> Result<Vec<String>, EngineError> {
    let n = ev.index().get(node);
    Ok(reader
        .reverse(
            &nested_subject(&n.type_name, &n.name, b),
            &closure_type(&n.type_name),
            &n.name,
            None,
        )?
        .into_iter()
        .map(|r| r.resource.object_id)
        .collect())
}

/// True for a relationship the index follows by itself: a fast edge of `node`.
pub(crate) fn is_fast_edge(ev: &Evaluator<'_>, node: NodeId, r: &Relationship) -> bool {
    let n = ev.index().get(node);
    !r.subject.is_wildcard()
        && r.subject.object.object_type == n.type_name
        && r.subject.relation.as_deref() == Some(n.name.as_str())
        && r.caveat.is_none()
        && r.expiration.is_none()
}
