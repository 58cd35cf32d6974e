//! The relationship text syntax used by validation files, the CLI and import/export:
//!
//! ```text
//! document:readme#viewer@user:alice
//! document:readme#viewer@group:eng#member
//! document:readme#viewer@user:*
//! document:readme#viewer@user:alice[on_vpn]
//! document:readme#viewer@user:alice[on_vpn:{"allowed":["10.0.0.0/8"]}]
//! document:readme#viewer@user:alice[expiration:2030-01-01T00:00:00Z]
//! document:readme#viewer@user:alice[on_vpn][expiration:2030-01-01T00:00:00Z]
//! ```
//!
//! `#...` after a subject is the ellipsis and is the same as no relation.

use super::{
    CaveatRef, Context, ModelError, ObjectRef, Relationship, SubjectRef, validate_caveat_name,
    validate_object_id, validate_object_type, validate_relation_name,
};

fn syntax(text: &str, reason: impl Into<String>) -> ModelError {
    // The text is quoted in the message: long input is shown by its ends only.
    const SHOWN: usize = 200;
    let text = if text.chars().count() > SHOWN {
        let head: String = text.chars().take(SHOWN / 2).collect();
        let tail: String = text
            .chars()
            .skip(text.chars().count() - SHOWN / 4)
            .collect();
        format!("{head}…{tail}")
    } else {
        text.to_string()
    };
    ModelError::Syntax {
        text,
        reason: reason.into(),
    }
}

fn parse_object(
    whole: &str,
    part: &str,
    what: &str,
    allow_wildcard: bool,
) -> Result<ObjectRef, ModelError> {
    let (t, id) = part
        .split_once(':')
        .ok_or_else(|| syntax(whole, format!("{what} `{part}` must be `type:id`")))?;
    validate_object_type(t)?;
    validate_object_id(id, allow_wildcard)?;
    Ok(ObjectRef::new(t, id))
}

/// Parses `type:id`, `type:id#relation`, `type:id#...` or `type:*`.
pub fn parse_subject(text: &str) -> Result<SubjectRef, ModelError> {
    parse_subject_in(text, text)
}

fn parse_subject_in(whole: &str, part: &str) -> Result<SubjectRef, ModelError> {
    let (obj, rel) = match part.split_once('#') {
        Some((o, r)) => (o, Some(r)),
        None => (part, None),
    };
    let object = parse_object(whole, obj, "subject", true)?;
    let relation = match rel {
        None | Some("...") => None,
        Some(r) => {
            validate_relation_name(r)?;
            Some(r.to_string())
        }
    };
    let subject = SubjectRef { object, relation };
    subject.validate()?;
    Ok(subject)
}

/// Parses one relationship in the text syntax (surrounding whitespace is ignored).
pub fn parse_relationship(text: &str) -> Result<Relationship, ModelError> {
    let whole = text.trim();
    let (resource_part, rest) = whole.split_once('#').ok_or_else(|| {
        syntax(
            whole,
            "expected `resource_type:id#relation@subject`, found no `#`",
        )
    })?;
    let resource = parse_object(whole, resource_part, "resource", false)?;
    let (relation, rest) = rest
        .split_once('@')
        .ok_or_else(|| syntax(whole, "expected `@subject` after the relation"))?;
    validate_relation_name(relation)?;
    let (subject_part, mut attrs) = match rest.find('[') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let subject = parse_subject_in(whole, subject_part)?;

    let mut caveat = None;
    let mut expiration = None;
    while !attrs.is_empty() {
        let body_and_rest = attrs.strip_prefix('[').ok_or_else(|| {
            syntax(
                whole,
                format!("unexpected text `{attrs}` after the subject"),
            )
        })?;
        let end = find_closing_bracket(body_and_rest)
            .ok_or_else(|| syntax(whole, "unterminated `[` (missing `]`)"))?;
        let body = &body_and_rest[..end];
        attrs = &body_and_rest[end + 1..];
        let (name, value) = match body.split_once(':') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (body.trim(), None),
        };
        if name == "expiration" {
            if expiration.is_some() {
                return Err(syntax(whole, "more than one expiration"));
            }
            let v = value.ok_or_else(|| {
                syntax(
                    whole,
                    "expiration needs a time: `[expiration:2030-01-01T00:00:00Z]`",
                )
            })?;
            let t = chrono::DateTime::parse_from_rfc3339(v).map_err(|e| {
                syntax(
                    whole,
                    format!("invalid expiration `{v}`: {e} (expected RFC 3339)"),
                )
            })?;
            let t = t.with_timezone(&chrono::Utc);
            super::validation::validate_timestamp("expiration", &t)
                .map_err(|e| syntax(whole, e.to_string()))?;
            expiration = Some(t);
        } else {
            if caveat.is_some() {
                return Err(syntax(whole, "more than one caveat"));
            }
            validate_caveat_name(name)?;
            let context: Context = match value {
                None => Context::new(),
                Some(v) => match serde_json::from_str::<serde_json::Value>(v) {
                    Ok(serde_json::Value::Object(m)) => m,
                    Ok(_) => {
                        return Err(syntax(
                            whole,
                            format!("caveat context of `{name}` must be a JSON object"),
                        ));
                    }
                    Err(e) => {
                        return Err(syntax(
                            whole,
                            format!("invalid caveat context of `{name}`: {e}"),
                        ));
                    }
                },
            };
            caveat = Some(CaveatRef {
                name: name.to_string(),
                context,
            });
        }
    }
    Ok(Relationship {
        resource,
        relation: relation.to_string(),
        subject,
        caveat,
        expiration,
    })
}

/// Finds the `]` closing an attribute, skipping brackets inside JSON strings and arrays.
fn find_closing_bracket(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ']' if depth == 0 => return Some(i),
            ']' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Formats a relationship in the text syntax; `parse_relationship` reads it back unchanged.
pub fn format_relationship(r: &Relationship) -> String {
    let mut out = format!("{}#{}@{}", r.resource, r.relation, r.subject);
    if let Some(c) = &r.caveat {
        out.push('[');
        out.push_str(&c.name);
        if !c.context.is_empty() {
            out.push(':');
            out.push_str(&serde_json::Value::Object(c.context.clone()).to_string());
        }
        out.push(']');
    }
    if let Some(e) = &r.expiration {
        out.push_str("[expiration:");
        out.push_str(&e.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        out.push(']');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for text in [
            "document:readme#viewer@user:alice",
            "document:readme#viewer@group:eng#member",
            "document:readme#viewer@user:*",
            "tenant/doc:a/b|c#viewer@user:x[on_vpn]",
            r#"document:readme#viewer@user:alice[on_vpn:{"allowed":["10.0.0.0/8"],"n":1}]"#,
            "document:readme#viewer@user:alice[expiration:2030-01-01T00:00:00Z]",
            r#"document:readme#viewer@user:alice[c1:{"k":"]"}][expiration:2030-01-01T00:00:00.500Z]"#,
        ] {
            let r = parse_relationship(text).unwrap();
            assert_eq!(format_relationship(&r), text);
        }
    }

    #[test]
    fn ellipsis_is_no_relation() {
        let r = parse_relationship("document:a#viewer@group:eng#...").unwrap();
        assert_eq!(r.subject.relation, None);
        assert_eq!(r.to_string(), "document:a#viewer@group:eng");
    }

    #[test]
    fn parses_parts() {
        let r = parse_relationship(r#" doc:1#viewer@user:a[ip_ok:{"x": 2}] "#).unwrap();
        assert_eq!(r.resource, ObjectRef::new("doc", "1"));
        assert_eq!(r.relation, "viewer");
        let c = r.caveat.unwrap();
        assert_eq!(c.name, "ip_ok");
        assert_eq!(c.context["x"], serde_json::json!(2));
    }

    #[test]
    fn errors_name_the_wrong_part() {
        let cases = [
            ("document:readme", "`#`"),
            ("document:readme#viewer", "`@subject`"),
            ("document#viewer@user:a", "resource `document`"),
            ("Document:a#viewer@user:a", "object type"),
            ("document:a b#viewer@user:a", "object id"),
            ("document:*#viewer@user:a", "wildcard"),
            ("document:a#Viewer@user:a", "relation"),
            ("document:a#viewer@user:*#member", "wildcard"),
            ("document:a#viewer@user:a[", "unterminated"),
            ("document:a#viewer@user:a[c:{oops}]", "caveat context"),
            ("document:a#viewer@user:a[c:[1]]", "JSON object"),
            ("document:a#viewer@user:a[expiration:tomorrow]", "RFC 3339"),
            ("document:a#viewer@user:a[x]junk", "junk"),
            ("document:a#viewer@user:a[x][y]", "more than one caveat"),
        ];
        for (text, needle) in cases {
            let err = parse_relationship(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
