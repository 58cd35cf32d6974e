//! LookupResources: every resource of a type on which a subject has a permission.
//!
//! Instead of checking every object of the type, walk backwards from the subject: start at
//! the relationships naming the subject (or a wildcard of its type) and follow the schema's
//! reverse edges — userset memberships, computed references, arrows — through the reverse
//! index, visiting only nodes the target permission depends on. A non-`No` answer always
//! needs a chain of positive dependencies from such a relationship, so every resource that
//! may have the permission is found ("reached"), and a key that is not reached is `No`.
//!
//! Phase two decides which reached resources certainly have the permission: those proven by
//! a chain of uncaveated relationships through unions only, where an exclusion on the way
//! counts as a union if its subtracted side cannot hold for the subject (none of the keys it
//! depends on was reached). Everything else reached (through an intersection, an `.all`
//! arrow, a caveat, or a possibly holding exclusion) is confirmed with a check; all
//! confirmations share one memo, pre-filled with the keys already proven.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use super::analysis::{NodeId, NodeKind, Purity, ReverseEdge, Rw};
use super::check::CheckRun;
use super::leopard::{self, NestedIndex};
use super::{CheckOutcome, EngineError, Evaluator, LookupResource};
use crate::model::{
    Context, Relationship, SubjectFilter, SubjectRef, SubjectRelationFilter, WILDCARD_ID,
};
use crate::store::SnapshotReader;
use crate::store::leopard::IndexState;

/// The part of the dependency graph the walk has discovered.
struct Walk<'e, 'a> {
    ev: &'e Evaluator<'a>,
    /// Per node: object id → key index.
    ids: Vec<HashMap<String, u32>>,
    /// Key index → (node, object id, distance from the subject).
    keys: Vec<(NodeId, String, u32)>,
    /// Key index → the keys it raises, and how surely.
    edges: Vec<Vec<(u32, Purity)>>,
    /// Keys that hold certainly, without any further condition.
    seeds: Vec<u32>,
    queue: VecDeque<u32>,
    /// Per key: reached through the nested-group index, so everything it is nested in is
    /// reached already.
    closed: Vec<bool>,
    reader: Box<dyn SnapshotReader + 'e>,
    nested: NestedIndex,
}

impl Walk<'_, '_> {
    /// The index of key `(node, id)`, discovering it (at distance `dist`) if new.
    fn reach(&mut self, node: NodeId, id: String, dist: u32) -> Result<u32, EngineError> {
        if let Some(&k) = self.ids[node as usize].get(&id) {
            return Ok(k);
        }
        if dist > self.ev.config.max_depth {
            return Err(EngineError::DepthExceeded {
                limit: self.ev.config.max_depth,
                at: self.ev.describe(node, &id),
            });
        }
        let k = self.keys.len() as u32;
        self.ids[node as usize].insert(id.clone(), k);
        self.keys.push((node, id, dist));
        self.edges.push(Vec::new());
        self.closed.push(false);
        self.queue.push_back(k);
        Ok(k)
    }

    fn reverse(
        &mut self,
        subject: SubjectFilter,
        resource_node: NodeId,
    ) -> Result<Vec<Relationship>, EngineError> {
        let n = self.ev.index().get(resource_node);
        Ok(self.reader.reverse(&subject, &n.type_name, &n.name)?)
    }

    /// The index state of `node` when it is an indexed nesting relation.
    fn nested_state(&mut self, node: NodeId) -> Result<Option<Rc<IndexState>>, EngineError> {
        self.nested.state(self.ev, &mut *self.reader, node)
    }

    /// Key `k` of an indexed nesting relation holds: so does every object it is nested in.
    fn close(&mut self, k: u32) -> Result<(), EngineError> {
        if std::mem::replace(&mut self.closed[k as usize], true) {
            return Ok(());
        }
        let (node, id, dist) = self.keys[k as usize].clone();
        for a in leopard::nested_in(self.ev, &mut *self.reader, node, &id)? {
            let to = self.reach(node, a, dist + 1)?;
            self.closed[to as usize] = true;
            self.edges[k as usize].push((to, Purity::Exact));
        }
        Ok(())
    }

    /// The irregular nestings of indexed relations whose member side is reached: their
    /// container side is reached too (through the caveat, if any). True when a key was added.
    fn irregular_nestings(&mut self, relevant: &[bool]) -> Result<bool, EngineError> {
        let mut added = false;
        let nodes: Vec<NodeId> = (0..self.ids.len() as NodeId)
            .filter(|&n| relevant[n as usize] && !self.ids[n as usize].is_empty())
            .collect();
        for node in nodes {
            let Some(state) = self.nested_state(node)? else {
                continue;
            };
            let n = self.ev.index().get(node);
            let own = SubjectFilter {
                subject_type: n.type_name.clone(),
                subject_id: None,
                relation: SubjectRelationFilter::Relation(n.name.clone()),
            };
            for (x, _) in &state.irregular {
                for rel in self
                    .ev
                    .read_via(&mut *self.reader, node, x, Some(own.clone()))?
                {
                    if leopard::is_fast_edge(self.ev, node, &rel) {
                        continue;
                    }
                    let Some(&from) = self.ids[node as usize].get(&rel.subject.object.object_id)
                    else {
                        continue;
                    };
                    let dist = self.keys[from as usize].2;
                    let before = self.keys.len();
                    let to = self.reach(node, x.clone(), dist + 1)?;
                    added |= self.keys.len() > before;
                    let purity = match rel.caveat {
                        None => Purity::Exact,
                        Some(_) => Purity::Impure,
                    };
                    if !self.edges[from as usize].contains(&(to, purity)) {
                        self.edges[from as usize].push((to, purity));
                    }
                }
            }
        }
        Ok(added)
    }

    /// Whether `rw`, evaluated on object `id`, may be other than `No` for the subject: only
    /// if some key it depends on was reached.
    fn may_hold(&self, rw: &Rw, id: &str) -> bool {
        match rw {
            Rw::Nil => false,
            Rw::Computed(n) => self.ids[*n as usize].contains_key(id),
            // The tupleset's objects are not known here; any reached key of the computed
            // relation (on any object) keeps the possibility open.
            Rw::Arrow {
                computed_by_def, ..
            } => computed_by_def
                .iter()
                .flatten()
                .any(|n| !self.ids[*n as usize].is_empty()),
            Rw::Union(items) => items.iter().any(|i| self.may_hold(i, id)),
            Rw::Intersection(items) => items.iter().all(|i| self.may_hold(i, id)),
            Rw::Exclusion(base, _) => self.may_hold(base, id),
        }
    }
}

pub(crate) fn lookup(
    ev: &Evaluator<'_>,
    target: NodeId,
    subject: &SubjectRef,
    context: &Context,
) -> Result<Vec<LookupResource>, EngineError> {
    let index = ev.index();
    let (subject_def, subject_node) = ev.resolve_subject(subject)?;
    let relevant = index.support(target);
    let mut walk = Walk {
        ev,
        ids: std::iter::repeat_with(HashMap::new)
            .take(index.nodes.len())
            .collect(),
        keys: Vec::new(),
        edges: Vec::new(),
        seeds: Vec::new(),
        queue: VecDeque::new(),
        closed: Vec::new(),
        reader: ev.snapshot.reader(),
        nested: NestedIndex::default(),
    };

    // Phase one, seeds: the userset itself, and relationships naming the subject or its
    // wildcard.
    if let Some(n) = subject_node
        && relevant[n as usize]
    {
        let k = walk.reach(n, subject.object.object_id.clone(), 1)?;
        walk.seeds.push(k);
    }
    for (q, node) in index.nodes.iter().enumerate() {
        let q = q as NodeId;
        let NodeKind::Relation(info) = &node.kind else {
            continue;
        };
        if !relevant[q as usize] {
            continue;
        }
        let exact_allowed = match subject_node {
            None => info.direct.contains(&subject_def),
            Some(n) => info.usersets.contains(&(subject_def, n)),
        };
        let mut filters = Vec::new();
        if exact_allowed {
            filters.push(SubjectFilter {
                subject_type: subject.object.object_type.clone(),
                subject_id: Some(subject.object.object_id.clone()),
                relation: match &subject.relation {
                    Some(r) => SubjectRelationFilter::Relation(r.clone()),
                    None => SubjectRelationFilter::Ellipsis,
                },
            });
        }
        if subject_node.is_none()
            && info.wildcard.contains(&subject_def)
            && !(exact_allowed && subject.object.object_id == WILDCARD_ID)
        {
            filters.push(SubjectFilter {
                subject_type: subject.object.object_type.clone(),
                subject_id: Some(WILDCARD_ID.to_string()),
                relation: SubjectRelationFilter::Ellipsis,
            });
        }
        for f in filters {
            for rel in walk.reverse(f, q)? {
                let k = walk.reach(q, rel.resource.object_id, 1)?;
                if rel.caveat.is_none() {
                    walk.seeds.push(k);
                }
            }
        }
    }

    // Phase one: discover every reachable key and the edges between them.
    loop {
        let Some(k) = walk.queue.pop_front() else {
            // Irregular nestings may reach more keys; then walk on from them.
            if walk.irregular_nestings(&relevant)? {
                continue;
            }
            break;
        };
        let (node, id, dist) = walk.keys[k as usize].clone();
        let from = index.get(node);
        let indexed = walk.nested_state(node)?.is_some();
        if indexed {
            walk.close(k)?;
        }
        for edge in &from.reverse {
            match *edge {
                // The index has followed the nestings of an indexed relation.
                ReverseEdge::Userset { target } if indexed && target == node => {}
                ReverseEdge::Computed { target: t, purity } => {
                    if relevant[t as usize] {
                        let to = walk.reach(t, id.clone(), dist + 1)?;
                        walk.edges[k as usize].push((to, purity));
                    }
                }
                ReverseEdge::Userset { target: t } => {
                    if !relevant[t as usize] {
                        continue;
                    }
                    let f = SubjectFilter {
                        subject_type: from.type_name.clone(),
                        subject_id: Some(id.clone()),
                        relation: SubjectRelationFilter::Relation(from.name.clone()),
                    };
                    for rel in walk.reverse(f, t)? {
                        let to = walk.reach(t, rel.resource.object_id, dist + 1)?;
                        let purity = match rel.caveat {
                            None => Purity::Exact,
                            Some(_) => Purity::Impure,
                        };
                        walk.edges[k as usize].push((to, purity));
                    }
                }
                ReverseEdge::Arrow {
                    target: t,
                    tupleset,
                    purity,
                } => {
                    // Arrows skip wildcard subjects of the tupleset.
                    if !relevant[t as usize] || id == WILDCARD_ID {
                        continue;
                    }
                    let f = SubjectFilter {
                        subject_type: from.type_name.clone(),
                        subject_id: Some(id.clone()),
                        relation: SubjectRelationFilter::Any,
                    };
                    for rel in walk.reverse(f, tupleset)? {
                        let to = walk.reach(t, rel.resource.object_id, dist + 1)?;
                        let purity = match rel.caveat {
                            None => purity,
                            Some(_) => Purity::Impure,
                        };
                        walk.edges[k as usize].push((to, purity));
                    }
                }
            }
        }
    }

    // Phase two: which keys certainly hold. A guarded edge proves its target when none of
    // the guards (subtracted expressions on the target's object) may hold.
    let mut certain = vec![false; walk.keys.len()];
    let mut stack: Vec<u32> = Vec::new();
    for &k in &walk.seeds {
        if !certain[k as usize] {
            certain[k as usize] = true;
            stack.push(k);
        }
    }
    while let Some(k) = stack.pop() {
        for &(to, purity) in &walk.edges[k as usize] {
            if certain[to as usize] {
                continue;
            }
            let proves = match purity {
                Purity::Exact => true,
                Purity::Guarded(g) => {
                    let id = &walk.keys[to as usize].1;
                    !index.guards[g as usize]
                        .iter()
                        .any(|guard| walk.may_hold(guard, id))
                }
                Purity::Impure => false,
            };
            if proves {
                certain[to as usize] = true;
                stack.push(to);
            }
        }
    }

    let mut candidates: Vec<(String, bool)> = std::mem::take(&mut walk.ids[target as usize])
        .into_iter()
        .map(|(id, k)| (id, certain[k as usize]))
        .collect();
    candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0));

    let mut run: Option<CheckRun<'_, '_>> = None;
    let mut out = Vec::with_capacity(candidates.len());
    for (id, is_certain) in candidates {
        let outcome = if is_certain {
            CheckOutcome::Has
        } else {
            let run = match &mut run {
                Some(r) => r,
                None => {
                    let mut r = CheckRun::new(ev, subject, context)?;
                    for (k, (node, key_id, _)) in walk.keys.iter().enumerate() {
                        if certain[k] {
                            r.assume_has(*node, key_id);
                        }
                    }
                    run.insert(r)
                }
            };
            run.check_root(target, &id)?
        };
        if outcome != CheckOutcome::No {
            out.push(LookupResource {
                resource_id: id,
                outcome,
            });
        }
    }
    Ok(out)
}
