//! The nested-group index ("Leopard", after Zanzibar §3.2.4), written once above the stores.
//!
//! **What it covers.** A relation `T#r` whose allowed subjects include its own userset
//! (`group#member: user | group#member`) nests: `group:a#member@group:b#member` makes every
//! member of `b` a member of `a`. For such a relation the index stores the transitive closure
//! of its *fast edges* — relationships `T:a#r@T:b#r` without caveat and without expiration —
//! as one row per pair: "`b` is nested, at any depth, in `a`" (`a ≠ b`; a cycle adds the
//! pairs of its members, never `a ⊇ a`). Membership through nesting becomes a set probe,
//! whatever the depth, and lookups become set operations.
//!
//! Everything else on `T#r` is walked as before: direct subjects and wildcards are read where
//! they are stored, and *irregular* objects — those with a userset relationship that is not a
//! fast edge (a caveated or expiring nesting, or another type's userset) — are listed in the
//! index so evaluation can walk exactly their irregular relationships. The evaluator's rule
//! (`engine/leopard.rs`): `x` has `r` for subject `s` iff some `b` in `{x} ∪ nested(x)` holds
//! `s` directly (or through a wildcard), or some irregular `b` in that set holds it through
//! one of its irregular relationships.
//!
//! **Rows.** The index is relationships in the reserved `tessera/` namespace, added by the
//! shared transaction layer (`txn.rs`) to the very transaction that changes the data, at the
//! same revision. So it is versioned like every relationship: readable at any revision inside
//! the GC window, collected by the same GC, torn by no crash (one atomic commit), and shared
//! by every node of a multi-node deployment, whichever store is behind the trait:
//! - closure: `tessera/leopard/T:a#r@T:b#r` (`b` nested in `a`);
//! - state: `tessera/leopard-state/T:r#built@tessera/leopard-state/T:r` (the index of `T#r`
//!   is complete at this revision; without it evaluation ignores the other rows and walks),
//!   and `tessera/leopard-state/T:r#irregular@T:x#r` for each irregular `x`, expiring with
//!   the last of its irregular relationships (or never, when one of them does not expire).
//!
//! The service hides the reserved namespace from every read, export and change feed.
//!
//! **Maintenance.** A write that changes fast edges recomputes the closure of the objects
//! whose nested sets can change: the sources of the changed edges and everything they are
//! nested in (read from the index itself). For each of them the new nested set is walked over
//! the new edges, reusing the stored closure of every object outside that set (their nested
//! sets cannot change), and compared with the stored rows. A schema that starts covering a
//! relation builds its index in the schema write; one that stops covering it deletes it.
//!
//! **Limits.** One transaction changes at most [`MAX_INDEX_CHANGES`] index rows of one
//! relation. A write whose closure change is larger still commits, but switches the index of
//! that relation off (its `built` row is deleted) so evaluation walks the relation as if there
//! were no index; the next schema write (or `rebuild`, run when a server starts) builds it
//! again, reconciling whatever rows were left behind, unless the whole index is larger than
//! the limit. Deleting an index (a schema change that stops covering the relation) deletes
//! every one of its rows in that transaction, however many.

#![allow(clippy::result_large_err)] // reason: `StoreError` is large by design (see `txn.rs`)

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::txn::WriteSession;
use super::{RelationshipUpdate, Snapshot, StoreError, WriteOp};
use crate::model::{
    ObjectRef, Relationship, RelationshipFilter, RelationshipKey, SubjectFilter, SubjectRef,
    SubjectRelationFilter, Timestamp,
};
use crate::schema::{AllowedSubjectKind, RelationKind, Schema, SchemaLimits};

/// Type prefix of the closure rows: `tessera/leopard/T`.
pub const CLOSURE_TYPE_PREFIX: &str = "tessera/leopard/";
/// Type prefix of the state rows: `tessera/leopard-state/T`.
pub const STATE_TYPE_PREFIX: &str = "tessera/leopard-state/";
/// Relation of the state row saying the index of a relation is complete.
pub const BUILT: &str = "built";
/// Relation of the state rows listing irregular objects.
pub const IRREGULAR: &str = "irregular";
/// Most index rows one transaction may change for one relation (see the module docs).
pub const MAX_INDEX_CHANGES: usize = 100_000;

/// The closure rows' type for objects of `object_type`.
pub fn closure_type(object_type: &str) -> String {
    format!("{CLOSURE_TYPE_PREFIX}{object_type}")
}

/// The state rows' type for relations of `object_type`.
pub fn state_type(object_type: &str) -> String {
    format!("{STATE_TYPE_PREFIX}{object_type}")
}

/// A relation the index covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Covered {
    pub object_type: String,
    pub relation: String,
    /// Types allowed as usersets on the relation (its own type among them): where irregular
    /// relationships can be.
    pub userset_types: Vec<String>,
}

impl Covered {
    fn is_self_edge(&self, r: &Relationship) -> bool {
        !r.subject.is_wildcard()
            && r.subject.object.object_type == self.object_type
            && r.subject.relation.as_deref() == Some(self.relation.as_str())
    }

    /// A fast edge: a nesting without caveat and without expiration.
    pub fn is_fast_edge(&self, r: &Relationship) -> bool {
        self.is_self_edge(r) && r.caveat.is_none() && r.expiration.is_none()
    }

    /// A relationship on this relation with a userset subject that is not a fast edge.
    fn is_irregular(&self, r: &Relationship) -> bool {
        r.subject.relation.is_some() && !r.subject.is_wildcard() && !self.is_fast_edge(r)
    }

    fn concerns(&self, r: &Relationship) -> bool {
        r.resource.object_type == self.object_type
            && r.relation == self.relation
            && r.subject.relation.is_some()
            && !r.subject.is_wildcard()
    }

    /// `b` nested in `a`.
    pub fn closure_row(&self, a: &str, b: &str) -> Relationship {
        Relationship::new(
            ObjectRef::new(closure_type(&self.object_type), a),
            self.relation.clone(),
            SubjectRef::new(&self.object_type, b, Some(&self.relation)),
        )
    }

    fn built_row(&self) -> Relationship {
        let t = state_type(&self.object_type);
        Relationship::new(
            ObjectRef::new(t.clone(), self.relation.clone()),
            BUILT,
            SubjectRef::new(&t, &self.relation, None),
        )
    }

    fn irregular_row(&self, x: &str, expiration: Option<Timestamp>) -> Relationship {
        let mut r = Relationship::new(
            ObjectRef::new(state_type(&self.object_type), self.relation.clone()),
            IRREGULAR,
            SubjectRef::new(&self.object_type, x, Some(&self.relation)),
        );
        r.expiration = expiration;
        r
    }

    /// The filter of this relation's state rows.
    pub fn state_filter(&self) -> RelationshipFilter {
        state_filter(&self.object_type, &self.relation)
    }
}

/// The filter of the state rows of `object_type#relation`.
pub fn state_filter(object_type: &str, relation: &str) -> RelationshipFilter {
    RelationshipFilter {
        resource_type: Some(state_type(object_type)),
        resource_id: Some(relation.to_string()),
        ..Default::default()
    }
}

/// The filter of the closure rows under `a` (with `b`: the one row "`b` nested in `a`").
pub fn closure_filter(
    object_type: &str,
    relation: &str,
    a: &str,
    b: Option<&str>,
) -> RelationshipFilter {
    RelationshipFilter {
        resource_type: Some(closure_type(object_type)),
        resource_id: Some(a.to_string()),
        resource_id_prefix: None,
        relation: Some(relation.to_string()),
        subject: Some(SubjectFilter {
            subject_type: object_type.to_string(),
            subject_id: b.map(str::to_string),
            relation: SubjectRelationFilter::Relation(relation.to_string()),
        }),
    }
}

/// The subject filter of the closure rows naming `b` (what `b` is nested in, by reverse read
/// on `(closure_type, relation)`).
pub fn nested_subject(object_type: &str, relation: &str, b: &str) -> SubjectFilter {
    SubjectFilter {
        subject_type: object_type.to_string(),
        subject_id: Some(b.to_string()),
        relation: SubjectRelationFilter::Relation(relation.to_string()),
    }
}

/// What the state rows of one relation say at one snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexState {
    pub built: bool,
    /// Irregular objects (ascending ids) and when their marker expires.
    pub irregular: Vec<(String, Option<Timestamp>)>,
}

impl IndexState {
    /// The state from the rows a read of [`state_filter`] returned.
    pub fn from_rows(rows: &[Relationship]) -> IndexState {
        let mut state = IndexState::default();
        for r in rows {
            match r.relation.as_str() {
                BUILT => state.built = true,
                IRREGULAR => state
                    .irregular
                    .push((r.subject.object.object_id.clone(), r.expiration)),
                _ => {}
            }
        }
        state.irregular.sort();
        state
    }
}

/// The relations of `schema` the index covers.
pub fn covered_relations(schema: &Schema) -> Vec<Covered> {
    let mut out = Vec::new();
    for (type_name, def) in &schema.definitions {
        for (name, rel) in &def.relations {
            let RelationKind::Relation(allowed) = &rel.kind else {
                continue;
            };
            let mut userset_types: Vec<String> = allowed
                .iter()
                .filter(|a| matches!(a.kind, AllowedSubjectKind::Relation(_)))
                .map(|a| a.subject_type.clone())
                .collect();
            let nests = allowed.iter().any(|a| {
                a.subject_type == *type_name
                    && matches!(&a.kind, AllowedSubjectKind::Relation(r) if r == name)
            });
            if nests {
                userset_types.sort();
                userset_types.dedup();
                out.push(Covered {
                    object_type: type_name.clone(),
                    relation: name.clone(),
                    userset_types,
                });
            }
        }
    }
    out
}

/// The covered relations of a stored schema text, compiled once per text (a write compiles
/// nothing while the schema stays the same). A text that does not compile covers nothing.
/// Schema texts and what they cover, most recent last.
type CoverageCache = Mutex<Vec<(Arc<str>, Arc<Vec<Covered>>)>>;

fn coverage(text: &Arc<str>) -> Arc<Vec<Covered>> {
    static CACHE: OnceLock<CoverageCache> = OnceLock::new();
    const KEEP: usize = 8;
    let cache = CACHE.get_or_init(|| Mutex::new(Vec::new()));
    if let Some((_, c)) = cache
        .lock()
        .iter()
        .find(|(t, _)| Arc::ptr_eq(t, text) || **t == **text)
    {
        return Arc::clone(c);
    }
    let covered = crate::schema::compile_with("schema", text, &SchemaLimits::unlimited())
        .map(|out| covered_relations(&out.schema))
        .unwrap_or_default();
    let covered = Arc::new(covered);
    let mut cache = cache.lock();
    if cache.len() >= KEEP {
        cache.remove(0);
    }
    cache.push((Arc::clone(text), Arc::clone(&covered)));
    covered
}

/// The index rows a transaction must change besides `changes` (its effective changes), read
/// on the state it commits on. `new_schema` is the text a schema write installs.
pub(crate) fn derive(
    session: &mut impl WriteSession,
    now: Timestamp,
    changes: &[RelationshipUpdate],
    new_schema: Option<&str>,
) -> Result<Vec<RelationshipUpdate>, StoreError> {
    // Only userset relationships and schema changes concern the index: most writes stop here.
    let usersets = changes
        .iter()
        .any(|u| u.relationship.subject.relation.is_some());
    if !usersets && new_schema.is_none() {
        return Ok(Vec::new());
    }
    let stored = session.latest(now)?.schema()?;
    let old = stored.map(|s| coverage(&s.text)).unwrap_or_default();
    let new = match new_schema {
        Some(text) => coverage(&Arc::from(text)),
        None => Arc::clone(&old),
    };
    // The changes each covered relation is concerned with.
    let mut concerned: Vec<(&Covered, Vec<&RelationshipUpdate>)> = Vec::new();
    for c in new.iter() {
        let mine: Vec<&RelationshipUpdate> = changes
            .iter()
            .filter(|u| c.concerns(&u.relationship))
            .collect();
        if !mine.is_empty() {
            concerned.push((c, mine));
        }
    }
    if concerned.is_empty() && new_schema.is_none() {
        return Ok(Vec::new());
    }
    // What a TOUCH replaced (the only change that does not say what was stored).
    let touched: Vec<&Relationship> = concerned
        .iter()
        .flat_map(|(_, us)| us.iter())
        .filter(|u| u.op == WriteOp::Touch)
        .map(|u| &u.relationship)
        .collect();
    let before: Vec<Option<Relationship>> = if touched.is_empty() {
        Vec::new()
    } else {
        session.live(&touched, now)?
    };
    let mut previous: HashMap<RelationshipKey, Relationship> = HashMap::new();
    for (r, b) in touched.iter().zip(before) {
        if let Some(b) = b {
            previous.insert(r.key(), b);
        }
    }

    let latest = session.latest(now)?;
    let snap: &dyn Snapshot = &*latest;
    let mut out = Vec::new();
    if new_schema.is_some() {
        for c in old.iter().filter(|c| {
            !new.iter()
                .any(|n| n.object_type == c.object_type && n.relation == c.relation)
        }) {
            drop_index(snap, c, &mut out)?;
        }
        // A schema write (re)builds every covered index that is not complete; complete ones
        // stay as they are (a schema write changes no relationship).
        for c in new.iter() {
            if !read_state(snap, c)?.built {
                build(snap, c, &mut out)?;
            }
        }
        return Ok(out);
    }
    for (c, mine) in &concerned {
        let state = read_state(snap, c)?;
        if !state.built {
            // No index to keep up to date (evaluation walks this relation).
            continue;
        }
        let rows = Maintenance::new(snap, c, &previous).apply(mine, &state)?;
        if rows.len() > MAX_INDEX_CHANGES {
            // Too large a change to index in one transaction: the relation is walked
            // without its index until the next rebuild.
            out.push(RelationshipUpdate {
                op: WriteOp::Delete,
                relationship: c.built_row(),
            });
        } else {
            out.extend(rows);
        }
    }
    Ok(out)
}

/// Builds the index of every covered relation whose index is not complete on the latest
/// state (after an upgrade, or after a change too large to index switched one off): the rows
/// to commit, empty when there is nothing to do.
pub(crate) fn rebuild(
    session: &mut impl WriteSession,
    now: Timestamp,
) -> Result<Vec<RelationshipUpdate>, StoreError> {
    let latest = session.latest(now)?;
    let Some(stored) = latest.schema()? else {
        return Ok(Vec::new());
    };
    let covered = coverage(&stored.text);
    let mut out = Vec::new();
    for c in covered.iter() {
        if !read_state(&*latest, c)?.built {
            build(&*latest, c, &mut out)?;
        }
    }
    Ok(out)
}

fn read_state(snap: &dyn Snapshot, c: &Covered) -> Result<IndexState, StoreError> {
    let rows: Vec<Relationship> = snap
        .query(&c.state_filter(), None)?
        .collect::<Result<_, _>>()?;
    Ok(IndexState::from_rows(&rows))
}

/// Every stored index row of `c` (closure and state), whatever their expiry.
fn stored_rows(snap: &dyn Snapshot, c: &Covered) -> Result<Vec<Relationship>, StoreError> {
    let closure = RelationshipFilter {
        resource_type: Some(closure_type(&c.object_type)),
        relation: Some(c.relation.clone()),
        ..Default::default()
    };
    let mut rows: Vec<Relationship> = snap.query(&closure, None)?.collect::<Result<_, _>>()?;
    for r in snap.query(&c.state_filter(), None)? {
        rows.push(r?);
    }
    Ok(rows)
}

fn drop_index(
    snap: &dyn Snapshot,
    c: &Covered,
    out: &mut Vec<RelationshipUpdate>,
) -> Result<(), StoreError> {
    for relationship in stored_rows(snap, c)? {
        out.push(RelationshipUpdate {
            op: WriteOp::Delete,
            relationship,
        });
    }
    Ok(())
}

/// The irregular marker an object needs given its userset relationships: none without
/// irregular ones; else expiring with the last of them (never, if one never expires).
fn marker(c: &Covered, rels: &[Relationship]) -> Option<Option<Timestamp>> {
    let mut found = false;
    let mut latest: Option<Timestamp> = None;
    let mut forever = false;
    for r in rels.iter().filter(|r| c.is_irregular(r)) {
        found = true;
        match r.expiration {
            None => forever = true,
            Some(e) => latest = Some(latest.map_or(e, |l| l.max(e))),
        }
    }
    found.then_some(if forever { None } else { latest })
}

/// Builds the whole index of `c` from the latest state, reconciling it with whatever index
/// rows are stored (left by an index that was switched off); leaves it off when the change
/// would exceed [`MAX_INDEX_CHANGES`].
fn build(
    snap: &dyn Snapshot,
    c: &Covered,
    out: &mut Vec<RelationshipUpdate>,
) -> Result<(), StoreError> {
    let all = RelationshipFilter {
        resource_type: Some(c.object_type.clone()),
        relation: Some(c.relation.clone()),
        ..Default::default()
    };
    let mut edges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut usersets: BTreeMap<String, Vec<Relationship>> = BTreeMap::new();
    for r in snap.query(&all, None)? {
        let r = r?;
        if !c.concerns(&r) {
            continue;
        }
        if c.is_fast_edge(&r) {
            edges
                .entry(r.resource.object_id.clone())
                .or_default()
                .push(r.subject.object.object_id.clone());
        }
        usersets
            .entry(r.resource.object_id.clone())
            .or_default()
            .push(r);
    }
    let mut want: BTreeMap<RelationshipKey, Relationship> = BTreeMap::new();
    let add = |want: &mut BTreeMap<RelationshipKey, Relationship>, r: Relationship| {
        want.insert(r.key(), r);
    };
    add(&mut want, c.built_row());
    for (x, rels) in &usersets {
        if let Some(expiration) = marker(c, rels) {
            add(&mut want, c.irregular_row(x, expiration));
        }
    }
    for a in edges.keys() {
        for b in nested_set(a, |z| Ok(edges.get(z).cloned().unwrap_or_default()))? {
            add(&mut want, c.closure_row(a, &b));
        }
        if want.len() > MAX_INDEX_CHANGES {
            return Ok(());
        }
    }
    let mut changes = Vec::new();
    for have in stored_rows(snap, c)? {
        match want.get(&have.key()) {
            // Stored as wanted: nothing to write.
            Some(w) if *w == have => {
                want.remove(&have.key());
            }
            // Stored with other attributes (an irregular marker's expiry): the TOUCH below
            // replaces it.
            Some(_) => {}
            None => changes.push(RelationshipUpdate {
                op: WriteOp::Delete,
                relationship: have,
            }),
        }
    }
    changes.extend(want.into_values().map(|relationship| RelationshipUpdate {
        op: WriteOp::Touch,
        relationship,
    }));
    if changes.len() <= MAX_INDEX_CHANGES {
        out.extend(changes);
    }
    Ok(())
}

/// Everything nested in `a` (not `a` itself) over the edges `out_edges` gives.
fn nested_set(
    a: &str,
    mut out_edges: impl FnMut(&str) -> Result<Vec<String>, StoreError>,
) -> Result<BTreeSet<String>, StoreError> {
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut stack = out_edges(a)?;
    while let Some(z) = stack.pop() {
        if z == a || seen.contains(&z) {
            continue;
        }
        stack.extend(out_edges(&z)?);
        seen.insert(z);
    }
    Ok(seen)
}

/// The incremental maintenance of one relation's index in one transaction.
struct Maintenance<'a> {
    snap: &'a dyn Snapshot,
    c: &'a Covered,
    /// What TOUCHed relationships replaced, by key.
    previous: &'a HashMap<RelationshipKey, Relationship>,
    /// Stored reads, memoised for this transaction.
    fast_out: HashMap<String, Vec<String>>,
    nested_in: HashMap<String, Vec<String>>,
    nested: HashMap<String, BTreeSet<String>>,
}

impl<'a> Maintenance<'a> {
    fn new(
        snap: &'a dyn Snapshot,
        c: &'a Covered,
        previous: &'a HashMap<RelationshipKey, Relationship>,
    ) -> Self {
        Maintenance {
            snap,
            c,
            previous,
            fast_out: HashMap::new(),
            nested_in: HashMap::new(),
            nested: HashMap::new(),
        }
    }

    /// The index rows that `changes` (all concerning this relation) make necessary.
    fn apply(
        &mut self,
        changes: &[&RelationshipUpdate],
        state: &IndexState,
    ) -> Result<Vec<RelationshipUpdate>, StoreError> {
        let c = self.c;
        let mut added: BTreeSet<(String, String)> = BTreeSet::new();
        let mut removed: BTreeSet<(String, String)> = BTreeSet::new();
        let mut irregular_candidates: BTreeSet<&str> = BTreeSet::new();
        for u in changes {
            let rel = &u.relationship;
            let (old, new): (Option<&Relationship>, Option<&Relationship>) = match u.op {
                // A delete carries what was stored.
                WriteOp::Delete => (Some(rel), None),
                WriteOp::Create => (None, Some(rel)),
                WriteOp::Touch => (self.previous.get(&rel.key()), Some(rel)),
            };
            let old_fast = old.is_some_and(|r| c.is_fast_edge(r));
            let new_fast = new.is_some_and(|r| c.is_fast_edge(r));
            let edge = || {
                (
                    rel.resource.object_id.clone(),
                    rel.subject.object.object_id.clone(),
                )
            };
            if new_fast && !old_fast {
                added.insert(edge());
            } else if old_fast && !new_fast {
                removed.insert(edge());
            }
            if old.is_some_and(|r| c.is_irregular(r)) || new.is_some_and(|r| c.is_irregular(r)) {
                irregular_candidates.insert(&rel.resource.object_id);
            }
        }

        let mut out = Vec::new();
        for x in irregular_candidates {
            let rels = self.usersets_after(x, changes)?;
            let want = marker(c, &rels);
            let have = state
                .irregular
                .iter()
                .find(|(id, _)| id == x)
                .map(|(_, e)| *e);
            if want == have {
                continue;
            }
            match (want, have) {
                (Some(expiration), _) => out.push(RelationshipUpdate {
                    op: WriteOp::Touch,
                    relationship: c.irregular_row(x, expiration),
                }),
                (None, Some(expiration)) => out.push(RelationshipUpdate {
                    op: WriteOp::Delete,
                    relationship: c.irregular_row(x, expiration),
                }),
                (None, None) => {}
            }
        }

        if added.is_empty() && removed.is_empty() {
            return Ok(out);
        }
        // Objects whose nested set may change: the changed edges' sources and everything
        // they are nested in. Nothing else can reach a changed edge, in the old graph or the
        // new one (a new path to a source ends in old edges after its last new edge).
        let mut affected: BTreeSet<String> = BTreeSet::new();
        for (x, _) in added.iter().chain(&removed) {
            affected.insert(x.clone());
            affected.extend(self.nested_in(x)?);
        }
        for a in &affected {
            let after = self.nested_after(a, &affected, &added, &removed)?;
            let before = self.nested(a)?.clone();
            for b in after.difference(&before) {
                out.push(RelationshipUpdate {
                    op: WriteOp::Touch,
                    relationship: c.closure_row(a, b),
                });
            }
            for b in before.difference(&after) {
                out.push(RelationshipUpdate {
                    op: WriteOp::Delete,
                    relationship: c.closure_row(a, b),
                });
            }
            if out.len() > MAX_INDEX_CHANGES {
                break;
            }
        }
        Ok(out)
    }

    /// `a`'s nested set after the change: walked over the new edges inside `affected`;
    /// outside it, an object's stored nested set is still right and taken whole.
    fn nested_after(
        &mut self,
        a: &str,
        affected: &BTreeSet<String>,
        added: &BTreeSet<(String, String)>,
        removed: &BTreeSet<(String, String)>,
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut stack = self.out_after(a, added, removed)?;
        while let Some(z) = stack.pop() {
            if z == a || seen.contains(&z) {
                continue;
            }
            if affected.contains(&z) {
                stack.extend(self.out_after(&z, added, removed)?);
            } else {
                seen.extend(self.nested(&z)?.iter().filter(|w| **w != a).cloned());
            }
            seen.insert(z);
        }
        Ok(seen)
    }

    /// The fast edges out of `z` after the change.
    fn out_after(
        &mut self,
        z: &str,
        added: &BTreeSet<(String, String)>,
        removed: &BTreeSet<(String, String)>,
    ) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = self
            .fast_out(z)?
            .iter()
            .filter(|y| !removed.contains(&(z.to_string(), (*y).clone())))
            .cloned()
            .collect();
        for (x, y) in added.range((z.to_string(), String::new())..) {
            if x != z {
                break;
            }
            out.push(y.clone());
        }
        Ok(out)
    }

    fn fast_out(&mut self, z: &str) -> Result<&Vec<String>, StoreError> {
        if !self.fast_out.contains_key(z) {
            let c = self.c;
            let filter = RelationshipFilter {
                resource_type: Some(c.object_type.clone()),
                resource_id: Some(z.to_string()),
                resource_id_prefix: None,
                relation: Some(c.relation.clone()),
                subject: Some(SubjectFilter {
                    subject_type: c.object_type.clone(),
                    subject_id: None,
                    relation: SubjectRelationFilter::Relation(c.relation.clone()),
                }),
            };
            let mut ys = Vec::new();
            for r in self.snap.query(&filter, None)? {
                let r = r?;
                if c.is_fast_edge(&r) {
                    ys.push(r.subject.object.object_id);
                }
            }
            self.fast_out.insert(z.to_string(), ys);
        }
        Ok(&self.fast_out[z])
    }

    /// What `x` is nested in, from the stored index.
    fn nested_in(&mut self, x: &str) -> Result<Vec<String>, StoreError> {
        if let Some(v) = self.nested_in.get(x) {
            return Ok(v.clone());
        }
        let c = self.c;
        let subject = nested_subject(&c.object_type, &c.relation, x);
        let mut out = Vec::new();
        for r in self.snap.reverse_query(
            &subject,
            Some(&closure_type(&c.object_type)),
            Some(&c.relation),
        )? {
            out.push(r?.resource.object_id);
        }
        self.nested_in.insert(x.to_string(), out.clone());
        Ok(out)
    }

    /// What is nested in `a`, from the stored index.
    fn nested(&mut self, a: &str) -> Result<&BTreeSet<String>, StoreError> {
        if !self.nested.contains_key(a) {
            let c = self.c;
            let filter = closure_filter(&c.object_type, &c.relation, a, None);
            let mut set = BTreeSet::new();
            for r in self.snap.query(&filter, None)? {
                set.insert(r?.subject.object.object_id);
            }
            self.nested.insert(a.to_string(), set);
        }
        Ok(&self.nested[a])
    }

    /// `x`'s userset relationships on the relation after `changes`.
    fn usersets_after(
        &self,
        x: &str,
        changes: &[&RelationshipUpdate],
    ) -> Result<Vec<Relationship>, StoreError> {
        let c = self.c;
        let mut by_key: BTreeMap<RelationshipKey, Relationship> = BTreeMap::new();
        for t in &c.userset_types {
            let filter = RelationshipFilter {
                resource_type: Some(c.object_type.clone()),
                resource_id: Some(x.to_string()),
                resource_id_prefix: None,
                relation: Some(c.relation.clone()),
                subject: Some(SubjectFilter {
                    subject_type: t.clone(),
                    subject_id: None,
                    relation: SubjectRelationFilter::Any,
                }),
            };
            for r in self.snap.query(&filter, None)? {
                let r = r?;
                if c.concerns(&r) {
                    by_key.insert(r.key(), r);
                }
            }
        }
        for u in changes
            .iter()
            .filter(|u| u.relationship.resource.object_id == x)
        {
            match u.op {
                WriteOp::Delete => {
                    by_key.remove(&u.relationship.key());
                }
                WriteOp::Create | WriteOp::Touch => {
                    by_key.insert(u.relationship.key(), u.relationship.clone());
                }
            }
        }
        Ok(by_key.into_values().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_nesting_relations_are_covered() {
        let schema = crate::schema::compile(
            "t.zed",
            "use expiration\n\
             definition user {}\n\
             definition team { relation member: user | team#member }\n\
             definition group {\n\
               relation member: user | group#member with expiration | team#member\n\
               relation owner: user | group#member\n\
               permission admin = owner + member\n\
             }",
        )
        .unwrap()
        .schema;
        let covered = covered_relations(&schema);
        let names: Vec<String> = covered
            .iter()
            .map(|c| format!("{}#{} {:?}", c.object_type, c.relation, c.userset_types))
            .collect();
        assert_eq!(
            names,
            [
                "team#member [\"team\"]",
                "group#member [\"group\", \"team\"]"
            ]
        );
    }

    #[test]
    fn nested_sets_follow_cycles_without_the_start() {
        let edges: BTreeMap<&str, Vec<String>> = [
            ("a", vec!["b".to_string()]),
            ("b", vec!["c".to_string(), "a".to_string()]),
            ("c", vec![]),
        ]
        .into_iter()
        .collect();
        let got = nested_set("a", |z| Ok(edges.get(z).cloned().unwrap_or_default())).unwrap();
        assert_eq!(got.into_iter().collect::<Vec<_>>(), ["b", "c"]);
    }
}
