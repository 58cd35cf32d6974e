//! The compiled, immutable schema the engine evaluates against.
//!
//! Produced only by the checker (`schema::compile`), shared behind an `Arc`. Every name in it
//! has been resolved: a `Rewrite` only mentions relations that exist on its definition, an
//! `AllowedSubject` only types (and relations, caveats) that exist in the schema.

use std::sync::Arc;

use indexmap::IndexMap;

use crate::caveat::CompiledCaveat;

/// A whole schema: object definitions and caveats, in source order.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    pub definitions: IndexMap<String, Definition>,
    pub caveats: IndexMap<String, Arc<CompiledCaveat>>,
    /// True when the source had `use expiration`.
    pub uses_expiration: bool,
}

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
#[derive(Debug, Clone)]
pub struct Definition {
    pub name: String,
    /// Doc comment (`/** ... */` or `// ...` lines directly above), without comment markers.
    pub doc: Option<String>,
    /// Relations and permissions, in source order.
    pub relations: IndexMap<String, Relation>,
}

/// A `relation` or a `permission` of a definition.
#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
pub enum RelationKind {
    /// `relation name: user | group#member | user:* ...`: stored relationships.
    Relation(Vec<AllowedSubject>),
    /// `permission name = expr`: computed.
    Permission(Rewrite),
}

/// One alternative of a relation's type annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSubject {
    pub subject_type: String,
    pub kind: AllowedSubjectKind,
    /// `with caveat_name`.
    pub caveat: Option<String>,
    /// `with expiration` (alone or `with caveat and expiration`).
    pub expiration: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
