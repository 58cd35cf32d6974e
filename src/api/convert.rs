//! Wire ⇄ domain conversions. Every request field is validated here, once, with the wire
//! API's rules; errors are `INVALID_ARGUMENT` messages that start with the field's path
//! (`resource.object_id: ...`). Past this module the service only sees valid domain values.

use std::collections::BTreeMap;

use prost_types::value::Kind;
use serde_json::Value as Json;

use crate::api::proto::authzed::api::v1 as pb;
use crate::consistency::{Consistency, Zookie};
use crate::engine::{CheckOutcome, ExpandNode, ExpandTree};
use crate::model::{
    self, CaveatRef, Context, ModelError, ObjectRef, Relationship, RelationshipFilter,
    SubjectFilter, SubjectRef, SubjectRelationFilter, Timestamp, WILDCARD_ID,
};
use crate::service::{ErrorReason, ServiceError};
use crate::store::{Precondition, PreconditionKind, RelationshipUpdate, WriteOp};

use super::error::{bad_zookie, invalid, invalid_because};

type Result<T> = std::result::Result<T, ServiceError>;

fn model_err(field: &str, e: ModelError) -> ServiceError {
    invalid(field, e)
}

fn required(field: &str) -> ServiceError {
    invalid(field, "is required")
}

// ---- revisions ----------------------------------------------------------------------------

/// The token of `revision`.
pub fn zookie(revision: model::Revision) -> pb::ZedToken {
    pb::ZedToken {
        token: Zookie::encode(revision),
    }
}

/// The revision of a token the caller sent.
pub fn revision(field: &str, token: &pb::ZedToken) -> Result<model::Revision> {
    Zookie::decode(&token.token).map_err(|e| bad_zookie(field, e))
}

/// The consistency of a read; an absent message means `minimize_latency`.
pub fn consistency(c: Option<&pb::Consistency>) -> Result<Consistency> {
    use pb::consistency::Requirement;
    let Some(requirement) = c.and_then(|c| c.requirement.as_ref()) else {
        return Ok(Consistency::MinimizeLatency);
    };
    Ok(match requirement {
        Requirement::MinimizeLatency(true) => Consistency::MinimizeLatency,
        Requirement::FullyConsistent(true) => Consistency::FullyConsistent,
        Requirement::MinimizeLatency(false) => {
            return Err(invalid(
                "consistency.minimize_latency",
                "must be true when set",
            ));
        }
        Requirement::FullyConsistent(false) => {
            return Err(invalid(
                "consistency.fully_consistent",
                "must be true when set",
            ));
        }
        Requirement::AtLeastAsFresh(t) => {
            Consistency::AtLeastAsFresh(revision("consistency.at_least_as_fresh", t)?)
        }
        Requirement::AtExactSnapshot(t) => {
            Consistency::AtExactSnapshot(revision("consistency.at_exact_snapshot", t)?)
        }
    })
}

// ---- names and references -----------------------------------------------------------------

/// A required object type (`resource_object_type`, `subject_object_type`, ...).
pub fn object_type(field: &str, s: &str) -> Result<String> {
    model::validate_object_type(s).map_err(|e| model_err(field, e))?;
    Ok(s.to_string())
}

/// A required relation or permission name.
pub fn relation(field: &str, s: &str) -> Result<String> {
    if s.is_empty() {
        return Err(required(field));
    }
    model::validate_relation_name(s).map_err(|e| model_err(field, e))?;
    Ok(s.to_string())
}

/// An optional relation name: empty means none.
pub fn optional_relation(field: &str, s: &str) -> Result<Option<String>> {
    if s.is_empty() {
        Ok(None)
    } else {
        relation(field, s).map(Some)
    }
}

/// A resource reference (never a wildcard).
pub fn object_ref(field: &str, o: Option<&pb::ObjectReference>) -> Result<ObjectRef> {
    let o = o.ok_or_else(|| required(field))?;
    model::validate_object_type(&o.object_type)
        .map_err(|e| model_err(&format!("{field}.object_type"), e))?;
    model::validate_object_id(&o.object_id, false)
        .map_err(|e| model_err(&format!("{field}.object_id"), e))?;
    Ok(ObjectRef::new(o.object_type.clone(), o.object_id.clone()))
}

/// A subject reference: an object, a subject set, or (without a relation) a wildcard.
pub fn subject_ref(field: &str, s: Option<&pb::SubjectReference>) -> Result<SubjectRef> {
    let s = s.ok_or_else(|| required(field))?;
    let ofield = format!("{field}.object");
    let o = s.object.as_ref().ok_or_else(|| required(&ofield))?;
    model::validate_object_type(&o.object_type)
        .map_err(|e| model_err(&format!("{ofield}.object_type"), e))?;
    model::validate_object_id(&o.object_id, true)
        .map_err(|e| model_err(&format!("{ofield}.object_id"), e))?;
    let relation = optional_relation(&format!("{field}.optional_relation"), &s.optional_relation)?;
    if relation.is_some() && o.object_id == WILDCARD_ID {
        return Err(invalid(
            &format!("{field}.optional_relation"),
            "a wildcard subject cannot have a relation",
        ));
    }
    Ok(SubjectRef {
        object: ObjectRef::new(o.object_type.clone(), o.object_id.clone()),
        relation,
    })
}

/// A subject a question is asked about (check, lookup resources): wildcards are refused, as
/// "does everyone have it" is not a question these RPCs answer.
pub fn concrete_subject(field: &str, s: Option<&pb::SubjectReference>) -> Result<SubjectRef> {
    let subject = subject_ref(field, s)?;
    if subject.is_wildcard() {
        return Err(invalid_because(
            &format!("{field}.object.object_id"),
            "a wildcard subject is not allowed here; ask about a concrete subject",
            ErrorReason::WildcardNotAllowed,
        ));
    }
    Ok(subject)
}

pub fn object_ref_to_proto(o: &ObjectRef) -> pb::ObjectReference {
    pb::ObjectReference {
        object_type: o.object_type.clone(),
        object_id: o.object_id.clone(),
    }
}

pub fn subject_ref_to_proto(s: &SubjectRef) -> pb::SubjectReference {
    pb::SubjectReference {
        object: Some(object_ref_to_proto(&s.object)),
        optional_relation: s.relation.clone().unwrap_or_default(),
    }
}

// ---- relationships ------------------------------------------------------------------------

/// A relationship of a write or import.
pub fn relationship(field: &str, r: Option<&pb::Relationship>) -> Result<Relationship> {
    let r = r.ok_or_else(|| required(field))?;
    let resource = object_ref(&format!("{field}.resource"), r.resource.as_ref())?;
    let relation = relation(&format!("{field}.relation"), &r.relation)?;
    let subject = subject_ref(&format!("{field}.subject"), r.subject.as_ref())?;
    let caveat = match &r.optional_caveat {
        None => None,
        Some(c) => {
            let cfield = format!("{field}.optional_caveat");
            model::validate_caveat_name(&c.caveat_name)
                .map_err(|e| model_err(&format!("{cfield}.caveat_name"), e))?;
            Some(CaveatRef {
                name: c.caveat_name.clone(),
                context: context(&format!("{cfield}.context"), c.context.as_ref())?,
            })
        }
    };
    let expiration = r
        .optional_expires_at
        .as_ref()
        .map(|t| timestamp(&format!("{field}.optional_expires_at"), t))
        .transpose()?;
    Ok(Relationship {
        resource,
        relation,
        subject,
        caveat,
        expiration,
    })
}

pub fn relationship_to_proto(r: &Relationship) -> pb::Relationship {
    pb::Relationship {
        resource: Some(object_ref_to_proto(&r.resource)),
        relation: r.relation.clone(),
        subject: Some(subject_ref_to_proto(&r.subject)),
        optional_caveat: r.caveat.as_ref().map(|c| pb::ContextualizedCaveat {
            caveat_name: c.name.clone(),
            // The reference omits the context of a caveat written without one.
            context: (!c.context.is_empty()).then(|| context_to_proto(&c.context)),
        }),
        optional_expires_at: r.expiration.map(timestamp_to_proto),
    }
}

/// One update of a WriteRelationships request.
pub fn update(field: &str, u: &pb::RelationshipUpdate) -> Result<RelationshipUpdate> {
    use pb::relationship_update::Operation;
    let op = match Operation::try_from(u.operation) {
        Ok(Operation::Create) => WriteOp::Create,
        Ok(Operation::Touch) => WriteOp::Touch,
        Ok(Operation::Delete) => WriteOp::Delete,
        Ok(Operation::Unspecified) | Err(_) => {
            return Err(invalid(
                &format!("{field}.operation"),
                "must be OPERATION_CREATE, OPERATION_TOUCH or OPERATION_DELETE",
            ));
        }
    };
    Ok(RelationshipUpdate {
        op,
        relationship: relationship(&format!("{field}.relationship"), u.relationship.as_ref())?,
    })
}

pub fn update_to_proto(u: &RelationshipUpdate) -> pb::RelationshipUpdate {
    use pb::relationship_update::Operation;
    let op = match u.op {
        WriteOp::Create => Operation::Create,
        WriteOp::Touch => Operation::Touch,
        WriteOp::Delete => Operation::Delete,
    };
    pb::RelationshipUpdate {
        operation: op as i32,
        relationship: Some(relationship_to_proto(&u.relationship)),
    }
}

// ---- filters and preconditions ------------------------------------------------------------

/// A relationship filter. At least one field must be set: an empty filter would select
/// every relationship, which the reference refuses as a likely mistake.
pub fn relationship_filter(
    field: &str,
    f: Option<&pb::RelationshipFilter>,
) -> Result<RelationshipFilter> {
    let f = f.ok_or_else(|| required(field))?;
    let filter = any_relationship_filter(field, f)?;
    if filter == RelationshipFilter::default() {
        return Err(invalid_because(
            field,
            "at least one field of the filter must be set",
            ErrorReason::InvalidFilter,
        ));
    }
    Ok(filter)
}

/// A relationship filter that may be empty (an export's optional filter, Watch filters).
pub fn any_relationship_filter(
    field: &str,
    f: &pb::RelationshipFilter,
) -> Result<RelationshipFilter> {
    let resource_type = if f.resource_type.is_empty() {
        None
    } else {
        Some(object_type(
            &format!("{field}.resource_type"),
            &f.resource_type,
        )?)
    };
    let resource_id = if f.optional_resource_id.is_empty() {
        None
    } else {
        model::validate_object_id(&f.optional_resource_id, false)
            .map_err(|e| model_err(&format!("{field}.optional_resource_id"), e))?;
        Some(f.optional_resource_id.clone())
    };
    let resource_id_prefix = if f.optional_resource_id_prefix.is_empty() {
        None
    } else {
        let pfield = format!("{field}.optional_resource_id_prefix");
        if resource_id.is_some() {
            return Err(invalid_because(
                &pfield,
                "cannot be combined with optional_resource_id",
                ErrorReason::InvalidFilter,
            ));
        }
        // A prefix is a partial id: the same characters, any length up to an id's.
        model::validate_object_id(&f.optional_resource_id_prefix, false)
            .map_err(|e| model_err(&pfield, e))?;
        Some(f.optional_resource_id_prefix.clone())
    };
    let relation = optional_relation(&format!("{field}.optional_relation"), &f.optional_relation)?;
    let subject = f
        .optional_subject_filter
        .as_ref()
        .map(|sf| subject_filter(&format!("{field}.optional_subject_filter"), sf))
        .transpose()?;
    Ok(RelationshipFilter {
        resource_type,
        resource_id,
        resource_id_prefix,
        relation,
        subject,
    })
}

fn subject_filter(field: &str, sf: &pb::SubjectFilter) -> Result<SubjectFilter> {
    let subject_type = object_type(&format!("{field}.subject_type"), &sf.subject_type)?;
    let subject_id = if sf.optional_subject_id.is_empty() {
        None
    } else {
        model::validate_object_id(&sf.optional_subject_id, true)
            .map_err(|e| model_err(&format!("{field}.optional_subject_id"), e))?;
        Some(sf.optional_subject_id.clone())
    };
    let relation = match &sf.optional_relation {
        None => SubjectRelationFilter::Any,
        // An empty relation selects plain subjects (the ellipsis).
        Some(r) if r.relation.is_empty() => SubjectRelationFilter::Ellipsis,
        Some(r) => SubjectRelationFilter::Relation(relation(
            &format!("{field}.optional_relation.relation"),
            &r.relation,
        )?),
    };
    Ok(SubjectFilter {
        subject_type,
        subject_id,
        relation,
    })
}

pub fn precondition(field: &str, p: &pb::Precondition) -> Result<Precondition> {
    use pb::precondition::Operation;
    let kind = match Operation::try_from(p.operation) {
        Ok(Operation::MustMatch) => PreconditionKind::MustMatch,
        Ok(Operation::MustNotMatch) => PreconditionKind::MustNotMatch,
        Ok(Operation::Unspecified) | Err(_) => {
            return Err(invalid(
                &format!("{field}.operation"),
                "must be OPERATION_MUST_MATCH or OPERATION_MUST_NOT_MATCH",
            ));
        }
    };
    let filter =
        relationship_filter(&format!("{field}.filter"), p.filter.as_ref()).map_err(|e| {
            if e.reason == Some(ErrorReason::InvalidFilter) {
                e.with_reason(ErrorReason::EmptyPrecondition)
            } else {
                e
            }
        })?;
    Ok(Precondition { kind, filter })
}

pub fn preconditions(ps: &[pb::Precondition]) -> Result<Vec<Precondition>> {
    ps.iter()
        .enumerate()
        .map(|(i, p)| precondition(&format!("optional_preconditions[{i}]"), p))
        .collect()
}

// ---- values -------------------------------------------------------------------------------

/// A caveat context (`google.protobuf.Struct`); absent means empty.
pub fn context(field: &str, s: Option<&prost_types::Struct>) -> Result<Context> {
    let mut out = Context::new();
    if let Some(s) = s {
        for (k, v) in &s.fields {
            out.insert(k.clone(), value(&format!("{field}.{k}"), v)?);
        }
    }
    Ok(out)
}

/// A write's `optional_transaction_metadata`; absent means none. The key under which Watch
/// reports the authenticated writer ([`CALLER_METADATA_KEY`](crate::service::CALLER_METADATA_KEY)) is
/// reserved, so a caller cannot pass for another one.
pub fn transaction_metadata(
    field: &str,
    s: Option<&prost_types::Struct>,
) -> Result<crate::store::TransactionMetadata> {
    let metadata = context(field, s)?;
    let reserved = crate::service::CALLER_METADATA_KEY;
    if metadata.contains_key(reserved) {
        return Err(invalid(
            &format!("{field}.{reserved}"),
            "is reserved: Watch reports the authenticated writer under this key",
        ));
    }
    Ok(metadata)
}

fn value(field: &str, v: &prost_types::Value) -> Result<Json> {
    Ok(match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::NumberValue(n)) => number(field, *n)?,
        Some(Kind::StructValue(s)) => Json::Object(context(field, Some(s))?),
        Some(Kind::ListValue(l)) => Json::Array(
            l.values
                .iter()
                .enumerate()
                .map(|(i, v)| value(&format!("{field}[{i}]"), v))
                .collect::<Result<_>>()?,
        ),
    })
}

/// Struct numbers are doubles; whole numbers within the exactly representable range become
/// JSON integers so `int`/`uint` caveat parameters and stored contexts read naturally.
fn number(field: &str, n: f64) -> Result<Json> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() <= EXACT {
        return Ok(Json::from(n as i64));
    }
    serde_json::Number::from_f64(n)
        .map(Json::Number)
        .ok_or_else(|| invalid(field, "numbers must be finite"))
}

pub fn context_to_proto(c: &Context) -> prost_types::Struct {
    prost_types::Struct {
        fields: c
            .iter()
            .map(|(k, v)| (k.clone(), value_to_proto(v)))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn value_to_proto(v: &Json) -> prost_types::Value {
    let kind = match v {
        Json::Null => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(value_to_proto).collect(),
        }),
        Json::Object(o) => Kind::StructValue(context_to_proto(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

pub fn timestamp(field: &str, t: &prost_types::Timestamp) -> Result<Timestamp> {
    let nanos = u32::try_from(t.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)
        .ok_or_else(|| invalid(field, "nanos must be between 0 and 999,999,999"))?;
    let out_of_range = || {
        invalid(
            field,
            "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (the range of google.protobuf.Timestamp)",
        )
    };
    if !(model::validation::MIN_TIMESTAMP_SECONDS..=model::validation::MAX_TIMESTAMP_SECONDS)
        .contains(&t.seconds)
    {
        return Err(out_of_range());
    }
    chrono::DateTime::from_timestamp(t.seconds, nanos).ok_or_else(out_of_range)
}

pub fn timestamp_to_proto(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

// ---- results ------------------------------------------------------------------------------

/// A check answer as the wire's tri-state, with the missing parameters of a conditional one.
pub fn permissionship(
    outcome: &CheckOutcome,
) -> (
    pb::check_permission_response::Permissionship,
    Option<pb::PartialCaveatInfo>,
) {
    use pb::check_permission_response::Permissionship;
    match outcome {
        CheckOutcome::Has => (Permissionship::HasPermission, None),
        CheckOutcome::No => (Permissionship::NoPermission, None),
        CheckOutcome::Conditional { missing } => (
            Permissionship::ConditionalPermission,
            Some(partial_caveat_info(missing)),
        ),
    }
}

fn partial_caveat_info(missing: &[String]) -> pb::PartialCaveatInfo {
    pb::PartialCaveatInfo {
        missing_required_context: missing.to_vec(),
    }
}

/// A lookup result's permissionship; `None` for `No` (never part of a lookup result).
pub fn lookup_permissionship(
    outcome: &CheckOutcome,
) -> Option<(pb::LookupPermissionship, Option<pb::PartialCaveatInfo>)> {
    match outcome {
        CheckOutcome::Has => Some((pb::LookupPermissionship::HasPermission, None)),
        CheckOutcome::Conditional { missing } => Some((
            pb::LookupPermissionship::ConditionalPermission,
            Some(partial_caveat_info(missing)),
        )),
        CheckOutcome::No => None,
    }
}

/// An expansion tree. Anonymous inner nodes (sub-expressions of a permission) carry the
/// object and relation of the nearest named node above them, as the reference reports them.
pub fn expand_tree(
    tree: &ExpandTree,
    parent: Option<&(ObjectRef, String)>,
) -> pb::PermissionRelationshipTree {
    use pb::algebraic_subject_set::Operation;
    use pb::permission_relationship_tree::TreeType;
    let named = tree.expanded.as_ref().or(parent);
    let algebraic = |op: Operation, children: &[ExpandTree]| {
        TreeType::Intermediate(pb::AlgebraicSubjectSet {
            operation: op as i32,
            children: children.iter().map(|c| expand_tree(c, named)).collect(),
        })
    };
    let tree_type = match &tree.node {
        ExpandNode::Leaf(subjects) => TreeType::Leaf(pb::DirectSubjectSet {
            subjects: subjects
                .iter()
                .map(|s| subject_ref_to_proto(&s.subject))
                .collect(),
        }),
        ExpandNode::Union(c) => algebraic(Operation::Union, c),
        ExpandNode::Intersection(c) => algebraic(Operation::Intersection, c),
        ExpandNode::Exclusion(c) => algebraic(Operation::Exclusion, c),
    };
    pb::PermissionRelationshipTree {
        tree_type: Some(tree_type),
        expanded_object: named.map(|(o, _)| object_ref_to_proto(o)),
        expanded_relation: named.map(|(_, r)| r.clone()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ExpandSubject;

    fn obj(t: &str, id: &str) -> pb::ObjectReference {
        pb::ObjectReference {
            object_type: t.into(),
            object_id: id.into(),
        }
    }

    fn subj(t: &str, id: &str, rel: &str) -> pb::SubjectReference {
        pb::SubjectReference {
            object: Some(obj(t, id)),
            optional_relation: rel.into(),
        }
    }

    #[test]
    fn consistency_modes_and_bad_tokens() {
        use pb::consistency::Requirement;
        let c = |r| pb::Consistency {
            requirement: Some(r),
        };
        assert_eq!(consistency(None).unwrap(), Consistency::MinimizeLatency);
        assert_eq!(
            consistency(Some(&c(Requirement::FullyConsistent(true)))).unwrap(),
            Consistency::FullyConsistent
        );
        let z = zookie(model::Revision(17));
        assert_eq!(
            consistency(Some(&c(Requirement::AtLeastAsFresh(z.clone())))).unwrap(),
            Consistency::AtLeastAsFresh(model::Revision(17))
        );
        assert_eq!(
            consistency(Some(&c(Requirement::AtExactSnapshot(z)))).unwrap(),
            Consistency::AtExactSnapshot(model::Revision(17))
        );
        let garbage = pb::ZedToken {
            token: "garbage!".into(),
        };
        let err = consistency(Some(&c(Requirement::AtLeastAsFresh(garbage)))).unwrap_err();
        assert!(
            err.message.starts_with("consistency.at_least_as_fresh: "),
            "{}",
            err.message
        );
        assert!(consistency(Some(&c(Requirement::MinimizeLatency(false)))).is_err());
    }

    #[test]
    fn references_are_validated_with_field_paths() {
        let err = object_ref("resource", Some(&obj("document", "a b"))).unwrap_err();
        assert!(
            err.message.starts_with("resource.object_id: "),
            "{}",
            err.message
        );
        let err = object_ref("resource", Some(&obj("document", "*"))).unwrap_err();
        assert!(err.message.contains("wildcard"), "{}", err.message);
        let err = object_ref("resource", None).unwrap_err();
        assert_eq!(err.message, "resource: is required");
        let err = subject_ref("subject", Some(&subj("user", "*", "member"))).unwrap_err();
        assert!(
            err.message.starts_with("subject.optional_relation: "),
            "{}",
            err.message
        );
        let err = subject_ref("subject", Some(&subj("User", "x", ""))).unwrap_err();
        assert!(
            err.message.starts_with("subject.object.object_type: "),
            "{}",
            err.message
        );
        assert!(
            subject_ref("subject", Some(&subj("user", "*", "")))
                .unwrap()
                .is_wildcard()
        );
        assert!(concrete_subject("subject", Some(&subj("user", "*", ""))).is_err());
        let s = subject_ref("subject", Some(&subj("group", "eng", "member"))).unwrap();
        assert_eq!(s.to_string(), "group:eng#member");
        assert_eq!(subject_ref_to_proto(&s), subj("group", "eng", "member"));
    }

    #[test]
    fn relationships_round_trip_with_caveat_and_expiration() {
        let r = model::parse_relationship(
            r#"document:a#viewer@user:b[ip_allowed:{"cidr":"10.0.0.0/8","n":3,"l":[1.5,true,null]}][expiration:2030-01-02T03:04:05Z]"#,
        )
        .unwrap();
        let wire = relationship_to_proto(&r);
        let back = relationship("relationship", Some(&wire)).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.caveat.unwrap().context["n"], Json::from(3));
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        let s = prost_types::Struct {
            fields: [(
                "x".to_string(),
                prost_types::Value {
                    kind: Some(Kind::NumberValue(f64::INFINITY)),
                },
            )]
            .into(),
        };
        let err = context("context", Some(&s)).unwrap_err();
        assert!(err.message.starts_with("context.x: "), "{}", err.message);
    }

    #[test]
    fn filters_follow_the_wire_rules() {
        let f = pb::RelationshipFilter {
            resource_type: "document".into(),
            optional_resource_id_prefix: "doc-".into(),
            optional_subject_filter: Some(pb::SubjectFilter {
                subject_type: "user".into(),
                optional_subject_id: String::new(),
                optional_relation: Some(pb::subject_filter::RelationFilter {
                    relation: String::new(),
                }),
            }),
            ..Default::default()
        };
        let filter = relationship_filter("relationship_filter", Some(&f)).unwrap();
        assert_eq!(filter.resource_id_prefix.as_deref(), Some("doc-"));
        assert_eq!(
            filter.subject.unwrap().relation,
            SubjectRelationFilter::Ellipsis
        );
        let both = pb::RelationshipFilter {
            resource_type: "document".into(),
            optional_resource_id: "a".into(),
            optional_resource_id_prefix: "a".into(),
            ..Default::default()
        };
        let err = relationship_filter("relationship_filter", Some(&both)).unwrap_err();
        assert!(
            err.message
                .starts_with("relationship_filter.optional_resource_id_prefix: ")
        );
        let err = relationship_filter("f", Some(&pb::RelationshipFilter::default())).unwrap_err();
        assert!(
            err.message.contains("at least one field"),
            "{}",
            err.message
        );
        assert!(any_relationship_filter("f", &pb::RelationshipFilter::default()).is_ok());
    }

    #[test]
    fn updates_require_an_operation() {
        let u = pb::RelationshipUpdate {
            operation: 0,
            relationship: None,
        };
        let err = update("updates[0]", &u).unwrap_err();
        assert!(
            err.message.starts_with("updates[0].operation: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn timestamps_are_checked() {
        let t = prost_types::Timestamp {
            seconds: 1,
            nanos: -1,
        };
        assert!(timestamp("t", &t).is_err());
        // The range of google.protobuf.Timestamp: years 1 to 9999, edges included.
        for (seconds, ok) in [
            (-62_135_596_800, true),
            (-62_135_596_801, false),
            (253_402_300_799, true),
            (253_402_300_800, false),
            (i64::MAX, false),
            (i64::MIN, false),
        ] {
            let t = prost_types::Timestamp { seconds, nanos: 0 };
            let got = timestamp("optional_expires_at", &t);
            assert_eq!(got.is_ok(), ok, "{seconds}");
            if let Err(e) = got {
                assert!(
                    e.message
                        .starts_with("optional_expires_at: must be between 0001"),
                    "{}",
                    e.message
                );
            }
        }
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 123_000).unwrap();
        assert_eq!(timestamp("t", &timestamp_to_proto(now)).unwrap(), now);
    }

    #[test]
    fn expand_trees_name_every_node() {
        let doc = ObjectRef::new("document", "d");
        let tree = ExpandTree {
            expanded: Some((doc.clone(), "view".into())),
            node: ExpandNode::Union(vec![ExpandTree {
                expanded: None,
                node: ExpandNode::Exclusion(vec![ExpandTree {
                    expanded: Some((doc, "viewer".into())),
                    node: ExpandNode::Leaf(vec![ExpandSubject {
                        subject: SubjectRef::new("user", "a", None),
                        caveat: None,
                    }]),
                }]),
            }]),
        };
        let wire = expand_tree(&tree, None);
        assert_eq!(wire.expanded_relation, "view");
        let Some(pb::permission_relationship_tree::TreeType::Intermediate(u)) = &wire.tree_type
        else {
            panic!("expected an intermediate node");
        };
        let anonymous = &u.children[0];
        assert_eq!(anonymous.expanded_relation, "view");
        let Some(pb::permission_relationship_tree::TreeType::Intermediate(ex)) =
            &anonymous.tree_type
        else {
            panic!("expected an exclusion");
        };
        assert_eq!(
            ex.operation,
            pb::algebraic_subject_set::Operation::Exclusion as i32
        );
        assert_eq!(ex.children[0].expanded_relation, "viewer");
    }
}
