//! Check: does a subject have a relation or permission on an object?
//!
//! A *key* is `(object, relation-or-permission)`; the subject is fixed for a whole run, so it
//! is not part of the key. Evaluation is a depth-first recursion over keys with:
//!
//! - **Cycle cutting.** A key already being evaluated further up the current path
//!   contributes `No` ("a cycle contributes nothing"). For monotone parts of a schema this is
//!   exactly the least fixpoint.
//! - **Memoisation.** A finished key's result is remembered for the rest of the run — but
//!   only when it cannot depend on the path that led to it. A result computed while a cycle
//!   was cut at a key *above* it (still in progress) may be too small, so it is not stored
//!   (the lowest cut position is tracked like Tarjan's low-link). And in a schema component
//!   that is not stratified (it depends on itself through an exclusion's subtracted side),
//!   answers genuinely depend on the path, so results are only stored and reused when no
//!   other key of that component is in progress. With these rules the answer equals a naive
//!   evaluation that keeps the visited path and no memo at all.
//! - **A depth limit**: the recursion nests at most `max_depth` keys, so the native stack is
//!   bounded (a few hundred bytes per level).

use std::collections::HashMap;

use super::analysis::{NodeId, NodeKind, Rw, SchemaIndex};
use super::outcome::{exclude, intersect, negate, union};
use super::{CheckOutcome, EngineError, Evaluator};
use crate::model::{
    Context, Relationship, SubjectFilter, SubjectRef, SubjectRelationFilter, WILDCARD_ID,
};

/// The state of one check request (or of the confirmation checks of one lookup): a fixed
/// subject, the memo and the current path.
pub(crate) struct CheckRun<'e, 'a> {
    ev: &'e Evaluator<'a>,
    index: &'e SchemaIndex,
    subject: &'e SubjectRef,
    subject_def: u32,
    /// The node of the subject's relation when the subject is a userset.
    subject_node: Option<NodeId>,
    context: &'e Context,
    /// Finished results per node, by object id.
    memo: Vec<HashMap<String, CheckOutcome>>,
    /// Keys in progress, outermost first.
    stack: Vec<(NodeId, String)>,
    /// Keys in progress per schema component.
    scc_active: Vec<u32>,
    /// Lowest stack position at which a cycle was cut in the current subtree.
    low: usize,
}

impl<'e, 'a> CheckRun<'e, 'a> {
    pub(crate) fn new(
        ev: &'e Evaluator<'a>,
        subject: &'e SubjectRef,
        context: &'e Context,
    ) -> Result<Self, EngineError> {
        let (subject_def, subject_node) = ev.resolve_subject(subject)?;
        let index = ev.index();
        Ok(CheckRun {
            ev,
            index,
            subject,
            subject_def,
            subject_node,
            context,
            memo: std::iter::repeat_with(HashMap::new)
                .take(index.nodes.len())
                .collect(),
            stack: Vec::new(),
            scc_active: vec![0; index.scc_count],
            low: usize::MAX,
        })
    }

    /// Records that `node` on object `id` is already known to hold for the subject (proven
    /// by a lookup's walk), as if memoised. Such a proof never depends on the path.
    pub(crate) fn assume_has(&mut self, node: NodeId, id: &str) {
        self.memo[node as usize].insert(id.to_string(), CheckOutcome::Has);
    }

    /// Evaluates `node` on object `id` as the root of a request.
    pub(crate) fn check_root(
        &mut self,
        node: NodeId,
        id: &str,
    ) -> Result<CheckOutcome, EngineError> {
        self.check_key(node, id, 1)
    }

    fn check_key(
        &mut self,
        node: NodeId,
        id: &str,
        depth: u32,
    ) -> Result<CheckOutcome, EngineError> {
        // A userset contains itself.
        if self.subject_node == Some(node) && self.subject.object.object_id == id {
            return Ok(CheckOutcome::Has);
        }
        let info = self.index.get(node);
        let scc = info.scc as usize;
        let memo_ok = info.stratified || self.scc_active[scc] == 0;
        if memo_ok && let Some(v) = self.memo[node as usize].get(id) {
            return Ok(v.clone());
        }
        if let Some(pos) = self.stack.iter().position(|(n, i)| *n == node && i == id) {
            self.low = self.low.min(pos);
            return Ok(CheckOutcome::No);
        }
        if depth > self.ev.config.max_depth {
            return Err(EngineError::DepthExceeded {
                limit: self.ev.config.max_depth,
                at: self.ev.describe(node, id),
            });
        }

        let pos = self.stack.len();
        self.stack.push((node, id.to_string()));
        self.scc_active[scc] += 1;
        let outer_low = std::mem::replace(&mut self.low, usize::MAX);
        let result = self.eval_node(node, id, depth);
        let my_low = self.low;
        self.low = outer_low.min(my_low);
        self.scc_active[scc] -= 1;
        let popped = self.stack.pop();
        let result = result?;
        if memo_ok
            && my_low >= pos
            && let Some((_, key)) = popped
        {
            self.memo[node as usize].insert(key, result.clone());
        }
        Ok(result)
    }

    fn eval_node(
        &mut self,
        node: NodeId,
        id: &str,
        depth: u32,
    ) -> Result<CheckOutcome, EngineError> {
        let index = self.index;
        match &index.get(node).kind {
            NodeKind::Relation(_) => self.eval_relation(node, id, depth),
            NodeKind::Permission(rw) => self.eval_rewrite(rw, id, depth),
        }
    }

    /// A relation: the subject itself, a matching wildcard, or a userset containing it.
    fn eval_relation(
        &mut self,
        node: NodeId,
        id: &str,
        depth: u32,
    ) -> Result<CheckOutcome, EngineError> {
        let index = self.index;
        let NodeKind::Relation(info) = &index.get(node).kind else {
            return Ok(CheckOutcome::No);
        };
        let mut acc = CheckOutcome::No;

        let exact_allowed = match self.subject_node {
            None => info.direct.contains(&self.subject_def),
            Some(n) => info.usersets.contains(&(self.subject_def, n)),
        };
        if exact_allowed {
            let filter = SubjectFilter {
                subject_type: self.subject.object.object_type.clone(),
                subject_id: Some(self.subject.object.object_id.clone()),
                relation: match &self.subject.relation {
                    Some(r) => SubjectRelationFilter::Relation(r.clone()),
                    None => SubjectRelationFilter::Ellipsis,
                },
            };
            for rel in self.ev.read(node, id, Some(filter))? {
                acc = union(acc, self.ev.caveat_value(&rel, self.context)?);
                if acc == CheckOutcome::Has {
                    return Ok(acc);
                }
            }
        }

        if self.subject_node.is_none() && info.wildcard.contains(&self.subject_def) {
            let filter = SubjectFilter {
                subject_type: self.subject.object.object_type.clone(),
                subject_id: Some(WILDCARD_ID.to_string()),
                relation: SubjectRelationFilter::Ellipsis,
            };
            for rel in self.ev.read(node, id, Some(filter))? {
                acc = union(acc, self.ev.caveat_value(&rel, self.context)?);
                if acc == CheckOutcome::Has {
                    return Ok(acc);
                }
            }
        }

        for &(_, userset) in &info.usersets {
            let u = index.get(userset);
            let filter = SubjectFilter {
                subject_type: u.type_name.clone(),
                subject_id: None,
                relation: SubjectRelationFilter::Relation(u.name.clone()),
            };
            for rel in self.ev.read(node, id, Some(filter))? {
                if rel.subject.is_wildcard() {
                    continue;
                }
                let cv = self.ev.caveat_value(&rel, self.context)?;
                if cv == CheckOutcome::No {
                    continue;
                }
                let member = self.check_key(userset, &rel.subject.object.object_id, depth + 1)?;
                acc = union(acc, intersect(cv, member));
                if acc == CheckOutcome::Has {
                    return Ok(acc);
                }
            }
        }
        Ok(acc)
    }

    fn eval_rewrite(&mut self, rw: &Rw, id: &str, depth: u32) -> Result<CheckOutcome, EngineError> {
        Ok(match rw {
            Rw::Nil => CheckOutcome::No,
            Rw::Computed(node) => self.check_key(*node, id, depth + 1)?,
            Rw::Union(items) => {
                let mut acc = CheckOutcome::No;
                for item in items {
                    acc = union(acc, self.eval_rewrite(item, id, depth)?);
                    if acc == CheckOutcome::Has {
                        break;
                    }
                }
                acc
            }
            Rw::Intersection(items) => {
                let mut acc = CheckOutcome::Has;
                for item in items {
                    acc = intersect(acc, self.eval_rewrite(item, id, depth)?);
                    if acc == CheckOutcome::No {
                        break;
                    }
                }
                acc
            }
            Rw::Exclusion(base, sub) => {
                let b = self.eval_rewrite(base, id, depth)?;
                if b == CheckOutcome::No {
                    return Ok(b);
                }
                exclude(b, self.eval_rewrite(sub, id, depth)?)
            }
            Rw::Arrow {
                tupleset,
                computed_by_def,
                all,
            } => self.eval_arrow(*tupleset, computed_by_def, *all, id, depth)?,
        })
    }

    /// `tupleset->computed` (any) or `tupleset.all(computed)`.
    ///
    /// Relationships are grouped by subject object: an object is in the tupleset with the
    /// union of its relationships' caveat values `m`. Any = ∪ (m ∩ c); all = (∪ (m ∩ c)) ∩
    /// ∩ (¬m ∪ c), which is `No` when there is no object.
    fn eval_arrow(
        &mut self,
        tupleset: NodeId,
        computed_by_def: &[Option<NodeId>],
        all: bool,
        id: &str,
        depth: u32,
    ) -> Result<CheckOutcome, EngineError> {
        let mut rels = self.ev.read(tupleset, id, None)?;
        group_by_subject_object(&mut rels);
        let mut any = CheckOutcome::No;
        let mut every = CheckOutcome::Has;
        let mut i = 0;
        while i < rels.len() {
            let end = group_end(&rels, i);
            let group = &rels[i..end];
            i = end;
            let object = &group[0].subject.object;
            if object.object_id == WILDCARD_ID {
                continue;
            }
            let Some(target) = self
                .ev
                .def_of(&object.object_type)
                .and_then(|d| computed_by_def.get(d as usize).copied().flatten())
            else {
                continue;
            };
            let mut m = CheckOutcome::No;
            for r in group {
                m = union(m, self.ev.caveat_value(r, self.context)?);
                if m == CheckOutcome::Has {
                    break;
                }
            }
            if m == CheckOutcome::No {
                continue;
            }
            let c = self.check_key(target, &object.object_id, depth + 1)?;
            if all {
                any = union(any, intersect(m.clone(), c.clone()));
                every = intersect(every, union(negate(m), c));
                if every == CheckOutcome::No {
                    return Ok(CheckOutcome::No);
                }
            } else {
                any = union(any, intersect(m, c));
                if any == CheckOutcome::Has {
                    return Ok(any);
                }
            }
        }
        Ok(if all { intersect(any, every) } else { any })
    }
}

/// Orders relationships so those with the same subject object are adjacent (the store
/// already returns them so; the stable sort keeps that cheap).
pub(crate) fn group_by_subject_object(rels: &mut [Relationship]) {
    rels.sort_by(|a, b| a.subject.object.cmp(&b.subject.object));
}

/// End (exclusive) of the run of relationships starting at `start` with the same subject object.
pub(crate) fn group_end(rels: &[Relationship], start: usize) -> usize {
    let object = &rels[start].subject.object;
    rels[start..]
        .iter()
        .position(|r| r.subject.object != *object)
        .map_or(rels.len(), |p| start + p)
}
