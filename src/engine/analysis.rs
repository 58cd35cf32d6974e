//! Facts about a compiled schema that every evaluation needs, derived once per schema.
//!
//! Relations and permissions are numbered densely ("nodes"), in schema order, so evaluation
//! state can live in vectors indexed by node instead of maps keyed by names. Rewrites are
//! resolved to node numbers. On top of that, the dependency graph between nodes gives:
//! - strongly connected components, and whether a component is *stratified* (no dependency
//!   inside it passes through the subtracted side of an exclusion). Only in stratified
//!   components is a memoised sub-result valid whatever path led to it; see `check.rs`.
//! - reverse edges ("which nodes can this one feed positively"), used by LookupResources
//!   to walk backwards from a subject, each with how certain the contribution is.

use crate::schema::{AllowedSubjectKind, ArrowKind, RelationKind, Rewrite, Schema};

/// Dense index of a relation or permission within a [`SchemaIndex`].
pub(crate) type NodeId = u32;

/// Derived, immutable evaluation data for one [`Schema`].
///
/// Building it walks the whole schema, so callers evaluating many requests against the same
/// schema should build it once (next to their `Arc<Schema>`) and pass it to
/// [`Evaluator::with_index`](super::Evaluator::with_index).
#[derive(Debug)]
pub struct SchemaIndex {
    /// First node id of each definition, in schema order.
    pub(crate) def_first: Vec<NodeId>,
    pub(crate) nodes: Vec<Node>,
    /// Number of strongly connected components (ids `0..scc_count`).
    pub(crate) scc_count: usize,
    /// Guard lists referenced by [`Purity::Guarded`]: subtracted expressions of a permission,
    /// evaluated on the permission's object.
    pub(crate) guards: Vec<Vec<Rw>>,
}

#[derive(Debug)]
pub(crate) struct Node {
    pub type_name: String,
    pub name: String,
    pub kind: NodeKind,
    pub scc: u32,
    /// False when the node's component contains a dependency through an exclusion's
    /// subtracted side: results there may depend on the evaluation path (see `check.rs`).
    pub stratified: bool,
    /// Nodes whose value this node can raise: the edges LookupResources walks backwards.
    pub reverse: Vec<ReverseEdge>,
    /// Nodes this node depends on, positively or through a subtracted side.
    pub forward: Vec<NodeId>,
    /// The nodes among `forward` it depends on through a subtracted side.
    pub negated: Vec<NodeId>,
    /// A relation allowing its own userset (`group#member: … | group#member`): nested, and
    /// covered by the nested-group index when the store has built it (`leopard.rs`).
    pub nests: bool,
}

#[derive(Debug)]
pub(crate) enum NodeKind {
    Relation(RelationInfo),
    Permission(Rw),
}

/// The allowed subject types of a relation, resolved.
#[derive(Debug, Default)]
pub(crate) struct RelationInfo {
    /// Definitions allowed as plain objects (`user`).
    pub direct: Vec<u32>,
    /// Definitions allowed as wildcards (`user:*`).
    pub wildcard: Vec<u32>,
    /// Allowed usersets (`group#member`): the subject definition and the node of its relation.
    pub usersets: Vec<(u32, NodeId)>,
}

/// A permission rewrite with names resolved to nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rw {
    Nil,
    Computed(NodeId),
    Arrow {
        tupleset: NodeId,
        /// For each definition (by index), the node of the computed relation on it, if the
        /// definition has one; subjects of other types are skipped.
        computed_by_def: Vec<Option<NodeId>>,
        all: bool,
    },
    Union(Vec<Rw>),
    Intersection(Vec<Rw>),
    Exclusion(Box<Rw>, Box<Rw>),
}

/// How surely `Has` on the source of a reverse edge makes `Has` on its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purity {
    /// Only unions (and `->`/`.any`) between the reference and the root of the rewrite.
    Exact,
    /// As exact, except that the reference sits in the base of exclusions: `Has` unless one
    /// of the subtracted expressions (guard list, by index) is not `No`.
    Guarded(u32),
    /// Under an intersection or an `.all` arrow: the target is only a candidate.
    Impure,
}

/// `from → target`: a value of `from` (on some object) can contribute to `target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReverseEdge {
    /// `from` is `S#r`, an allowed userset of relation `target`: follow stored relationships
    /// `target_object#target@S:id#r`.
    Userset { target: NodeId },
    /// `target` is a permission of the same definition referencing `from`.
    Computed { target: NodeId, purity: Purity },
    /// `target` is a permission with an arrow over `tupleset` whose computed relation is
    /// `from`: follow stored relationships `target_object#tupleset@S:id[#any]`.
    Arrow {
        target: NodeId,
        tupleset: NodeId,
        purity: Purity,
    },
}

impl ReverseEdge {
    /// Where the edge leads: the target node and, for arrows, the tupleset followed.
    fn place(&self) -> (NodeId, Option<NodeId>) {
        match *self {
            ReverseEdge::Userset { target } | ReverseEdge::Computed { target, .. } => {
                (target, None)
            }
            ReverseEdge::Arrow {
                target, tupleset, ..
            } => (target, Some(tupleset)),
        }
    }

    fn purity(&self) -> Purity {
        match *self {
            ReverseEdge::Userset { .. } => Purity::Exact,
            ReverseEdge::Computed { purity, .. } | ReverseEdge::Arrow { purity, .. } => purity,
        }
    }
}

impl SchemaIndex {
    /// Derives the evaluation index of `schema`. Never fails: names a hand-built schema
    /// leaves unresolved are treated as matching nothing.
    pub fn new(schema: &Schema) -> SchemaIndex {
        let mut def_first = Vec::with_capacity(schema.definitions.len());
        let mut total = 0u32;
        for def in schema.definitions.values() {
            def_first.push(total);
            total += u32::try_from(def.relations.len()).unwrap_or(u32::MAX);
        }
        let resolve = |type_name: &str, rel: &str| -> Option<NodeId> {
            let (d, _, def) = schema.definitions.get_full(type_name)?;
            let r = def.relations.get_index_of(rel)?;
            Some(def_first[d] + r as u32)
        };

        let mut nodes = Vec::with_capacity(total as usize);
        for (d, def) in schema.definitions.values().enumerate() {
            for rel in def.relations.values() {
                let kind = match &rel.kind {
                    RelationKind::Relation(allowed) => {
                        let mut info = RelationInfo::default();
                        for a in allowed {
                            let Some(sd) = schema.definitions.get_index_of(&a.subject_type) else {
                                continue;
                            };
                            let sd = sd as u32;
                            match &a.kind {
                                AllowedSubjectKind::Direct => push_unique(&mut info.direct, sd),
                                AllowedSubjectKind::Wildcard => push_unique(&mut info.wildcard, sd),
                                AllowedSubjectKind::Relation(r) => {
                                    if let Some(n) = resolve(&a.subject_type, r) {
                                        push_unique(&mut info.usersets, (sd, n));
                                    }
                                }
                            }
                        }
                        NodeKind::Relation(info)
                    }
                    RelationKind::Permission(rw) => {
                        NodeKind::Permission(resolve_rewrite(schema, d, rw, &resolve))
                    }
                };
                let id = nodes.len() as NodeId;
                let nests = matches!(&kind, NodeKind::Relation(info)
                    if info.usersets.iter().any(|(_, n)| *n == id));
                nodes.push(Node {
                    type_name: def.name.clone(),
                    name: rel.name.clone(),
                    kind,
                    scc: 0,
                    stratified: true,
                    reverse: Vec::new(),
                    forward: Vec::new(),
                    negated: Vec::new(),
                    nests,
                });
            }
        }

        let mut index = SchemaIndex {
            def_first,
            nodes,
            scc_count: 0,
            guards: Vec::new(),
        };
        index.build_graph();
        index
    }

    /// True when `self` was built from a schema with the same shape as `schema` (same
    /// definitions with the same number of relations), so node numbers line up.
    pub(crate) fn matches(&self, schema: &Schema) -> bool {
        self.def_first.len() == schema.definitions.len()
            && schema
                .definitions
                .values()
                .zip(&self.def_first)
                .all(|(def, first)| {
                    def.relations.get_index(0).is_none_or(|(name, _)| {
                        self.nodes
                            .get(*first as usize)
                            .is_some_and(|n| n.name == *name && n.type_name == def.name)
                    })
                })
            && self.nodes.len()
                == schema
                    .definitions
                    .values()
                    .map(|d| d.relations.len())
                    .sum::<usize>()
    }

    /// The node of `type#relation`, if both exist.
    pub(crate) fn node(
        &self,
        schema: &Schema,
        object_type: &str,
        relation: &str,
    ) -> Option<NodeId> {
        let (d, _, def) = schema.definitions.get_full(object_type)?;
        let r = def.relations.get_index_of(relation)?;
        Some(self.def_first[d] + r as u32)
    }

    pub(crate) fn get(&self, node: NodeId) -> &Node {
        &self.nodes[node as usize]
    }

    /// True when no component of the schema depends on itself through an exclusion's
    /// subtracted side; then every memoised sub-result is path independent.
    pub fn is_stratified(&self) -> bool {
        self.nodes.iter().all(|n| n.stratified)
    }

    /// Nodes `target` depends on, transitively, itself included: the only nodes a backwards
    /// walk towards `target` needs to visit.
    pub(crate) fn support(&self, target: NodeId) -> Vec<bool> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![target];
        seen[target as usize] = true;
        while let Some(n) = stack.pop() {
            for &m in &self.nodes[n as usize].forward {
                if !seen[m as usize] {
                    seen[m as usize] = true;
                    stack.push(m);
                }
            }
        }
        seen
    }

    fn build_graph(&mut self) {
        // Forward dependency edges (from, to, negated) and reverse edges, from each node.
        let n = self.nodes.len();
        let mut forward: Vec<Vec<(NodeId, bool)>> = vec![Vec::new(); n];
        let mut reverse: Vec<Vec<ReverseEdge>> = vec![Vec::new(); n];
        let mut guards: Vec<Vec<Rw>> = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let from = i as NodeId;
            match &node.kind {
                NodeKind::Relation(info) => {
                    for &(_, target) in &info.usersets {
                        forward[i].push((target, false));
                        push_unique(
                            &mut reverse[target as usize],
                            ReverseEdge::Userset { target: from },
                        );
                    }
                }
                NodeKind::Permission(rw) => {
                    let mut cx = EdgeCollector {
                        nodes: &self.nodes,
                        from,
                        forward: &mut forward[i],
                        reverse: &mut reverse,
                        guard_lists: &mut guards,
                        guards: Vec::new(),
                    };
                    cx.collect(rw, false, false);
                }
            }
        }

        let sccs = tarjan(&forward);
        let mut stratified = vec![true; sccs.count];
        for (i, edges) in forward.iter().enumerate() {
            for &(to, negated) in edges {
                if negated && sccs.component[i] == sccs.component[to as usize] {
                    stratified[sccs.component[i] as usize] = false;
                }
            }
        }
        for (i, node) in self.nodes.iter_mut().enumerate() {
            node.scc = sccs.component[i];
            node.stratified = stratified[node.scc as usize];
            node.reverse = std::mem::take(&mut reverse[i]);
            let mut all: Vec<NodeId> = forward[i].iter().map(|(to, _)| *to).collect();
            all.sort_unstable();
            all.dedup();
            node.forward = all;
            let mut negated: Vec<NodeId> = forward[i]
                .iter()
                .filter(|(_, n)| *n)
                .map(|(to, _)| *to)
                .collect();
            negated.sort_unstable();
            negated.dedup();
            node.negated = negated;
        }
        self.scc_count = sccs.count;
        self.guards = guards;
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}

fn resolve_rewrite(
    schema: &Schema,
    def: usize,
    rw: &Rewrite,
    resolve: &dyn Fn(&str, &str) -> Option<NodeId>,
) -> Rw {
    let def_name = schema
        .definitions
        .get_index(def)
        .map(|(name, _)| name.as_str())
        .unwrap_or_default();
    match rw {
        Rewrite::Nil => Rw::Nil,
        Rewrite::Computed(r) => match resolve(def_name, r) {
            Some(n) => Rw::Computed(n),
            None => Rw::Nil,
        },
        Rewrite::Arrow {
            tupleset,
            computed,
            kind,
        } => match resolve(def_name, tupleset) {
            Some(ts) => Rw::Arrow {
                tupleset: ts,
                computed_by_def: schema
                    .definitions
                    .keys()
                    .map(|t| resolve(t, computed))
                    .collect(),
                all: *kind == ArrowKind::All,
            },
            None => Rw::Nil,
        },
        Rewrite::Union(items) => Rw::Union(
            items
                .iter()
                .map(|i| resolve_rewrite(schema, def, i, resolve))
                .collect(),
        ),
        Rewrite::Intersection(items) => Rw::Intersection(
            items
                .iter()
                .map(|i| resolve_rewrite(schema, def, i, resolve))
                .collect(),
        ),
        Rewrite::Exclusion(a, b) => Rw::Exclusion(
            Box::new(resolve_rewrite(schema, def, a, resolve)),
            Box::new(resolve_rewrite(schema, def, b, resolve)),
        ),
    }
}

/// Collects the dependency edges of one permission's rewrite.
struct EdgeCollector<'n, 'r> {
    nodes: &'n [Node],
    from: NodeId,
    forward: &'r mut Vec<(NodeId, bool)>,
    reverse: &'r mut [Vec<ReverseEdge>],
    guard_lists: &'r mut Vec<Vec<Rw>>,
    /// Subtracted sides of the exclusions whose base encloses the current position.
    guards: Vec<&'n Rw>,
}

impl<'n> EdgeCollector<'n, '_> {
    /// `negated`: under an exclusion's subtracted side (no reverse edge: it never raises the
    /// permission); `impure`: under an intersection or an `.all` arrow.
    fn collect(&mut self, rw: &'n Rw, negated: bool, impure: bool) {
        match rw {
            Rw::Nil => {}
            Rw::Computed(to) => {
                self.forward.push((*to, negated));
                if !negated {
                    let edge = ReverseEdge::Computed {
                        target: self.from,
                        purity: self.purity(impure),
                    };
                    upsert_reverse(&mut self.reverse[*to as usize], edge);
                }
            }
            Rw::Arrow {
                tupleset,
                computed_by_def,
                all,
            } => {
                // Only the subject types the tupleset allows lead anywhere in conforming data.
                let mut subject_defs: Vec<u32> = Vec::new();
                if let NodeKind::Relation(info) = &self.nodes[*tupleset as usize].kind {
                    subject_defs.extend(&info.direct);
                    subject_defs.extend(info.usersets.iter().map(|(d, _)| *d));
                }
                subject_defs.sort_unstable();
                subject_defs.dedup();
                for d in subject_defs {
                    if let Some(Some(to)) = computed_by_def.get(d as usize) {
                        self.forward.push((*to, negated));
                        if !negated {
                            let edge = ReverseEdge::Arrow {
                                target: self.from,
                                tupleset: *tupleset,
                                purity: self.purity(impure || *all),
                            };
                            upsert_reverse(&mut self.reverse[*to as usize], edge);
                        }
                    }
                }
            }
            Rw::Union(items) => {
                for i in items {
                    self.collect(i, negated, impure);
                }
            }
            Rw::Intersection(items) => {
                for i in items {
                    self.collect(i, negated, true);
                }
            }
            Rw::Exclusion(a, b) => {
                self.guards.push(b);
                self.collect(a, negated, impure);
                self.guards.pop();
                self.collect(b, true, impure);
            }
        }
    }

    fn purity(&mut self, impure: bool) -> Purity {
        if impure {
            return Purity::Impure;
        }
        if self.guards.is_empty() {
            return Purity::Exact;
        }
        let list: Vec<Rw> = self.guards.iter().map(|g| (*g).clone()).collect();
        let id = match self.guard_lists.iter().position(|l| *l == list) {
            Some(i) => i,
            None => {
                self.guard_lists.push(list);
                self.guard_lists.len() - 1
            }
        };
        Purity::Guarded(id as u32)
    }
}

/// Adds `edge`. An exact edge to the same place makes the others redundant; otherwise edges
/// of different purity are all kept (any of them may be the one that proves a resource).
fn upsert_reverse(edges: &mut Vec<ReverseEdge>, edge: ReverseEdge) {
    let place = edge.place();
    if edges
        .iter()
        .any(|e| *e == edge || (e.place() == place && e.purity() == Purity::Exact))
    {
        return;
    }
    if edge.purity() == Purity::Exact {
        edges.retain(|e| e.place() != place);
    }
    edges.push(edge);
}

struct Sccs {
    component: Vec<u32>,
    count: usize,
}

/// Tarjan's strongly connected components, iterative (schemas can be large; no recursion).
fn tarjan(graph: &[Vec<(NodeId, bool)>]) -> Sccs {
    const UNVISITED: u32 = u32::MAX;
    let n = graph.len();
    let mut index = vec![UNVISITED; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut component = vec![0u32; n];
    let mut count = 0usize;
    let mut next_index = 0u32;
    // (node, next edge position)
    let mut call: Vec<(usize, usize)> = Vec::new();

    for root in 0..n {
        if index[root] != UNVISITED {
            continue;
        }
        call.push((root, 0));
        index[root] = next_index;
        low[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;

        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            if let Some(&(w, _)) = graph[v].get(*pos) {
                *pos += 1;
                let w = w as usize;
                if index[w] == UNVISITED {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = count as u32;
                    if w == v {
                        break;
                    }
                }
                count += 1;
            }
        }
    }
    Sccs { component, count }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarjan_finds_cycles_and_singletons() {
        // 0 -> 1 -> 2 -> 0, 2 -> 3, 3 alone, 4 -> 4
        let g = vec![
            vec![(1, false)],
            vec![(2, false)],
            vec![(0, false), (3, false)],
            vec![],
            vec![(4, false)],
        ];
        let s = tarjan(&g);
        assert_eq!(s.count, 3);
        assert_eq!(s.component[0], s.component[1]);
        assert_eq!(s.component[1], s.component[2]);
        assert_ne!(s.component[2], s.component[3]);
        assert_ne!(s.component[3], s.component[4]);
    }
}
