//! LookupResources: every resource of a type on which a subject has a permission, streamed in
//! id order, resumable after any result.
//!
//! **The reverse walk.** Instead of checking every object of the type, walk backwards from the
//! subject: start at the relationships naming the subject (or a wildcard of its type) and
//! follow the schema's reverse edges — userset memberships, computed references, arrows —
//! through the reverse index, visiting only nodes the target permission depends on. A
//! non-`No` answer always needs a chain of positive dependencies from such a relationship, so
//! every resource that may have the permission is found, and one that is not is `No`.
//! Nesting relations with a nested-group index (`leopard.rs`) reach everything a reached
//! object is nested in at once.
//!
//! **Two parts.** The walk *materializes* the keys (object, relation) of the nodes that lead
//! to other objects — other types' nodes (groups, folders), nodes followed by a userset or an
//! arrow, and everything a subtracted expression depends on. The remaining nodes are the
//! target and the nodes of its type that reach it only through computed references on the
//! same object (`document#viewer`, `#owner`, `#edit` for `document#view`); their keys are
//! never built. Each edge into them becomes a *stream* of resource ids instead: relationships
//! read from the reverse index in id order (the subject's own `document#viewer` rows, the
//! `document#parent` rows of each folder the subject can view, …) or a materialized node's
//! sorted ids. Results are the merge of the streams in id order, so the first one is known as
//! soon as every stream has been opened, and each later one costs its own rows only.
//!
//! **Certainty.** A stream's item makes the target hold certainly when the key it comes from
//! is certain, its relationship has no caveat, and its route to the target passes only unions
//! (or exclusions whose subtracted side cannot hold for the subject: none of the keys it
//! depends on was reached). Materialized keys get the same treatment, through the edges the
//! walk recorded. Everything else (intersections, `.all` arrows, caveats, exclusions that may
//! hold) is confirmed with a check; confirmations share one memo, pre-filled with the keys
//! already proven.
//!
//! **Resuming.** A lookup between two pages is a [`SuspendedLookup`]: the plan (materialized
//! keys and streams, immutable and shared) and how far each stream has read. Resuming reads
//! only what the next page needs; planning again after an id (when the suspended lookup is
//! gone) costs one walk and one read per stream. Both yield exactly the results after that id.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;

use super::analysis::{NodeId, NodeKind, Purity, ReverseEdge, Rw, SchemaIndex};
use super::cache::MAX_PLAN_DEPS;
use super::check::CheckRun;
use super::leopard::{self, NestedIndex};
use super::reads::Recorder;
use super::{CheckOutcome, EngineError, Evaluator, LookupResource};
use crate::model::{
    Context, Relationship, SubjectFilter, SubjectRef, SubjectRelationFilter, WILDCARD_ID,
};
use crate::store::leopard::IndexState;
use crate::store::{ReversePage, SnapshotReader};

/// The first read of a stream: small, so the first result comes fast.
const FIRST_CHUNK: usize = 4;
/// Later reads double up to this many relationships.
const MAX_CHUNK: usize = 1024;

/// How surely an item of a stream makes the target hold, given that what it comes from holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    /// Only unions on the way.
    Exact,
    /// Exclusions on the way: certain unless one of these guard lists may hold.
    Guarded(Vec<u32>),
    /// An intersection or an `.all` arrow on the way: a candidate only.
    Impure,
}

impl Route {
    /// The route of an edge of purity `p` followed by `self`.
    fn after(&self, p: Purity) -> Route {
        match (p, self) {
            (_, Route::Impure) | (Purity::Impure, _) => Route::Impure,
            (Purity::Exact, r) => r.clone(),
            (Purity::Guarded(g), Route::Exact) => Route::Guarded(vec![g]),
            (Purity::Guarded(g), Route::Guarded(gs)) => {
                let mut gs = gs.clone();
                if !gs.contains(&g) {
                    gs.push(g);
                }
                Route::Guarded(gs)
            }
        }
    }

    fn rank(&self) -> usize {
        match self {
            Route::Exact => usize::MAX,
            // Fewer guards: fewer chances to need a confirmation.
            Route::Guarded(gs) => usize::MAX - 1 - gs.len(),
            Route::Impure => 0,
        }
    }
}

/// Where a stream's ids come from.
#[derive(Debug, Clone)]
enum Source {
    /// Relationships `T:id#relation@subject` from the reverse index; `sorted` when `subject`
    /// names one subject relation (else they are read whole and sorted).
    Rows {
        subject: SubjectFilter,
        relation: String,
        sorted: bool,
    },
    /// Ids of a materialized node, ascending, each with whether its key is certain.
    Keys(Arc<[(String, bool)]>),
}

/// One stream of resource ids and what its items prove.
#[derive(Debug, Clone)]
struct StreamSpec {
    source: Source,
    /// Every way the stream leads to the target: the materialized key it comes from (`None`:
    /// the subject itself, or each item's own key for `Keys`), and the route.
    alts: Vec<(Option<u32>, Route)>,
}

impl StreamSpec {
    fn add_alt(&mut self, from: Option<u32>, route: Route) {
        if !self.alts.iter().any(|(f, r)| *f == from && *r == route) {
            self.alts.push((from, route));
        }
    }
}

/// The immutable part of a lookup: its materialized keys and its streams.
#[derive(Debug)]
pub(crate) struct LookupPlan {
    target: NodeId,
    resource_type: String,
    /// Materialized keys per node: object id → key index.
    ids: Vec<HashMap<String, u32>>,
    /// Key index → (node, object id).
    keys: Vec<(NodeId, String)>,
    /// Key index → it holds certainly.
    certain: Vec<bool>,
    streams: Vec<StreamSpec>,
}

impl LookupPlan {
    /// A rough measure of the memory it holds (materialized keys and streams), for caches.
    pub(crate) fn weight(&self) -> usize {
        self.keys.len() + self.streams.len()
    }
}

/// Whether `rw`, evaluated on object `id`, may be other than `No` for the subject: only if
/// some key it depends on was reached (every node a subtracted expression depends on is
/// materialized).
fn may_hold(ids: &[HashMap<String, u32>], rw: &Rw, id: &str) -> bool {
    match rw {
        Rw::Nil => false,
        Rw::Computed(n) => ids[*n as usize].contains_key(id),
        // The tupleset's objects are not known here; any reached key of the computed
        // relation (on any object) keeps the possibility open.
        Rw::Arrow {
            computed_by_def, ..
        } => computed_by_def
            .iter()
            .flatten()
            .any(|n| !ids[*n as usize].is_empty()),
        Rw::Union(items) => items.iter().any(|i| may_hold(ids, i, id)),
        Rw::Intersection(items) => items.iter().all(|i| may_hold(ids, i, id)),
        Rw::Exclusion(base, _) => may_hold(ids, base, id),
    }
}

/// Whether `route` proves the target on `id`.
fn proves(index: &SchemaIndex, ids: &[HashMap<String, u32>], route: &Route, id: &str) -> bool {
    match route {
        Route::Exact => true,
        Route::Impure => false,
        Route::Guarded(gs) => gs.iter().all(|g| {
            !index.guards[*g as usize]
                .iter()
                .any(|guard| may_hold(ids, guard, id))
        }),
    }
}

/// How far one stream has read.
#[derive(Debug, Clone)]
struct StreamState {
    /// Read but not yet merged: (id, without caveat).
    buffer: VecDeque<(String, bool)>,
    /// The last id read from the store; the next read starts after it.
    read_to: Option<String>,
    /// Position in a `Keys` stream.
    pos: usize,
    chunk: usize,
    exhausted: bool,
}

/// A lookup between two pages (see the module docs): owns everything, so it can wait for the
/// next page anywhere. It must be resumed with the subject and context it was planned for.
#[derive(Debug, Clone)]
pub struct SuspendedLookup {
    plan: Arc<LookupPlan>,
    states: Vec<StreamState>,
    /// The last id the merge went past.
    after: Option<String>,
    /// A result looked at (peeked) but not returned yet.
    pending: Option<LookupResource>,
    /// The last id returned.
    returned: Option<String>,
}

impl SuspendedLookup {
    /// The last resource id returned (results resume strictly after it).
    pub fn after(&self) -> Option<&str> {
        self.returned.as_deref()
    }

    /// A rough measure of the memory it holds (keys and buffered ids), for caches.
    pub fn weight(&self) -> usize {
        self.plan.weight() + self.states.iter().map(|s| s.buffer.len()).sum::<usize>()
    }
}

/// The heap entry of a stream: its next id, or (`known: false`) a lower bound of it (the
/// stream must read before its next id is known).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Head {
    id: String,
    known: bool,
    stream: u32,
}

/// A lookup in progress: yields results in id order (see the module docs).
pub struct ResourceStream<'e, 'a> {
    ev: &'e Evaluator<'a>,
    subject: &'e SubjectRef,
    context: &'e Context,
    plan: Arc<LookupPlan>,
    states: Vec<StreamState>,
    heap: BinaryHeap<Reverse<Head>>,
    after: Option<String>,
    pending: Option<LookupResource>,
    returned: Option<String>,
    reader: Box<dyn SnapshotReader + 'e>,
    /// The confirmations' shared check run, made on first need.
    run: Option<CheckRun<'e, 'a>>,
}

impl<'e, 'a> ResourceStream<'e, 'a> {
    pub(crate) fn resume(
        ev: &'e Evaluator<'a>,
        subject: &'e SubjectRef,
        context: &'e Context,
        suspended: SuspendedLookup,
    ) -> Self {
        let mut stream = ResourceStream {
            ev,
            subject,
            context,
            plan: suspended.plan,
            states: suspended.states,
            heap: BinaryHeap::new(),
            after: suspended.after,
            pending: suspended.pending,
            returned: suspended.returned,
            reader: ev.snapshot.reader(),
            run: None,
        };
        for s in 0..stream.states.len() {
            stream.push_head(s as u32);
        }
        stream
    }

    /// Stops here; [`Evaluator::resume_lookup_resources`] continues after the last result.
    pub fn suspend(self) -> SuspendedLookup {
        SuspendedLookup {
            plan: self.plan,
            states: self.states,
            after: self.after,
            pending: self.pending,
            returned: self.returned,
        }
    }

    /// The next result without taking it (it stays the next one, also across a suspension).
    pub fn peek(&mut self) -> Result<Option<&LookupResource>, EngineError> {
        if self.pending.is_none() {
            self.pending = self.merge_next()?;
        }
        Ok(self.pending.as_ref())
    }

    fn push_head(&mut self, s: u32) {
        let state = &self.states[s as usize];
        let head = match &self.plan.streams[s as usize].source {
            Source::Keys(ids) => ids.get(state.pos).map(|(id, _)| Head {
                id: id.clone(),
                known: true,
                stream: s,
            }),
            Source::Rows { .. } => match state.buffer.front() {
                Some((id, _)) => Some(Head {
                    id: id.clone(),
                    known: true,
                    stream: s,
                }),
                None if !state.exhausted => Some(Head {
                    id: state.read_to.clone().unwrap_or_default(),
                    known: false,
                    stream: s,
                }),
                None => None,
            },
        };
        if let Some(h) = head {
            self.heap.push(Reverse(h));
        }
    }

    /// Reads the next chunk of a `Rows` stream into its buffer.
    fn fill(&mut self, s: u32) -> Result<(), EngineError> {
        let plan = Arc::clone(&self.plan);
        let Source::Rows {
            subject,
            relation,
            sorted,
        } = &plan.streams[s as usize].source
        else {
            return Ok(());
        };
        let state = &mut self.states[s as usize];
        if *sorted {
            let page = ReversePage {
                after: state.read_to.as_deref(),
                limit: state.chunk,
            };
            let rows = self
                .reader
                .reverse_ids(subject, &plan.resource_type, relation, page)?;
            state.exhausted = rows.len() < state.chunk;
            state.chunk = (state.chunk * 2).min(MAX_CHUNK);
            state.buffer.extend(rows);
        } else {
            // Rows of several subject relations: read whole, then merged by id.
            let rows = self
                .reader
                .reverse(subject, &plan.resource_type, relation, None)?;
            let mut items: Vec<(String, bool)> = rows
                .into_iter()
                .map(|r| {
                    let plain = r.caveat.is_none();
                    (r.resource.object_id, plain)
                })
                .filter(|(id, _)| {
                    state
                        .read_to
                        .as_deref()
                        .is_none_or(|after| id.as_str() > after)
                })
                .collect();
            items.sort();
            items.dedup_by(|later, first| {
                if later.0 == first.0 {
                    first.1 |= later.1;
                    true
                } else {
                    false
                }
            });
            state.exhausted = true;
            state.buffer.extend(items);
        }
        if let Some((last, _)) = state.buffer.back() {
            state.read_to = Some(last.clone());
        }
        Ok(())
    }

    /// Takes the next item of stream `s` (whose known head is at the top of the heap, popped),
    /// queues its next head, and says whether the item proves the target.
    fn take(&mut self, s: u32) -> bool {
        let plan = Arc::clone(&self.plan);
        let spec = &plan.streams[s as usize];
        let state = &mut self.states[s as usize];
        let (id, plain) = match &spec.source {
            Source::Keys(ids) => {
                let item = ids.get(state.pos).cloned();
                state.pos += 1;
                match item {
                    Some(item) => item,
                    None => return false,
                }
            }
            Source::Rows { .. } => match state.buffer.pop_front() {
                Some(item) => item,
                None => return false,
            },
        };
        let index = self.ev.index();
        let proves = plain
            && spec.alts.iter().any(|(from, route)| {
                from.is_none_or(|k| plan.certain[k as usize])
                    && proves(index, &plan.ids, route, &id)
            });
        self.push_head(s);
        proves
    }

    /// The next result, or `None` at the end.
    pub fn next_result(&mut self) -> Result<Option<LookupResource>, EngineError> {
        let next = match self.pending.take() {
            Some(r) => Some(r),
            None => self.merge_next()?,
        };
        if let Some(r) = &next {
            self.returned = Some(r.resource_id.clone());
        }
        Ok(next)
    }

    fn merge_next(&mut self) -> Result<Option<LookupResource>, EngineError> {
        loop {
            let Some(Reverse(head)) = self.heap.pop() else {
                return Ok(None);
            };
            if !head.known {
                self.fill(head.stream)?;
                self.push_head(head.stream);
                continue;
            }
            let id = head.id;
            let mut proven = self.take(head.stream);
            // Every other stream holding the same id (no unread stream can: its lower bound
            // would sort first).
            while let Some(Reverse(top)) = self.heap.peek() {
                if !(top.known && top.id == id) {
                    break;
                }
                let s = top.stream;
                self.heap.pop();
                proven |= self.take(s);
            }
            if self.after.as_deref().is_some_and(|a| id.as_str() <= a) {
                continue;
            }
            self.after = Some(id.clone());
            let outcome = if proven {
                CheckOutcome::Has
            } else {
                self.confirm(&id)?
            };
            if outcome != CheckOutcome::No {
                return Ok(Some(LookupResource {
                    resource_id: id,
                    outcome,
                }));
            }
        }
    }

    fn confirm(&mut self, id: &str) -> Result<CheckOutcome, EngineError> {
        let run = match &mut self.run {
            Some(r) => r,
            None => {
                let mut r = CheckRun::new(self.ev, self.subject, self.context)?;
                for (k, (node, key_id)) in self.plan.keys.iter().enumerate() {
                    if self.plan.certain[k] {
                        r.assume_has(*node, key_id);
                    }
                }
                self.run.insert(r)
            }
        };
        run.check_root(self.plan.target, id)
    }
}

impl Iterator for ResourceStream<'_, '_> {
    type Item = Result<LookupResource, EngineError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_result().transpose()
    }
}

/// Plans a lookup of `target` for `subject`, positioned after `after`: the plan comes from
/// the shared cache when it holds one for this revision (or one carried to it), else from a
/// walk, offered to the cache.
pub(crate) fn plan(
    ev: &Evaluator<'_>,
    target: NodeId,
    subject: &SubjectRef,
    after: Option<&str>,
) -> Result<SuspendedLookup, EngineError> {
    let cache = ev.cache.filter(|c| c.enabled());
    let subject_key = cache.map(|_| subject.to_string());
    let snapshot = ev.snapshot;
    if let (Some(cache), Some(key)) = (cache, &subject_key)
        && let Some(plan) = cache.plan(target, key, snapshot.revision(), snapshot.now())
    {
        return Ok(position(plan, after));
    }
    let reader = Recorder::new(snapshot.reader(), cache.and_then(|c| c.recent())).with_expiry();
    let (plan, mut reader) = walk_plan(ev, target, subject, reader)?;
    let plan = Arc::new(plan);
    if let (Some(cache), Some(key)) = (cache, &subject_key)
        && cache.admit_plan(target, key)
    {
        let made = reader.made(snapshot.revision(), snapshot.now(), MAX_PLAN_DEPS);
        cache.insert_plan(target, key, made, Arc::clone(&plan));
    }
    Ok(position(plan, after))
}

/// The walk of a plan (see the module docs), reading through `reader`, which it returns with
/// its notes.
fn walk_plan<'e>(
    ev: &'e Evaluator<'_>,
    target: NodeId,
    subject: &SubjectRef,
    reader: Recorder<'e>,
) -> Result<(LookupPlan, Recorder<'e>), EngineError> {
    let index = ev.index();
    let relevant = index.support(target);
    let lazy = lazy_nodes(index, target, &relevant);
    let routes = routes(index, target, &lazy);
    let mut walk = Walk {
        ev,
        lazy: &lazy,
        routes: &routes,
        ids: std::iter::repeat_with(HashMap::new)
            .take(index.nodes.len())
            .collect(),
        keys: Vec::new(),
        edges: Vec::new(),
        seeds: Vec::new(),
        queue: VecDeque::new(),
        closed: Vec::new(),
        reader,
        nested: NestedIndex::default(),
        streams: Vec::new(),
        stream_of: HashMap::new(),
        computed: HashMap::new(),
    };
    walk.seed(subject, &relevant)?;
    walk.discover(&relevant)?;
    let certain = walk.certainty();
    let Walk {
        ids,
        keys,
        mut streams,
        computed,
        reader,
        ..
    } = walk;

    // Materialized nodes feeding lazy ones, and the target itself when it is materialized.
    let sorted_ids = |m: NodeId| -> Arc<[(String, bool)]> {
        let mut v: Vec<(String, bool)> = ids[m as usize]
            .iter()
            .map(|(id, k)| (id.clone(), certain[*k as usize]))
            .collect();
        v.sort_unstable();
        v.into()
    };
    let mut feeds: Vec<(NodeId, Vec<Route>)> = computed.into_iter().collect();
    feeds.sort_by_key(|(m, _)| *m);
    for (m, rs) in feeds {
        streams.push(StreamSpec {
            source: Source::Keys(sorted_ids(m)),
            alts: rs.into_iter().map(|r| (None, r)).collect(),
        });
    }
    if !lazy[target as usize] {
        streams.push(StreamSpec {
            source: Source::Keys(sorted_ids(target)),
            alts: vec![(None, Route::Exact)],
        });
    }
    let plan = LookupPlan {
        target,
        resource_type: index.get(target).type_name.clone(),
        ids,
        keys: keys.into_iter().map(|(n, id, _)| (n, id)).collect(),
        certain,
        streams,
    };
    Ok((plan, reader))
}

/// A lookup of `plan` positioned strictly after `after`.
fn position(plan: Arc<LookupPlan>, after: Option<&str>) -> SuspendedLookup {
    let states = plan
        .streams
        .iter()
        .map(|spec| StreamState {
            buffer: VecDeque::new(),
            read_to: after.map(str::to_string),
            pos: match &spec.source {
                Source::Keys(v) => {
                    v.partition_point(|(id, _)| after.is_some_and(|a| id.as_str() <= a))
                }
                Source::Rows { .. } => 0,
            },
            chunk: FIRST_CHUNK,
            exhausted: false,
        })
        .collect();
    SuspendedLookup {
        plan,
        states,
        after: after.map(str::to_string),
        pending: None,
        returned: after.map(str::to_string),
    }
}

/// The nodes whose keys are never built (see the module docs): the target and the nodes of
/// its type that reach it only through computed references, unless the target itself must be
/// materialized (it leads to other objects, or a subtracted expression depends on it).
fn lazy_nodes(index: &SchemaIndex, target: NodeId, relevant: &[bool]) -> Vec<bool> {
    let n = index.nodes.len();
    let target_type = &index.get(target).type_name;
    let mut mat = vec![false; n];
    for (i, node) in index.nodes.iter().enumerate() {
        if !relevant[i] {
            continue;
        }
        if node.type_name != *target_type {
            mat[i] = true;
        }
        for &x in &node.negated {
            for (j, yes) in index.support(x).into_iter().enumerate() {
                if yes {
                    mat[j] = true;
                }
            }
        }
        for e in &node.reverse {
            if let ReverseEdge::Userset { target: t } | ReverseEdge::Arrow { target: t, .. } = *e
                && relevant[t as usize]
            {
                mat[i] = true;
            }
        }
    }
    loop {
        let mut changed = false;
        for (i, node) in index.nodes.iter().enumerate() {
            if !relevant[i] || mat[i] {
                continue;
            }
            let feeds_materialized = node.reverse.iter().any(|e| {
                matches!(*e, ReverseEdge::Computed { target: t, .. }
                    if relevant[t as usize] && mat[t as usize])
            });
            if feeds_materialized {
                mat[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    if mat[target as usize] {
        return vec![false; n];
    }
    (0..n).map(|i| relevant[i] && !mat[i]).collect()
}

/// For each lazy node, its best route to the target (through computed references only).
fn routes(index: &SchemaIndex, target: NodeId, lazy: &[bool]) -> Vec<Option<Route>> {
    let mut routes: Vec<Option<Route>> = vec![None; index.nodes.len()];
    if !lazy[target as usize] {
        return routes;
    }
    routes[target as usize] = Some(Route::Exact);
    // Routes only improve and there are finitely many: a few rounds settle them.
    for _ in 0..index.nodes.len() {
        let mut changed = false;
        for (i, node) in index.nodes.iter().enumerate() {
            if !lazy[i] || i == target as usize {
                continue;
            }
            for e in &node.reverse {
                let ReverseEdge::Computed { target: t, purity } = *e else {
                    continue;
                };
                let Some(r) = routes[t as usize].clone() else {
                    continue;
                };
                let candidate = r.after(purity);
                if routes[i]
                    .as_ref()
                    .is_none_or(|old| candidate.rank() > old.rank())
                {
                    routes[i] = Some(candidate);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    routes
}

/// The materializing walk: the keys of materialized nodes and the edges between them, and the
/// streams of the lazy ones.
struct Walk<'e, 'a, 'p> {
    ev: &'e Evaluator<'a>,
    lazy: &'p [bool],
    routes: &'p [Option<Route>],
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
    reader: Recorder<'e>,
    nested: NestedIndex,
    streams: Vec<StreamSpec>,
    /// `Rows` streams by (relation, subject), to merge the ways one read leads to the target.
    stream_of: HashMap<(String, String), usize>,
    /// Materialized nodes whose keys feed lazy ones (same object): their routes.
    computed: HashMap<NodeId, Vec<Route>>,
}

impl Walk<'_, '_, '_> {
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

    /// A stream of lazy node `n`'s rows naming `subject`, reached from key `from`.
    fn stream(&mut self, n: NodeId, subject: SubjectFilter, from: Option<u32>, edge: Purity) {
        let Some(route) = self.routes[n as usize].as_ref().map(|r| r.after(edge)) else {
            return;
        };
        let relation = self.ev.index().get(n).name.clone();
        self.rows(relation, subject, from, route);
    }

    fn rows(&mut self, relation: String, subject: SubjectFilter, from: Option<u32>, route: Route) {
        let sorted = subject.subject_id.is_some() && subject.relation != SubjectRelationFilter::Any;
        let key = (relation.clone(), format!("{subject:?}"));
        let at = match self.stream_of.get(&key) {
            Some(&at) => at,
            None => {
                self.streams.push(StreamSpec {
                    source: Source::Rows {
                        subject,
                        relation,
                        sorted,
                    },
                    alts: Vec::new(),
                });
                self.stream_of.insert(key, self.streams.len() - 1);
                self.streams.len() - 1
            }
        };
        self.streams[at].add_alt(from, route);
    }

    fn reverse(
        &mut self,
        subject: SubjectFilter,
        resource_node: NodeId,
    ) -> Result<Vec<Relationship>, EngineError> {
        let n = self.ev.index().get(resource_node);
        Ok(self.reader.reverse(&subject, &n.type_name, &n.name, None)?)
    }

    /// The index state of `node` when it is an indexed nesting relation.
    fn nested_state(&mut self, node: NodeId) -> Result<Option<Rc<IndexState>>, EngineError> {
        self.nested.state(self.ev, &mut self.reader, node)
    }

    /// Key `k` of an indexed nesting relation holds: so does every object it is nested in.
    fn close(&mut self, k: u32) -> Result<(), EngineError> {
        if std::mem::replace(&mut self.closed[k as usize], true) {
            return Ok(());
        }
        let (node, id, dist) = self.keys[k as usize].clone();
        for a in leopard::nested_in(self.ev, &mut self.reader, node, &id)? {
            let to = self.reach(node, a, dist + 1)?;
            self.closed[to as usize] = true;
            self.edges[k as usize].push((to, Purity::Exact));
        }
        Ok(())
    }

    /// The starting points: the subject's own userset, and relationships naming the subject
    /// or its wildcard.
    fn seed(&mut self, subject: &SubjectRef, relevant: &[bool]) -> Result<(), EngineError> {
        let ev = self.ev;
        let index = ev.index();
        let (subject_def, subject_node) = ev.resolve_subject(subject)?;
        if let Some(n) = subject_node
            && relevant[n as usize]
        {
            if self.lazy[n as usize] {
                if let Some(route) = self.routes[n as usize].clone() {
                    self.streams.push(StreamSpec {
                        source: Source::Keys(vec![(subject.object.object_id.clone(), true)].into()),
                        alts: vec![(None, route)],
                    });
                }
            } else {
                let k = self.reach(n, subject.object.object_id.clone(), 1)?;
                self.seeds.push(k);
            }
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
                if self.lazy[q as usize] {
                    self.stream(q, f, None, Purity::Exact);
                    continue;
                }
                for rel in self.reverse(f, q)? {
                    let k = self.reach(q, rel.resource.object_id, 1)?;
                    if rel.caveat.is_none() {
                        self.seeds.push(k);
                    }
                }
            }
        }
        Ok(())
    }

    /// Discovers every materialized key reachable from the seeds, the edges between them, and
    /// the streams of the lazy nodes.
    fn discover(&mut self, relevant: &[bool]) -> Result<(), EngineError> {
        let ev = self.ev;
        let index = ev.index();
        loop {
            let Some(k) = self.queue.pop_front() else {
                // Irregular nestings may reach more keys; then walk on from them.
                if self.irregular_nestings(relevant)? {
                    continue;
                }
                return Ok(());
            };
            let (node, id, dist) = self.keys[k as usize].clone();
            let from = index.get(node);
            let indexed = self.nested_state(node)?.is_some();
            if indexed {
                self.close(k)?;
            }
            for edge in &from.reverse {
                match *edge {
                    // The index has followed the nestings of an indexed relation.
                    ReverseEdge::Userset { target } if indexed && target == node => {}
                    ReverseEdge::Computed { target: t, purity } => {
                        if !relevant[t as usize] {
                            continue;
                        }
                        if self.lazy[t as usize] {
                            if let Some(route) = self.routes[t as usize].as_ref() {
                                let route = route.after(purity);
                                let rs = self.computed.entry(node).or_default();
                                if !rs.contains(&route) {
                                    rs.push(route);
                                }
                            }
                            continue;
                        }
                        let to = self.reach(t, id.clone(), dist + 1)?;
                        self.edges[k as usize].push((to, purity));
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
                        if self.lazy[t as usize] {
                            self.stream(t, f, Some(k), Purity::Exact);
                            continue;
                        }
                        for rel in self.reverse(f, t)? {
                            let to = self.reach(t, rel.resource.object_id, dist + 1)?;
                            let purity = match rel.caveat {
                                None => Purity::Exact,
                                Some(_) => Purity::Impure,
                            };
                            self.edges[k as usize].push((to, purity));
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
                        // Where the tupleset cannot hold usersets of this type, its rows
                        // naming the object have the ellipsis: one sorted read.
                        let usersets = match &index.get(tupleset).kind {
                            NodeKind::Relation(info) => {
                                let def = ev.def_of(&from.type_name);
                                info.usersets.iter().any(|(d, _)| Some(*d) == def)
                            }
                            NodeKind::Permission(_) => true,
                        };
                        let f = SubjectFilter {
                            subject_type: from.type_name.clone(),
                            subject_id: Some(id.clone()),
                            relation: if usersets {
                                SubjectRelationFilter::Any
                            } else {
                                SubjectRelationFilter::Ellipsis
                            },
                        };
                        if self.lazy[t as usize] {
                            let Some(route) =
                                self.routes[t as usize].as_ref().map(|r| r.after(purity))
                            else {
                                continue;
                            };
                            let relation = index.get(tupleset).name.clone();
                            self.rows(relation, f, Some(k), route);
                            continue;
                        }
                        for rel in self.reverse(f, tupleset)? {
                            let to = self.reach(t, rel.resource.object_id, dist + 1)?;
                            let purity = match rel.caveat {
                                None => purity,
                                Some(_) => Purity::Impure,
                            };
                            self.edges[k as usize].push((to, purity));
                        }
                    }
                }
            }
        }
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
                    .read_via(&mut self.reader, node, x, Some(own.clone()))?
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

    /// Which materialized keys certainly hold: the seeds and what they prove through exact
    /// edges, or guarded ones whose guards (subtracted expressions on the target's object)
    /// cannot hold.
    fn certainty(&self) -> Vec<bool> {
        let index = self.ev.index();
        let mut certain = vec![false; self.keys.len()];
        let mut stack: Vec<u32> = Vec::new();
        for &k in &self.seeds {
            if !certain[k as usize] {
                certain[k as usize] = true;
                stack.push(k);
            }
        }
        while let Some(k) = stack.pop() {
            for &(to, purity) in &self.edges[k as usize] {
                if certain[to as usize] {
                    continue;
                }
                let proves = match purity {
                    Purity::Exact => true,
                    Purity::Guarded(g) => {
                        let id = &self.keys[to as usize].1;
                        proves(index, &self.ids, &Route::Guarded(vec![g]), id)
                    }
                    Purity::Impure => false,
                };
                if proves {
                    certain[to as usize] = true;
                    stack.push(to);
                }
            }
        }
        certain
    }
}
