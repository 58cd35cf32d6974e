//! Checking a relationship against the schema before it is written: the resource type and
//! relation must exist and be a relation (not a permission), and the subject, with its caveat
//! and expiration, must match one of the relation's allowed subject types exactly.

use super::compiled::{AllowedSubject, AllowedSubjectKind, Schema};
use crate::model::Relationship;

/// Why a relationship does not fit the schema. Messages name the relation
/// (`type#relation`) and the subject type as written in a schema (`user`, `user:*`,
/// `group#member`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaViolation {
    #[error("object definition `{resource_type}` not found")]
    UnknownResourceType { resource_type: String },

    #[error("relation `{relation}` not found on object definition `{resource_type}`")]
    UnknownRelation {
        resource_type: String,
        relation: String,
    },

    #[error(
        "cannot write a relationship to `{resource_type}#{relation}`: it is a permission, which \
         is computed, not stored"
    )]
    WriteToPermission {
        resource_type: String,
        relation: String,
    },

    #[error("subject object definition `{subject_type}` not found")]
    UnknownSubjectType { subject_type: String },

    #[error("subject relation `{relation}` not found on object definition `{subject_type}`")]
    UnknownSubjectRelation {
        subject_type: String,
        relation: String,
    },

    #[error("caveat `{caveat}` not found")]
    UnknownCaveat { caveat: String },

    #[error(
        "subjects of type `{subject}` are not allowed on relation `{resource_type}#{relation}` \
         (allowed: {allowed})"
    )]
    SubjectNotAllowed {
        resource_type: String,
        relation: String,
        subject: String,
        allowed: String,
    },

    #[error(
        "caveat `{caveat}` has no parameter `{parameter}` (its parameters: {parameters}); a \
         relationship's caveat context may only set declared parameters"
    )]
    UnknownCaveatParameter {
        caveat: String,
        parameter: String,
        parameters: String,
    },

    #[error("caveat `{caveat}`: context parameter `{parameter}` must be {expected}: {detail}")]
    CaveatContextType {
        caveat: String,
        parameter: String,
        expected: String,
        detail: String,
    },

    #[error(
        "subjects of type `{subject}` on relation `{resource_type}#{relation}` require one of \
         the caveats {caveats}"
    )]
    CaveatRequired {
        resource_type: String,
        relation: String,
        subject: String,
        caveats: String,
    },

    #[error(
        "subjects of type `{subject}` with caveat `{caveat}` are not allowed on relation \
         `{resource_type}#{relation}` (allowed: {allowed})"
    )]
    CaveatNotAllowed {
        resource_type: String,
        relation: String,
        subject: String,
        caveat: String,
        allowed: String,
    },

    #[error(
        "subjects of type `{subject}` on relation `{resource_type}#{relation}` cannot have an \
         expiration: the relation does not declare them `with expiration`"
    )]
    ExpirationNotAllowed {
        resource_type: String,
        relation: String,
        subject: String,
    },

    #[error(
        "subjects of type `{subject}` on relation `{resource_type}#{relation}` must have an \
         expiration: the relation declares them `with expiration`"
    )]
    ExpirationRequired {
        resource_type: String,
        relation: String,
        subject: String,
    },
}

/// The names, quoted, at most a handful of them (the rest counted): an error message must not
/// grow with the schema.
fn list(items: impl Iterator<Item = String>) -> String {
    const SHOWN: usize = 10;
    let mut shown = Vec::new();
    let mut more = 0usize;
    for s in items {
        if shown.len() < SHOWN {
            shown.push(format!("`{s}`"));
        } else {
            more += 1;
        }
    }
    if shown.is_empty() {
        return "none".to_string();
    }
    let mut out = shown.join(", ");
    if more > 0 {
        out.push_str(&format!(" and {more} more"));
    }
    out
}

/// A relationship's caveat context must name only declared parameters, each with a value of
/// its declared type: checked when written, as the reference does, so a bad context can never
/// make later checks fail for the subjects it touches.
fn check_context(
    caveat: &crate::caveat::CompiledCaveat,
    context: &crate::model::Context,
) -> Result<(), SchemaViolation> {
    use crate::caveat::CaveatError;
    let params = caveat.parameters();
    if let Some(unknown) = context.keys().find(|k| !params.contains_key(*k)) {
        return Err(SchemaViolation::UnknownCaveatParameter {
            caveat: caveat.name().to_string(),
            parameter: super::limits::quoted(unknown),
            parameters: list(params.keys().cloned()),
        });
    }
    caveat.validate_context(context).map_err(|e| match e {
        CaveatError::BadParameter {
            caveat,
            parameter,
            expected,
            detail,
        } => SchemaViolation::CaveatContextType {
            caveat,
            parameter,
            expected,
            detail,
        },
        // Not produced without evaluating; kept total rather than panicking.
        CaveatError::Evaluation { caveat, detail } => SchemaViolation::CaveatContextType {
            caveat,
            parameter: "(any)".into(),
            expected: "valid".into(),
            detail,
        },
    })
}

impl Schema {
    /// Checks that `rel` may be stored under this schema. Names are assumed to be
    /// syntactically valid already (see [`Relationship::validate`]).
    pub fn validate_relationship(&self, rel: &Relationship) -> Result<(), SchemaViolation> {
        let resource_type = &rel.resource.object_type;
        let def =
            self.definition(resource_type)
                .ok_or_else(|| SchemaViolation::UnknownResourceType {
                    resource_type: resource_type.clone(),
                })?;
        let relation =
            def.relations
                .get(&rel.relation)
                .ok_or_else(|| SchemaViolation::UnknownRelation {
                    resource_type: resource_type.clone(),
                    relation: rel.relation.clone(),
                })?;
        if relation.is_permission() {
            return Err(SchemaViolation::WriteToPermission {
                resource_type: resource_type.clone(),
                relation: rel.relation.clone(),
            });
        }
        let subject_type = &rel.subject.object.object_type;
        let subject_def =
            self.definition(subject_type)
                .ok_or_else(|| SchemaViolation::UnknownSubjectType {
                    subject_type: subject_type.clone(),
                })?;
        let wildcard = rel.subject.is_wildcard();
        if !wildcard
            && let Some(sr) = &rel.subject.relation
            && !subject_def.relations.contains_key(sr)
        {
            return Err(SchemaViolation::UnknownSubjectRelation {
                subject_type: subject_type.clone(),
                relation: sr.clone(),
            });
        }
        let caveat = rel.caveat.as_ref().map(|c| c.name.as_str());
        if let Some(c) = &rel.caveat {
            let Some(compiled) = self.caveat(&c.name) else {
                return Err(SchemaViolation::UnknownCaveat {
                    caveat: c.name.clone(),
                });
            };
            check_context(compiled, &c.context)?;
        }

        let (kind, subject) = if wildcard {
            (AllowedSubjectKind::Wildcard, format!("{subject_type}:*"))
        } else if let Some(sr) = &rel.subject.relation {
            (
                AllowedSubjectKind::Relation(sr.clone()),
                format!("{subject_type}#{sr}"),
            )
        } else {
            (AllowedSubjectKind::Direct, subject_type.clone())
        };
        let allowed = relation.allowed();
        let allowed_list = || list(allowed.iter().map(AllowedSubject::to_string));
        let same_subject: Vec<&AllowedSubject> = allowed
            .iter()
            .filter(|a| a.subject_type == *subject_type && a.kind == kind)
            .collect();
        if same_subject.is_empty() {
            return Err(SchemaViolation::SubjectNotAllowed {
                resource_type: resource_type.clone(),
                relation: rel.relation.clone(),
                subject,
                allowed: allowed_list(),
            });
        }
        let same_caveat: Vec<&&AllowedSubject> = same_subject
            .iter()
            .filter(|a| a.caveat.as_deref() == caveat)
            .collect();
        if same_caveat.is_empty() {
            return Err(match caveat {
                Some(c) => SchemaViolation::CaveatNotAllowed {
                    resource_type: resource_type.clone(),
                    relation: rel.relation.clone(),
                    subject,
                    caveat: c.to_string(),
                    allowed: allowed_list(),
                },
                None => {
                    let mut names: Vec<String> = same_subject
                        .iter()
                        .filter_map(|a| a.caveat.clone())
                        .collect();
                    names.dedup();
                    SchemaViolation::CaveatRequired {
                        resource_type: resource_type.clone(),
                        relation: rel.relation.clone(),
                        subject,
                        caveats: list(names.into_iter()),
                    }
                }
            });
        }
        let expiring = rel.expiration.is_some();
        if same_caveat.iter().any(|a| a.expiration == expiring) {
            return Ok(());
        }
        Err(if expiring {
            SchemaViolation::ExpirationNotAllowed {
                resource_type: resource_type.clone(),
                relation: rel.relation.clone(),
                subject,
            }
        } else {
            SchemaViolation::ExpirationRequired {
                resource_type: resource_type.clone(),
                relation: rel.relation.clone(),
                subject,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_relationship;
    use crate::schema::compile;

    const SCHEMA: &str = r#"
use expiration

caveat on_weekday(day string) { day != "sat" && day != "sun" }
caveat in_office(ip string) { ip == "10.0.0.1" }

definition user {}

definition group {
    relation member: user | group#member
    permission members = member
}

definition document {
    relation viewer: user | user:* | group#member | user with on_weekday
    relation auditor: user with on_weekday | user with in_office and expiration
    relation temp: user with expiration
    permission view = viewer + auditor
}
"#;

    fn validate(text: &str) -> Result<(), SchemaViolation> {
        let schema = compile("test.zed", SCHEMA).unwrap().schema;
        schema.validate_relationship(&parse_relationship(text).unwrap())
    }

    fn message(text: &str) -> String {
        validate(text).unwrap_err().to_string()
    }

    #[test]
    fn allowed_relationships_pass() {
        for ok in [
            "document:a#viewer@user:alice",
            "document:a#viewer@user:*",
            "document:a#viewer@group:eng#member",
            "document:a#viewer@user:bob[on_weekday]",
            "document:a#auditor@user:bob[on_weekday:{\"day\":\"mon\"}]",
            "document:a#auditor@user:bob[in_office][expiration:2030-01-01T00:00:00Z]",
            "document:a#temp@user:bob[expiration:2030-01-01T00:00:00Z]",
            "group:eng#member@group:ops#member",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn unknown_names() {
        assert_eq!(
            message("folder:a#viewer@user:x"),
            "object definition `folder` not found"
        );
        assert_eq!(
            message("document:a#owner@user:x"),
            "relation `owner` not found on object definition `document`"
        );
        assert_eq!(
            message("document:a#view@user:x"),
            "cannot write a relationship to `document#view`: it is a permission, which is computed, not stored"
        );
        assert_eq!(
            message("document:a#viewer@robot:x"),
            "subject object definition `robot` not found"
        );
        assert_eq!(
            message("document:a#viewer@group:x#admin"),
            "subject relation `admin` not found on object definition `group`"
        );
        assert_eq!(
            message("document:a#viewer@user:x[nope]"),
            "caveat `nope` not found"
        );
    }

    #[test]
    fn subject_type_mismatches() {
        assert_eq!(
            message("document:a#viewer@group:x"),
            "subjects of type `group` are not allowed on relation `document#viewer` (allowed: `user`, `user:*`, `group#member`, `user with on_weekday`)"
        );
        assert_eq!(
            message("document:a#viewer@group:x#members"),
            "subjects of type `group#members` are not allowed on relation `document#viewer` (allowed: `user`, `user:*`, `group#member`, `user with on_weekday`)"
        );
        assert_eq!(
            message("document:a#auditor@user:*"),
            "subjects of type `user:*` are not allowed on relation `document#auditor` (allowed: `user with on_weekday`, `user with in_office and expiration`)"
        );
    }

    #[test]
    fn caveat_and_expiration_traits_must_match() {
        assert_eq!(
            message("document:a#auditor@user:x"),
            "subjects of type `user` on relation `document#auditor` require one of the caveats `on_weekday`, `in_office`"
        );
        assert_eq!(
            message("document:a#viewer@user:x[in_office]"),
            "subjects of type `user` with caveat `in_office` are not allowed on relation `document#viewer` (allowed: `user`, `user:*`, `group#member`, `user with on_weekday`)"
        );
        assert_eq!(
            message("document:a#viewer@user:x[expiration:2030-01-01T00:00:00Z]"),
            "subjects of type `user` on relation `document#viewer` cannot have an expiration: the relation does not declare them `with expiration`"
        );
        assert_eq!(
            message("document:a#auditor@user:x[in_office]"),
            "subjects of type `user` on relation `document#auditor` must have an expiration: the relation declares them `with expiration`"
        );
        assert_eq!(
            message("document:a#temp@user:x"),
            "subjects of type `user` on relation `document#temp` must have an expiration: the relation declares them `with expiration`"
        );
    }
}
