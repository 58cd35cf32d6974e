//! Dependencies between relations and permissions of a compiled [`Schema`]: the transitive
//! walks behind the reflection RPCs DependentRelations (what a permission is computed from)
//! and ComputablePermissions (what a change to a relation can affect).
//!
//! The graph has one node per relation or permission, plus one per definition standing for
//! its objects used directly as subjects (`user` in `relation viewer: user`). A node depends on:
//! - for a permission, every relation or permission its expression names: `a` in `a + b`, and
//!   for an arrow `t->c` both the tupleset relation `t` and `c` on every subject type `t`
//!   allows that declares `c`;
//! - for a relation, every subject set it allows (`group#member` in `relation viewer:
//!   group#member`) and, for plain and wildcard subject types, the subject definition's node.
//!
//! Both walks are transitive, never report the node they start from, and return their result
//! sorted by definition name, then relation name.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::compiled::{AllowedSubjectKind, Definition, RelationKind, Rewrite, Schema};

/// A relation or permission of a definition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationRef {
    /// The definition declaring it.
    pub definition: String,
    /// Its name.
    pub relation: String,
    /// True for a `permission`, false for a `relation`.
    pub is_permission: bool,
}

/// Why a dependency walk could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DependencyError {
    #[error("object definition `{0}` not found")]
    UnknownDefinition(String),
    #[error("relation/permission `{relation}` not found under definition `{definition}`")]
    UnknownRelation {
        definition: String,
        relation: String,
    },
    #[error(
        "`{definition}#{relation}` is a relation, not a permission: only permissions are computed from other relations"
    )]
    NotAPermission {
        definition: String,
        relation: String,
    },
}

/// A node of the dependency graph: `(definition, Some(relation))` for a relation or
/// permission, `(definition, None)` for the definition's objects as direct subjects.
type Node<'a> = (&'a str, Option<&'a str>);

/// The relations and permissions `definition#permission` is computed from, transitively
/// (through unions, intersections, exclusions, arrows and the subject sets relations allow).
pub fn dependent_relations(
    schema: &Schema,
    definition: &str,
    permission: &str,
) -> Result<Vec<RelationRef>, DependencyError> {
    let def = find_definition(schema, definition)?;
    let (name, member) = def.relations.get_key_value(permission).ok_or_else(|| {
        DependencyError::UnknownRelation {
            definition: definition.to_string(),
            relation: permission.to_string(),
        }
    })?;
    if !member.is_permission() {
        return Err(DependencyError::NotAPermission {
            definition: definition.to_string(),
            relation: permission.to_string(),
        });
    }
    let start: Node<'_> = (def.name.as_str(), Some(name.as_str()));
    Ok(walk(schema, start, None, |node, out| {
        direct_dependencies(schema, node, out)
    }))
}

/// The relations and permissions whose value can change when `definition#relation` changes,
/// transitively. `relation: None` starts from the definition's objects used directly as
/// subjects. Only results of definitions whose name starts with `definition_prefix` (when
/// given) are returned; the walk itself crosses every definition.
pub fn computable_permissions(
    schema: &Schema,
    definition: &str,
    relation: Option<&str>,
    definition_prefix: Option<&str>,
) -> Result<Vec<RelationRef>, DependencyError> {
    let def = find_definition(schema, definition)?;
    let start: Node<'_> = match relation {
        None => (def.name.as_str(), None),
        Some(r) => {
            let (name, _) =
                def.relations
                    .get_key_value(r)
                    .ok_or_else(|| DependencyError::UnknownRelation {
                        definition: definition.to_string(),
                        relation: r.to_string(),
                    })?;
            (def.name.as_str(), Some(name.as_str()))
        }
    };
    // Invert the dependency edges of the whole schema once.
    let mut dependents: HashMap<Node<'_>, Vec<Node<'_>>> = HashMap::new();
    let mut deps = Vec::new();
    for d in schema.definitions.values() {
        for name in d.relations.keys() {
            let node = (d.name.as_str(), Some(name.as_str()));
            deps.clear();
            direct_dependencies(schema, node, &mut deps);
            for &dep in &deps {
                dependents.entry(dep).or_default().push(node);
            }
        }
    }
    Ok(walk(schema, start, definition_prefix, |node, out| {
        if let Some(next) = dependents.get(&node) {
            out.extend_from_slice(next);
        }
    }))
}

fn find_definition<'s>(schema: &'s Schema, name: &str) -> Result<&'s Definition, DependencyError> {
    schema
        .definition(name)
        .ok_or_else(|| DependencyError::UnknownDefinition(name.to_string()))
}

/// Breadth-first closure from `start` over `next`, reporting every relation or permission
/// reached except `start` itself, filtered by definition prefix, sorted.
fn walk<'s>(
    schema: &'s Schema,
    start: Node<'s>,
    definition_prefix: Option<&str>,
    mut next: impl FnMut(Node<'s>, &mut Vec<Node<'s>>),
) -> Vec<RelationRef> {
    let mut seen = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    let mut found = BTreeSet::new();
    let mut buf = Vec::new();
    while let Some(node) = queue.pop_front() {
        buf.clear();
        next(node, &mut buf);
        for &n in &buf {
            if !seen.insert(n) {
                continue;
            }
            queue.push_back(n);
            let (def, Some(rel)) = n else { continue };
            if definition_prefix.is_some_and(|p| !def.starts_with(p)) {
                continue;
            }
            let is_permission = schema.relation(def, rel).is_some_and(|r| r.is_permission());
            found.insert(RelationRef {
                definition: def.to_string(),
                relation: rel.to_string(),
                is_permission,
            });
        }
    }
    found.into_iter().collect()
}

/// The nodes `node` depends on directly (may repeat; the walk deduplicates).
fn direct_dependencies<'s>(schema: &'s Schema, node: Node<'s>, out: &mut Vec<Node<'s>>) {
    let (def_name, Some(rel_name)) = node else {
        return;
    };
    let Some(def) = schema.definition(def_name) else {
        return;
    };
    let Some(relation) = def.relations.get(rel_name) else {
        return;
    };
    match &relation.kind {
        RelationKind::Relation(allowed) => {
            for a in allowed {
                let Some(subject_def) = schema.definition(&a.subject_type) else {
                    continue;
                };
                match &a.kind {
                    AllowedSubjectKind::Relation(r) => {
                        if let Some((name, _)) = subject_def.relations.get_key_value(r) {
                            out.push((subject_def.name.as_str(), Some(name.as_str())));
                        }
                    }
                    AllowedSubjectKind::Direct | AllowedSubjectKind::Wildcard => {
                        out.push((subject_def.name.as_str(), None));
                    }
                }
            }
        }
        RelationKind::Permission(rewrite) => rewrite_dependencies(schema, def, rewrite, out),
    }
}

fn rewrite_dependencies<'s>(
    schema: &'s Schema,
    def: &'s Definition,
    rewrite: &'s Rewrite,
    out: &mut Vec<Node<'s>>,
) {
    let local = |name: &str| {
        def.relations
            .get_key_value(name)
            .map(|(n, _)| (def.name.as_str(), Some(n.as_str())))
    };
    match rewrite {
        Rewrite::Nil => {}
        Rewrite::Computed(name) => out.extend(local(name)),
        Rewrite::Arrow {
            tupleset, computed, ..
        } => {
            out.extend(local(tupleset));
            let Some(ts) = def.relations.get(tupleset) else {
                return;
            };
            // The arrow follows the subject objects of the tupleset, whatever their subject
            // relation, to `computed` on each allowed type that declares it.
            for a in ts.allowed() {
                if let Some(target) = schema.definition(&a.subject_type)
                    && let Some((name, _)) = target.relations.get_key_value(computed)
                {
                    out.push((target.name.as_str(), Some(name.as_str())));
                }
            }
        }
        Rewrite::Union(children) | Rewrite::Intersection(children) => {
            for c in children {
                rewrite_dependencies(schema, def, c, out);
            }
        }
        Rewrite::Exclusion(base, subtracted) => {
            rewrite_dependencies(schema, def, base, out);
            rewrite_dependencies(schema, def, subtracted, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"
        definition user {}
        definition group {
            relation member: user | group#member
            relation banned: user
            permission active = member - banned
        }
        definition organization {
            relation admin: user
            relation member: user | group#member
            permission manage = admin
        }
        definition folder {
            relation parent: folder
            relation org: organization
            relation viewer: user | user:*
            permission view = viewer + parent->view + org->manage
        }
        definition document {
            relation folder: folder
            relation viewer: user | group#member
            relation editor: user
            relation blocked: user
            permission edit = editor
            permission view = (viewer + edit + folder->view) - blocked
            permission nothing = nil
        }
    "#;

    fn schema() -> std::sync::Arc<Schema> {
        crate::schema::compile("t", SCHEMA).unwrap().schema
    }

    fn names(refs: &[RelationRef]) -> Vec<String> {
        refs.iter()
            .map(|r| {
                let kind = if r.is_permission { "perm" } else { "rel" };
                format!("{}#{} {kind}", r.definition, r.relation)
            })
            .collect()
    }

    #[test]
    fn dependent_relations_follow_every_operator_and_arrow_transitively() {
        let deps = dependent_relations(&schema(), "document", "view").unwrap();
        assert_eq!(
            names(&deps),
            [
                "document#blocked rel",
                "document#edit perm",
                "document#editor rel",
                "document#folder rel",
                "document#viewer rel",
                "folder#org rel",
                "folder#parent rel",
                "folder#view perm",
                "folder#viewer rel",
                "group#member rel",
                "organization#admin rel",
                "organization#manage perm",
            ]
        );
    }

    #[test]
    fn dependent_relations_of_nil_and_of_recursive_permissions() {
        let s = schema();
        assert!(
            dependent_relations(&s, "document", "nothing")
                .unwrap()
                .is_empty()
        );
        // `folder#view` reaches itself through `parent->view`; it is never reported.
        let deps = dependent_relations(&s, "folder", "view").unwrap();
        assert!(!names(&deps).contains(&"folder#view perm".to_string()));
        assert!(names(&deps).contains(&"folder#viewer rel".to_string()));
        assert!(names(&deps).contains(&"organization#admin rel".to_string()));
    }

    #[test]
    fn dependent_relations_refuse_relations_and_unknown_names() {
        let s = schema();
        assert_eq!(
            dependent_relations(&s, "document", "viewer"),
            Err(DependencyError::NotAPermission {
                definition: "document".into(),
                relation: "viewer".into()
            })
        );
        assert_eq!(
            dependent_relations(&s, "doc", "view"),
            Err(DependencyError::UnknownDefinition("doc".into()))
        );
        let err = dependent_relations(&s, "document", "share").unwrap_err();
        assert_eq!(
            err.to_string(),
            "relation/permission `share` not found under definition `document`"
        );
    }

    #[test]
    fn computable_permissions_are_the_inverse_walk() {
        let s = schema();
        let up = computable_permissions(&s, "organization", Some("admin"), None).unwrap();
        assert_eq!(
            names(&up),
            [
                "document#view perm",
                "folder#view perm",
                "organization#manage perm"
            ]
        );
        // Through subject sets: group membership feeds relations that allow `group#member`.
        let up = computable_permissions(&s, "group", Some("member"), None).unwrap();
        assert_eq!(
            names(&up),
            [
                "document#view perm",
                "document#viewer rel",
                "group#active perm",
                "organization#member rel",
            ]
        );
        // The tupleset of an arrow affects the arrow's permission.
        let up = computable_permissions(&s, "document", Some("folder"), None).unwrap();
        assert_eq!(names(&up), ["document#view perm"]);
        // Nothing is computed from an unused permission.
        assert!(
            computable_permissions(&s, "document", Some("nothing"), None)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn computable_permissions_of_a_definitions_objects_and_prefix_filter() {
        let s = schema();
        let all = computable_permissions(&s, "user", None, None).unwrap();
        assert!(names(&all).contains(&"folder#viewer rel".to_string()));
        assert!(names(&all).contains(&"group#active perm".to_string()));
        assert!(names(&all).contains(&"document#view perm".to_string()));
        let docs = computable_permissions(&s, "user", None, Some("doc")).unwrap();
        assert!(!docs.is_empty());
        assert!(docs.iter().all(|r| r.definition == "document"));
        // The filter restricts results, not the walk: folder-only paths still reach documents.
        let from_folder =
            computable_permissions(&s, "folder", Some("viewer"), Some("document")).unwrap();
        assert_eq!(names(&from_folder), ["document#view perm"]);
        assert_eq!(
            computable_permissions(&s, "folder", Some("owner"), None),
            Err(DependencyError::UnknownRelation {
                definition: "folder".into(),
                relation: "owner".into()
            })
        );
    }

    #[test]
    fn every_dependency_has_the_start_as_a_computable_permission() {
        // DependentRelations and ComputablePermissions are inverses of each other.
        let s = schema();
        for def in s.definitions.values() {
            for rel in def.relations.values().filter(|r| r.is_permission()) {
                for dep in dependent_relations(&s, &def.name, &rel.name).unwrap() {
                    let up = computable_permissions(&s, &dep.definition, Some(&dep.relation), None)
                        .unwrap();
                    assert!(
                        up.iter()
                            .any(|r| r.definition == def.name && r.relation == rel.name),
                        "{}#{} depends on {}#{}",
                        def.name,
                        rel.name,
                        dep.definition,
                        dep.relation
                    );
                }
            }
        }
    }
}
