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
//! - **A shared cache** (optional, `cache.rs`): the results the memo may keep are also offered
//!   to, and looked up in, a cache shared by all requests. Each result carries the earliest
//!   expiration among the relationships it rests on (tracked through the recursion like the
//!   low-link), so a cached answer is never served once one of them has expired; and, when
//!   the store keeps a record of recent writes, the keys of everything it read
//!   (`reads.rs`, tracked the same way: a subtree's reads are the ones noted since it
//!   began, its sub-problems' included, whether evaluated or recalled), so the answer can
//!   serve later revisions while none of them changes. Requests with a caveat context bypass
//!   the cache, and a lookup's confirmation run that was pre-filled with proofs of unknown
//!   expiry does not write to it.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use super::analysis::{NodeId, NodeKind, RelationInfo, Rw, SchemaIndex};
use super::cache::{Cached, CheckCache, KeyRef, MAX_DEPS};
use super::leopard::{self, NestedIndex};
use super::outcome::{exclude, intersect, union};
use super::reads::{Reads, Recorder};
use super::{CheckOutcome, EngineError, Evaluator};
use crate::model::{
    Context, Relationship, Revision, SubjectFilter, SubjectRef, SubjectRelationFilter, Timestamp,
    WILDCARD_ID,
};
use crate::store::SnapshotReader;
use crate::store::leopard::IndexState;

/// Up to this many objects to test against a nested set, probe the index for each; beyond,
/// read the nested set once.
const PROBES: usize = 8;

/// The earlier of two expirations (`None` = never expires).
fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A memoised result of this run: as [`Cached`], with its reads as a span of the run's notes.
struct Memo {
    outcome: CheckOutcome,
    expires: Option<Timestamp>,
    deps: Reads,
}

/// What a run needs to use the shared cache.
struct Shared<'e> {
    cache: &'e CheckCache,
    revision: Revision,
    now: Timestamp,
    /// The subject in the relationship syntax, the cache's subject key.
    subject: Arc<str>,
    /// False once the memo holds results whose expiry is unknown (a lookup's proofs).
    write: bool,
}

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
    /// Finished results per node, by object id, with the earliest expiration they rest on.
    memo: Vec<HashMap<String, Memo>>,
    /// Keys in progress, outermost first.
    stack: Vec<(NodeId, String)>,
    /// Keys in progress per schema component.
    scc_active: Vec<u32>,
    /// Lowest stack position at which a cycle was cut in the current subtree.
    low: usize,
    /// Earliest expiration among the relationships the current subtree has read.
    expires: Option<Timestamp>,
    shared: Option<Shared<'e>>,
    /// This run's reads, sharing store resources between them, and what they depend on.
    reader: Recorder<'e>,
    /// The nested-group index's state per nesting relation, read once per run (with the
    /// reads it came from, replayed at each reuse).
    nested: NestedIndex,
    /// Per nesting relation: the relationships naming the subject (or its wildcard) there,
    /// and the reads they came from.
    entries: HashMap<NodeId, (Rc<Vec<Relationship>>, Reads)>,
}

impl<'e, 'a> CheckRun<'e, 'a> {
    pub(crate) fn new(
        ev: &'e Evaluator<'a>,
        subject: &'e SubjectRef,
        context: &'e Context,
    ) -> Result<Self, EngineError> {
        let (subject_def, subject_node) = ev.resolve_subject(subject)?;
        let index = ev.index();
        // Answers depend on the caveat context; only context-free requests share them.
        let shared = ev
            .cache
            .filter(|c| c.enabled() && context.is_empty())
            .map(|cache| Shared {
                cache,
                revision: ev.snapshot.revision(),
                now: ev.snapshot.now(),
                subject: Arc::from(subject.to_string()),
                write: true,
            });
        // Reads are noted only where an answer may be shared across revisions.
        let recent = shared.as_ref().and_then(|s| s.cache.recent());
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
            expires: None,
            shared,
            reader: Recorder::new(ev.snapshot.reader(), recent),
            nested: NestedIndex::default(),
            entries: HashMap::new(),
        })
    }

    /// Records that `node` on object `id` is already known to hold for the subject (proven
    /// by a lookup's walk), as if memoised. Such a proof never depends on the path.
    pub(crate) fn assume_has(&mut self, node: NodeId, id: &str) {
        // The proof's expiry is unknown here, so nothing computed from it may be shared.
        if let Some(shared) = &mut self.shared {
            shared.write = false;
        }
        self.reader.stop();
        self.memo[node as usize].insert(
            id.to_string(),
            Memo {
                outcome: CheckOutcome::Has,
                expires: None,
                deps: None,
            },
        );
    }

    /// Notes that the current result rests on `rel` (its expiration bounds the result's life).
    fn rests_on(&mut self, rel: &Relationship) {
        if rel.expiration.is_some() {
            self.expires = earliest(self.expires, rel.expiration);
        }
    }

    fn cache_key<'k>(&self, shared: &'k Shared<'_>, node: NodeId, id: &'k str) -> KeyRef<'k> {
        KeyRef {
            revision: shared.revision,
            node,
            object_id: id,
            subject: &shared.subject,
        }
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
        if memo_ok && let Some(v) = self.recall(node, id) {
            return Ok(v);
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
        let outer_expires = self.expires.take();
        let outer_lost = std::mem::take(&mut self.reader.lost);
        let mark = self.reader.deps.len();
        let result = self.eval_node(node, id, depth);
        let my_low = self.low;
        self.low = outer_low.min(my_low);
        let my_expires = self.expires;
        self.expires = earliest(outer_expires, my_expires);
        let my_reads = self.reader.span_since(mark, self.reader.lost);
        self.reader.lost |= outer_lost;
        self.scc_active[scc] -= 1;
        let popped = self.stack.pop();
        let result = result?;
        if memo_ok
            && my_low >= pos
            && let Some((_, key)) = popped
        {
            self.remember(node, key, &result, my_expires, my_reads);
        }
        Ok(result)
    }

    /// A finished, path-independent result from the memo or the shared cache. Kept out of
    /// `check_key` (as is `remember`) so the recursion's stack frames stay small.
    #[inline(never)]
    fn recall(&mut self, node: NodeId, id: &str) -> Option<CheckOutcome> {
        if let Some(v) = self.memo[node as usize].get(id) {
            self.expires = earliest(self.expires, v.expires);
            let outcome = v.outcome.clone();
            self.reader.replay(v.deps, MAX_DEPS * 4);
            return Some(outcome);
        }
        let shared = self.shared.as_ref()?;
        let v = shared
            .cache
            .get(&self.cache_key(shared, node, id), shared.now)?;
        self.expires = earliest(self.expires, v.expires);
        let mark = self.reader.deps.len();
        let lost = match &v.deps {
            Some(keys) if self.reader.noting() => {
                keys.iter().for_each(|k| self.reader.note(Some(*k)));
                false
            }
            _ => true,
        };
        self.reader.lost |= lost;
        let deps = self.reader.span_since(mark, lost);
        self.memo[node as usize].insert(
            id.to_string(),
            Memo {
                outcome: v.outcome.clone(),
                expires: v.expires,
                deps,
            },
        );
        Some(v.outcome)
    }

    /// Stores a finished, path-independent result in the memo and the shared cache.
    #[inline(never)]
    fn remember(
        &mut self,
        node: NodeId,
        id: String,
        outcome: &CheckOutcome,
        expires: Option<Timestamp>,
        reads: Reads,
    ) {
        let offer = self
            .shared
            .as_ref()
            .is_some_and(|s| s.write && s.cache.admit(&self.cache_key(s, node, &id)));
        if offer {
            let deps = self.reader.distinct(reads, MAX_DEPS);
            if let Some(shared) = &self.shared {
                shared.cache.insert(
                    &self.cache_key(shared, node, &id),
                    &shared.subject,
                    shared.now,
                    Cached {
                        outcome: outcome.clone(),
                        expires,
                        deps,
                    },
                );
            }
        }
        self.memo[node as usize].insert(
            id,
            Memo {
                outcome: outcome.clone(),
                expires,
                deps: reads,
            },
        );
    }

    fn eval_node(
        &mut self,
        node: NodeId,
        id: &str,
        depth: u32,
    ) -> Result<CheckOutcome, EngineError> {
        let index = self.index;
        match &index.get(node).kind {
            NodeKind::Relation(_)
                if index.get(node).nests && self.nested_state(node)?.is_some() =>
            {
                self.eval_nested(node, id, depth)
            }
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
            for rel in self.ev.read_via(&mut self.reader, node, id, Some(filter))? {
                self.rests_on(&rel);
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
            for rel in self.ev.read_via(&mut self.reader, node, id, Some(filter))? {
                self.rests_on(&rel);
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
            for rel in self.ev.read_via(&mut self.reader, node, id, Some(filter))? {
                if rel.subject.is_wildcard() {
                    continue;
                }
                self.rests_on(&rel);
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

    /// A nesting relation with its index (`leopard.rs`): the subject's own relationships on
    /// the relation count where they are on `id` or on an object nested in it; irregular
    /// objects among those add their irregular relationships, evaluated as usual. Kept out of
    /// line so the recursion's frames stay small.
    #[inline(never)]
    fn eval_nested(
        &mut self,
        node: NodeId,
        id: &str,
        depth: u32,
    ) -> Result<CheckOutcome, EngineError> {
        let index = self.index;
        let NodeKind::Relation(info) = &index.get(node).kind else {
            return Ok(CheckOutcome::No);
        };
        let Some(state) = self.nested_state(node)? else {
            return self.eval_relation(node, id, depth);
        };
        let mut acc = CheckOutcome::No;
        if self.subject_node == Some(node) {
            // A userset of this very relation: held when nested in `id` (itself is
            // answered before evaluation).
            if leopard::contains(
                self.ev,
                &mut self.reader,
                node,
                id,
                &self.subject.object.object_id,
            )? {
                return Ok(CheckOutcome::Has);
            }
        } else {
            let entries = self.entries(node, info)?;
            // Few entries: probe each; many: read what is nested in `id` once.
            let inside = if entries.len() + state.irregular.len() > PROBES {
                Some(
                    leopard::nested(self.ev, &mut self.reader, node, id)?
                        .into_iter()
                        .collect::<HashSet<String>>(),
                )
            } else {
                None
            };
            for rel in entries.iter() {
                let b = &rel.resource.object_id;
                let holds = b == id
                    || match &inside {
                        Some(set) => set.contains(b),
                        None => leopard::contains(self.ev, &mut self.reader, node, id, b)?,
                    };
                if !holds {
                    continue;
                }
                self.rests_on(rel);
                acc = union(acc, self.ev.caveat_value(rel, self.context)?);
                if acc == CheckOutcome::Has {
                    return Ok(acc);
                }
            }
        }
        for (x, _) in &state.irregular {
            if x != id && !leopard::contains(self.ev, &mut self.reader, node, id, x)? {
                continue;
            }
            for &(_, userset) in &info.usersets {
                let u = self.index.get(userset);
                let filter = SubjectFilter {
                    subject_type: u.type_name.clone(),
                    subject_id: None,
                    relation: SubjectRelationFilter::Relation(u.name.clone()),
                };
                for rel in self.ev.read_via(&mut self.reader, node, x, Some(filter))? {
                    if rel.subject.is_wildcard() || leopard::is_fast_edge(self.ev, node, &rel) {
                        continue;
                    }
                    self.rests_on(&rel);
                    let cv = self.ev.caveat_value(&rel, self.context)?;
                    if cv == CheckOutcome::No {
                        continue;
                    }
                    let member =
                        self.check_key(userset, &rel.subject.object.object_id, depth + 1)?;
                    acc = union(acc, intersect(cv, member));
                    if acc == CheckOutcome::Has {
                        return Ok(acc);
                    }
                }
            }
        }
        Ok(acc)
    }

    /// The nested-group index's state of `node` (`NestedIndex::state`), noting its read at
    /// every use (it is read once per run).
    fn nested_state(&mut self, node: NodeId) -> Result<Option<Rc<IndexState>>, EngineError> {
        if let Some(reads) = self.nested.noted(node) {
            self.reader.replay(reads, MAX_DEPS * 4);
            return self.nested.state(self.ev, &mut self.reader, node);
        }
        let outer_lost = std::mem::take(&mut self.reader.lost);
        let mark = self.reader.deps.len();
        let state = self.nested.state(self.ev, &mut self.reader, node)?;
        let reads = self.reader.span_since(mark, self.reader.lost);
        self.reader.lost |= outer_lost;
        self.nested.note(node, reads);
        Ok(state)
    }

    /// The relationships on nesting relation `node` naming the subject exactly (where the
    /// relation allows it) or its type's wildcard (where allowed): read once per run, they
    /// serve every object of the relation.
    fn entries(
        &mut self,
        node: NodeId,
        info: &RelationInfo,
    ) -> Result<Rc<Vec<Relationship>>, EngineError> {
        if let Some((e, reads)) = self.entries.get(&node) {
            let e = Rc::clone(e);
            self.reader.replay(*reads, MAX_DEPS * 4);
            return Ok(e);
        }
        let outer_lost = std::mem::take(&mut self.reader.lost);
        let mark = self.reader.deps.len();
        let n = self.index.get(node);
        let exact_allowed = match self.subject_node {
            None => info.direct.contains(&self.subject_def),
            Some(s) => info.usersets.contains(&(self.subject_def, s)),
        };
        let mut rows = Vec::new();
        if exact_allowed {
            let f = SubjectFilter {
                subject_type: self.subject.object.object_type.clone(),
                subject_id: Some(self.subject.object.object_id.clone()),
                relation: match &self.subject.relation {
                    Some(r) => SubjectRelationFilter::Relation(r.clone()),
                    None => SubjectRelationFilter::Ellipsis,
                },
            };
            rows.extend(self.reader.reverse(&f, &n.type_name, &n.name, None)?);
        }
        if self.subject_node.is_none()
            && info.wildcard.contains(&self.subject_def)
            && !(exact_allowed && self.subject.object.object_id == WILDCARD_ID)
        {
            let f = SubjectFilter {
                subject_type: self.subject.object.object_type.clone(),
                subject_id: Some(WILDCARD_ID.to_string()),
                relation: SubjectRelationFilter::Ellipsis,
            };
            rows.extend(self.reader.reverse(&f, &n.type_name, &n.name, None)?);
        }
        let rows = Rc::new(rows);
        let reads = self.reader.span_since(mark, self.reader.lost);
        self.reader.lost |= outer_lost;
        self.entries.insert(node, (Rc::clone(&rows), reads));
        Ok(rows)
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
    /// Any: relationships are grouped by subject object; an object is in the tupleset with
    /// the union of its relationships' caveat values `m`, and any = ∪ (m ∩ c).
    /// All: every relationship `r` of the tupleset contributes its caveat value ∩ `c` of its
    /// subject, all = ∩ (caveat(r) ∩ c), and `No` when there is none — so a relationship
    /// whose caveat is false makes `.all()` false rather than being skipped as if absent.
    /// (Wildcard subjects, and subject types without `computed`, take part in neither.)
    fn eval_arrow(
        &mut self,
        tupleset: NodeId,
        computed_by_def: &[Option<NodeId>],
        all: bool,
        id: &str,
        depth: u32,
    ) -> Result<CheckOutcome, EngineError> {
        let mut rels = self.ev.read_via(&mut self.reader, tupleset, id, None)?;
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
            if all {
                let mut c: Option<CheckOutcome> = None;
                for r in group {
                    if r.expiration.is_some() {
                        self.expires = earliest(self.expires, r.expiration);
                    }
                    let cv = self.ev.caveat_value(r, self.context)?;
                    if cv == CheckOutcome::No {
                        return Ok(CheckOutcome::No);
                    }
                    let computed = match &c {
                        Some(c) => c.clone(),
                        None => {
                            let v = self.check_key(target, &object.object_id, depth + 1)?;
                            c = Some(v.clone());
                            v
                        }
                    };
                    every = intersect(every, intersect(cv, computed));
                    if every == CheckOutcome::No {
                        return Ok(CheckOutcome::No);
                    }
                    any = CheckOutcome::Has;
                }
                continue;
            }
            let mut m = CheckOutcome::No;
            for r in group {
                if r.expiration.is_some() {
                    self.expires = earliest(self.expires, r.expiration);
                }
                m = union(m, self.ev.caveat_value(r, self.context)?);
                if m == CheckOutcome::Has {
                    break;
                }
            }
            if m == CheckOutcome::No {
                continue;
            }
            let c = self.check_key(target, &object.object_id, depth + 1)?;
            any = union(any, intersect(m, c));
            if any == CheckOutcome::Has {
                return Ok(any);
            }
        }
        // For `all`, `any` only records whether any relationship took part.
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
