//! Client-side conversions between domain values (the text syntax's [`Relationship`]) and the
//! `authzed.api.v1` wire messages the client subcommands send and print.

use crate::api::proto::authzed::api::v1 as pb;
use crate::model::{CaveatRef, Context, ObjectRef, Relationship, SubjectRef};
use prost_types::value::Kind;

use super::error::CliError;

pub fn object_to_proto(o: &ObjectRef) -> pb::ObjectReference {
    pb::ObjectReference {
        object_type: o.object_type.clone(),
        object_id: o.object_id.clone(),
    }
}

pub fn subject_to_proto(s: &SubjectRef) -> pb::SubjectReference {
    pb::SubjectReference {
        object: Some(object_to_proto(&s.object)),
        optional_relation: s.relation.clone().unwrap_or_default(),
    }
}

pub fn relationship_to_proto(r: &Relationship) -> pb::Relationship {
    pb::Relationship {
        resource: Some(object_to_proto(&r.resource)),
        relation: r.relation.clone(),
        subject: Some(subject_to_proto(&r.subject)),
        optional_caveat: r.caveat.as_ref().map(|c| pb::ContextualizedCaveat {
            caveat_name: c.name.clone(),
            context: (!c.context.is_empty()).then(|| context_to_struct(&c.context)),
        }),
        optional_expires_at: r.expiration.map(|t| prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        }),
    }
}

fn missing(what: &str) -> CliError {
    CliError::Failed(format!("the server sent a relationship without its {what}"))
}

pub fn object_from_proto(
    o: Option<pb::ObjectReference>,
    what: &str,
) -> Result<ObjectRef, CliError> {
    let o = o.ok_or_else(|| missing(what))?;
    Ok(ObjectRef::new(o.object_type, o.object_id))
}

pub fn subject_from_proto(s: Option<pb::SubjectReference>) -> Result<SubjectRef, CliError> {
    let s = s.ok_or_else(|| missing("subject"))?;
    Ok(SubjectRef {
        object: object_from_proto(s.object, "subject object")?,
        relation: relation_or_ellipsis(s.optional_relation),
    })
}

/// The wire's empty string and `...` both mean "the object itself".
fn relation_or_ellipsis(relation: String) -> Option<String> {
    (!relation.is_empty() && relation != "...").then_some(relation)
}

/// A relationship as the server sent it (not re-validated: the server's data is valid).
pub fn relationship_from_proto(r: pb::Relationship) -> Result<Relationship, CliError> {
    let expiration = match r.optional_expires_at {
        None => None,
        Some(t) => Some(
            chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0))
                .ok_or_else(|| {
                    CliError::Failed(format!(
                        "the server sent an expiration out of range ({}s)",
                        t.seconds
                    ))
                })?,
        ),
    };
    Ok(Relationship {
        resource: object_from_proto(r.resource, "resource")?,
        relation: r.relation,
        subject: subject_from_proto(r.subject)?,
        caveat: r.optional_caveat.map(|c| CaveatRef {
            name: c.caveat_name,
            context: c.context.map(struct_to_context).unwrap_or_default(),
        }),
        expiration,
    })
}

/// A JSON object as a `google.protobuf.Struct`.
pub fn context_to_struct(context: &Context) -> prost_types::Struct {
    prost_types::Struct {
        fields: context
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(v: &serde_json::Value) -> prost_types::Value {
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(*b),
        // Struct numbers are doubles: that is the wire format's limit, not ours.
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        J::Object(m) => Kind::StructValue(context_to_struct(m)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A `google.protobuf.Struct` as a JSON object; whole numbers print without a fraction.
pub fn struct_to_context(s: prost_types::Struct) -> Context {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, value_to_json(v)))
        .collect()
}

fn value_to_json(v: prost_types::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(b),
        Some(Kind::NumberValue(n)) => number_to_json(n),
        Some(Kind::StringValue(s)) => J::String(s),
        Some(Kind::ListValue(l)) => J::Array(l.values.into_iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => J::Object(struct_to_context(s)),
    }
}

fn number_to_json(n: f64) -> serde_json::Value {
    // Doubles hold integers exactly up to 2^53; print those as integers.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{format_relationship, parse_relationship};

    #[test]
    fn relationships_round_trip_through_the_wire() {
        for text in [
            "document:readme#viewer@user:alice",
            "document:readme#viewer@group:eng#member",
            "document:readme#viewer@user:*",
            r#"document:readme#viewer@user:alice[on_vpn:{"n":1,"nested":{"l":[true,null,"x",1.5]}}]"#,
            "document:readme#viewer@user:alice[expiration:2030-01-01T00:00:00.250Z]",
        ] {
            let r = parse_relationship(text).unwrap();
            let back = relationship_from_proto(relationship_to_proto(&r)).unwrap();
            assert_eq!(format_relationship(&back), text);
        }
    }

    #[test]
    fn ellipsis_relation_is_the_object_itself() {
        let s = subject_from_proto(Some(pb::SubjectReference {
            object: Some(pb::ObjectReference {
                object_type: "user".into(),
                object_id: "a".into(),
            }),
            optional_relation: "...".into(),
        }))
        .unwrap();
        assert_eq!(s.relation, None);
    }

    #[test]
    fn missing_parts_are_errors() {
        assert!(relationship_from_proto(pb::Relationship::default()).is_err());
    }
}
