//! Expand: the userset tree of `object#relation`, as the reference API returns it.
//!
//! A relation is a leaf of its direct subjects (usersets are listed, not followed). A
//! permission is its rewrite: computed relations on the same object are expanded in place,
//! and an arrow becomes a union (an intersection for `.all`) over the tupleset's objects of
//! the expansion of the computed relation on each. A key met again on its own path (a cycle
//! through arrows in the data) becomes an empty union: a cycle contributes nothing.

use super::analysis::{NodeId, NodeKind, Rw};
use super::check::{group_by_subject_object, group_end};
use super::{EngineError, Evaluator, ExpandNode, ExpandSubject, ExpandTree};
use crate::model::{ObjectRef, WILDCARD_ID};
use crate::store::SnapshotReader;

pub(crate) struct Expander<'e, 'a> {
    ev: &'e Evaluator<'a>,
    path: Vec<(NodeId, String)>,
    reader: Box<dyn SnapshotReader + 'e>,
}

impl<'e, 'a> Expander<'e, 'a> {
    pub(crate) fn new(ev: &'e Evaluator<'a>) -> Self {
        Expander {
            ev,
            path: Vec::new(),
            reader: ev.snapshot.reader(),
        }
    }

    pub(crate) fn expand_key(
        &mut self,
        node: NodeId,
        id: &str,
        depth: u32,
    ) -> Result<ExpandTree, EngineError> {
        let index = self.ev.index();
        let info = index.get(node);
        let expanded = Some((ObjectRef::new(&info.type_name, id), info.name.clone()));
        if self.path.iter().any(|(n, i)| *n == node && i == id) {
            return Ok(ExpandTree {
                expanded,
                node: ExpandNode::Union(Vec::new()),
            });
        }
        if depth > self.ev.config.max_depth {
            return Err(EngineError::DepthExceeded {
                limit: self.ev.config.max_depth,
                at: self.ev.describe(node, id),
            });
        }
        self.path.push((node, id.to_string()));
        let result = match &info.kind {
            NodeKind::Relation(_) => self.leaf(node, id),
            // A permission that is just another relation keeps that relation as a named child.
            NodeKind::Permission(rw) => self.rewrite(rw, id, depth).map(|t| match t.expanded {
                Some(_) => ExpandNode::Union(vec![t]),
                None => t.node,
            }),
        };
        self.path.pop();
        Ok(ExpandTree {
            expanded,
            node: result?,
        })
    }

    fn leaf(&mut self, node: NodeId, id: &str) -> Result<ExpandNode, EngineError> {
        let subjects = self
            .ev
            .read_via(&mut *self.reader, node, id, None)?
            .into_iter()
            .map(|r| ExpandSubject {
                subject: r.subject,
                caveat: r.caveat.map(|c| c.name),
            })
            .collect();
        Ok(ExpandNode::Leaf(subjects))
    }

    fn rewrite(&mut self, rw: &Rw, id: &str, depth: u32) -> Result<ExpandTree, EngineError> {
        let node = match rw {
            Rw::Nil => ExpandNode::Leaf(Vec::new()),
            Rw::Computed(n) => return self.expand_key(*n, id, depth + 1),
            Rw::Union(items) => ExpandNode::Union(self.children(items, id, depth)?),
            Rw::Intersection(items) => ExpandNode::Intersection(self.children(items, id, depth)?),
            Rw::Exclusion(a, b) => ExpandNode::Exclusion(vec![
                self.rewrite(a, id, depth)?,
                self.rewrite(b, id, depth)?,
            ]),
            Rw::Arrow {
                tupleset,
                computed_by_def,
                all,
            } => {
                let mut rels = self.ev.read_via(&mut *self.reader, *tupleset, id, None)?;
                group_by_subject_object(&mut rels);
                let mut children = Vec::new();
                let mut i = 0;
                while i < rels.len() {
                    let end = group_end(&rels, i);
                    let object = &rels[i].subject.object;
                    i = end;
                    if object.object_id == WILDCARD_ID {
                        continue;
                    }
                    let target = self
                        .ev
                        .def_of(&object.object_type)
                        .and_then(|d| computed_by_def.get(d as usize).copied().flatten());
                    if let Some(target) = target {
                        children.push(self.expand_key(target, &object.object_id, depth + 1)?);
                    }
                }
                if *all && !children.is_empty() {
                    ExpandNode::Intersection(children)
                } else {
                    ExpandNode::Union(children)
                }
            }
        };
        Ok(ExpandTree {
            expanded: None,
            node,
        })
    }

    fn children(
        &mut self,
        items: &[Rw],
        id: &str,
        depth: u32,
    ) -> Result<Vec<ExpandTree>, EngineError> {
        items.iter().map(|i| self.rewrite(i, id, depth)).collect()
    }
}
