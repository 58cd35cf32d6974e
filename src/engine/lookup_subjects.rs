//! LookupSubjects: every subject of a type that has a permission on one resource.
//!
//! Computed as set algebra: the value of a key `(object, relation)` is a function from
//! subject id to outcome, represented as a default for every id (the wildcard's outcome,
//! `No` without one) plus the ids whose outcome differs. Unions, intersections and
//! exclusions act pointwise, so `user:* - user:bob` is "everyone, except bob". The recursion
//! over keys mirrors check's (cycle cutting, memo rules, depth limit), so for every id the
//! answer is exactly check's.
//!
//! Like the reference, the results list the concrete subjects the data grants explicitly even
//! when a wildcard also grants them (`*` and `alice` for `viewer: user:*` plus
//! `viewer: user:alice`): each set also carries its *explicit* ids, the subjects reached as
//! concrete grants (not those only named on the subtracted side of an exclusion).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use super::analysis::{NodeId, NodeKind, RelationInfo, Rw, SchemaIndex};
use super::check::{group_by_subject_object, group_end};
use super::leopard::{self, NestedIndex};
use super::outcome::{intersect, union};
use super::{CheckOutcome, EngineError, Evaluator, LookupSubject};
use crate::model::{Context, Relationship, SubjectFilter, SubjectRelationFilter, WILDCARD_ID};
use std::sync::Arc;

use super::cache::{MAX_PLAN_DEPS, SubjectsKey};
use super::reads::Recorder;

/// A function from subject id to outcome: `default` for every id not in `members`.
/// Invariant: no member has the default's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubjectSet {
    default: CheckOutcome,
    members: BTreeMap<String, CheckOutcome>,
    /// Ids granted as concrete subjects somewhere below (listed even when the wildcard
    /// gives them the same outcome); their outcome is still `get(id)`.
    explicit: BTreeSet<String>,
}

/// Which explicit ids a combination keeps.
#[derive(Clone, Copy)]
enum Explicit {
    /// Union and intersection: grants from either side.
    Both,
    /// Exclusion: only the base's; the subtracted side grants nothing.
    Left,
}

impl SubjectSet {
    fn empty() -> Self {
        SubjectSet::constant(CheckOutcome::No)
    }

    fn constant(v: CheckOutcome) -> Self {
        SubjectSet {
            default: v,
            members: BTreeMap::new(),
            explicit: BTreeSet::new(),
        }
    }

    fn get(&self, id: &str) -> &CheckOutcome {
        self.members.get(id).unwrap_or(&self.default)
    }

    /// Pointwise `op(self, other)` for union and intersection.
    fn combine(
        &self,
        other: &SubjectSet,
        op: fn(CheckOutcome, CheckOutcome) -> CheckOutcome,
    ) -> SubjectSet {
        self.combine_with(other, op, Explicit::Both)
    }

    /// Pointwise `op(self, other)`, keeping the explicit ids `explicit` says.
    fn combine_with(
        &self,
        other: &SubjectSet,
        op: fn(CheckOutcome, CheckOutcome) -> CheckOutcome,
        explicit: Explicit,
    ) -> SubjectSet {
        let default = op(self.default.clone(), other.default.clone());
        let mut members = BTreeMap::new();
        let mut a = self.members.iter().peekable();
        let mut b = other.members.iter().peekable();
        loop {
            let (id, v) = match (a.peek(), b.peek()) {
                (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                    std::cmp::Ordering::Less => {
                        let r = (*ka, op((*va).clone(), other.default.clone()));
                        a.next();
                        r
                    }
                    std::cmp::Ordering::Greater => {
                        let r = (*kb, op(self.default.clone(), (*vb).clone()));
                        b.next();
                        r
                    }
                    std::cmp::Ordering::Equal => {
                        let r = (*ka, op((*va).clone(), (*vb).clone()));
                        a.next();
                        b.next();
                        r
                    }
                },
                (Some((ka, va)), None) => {
                    let r = (*ka, op((*va).clone(), other.default.clone()));
                    a.next();
                    r
                }
                (None, Some((kb, vb))) => {
                    let r = (*kb, op(self.default.clone(), (*vb).clone()));
                    b.next();
                    r
                }
                (None, None) => break,
            };
            if v != default {
                members.insert(id.clone(), v);
            }
        }
        let explicit = match explicit {
            Explicit::Both if other.explicit.is_empty() => self.explicit.clone(),
            Explicit::Both if self.explicit.is_empty() => other.explicit.clone(),
            Explicit::Both => self.explicit.union(&other.explicit).cloned().collect(),
            Explicit::Left => self.explicit.clone(),
        };
        SubjectSet {
            default,
            members,
            explicit,
        }
    }

    /// Adds (by union) `id` with outcome `v`.
    fn add(&mut self, id: &str, v: CheckOutcome) {
        if v != CheckOutcome::No {
            self.explicit.insert(id.to_string());
        }
        let merged = union(self.get(id).clone(), v);
        if merged == self.default {
            self.members.remove(id);
        } else {
            self.members.insert(id.to_string(), merged);
        }
    }

    fn into_results(self) -> Vec<LookupSubject> {
        fn rank(v: &CheckOutcome) -> u8 {
            match v {
                CheckOutcome::No => 0,
                CheckOutcome::Conditional { .. } => 1,
                CheckOutcome::Has => 2,
            }
        }
        let mut out = Vec::new();
        let wildcard_rank = rank(&self.default);
        let mut excluded = Vec::new();
        let mut concrete = Vec::new();
        let default = self.default.clone();
        let mut explicit = self.explicit.into_iter().peekable();
        for (id, v) in self.members {
            // Explicit ids sorting before this member have the wildcard's outcome.
            while let Some(e) = explicit.next_if(|e| *e < id) {
                if wildcard_rank > 0 {
                    concrete.push(LookupSubject {
                        subject_id: e,
                        outcome: default.clone(),
                        excluded: Vec::new(),
                    });
                }
            }
            explicit.next_if(|e| *e == id);
            if rank(&v) < wildcard_rank {
                // Excluded from the wildcard: always (`Has`) or depending on parameters.
                let outcome = match v {
                    CheckOutcome::No => CheckOutcome::Has,
                    other => other,
                };
                excluded.push(LookupSubject {
                    subject_id: id,
                    outcome,
                    excluded: Vec::new(),
                });
            } else {
                concrete.push(LookupSubject {
                    subject_id: id,
                    outcome: v,
                    excluded: Vec::new(),
                });
            }
        }
        if wildcard_rank > 0 {
            concrete.extend(explicit.map(|e| LookupSubject {
                subject_id: e,
                outcome: default.clone(),
                excluded: Vec::new(),
            }));
            out.push(LookupSubject {
                subject_id: WILDCARD_ID.to_string(),
                outcome: self.default,
                excluded,
            });
        }
        out.extend(concrete);
        out
    }
}

fn scale(set: &SubjectSet, v: &CheckOutcome) -> SubjectSet {
    match v {
        CheckOutcome::Has => set.clone(),
        CheckOutcome::No => SubjectSet::empty(),
        c => set.combine(&SubjectSet::constant(c.clone()), intersect),
    }
}

/// What one relationship grants a LookupSubjects key (see `Run::grant`).
struct Grant {
    /// Its subject is one of those asked for.
    direct: bool,
    /// The node of its userset, to follow.
    follow: Option<NodeId>,
    /// Its caveat's value (never `No`).
    caveat: CheckOutcome,
}

struct Run<'e, 'a> {
    ev: &'e Evaluator<'a>,
    index: &'e SchemaIndex,
    subject_type: &'e str,
    subject_relation: Option<&'e str>,
    subject_def: u32,
    subject_node: Option<NodeId>,
    context: &'e Context,
    memo: Vec<HashMap<String, Rc<SubjectSet>>>,
    stack: Vec<(NodeId, String)>,
    scc_active: Vec<u32>,
    low: usize,
    /// This lookup's reads, sharing store resources between them (and noting them when the
    /// result is offered to the shared cache).
    reader: Recorder<'e>,
    /// The nested-group index's state per nesting relation, read once per lookup.
    nested: NestedIndex,
}

/// The subjects of `subject_type` (and relation) with `node` on `object_id`: from the shared
/// cache when the request has no caveat context and the cache holds a result that holds at
/// this revision (or one carried to it), else evaluated, and offered to the cache.
pub(crate) fn lookup_shared(
    ev: &Evaluator<'_>,
    node: NodeId,
    object_id: &str,
    subject_type: &str,
    subject_relation: Option<&str>,
    context: &Context,
) -> Result<Arc<Vec<LookupSubject>>, EngineError> {
    let cache = ev.cache.filter(|c| c.enabled() && context.is_empty());
    let key: Option<SubjectsKey> = cache.map(|_| {
        (
            node,
            object_id.to_string(),
            subject_type.to_string(),
            subject_relation.map(str::to_string),
        )
    });
    let snapshot = ev.snapshot;
    if let (Some(cache), Some(key)) = (cache, &key)
        && let Some(found) = cache.subjects(key, snapshot.revision(), snapshot.now())
    {
        return Ok(found);
    }
    let reader = Recorder::new(snapshot.reader(), cache.and_then(|c| c.recent())).with_expiry();
    let (found, mut reader) = lookup(
        ev,
        node,
        object_id,
        subject_type,
        subject_relation,
        context,
        reader,
    )?;
    let found = Arc::new(found);
    if let (Some(cache), Some(key)) = (cache, key)
        && cache.admit_subjects(&key)
    {
        let made = reader.made(snapshot.revision(), snapshot.now(), MAX_PLAN_DEPS);
        cache.insert_subjects(key, made, Arc::clone(&found));
    }
    Ok(found)
}

/// Evaluates a lookup, reading through `reader`, which it returns with its notes.
fn lookup<'e>(
    ev: &'e Evaluator<'_>,
    node: NodeId,
    object_id: &str,
    subject_type: &'e str,
    subject_relation: Option<&'e str>,
    context: &'e Context,
    reader: Recorder<'e>,
) -> Result<(Vec<LookupSubject>, Recorder<'e>), EngineError> {
    let subject_def = ev
        .def_of(subject_type)
        .ok_or_else(|| EngineError::UnknownDefinition(subject_type.to_string()))?;
    let subject_node = match subject_relation {
        Some(r) => Some(ev.node(subject_type, r)?),
        None => None,
    };
    let index = ev.index();
    let mut run = Run {
        ev,
        index,
        subject_type,
        subject_relation,
        subject_def,
        subject_node,
        context,
        memo: std::iter::repeat_with(HashMap::new)
            .take(index.nodes.len())
            .collect(),
        stack: Vec::new(),
        scc_active: vec![0; index.scc_count],
        low: usize::MAX,
        reader,
        nested: NestedIndex::default(),
    };
    let set = run.key(node, object_id, 1)?;
    Ok((Rc::unwrap_or_clone(set).into_results(), run.reader))
}

impl Run<'_, '_> {
    fn key(&mut self, node: NodeId, id: &str, depth: u32) -> Result<Rc<SubjectSet>, EngineError> {
        let info = self.index.get(node);
        let scc = info.scc as usize;
        let memo_ok = info.stratified || self.scc_active[scc] == 0;
        if memo_ok && let Some(v) = self.memo[node as usize].get(id) {
            return Ok(Rc::clone(v));
        }
        if let Some(pos) = self.stack.iter().position(|(n, i)| *n == node && i == id) {
            self.low = self.low.min(pos);
            return Ok(Rc::new(self.with_self(node, id, SubjectSet::empty())));
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
        let result = Rc::new(self.with_self(node, id, result?));
        if memo_ok
            && my_low >= pos
            && let Some((_, key)) = popped
        {
            self.memo[node as usize].insert(key, Rc::clone(&result));
        }
        Ok(result)
    }

    /// A userset contains itself: `type:id#relation` is a subject of `type:id#relation`.
    fn with_self(&self, node: NodeId, id: &str, mut set: SubjectSet) -> SubjectSet {
        if self.subject_node == Some(node) {
            set.add(id, CheckOutcome::Has);
        }
        set
    }

    fn eval_node(&mut self, node: NodeId, id: &str, depth: u32) -> Result<SubjectSet, EngineError> {
        let index = self.index;
        match &index.get(node).kind {
            NodeKind::Relation(_)
                if index.get(node).nests
                    && self.nested.covers(self.ev, &mut self.reader, node)? =>
            {
                self.eval_nested(node, id, depth)
            }
            NodeKind::Relation(_) => self.eval_relation(node, id, depth),
            NodeKind::Permission(rw) => self.eval_rewrite(rw, id, depth),
        }
    }

    fn eval_relation(
        &mut self,
        node: NodeId,
        id: &str,
        depth: u32,
    ) -> Result<SubjectSet, EngineError> {
        let index = self.index;
        let NodeKind::Relation(info) = &index.get(node).kind else {
            return Ok(SubjectSet::empty());
        };
        let mut acc = SubjectSet::empty();
        for rel in self.ev.read_via(&mut self.reader, node, id, None)? {
            let Some(grant) = self.grant(node, info, &rel, false)? else {
                continue;
            };
            self.add_grant(&mut acc, grant, &rel, depth)?;
        }
        Ok(acc)
    }

    /// A nesting relation with its index (`leopard.rs`): the union of what `id` and every
    /// object nested in it hold directly; the nestings themselves are not followed (the
    /// index has them), except those of irregular objects, which are read and walked whole.
    #[inline(never)]
    fn eval_nested(
        &mut self,
        node: NodeId,
        id: &str,
        depth: u32,
    ) -> Result<SubjectSet, EngineError> {
        let index = self.index;
        let NodeKind::Relation(info) = &index.get(node).kind else {
            return Ok(SubjectSet::empty());
        };
        let Some(state) = self.nested.state(self.ev, &mut self.reader, node)? else {
            return self.eval_relation(node, id, depth);
        };
        let mut objects = vec![id.to_string()];
        objects.extend(leopard::nested(self.ev, &mut self.reader, node, id)?);
        // Only the subjects asked for are read from regular objects (a wildcard of the
        // type included); everything else there is a fast nesting.
        let wanted = SubjectFilter {
            subject_type: self.subject_type.to_string(),
            subject_id: None,
            relation: match self.subject_relation {
                Some(r) => SubjectRelationFilter::Relation(r.to_string()),
                None => SubjectRelationFilter::Ellipsis,
            },
        };
        let mut acc = SubjectSet::empty();
        for b in &objects {
            let irregular = state
                .irregular
                .binary_search_by(|(x, _)| x.as_str().cmp(b))
                .is_ok();
            let filter = (!irregular).then(|| wanted.clone());
            for rel in self.ev.read_via(&mut self.reader, node, b, filter)? {
                let Some(grant) = self.grant(node, info, &rel, true)? else {
                    continue;
                };
                self.add_grant(&mut acc, grant, &rel, depth)?;
            }
        }
        Ok(acc)
    }

    /// What relationship `rel` of relation `node` grants: its subject, when it is one of the
    /// subjects asked for, and the subjects of its userset, when the relation allows
    /// following it (fast nestings are not followed when `indexed`: the index has them).
    /// `None` when nothing.
    fn grant(
        &self,
        node: NodeId,
        info: &RelationInfo,
        rel: &Relationship,
        indexed: bool,
    ) -> Result<Option<Grant>, EngineError> {
        let index = self.index;
        // Which stored subjects count, mirroring the relationships check reads.
        let exact_allowed = match self.subject_node {
            None => info.direct.contains(&self.subject_def),
            Some(n) => info.usersets.contains(&(self.subject_def, n)),
        };
        let wildcard_allowed =
            self.subject_relation.is_none() && info.wildcard.contains(&self.subject_def);
        let s = &rel.subject;
        let matches_type = s.object.object_type == self.subject_type
            && s.relation.as_deref() == self.subject_relation;
        let follow = match &s.relation {
            Some(_) if !s.is_wildcard() => self
                .ev
                .def_of(&s.object.object_type)
                .and_then(|d| {
                    info.usersets.iter().find(|(sd, n)| {
                        *sd == d && s.relation.as_deref() == Some(index.get(*n).name.as_str())
                    })
                })
                .map(|(_, n)| *n)
                .filter(|_| !(indexed && leopard::is_fast_edge(self.ev, node, rel))),
            _ => None,
        };
        let direct = matches_type
            && if s.is_wildcard() {
                wildcard_allowed
            } else {
                exact_allowed
            };
        if !direct && follow.is_none() {
            return Ok(None);
        }
        let caveat = self.ev.caveat_value(rel, self.context)?;
        if caveat == CheckOutcome::No {
            return Ok(None);
        }
        Ok(Some(Grant {
            direct,
            follow,
            caveat,
        }))
    }

    /// Adds `grant` (of relationship `rel`) to `acc`.
    fn add_grant(
        &mut self,
        acc: &mut SubjectSet,
        grant: Grant,
        rel: &Relationship,
        depth: u32,
    ) -> Result<(), EngineError> {
        let s = &rel.subject;
        if grant.direct {
            if s.is_wildcard() {
                *acc = acc.combine(&SubjectSet::constant(grant.caveat.clone()), union);
            } else {
                acc.add(&s.object.object_id, grant.caveat.clone());
            }
        }
        if let Some(n) = grant.follow {
            let sub = self.key(n, &s.object.object_id, depth + 1)?;
            *acc = acc.combine(&scale(&sub, &grant.caveat), union);
        }
        Ok(())
    }

    fn eval_rewrite(&mut self, rw: &Rw, id: &str, depth: u32) -> Result<SubjectSet, EngineError> {
        Ok(match rw {
            Rw::Nil => SubjectSet::empty(),
            Rw::Computed(n) => Rc::unwrap_or_clone(self.key(*n, id, depth + 1)?),
            Rw::Union(items) => {
                let mut acc = SubjectSet::empty();
                for item in items {
                    acc = acc.combine(&self.eval_rewrite(item, id, depth)?, union);
                }
                acc
            }
            Rw::Intersection(items) => {
                let mut acc = SubjectSet::constant(CheckOutcome::Has);
                for item in items {
                    acc = acc.combine(&self.eval_rewrite(item, id, depth)?, intersect);
                }
                acc
            }
            Rw::Exclusion(base, sub) => {
                let b = self.eval_rewrite(base, id, depth)?;
                let s = self.eval_rewrite(sub, id, depth)?;
                b.combine_with(&s, super::outcome::exclude, Explicit::Left)
            }
            Rw::Arrow {
                tupleset,
                computed_by_def,
                all,
            } => {
                let mut rels = self.ev.read_via(&mut self.reader, *tupleset, id, None)?;
                group_by_subject_object(&mut rels);
                // As in check: for `all`, every relationship contributes its caveat value
                // with the subjects of its object; one whose caveat is false empties the set.
                let mut any = SubjectSet::empty();
                let mut every = SubjectSet::constant(CheckOutcome::Has);
                let mut members = false;
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
                    if *all {
                        let mut c = None;
                        for r in group {
                            let cv = self.ev.caveat_value(r, self.context)?;
                            if cv == CheckOutcome::No {
                                return Ok(SubjectSet::empty());
                            }
                            if c.is_none() {
                                c = Some(self.key(target, &object.object_id, depth + 1)?);
                            }
                            if let Some(c) = &c {
                                every = every.combine(&scale(c, &cv), intersect);
                            }
                            members = true;
                        }
                        continue;
                    }
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
                    let c = self.key(target, &object.object_id, depth + 1)?;
                    any = any.combine(&scale(&c, &m), union);
                }
                if !*all {
                    any
                } else if members {
                    every
                } else {
                    SubjectSet::empty()
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(p: &str) -> CheckOutcome {
        CheckOutcome::Conditional {
            missing: vec![p.to_string()],
        }
    }

    #[test]
    fn wildcard_minus_member_reports_the_exclusion() {
        let everyone = SubjectSet::constant(CheckOutcome::Has);
        let mut banned = SubjectSet::empty();
        banned.add("bob", CheckOutcome::Has);
        banned.add("carol", cond("x"));
        let r = everyone.combine(&banned, super::super::outcome::exclude);
        assert_eq!(r.get("alice"), &CheckOutcome::Has);
        assert_eq!(r.get("bob"), &CheckOutcome::No);
        assert_eq!(r.get("carol"), &cond("x"));
        let out = r.into_results();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].subject_id, "*");
        let ex: Vec<_> = out[0]
            .excluded
            .iter()
            .map(|e| (e.subject_id.as_str(), e.outcome.clone()))
            .collect();
        assert_eq!(ex, [("bob", CheckOutcome::Has), ("carol", cond("x"))]);
    }

    fn ids(results: &[LookupSubject]) -> Vec<&str> {
        results.iter().map(|r| r.subject_id.as_str()).collect()
    }

    #[test]
    fn explicit_grants_are_listed_beside_a_wildcard_granting_the_same() {
        let mut a = SubjectSet::empty();
        a.add("x", CheckOutcome::Has);
        let b = SubjectSet::constant(CheckOutcome::Has);
        let u = a.combine(&b, union);
        assert!(u.members.is_empty(), "x has the default outcome");
        assert_eq!(u.get("x"), &CheckOutcome::Has);
        assert_eq!(ids(&u.clone().into_results()), ["*", "x"]);
        let i = a.combine(&b, intersect);
        assert_eq!(i.members.len(), 1);
        assert_eq!(i.default, CheckOutcome::No);
        assert_eq!(ids(&i.into_results()), ["x"]);
    }

    #[test]
    fn ids_only_named_by_an_exclusion_are_not_listed_as_grants() {
        // (* - bob) + *: bob is granted again by the second wildcard, but never explicitly.
        let mut banned = SubjectSet::empty();
        banned.add("bob", CheckOutcome::Has);
        let everyone = SubjectSet::constant(CheckOutcome::Has);
        let minus = everyone.combine_with(&banned, super::super::outcome::exclude, Explicit::Left);
        let again = minus.combine(&everyone, union);
        assert_eq!(ids(&again.into_results()), ["*"]);
        // (* + alice + carol) - alice: carol is listed, alice only as an exclusion.
        let mut granted = SubjectSet::constant(CheckOutcome::Has);
        granted.add("alice", CheckOutcome::Has);
        granted.add("carol", CheckOutcome::Has);
        let mut alice = SubjectSet::empty();
        alice.add("alice", CheckOutcome::Has);
        let out = granted
            .combine_with(&alice, super::super::outcome::exclude, Explicit::Left)
            .into_results();
        assert_eq!(ids(&out), ["*", "carol"]);
        assert_eq!(ids(&out[0].excluded), ["alice"]);
    }
}
