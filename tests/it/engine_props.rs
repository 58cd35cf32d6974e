//! Property tests: on random schemas and random data, the engine agrees with the naive
//! reference evaluator, and Check, LookupResources, LookupSubjects and Expand agree with
//! each other.
//!
//! Schemas have 2–4 definitions whose relations allow plain, userset and wildcard subjects
//! (optionally caveated), and permissions built from union, intersection, exclusion,
//! arrows (any/all) and nil. Data uses three ids per type so relationships overlap and form
//! cycles. Every world is evaluated twice: over a store holding only the relationships, and
//! over one holding the schema too, whose writes maintain the nested-group index for the
//! relations that allow their own userset (`leopard_props.rs` tests that index on deeper
//! data). `PROPTEST_CASES` raises the number of cases (256 by default).

use crate::reference;

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;
use proptest::prelude::*;
use reference::{
    Choices, Fixture, Reference, expand_implies, kind, lookup_subjects_outcome, paged_lookup,
};
use tessera::caveat::CaveatType;
use tessera::engine::{CheckCache, CheckOutcome, EngineConfig, LookupResource, SchemaIndex};
use tessera::model::{CaveatRef, Context, ObjectRef, Relationship, SubjectRef};
use tessera::schema::{
    AllowedSubject, AllowedSubjectKind, ArrowKind, Definition, Relation, RelationKind, Rewrite,
    Schema,
};

const IDS: [&str; 3] = ["a", "b", "c"];

struct DefShape {
    name: String,
    relations: Vec<String>,
    permissions: Vec<String>,
}

impl DefShape {
    fn all_names(&self) -> Vec<String> {
        self.relations
            .iter()
            .chain(&self.permissions)
            .cloned()
            .collect()
    }
}

struct World {
    schema: Arc<Schema>,
    relationships: Vec<Relationship>,
    context: Context,
    shapes: Vec<DefShape>,
    /// One relation name per definition used for userset subjects.
    userset_relation: Vec<String>,
    /// Scrambles the order of bulk checks.
    order_seed: usize,
}

fn caveats() -> IndexMap<String, Arc<tessera::caveat::CompiledCaveat>> {
    let mut out = IndexMap::new();
    let mut pos = IndexMap::new();
    pos.insert("a".to_string(), CaveatType::Int);
    out.insert(
        "positive".to_string(),
        Arc::new(tessera::caveat::compile("positive", pos, "a > 0").expect("caveat compiles")),
    );
    let mut lt = IndexMap::new();
    lt.insert("a".to_string(), CaveatType::Int);
    lt.insert("b".to_string(), CaveatType::Int);
    out.insert(
        "less".to_string(),
        Arc::new(tessera::caveat::compile("less", lt, "a < b").expect("caveat compiles")),
    );
    out
}

fn gen_rewrite(
    c: &mut Choices,
    shapes: &[DefShape],
    allowed: &[Vec<AllowedSubject>],
    perm: usize,
    depth: u32,
) -> Rewrite {
    let me = &shapes[0];
    // Computed references go only to relations and earlier permissions: no schema cycles.
    let mut computable: Vec<String> = me.relations.clone();
    computable.extend(me.permissions[..perm].iter().cloned());
    let choice = if depth >= 2 { c.pick(4) } else { c.pick(8) };
    match choice {
        0 => Rewrite::Computed(computable[c.pick(computable.len())].clone()),
        1 => {
            if c.pick(5) == 0 {
                Rewrite::Nil
            } else {
                Rewrite::Computed(computable[c.pick(computable.len())].clone())
            }
        }
        2 | 3 => {
            let ts = c.pick(me.relations.len());
            // Names that exist on at least one allowed subject type of the tupleset.
            let mut targets: Vec<String> = Vec::new();
            for a in &allowed[ts] {
                if let Some(shape) = shapes.iter().find(|s| s.name == a.subject_type) {
                    for n in shape.all_names() {
                        if !targets.contains(&n) {
                            targets.push(n);
                        }
                    }
                }
            }
            if targets.is_empty() {
                return Rewrite::Computed(computable[c.pick(computable.len())].clone());
            }
            Rewrite::Arrow {
                tupleset: me.relations[ts].clone(),
                computed: targets[c.pick(targets.len())].clone(),
                kind: if c.pick(3) == 0 {
                    ArrowKind::All
                } else {
                    ArrowKind::Any
                },
            }
        }
        4 => {
            let n = 2 + c.pick(2);
            Rewrite::Union(
                (0..n)
                    .map(|_| gen_rewrite(c, shapes, allowed, perm, depth + 1))
                    .collect(),
            )
        }
        5 => Rewrite::Intersection(
            (0..2)
                .map(|_| gen_rewrite(c, shapes, allowed, perm, depth + 1))
                .collect(),
        ),
        _ => Rewrite::Exclusion(
            Box::new(gen_rewrite(c, shapes, allowed, perm, depth + 1)),
            Box::new(gen_rewrite(c, shapes, allowed, perm, depth + 1)),
        ),
    }
}

fn build_world(bytes: &[u8]) -> World {
    let mut c = Choices { bytes, pos: 0 };
    let n_defs = 2 + c.pick(3);
    let with_caveats = c.pick(2) == 0;
    let shapes: Vec<DefShape> = (0..n_defs)
        .map(|i| DefShape {
            name: format!("ty{i}"),
            relations: (0..1 + c.pick(3)).map(|j| format!("rel{j}")).collect(),
            permissions: (0..c.pick(3)).map(|j| format!("perm{j}")).collect(),
        })
        .collect();

    let caveat_names = ["positive", "less"];
    let mut allowed_by_def: Vec<Vec<Vec<AllowedSubject>>> = Vec::new();
    for shape in &shapes {
        let mut per_relation = Vec::new();
        for _ in &shape.relations {
            let mut allowed: Vec<AllowedSubject> = Vec::new();
            for _ in 0..1 + c.pick(3) {
                let t = &shapes[c.pick(n_defs)];
                let kind = match c.pick(10) {
                    0..=4 => AllowedSubjectKind::Direct,
                    5..=7 => {
                        let names = t.all_names();
                        AllowedSubjectKind::Relation(names[c.pick(names.len())].clone())
                    }
                    _ => AllowedSubjectKind::Wildcard,
                };
                let caveat =
                    (with_caveats && c.pick(3) == 0).then(|| caveat_names[c.pick(2)].to_string());
                let entry = AllowedSubject {
                    subject_type: t.name.clone(),
                    kind,
                    caveat,
                    expiration: false,
                };
                if !allowed.contains(&entry) {
                    allowed.push(entry);
                }
            }
            per_relation.push(allowed);
        }
        allowed_by_def.push(per_relation);
    }

    let mut definitions = IndexMap::new();
    for (d, shape) in shapes.iter().enumerate() {
        let mut relations = IndexMap::new();
        for (j, r) in shape.relations.iter().enumerate() {
            relations.insert(
                r.clone(),
                Relation {
                    name: r.clone(),
                    doc: None,
                    kind: RelationKind::Relation(allowed_by_def[d][j].clone()),
                },
            );
        }
        // gen_rewrite sees this definition first.
        let mut ordered: Vec<&DefShape> = vec![shape];
        ordered.extend(shapes.iter().filter(|s| s.name != shape.name));
        let view: Vec<DefShape> = ordered
            .iter()
            .map(|s| DefShape {
                name: s.name.clone(),
                relations: s.relations.clone(),
                permissions: s.permissions.clone(),
            })
            .collect();
        for (j, p) in shape.permissions.iter().enumerate() {
            let rw = gen_rewrite(&mut c, &view, &allowed_by_def[d], j, 0);
            relations.insert(
                p.clone(),
                Relation {
                    name: p.clone(),
                    doc: None,
                    kind: RelationKind::Permission(rw),
                },
            );
        }
        definitions.insert(
            shape.name.clone(),
            Definition {
                name: shape.name.clone(),
                doc: None,
                relations,
            },
        );
    }
    let schema = Schema {
        definitions,
        caveats: caveats(),
        ..Schema::default()
    };

    let mut relationships: Vec<Relationship> = Vec::new();
    for _ in 0..c.pick(32) {
        let d = c.pick(n_defs);
        let r = c.pick(shapes[d].relations.len());
        let allowed = &allowed_by_def[d][r];
        let entry = &allowed[c.pick(allowed.len())];
        let subject = match &entry.kind {
            AllowedSubjectKind::Direct => {
                SubjectRef::new(&entry.subject_type, IDS[c.pick(3)], None)
            }
            AllowedSubjectKind::Relation(rel) => {
                SubjectRef::new(&entry.subject_type, IDS[c.pick(3)], Some(rel))
            }
            AllowedSubjectKind::Wildcard => SubjectRef::new(&entry.subject_type, "*", None),
        };
        let mut rel = Relationship::new(
            ObjectRef::new(&shapes[d].name, IDS[c.pick(3)]),
            shapes[d].relations[r].clone(),
            subject,
        );
        if let Some(name) = &entry.caveat {
            let mut context = Context::new();
            match c.pick(3) {
                0 => {}
                1 => {
                    context.insert("a".into(), 1.into());
                }
                _ => {
                    context.insert("a".into(), (-1).into());
                }
            }
            rel.caveat = Some(CaveatRef {
                name: name.clone(),
                context,
            });
        }
        if !relationships.iter().any(|x| x.key() == rel.key()) {
            relationships.push(rel);
        }
    }

    let mut context = Context::new();
    match c.pick(5) {
        0 => {}
        1 => {
            context.insert("a".into(), 1.into());
        }
        2 => {
            context.insert("a".into(), 0.into());
        }
        3 => {
            context.insert("a".into(), 1.into());
            context.insert("b".into(), 2.into());
        }
        _ => {
            context.insert("b".into(), 0.into());
        }
    }

    let userset_relation = shapes
        .iter()
        .map(|s| {
            let names = s.all_names();
            names[c.pick(names.len())].clone()
        })
        .collect();

    let order_seed = c.pick(256);
    World {
        schema: Arc::new(schema),
        relationships,
        context,
        shapes,
        userset_relation,
        order_seed,
    }
}

/// True when following relationships from resource to subject object can loop.
fn data_has_cycle(rels: &[Relationship]) -> bool {
    let mut edges: HashMap<&ObjectRef, Vec<&ObjectRef>> = HashMap::new();
    for r in rels {
        if !r.subject.is_wildcard() {
            edges
                .entry(&r.resource)
                .or_default()
                .push(&r.subject.object);
        }
    }
    fn visit<'a>(
        n: &'a ObjectRef,
        edges: &HashMap<&'a ObjectRef, Vec<&'a ObjectRef>>,
        state: &mut HashMap<&'a ObjectRef, u8>,
    ) -> bool {
        match state.get(n) {
            Some(1) => return true,
            Some(_) => return false,
            None => {}
        }
        state.insert(n, 1);
        for m in edges.get(n).into_iter().flatten() {
            if visit(m, edges, state) {
                return true;
            }
        }
        state.insert(n, 2);
        false
    }
    let mut state = HashMap::new();
    edges.keys().any(|n| visit(n, &edges, &mut state))
}

fn same(a: &CheckOutcome, b: &CheckOutcome, exact: bool) -> bool {
    if exact { a == b } else { kind(a) == kind(b) }
}

fn describe(world: &World) -> String {
    let mut out = String::new();
    for (name, def) in &world.schema.definitions {
        out.push_str(&format!("definition {name} {{\n"));
        for rel in def.relations.values() {
            match &rel.kind {
                RelationKind::Relation(allowed) => {
                    let parts: Vec<String> = allowed
                        .iter()
                        .map(|a| {
                            let base = match &a.kind {
                                AllowedSubjectKind::Direct => a.subject_type.clone(),
                                AllowedSubjectKind::Relation(r) => {
                                    format!("{}#{r}", a.subject_type)
                                }
                                AllowedSubjectKind::Wildcard => format!("{}:*", a.subject_type),
                            };
                            match &a.caveat {
                                Some(c) => format!("{base} with {c}"),
                                None => base,
                            }
                        })
                        .collect();
                    out.push_str(&format!("  relation {}: {}\n", rel.name, parts.join(" | ")));
                }
                RelationKind::Permission(rw) => {
                    out.push_str(&format!("  permission {} = {rw:?}\n", rel.name));
                }
            }
        }
        out.push_str("}\n");
    }
    for r in &world.relationships {
        out.push_str(&format!("{r}\n"));
    }
    out.push_str(&format!("context: {:?}\n", world.context));
    out
}

/// A fixture whose store also holds the world's schema, so the nested-group index covers
/// every relation that allows its own userset (the index is built and maintained by the
/// store's writes). The relationships go in with decoys — each userset relationship also
/// pointing at another object — in one transaction, and the decoys are deleted in a second,
/// so the index is maintained through deletes too.
fn indexed_fixture(world: &World) -> Fixture {
    use tessera::store::{RelationshipUpdate, Store, WriteOp, WriteTransaction};
    let store = tessera::store::memory::MemoryStore::new();
    let text = tessera::schema::format_schema(&world.schema);
    store
        .write_schema(&text, &mut |_| Ok(()), None)
        .expect("write schema");
    let mut decoys: Vec<Relationship> = Vec::new();
    for r in &world.relationships {
        if r.subject.relation.is_none() || r.subject.is_wildcard() {
            continue;
        }
        let mut d = r.clone();
        let at = IDS
            .iter()
            .position(|i| *i == d.subject.object.object_id)
            .unwrap_or(0);
        d.subject.object.object_id = IDS[(at + 1) % IDS.len()].to_string();
        d.caveat = None;
        let taken = |k: &Relationship| k.key() == d.key();
        if !world.relationships.iter().any(taken) && !decoys.iter().any(taken) {
            decoys.push(d);
        }
    }
    let touch = |r: &Relationship| RelationshipUpdate {
        op: WriteOp::Touch,
        relationship: r.clone(),
    };
    store
        .write(WriteTransaction {
            updates: world
                .relationships
                .iter()
                .chain(&decoys)
                .map(touch)
                .collect(),
            ..Default::default()
        })
        .expect("write relationships");
    if !decoys.is_empty() {
        store
            .write(WriteTransaction {
                updates: decoys
                    .iter()
                    .map(|r| RelationshipUpdate {
                        op: WriteOp::Delete,
                        relationship: r.clone(),
                    })
                    .collect(),
                ..Default::default()
            })
            .expect("delete decoys");
    }
    let head = store.head_revision().expect("head");
    let snapshot = store.snapshot(head).expect("snapshot");
    Fixture {
        schema: Arc::clone(&world.schema),
        store,
        snapshot,
        relationships: world.relationships.clone(),
        config: EngineConfig::default(),
    }
}

/// Context-free LookupResources of every type, permission and subject finds exactly the
/// resources the reference grants (for acyclic data, where outcomes are path-independent).
fn lookups_agree(
    world: &World,
    subjects: &[SubjectRef],
    ev: &tessera::engine::Evaluator<'_>,
    reference: &Reference<'_>,
    what: &str,
) -> Result<(), TestCaseError> {
    let no_context = Context::new();
    for shape in &world.shapes {
        for name in shape.all_names() {
            for s in subjects {
                let found = ev
                    .lookup_resources(&shape.name, &name, s, &no_context)
                    .map_err(|e| TestCaseError::fail(format!("{what} lookup: {e}")))?;
                let found: Vec<&str> = found.iter().map(|r| r.resource_id.as_str()).collect();
                let want: Vec<&str> = IDS
                    .iter()
                    .copied()
                    .filter(|id| {
                        reference.check(&ObjectRef::new(&shape.name, *id), &name, s, &no_context)
                            != CheckOutcome::No
                    })
                    .collect();
                prop_assert_eq!(
                    &found,
                    &want,
                    "{} lookup_resources {}#{}@{}",
                    what,
                    shape.name,
                    name,
                    s
                );
            }
        }
    }
    Ok(())
}

fn run_world(world: &World, indexed: bool) -> Result<(), TestCaseError> {
    let mut fixture = if indexed {
        indexed_fixture(world)
    } else {
        Fixture::from_parts(Arc::clone(&world.schema), world.relationships.clone())
    };
    // Deep enough that no random world reaches it: every path visits distinct keys.
    fixture.config = EngineConfig { max_depth: 1000 };
    let index = SchemaIndex::new(&world.schema);
    let ev = tessera::engine::Evaluator::with_index(
        &fixture.schema,
        &index,
        &*fixture.snapshot,
        &fixture.config,
    );
    let reference = Reference::new(&world.schema, &world.relationships);
    let ctx = &world.context;
    let acyclic = !data_has_cycle(&world.relationships);
    let uncaveated = world.relationships.iter().all(|r| r.caveat.is_none());
    let ids: Vec<String> = IDS.iter().map(|s| s.to_string()).collect();

    let mut subjects: Vec<SubjectRef> = Vec::new();
    for (shape, rel) in world.shapes.iter().zip(&world.userset_relation) {
        for id in IDS {
            subjects.push(SubjectRef::new(&shape.name, id, None));
            subjects.push(SubjectRef::new(&shape.name, id, Some(rel)));
        }
    }

    // check: engine == reference for every (resource, permission, subject).
    let mut checks: HashMap<(String, String, String), CheckOutcome> = HashMap::new();
    for shape in &world.shapes {
        for name in shape.all_names() {
            for id in IDS {
                let resource = ObjectRef::new(&shape.name, id);
                for s in &subjects {
                    let got = ev.check(&resource, &name, s, ctx).map_err(|e| {
                        TestCaseError::fail(format!("check {resource}#{name}@{s}: {e}"))
                    })?;
                    let want = reference.check(&resource, &name, s, ctx);
                    prop_assert!(
                        same(&got, &want, acyclic),
                        "check {}#{}@{}: engine {:?}, reference {:?}",
                        resource,
                        name,
                        s,
                        got,
                        want
                    );
                    checks.insert((resource.to_string(), name.clone(), s.to_string()), got);
                }
            }
        }
    }
    // The same answers when many checks share one memo, in a scrambled order.
    for s in &subjects {
        let mut items: Vec<(ObjectRef, String)> = checks
            .keys()
            .filter(|(_, _, sub)| *sub == s.to_string())
            .map(|(r, n, _)| {
                let (t, id) = r.split_once(':').expect("type:id");
                (ObjectRef::new(t, id), n.clone())
            })
            .collect();
        items.sort();
        let rotate = world.order_seed % items.len().max(1);
        items.rotate_left(rotate);
        if world.order_seed % 2 == 1 {
            items.reverse();
        }
        let results = ev.check_bulk(&items, s, ctx);
        for ((resource, name), got) in items.iter().zip(results) {
            let got = got.map_err(|e| {
                TestCaseError::fail(format!("check_bulk {resource}#{name}@{s}: {e}"))
            })?;
            let want = &checks[&(resource.to_string(), name.clone(), s.to_string())];
            prop_assert!(
                same(&got, want, acyclic),
                "check_bulk {}#{}@{}: {:?}, single check {:?}",
                resource,
                name,
                s,
                got,
                want
            );
        }
    }

    // With a cache shared across requests (which only context-free requests use), answers
    // stay the reference's, whatever order fills the cache; so do lookups reading from it.
    let cache = CheckCache::new(4096);
    let cached_ev = tessera::engine::Evaluator::with_index(
        &fixture.schema,
        &index,
        &*fixture.snapshot,
        &fixture.config,
    )
    .with_cache(&cache);
    let no_context = Context::new();
    let mut keys: Vec<&(String, String, String)> = checks.keys().collect();
    keys.sort();
    let rotate = world.order_seed % keys.len().max(1);
    keys.rotate_left(rotate);
    for round in 0..2 {
        for (resource, name, s) in &keys {
            let (t, id) = resource.split_once(':').expect("type:id");
            let resource = ObjectRef::new(t, id);
            let subject = subjects
                .iter()
                .find(|x| x.to_string() == *s)
                .expect("a generated subject");
            let got = cached_ev
                .check(&resource, name, subject, &no_context)
                .map_err(|e| {
                    TestCaseError::fail(format!("cached check {resource}#{name}@{s}: {e}"))
                })?;
            let want = reference.check(&resource, name, subject, &no_context);
            prop_assert!(
                same(&got, &want, acyclic),
                "cached check (round {}) {}#{}@{}: engine {:?}, reference {:?}",
                round,
                resource,
                name,
                s,
                got,
                want
            );
        }
        if acyclic {
            lookups_agree(world, &subjects, &cached_ev, &reference, "cached")?;
        }
    }

    let checked = |resource: &ObjectRef, name: &str, s: &SubjectRef| -> CheckOutcome {
        checks[&(resource.to_string(), name.to_string(), s.to_string())].clone()
    };

    // lookup_resources == { id : check != No }, with the same outcomes.
    for shape in &world.shapes {
        for name in shape.all_names() {
            for s in &subjects {
                let found = ev
                    .lookup_resources(&shape.name, &name, s, ctx)
                    .map_err(|e| {
                        TestCaseError::fail(format!(
                            "lookup_resources {}#{name}@{s}: {e}",
                            shape.name
                        ))
                    })?;
                for w in found.windows(2) {
                    prop_assert!(
                        w[0].resource_id < w[1].resource_id,
                        "lookup_resources sorted and unique"
                    );
                }
                for r in &found {
                    prop_assert!(
                        ids.contains(&r.resource_id),
                        "unexpected resource {}",
                        r.resource_id
                    );
                }
                for id in IDS {
                    let resource = ObjectRef::new(&shape.name, id);
                    let want = checked(&resource, &name, s);
                    let got = found
                        .iter()
                        .find(|r| r.resource_id == id)
                        .map_or(CheckOutcome::No, |r| r.outcome.clone());
                    prop_assert!(
                        same(&got, &want, acyclic),
                        "lookup_resources {}#{}@{}: got {:?}, check {:?}",
                        resource,
                        name,
                        s,
                        got,
                        want
                    );
                }
                let brute = reference.lookup_resources(&shape.name, &name, s, ctx, &ids);
                prop_assert_eq!(
                    brute.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
                    found
                        .iter()
                        .map(|r| r.resource_id.as_str())
                        .collect::<Vec<_>>()
                );
                // Page by page: suspended and resumed, or planned again after the last
                // result (a lost suspended lookup), the pages add up to the same results.
                for page in 1..=2 {
                    for replan in [false, true] {
                        let paged = paged_lookup(&ev, &shape.name, &name, s, ctx, page, replan)
                            .map_err(|e| TestCaseError::fail(format!("paged lookup: {e}")))?;
                        // The same ids; the same outcomes, except that in cyclic data a
                        // conditional's missing parameters depend on the order sub-problems
                        // were solved in (as for check, above), and a page starts afresh.
                        let ids_of = |v: &[LookupResource]| -> Vec<String> {
                            v.iter().map(|r| r.resource_id.clone()).collect()
                        };
                        prop_assert_eq!(
                            ids_of(&paged),
                            ids_of(&found),
                            "paged lookup_resources {}#{}@{} (page {}, replan {})",
                            shape.name,
                            name,
                            s,
                            page,
                            replan
                        );
                        for (p, f) in paged.iter().zip(&found) {
                            prop_assert!(
                                same(&p.outcome, &f.outcome, acyclic),
                                "paged lookup_resources {}#{}@{} (page {}, replan {}): {} is {:?}, unpaged {:?}",
                                shape.name,
                                name,
                                s,
                                page,
                                replan,
                                p.resource_id,
                                p.outcome,
                                f.outcome
                            );
                        }
                    }
                }
            }
        }
    }

    // lookup_subjects, read back per id, == check.
    for shape in &world.shapes {
        for name in shape.all_names() {
            for id in IDS {
                let resource = ObjectRef::new(&shape.name, id);
                for (st, rel) in world.shapes.iter().zip(&world.userset_relation) {
                    for subject_relation in [None, Some(rel.as_str())] {
                        let found = ev
                            .lookup_subjects(&resource, &name, &st.name, subject_relation, ctx)
                            .map_err(|e| {
                                TestCaseError::fail(format!(
                                    "lookup_subjects {resource}#{name}: {e}"
                                ))
                            })?;
                        for (i, s) in found.iter().enumerate() {
                            if i > 0 {
                                prop_assert!(
                                    found[i - 1].subject_id < s.subject_id,
                                    "sorted, wildcard first"
                                );
                            }
                            prop_assert!(s.subject_id == "*" || ids.contains(&s.subject_id));
                            prop_assert!(s.outcome != CheckOutcome::No);
                        }
                        for sid in IDS {
                            let s = SubjectRef::new(&st.name, sid, subject_relation);
                            let want = checked(&resource, &name, &s);
                            let got = lookup_subjects_outcome(&found, sid);
                            prop_assert!(
                                same(&got, &want, acyclic),
                                "lookup_subjects {}#{}@{}: got {:?} from {:?}, check {:?}",
                                resource,
                                name,
                                s,
                                got,
                                found,
                                want
                            );
                        }
                    }
                }
            }
        }
    }

    // expand implies check. Caveats are not represented in the tree; and where a schema
    // depends on itself through an exclusion (not stratified), answers depend on the
    // evaluation path, which differs between a tree walk and a check.
    if uncaveated && index.is_stratified() {
        for shape in &world.shapes {
            for name in shape.all_names() {
                for id in IDS {
                    let resource = ObjectRef::new(&shape.name, id);
                    let tree = ev.expand(&resource, &name).map_err(|e| {
                        TestCaseError::fail(format!("expand {resource}#{name}: {e}"))
                    })?;
                    for s in &subjects {
                        let mut userset = |o: &ObjectRef, r: &str| -> CheckOutcome {
                            ev.check(o, r, s, ctx).expect("check in expand")
                        };
                        let got = expand_implies(&tree, s, &mut userset);
                        let want = checked(&resource, &name, s);
                        prop_assert!(
                            kind(&got) == kind(&want),
                            "expand {}#{}@{}: tree implies {:?}, check {:?}\n{:#?}",
                            resource,
                            name,
                            s,
                            got,
                            want,
                            tree
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// `PROPTEST_CASES` cases (else `default_cases`), shrinking long enough for small worlds.
fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default_cases),
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

/// Runs `run` over a store without and with the nested-group index, naming which and the
/// world in a failure.
fn both_ways(
    world: &World,
    mut run: impl FnMut(bool) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    for indexed in [false, true] {
        run(indexed).map_err(|e| {
            TestCaseError::fail(format!(
                "{e}\n(nested-group index: {indexed})\n--- world ---\n{}",
                describe(world)
            ))
        })?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn engine_agrees_with_reference_and_itself(bytes in proptest::collection::vec(any::<u8>(), 32..320)) {
        let world = build_world(&bytes);
        both_ways(&world, |indexed| run_world(&world, indexed))?;
    }
}

/// A world's relationships changing one write at a time, checked at every revision through
/// one cache whose answers are carried across revisions (`store/recent.rs`): every answer
/// must be the reference's on that revision's data. The writes toggle relationships of the
/// world (deleting present ones, adding absent ones), so answers flip both ways while many
/// others stay put and are carried.
fn run_carried(world: &World, bytes: &[u8], indexed: bool) -> Result<u64, TestCaseError> {
    use tessera::store::{RelationshipUpdate, Store, WriteOp, WriteTransaction};
    let store = tessera::store::memory::MemoryStore::new();
    if indexed {
        let text = tessera::schema::format_schema(&world.schema);
        store
            .write_schema(&text, &mut |_| Ok(()), None)
            .expect("write schema");
    }
    let pool = &world.relationships;
    let mut present: Vec<bool> = (0..pool.len()).map(|i| i % 2 == 0).collect();
    let initial: Vec<RelationshipUpdate> = pool
        .iter()
        .zip(&present)
        .filter(|(_, p)| **p)
        .map(|(r, _)| RelationshipUpdate {
            op: WriteOp::Touch,
            relationship: r.clone(),
        })
        .collect();
    if !initial.is_empty() {
        store
            .write(WriteTransaction {
                updates: initial,
                ..Default::default()
            })
            .expect("initial write");
    }
    let cache = CheckCache::new(4096).carried_by(store.recent_writes());
    let index = SchemaIndex::new(&world.schema);
    let config = EngineConfig { max_depth: 1000 };
    let no_context = Context::new();
    let acyclic = !data_has_cycle(pool);

    let mut subjects: Vec<SubjectRef> = Vec::new();
    for (shape, rel) in world.shapes.iter().zip(&world.userset_relation) {
        for id in IDS {
            subjects.push(SubjectRef::new(&shape.name, id, None));
            subjects.push(SubjectRef::new(&shape.name, id, Some(rel)));
        }
    }
    let mut queries: Vec<(ObjectRef, String, &SubjectRef)> = Vec::new();
    for shape in &world.shapes {
        for name in shape.all_names() {
            for id in IDS {
                for s in &subjects {
                    queries.push((ObjectRef::new(&shape.name, id), name.clone(), s));
                }
            }
        }
    }

    let steps = 1 + bytes.len() % 6;
    for step in 0..=steps {
        if step > 0 && !pool.is_empty() {
            // Toggle one or two relationships in one transaction.
            let mut toggled = vec![bytes[step * 7 % bytes.len()] as usize % pool.len()];
            let second = bytes[(step * 13 + 1) % bytes.len()] as usize % pool.len();
            if bytes[step % bytes.len()].is_multiple_of(3) && !toggled.contains(&second) {
                toggled.push(second);
            }
            let updates = toggled
                .iter()
                .map(|&i| {
                    present[i] = !present[i];
                    RelationshipUpdate {
                        op: if present[i] {
                            WriteOp::Touch
                        } else {
                            WriteOp::Delete
                        },
                        relationship: pool[i].clone(),
                    }
                })
                .collect();
            store
                .write(WriteTransaction {
                    updates,
                    ..Default::default()
                })
                .expect("toggle");
        }
        let head = store.head_revision().expect("head");
        let snapshot = store.snapshot(head).expect("snapshot");
        let ev = tessera::engine::Evaluator::with_index(&world.schema, &index, &*snapshot, &config)
            .with_cache(&cache);
        let current: Vec<Relationship> = pool
            .iter()
            .zip(&present)
            .filter(|(_, p)| **p)
            .map(|(r, _)| r.clone())
            .collect();
        let reference = Reference::new(&world.schema, &current);
        // A different order each revision, so different checks fill the cache first.
        let rotate = (world.order_seed + step * 31) % queries.len().max(1);
        for (resource, name, s) in queries[rotate..].iter().chain(&queries[..rotate]) {
            let got = ev.check(resource, name, s, &no_context).map_err(|e| {
                TestCaseError::fail(format!("check {resource}#{name}@{s} at {head}: {e}"))
            })?;
            let want = reference.check(resource, name, s, &no_context);
            prop_assert!(
                same(&got, &want, acyclic),
                "carried check {}#{}@{} at revision {} (step {}): engine {:?}, reference {:?}",
                resource,
                name,
                s,
                head,
                step,
                got,
                want
            );
        }
        // Lookups through the same cache: their plans are cached and carried the same way.
        if acyclic {
            let what = format!("carried (revision {head}, step {step})");
            lookups_agree(world, &subjects, &ev, &reference, &what)?;
        }
        // LookupSubjects through the same cache: whole results cached and carried too.
        if acyclic {
            for shape in &world.shapes {
                for name in shape.all_names() {
                    for id in IDS {
                        let resource = ObjectRef::new(&shape.name, id);
                        for (st, rel) in world.shapes.iter().zip(&world.userset_relation) {
                            for subject_relation in [None, Some(rel.as_str())] {
                                let found = ev
                                    .lookup_subjects(
                                        &resource,
                                        &name,
                                        &st.name,
                                        subject_relation,
                                        &no_context,
                                    )
                                    .map_err(|e| {
                                        TestCaseError::fail(format!("lookup_subjects: {e}"))
                                    })?;
                                for sid in IDS {
                                    let s = SubjectRef::new(&st.name, sid, subject_relation);
                                    let want = reference.check(&resource, &name, &s, &no_context);
                                    let got = lookup_subjects_outcome(&found, sid);
                                    prop_assert!(
                                        same(&got, &want, acyclic),
                                        "carried lookup_subjects {}#{}@{} at revision {} (step {}): got {:?}, reference {:?}",
                                        resource,
                                        name,
                                        s,
                                        head,
                                        step,
                                        got,
                                        want
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let stats = cache.stats();
    Ok(stats.carried + stats.plan_hits + stats.subjects_hits)
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn answers_carried_across_revisions_agree_with_reference(bytes in proptest::collection::vec(any::<u8>(), 32..320)) {
        let world = build_world(&bytes);
        both_ways(&world, |indexed| run_carried(&world, &bytes, indexed).map(|_| ()))?;
    }
}

/// The property above only means something if answers are actually carried: over a fixed
/// set of worlds, many are.
#[test]
fn answers_are_carried_across_revisions() {
    let mut carried = 0;
    for seed in 0..16u8 {
        let bytes: Vec<u8> = (0..200u32)
            .map(|i| {
                (i as u8)
                    .wrapping_mul(37)
                    .wrapping_add(seed.wrapping_mul(101))
            })
            .collect();
        let world = build_world(&bytes);
        carried += run_carried(&world, &bytes, true).expect("agrees with the reference");
    }
    assert!(carried > 100, "only {carried} carried hits");
}
