//! Domain types shared by every layer: object and subject references, relationships,
//! filters, revisions, and the validation rules of the wire API for names and ids.
//!
//! These types are deliberately not protobuf types; `api/` converts at the edge.

mod text;
pub mod validation;

use std::fmt;

pub use text::{format_relationship, parse_relationship, parse_subject};
pub use validation::{
    validate_caveat_name, validate_object_id, validate_object_type, validate_relation_name,
};

/// Values of a caveat context: a JSON object, as in `google.protobuf.Struct`.
pub type Context = serde_json::Map<String, serde_json::Value>;

/// A point in time (expirations, change-log timestamps). UTC, microsecond precision is kept.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The object id that stands for "every object of this type" in a subject.
pub const WILDCARD_ID: &str = "*";

/// Errors in user-provided names, ids and relationship text. Messages name the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("invalid {field} `{value}`: {reason}")]
    Invalid {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("cannot parse relationship `{text}`: {reason}")]
    Syntax { text: String, reason: String },
}

impl ModelError {
    pub(crate) fn invalid(field: &'static str, value: &str, reason: impl Into<String>) -> Self {
        let mut shown = value.to_string();
        if shown.len() > 80 {
            let mut cut = 77;
            while !shown.is_char_boundary(cut) {
                cut -= 1;
            }
            shown.truncate(cut);
            shown.push_str("...");
        }
        ModelError::Invalid {
            field,
            value: shown,
            reason: reason.into(),
        }
    }
}

/// A commit position of the store. Strictly increasing in commit order; 0 means "nothing yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision(pub u64);

impl Revision {
    pub const ZERO: Revision = Revision(0);
    pub fn next(self) -> Revision {
        Revision(self.0 + 1)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `type:id`, e.g. `document:readme`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub object_type: String,
    pub object_id: String,
}

impl ObjectRef {
    pub fn new(object_type: impl Into<String>, object_id: impl Into<String>) -> Self {
        ObjectRef {
            object_type: object_type.into(),
            object_id: object_id.into(),
        }
    }

    /// Validates type and id (wildcard ids are refused: a resource is never `*`).
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_object_type(&self.object_type)?;
        validate_object_id(&self.object_id, false)
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object_type, self.object_id)
    }
}

/// The subject of a relationship: an object (`user:alice`), a userset (`group:eng#member`)
/// or a wildcard (`user:*`). `relation == None` is the ellipsis: the object itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubjectRef {
    pub object: ObjectRef,
    pub relation: Option<String>,
}

impl SubjectRef {
    pub fn new(object_type: &str, object_id: &str, relation: Option<&str>) -> Self {
        SubjectRef {
            object: ObjectRef::new(object_type, object_id),
            relation: relation.map(str::to_string),
        }
    }

    pub fn is_wildcard(&self) -> bool {
        self.object.object_id == WILDCARD_ID
    }

    /// Validates type, id (wildcard allowed only without a relation) and relation.
    pub fn validate(&self) -> Result<(), ModelError> {
        validate_object_type(&self.object.object_type)?;
        validate_object_id(&self.object.object_id, true)?;
        if let Some(rel) = &self.relation {
            validate_relation_name(rel)?;
            if self.is_wildcard() {
                return Err(ModelError::invalid(
                    "subject",
                    &self.to_string(),
                    "a wildcard subject cannot have a relation",
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for SubjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.relation {
            Some(rel) => write!(f, "{}#{}", self.object, rel),
            None => write!(f, "{}", self.object),
        }
    }
}

/// A caveat attached to a relationship, with the part of its context fixed at write time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CaveatRef {
    pub name: String,
    pub context: Context,
}

/// `resource#relation@subject`, optionally caveated and/or expiring.
#[derive(Debug, Clone, PartialEq)]
pub struct Relationship {
    pub resource: ObjectRef,
    pub relation: String,
    pub subject: SubjectRef,
    pub caveat: Option<CaveatRef>,
    pub expiration: Option<Timestamp>,
}

impl Relationship {
    pub fn new(resource: ObjectRef, relation: impl Into<String>, subject: SubjectRef) -> Self {
        Relationship {
            resource,
            relation: relation.into(),
            subject,
            caveat: None,
            expiration: None,
        }
    }

    /// The identity of a relationship: two relationships with the same key are the same
    /// relationship (caveat and expiration are attributes, replaced by TOUCH).
    pub fn key(&self) -> RelationshipKey {
        RelationshipKey {
            resource: self.resource.clone(),
            relation: self.relation.clone(),
            subject: self.subject.clone(),
        }
    }

    /// True when the relationship has expired at `now` (expired relationships are invisible).
    pub fn is_expired_at(&self, now: Timestamp) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    /// Validates every name and id, per the wire API's rules.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.resource.validate()?;
        validate_relation_name(&self.relation)?;
        self.subject.validate()?;
        if let Some(c) = &self.caveat {
            validate_caveat_name(&c.name)?;
        }
        if let Some(e) = &self.expiration {
            validation::validate_timestamp("expiration", e)?;
        }
        Ok(())
    }
}

impl fmt::Display for Relationship {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_relationship(self))
    }
}

/// The identity of a relationship, ordered resource → relation → subject.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelationshipKey {
    pub resource: ObjectRef,
    pub relation: String,
    pub subject: SubjectRef,
}

impl fmt::Display for RelationshipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.resource, self.relation, self.subject)
    }
}

/// Which subject relations a [`SubjectFilter`] accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SubjectRelationFilter {
    /// Any relation, including the ellipsis.
    #[default]
    Any,
    /// Only subjects without a relation (`user:alice`, not `group:eng#member`).
    Ellipsis,
    /// Only subjects with exactly this relation.
    Relation(String),
}

/// Matches subjects by type, optionally id and relation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubjectFilter {
    pub subject_type: String,
    pub subject_id: Option<String>,
    pub relation: SubjectRelationFilter,
}

impl SubjectFilter {
    pub fn matches(&self, s: &SubjectRef) -> bool {
        if s.object.object_type != self.subject_type {
            return false;
        }
        if let Some(id) = &self.subject_id
            && *id != s.object.object_id
        {
            return false;
        }
        match &self.relation {
            SubjectRelationFilter::Any => true,
            SubjectRelationFilter::Ellipsis => s.relation.is_none(),
            SubjectRelationFilter::Relation(r) => s.relation.as_deref() == Some(r.as_str()),
        }
    }
}

/// Selects relationships; every `None` field matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelationshipFilter {
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub resource_id_prefix: Option<String>,
    pub relation: Option<String>,
    pub subject: Option<SubjectFilter>,
}

impl RelationshipFilter {
    pub fn matches(&self, r: &Relationship) -> bool {
        if let Some(t) = &self.resource_type
            && *t != r.resource.object_type
        {
            return false;
        }
        if let Some(id) = &self.resource_id
            && *id != r.resource.object_id
        {
            return false;
        }
        if let Some(p) = &self.resource_id_prefix
            && !r.resource.object_id.starts_with(p.as_str())
        {
            return false;
        }
        if let Some(rel) = &self.relation
            && *rel != r.relation
        {
            return false;
        }
        if let Some(sf) = &self.subject
            && !sf.matches(&r.subject)
        {
            return false;
        }
        true
    }

    /// A filter that matches exactly one relationship identity.
    pub fn exact(key: &RelationshipKey) -> Self {
        RelationshipFilter {
            resource_type: Some(key.resource.object_type.clone()),
            resource_id: Some(key.resource.object_id.clone()),
            resource_id_prefix: None,
            relation: Some(key.relation.clone()),
            subject: Some(SubjectFilter {
                subject_type: key.subject.object.object_type.clone(),
                subject_id: Some(key.subject.object.object_id.clone()),
                relation: match &key.subject.relation {
                    Some(r) => SubjectRelationFilter::Relation(r.clone()),
                    None => SubjectRelationFilter::Ellipsis,
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(text: &str) -> Relationship {
        parse_relationship(text).unwrap()
    }

    #[test]
    fn filter_matches_by_each_field() {
        let r = rel("document:readme#viewer@group:eng#member");
        let mut f = RelationshipFilter {
            resource_type: Some("document".into()),
            ..Default::default()
        };
        assert!(f.matches(&r));
        f.resource_id_prefix = Some("read".into());
        assert!(f.matches(&r));
        f.resource_id_prefix = Some("x".into());
        assert!(!f.matches(&r));
        f.resource_id_prefix = None;
        f.subject = Some(SubjectFilter {
            subject_type: "group".into(),
            subject_id: None,
            relation: SubjectRelationFilter::Ellipsis,
        });
        assert!(!f.matches(&r));
        f.subject = Some(SubjectFilter {
            subject_type: "group".into(),
            subject_id: Some("eng".into()),
            relation: SubjectRelationFilter::Relation("member".into()),
        });
        assert!(f.matches(&r));
        assert!(RelationshipFilter::exact(&r.key()).matches(&r));
        assert!(
            !RelationshipFilter::exact(&rel("document:readme#viewer@group:eng").key()).matches(&r)
        );
    }

    #[test]
    fn expiry_is_inclusive_of_the_instant() {
        let r = rel("document:a#viewer@user:x[expiration:2030-01-01T00:00:00Z]");
        let at = r.expiration.unwrap();
        assert!(r.is_expired_at(at));
        assert!(!r.is_expired_at(at - chrono::Duration::seconds(1)));
    }

    #[test]
    fn wildcard_subject_with_relation_is_invalid() {
        let s = SubjectRef::new("user", "*", Some("member"));
        assert!(s.validate().is_err());
        assert!(SubjectRef::new("user", "*", None).validate().is_ok());
    }
}
