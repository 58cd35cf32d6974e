//! Computes the "expected relations" of an object and permission: every subject that has it,
//! where each subject was found directly, and whether it holds only under a caveat.
//!
//! This is a full recursive expansion, as the reference's validation does: the permission's
//! rewrite is evaluated over the snapshot, and every userset subject met on the way
//! (`group:eng#member`) is itself listed *and* expanded into its own members. A subject's
//! *paths* are the `object#relation` pairs of the relationships through which it was found
//! directly (`[user:a] is <group:eng#member>`), merged across every branch that yields it.
//! When a concrete subject passes an intersection only because the other side holds the
//! wildcard of its type, the wildcard's relation is not where the subject was found directly;
//! it is kept apart in [`FoundSubject::wildcard_paths`] and a listing may include it or not
//! (how the reference lists that case is not documented, so both readings are accepted).
//!
//! Set algebra follows the reference's tracking subject sets: a union keeps a subject if any
//! branch has it (caveated only if every branch that has it is caveated); an intersection keeps
//! subjects present on every side, a concrete subject matching a wildcard on the other side,
//! and is caveated if any side is; an exclusion removes subjects the right side has
//! unconditionally, keeps (as caveated) those it has only conditionally, and turns a wildcard
//! on the left into a wildcard with exclusions. Caveats are never evaluated here: like the
//! reference, a subject reached through any caveated relationship is reported as caveated.
//!
//! Design note: this walks the schema and the snapshot itself rather than the engine's
//! one-level `expand`, because it must track paths and caveats through arrows, which the
//! expand tree does not carry. Data cycles terminate: an `object#relation` already being
//! expanded contributes nothing further on that branch (the least fixed point for unions).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{ObjectRef, RelationshipFilter, SubjectRef, WILDCARD_ID};
use crate::schema::{ArrowKind, RelationKind, Rewrite, Schema};
use crate::store::{Snapshot, StoreError};

use super::entries::ObjectRelation;

/// How one subject holds the permission.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FoundSubject {
    /// For a wildcard: the concrete subjects excluded from it, each with whether the
    /// exclusion is only conditional (the excluding relationship is caveated).
    pub excluded: BTreeMap<SubjectRef, bool>,
    /// True when the subject holds the permission only if some caveat allows it.
    pub caveated: bool,
    /// Names of the caveats met on the way (for messages; only meaningful when `caveated`).
    pub caveats: BTreeSet<String>,
    /// Where the subject was found directly.
    pub paths: BTreeSet<ObjectRelation>,
    /// Where a wildcard that let the subject through an intersection was found.
    pub wildcard_paths: BTreeSet<ObjectRelation>,
}

impl FoundSubject {
    /// The caveat marker to show: the caveat's name when exactly one is involved, else `...`.
    pub fn caveat_marker(&self) -> Option<String> {
        if !self.caveated {
            return None;
        }
        match (self.caveats.len(), self.caveats.first()) {
            (1, Some(name)) => Some(name.clone()),
            _ => Some("...".to_string()),
        }
    }

    fn with_caveat(mut self, caveat: Option<&str>) -> Self {
        if let Some(c) = caveat {
            self.caveated = true;
            self.caveats.insert(c.to_string());
        }
        self
    }

    /// Makes the finding conditional on everything `other` was conditional on.
    fn also_conditional_on(&mut self, other: &FoundSubject) {
        self.caveated = true;
        self.caveats.extend(other.caveats.iter().cloned());
    }
}

/// Every subject that has one permission, keyed by subject.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubjectSet {
    pub subjects: BTreeMap<SubjectRef, FoundSubject>,
}

fn wildcard_of(object_type: &str) -> SubjectRef {
    SubjectRef::new(object_type, WILDCARD_ID, None)
}

/// A concrete subject a wildcard of its type can stand for (`user:x`, not `group:g#member`).
fn wildcard_eligible(s: &SubjectRef) -> bool {
    !s.is_wildcard() && s.relation.is_none()
}

impl SubjectSet {
    fn add(&mut self, subject: SubjectRef, found: FoundSubject) {
        match self.subjects.remove(&subject) {
            None => {
                self.subjects.insert(subject, found);
            }
            Some(existing) => {
                let merged = merge_union(existing, found);
                self.subjects.insert(subject, merged);
            }
        }
    }

    /// Marks every subject as reached through `caveat` (a caveated relationship on the way).
    fn apply_caveat(&mut self, caveat: Option<&str>) {
        if caveat.is_none() {
            return;
        }
        let subjects = std::mem::take(&mut self.subjects);
        self.subjects = subjects
            .into_iter()
            .map(|(s, f)| (s, f.with_caveat(caveat)))
            .collect();
    }

    /// How the wildcard of `s`'s type (if any) gives `s`: caveated when the wildcard is, or
    /// when `s` is excluded from it only conditionally. `None` when there is no wildcard or
    /// `s` is excluded from it unconditionally.
    pub fn via_wildcard(&self, s: &SubjectRef) -> Option<FoundSubject> {
        if !wildcard_eligible(s) {
            return None;
        }
        let w = self.subjects.get(&wildcard_of(&s.object.object_type))?;
        let mut f = FoundSubject {
            excluded: BTreeMap::new(),
            paths: BTreeSet::new(),
            wildcard_paths: w.paths.union(&w.wildcard_paths).cloned().collect(),
            ..w.clone()
        };
        match w.excluded.get(s) {
            None => {}
            Some(true) => f.caveated = true,
            Some(false) => return None,
        }
        Some(f)
    }

    /// `self ∪ other`.
    pub fn union(mut self, other: SubjectSet) -> SubjectSet {
        for (s, f) in other.subjects {
            self.add(s, f);
        }
        // A subject present unconditionally is no longer excluded from a wildcard.
        let unconditional: Vec<SubjectRef> = self
            .subjects
            .iter()
            .filter(|(s, f)| wildcard_eligible(s) && !f.caveated)
            .map(|(s, _)| s.clone())
            .collect();
        for s in unconditional {
            if let Some(w) = self.subjects.get_mut(&wildcard_of(&s.object.object_type)) {
                w.excluded.remove(&s);
            }
        }
        self
    }

    /// `self ∩ other`.
    pub fn intersect(&self, other: &SubjectSet) -> SubjectSet {
        let mut out = SubjectSet::default();
        for (s, a) in &self.subjects {
            if s.is_wildcard() {
                if let Some(b) = other.subjects.get(s) {
                    // Excluded from the intersection when excluded from either side;
                    // conditionally only if every side excluding it does so conditionally.
                    let mut excluded = a.excluded.clone();
                    for (x, cond) in &b.excluded {
                        excluded
                            .entry(x.clone())
                            .and_modify(|c| *c = *c && *cond)
                            .or_insert(*cond);
                    }
                    out.add(s.clone(), merge_both(a, b, excluded));
                }
                continue;
            }
            if let Some(b) = other.subjects.get(s) {
                out.add(s.clone(), merge_both(a, b, BTreeMap::new()));
            } else if let Some(w) = other.via_wildcard(s) {
                out.add(s.clone(), merge_both(a, &w, BTreeMap::new()));
            }
        }
        for (s, b) in &other.subjects {
            if s.is_wildcard() || self.subjects.contains_key(s) {
                continue;
            }
            if let Some(w) = self.via_wildcard(s) {
                out.add(s.clone(), merge_both(&w, b, BTreeMap::new()));
            }
        }
        out
    }

    /// `self − other`.
    pub fn subtract(&self, other: &SubjectSet) -> SubjectSet {
        let mut out = SubjectSet::default();
        for (s, a) in &self.subjects {
            if s.is_wildcard() {
                self.subtract_from_wildcard(s, a, other, &mut out);
                continue;
            }
            let removed_by = other
                .subjects
                .get(s)
                .cloned()
                .or_else(|| other.via_wildcard(s));
            match removed_by {
                None => out.add(s.clone(), a.clone()),
                Some(b) if b.caveated => {
                    let mut kept = a.clone();
                    kept.also_conditional_on(&b);
                    out.add(s.clone(), kept);
                }
                Some(_) => {}
            }
        }
        out
    }

    /// `wildcard − other` for the wildcard `s` (found as `a`) of this set, into `out`.
    fn subtract_from_wildcard(
        &self,
        s: &SubjectRef,
        a: &FoundSubject,
        other: &SubjectSet,
        out: &mut SubjectSet,
    ) {
        let object_type = &s.object.object_type;
        match other.subjects.get(s) {
            Some(w) if w.caveated => {
                let mut kept = a.clone();
                kept.also_conditional_on(w);
                out.add(s.clone(), kept);
            }
            Some(w) => {
                // `*−{a..}` minus `*−{b..}` leaves the subjects the right side excluded and
                // the left side did not (conditionally when either exclusion is conditional).
                for (x, cond_right) in &w.excluded {
                    let caveated = match a.excluded.get(x) {
                        None => *cond_right,
                        Some(true) => true,
                        Some(false) => continue,
                    };
                    let mut f = FoundSubject {
                        excluded: BTreeMap::new(),
                        ..a.clone()
                    };
                    if caveated {
                        f.caveated = true;
                    }
                    out.add(x.clone(), f);
                }
            }
            None => {
                let mut kept = a.clone();
                for (x, f) in &other.subjects {
                    if wildcard_eligible(x) && x.object.object_type == *object_type {
                        // Excluded unconditionally if any exclusion is unconditional.
                        kept.excluded
                            .entry(x.clone())
                            .and_modify(|c| *c = *c && f.caveated)
                            .or_insert(f.caveated);
                    }
                }
                out.add(s.clone(), kept);
            }
        }
    }
}

/// Merges two findings of the same subject from alternative branches.
fn merge_union(a: FoundSubject, b: FoundSubject) -> FoundSubject {
    let caveated = a.caveated && b.caveated;
    // Excluded from a union only if excluded from both; unconditionally only if both are.
    let excluded = a
        .excluded
        .iter()
        .filter_map(|(x, ca)| b.excluded.get(x).map(|cb| (x.clone(), *ca || *cb)))
        .collect();
    FoundSubject {
        excluded,
        caveated,
        caveats: if caveated {
            a.caveats.union(&b.caveats).cloned().collect()
        } else {
            BTreeSet::new()
        },
        paths: a.paths.union(&b.paths).cloned().collect(),
        wildcard_paths: a.wildcard_paths.union(&b.wildcard_paths).cloned().collect(),
    }
}

/// Merges two findings that must both hold (intersection).
fn merge_both(
    a: &FoundSubject,
    b: &FoundSubject,
    excluded: BTreeMap<SubjectRef, bool>,
) -> FoundSubject {
    FoundSubject {
        excluded,
        caveated: a.caveated || b.caveated,
        caveats: a.caveats.union(&b.caveats).cloned().collect(),
        paths: a.paths.union(&b.paths).cloned().collect(),
        wildcard_paths: a.wildcard_paths.union(&b.wildcard_paths).cloned().collect(),
    }
}

/// Why an expansion could not be completed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MembershipError {
    #[error("relation or permission `{relation}` not found on definition `{object_type}`")]
    UnknownRelation {
        object_type: String,
        relation: String,
    },
    #[error(
        "expansion exceeded the maximum depth of {limit} at `{at}`; the data may be too deeply nested"
    )]
    DepthExceeded { limit: u32, at: String },
    /// Boxed: store errors are large and this error travels up every recursion level.
    #[error(transparent)]
    Store(Box<StoreError>),
}

impl From<StoreError> for MembershipError {
    fn from(e: StoreError) -> Self {
        MembershipError::Store(Box::new(e))
    }
}

/// "No cycle was cut below this point": results may be memoised.
const NO_CUT: usize = usize::MAX;

/// Recursive expansion over one schema and one snapshot, memoising finished results.
pub struct Membership<'a> {
    schema: &'a Schema,
    snapshot: &'a dyn Snapshot,
    max_depth: u32,
    stack: Vec<ObjectRelation>,
    memo: HashMap<ObjectRelation, SubjectSet>,
}

impl<'a> Membership<'a> {
    pub fn new(schema: &'a Schema, snapshot: &'a dyn Snapshot, max_depth: u32) -> Self {
        Membership {
            schema,
            snapshot,
            max_depth,
            stack: Vec::new(),
            memo: HashMap::new(),
        }
    }

    /// Every subject that has `onr.relation` on `onr.object`.
    pub fn subjects(&mut self, onr: &ObjectRelation) -> Result<SubjectSet, MembershipError> {
        self.members(onr).map(|(set, _)| set)
    }

    /// Returns the set and the lowest stack index of a cycle cut met while computing it.
    /// A result computed while cutting a cycle through an *enclosing* `object#relation` is
    /// incomplete on its own and is not memoised (the enclosing one, once done, is complete).
    fn members(&mut self, onr: &ObjectRelation) -> Result<(SubjectSet, usize), MembershipError> {
        if let Some(done) = self.memo.get(onr) {
            return Ok((done.clone(), NO_CUT));
        }
        if let Some(index) = self.stack.iter().position(|o| o == onr) {
            return Ok((SubjectSet::default(), index));
        }
        if self.stack.len() >= self.max_depth as usize {
            return Err(MembershipError::DepthExceeded {
                limit: self.max_depth,
                at: onr.to_string(),
            });
        }
        let relation = self
            .schema
            .relation(&onr.object.object_type, &onr.relation)
            .ok_or_else(|| MembershipError::UnknownRelation {
                object_type: onr.object.object_type.clone(),
                relation: onr.relation.clone(),
            })?;
        let depth = self.stack.len();
        self.stack.push(onr.clone());
        let result = match &relation.kind {
            RelationKind::Relation(_) => self.direct(onr),
            RelationKind::Permission(rewrite) => {
                let rewrite = rewrite.clone();
                self.rewrite(&onr.object, &rewrite)
            }
        };
        self.stack.pop();
        let (set, low) = result?;
        if low >= depth {
            self.memo.insert(onr.clone(), set.clone());
            Ok((set, NO_CUT))
        } else {
            Ok((set, low))
        }
    }

    /// Subjects of stored relationships `object#relation@...`, with usersets followed.
    fn direct(&mut self, onr: &ObjectRelation) -> Result<(SubjectSet, usize), MembershipError> {
        let filter = RelationshipFilter {
            resource_type: Some(onr.object.object_type.clone()),
            resource_id: Some(onr.object.object_id.clone()),
            relation: Some(onr.relation.clone()),
            ..Default::default()
        };
        let relationships: Vec<_> = self
            .snapshot
            .query(&filter, None)?
            .collect::<Result<_, StoreError>>()?;
        let mut set = SubjectSet::default();
        let mut low = NO_CUT;
        for r in relationships {
            let caveat = r.caveat.as_ref().map(|c| c.name.as_str());
            let found = FoundSubject {
                paths: [onr.clone()].into(),
                ..Default::default()
            }
            .with_caveat(caveat);
            if let Some(rel) = &r.subject.relation {
                let userset = ObjectRelation {
                    object: r.subject.object.clone(),
                    relation: rel.clone(),
                };
                let (mut members, l) = self.members(&userset)?;
                low = low.min(l);
                members.apply_caveat(caveat);
                set = set.union(members);
            }
            set = set.union(SubjectSet {
                subjects: [(r.subject, found)].into(),
            });
        }
        Ok((set, low))
    }

    fn rewrite(
        &mut self,
        object: &ObjectRef,
        rewrite: &Rewrite,
    ) -> Result<(SubjectSet, usize), MembershipError> {
        match rewrite {
            Rewrite::Nil => Ok((SubjectSet::default(), NO_CUT)),
            Rewrite::Computed(relation) => self.members(&ObjectRelation {
                object: object.clone(),
                relation: relation.clone(),
            }),
            Rewrite::Arrow {
                tupleset,
                computed,
                kind,
            } => self.arrow(object, tupleset, computed, *kind),
            Rewrite::Union(children) => {
                let mut set = SubjectSet::default();
                let mut low = NO_CUT;
                for c in children {
                    let (s, l) = self.rewrite(object, c)?;
                    low = low.min(l);
                    set = set.union(s);
                }
                Ok((set, low))
            }
            Rewrite::Intersection(children) => {
                let mut acc: Option<SubjectSet> = None;
                let mut low = NO_CUT;
                for c in children {
                    let (s, l) = self.rewrite(object, c)?;
                    low = low.min(l);
                    acc = Some(match acc {
                        None => s,
                        Some(a) => a.intersect(&s),
                    });
                }
                Ok((acc.unwrap_or_default(), low))
            }
            Rewrite::Exclusion(base, removed) => {
                let (b, l1) = self.rewrite(object, base)?;
                let (r, l2) = self.rewrite(object, removed)?;
                Ok((b.subtract(&r), l1.min(l2)))
            }
        }
    }

    /// `tupleset->computed` (any) or `tupleset.all(computed)`.
    fn arrow(
        &mut self,
        object: &ObjectRef,
        tupleset: &str,
        computed: &str,
        kind: ArrowKind,
    ) -> Result<(SubjectSet, usize), MembershipError> {
        let filter = RelationshipFilter {
            resource_type: Some(object.object_type.clone()),
            resource_id: Some(object.object_id.clone()),
            relation: Some(tupleset.to_string()),
            ..Default::default()
        };
        let relationships: Vec<_> = self
            .snapshot
            .query(&filter, None)?
            .collect::<Result<_, StoreError>>()?;
        let mut acc: Option<SubjectSet> = None;
        let mut low = NO_CUT;
        for r in relationships {
            // The arrow walks to the subject object itself; wildcards name no object, and a
            // type without the computed relation contributes nothing.
            if r.subject.is_wildcard()
                || self
                    .schema
                    .relation(&r.subject.object.object_type, computed)
                    .is_none()
            {
                if kind == ArrowKind::All {
                    acc = Some(SubjectSet::default());
                }
                continue;
            }
            let (mut s, l) = self.members(&ObjectRelation {
                object: r.subject.object.clone(),
                relation: computed.to_string(),
            })?;
            low = low.min(l);
            s.apply_caveat(r.caveat.as_ref().map(|c| c.name.as_str()));
            acc = Some(match (acc, kind) {
                (None, _) => s,
                (Some(a), ArrowKind::Any) => a.union(s),
                (Some(a), ArrowKind::All) => a.intersect(&s),
            });
        }
        Ok((acc.unwrap_or_default(), low))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subj(s: &str) -> SubjectRef {
        crate::model::parse_subject(s).unwrap()
    }

    fn onr(s: &str) -> ObjectRelation {
        super::super::entries::parse_object_relation(s).unwrap()
    }

    fn found(path: &str, caveat: Option<&str>) -> FoundSubject {
        FoundSubject {
            paths: [onr(path)].into(),
            ..Default::default()
        }
        .with_caveat(caveat)
    }

    fn set(items: &[(&str, FoundSubject)]) -> SubjectSet {
        SubjectSet {
            subjects: items.iter().map(|(s, f)| (subj(s), f.clone())).collect(),
        }
    }

    #[test]
    fn union_merges_paths_and_caveats() {
        let a = set(&[
            ("user:a", found("doc:1#viewer", Some("c1"))),
            ("user:b", found("doc:1#viewer", Some("c1"))),
        ]);
        let b = set(&[
            ("user:a", found("doc:1#editor", None)),
            ("user:b", found("doc:1#editor", Some("c2"))),
        ]);
        let u = a.union(b);
        let fa = &u.subjects[&subj("user:a")];
        assert!(!fa.caveated);
        assert_eq!(fa.paths, [onr("doc:1#viewer"), onr("doc:1#editor")].into());
        let fb = &u.subjects[&subj("user:b")];
        assert!(fb.caveated);
        assert_eq!(fb.caveat_marker().as_deref(), Some("..."));
    }

    #[test]
    fn union_with_concrete_lifts_exclusion() {
        let mut w = found("doc:1#viewer", None);
        w.excluded.insert(subj("user:bob"), false);
        let a = set(&[("user:*", w)]);
        let b = set(&[("user:bob", found("doc:1#editor", None))]);
        let u = a.union(b);
        assert!(u.subjects[&subj("user:*")].excluded.is_empty());
        assert!(u.subjects.contains_key(&subj("user:bob")));
    }

    #[test]
    fn intersection_with_wildcard() {
        let a = set(&[
            ("user:*", found("doc:1#viewer", None)),
            ("group:g#member", found("doc:1#viewer", None)),
        ]);
        let b = set(&[
            ("user:x", found("doc:1#editor", Some("c"))),
            ("group:g#member", found("doc:1#editor", None)),
        ]);
        let i = a.intersect(&b);
        assert_eq!(i.subjects.len(), 2, "{i:?}");
        let x = &i.subjects[&subj("user:x")];
        assert!(x.caveated);
        assert_eq!(x.caveat_marker().as_deref(), Some("c"));
        // The subject was found directly only on the editor side.
        assert_eq!(x.paths, [onr("doc:1#editor")].into());
        assert_eq!(x.wildcard_paths, [onr("doc:1#viewer")].into());
        assert_eq!(
            i.subjects[&subj("group:g#member")].paths,
            [onr("doc:1#viewer"), onr("doc:1#editor")].into()
        );
        assert!(!i.subjects.contains_key(&subj("user:*")));
        // Usersets are not covered by a wildcard.
        let c = set(&[("group:h#member", found("doc:1#editor", None))]);
        assert!(a.intersect(&c).subjects.is_empty());
    }

    #[test]
    fn intersection_of_wildcards_unions_exclusions() {
        let mut w1 = found("doc:1#viewer", None);
        w1.excluded.insert(subj("user:a"), false);
        let mut w2 = found("doc:1#editor", None);
        w2.excluded.insert(subj("user:b"), true);
        let i = set(&[("user:*", w1)]).intersect(&set(&[("user:*", w2)]));
        assert_eq!(
            i.subjects[&subj("user:*")].excluded,
            [(subj("user:a"), false), (subj("user:b"), true)].into()
        );
    }

    #[test]
    fn exclusion_rules() {
        let base = set(&[
            ("user:*", found("doc:1#viewer", None)),
            ("user:a", found("doc:1#viewer", None)),
            ("user:b", found("doc:1#viewer", None)),
            ("user:c", found("doc:1#viewer", None)),
        ]);
        let removed = set(&[
            ("user:a", found("doc:1#banned", None)),
            ("user:b", found("doc:1#banned", Some("maybe"))),
            ("group:g#member", found("doc:1#banned", None)),
        ]);
        let d = base.subtract(&removed);
        assert!(!d.subjects.contains_key(&subj("user:a")));
        assert!(d.subjects[&subj("user:b")].caveated);
        assert!(!d.subjects[&subj("user:c")].caveated);
        assert_eq!(
            d.subjects[&subj("user:*")].excluded,
            [(subj("user:a"), false), (subj("user:b"), true)].into()
        );
        // A conditionally excluded subject is covered conditionally.
        assert!(d.via_wildcard(&subj("user:b")).unwrap().caveated);
        assert!(d.via_wildcard(&subj("user:a")).is_none());
        assert!(!d.via_wildcard(&subj("user:z")).unwrap().caveated);

        // Everything minus a wildcard is nothing; a caveated wildcard keeps subjects caveated.
        let all = set(&[("user:*", found("doc:1#banned", None))]);
        assert!(base.subtract(&all).subjects.is_empty());
        let maybe_all = set(&[("user:*", found("doc:1#banned", Some("c")))]);
        assert!(
            base.subtract(&maybe_all)
                .subjects
                .values()
                .all(|f| f.caveated)
        );

        // `*−{x}` minus `*−{y}` is {y}.
        let mut w1 = found("doc:1#viewer", None);
        w1.excluded.insert(subj("user:x"), false);
        let mut w2 = found("doc:1#banned", None);
        w2.excluded.insert(subj("user:y"), false);
        let r = set(&[("user:*", w1)]).subtract(&set(&[("user:*", w2)]));
        assert_eq!(
            r.subjects.keys().cloned().collect::<Vec<_>>(),
            vec![subj("user:y")]
        );
    }

    /// Compiles `schema`, loads `relationships`, and returns, for every object and relation or
    /// permission, the computed subject set next to the engine's check of every user.
    mod against_engine {
        use super::*;
        use crate::engine::{CheckOutcome, EngineConfig, Evaluator};
        use crate::model::{Context, parse_relationship};
        use crate::store::Store;
        use crate::store::memory::MemoryStore;

        const SCHEMA: &str = r#"
            definition user {}
            caveat on_weekday(day int) { day >= 1 && day <= 5 }
            definition group {
                relation member: user | group#member | user with on_weekday
            }
            definition folder {
                relation parent: folder | folder with on_weekday
                relation viewer: user | group#member
                permission view = viewer + parent->view
            }
            definition document {
                relation folder: folder
                relation reviewer: folder
                relation viewer: user | user:* | group#member
                relation editor: user | user with on_weekday
                relation banned: user | group#member
                relation approved: user
                permission edit = editor & approved
                permission view = (viewer + edit + folder->view) - banned
                permission review = reviewer.all(view)
                permission nothing = viewer & nil
            }
        "#;

        const RELATIONSHIPS: &[&str] = &[
            // a membership cycle: a ∋ b ∋ a
            "group:a#member@user:ann",
            "group:a#member@group:b#member",
            "group:b#member@user:bo",
            "group:b#member@group:a#member",
            "group:b#member@user:cy[on_weekday]",
            "folder:root#viewer@group:a#member",
            "folder:sub#parent@folder:root",
            "folder:cav#parent@folder:root[on_weekday]",
            "folder:other#viewer@user:ann",
            "document:d1#folder@folder:sub",
            "document:d1#editor@user:ed",
            "document:d1#approved@user:ed",
            "document:d1#editor@user:eve[on_weekday]",
            "document:d1#approved@user:eve",
            "document:d1#editor@user:fay",
            "document:d1#banned@user:bo",
            "document:d2#viewer@user:*",
            "document:d2#banned@group:b#member",
            "document:d2#reviewer@folder:root",
            "document:d2#reviewer@folder:other",
            "document:d3#folder@folder:cav",
            "document:d3#reviewer@folder:sub",
            "document:d3#reviewer@folder:root",
        ];

        const USERS: &[&str] = &["ann", "bo", "cy", "ed", "eve", "fay", "stranger"];

        #[test]
        fn membership_agrees_with_check() {
            let schema = crate::schema::compile("test.zed", SCHEMA).unwrap().schema;
            let store = MemoryStore::new();
            let rels = RELATIONSHIPS
                .iter()
                .map(|t| parse_relationship(t).unwrap())
                .collect();
            let rev = store.bulk_import(rels, None).unwrap();
            let snapshot = store.snapshot(rev).unwrap();
            let config = EngineConfig::default();
            let evaluator = Evaluator::new(&schema, snapshot.as_ref(), &config);
            let mut membership = Membership::new(&schema, snapshot.as_ref(), 50);
            let mut compared = 0;
            for (type_name, def) in &schema.definitions {
                let ids: &[&str] = match type_name.as_str() {
                    "group" => &["a", "b"],
                    "folder" => &["root", "sub", "cav", "other"],
                    "document" => &["d1", "d2", "d3"],
                    _ => continue,
                };
                for id in ids {
                    for relation in def.relations.keys() {
                        let key = onr(&format!("{type_name}:{id}#{relation}"));
                        let set = membership.subjects(&key).unwrap();
                        for user in USERS {
                            let s = subj(&format!("user:{user}"));
                            let found = set
                                .subjects
                                .get(&s)
                                .cloned()
                                .or_else(|| set.via_wildcard(&s));
                            let expected = match found {
                                None => CheckOutcome::No,
                                Some(ref f) if f.caveated => CheckOutcome::Conditional {
                                    missing: vec!["day".into()],
                                },
                                Some(_) => CheckOutcome::Has,
                            };
                            let got = evaluator
                                .check(&key.object, &key.relation, &s, &Context::new())
                                .unwrap();
                            assert_eq!(got, expected, "{key} for {s}: membership says {found:?}");
                            compared += 1;
                        }
                    }
                }
            }
            assert!(compared > 100);
        }

        #[test]
        fn cycles_terminate_with_every_member() {
            let schema = crate::schema::compile("test.zed", SCHEMA).unwrap().schema;
            let store = MemoryStore::new();
            let rels = RELATIONSHIPS
                .iter()
                .map(|t| parse_relationship(t).unwrap())
                .collect();
            let rev = store.bulk_import(rels, None).unwrap();
            let snapshot = store.snapshot(rev).unwrap();
            let mut m = Membership::new(&schema, snapshot.as_ref(), 50);
            // Computing b first memoises nothing incomplete that a later query would reuse.
            let b = m.subjects(&onr("group:b#member")).unwrap();
            let a = m.subjects(&onr("group:a#member")).unwrap();
            for set in [&a, &b] {
                for s in [
                    "user:ann",
                    "user:bo",
                    "user:cy",
                    "group:a#member",
                    "group:b#member",
                ] {
                    assert!(
                        set.subjects.contains_key(&subj(s)),
                        "{s} missing from {set:?}"
                    );
                }
            }
            assert_eq!(
                a.subjects[&subj("user:ann")].paths,
                [onr("group:a#member")].into()
            );
            assert!(a.subjects[&subj("user:cy")].caveated);
            let root = m.subjects(&onr("folder:root#view")).unwrap();
            assert_eq!(root.subjects.len(), 5, "{root:?}");
        }

        #[test]
        fn depth_limit_is_an_error() {
            let schema = crate::schema::compile("test.zed", SCHEMA).unwrap().schema;
            let store = MemoryStore::new();
            let rels = (0..10)
                .map(|i| {
                    parse_relationship(&format!("group:g{i}#member@group:g{}#member", i + 1))
                        .unwrap()
                })
                .collect();
            let rev = store.bulk_import(rels, None).unwrap();
            let snapshot = store.snapshot(rev).unwrap();
            let mut m = Membership::new(&schema, snapshot.as_ref(), 5);
            let e = m.subjects(&onr("group:g0#member")).unwrap_err();
            assert!(
                matches!(e, MembershipError::DepthExceeded { limit: 5, .. }),
                "{e}"
            );
            let mut m = Membership::new(&schema, snapshot.as_ref(), 50);
            assert_eq!(
                m.subjects(&onr("group:g0#member")).unwrap().subjects.len(),
                10
            );
        }
    }
}
