//! LookupResources: every resource of a type on which a subject has a permission.
//!
//! Instead of checking every object of the type, walk backwards from the subject: start at
//! the relationships naming the subject (or a wildcard of its type) and follow the schema's
//! reverse edges — userset memberships, computed references, arrows — through the reverse
//! index, visiting only nodes the target permission depends on. Every resource the subject
//! can possibly reach is found this way (a non-`No` answer always needs such a chain).
//!
//! A resource reached through unions only, over uncaveated relationships, certainly has the
//! permission. Anything reached otherwise (through an intersection, an exclusion's base, an
//! `.all` arrow or a caveat) is a candidate, confirmed with a check; all confirmations share
//! one memo.

use std::collections::{HashMap, VecDeque};

use super::analysis::{NodeId, NodeKind, ReverseEdge};
use super::check::CheckRun;
use super::{CheckOutcome, EngineError, Evaluator, LookupResource};
use crate::model::{
    Context, Relationship, SubjectFilter, SubjectRef, SubjectRelationFilter, WILDCARD_ID,
};

struct Walk<'e, 'a> {
    ev: &'e Evaluator<'a>,
    /// Per node: object id → (reached through unions only, distance from the subject).
    visited: Vec<HashMap<String, (bool, u32)>>,
    queue: VecDeque<(NodeId, String)>,
}

impl Walk<'_, '_> {
    fn reach(
        &mut self,
        node: NodeId,
        id: String,
        exact: bool,
        dist: u32,
    ) -> Result<(), EngineError> {
        let slot = &mut self.visited[node as usize];
        match slot.get_mut(&id) {
            Some((seen_exact, _)) => {
                if exact && !*seen_exact {
                    *seen_exact = true;
                    self.queue.push_back((node, id));
                }
            }
            None => {
                if dist > self.ev.config.max_depth {
                    return Err(EngineError::DepthExceeded {
                        limit: self.ev.config.max_depth,
                        at: self.ev.describe(node, &id),
                    });
                }
                slot.insert(id.clone(), (exact, dist));
                self.queue.push_back((node, id));
            }
        }
        Ok(())
    }

    fn reverse(
        &self,
        subject: SubjectFilter,
        resource_node: NodeId,
    ) -> Result<Vec<Relationship>, EngineError> {
        let n = self.ev.index().get(resource_node);
        let mut out = Vec::new();
        for r in self
            .ev
            .snapshot
            .reverse_query(&subject, Some(&n.type_name), Some(&n.name))?
        {
            out.push(r?);
        }
        Ok(out)
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
    let relevant = index.positive_support(target);
    let mut walk = Walk {
        ev,
        visited: std::iter::repeat_with(HashMap::new)
            .take(index.nodes.len())
            .collect(),
        queue: VecDeque::new(),
    };

    // Seeds: the userset itself, and relationships naming the subject or its wildcard.
    if let Some(n) = subject_node
        && relevant[n as usize]
    {
        walk.reach(n, subject.object.object_id.clone(), true, 1)?;
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
                let exact = rel.caveat.is_none();
                walk.reach(q, rel.resource.object_id, exact, 1)?;
            }
        }
    }

    while let Some((node, id)) = walk.queue.pop_front() {
        let Some(&(exact, dist)) = walk.visited[node as usize].get(&id) else {
            continue;
        };
        let from = index.get(node);
        for edge in &from.reverse {
            match *edge {
                ReverseEdge::Computed { target: t, pure } => {
                    if relevant[t as usize] {
                        walk.reach(t, id.clone(), exact && pure, dist + 1)?;
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
                        let e = exact && rel.caveat.is_none();
                        walk.reach(t, rel.resource.object_id, e, dist + 1)?;
                    }
                }
                ReverseEdge::Arrow {
                    target: t,
                    tupleset,
                    pure,
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
                        let e = exact && pure && rel.caveat.is_none();
                        walk.reach(t, rel.resource.object_id, e, dist + 1)?;
                    }
                }
            }
        }
    }

    let mut candidates: Vec<(String, bool)> = std::mem::take(&mut walk.visited[target as usize])
        .into_iter()
        .map(|(id, (exact, _))| (id, exact))
        .collect();
    candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0));

    let mut run: Option<CheckRun<'_, '_>> = None;
    let mut out = Vec::with_capacity(candidates.len());
    for (id, exact) in candidates {
        let outcome = if exact {
            CheckOutcome::Has
        } else {
            let run = match &mut run {
                Some(r) => r,
                None => run.insert(CheckRun::new(ev, subject, context)?),
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
