//! The compiled, immutable schema the engine evaluates against.
//!
//! Produced only by the checker (`schema::compile`), shared behind an `Arc`. Every name in it
//! has been resolved: a `Rewrite` only mentions relations that exist on its definition, an
//! `AllowedSubject` only types (and relations, caveats) that exist in the schema.

use std::sync::Arc;

use indexmap::IndexMap;

use crate::caveat::CompiledCaveat;

/// A whole schema: object definitions and caveats, in source order.
///
/// Equality is structural: two schemas are equal when they declare the same definitions,
/// relations, rewrites, docs and caveats (compared by name, parameters and expression text).
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub definitions: IndexMap<String, Definition>,
    pub caveats: IndexMap<String, Arc<CompiledCaveat>>,
    /// True when the source had `use expiration`.
    pub uses_expiration: bool,
    /// Doc comments of caveats, by caveat name (a [`CompiledCaveat`] carries none).
    pub caveat_docs: IndexMap<String, String>,
}

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        self.uses_expiration == other.uses_expiration
            && self.definitions == other.definitions
            && self.caveat_docs == other.caveat_docs
            && self.caveats.len() == other.caveats.len()
            && self
                .caveats
                .iter()
                .zip(other.caveats.iter())
                .all(|((an, a), (bn, b))| {
                    an == bn
                        && a.name() == b.name()
                        && a.parameters() == b.parameters()
                        && a.expression_text() == b.expression_text()
                })
    }
}

impl Eq for Schema {}

impl Schema {
    pub fn definition(&self, name: &str) -> Option<&Definition> {
        self.definitions.get(name)
    }

    /// Looks up `type#relation` (a relation or a permission).
    pub fn relation(&self, object_type: &str, relation: &str) -> Option<&Relation> {
        self.definitions.get(object_type)?.relations.get(relation)
    }

    pub fn caveat(&self, name: &str) -> Option<&Arc<CompiledCaveat>> {
        self.caveats.get(name)
    }
}

/// `definition name { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    /// Doc comment (`/** ... */` or `// ...` lines directly above), without comment markers.
    pub doc: Option<String>,
    /// Relations and permissions, in source order.
    pub relations: IndexMap<String, Relation>,
}

/// A `relation` or a `permission` of a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    pub doc: Option<String>,
    pub kind: RelationKind,
}

impl Relation {
    pub fn is_permission(&self) -> bool {
        matches!(self.kind, RelationKind::Permission(_))
    }

    /// The allowed subject types of a relation (empty for a permission).
    pub fn allowed(&self) -> &[AllowedSubject] {
        match &self.kind {
            RelationKind::Relation(a) => a,
            RelationKind::Permission(_) => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelationKind {
    /// `relation name: user | group#member | user:* ...`: stored relationships.
    Relation(Vec<AllowedSubject>),
    /// `permission name = expr`: computed.
    Permission(Rewrite),
}

/// One alternative of a relation's type annotation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowedSubject {
    pub subject_type: String,
    pub kind: AllowedSubjectKind,
    /// `with caveat_name`.
    pub caveat: Option<String>,
    /// `with expiration` (alone or `with caveat and expiration`).
    pub expiration: bool,
}

/// Schema syntax: `user`, `group#member`, `user:*`, each optionally followed by
/// `with caveat`, `with expiration` or `with caveat and expiration`.
impl std::fmt::Display for AllowedSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.subject_type)?;
        match &self.kind {
            AllowedSubjectKind::Direct => {}
            AllowedSubjectKind::Relation(r) => write!(f, "#{r}")?,
            AllowedSubjectKind::Wildcard => f.write_str(":*")?,
        }
        match (&self.caveat, self.expiration) {
            (Some(c), true) => write!(f, " with {c} and expiration"),
            (Some(c), false) => write!(f, " with {c}"),
            (None, true) => f.write_str(" with expiration"),
            (None, false) => Ok(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AllowedSubjectKind {
    /// `user`: the object itself.
    Direct,
    /// `group#member`: a userset.
    Relation(String),
    /// `user:*`: the wildcard.
    Wildcard,
}

/// Whether an arrow requires the permission through any or through every object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrowKind {
    /// `rel->perm` and `rel.any(perm)`.
    Any,
    /// `rel.all(perm)`: through every object of `rel`, and false when there is none.
    All,
}

/// A permission expression, with names resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// `nil`: nobody.
    Nil,
    /// A reference to another relation or permission of the same object.
    Computed(String),
    /// `tupleset->computed`: for each subject object of `tupleset` on this object, `computed` on it.
    Arrow {
        tupleset: String,
        computed: String,
        kind: ArrowKind,
    },
    /// `a + b + ...`
    Union(Vec<Rewrite>),
    /// `a & b & ...`
    Intersection(Vec<Rewrite>),
    /// `a - b`
    Exclusion(Box<Rewrite>, Box<Rewrite>),
}
