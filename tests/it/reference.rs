//! A naive reference evaluator for differential tests of `tessera::engine`.
//!
//! Deliberately as simple as possible: it evaluates over a plain slice of relationships (no
//! store, no indexes), recomputes every sub-problem (no memo), and cuts cycles with the path
//! of keys currently being evaluated ("a cycle contributes nothing"). Unions stop at the first
//! `Has` and intersections at the first `No`, which cannot change a value. Its lookups check
//! every id of the id space.

#![allow(dead_code)]

use tessera::caveat::CaveatOutcome;
use tessera::engine::{CheckOutcome, LookupSubject};
use tessera::model::{Context, ObjectRef, Relationship, SubjectRef, WILDCARD_ID};
use tessera::schema::{ArrowKind, RelationKind, Rewrite, Schema};

/// Three-valued union (`No < Conditional < Has`), merging missing parameters.
pub fn or(a: CheckOutcome, b: CheckOutcome) -> CheckOutcome {
    use CheckOutcome::*;
    match (a, b) {
        (Has, _) | (_, Has) => Has,
        (Conditional { missing: x }, Conditional { missing: y }) => Conditional {
            missing: merge(x, y),
        },
        (Conditional { missing }, No) | (No, Conditional { missing }) => Conditional { missing },
        (No, No) => No,
    }
}

/// Three-valued intersection, merging missing parameters.
pub fn and(a: CheckOutcome, b: CheckOutcome) -> CheckOutcome {
    use CheckOutcome::*;
    match (a, b) {
        (No, _) | (_, No) => No,
        (Conditional { missing: x }, Conditional { missing: y }) => Conditional {
            missing: merge(x, y),
        },
        (Conditional { missing }, Has) | (Has, Conditional { missing }) => Conditional { missing },
        (Has, Has) => Has,
    }
}

pub fn not(a: CheckOutcome) -> CheckOutcome {
    match a {
        CheckOutcome::Has => CheckOutcome::No,
        CheckOutcome::No => CheckOutcome::Has,
        c => c,
    }
}

fn merge(mut a: Vec<String>, b: Vec<String>) -> Vec<String> {
    a.extend(b);
    a.sort();
    a.dedup();
    a
}

pub struct Reference<'a> {
    pub schema: &'a Schema,
    pub relationships: &'a [Relationship],
}

type Path = Vec<(ObjectRef, String)>;

impl<'a> Reference<'a> {
    pub fn new(schema: &'a Schema, relationships: &'a [Relationship]) -> Self {
        Reference {
            schema,
            relationships,
        }
    }

    pub fn check(
        &self,
        resource: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
        context: &Context,
    ) -> CheckOutcome {
        self.eval(resource, relation, subject, context, &mut Vec::new())
    }

    fn eval(
        &self,
        object: &ObjectRef,
        relation: &str,
        subject: &SubjectRef,
        context: &Context,
        path: &mut Path,
    ) -> CheckOutcome {
        // A userset contains itself.
        if subject.object == *object && subject.relation.as_deref() == Some(relation) {
            return CheckOutcome::Has;
        }
        let key = (object.clone(), relation.to_string());
        if path.contains(&key) {
            return CheckOutcome::No;
        }
        let Some(rel) = self.schema.relation(&object.object_type, relation) else {
            return CheckOutcome::No;
        };
        path.push(key);
        let value = match &rel.kind {
            RelationKind::Relation(_) => {
                let mut acc = CheckOutcome::No;
                for r in self.stored(object, relation) {
                    let caveat = self.caveat(r, context);
                    if caveat == CheckOutcome::No {
                        continue;
                    }
                    let direct = r.subject == *subject
                        || (r.subject.is_wildcard()
                            && r.subject.object.object_type == subject.object.object_type
                            && subject.relation.is_none());
                    let through = if direct {
                        CheckOutcome::Has
                    } else {
                        match &r.subject.relation {
                            Some(sub_rel) if !r.subject.is_wildcard() => {
                                self.eval(&r.subject.object, sub_rel, subject, context, path)
                            }
                            _ => CheckOutcome::No,
                        }
                    };
                    acc = or(acc, and(caveat, through));
                }
                acc
            }
            RelationKind::Permission(rw) => self.rewrite(rw, object, subject, context, path),
        };
        path.pop();
        value
    }

    fn rewrite(
        &self,
        rw: &Rewrite,
        object: &ObjectRef,
        subject: &SubjectRef,
        context: &Context,
        path: &mut Path,
    ) -> CheckOutcome {
        match rw {
            Rewrite::Nil => CheckOutcome::No,
            Rewrite::Computed(r) => self.eval(object, r, subject, context, path),
            Rewrite::Union(items) => {
                let mut acc = CheckOutcome::No;
                for i in items {
                    if acc == CheckOutcome::Has {
                        break;
                    }
                    acc = or(acc, self.rewrite(i, object, subject, context, path));
                }
                acc
            }
            Rewrite::Intersection(items) => {
                let mut acc = CheckOutcome::Has;
                for i in items {
                    if acc == CheckOutcome::No {
                        break;
                    }
                    acc = and(acc, self.rewrite(i, object, subject, context, path));
                }
                acc
            }
            Rewrite::Exclusion(base, sub) => {
                let b = self.rewrite(base, object, subject, context, path);
                if b == CheckOutcome::No {
                    return b;
                }
                and(b, not(self.rewrite(sub, object, subject, context, path)))
            }
            Rewrite::Arrow {
                tupleset,
                computed,
                kind,
            } => {
                // The relationships of the tupleset whose subject can have `computed`
                // (wildcards and other types take no part).
                let members: Vec<&Relationship> = self
                    .stored(object, tupleset)
                    .filter(|r| {
                        let o = &r.subject.object;
                        o.object_id != WILDCARD_ID
                            && self.schema.relation(&o.object_type, computed).is_some()
                    })
                    .collect();
                match kind {
                    // Some relationship whose caveat holds, to an object that has `computed`.
                    ArrowKind::Any => members.iter().fold(CheckOutcome::No, |acc, r| {
                        let c = self.eval(&r.subject.object, computed, subject, context, path);
                        or(acc, and(self.caveat(r, context), c))
                    }),
                    // Every relationship: its caveat holds and its object has `computed`.
                    ArrowKind::All if members.is_empty() => CheckOutcome::No,
                    ArrowKind::All => members.iter().fold(CheckOutcome::Has, |acc, r| {
                        let c = self.eval(&r.subject.object, computed, subject, context, path);
                        and(acc, and(self.caveat(r, context), c))
                    }),
                }
            }
        }
    }

    fn stored(&self, object: &ObjectRef, relation: &str) -> impl Iterator<Item = &'a Relationship> {
        let object = object.clone();
        let relation = relation.to_string();
        self.relationships
            .iter()
            .filter(move |r| r.resource == object && r.relation == relation)
    }

    fn caveat(&self, r: &Relationship, context: &Context) -> CheckOutcome {
        let Some(c) = &r.caveat else {
            return CheckOutcome::Has;
        };
        let mut merged = context.clone();
        for (k, v) in &c.context {
            merged.insert(k.clone(), v.clone());
        }
        let compiled = self
            .schema
            .caveat(&c.name)
            .unwrap_or_else(|| panic!("caveat {} not in schema", c.name));
        match compiled.evaluate(&merged).expect("caveat evaluates") {
            CaveatOutcome::True => CheckOutcome::Has,
            CaveatOutcome::False => CheckOutcome::No,
            CaveatOutcome::MissingParameters(missing) => CheckOutcome::Conditional { missing },
        }
    }

    /// LookupResources by brute force over `ids`: (id, outcome) for every id that is not `No`.
    pub fn lookup_resources(
        &self,
        resource_type: &str,
        permission: &str,
        subject: &SubjectRef,
        context: &Context,
        ids: &[String],
    ) -> Vec<(String, CheckOutcome)> {
        let mut out: Vec<(String, CheckOutcome)> = ids
            .iter()
            .map(|id| {
                let o = self.check(
                    &ObjectRef::new(resource_type, id),
                    permission,
                    subject,
                    context,
                );
                (id.clone(), o)
            })
            .filter(|(_, o)| *o != CheckOutcome::No)
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }
}

/// The outcome a LookupSubjects result gives subject `id`: its concrete entry if any, else
/// the wildcard's outcome unless the wildcard excludes it.
pub fn lookup_subjects_outcome(results: &[LookupSubject], id: &str) -> CheckOutcome {
    if let Some(s) = results.iter().find(|s| s.subject_id == id) {
        return s.outcome.clone();
    }
    let Some(w) = results.iter().find(|s| s.subject_id == WILDCARD_ID) else {
        return CheckOutcome::No;
    };
    match w.excluded.iter().find(|e| e.subject_id == id) {
        Some(e) => match &e.outcome {
            CheckOutcome::Has => CheckOutcome::No,
            other => other.clone(),
        },
        None => w.outcome.clone(),
    }
}

/// The kind of an outcome, without missing parameters.
pub fn kind(o: &CheckOutcome) -> &'static str {
    match o {
        CheckOutcome::Has => "has",
        CheckOutcome::No => "no",
        CheckOutcome::Conditional { .. } => "conditional",
    }
}

/// A compiled schema, a memory store holding relationships, and a snapshot of it.
pub struct Fixture {
    pub schema: std::sync::Arc<Schema>,
    pub store: tessera::store::memory::MemoryStore,
    pub snapshot: std::sync::Arc<dyn tessera::store::Snapshot>,
    pub relationships: Vec<Relationship>,
    pub config: tessera::engine::EngineConfig,
}

impl Fixture {
    /// Compiles `schema` (panicking with the diagnostics on error) and stores `relationships`
    /// given in the text syntax.
    pub fn new(schema: &str, relationships: &[&str]) -> Fixture {
        let compiled = tessera::schema::compile("test.zed", schema)
            .unwrap_or_else(|d| panic!("schema does not compile:\n{d}"));
        let rels = relationships
            .iter()
            .map(|t| tessera::model::parse_relationship(t).unwrap_or_else(|e| panic!("{t}: {e}")))
            .collect();
        Fixture::from_parts(compiled.schema, rels)
    }

    pub fn from_parts(schema: std::sync::Arc<Schema>, relationships: Vec<Relationship>) -> Fixture {
        use tessera::store::{RelationshipUpdate, Store, WriteOp, WriteTransaction};
        let store = tessera::store::memory::MemoryStore::new();
        if !relationships.is_empty() {
            store
                .write(WriteTransaction {
                    updates: relationships
                        .iter()
                        .map(|r| RelationshipUpdate {
                            op: WriteOp::Touch,
                            relationship: r.clone(),
                        })
                        .collect(),
                    preconditions: Vec::new(),
                    caller: None,
                    metadata: Default::default(),
                    schema_revision: None,
                })
                .expect("write relationships");
        }
        let head = store.head_revision().expect("head");
        let snapshot = store.snapshot(head).expect("snapshot");
        Fixture {
            schema,
            store,
            snapshot,
            relationships,
            config: tessera::engine::EngineConfig::default(),
        }
    }

    pub fn evaluator(&self) -> tessera::engine::Evaluator<'_> {
        tessera::engine::Evaluator::new(&self.schema, &*self.snapshot, &self.config)
    }

    pub fn reference(&self) -> Reference<'_> {
        Reference::new(&self.schema, &self.relationships)
    }

    /// Engine check of `resource#permission@subject` (text forms), unwrapped.
    pub fn check(&self, resource: &str, permission: &str, subject: &str) -> CheckOutcome {
        self.check_with(resource, permission, subject, &Context::new())
    }

    pub fn check_with(
        &self,
        resource: &str,
        permission: &str,
        subject: &str,
        context: &Context,
    ) -> CheckOutcome {
        self.try_check(resource, permission, subject, context)
            .unwrap_or_else(|e| panic!("check {resource}#{permission}@{subject}: {e}"))
    }

    pub fn try_check(
        &self,
        resource: &str,
        permission: &str,
        subject: &str,
        context: &Context,
    ) -> Result<CheckOutcome, tessera::engine::EngineError> {
        self.evaluator().check(
            &object(resource),
            permission,
            &subject_ref(subject),
            context,
        )
    }
}

/// `type:id` text to an [`ObjectRef`].
pub fn object(text: &str) -> ObjectRef {
    let (t, id) = text.split_once(':').expect("type:id");
    ObjectRef::new(t, id)
}

/// Subject text (`type:id`, `type:id#rel`, `type:*`) to a [`SubjectRef`].
pub fn subject_ref(text: &str) -> SubjectRef {
    tessera::model::parse_subject(text).expect("subject")
}

/// A context from a JSON object literal.
pub fn ctx(json: serde_json::Value) -> Context {
    match json {
        serde_json::Value::Object(m) => m,
        other => panic!("context must be an object, got {other}"),
    }
}

pub fn cond(missing: &[&str]) -> CheckOutcome {
    CheckOutcome::Conditional {
        missing: missing.iter().map(|s| s.to_string()).collect(),
    }
}

/// What an expand tree implies for `subject`: leaves hold it directly, through a matching
/// wildcard, or through a userset (decided by `userset_check`); a node naming `subject`'s own
/// userset holds it. Ignores caveats (use on uncaveated data).
pub fn expand_implies(
    tree: &tessera::engine::ExpandTree,
    subject: &SubjectRef,
    userset_check: &mut dyn FnMut(&ObjectRef, &str) -> CheckOutcome,
) -> CheckOutcome {
    use tessera::engine::ExpandNode;
    if let Some((o, r)) = &tree.expanded
        && subject.object == *o
        && subject.relation.as_deref() == Some(r.as_str())
    {
        return CheckOutcome::Has;
    }
    match &tree.node {
        ExpandNode::Leaf(subjects) => {
            let mut acc = CheckOutcome::No;
            for s in subjects {
                let s = &s.subject;
                let v = if s == subject
                    || (s.is_wildcard()
                        && s.object.object_type == subject.object.object_type
                        && subject.relation.is_none())
                {
                    CheckOutcome::Has
                } else if let Some(r) = &s.relation
                    && !s.is_wildcard()
                {
                    userset_check(&s.object, r)
                } else {
                    CheckOutcome::No
                };
                acc = or(acc, v);
            }
            acc
        }
        ExpandNode::Union(children) => children.iter().fold(CheckOutcome::No, |acc, c| {
            or(acc, expand_implies(c, subject, userset_check))
        }),
        ExpandNode::Intersection(children) => children.iter().fold(CheckOutcome::Has, |acc, c| {
            and(acc, expand_implies(c, subject, userset_check))
        }),
        ExpandNode::Exclusion(children) => {
            let mut it = children.iter();
            let base = it.next().map_or(CheckOutcome::No, |c| {
                expand_implies(c, subject, userset_check)
            });
            it.fold(base, |acc, c| {
                and(acc, not(expand_implies(c, subject, userset_check)))
            })
        }
    }
}

/// LookupResources read `page` results at a time: each page resumes the suspended lookup
/// of the one before, or (`replan`) plans again after its last result.
pub fn paged_lookup(
    ev: &tessera::engine::Evaluator<'_>,
    resource_type: &str,
    permission: &str,
    subject: &SubjectRef,
    context: &Context,
    page: usize,
    replan: bool,
) -> Result<Vec<tessera::engine::LookupResource>, tessera::engine::EngineError> {
    let mut out = Vec::new();
    let mut lookup = ev.plan_lookup_resources(resource_type, permission, subject, None)?;
    loop {
        let mut stream = ev.resume_lookup_resources(subject, context, lookup);
        let mut n = 0;
        while n < page {
            match stream.next_result()? {
                Some(r) => {
                    out.push(r);
                    n += 1;
                }
                None => return Ok(out),
            }
        }
        lookup = stream.suspend();
        if replan {
            let after = lookup.after().map(str::to_string);
            lookup =
                ev.plan_lookup_resources(resource_type, permission, subject, after.as_deref())?;
        }
    }
}

/// Deterministic choices read from proptest-generated bytes (exhausted → always 0, which
/// maps to the simplest option, so shrinking simplifies the world): how the property tests
/// build random worlds.
pub struct Choices<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl Choices<'_> {
    pub fn pick(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b as usize % n
    }
}

/// A memory store whose clock starts at 2030-01-01T00:00:00Z and moves only when the returned
/// offset (in seconds) is set: for tests of expiry.
pub fn store_at_2030() -> (
    tessera::store::memory::MemoryStore,
    std::sync::Arc<std::sync::atomic::AtomicI64>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    let start: tessera::model::Timestamp = "2030-01-01T00:00:00Z".parse().expect("timestamp");
    let offset = Arc::new(AtomicI64::new(0));
    let clock_offset = Arc::clone(&offset);
    let store =
        tessera::store::memory::MemoryStore::with_options(tessera::store::memory::MemoryOptions {
            clock: Arc::new(move || {
                start + chrono::Duration::seconds(clock_offset.load(Ordering::SeqCst))
            }),
            ..Default::default()
        });
    (store, offset)
}
